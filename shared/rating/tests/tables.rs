//! Loading and validating table files: the shipped table, and bad tables rejected with a
//! message naming the path of the offending value.

#![allow(clippy::unwrap_used)]

use quote_domain::{LiabilityLimit, Money};
use quote_rating::{RatingTables, TableError, DEFAULT_TABLES_JSON};
use serde_json::{json, Value};
use time::macros::date;

fn shipped() -> Value {
    serde_json::from_str(DEFAULT_TABLES_JSON).unwrap()
}

/// The shipped table with one edit applied, loaded.
fn load_with(edit: impl FnOnce(&mut Value)) -> Result<RatingTables, TableError> {
    let mut value = shipped();
    edit(&mut value);
    RatingTables::from_json(&value.to_string())
}

/// The value at a JSON pointer of the document, which must exist.
fn at<'a>(value: &'a mut Value, pointer: &str) -> &'a mut Value {
    value
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the shipped table"))
}

/// Asserts the load failed validation with an issue at `path` whose problem contains
/// `fragment`, and returns the whole message.
#[track_caller]
fn assert_issue(result: Result<RatingTables, TableError>, path: &str, fragment: &str) -> String {
    let err = result.expect_err("the table should be rejected");
    let found = err
        .issues()
        .iter()
        .any(|i| i.path == path && i.problem.contains(fragment));
    assert!(
        found,
        "expected an issue at {path} containing {fragment:?}, got: {err}"
    );
    err.to_string()
}

// ---------------------------------------------------------------------------------------------
// The shipped table.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_shipped_table_validates() {
    let tables = RatingTables::from_json(DEFAULT_TABLES_JSON).unwrap();
    assert_eq!(tables.version(), "2026-01");
    assert_eq!(tables.effective_date(), date!(2026 - 01 - 01));
    assert_eq!(tables.currency(), "USD");
    assert_eq!(tables.minimum_premium(), Money::from_cents(25_000));
    assert!(tables.description().is_some());
    assert_eq!(
        tables.liability_base_rate(LiabilityLimit::L25_50_25),
        Money::from_cents(52_000)
    );
    assert_eq!(
        tables.liability_base_rate(LiabilityLimit::L250_500_250),
        Money::from_cents(96_000)
    );
    assert_eq!(tables.collision_base_rate(), Money::from_cents(42_000));
    assert_eq!(tables.comprehensive_base_rate(), Money::from_cents(16_000));
    assert!(tables.is_effective_on(date!(2026 - 01 - 01)));
    assert!(!tables.is_effective_on(date!(2025 - 12 - 31)));
    assert_eq!(RatingTables::default_tables(), &tables);
}

#[test]
fn the_embedded_default_is_the_file_in_the_crate() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tables/2026-01.json");
    assert_eq!(std::fs::read_to_string(path).unwrap(), DEFAULT_TABLES_JSON);
}

// ---------------------------------------------------------------------------------------------
// Bands.
// ---------------------------------------------------------------------------------------------

#[test]
fn overlapping_bands_are_rejected() {
    // 21-24 becomes 20-24, overlapping 16-20.
    let message = assert_issue(
        load_with(|t| *at(t, "/factors/driver_age/bands/1/min") = json!(20)),
        "factors.driver_age.bands[1]",
        "band 20-24 overlaps the previous band 16-20",
    );
    assert!(message.starts_with("invalid rating tables: "), "{message}");
}

#[test]
fn gaps_between_bands_are_rejected() {
    assert_issue(
        load_with(|t| *at(t, "/factors/annual_mileage/bands/2/min") = json!(10_500)),
        "factors.annual_mileage.bands[2].min",
        "gap: no band covers 10000-10499",
    );
}

#[test]
fn bands_must_cover_the_whole_domain() {
    assert_issue(
        load_with(|t| *at(t, "/factors/years_licensed/bands/0/min") = json!(1)),
        "factors.years_licensed.bands[0].min",
        "must start at 0",
    );
    assert_issue(
        load_with(|t| *at(t, "/factors/driver_age/bands/0/min") = json!(17)),
        "factors.driver_age.bands[0].min",
        "must start at 16 or lower",
    );
    assert_issue(
        load_with(|t| *at(t, "/factors/vehicle_age/bands/4/max") = json!(99)),
        "factors.vehicle_age.bands[4].max",
        "the last band must be open-ended",
    );
    assert_issue(
        load_with(|t| *at(t, "/factors/driver_age/bands") = json!([])),
        "factors.driver_age.bands",
        "at least one band is required",
    );
    // Younger drivers may be rated by a table that starts lower.
    assert!(load_with(|t| *at(t, "/factors/driver_age/bands/0/min") = json!(15)).is_ok());
}

