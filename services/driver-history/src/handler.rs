//! The driver-history event handler.

use std::sync::Arc;

use async_trait::async_trait;
use event_store::EventEnvelope;
use quote_domain::enrichment::{DriverHistoryUnavailable, Enrichment};
use quote_domain::quote::QuoteEvent;
use quote_pipeline::{quote, EventHandler, HandlerContext, HandlerError};

use crate::provider::DriverRecordProvider;
use quote_runtime::error_chain::chain;

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
                    tracing::warn!(license_state = %driver.license_state, error = %chain(&err), "driving history unavailable");
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
