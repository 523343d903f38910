//! Quote-domain fixtures shared by the services' tests: a valid quote request and its
//! `QuoteRequested`.

use quote_domain::quote::{request_quote, QuoteEvent, QuoteId, RequestQuote};
use quote_domain::request::{QuoteRequest, QuoteRequestInput};

/// The day requests are validated as of (drivers' ages, licence dates).
pub const TODAY: time::Date = time::macros::date!(2026 - 11 - 27);

/// The input (JSON) of a valid request by customer `cust-42` (contact `ana@example.com`; one
/// driver, Ana Diaz, licence VA T12345678; coverage 100/300/100 with 500 deductibles) for the
/// vehicles `vins` (12,000 miles a year, garaged in 23220, commute). Tests change what they
/// need in it before [`parse_request`].
pub fn request_input(vins: &[&str]) -> serde_json::Value {
    let vehicles: Vec<serde_json::Value> = vins
        .iter()
        .map(|vin| serde_json::json!({"vin": vin, "annual_mileage": 12000, "garaging_zip": "23220", "use": "commute"}))
        .collect();
    serde_json::json!({
        "customer_id": "cust-42",
        "contact": {"email": "ana@example.com"},
        "vehicles": vehicles,
        "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14",
                     "license_number": "T12345678", "license_state": "VA", "first_licensed": "2006-05-01"}],
        "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500, "comprehensive_deductible": 500}
    })
}

/// `input` validated as of [`TODAY`]; panics unless it is a valid request.
pub fn parse_request(input: serde_json::Value) -> QuoteRequest {
    let input: QuoteRequestInput = serde_json::from_value(input).expect("input");
    QuoteRequest::parse(&input, TODAY).expect("valid request")
}

/// The valid request of [`request_input`] for the vehicles `vins`.
pub fn quote_request(vins: &[&str]) -> QuoteRequest {
    parse_request(request_input(vins))
}

/// A new quote's id and its `QuoteRequested` for `request`, requested now.
pub fn quote_requested(request: QuoteRequest) -> (QuoteId, QuoteEvent) {
    let quote_id = QuoteId::new_random();
    let event = request_quote(RequestQuote {
        quote_id,
        request,
        requested_at: time::OffsetDateTime::now_utc(),
    });
    (quote_id, event)
}