#[test]
fn only_the_last_band_may_be_open_ended_and_bands_are_well_formed() {
    assert_issue(
        load_with(|t| *at(t, "/factors/years_licensed/bands/1/max") = Value::Null),
        "factors.years_licensed.bands[1].max",
        "only the last band may be open-ended",
    );
    assert_issue(
        load_with(|t| {
            *at(t, "/factors/driver_age/bands/3/max") = json!(29);
        }),
        "factors.driver_age.bands[3]",
        "max 29 is below min 30",
    );
}

// ---------------------------------------------------------------------------------------------
// Factors.
// ---------------------------------------------------------------------------------------------

#[test]
fn negative_and_zero_factors_are_rejected() {
    assert_issue(
        load_with(|t| *at(t, "/factors/vehicle_use/factors/commute") = json!(-1.1)),
        "factors.vehicle_use.factors[\"commute\"]",
        "a factor must be a positive finite number, got -1.1",
    );
    assert_issue(
        load_with(|t| *at(t, "/factors/territory/zip3/232") = json!(0)),
        "factors.territory.zip3[\"232\"]",
        "positive finite",
    );
    assert_issue(
        load_with(|t| *at(t, "/factors/driver_age/bands/2/factor") = json!(-0.5)),
        "factors.driver_age.bands[2].factor",
        "positive finite",
    );
    assert_issue(
        load_with(|t| *at(t, "/factors/vehicle_age/unknown") = json!(0.0)),
        "factors.vehicle_age.unknown",
        "positive finite",
    );
}

#[test]
fn surcharges_below_one_are_rejected() {
    assert_issue(
        load_with(|t| *at(t, "/factors/at_fault_accidents/surcharge_per_incident") = json!(0.9)),
        "factors.at_fault_accidents.surcharge_per_incident",
        "at least 1 (an incident must never lower the premium), got 0.9",
    );
    assert_issue(
        load_with(|t| *at(t, "/factors/violations/surcharge_per_violation/speeding") = json!(0.95)),
        "factors.violations.surcharge_per_violation[\"speeding\"]",
        "at least 1",
    );
    assert_issue(
        load_with(|t| {
            *at(t, "/factors/not_at_fault_accidents/surcharge_per_incident") = json!(0.99)
        }),
        "factors.not_at_fault_accidents.surcharge_per_incident",
        "at least 1",
    );
}

#[test]
fn look_back_windows_are_bounded() {
    assert_issue(
        load_with(|t| *at(t, "/factors/violations/within_years") = json!(0)),
        "factors.violations.within_years",
        "must be 1 to 50 years, got 0",
    );
}

#[test]
fn violations_need_other_and_well_formed_kinds() {
    assert_issue(
        load_with(|t| {
            at(t, "/factors/violations/surcharge_per_violation")
                .as_object_mut()
                .unwrap()
                .remove("other");
        }),
        "factors.violations.surcharge_per_violation",
        "missing the \"other\" surcharge",
    );
    assert_issue(
        load_with(|t| {
            at(t, "/factors/violations/surcharge_per_violation")["Hit-And-Run"] = json!(1.5);
        }),
        "factors.violations.surcharge_per_violation[\"Hit-And-Run\"]",
        "lower-case letters",
    );
}

#[test]
fn mileage_factors_must_not_decrease() {
    assert_issue(
        load_with(|t| *at(t, "/factors/annual_mileage/bands/3/factor") = json!(0.98)),
        "factors.annual_mileage.bands[3].factor",
        "0.98 is below the factor 1 of the previous band 10000-14999 (more mileage must never \
         cost less)",
    );
}

#[test]
fn vehicle_classes_are_checked() {
    assert_issue(
        load_with(|t| *at(t, "/factors/vehicle_class/rules/0/class") = json!("roadster")),
        "factors.vehicle_class.rules[0].class",
        "\"roadster\" is not a class listed",
    );
    assert_issue(
        load_with(|t| {
            at(t, "/factors/vehicle_class/factors")
                .as_object_mut()
                .unwrap()
                .remove("unknown");
        }),
        "factors.vehicle_class.factors",
        "missing the \"unknown\" class",
    );
    assert_issue(
        load_with(|t| {
            *at(t, "/factors/vehicle_class/rules/1") = json!({"class": "sports"});
        }),
        "factors.vehicle_class.rules[1]",
        "needs body_class_contains, vehicle_type_contains or both",
    );
    assert_issue(
        load_with(|t| {
            *at(t, "/factors/vehicle_class/rules/1/body_class_contains") = json!("  ");
        }),
        "factors.vehicle_class.rules[1].body_class_contains",
        "must not be blank",
    );
}

