//! `all-in-one`: every service in one process.
//!
//! ```sh
//! cargo run --release -p all-in-one            # embedded: nothing to install
//! cargo run --release -p all-in-one -- --aws   # the same against AWS / LocalStack / emulators
//! ```

use std::process::ExitCode;

use clap::Parser;
use event_source::config::{Backend, Config};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "all-in-one",
    about = "Every service of the quote platform in one process"
)]
struct Cli {
    /// Run against the configured AWS endpoints instead of the in-memory adapters.
    #[arg(long)]
    aws: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = quote_runtime::telemetry::init("all-in-one");
    if !cli.aws && std::env::var_os("BACKEND").is_none() {
        std::env::set_var("BACKEND", "memory");
    }
    let mut config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("all-in-one: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    let shutdown = quote_runtime::shutdown::on_signal();
    let result = if cli.aws {
        config.backend = Backend::Aws;
        all_in_one::run_aws(config, shutdown).await
    } else {
        config.backend = Backend::Memory;
        match tokio::net::TcpListener::bind(config.listen_addr).await {
            Ok(listener) => all_in_one::run_embedded(listener, config, shutdown).await,
            Err(err) => Err(anyhow::anyhow!("binding {}: {err}", config.listen_addr)),
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "all-in-one failed");
            ExitCode::FAILURE
        }
    }
}
