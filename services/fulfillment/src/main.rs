//! The fulfillment binary (`fulfillment`, or `fulfillment healthcheck`).

use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    quote_pipeline::service::service_main("fulfillment", || {
        Ok(Arc::new(fulfillment::Fulfillment::from_env()?))
    })
    .await
}
