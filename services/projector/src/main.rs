//! The projector binary (`projector`, or `projector healthcheck`).

use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    let projector = if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        None
    } else {
        match projector::Projector::from_env().await {
            Ok(projector) => Some(projector),
            Err(err) => {
                eprintln!("projector: configuration error: {err:#}");
                return ExitCode::from(2);
            }
        }
    };
    quote_pipeline::service::service_main("projector", move || {
        projector
            .map(|p| Arc::new(p) as Arc<dyn quote_pipeline::EventHandler>)
            .ok_or_else(|| anyhow::anyhow!("no projector"))
    })
    .await
}
