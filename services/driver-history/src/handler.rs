//! The driver-history event handler.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_store::EventEnvelope;
use quote_domain::enrichment::{DriverHistoryUnavailable, Enrichment};
use quote_domain::quote::QuoteEvent;
use quote_pipeline::{quote, EventHandler, HandlerContext, HandlerError};

use crate::provider::{DriverRecordProvider, HttpProvider, HttpProviderConfig, SimulatedProvider};

/// Retrieves driving histories of requested quotes.
#[derive(Debug, Clone)]
pub struct DriverHistory {
    provider: Arc<dyn DriverRecordProvider>,
}

impl DriverHistory {
    /// A handler asking `provider`.
    pub fn new(provider: Arc<dyn DriverRecordProvider>) -> Self {
        Self { provider }
    }

    /// Configured from `DRIVER_HISTORY_PROVIDER` (required: `http` or `simulated`) and, for
    /// `http`, `DRIVER_HISTORY_URL`, `DRIVER_HISTORY_TOKEN`, `DRIVER_HISTORY_TIMEOUT_MS`,
    /// `DRIVER_HISTORY_ATTEMPTS`.
    pub fn from_env() -> anyhow::Result<Self> {
        use quote_runtime::env::{optional, parse_or};
        let provider: Arc<dyn DriverRecordProvider> = match optional("DRIVER_HISTORY_PROVIDER").as_deref() {
            Some("simulated") => {
                tracing::warn!("DRIVER_HISTORY_PROVIDER=simulated: driving histories are SIMULATED, not real records");
                Arc::new(SimulatedProvider)
            }
            Some("http") => {
                let base_url = optional("DRIVER_HISTORY_URL")
                    .ok_or_else(|| anyhow::anyhow!("DRIVER_HISTORY_PROVIDER=http needs DRIVER_HISTORY_URL"))?;
                Arc::new(HttpProvider::new(HttpProviderConfig {
                    base_url,
                    token: optional("DRIVER_HISTORY_TOKEN"),
                    timeout: Duration::from_millis(parse_or("DRIVER_HISTORY_TIMEOUT_MS", 3000)?),
                    attempts: parse_or("DRIVER_HISTORY_ATTEMPTS", 3)?,
                    breaker_threshold: 5,
                    breaker_cool_down: Duration::from_secs(30),
                })?)
            }
            Some(other) => anyhow::bail!("DRIVER_HISTORY_PROVIDER={other:?}: expected `http` or `simulated`"),
            None => anyhow::bail!(
                "DRIVER_HISTORY_PROVIDER is not set: choose `http` (with DRIVER_HISTORY_URL) or `simulated`"
            ),
        };
        Ok(Self::new(provider))
    }
}

#[async_trait]
impl EventHandler for DriverHistory {
    fn name(&self) -> &'static str {
        "driver-history"
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type == "QuoteRequested"
    }

    async fn handle(
        &self,
        event: &EventEnvelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError> {
        let QuoteEvent::QuoteRequested(requested) = quote::decode(event)? else {
            return Ok(());
        };
        let mut facts = Vec::with_capacity(requested.request.drivers.len());
        for driver in &requested.request.drivers {
            let fact = match self
                .provider
                .history(driver.license_state, &driver.license_number)
                .await
            {
                Ok(history) => Enrichment::DriverHistoryRetrieved(history),
                Err(err) => {
                    tracing::warn!(license_state = %driver.license_state, error = %err, "driving history unavailable");
                    Enrichment::DriverHistoryUnavailable(DriverHistoryUnavailable {
                        license_state: driver.license_state,
                        license_number: driver.license_number.clone(),
                        reason: err.to_string(),
                    })
                }
            };
            let key = format!(
                "driver/{}/{}",
                driver.license_state.as_str(),
                driver.license_number.as_str()
            );
            facts.push((key, fact));
        }
        quote::record_enrichments(context, event, &facts).await?;
        Ok(())
    }
}
