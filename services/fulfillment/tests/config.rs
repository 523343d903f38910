//! Loading the rating tables (`RATING_TABLES_PATH`): the embedded tables without a path, a
//! valid file by its version, and a refusal naming the path and the problems for a missing,
//! broken or invalid file.

use std::path::PathBuf;

use fulfillment::tables::{load, load_tables, TablesFileError};
use fulfillment::Fulfillment;
use quote_rating::DEFAULT_TABLES_JSON;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "fulfillment-config-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn loaded_from(path: Option<&PathBuf>) -> Result<Fulfillment, TablesFileError> {
    let (tables, source) = load(path.map(PathBuf::as_path))?;
    Ok(Fulfillment::loaded(tables, source))
}

#[test]
fn rating_tables_are_loaded_and_validated_at_start() {
    let dir = TempDir::new();

    // Unset: the embedded tables.
    let fulfillment = loaded_from(None).expect("embedded tables");
    assert_eq!(fulfillment.tables().version(), "2026-01");

    // A valid file of another version.
    let next =
        DEFAULT_TABLES_JSON.replacen("\"version\": \"2026-01\"", "\"version\": \"2026-07\"", 1);
    let path = dir.write("2026-07.json", &next);
    let fulfillment = loaded_from(Some(&path)).expect("valid file");
    assert_eq!(fulfillment.tables().version(), "2026-07");

    // An invalid file: refused, naming the path and every problem with its location.
    let invalid = DEFAULT_TABLES_JSON
        .replacen(
            "\"minimum_premium_cents\": 25000",
            "\"minimum_premium_cents\": 0",
            1,
        )
        .replacen(
            "{ \"min\": 21, \"max\": 24, \"factor\": 1.55 }",
            "{ \"min\": 19, \"max\": 24, \"factor\": 1.55 }",
            1,
        );
    let path = dir.write("invalid.json", &invalid);
    let err = loaded_from(Some(&path))
        .expect_err("an invalid table must stop the service")
        .to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("minimum_premium_cents"), "{err}");
    assert!(err.contains("factors.driver_age.bands[1]"), "{err}");
    match load_tables(&path) {
        Err(TablesFileError::Invalid { path: p, source }) => {
            assert_eq!(p, path);
            assert_eq!(source.issues().len(), 2, "{source}");
        }
        other => panic!("expected an invalid-table error: {other:?}"),
    }

    // Not JSON at all.
    let path = dir.write("broken.json", "{ \"format_version\": 1, ");
    let err = loaded_from(Some(&path))
        .expect_err("broken file")
        .to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("do not parse"), "{err}");

    // Missing.
    let path = dir.0.join("missing.json");
    let err = loaded_from(Some(&path))
        .expect_err("missing file")
        .to_string();
    assert!(err.contains("cannot read the rating tables"), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
}
