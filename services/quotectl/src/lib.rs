//! quotectl: the operations CLI of the quote platform.
//!
//! - `quotectl bootstrap` creates the AWS resources idempotently ([`bootstrap`]);
//! - `quotectl leases --app NAME` prints a consumer application's lease table ([`leases`]);
//! - `quotectl relay-dead-letters` prints the records the relays set aside
//!   ([`relay_dead_letters`]);
//! - `quotectl token` mints a bearer token event-source accepts ([`token`]);
//! - `quotectl bench ingest` measures `POST /v1/quotes` against a baseline of the same writes
//!   made directly ([`bench`]).
//!
//! The binary (`src/main.rs`) only parses the command line ([`cli`]), calls into this library
//! and prints. Configuration comes from the environment ([`config`]), with the same variables
//! and defaults as event-source.
//!
//! # Layout
//! - [`cli`]: the command line (clap derive).
//! - [`config`]: environment variables and their defaults.
//! - [`bootstrap`]: tables and stream, with a per-resource report.
//! - [`leases`]: the lease table as a readable table.
//! - [`relay_dead_letters`]: the relays' dead letters as a readable table.
//! - [`token`]: HS256 token minting.
//! - [`bench`]: the load generator, its baselines and statistics.

pub mod bench;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod leases;
pub mod relay_dead_letters;
pub mod token;

/// Installs a log subscriber writing to stderr (stdout carries the command's output), filtered
/// by `RUST_LOG` (default `warn`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A subscriber may already be installed (tests); keep it then.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