#[test]
fn vehicle_uses_and_territories_are_checked() {
    assert_issue(
        load_with(|t| {
            at(t, "/factors/vehicle_use/factors")
                .as_object_mut()
                .unwrap()
                .remove("business");
        }),
        "factors.vehicle_use.factors",
        "missing the factor for business use",
    );
    assert_issue(
        load_with(|t| at(t, "/factors/vehicle_use/factors")["racing"] = json!(3.0)),
        "factors.vehicle_use.factors[\"racing\"]",
        "not a vehicle use",
    );
    assert_issue(
        load_with(|t| at(t, "/factors/territory/zip3")["23"] = json!(1.0)),
        "factors.territory.zip3[\"23\"]",
        "3-digit ZIP prefix",
    );
}

#[test]
fn applies_to_names_coverages() {
    assert_issue(
        load_with(|t| *at(t, "/factors/driver_age/applies_to") = json!(["liability", "medical"])),
        "factors.driver_age.applies_to[1]",
        "\"medical\" is not a coverage",
    );
    assert_issue(
        load_with(|t| *at(t, "/factors/territory/applies_to") = json!([])),
        "factors.territory.applies_to",
        "at least one",
    );
    assert_issue(
        load_with(|t| {
            *at(t, "/factors/vehicle_use/applies_to") = json!(["collision", "collision"])
        }),
        "factors.vehicle_use.applies_to[1]",
        "listed twice",
    );
}

// ---------------------------------------------------------------------------------------------
// Base rates and deductibles.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_liability_limit_needs_a_base_rate() {
    assert_issue(
        load_with(|t| {
            at(t, "/base_rates_cents/liability")
                .as_object_mut()
                .unwrap()
                .remove("100/300/100");
        }),
        "base_rates_cents.liability",
        "missing the base rate for the 100/300/100 limit",
    );
    assert_issue(
        load_with(|t| at(t, "/base_rates_cents/liability")["30/60/25"] = json!(50_000)),
        "base_rates_cents.liability[\"30/60/25\"]",
        "not an offered liability limit",
    );
    assert_issue(
        load_with(|t| *at(t, "/base_rates_cents/collision") = json!(0)),
        "base_rates_cents.collision",
        "more than zero",
    );
}

#[test]
fn a_higher_limit_must_not_cost_less() {
    assert_issue(
        load_with(|t| *at(t, "/base_rates_cents/liability/100~1300~1100") = json!(60_000)),
        "base_rates_cents.liability[\"100/300/100\"]",
        "60000 is below the 50/100/50 rate 64000 (a higher limit must never cost less)",
    );
}

#[test]
fn every_deductible_needs_a_factor() {
    assert_issue(
        load_with(|t| {
            at(t, "/factors/deductible/comprehensive")
                .as_object_mut()
                .unwrap()
                .remove("2000");
        }),
        "factors.deductible.comprehensive",
        "missing the factor for the $2000 deductible",
    );
    assert_issue(
        load_with(|t| at(t, "/factors/deductible/collision")["750"] = json!(0.9)),
        "factors.deductible.collision[\"750\"]",
        "not an offered deductible",
    );
}

#[test]
fn a_higher_deductible_must_not_cost_more() {
    assert_issue(
        load_with(|t| *at(t, "/factors/deductible/collision/1000") = json!(1.05)),
        "factors.deductible.collision[\"1000\"]",
        "1.05 is above the $500 factor 1 (a higher deductible must never cost more)",
    );
}

// ---------------------------------------------------------------------------------------------
// Multi-car discount.
// ---------------------------------------------------------------------------------------------

#[test]
fn multi_car_discounts_are_checked() {
    assert_issue(
        load_with(|t| *at(t, "/factors/multi_car/bands/0/factor") = json!(0.95)),
        "factors.multi_car.bands[0].factor",
        "a single car gets no multi-car discount",
    );
    assert_issue(
        load_with(|t| *at(t, "/factors/multi_car/bands/1/factor") = json!(1.1)),
        "factors.multi_car.bands[1].factor",
        "must be at most 1",
    );
    assert_issue(
        load_with(|t| *at(t, "/factors/multi_car/bands/3/factor") = json!(0.86)),
        "factors.multi_car.bands[3].factor",
        "the discount must never shrink as cars are added",
    );
    assert_issue(
        load_with(|t| *at(t, "/factors/multi_car/bands/1/factor") = json!(0.5)),
        "factors.multi_car.bands[1].factor",
        "2 identical cars at 0.5 would cost no more than 1 at 1",
    );
    assert_issue(
        load_with(|t| *at(t, "/factors/multi_car/bands/0/min") = json!(0)),
        "factors.multi_car.bands[0].min",
        "must start at 1",
    );
}

