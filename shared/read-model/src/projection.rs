//! How a quote's state becomes its summary (used by the projector and by the API when the
//! read model has not caught up yet).

use quote_domain::enrichment::VehicleOutcome;
use quote_domain::quote::Quote;
use time::OffsetDateTime;

use crate::model::{QuoteSummary, VehicleSummary};

/// The summary of `quote`, whose last applied event was recorded at `updated_at`.
pub fn summarize(quote: &Quote, updated_at: OffsetDateTime) -> QuoteSummary {
    let vehicles = quote
        .request
        .vehicles
        .iter()
        .enumerate()
        .map(|(i, vehicle)| {
            let (make, model, model_year) = match quote.vehicles.get(i) {
                Some(VehicleOutcome::Decoded {
                    make,
                    model,
                    model_year,
                    ..
                }) => (
                    Some(make.clone()).filter(|m| !m.is_empty()),
                    Some(model.clone()).filter(|m| !m.is_empty()),
                    *model_year,
                ),
                _ => (None, None, None),
            };
            VehicleSummary {
                vin: vehicle.vin.to_string(),
                make,
                model,
                model_year,
            }
        })
        .collect();
    QuoteSummary {
        customer_id: quote.customer_id.as_str().to_owned(),
        quote_id: quote.quote_id.to_string(),
        status: quote.status.as_str().to_owned(),
        version: quote.version,
        annual_premium_cents: quote.annual_premium.map(|m| m.cents()),
        valid_until: quote.valid_until,
        reasons: quote.reasons.clone(),
        vehicles,
        drivers: quote.request.drivers.len(),
        rating_table_version: quote.rating_table_version.clone(),
        requested_at: quote.requested_at,
        updated_at,
    }
}
