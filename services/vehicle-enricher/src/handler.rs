//! The vehicle enricher's event handler.

use async_trait::async_trait;
use event_store::EventEnvelope;
use quote_domain::enrichment::{DecodeSource, Enrichment, VehicleDecoded};
use quote_domain::quote::QuoteEvent;
use quote_domain::vin_decode::fallback_enrichment;
use quote_pipeline::{quote, EventHandler, HandlerContext, HandlerError};

use crate::vpic::{VpicClient, VpicError};
use quote_runtime::error_chain::chain;

/// Decodes VINs of requested quotes.
#[derive(Debug, Clone)]
pub struct VehicleEnricher {
    /// `None`: offline, every VIN is decoded from the VIN itself.
    vpic: Option<VpicClient>,
}

impl VehicleEnricher {
    /// An enricher using `vpic`.
    pub fn new(vpic: VpicClient) -> Self {
        Self { vpic: Some(vpic) }
    }

    /// An enricher that never calls vPIC (embedded mode, no network): every VIN is decoded
    /// from the VIN itself and recorded as `vin_fallback`.
    pub fn offline() -> Self {
        Self { vpic: None }
    }

    /// What is known about one VIN: vPIC's decode, or the offline fallback.
    async fn enrich(&self, vin: &quote_domain::Vin) -> Enrichment {
        let Some(vpic) = &self.vpic else {
            return fallback_enrichment(vin);
        };
        match vpic.decode(vin.as_str()).await {
            Ok(decode) => Enrichment::VehicleDecoded(VehicleDecoded {
                vin: vin.clone(),
                make: decode.make,
                model: decode.model,
                model_year: decode.model_year,
                body_class: decode.body_class,
                vehicle_type: decode.vehicle_type,
                source: DecodeSource::Vpic,
            }),
            Err(err) => {
                let why = match &err {
                    VpicError::Unknown(_) => "vPIC does not know the VIN",
                    VpicError::Unavailable(_) => "vPIC is unavailable",
                };
                tracing::warn!(vin = %vin, error = %chain(&err), "{why}; decoding from the VIN itself");
                fallback_enrichment(vin)
            }
        }
    }
}

#[async_trait]
impl EventHandler for VehicleEnricher {
    fn name(&self) -> &'static str {
        "vehicle-enricher"
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
        let mut facts = Vec::with_capacity(requested.request.vehicles.len());
        for vehicle in &requested.request.vehicles {
            facts.push((
                format!("vehicle/{}", vehicle.vin),
                self.enrich(&vehicle.vin).await,
            ));
        }
        quote::record_enrichments(context, event, &facts).await?;
        Ok(())
    }

    async fn ready(&self) -> Result<(), HandlerError> {
        // vPIC being down is not unreadiness: the fallback covers it.
        Ok(())
    }
}
