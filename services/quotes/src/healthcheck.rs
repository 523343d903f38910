//! `quotes healthcheck`: the container health check (the image has no shell and no curl).

use std::process::ExitCode;
use std::time::Duration;

use crate::settings::api::ProcessSettings;

/// Exits 0 when `GET /healthz` on `LISTEN_ADDR`'s port of this host answers 200 within 2 s.
pub async fn probe(process: &ProcessSettings) -> ExitCode {
    let port = process.listen_addr.port();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    {
        Ok(client) => client,
        Err(_) => return ExitCode::FAILURE,
    };
    match client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
