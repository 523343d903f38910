//! The adapter from a quote's state to the rating input: pure, no I/O, no clock.
//!
//! Each requested vehicle becomes a [`RatedVehicle`] with what the request declared (annual
//! mileage, use, garaging ZIP) and what its `VehicleDecoded` fact says (model year, body class,
//! vehicle type). A decode from the VIN alone (`source: vin_fallback`) has an empty model and
//! maybe no model year: that is fine, the tables rate an unknown model year and an
//! unrecognised body class with their `unknown` factors. Blank decoded strings are passed as
//! unknown (`None`).
//!
//! Each requested driver becomes a [`RatedDriver`]: age and years licensed in full years on
//! `today`, the accidents split into at-fault and not-at-fault dates, the violations by kind
//! and date, and the licence status, all from its `DriverHistoryRetrieved` fact.
//!
//! When a vehicle could not be decoded or a driver's history is unavailable, the quote cannot
//! be rated automatically: the adapter returns a [`Referral`] whose reasons are
//! [`Quote::missing_data`], for a person to look at.

use quote_domain::{Accident, DriverOutcome, Quote, VehicleOutcome};
use quote_rating::{RatedDriver, RatedVehicle, RatedViolation, RatingInput};
use time::Date;

/// The quote must go to an underwriter: some data is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the quote needs an underwriter: {}", .reasons.join("; "))]
pub struct Referral {
    /// Why, as human sentences naming the vehicle or driver (at least one).
    pub reasons: Vec<String>,
}

/// The rating input of `quote` on `today`, or the referral when data is missing.
///
/// Vehicles and drivers are in request order. A vehicle that failed to decode or a driver
/// whose history is unavailable gives a [`Referral`] with [`Quote::missing_data`] as its
/// reasons. An item still waiting for its fact (the quote is not
/// [ready for rating](Quote::ready_for_rating)) is missing too and named as such, so a
/// referral always has at least one reason; the handler never rates such a quote.
pub fn rating_input(quote: &Quote, today: Date) -> Result<RatingInput, Referral> {
    let mut vehicles = Vec::with_capacity(quote.request.vehicles.len());
    let mut drivers = Vec::with_capacity(quote.request.drivers.len());
    let mut incomplete = false;
    let mut pending = Vec::new();

    for (i, vehicle) in quote.request.vehicles.iter().enumerate() {
        match quote.vehicles.get(i) {
            Some(VehicleOutcome::Decoded {
                model_year,
                body_class,
                vehicle_type,
                ..
            }) => vehicles.push(RatedVehicle {
                model_year: *model_year,
                body_class: known(body_class.as_deref()),
                vehicle_type: known(vehicle_type.as_deref()),
                annual_mileage: vehicle.annual_mileage,
                use_: vehicle.vehicle_use,
                garaging_zip: vehicle.garaging_zip.clone(),
            }),
            Some(VehicleOutcome::Failed { .. }) => incomplete = true,
            Some(VehicleOutcome::Pending) | None => {
                incomplete = true;
                pending.push(format!("vehicle {}: not decoded yet", vehicle.vin));
            }
        }
    }

    for (i, driver) in quote.request.drivers.iter().enumerate() {
        match quote.drivers.get(i) {
            Some(DriverOutcome::Retrieved {
                license_status,
                accidents,
                violations,
                ..
            }) => {
                let (at_fault, not_at_fault): (Vec<&Accident>, Vec<&Accident>) =
                    accidents.iter().partition(|a| a.at_fault);
                drivers.push(RatedDriver {
                    age: driver.date_of_birth.age_on(today),
                    years_licensed: driver.first_licensed.years_licensed_on(today),
                    at_fault_accidents: at_fault.into_iter().map(|a| a.date).collect(),
                    not_at_fault_accidents: not_at_fault.into_iter().map(|a| a.date).collect(),
                    violations: violations
                        .iter()
                        .map(|v| RatedViolation::new(v.kind.as_str(), v.date))
                        .collect(),
                    license_status: license_status.as_str().to_owned(),
                });
            }
            Some(DriverOutcome::Unavailable { .. }) => incomplete = true,
            Some(DriverOutcome::Pending) | None => {
                incomplete = true;
                pending.push(format!(
                    "driver {} {}: driving history not retrieved yet",
                    driver.license_state, driver.license_number
                ));
            }
        }
    }

    if incomplete {
        let mut reasons = quote.missing_data();
        reasons.extend(pending);
        return Err(Referral { reasons });
    }
    Ok(RatingInput {
        today,
        coverage: quote.request.coverage,
        vehicles,
        drivers,
    })
}

