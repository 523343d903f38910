//! The decision itself, pure: from the tables, the quote's state and the instant of the cause
//! event, the outcome event to append (if any).
//!
//! - Not [ready for rating](Quote::ready_for_rating) (an item still pending, or the quote
//!   already has an outcome): nothing.
//! - A vehicle that could not be decoded or a driver whose history is unavailable: refer, with
//!   [`Quote::missing_data`] as the reasons ([`crate::rating_input`]).
//! - Tables that are not yet effective on the rating date: refer, naming them (rating with
//!   them automatically would be wrong, and a person can still quote).
//! - Otherwise rate: a premium gives `QuoteIssued` with the premium, its breakdown by coverage,
//!   every factor applied, the tables' version and `valid_until` = the instant + 30 days; a
//!   decline gives `QuoteDeclined` with the rating's reasons.
//!
//! The rating date is the UTC date of the instant, and the instant is the cause event's
//! `recorded_at`: a redelivered event decides exactly the same thing.

use quote_domain::quote::{decide_outcome, CommandError, Outcome};
use quote_domain::{CoverageAmount, Quote, QuoteEvent, RatingFactor};
use quote_rating::{rate, Premium, RatingOutcome, RatingTables};
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::rating_input::rating_input;

/// How long an issued offer stays valid.
pub const OFFER_VALIDITY: Duration = Duration::days(30);

/// Why no outcome could be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// The domain refused the outcome (e.g. an expiry not after the request time).
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The instant is too close to the end of time to add the offer validity.
    #[error("cannot compute the offer expiry from {0}")]
    Expiry(OffsetDateTime),
}

/// The outcome event for `quote`, decided at `at` with `tables`; `None` when there is nothing
/// to decide (not ready, or the same outcome is already recorded).
pub fn decide(
    tables: &RatingTables,
    quote: &Quote,
    at: OffsetDateTime,
) -> Result<Option<QuoteEvent>, DecideError> {
    if !quote.ready_for_rating() {
        return Ok(None);
    }
    let at = at.checked_to_offset(UtcOffset::UTC).unwrap_or(at);
    let today = at.date();
    let input = match rating_input(quote, today) {
        Ok(input) => input,
        Err(referral) => {
            return Ok(decide_outcome(
                quote,
                Outcome::Refer {
                    reasons: referral.reasons,
                },
            )?)
        }
    };
    if !tables.is_effective_on(today) {
        let reason = format!(
            "the rating tables {} take effect on {}, after the rating date {today}",
            tables.version(),
            tables.effective_date()
        );
        return Ok(decide_outcome(
            quote,
            Outcome::Refer {
                reasons: vec![reason],
            },
        )?);
    }
    match rate(tables, &input) {
        RatingOutcome::Quoted(premium) => issue(quote, premium, at),
        RatingOutcome::Declined { reasons } => {
            Ok(decide_outcome(quote, Outcome::Decline { reasons })?)
        }
    }
}

