//! The event-source binary: `event-source` serves the API; `event-source healthcheck` probes a
//! running instance (for container health checks, no curl needed).

use std::process::ExitCode;

use event_source::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return healthcheck().await;
    }
    let _telemetry = quote_runtime::telemetry::init("event-source");
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("event-source: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    let shutdown = quote_runtime::shutdown::on_signal();
    match event_source::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = ?err, "event-source failed");
            ExitCode::FAILURE
        }
    }
}

/// Exits 0 when `GET /healthz` on the configured port answers 200.
async fn healthcheck() -> ExitCode {
    let port = Config::from_env()
        .map(|c| c.listen_addr.port())
        .unwrap_or(8080);
    let url = format!("http://127.0.0.1:{port}/healthz");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build();
    match client {
        Ok(client) => match client.get(&url).send().await {
            Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        },
        Err(_) => ExitCode::FAILURE,
    }
}
