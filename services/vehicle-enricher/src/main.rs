//! The vehicle-enricher binary (`vehicle-enricher`, or `vehicle-enricher healthcheck`).

use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    quote_pipeline::service::service_main("vehicle-enricher", || {
        Ok(Arc::new(vehicle_enricher::VehicleEnricher::from_env()?))
    })
    .await
}