fn issue(
    quote: &Quote,
    premium: Premium,
    at: OffsetDateTime,
) -> Result<Option<QuoteEvent>, DecideError> {
    let valid_until = at
        .checked_add(OFFER_VALIDITY)
        .ok_or(DecideError::Expiry(at))?;
    let Premium {
        annual,
        breakdown_by_coverage,
        factors,
        table_version,
    } = premium;
    let event = decide_outcome(
        quote,
        Outcome::Issue {
            annual_premium: annual,
            valid_until,
            rating_table_version: table_version,
        },
    )?;
    Ok(event.map(|event| match event {
        QuoteEvent::QuoteIssued(issued) => QuoteEvent::QuoteIssued(
            issued.with_breakdown(
                breakdown_by_coverage
                    .into_iter()
                    .map(|(coverage, amount)| CoverageAmount::new(coverage, amount))
                    .collect(),
                factors
                    .into_iter()
                    .map(|f| RatingFactor {
                        name: f.name,
                        applies_to: f.applies_to,
                        detail: f.detail,
                        value: f.value,
                    })
                    .collect(),
            ),
        ),
        other => other,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use quote_domain::quote::{request_quote, RequestQuote};
    use quote_domain::{
        DecodeSource, DriverHistoryRetrieved, HistorySource, LicenseStatus, QuoteId, QuoteRequest,
        QuoteRequestInput, QuoteStatus, VehicleDecoded, Vin,
    };
    use time::macros::{date, datetime};

    const AT: OffsetDateTime = datetime!(2026-11-27 17:00 UTC);

    fn events() -> Vec<QuoteEvent> {
        let input: QuoteRequestInput = serde_json::from_value(serde_json::json!({
            "customer_id": "cust-42",
            "contact": {"email": "ana@example.com"},
            "vehicles": [{"vin": "1HGCM82633A004352", "annual_mileage": 12000,
                          "garaging_zip": "23220", "use": "commute"}],
            "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14",
                         "license_number": "T12345678", "license_state": "VA",
                         "first_licensed": "2006-05-01"}],
            "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500,
                         "comprehensive_deductible": 500}
        }))
        .unwrap();
        let request = QuoteRequest::parse(&input, date!(2026 - 11 - 27)).unwrap();
        vec![
            request_quote(RequestQuote {
                quote_id: QuoteId::from_uuid(uuid::Uuid::nil()),
                request,
                requested_at: datetime!(2026-11-27 14:30 UTC),
            }),
            QuoteEvent::VehicleDecoded(VehicleDecoded {
                vin: Vin::parse("1HGCM82633A004352").unwrap(),
                make: "HONDA".into(),
                model: "Accord".into(),
                model_year: Some(2003),
                body_class: Some("Sedan/Saloon".into()),
                vehicle_type: Some("PASSENGER CAR".into()),
                source: DecodeSource::Vpic,
            }),
            QuoteEvent::DriverHistoryRetrieved(DriverHistoryRetrieved {
                license_state: "VA".parse().unwrap(),
                license_number: "T12345678".parse().unwrap(),
                license_status: LicenseStatus::Valid,
                accidents: vec![],
                violations: vec![],
                source: HistorySource::Provider,
            }),
        ]
    }

    fn fold(events: &[QuoteEvent]) -> Quote {
        Quote::fold(events.iter().enumerate().map(|(i, e)| (i as u64 + 1, e)))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn issues_with_the_breakdown_and_is_idempotent() {
        let tables = RatingTables::default_tables();
        let mut quote = fold(&events());
        let event = decide(tables, &quote, AT).unwrap().unwrap();
        let QuoteEvent::QuoteIssued(issued) = &event else {
            panic!("not issued: {event:?}");
        };
        assert_eq!(issued.valid_until, datetime!(2026-12-27 17:00 UTC));
        assert_eq!(issued.rating_table_version, tables.version());
        let total = issued
            .breakdown
            .iter()
            .fold(0, |sum, line| sum + line.amount.cents());
        assert_eq!(total, issued.annual_premium.cents());
        assert!(!issued.factors.is_empty());
        // Same instant, same decision.
        assert_eq!(decide(tables, &quote, AT).unwrap(), Some(event.clone()));
        quote.apply(4, &event).unwrap();
        assert_eq!(quote.status, QuoteStatus::Quoted);
        assert_eq!(decide(tables, &quote, AT).unwrap(), None);
    }

    #[test]
    fn not_ready_is_nothing() {
        let events = events();
        assert_eq!(
            decide(RatingTables::default_tables(), &fold(&events[..2]), AT).unwrap(),
            None
        );
    }

    #[test]
    fn tables_not_yet_effective_refer() {
        let json = quote_rating::DEFAULT_TABLES_JSON
            .replacen("\"version\": \"2026-01\"", "\"version\": \"2027-01\"", 1)
            .replacen(
                "\"effective_date\": \"2026-01-01\"",
                "\"effective_date\": \"2027-01-01\"",
                1,
            );
        let tables = RatingTables::from_json(&json).unwrap();
        assert_eq!(tables.version(), "2027-01");
        let event = decide(&tables, &fold(&events()), AT).unwrap().unwrap();
        let QuoteEvent::QuoteReferred(referred) = event else {
            panic!("not referred: {event:?}");
        };
        assert_eq!(
            referred.reasons,
            ["the rating tables 2027-01 take effect on 2027-01-01, after the rating date 2026-11-27"]
        );
    }

    #[test]
    fn an_instant_at_the_end_of_time_is_an_error() {
        let end = datetime!(9999-12-31 23:59 UTC);
        assert!(matches!(
            decide(RatingTables::default_tables(), &fold(&events()), end),
            Err(DecideError::Expiry(_))
        ));
    }
}
