//! Loading the rating tables at start-up: a versioned JSON file (the `RATING_TABLES_PATH`
//! setting of `quotes run`), or the tables embedded in the binary.
//!
//! The file is read and validated once, before the service consumes anything; a file that
//! cannot be read or breaks any rule of the format stops the service from starting, with the
//! path and every problem found (see `shared/rating/README.md` for the format).

use std::path::{Path, PathBuf};

use quote_rating::{RatingTables, TableError};

/// Why a rating table file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TablesFileError {
    /// The file cannot be read.
    #[error("cannot read the rating tables {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid rating tables; the error lists every problem with its location.
    #[error("the rating tables {} are not valid: {source}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: TableError,
    },
}

/// Where the tables in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TablesSource {
    /// The tables embedded in the binary ([`RatingTables::default_tables`]).
    Embedded,
    /// A file.
    File(PathBuf),
}

/// Reads and validates the table file at `path`.
pub fn load_tables(path: &Path) -> Result<RatingTables, TablesFileError> {
    let json = std::fs::read_to_string(path).map_err(|source| TablesFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    RatingTables::from_json(&json).map_err(|source| TablesFileError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// The tables in `path`, or the embedded ones without a path.
pub fn load(path: Option<&Path>) -> Result<(RatingTables, TablesSource), TablesFileError> {
    match path {
        Some(path) => Ok((load_tables(path)?, TablesSource::File(path.to_owned()))),
        None => Ok((
            RatingTables::default_tables().clone(),
            TablesSource::Embedded,
        )),
    }
}
