//! The driver-history binary (`driver-history`, or `driver-history healthcheck`).

use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    quote_pipeline::service::service_main("driver-history", || {
        Ok(Arc::new(driver_history::DriverHistory::from_env()?))
    })
    .await
}