/// The decoded string, or `None` when absent or blank.
fn known(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use quote_domain::quote::{request_quote, RequestQuote};
    use quote_domain::{
        DecodeSource, DriverHistoryRetrieved, DriverHistoryUnavailable, HistorySource,
        LicenseStatus, QuoteEvent, QuoteId, QuoteRequest, QuoteRequestInput, VehicleDecodeFailed,
        VehicleDecoded, VehicleUse, Vin, Violation, ViolationKind,
    };
    use time::macros::{date, datetime};

    const HONDA: &str = "1HGCM82633A004352";
    const FORD: &str = "1FAFP40492F172825";

    fn request() -> QuoteRequest {
        let input: QuoteRequestInput = serde_json::from_value(serde_json::json!({
            "customer_id": "cust-42",
            "contact": {"email": "ana@example.com"},
            "vehicles": [
                {"vin": HONDA, "annual_mileage": 12000, "garaging_zip": "23220", "use": "commute"},
                {"vin": FORD, "annual_mileage": 4000, "garaging_zip": "22030", "use": "pleasure"}],
            "drivers": [
                {"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14",
                 "license_number": "T12345678", "license_state": "VA", "first_licensed": "2006-05-01"},
                {"first_name": "Bo", "last_name": "Diaz", "date_of_birth": "2008-12-01",
                 "license_number": "B7654321", "license_state": "MD", "first_licensed": "2025-01-02"}],
            "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500,
                         "comprehensive_deductible": 1000}
        }))
        .unwrap();
        QuoteRequest::parse(&input, date!(2026 - 11 - 27)).unwrap()
    }

    fn vin(s: &str) -> Vin {
        Vin::parse(s).unwrap()
    }

    fn requested() -> QuoteEvent {
        request_quote(RequestQuote {
            quote_id: QuoteId::from_uuid(uuid::Uuid::nil()),
            request: request(),
            requested_at: datetime!(2026-11-27 14:30 UTC),
        })
    }

    fn honda_vpic() -> QuoteEvent {
        QuoteEvent::VehicleDecoded(VehicleDecoded {
            vin: vin(HONDA),
            make: "HONDA".into(),
            model: "Accord".into(),
            model_year: Some(2003),
            body_class: Some("Sedan/Saloon".into()),
            vehicle_type: Some("PASSENGER CAR".into()),
            source: DecodeSource::Vpic,
        })
    }

    fn ford_fallback() -> QuoteEvent {
        QuoteEvent::VehicleDecoded(VehicleDecoded {
            vin: vin(FORD),
            make: "Ford".into(),
            model: String::new(),
            model_year: None,
            body_class: Some("  ".into()),
            vehicle_type: None,
            source: DecodeSource::VinFallback,
        })
    }

    fn ana_history() -> QuoteEvent {
        QuoteEvent::DriverHistoryRetrieved(DriverHistoryRetrieved {
            license_state: "VA".parse().unwrap(),
            license_number: "T12345678".parse().unwrap(),
            license_status: LicenseStatus::Valid,
            accidents: vec![
                Accident {
                    date: date!(2025 - 02 - 10),
                    at_fault: true,
                },
                Accident {
                    date: date!(2023 - 06 - 01),
                    at_fault: false,
                },
                Accident {
                    date: date!(2019 - 01 - 05),
                    at_fault: true,
                },
            ],
            violations: vec![Violation {
                kind: ViolationKind::DistractedDriving,
                date: date!(2024 - 07 - 01),
            }],
            source: HistorySource::Provider,
        })
    }

    fn bo_history() -> QuoteEvent {
        QuoteEvent::DriverHistoryRetrieved(DriverHistoryRetrieved {
            license_state: "MD".parse().unwrap(),
            license_number: "B7654321".parse().unwrap(),
            license_status: LicenseStatus::Suspended,
            accidents: vec![],
            violations: vec![],
            source: HistorySource::Simulated,
        })
    }

    fn fold(events: &[QuoteEvent]) -> Quote {
        Quote::fold(events.iter().enumerate().map(|(i, e)| (i as u64 + 1, e)))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_complete_quote_maps_every_fact() {
        let quote = fold(&[
            requested(),
            ford_fallback(),
            ana_history(),
            honda_vpic(),
            bo_history(),
        ]);
        assert!(quote.ready_for_rating());
        let today = date!(2026 - 11 - 27);
        let input = rating_input(&quote, today).unwrap();
        assert_eq!(input.today, today);
        assert_eq!(input.coverage, quote.request.coverage);
        assert_eq!(
            input.vehicles,
            [
                RatedVehicle {
                    model_year: Some(2003),
                    body_class: Some("Sedan/Saloon".into()),
                    vehicle_type: Some("PASSENGER CAR".into()),
                    annual_mileage: 12_000,
                    use_: VehicleUse::Commute,
                    garaging_zip: "23220".parse().unwrap(),
                },
                // The VIN-only decode: no year, blank body class passed as unknown.
                RatedVehicle {
                    model_year: None,
                    body_class: None,
                    vehicle_type: None,
                    annual_mileage: 4_000,
                    use_: VehicleUse::Pleasure,
                    garaging_zip: "22030".parse().unwrap(),
                },
            ]
        );
        assert_eq!(
            input.drivers[0],
            RatedDriver {
                age: 38,
                years_licensed: 20,
                at_fault_accidents: vec![date!(2025 - 02 - 10), date!(2019 - 01 - 05)],
                not_at_fault_accidents: vec![date!(2023 - 06 - 01)],
                violations: vec![RatedViolation::new(
                    "distracted_driving",
                    date!(2024 - 07 - 01)
                )],
                license_status: "valid".into(),
            }
        );
        // Ages are counted on `today`: Bo turns 18 on 1 December.
        assert_eq!(
            (input.drivers[1].age, input.drivers[1].years_licensed),
            (17, 1)
        );
        assert_eq!(input.drivers[1].license_status, "suspended");
        let later = rating_input(&quote, date!(2026 - 12 - 01)).unwrap();
        assert_eq!(later.drivers[1].age, 18);
    }

    #[test]
    fn the_input_rates_with_the_default_tables() {
        let quote = fold(&[
            requested(),
            honda_vpic(),
            ford_fallback(),
            ana_history(),
            bo_history(),
        ]);
        let input = rating_input(&quote, date!(2026 - 11 - 27)).unwrap();
        let outcome = quote_rating::rate(quote_rating::RatingTables::default_tables(), &input);
        // Bo's suspended licence declines the quote, naming him by position.
        let reasons = outcome.decline_reasons().unwrap();
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("drivers[1]") && r.contains("suspended")),
            "{reasons:?}"
        );
    }

    #[test]
    fn missing_data_is_a_referral() {
        let failed = QuoteEvent::VehicleDecodeFailed(VehicleDecodeFailed {
            vin: vin(FORD),
            reason: "vPIC timed out and the WMI is unknown".into(),
        });
        let unavailable = QuoteEvent::DriverHistoryUnavailable(DriverHistoryUnavailable {
            license_state: "MD".parse().unwrap(),
            license_number: "B7654321".parse().unwrap(),
            reason: "the provider is down".into(),
        });
        let quote = fold(&[
            requested(),
            honda_vpic(),
            failed,
            ana_history(),
            unavailable,
        ]);
        assert!(quote.ready_for_rating());
        let referral = rating_input(&quote, date!(2026 - 11 - 27)).unwrap_err();
        assert_eq!(referral.reasons, quote.missing_data());
        assert_eq!(referral.reasons.len(), 2);
        assert!(referral.reasons[0].contains(FORD), "{referral}");
        assert!(referral.reasons[1].contains("MD B7654321"), "{referral}");
        assert!(referral
            .to_string()
            .starts_with("the quote needs an underwriter: "));
    }

    #[test]
    fn a_single_failure_is_enough_to_refer() {
        let failed = QuoteEvent::VehicleDecodeFailed(VehicleDecodeFailed {
            vin: vin(HONDA),
            reason: String::new(),
        });
        let quote = fold(&[
            requested(),
            failed,
            ford_fallback(),
            ana_history(),
            bo_history(),
        ]);
        let referral = rating_input(&quote, date!(2026 - 11 - 27)).unwrap_err();
        assert_eq!(
            referral.reasons,
            [format!(
                "vehicle {HONDA}: the vehicle could not be identified"
            )]
        );
    }

    #[test]
    fn pending_items_are_named_as_missing() {
        let quote = fold(&[requested(), honda_vpic(), ana_history()]);
        assert!(!quote.ready_for_rating());
        let referral = rating_input(&quote, date!(2026 - 11 - 27)).unwrap_err();
        assert_eq!(
            referral.reasons,
            [
                format!("vehicle {FORD}: not decoded yet"),
                "driver MD B7654321: driving history not retrieved yet".to_owned(),
            ]
        );
    }
}
