//! Valid, varied quote requests for the load generator: the JSON bodies of `POST /v1/quotes`
//! (shape: `quote_domain::QuoteRequestInput`) and the `QuoteRequested` event the service makes
//! of them, for the baselines.
//!
//! Every generated request passes `QuoteRequest::parse` on the day it is generated for: VINs
//! carry a correct check digit ([`Vin::compute_check_digit`]) and are distinct within a
//! request, licences are distinct, drivers are 20 to 75 and were licensed between 16 and 19,
//! notification flags only ask for channels the contact has. Customer ids, vehicle and driver
//! counts, coverage and contact details vary from request to request.

use quote_domain::{
    request_quote, QuoteId, QuoteRequest, QuoteRequestInput, RawContact, RawCoverage, RawDriver,
    RawNotify, RawVehicle, RequestQuote, UsState, Vin,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use time::{Date, Duration, OffsetDateTime};

/// Distinct customer ids the generator draws from.
pub const CUSTOMER_POOL: u32 = 100_000;

/// Characters a VIN may contain (no I, O, Q).
const VIN_CHARS: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789";
/// Manufacturer prefixes of real-looking VINs.
const WMIS: [&str; 8] = ["1HG", "1FT", "2T1", "3VW", "5YJ", "JHM", "KMH", "WBA"];
/// Model-year codes (positions 10).
const YEAR_CODES: &[u8] = b"ABCDEFGHJKLMNPRST123456789";
const FIRST_NAMES: [&str; 10] = [
    "Ana",
    "Bo",
    "Chen",
    "Dara",
    "Eli",
    "Fatima",
    "Gus",
    "Hana",
    "José María",
    "Kim",
];
const LAST_NAMES: [&str; 8] = [
    "Diaz", "Okafor", "Nguyen", "Smith", "Müller", "Kowalski", "Haddad", "O'Brien",
];
const LIMITS: [&str; 4] = ["25/50/25", "50/100/50", "100/300/100", "250/500/250"];
const DEDUCTIBLES: [i64; 4] = [250, 500, 1000, 2000];
const USES: [&str; 3] = ["commute", "pleasure", "business"];

/// Why a generated request could not be turned into a body or an event.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The request did not validate (a generator bug).
    #[error("generated request is invalid: {0}")]
    Invalid(#[from] quote_domain::ValidationErrors),
    /// JSON encoding failed.
    #[error("encoding failed: {0}")]
    Encode(#[from] serde_json::Error),
    /// The event payload could not be encoded.
    #[error("event encoding failed: {0}")]
    Event(#[from] quote_domain::EventEncodeError),
}

/// A deterministic generator of quote requests (one per load-generating task).
#[derive(Debug, Clone)]
pub struct PayloadGenerator {
    rng: StdRng,
    serial: u64,
    states: Vec<UsState>,
}

impl PayloadGenerator {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            serial: 0,
            states: UsState::all().collect(),
        }
    }

    /// The next request, valid on `today`.
    pub fn next_input(&mut self, today: Date) -> QuoteRequestInput {
        self.serial += 1;
        let rng = &mut self.rng;
        let customer = rng.gen_range(0..CUSTOMER_POOL);
        let email = rng
            .gen_bool(0.9)
            .then(|| format!("customer{customer}@example.com"));
        let phone = (email.is_none() || rng.gen_bool(0.5))
            .then(|| format!("+1{}555{:04}", rng.gen_range(201..990), customer % 10_000));
        let notify = rng.gen_bool(0.7).then(|| RawNotify {
            email: email.is_some() && rng.gen_bool(0.8),
            sms: phone.is_some() && rng.gen_bool(0.3),
            max_premium: rng
                .gen_bool(0.5)
                .then(|| f64::from(rng.gen_range(500u32..5000))),
        });

        let vehicles = (0..rng.gen_range(1..=3usize))
            .map(|i| RawVehicle {
                vin: vin(rng, self.serial, i),
                annual_mileage: rng.gen_range(0..=40_000),
                garaging_zip: format!("{:05}", rng.gen_range(1000..99_999)),
                vehicle_use: (*choose(rng, &USES)).to_owned(),
            })
            .collect();
        let states = &self.states;
        let drivers = (0..rng.gen_range(1..=3usize))
            .map(|i| {
                let age_days = rng.gen_range(20 * 366..75 * 365);
                let born = today - Duration::days(age_days);
                // Licensed between 16 and 19, so never before 14 nor after today (age ≥ 20).
                let licensed = born + Duration::days(rng.gen_range(16 * 366..19 * 365));
                RawDriver {
                    first_name: (*choose(rng, &FIRST_NAMES)).to_owned(),
                    last_name: (*choose(rng, &LAST_NAMES)).to_owned(),
                    date_of_birth: born.to_string(),
                    // The index makes licences distinct within the request.
                    license_number: format!("D{i}{:08}", rng.gen_range(0..100_000_000u32)),
                    license_state: states
                        .choose(rng)
                        .map(|s| s.as_str())
                        .unwrap_or("VA")
                        .to_owned(),
                    first_licensed: licensed.to_string(),
                }
            })
            .collect();
        QuoteRequestInput {
            customer_id: format!("bench-cust-{customer}"),
            contact: RawContact { email, phone },
            vehicles,
            drivers,
            coverage: RawCoverage {
                liability_limit: (*choose(rng, &LIMITS)).to_owned(),
                collision_deductible: *choose(rng, &DEDUCTIBLES),
                comprehensive_deductible: *choose(rng, &DEDUCTIBLES),
            },
            notify,
        }
    }

    /// The next request as a JSON body, valid today (UTC, the service's clock).
    pub fn next_body(&mut self) -> Result<Vec<u8>, PayloadError> {
        let input = self.next_input(OffsetDateTime::now_utc().date());
        Ok(serde_json::to_vec(&input)?)
    }
}

/// The `QuoteRequested` event the service appends for `input` at `now`.
#[derive(Debug, Clone)]
pub struct RequestedEvent {
    /// The new quote.
    pub quote_id: QuoteId,
    /// The customer.
    pub customer_id: String,
    /// `QuoteRequested`.
    pub event_type: String,
    /// Its schema version.
    pub schema_version: u32,
    /// The payload.
    pub data: serde_json::Value,
}

/// Validates `input` and builds the event the service would append for it.
pub fn requested_event(
    input: &QuoteRequestInput,
    now: OffsetDateTime,
) -> Result<RequestedEvent, PayloadError> {
    let request = QuoteRequest::parse(input, now.date())?;
    let customer_id = request.customer_id.as_str().to_owned();
    let quote_id = QuoteId::new_random();
    let event = request_quote(RequestQuote {
        quote_id,
        request,
        requested_at: now,
    });
    Ok(RequestedEvent {
        quote_id,
        customer_id,
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        data: event.to_data()?,
    })
}

fn choose<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

/// A valid VIN, distinct for each (`serial`, `index`) pair of one generator.
fn vin(rng: &mut StdRng, serial: u64, index: usize) -> String {
    let mut chars: Vec<u8> = Vec::with_capacity(17);
    chars.extend_from_slice(choose(rng, &WMIS).as_bytes());
    for _ in 0..5 {
        chars.push(*choose(rng, VIN_CHARS));
    }
    chars.push(b'0'); // Check digit placeholder (weight 0).
    chars.push(*choose(rng, YEAR_CODES));
    chars.push(*choose(rng, VIN_CHARS)); // Plant.
                                         // Serial number: the index digit keeps the request's VINs apart.
    let tail = format!(
        "{index}{:05}",
        (serial.wrapping_mul(7919) + index as u64) % 100_000
    );
    chars.extend_from_slice(tail.as_bytes());
    let mut vin: String = chars.iter().map(|&b| char::from(b)).collect();
    if let Some(check) = Vin::compute_check_digit(&vin) {
        vin.replace_range(8..9, &check.to_string());
    }
    vin
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use time::macros::date;

    #[test]
    fn generated_bodies_pass_validation() {
        for seed in 0..4 {
            let mut generator = PayloadGenerator::new(seed);
            for _ in 0..500 {
                let body = generator.next_body().unwrap();
                let input: QuoteRequestInput = serde_json::from_slice(&body).unwrap();
                let today = OffsetDateTime::now_utc().date();
                if let Err(err) = QuoteRequest::parse(&input, today) {
                    panic!("{err}\n{}", String::from_utf8_lossy(&body));
                }
            }
        }
    }

    #[test]
    fn requests_are_valid_on_fixed_days_and_vary() {
        let mut generator = PayloadGenerator::new(42);
        let mut customers = HashSet::new();
        let mut vehicle_counts = HashSet::new();
        for today in [
            date!(2024 - 02 - 29),
            date!(2026 - 11 - 27),
            date!(2030 - 01 - 01),
        ] {
            for _ in 0..300 {
                let input = generator.next_input(today);
                QuoteRequest::parse(&input, today).unwrap();
                customers.insert(input.customer_id.clone());
                vehicle_counts.insert(input.vehicles.len());
            }
        }
        assert!(customers.len() > 800, "{}", customers.len());
        assert_eq!(vehicle_counts.len(), 3);
    }

    #[test]
    fn the_event_is_the_one_the_service_appends() {
        let now = OffsetDateTime::now_utc();
        let input = PayloadGenerator::new(1).next_input(now.date());
        let event = requested_event(&input, now).unwrap();
        assert_eq!(event.event_type, "QuoteRequested");
        assert_eq!(event.customer_id, input.customer_id);
        assert_eq!(event.data["quote_id"], event.quote_id.to_string());
    }
}