// ---------------------------------------------------------------------------------------------
// Decline rules.
// ---------------------------------------------------------------------------------------------

#[test]
fn decline_rules_are_checked() {
    assert_issue(
        load_with(|t| *at(t, "/decline_rules/2/kind") = json!("drunk")),
        "decline_rules[2].kind",
        "\"drunk\" is not a violation kind",
    );
    assert_issue(
        load_with(|t| *at(t, "/decline_rules/1/at_least") = json!(0)),
        "decline_rules[1].at_least",
        "must be at least 1",
    );
    assert_issue(
        load_with(|t| *at(t, "/decline_rules/1/within_years") = json!(99)),
        "decline_rules[1].within_years",
        "must be 1 to 50 years",
    );
    assert_issue(
        load_with(|t| *at(t, "/decline_rules/0/allowed") = json!([])),
        "decline_rules[0].allowed",
        "at least one licence status",
    );
    // An unknown rule is a shape error.
    let err = load_with(|t| {
        at(t, "/decline_rules")
            .as_array_mut()
            .unwrap()
            .push(json!({"rule": "credit_score", "below": 500}))
    })
    .unwrap_err();
    assert!(matches!(err, TableError::Parse(_)), "{err}");
    assert!(err.to_string().contains("credit_score"), "{err}");
    // No decline rules at all is allowed.
    assert!(load_with(|t| *at(t, "/decline_rules") = json!([])).is_ok());
}

// ---------------------------------------------------------------------------------------------
// The header and the shape.
// ---------------------------------------------------------------------------------------------

#[test]
fn header_fields_are_checked() {
    assert_issue(
        load_with(|t| t["currency"] = json!("EUR")),
        "currency",
        "must be \"USD\"",
    );
    assert_issue(
        load_with(|t| t["effective_date"] = json!("2026-13-01")),
        "effective_date",
        "expected a date as YYYY-MM-DD",
    );
    assert_issue(
        load_with(|t| t["version"] = json!(" ")),
        "version",
        "must be 1 to 64 ASCII letters",
    );
    assert_issue(
        load_with(|t| t["minimum_premium_cents"] = json!(0)),
        "minimum_premium_cents",
        "more than zero",
    );
}

#[test]
fn format_versions_other_than_1_are_rejected_first() {
    // A newer format is reported as such, not as a list of shape errors.
    let err = RatingTables::from_json(r#"{"format_version": 2, "something": "new"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid rating tables: format_version: this crate reads format_version 1, got 2"
    );
    assert_issue(
        load_with(|t| {
            t.as_object_mut().unwrap().remove("format_version");
        }),
        "format_version",
        "missing",
    );
}

#[test]
fn shape_errors_name_the_field() {
    let err = load_with(|t| at(t, "/factors/driver_age")["aplies_to"] = json!([])).unwrap_err();
    assert!(matches!(err, TableError::Parse(_)));
    assert!(err.to_string().contains("aplies_to"), "{err}");
    assert!(err.issues().is_empty());

    let err = load_with(|t| {
        at(t, "/factors")
            .as_object_mut()
            .unwrap()
            .remove("territory");
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("missing field `territory`"),
        "{err}"
    );

    let err = load_with(|t| *at(t, "/base_rates_cents/collision") = json!(-42_000)).unwrap_err();
    assert!(matches!(err, TableError::Parse(_)), "{err}");

    let err = RatingTables::from_json("not json").unwrap_err();
    assert!(
        err.to_string().starts_with("rating tables do not parse: "),
        "{err}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = load_with(|t| {
        *at(t, "/factors/driver_age/bands/1/min") = json!(20);
        *at(t, "/factors/at_fault_accidents/surcharge_per_incident") = json!(0.8);
        *at(t, "/factors/deductible/collision/2000") = json!(0.9);
        at(t, "/base_rates_cents/liability")
            .as_object_mut()
            .unwrap()
            .remove("25/50/25");
    })
    .unwrap_err();
    let paths: Vec<&str> = err.issues().iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "base_rates_cents.liability",
            "factors.driver_age.bands[1]",
            "factors.at_fault_accidents.surcharge_per_incident",
            "factors.deductible.collision[\"2000\"]",
        ]
    );
    let message = err.to_string();
    assert_eq!(message.matches("; ").count(), 3, "{message}");
}
