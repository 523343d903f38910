//! The notifier binary (`notifier`, or `notifier healthcheck`).

use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    // Building the notifier loads the AWS configuration, which `healthcheck` does not need.
    let notifier = if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        Err(anyhow::anyhow!("not built for a health check"))
    } else {
        notifier::Notifier::from_env().await
    };
    quote_pipeline::service::service_main("notifier", move || Ok(Arc::new(notifier?))).await
}
