//! Rating with the shipped tables: a worked example computed by hand, declines, the
//! highest-rated-driver rule, the multi-car discount and the minimum premium.

#![allow(clippy::unwrap_used)]

use quote_domain::{Coverage, Deductible, LiabilityLimit, Money, VehicleUse, ZipCode};
use quote_rating::{
    rate, Factor, Premium, RatedDriver, RatedVehicle, RatedViolation, RatingInput, RatingOutcome,
    RatingTables, DEFAULT_TABLES_JSON,
};
use time::macros::date;
use time::Date;

const TODAY: Date = date!(2026 - 06 - 15);

fn tables() -> &'static RatingTables {
    RatingTables::default_tables()
}

fn coverage(limit: LiabilityLimit, collision: i64, comprehensive: i64) -> Coverage {
    Coverage {
        liability_limit: limit,
        collision_deductible: Deductible::parse(collision).unwrap(),
        comprehensive_deductible: Deductible::parse(comprehensive).unwrap(),
    }
}

fn sedan() -> RatedVehicle {
    RatedVehicle {
        model_year: Some(2022),
        body_class: Some("Sedan/Saloon".into()),
        vehicle_type: Some("PASSENGER CAR".into()),
        annual_mileage: 12_000,
        use_: VehicleUse::Commute,
        garaging_zip: ZipCode::parse("23220").unwrap(),
    }
}

fn clean_driver(age: u8, years_licensed: u8) -> RatedDriver {
    RatedDriver {
        age,
        years_licensed,
        at_fault_accidents: vec![],
        not_at_fault_accidents: vec![],
        violations: vec![],
        license_status: "valid".into(),
    }
}

fn input(vehicles: Vec<RatedVehicle>, drivers: Vec<RatedDriver>) -> RatingInput {
    RatingInput {
        today: TODAY,
        coverage: coverage(LiabilityLimit::L100_300_100, 500, 1000),
        vehicles,
        drivers,
    }
}

#[track_caller]
fn quoted(outcome: RatingOutcome) -> Premium {
    match outcome {
        RatingOutcome::Quoted(premium) => premium,
        RatingOutcome::Declined { reasons } => panic!("declined: {reasons:?}"),
    }
}

#[track_caller]
fn declined(outcome: RatingOutcome) -> Vec<String> {
    match outcome {
        RatingOutcome::Quoted(premium) => panic!("quoted {}", premium.annual),
        RatingOutcome::Declined { reasons } => reasons,
    }
}

fn factors_for<'a>(premium: &'a Premium, applies_to: &str) -> Vec<&'a Factor> {
    premium
        .factors
        .iter()
        .filter(|f| f.applies_to == applies_to)
        .collect()
}

fn names(factors: &[&Factor]) -> Vec<String> {
    factors.iter().map(|f| f.name.clone()).collect()
}

#[test]
fn worked_example() {
    // One 2022 sedan, 12,000 miles a year, commuting, garaged in 23220 (Richmond, VA);
    // 100/300/100 liability, $500 collision and $1,000 comprehensive deductibles; one driver,
    // 38, licensed 20 years, with one at-fault accident (2024-03-01), one not-at-fault accident
    // (2025-05-01), one speeding ticket in the window (2025-01-10) and one too old to count
    // (2020-01-01, more than 3 years before 2026-06-15).
    //
    // Factors from tables/2026-01.json:
    //   driver age 38 (30-49) 1.00 · years licensed 20 (10+) 1.00 · at-fault 1 × 1.40
    //   not-at-fault 1 × 1.00 · speeding 1 × 1.20
    //   vehicle age 2026 − 2022 = 4 (3-5) 1.05 · class sedan 1.00 · 12,000 miles (10000-14999)
    //   1.00 · commute 1.10 · territory 232 1.05 · collision $500 1.00 · comprehensive $1000
    //   0.82 · one vehicle 1.00
    //
    // Liability (base 100/300/100 = $780.00; all five driver factors, then class, mileage,
    // use, territory, multi-car; no vehicle age, no deductible):
    //   78000 × (1.00 × 1.00 × 1.40 × 1.00 × 1.20) × 1.00 × 1.00 × 1.10 × 1.05 × 1.00
    //   = 78000 × 1.68 × 1.155 = 151351.2 cents → $1,513.51
    // Collision (base $420.00; driver factors, vehicle age, class, mileage, use, territory,
    // deductible):
    //   42000 × 1.68 × 1.05 × 1.00 × 1.00 × 1.10 × 1.05 × 1.00 × 1.00
    //   = 42000 × 1.68 × 1.212750 = 85571.64 cents → $855.72
    // Comprehensive (base $160.00; driver age only among driver factors, vehicle age, class,
    // territory, deductible):
    //   16000 × 1.00 × 1.05 × 1.00 × 1.05 × 0.82 × 1.00 = 14464.8 cents → $144.65
    // Annual: 151351 + 85572 + 14465 = 251388 cents = $2,513.88 (above the $250 minimum).
    let mut driver = clean_driver(38, 20);
    driver.at_fault_accidents = vec![date!(2024 - 03 - 01)];
    driver.not_at_fault_accidents = vec![date!(2025 - 05 - 01)];
    driver.violations = vec![
        RatedViolation::new("speeding", date!(2025 - 01 - 10)),
        RatedViolation::new("speeding", date!(2020 - 01 - 01)),
    ];
    let premium = quoted(rate(tables(), &input(vec![sedan()], vec![driver])));

    assert_eq!(premium.annual, Money::from_cents(251_388));
    assert_eq!(premium.annual.to_string(), "$2,513.88");
    assert_eq!(
        premium.breakdown_by_coverage,
        vec![
            ("liability".to_owned(), Money::from_cents(151_351)),
            ("collision".to_owned(), Money::from_cents(85_572)),
            ("comprehensive".to_owned(), Money::from_cents(14_465)),
        ]
    );
    assert_eq!(premium.table_version, "2026-01");

    let liability = factors_for(&premium, "vehicles[0].liability");
    assert_eq!(
        names(&liability),
        [
            "driver_age",
            "years_licensed",
            "at_fault_accidents",
            "not_at_fault_accidents",
            "violations.speeding",
            "vehicle_class",
            "annual_mileage",
            "vehicle_use",
            "territory",
            "multi_car",
        ]
    );
    let values: Vec<f64> = liability.iter().map(|f| f.value).collect();
    assert_eq!(values, [1.0, 1.0, 1.4, 1.0, 1.2, 1.0, 1.0, 1.1, 1.05, 1.0]);
    assert_eq!(liability[0].detail, "drivers[0]: age 38 (30-49)");
    assert_eq!(
        liability[2].detail,
        "drivers[0]: 1 at-fault accident in the last 5 years, 1.4 each"
    );
    assert_eq!(
        liability[4].detail,
        "drivers[0]: 1 speeding violation in the last 3 years, 1.2 each"
    );
    assert_eq!(liability[8].detail, "vehicles[0]: ZIP prefix 232");

    let collision = factors_for(&premium, "vehicles[0].collision");
    assert!(collision.iter().any(|f| f.name == "vehicle_age"
        && f.detail == "vehicles[0]: model year 2022, 4 years old (3-5)"));
    assert!(collision.iter().any(|f| f.name == "collision_deductible"
        && f.value == 1.0
        && f.detail == "$500 deductible"));

    let comprehensive = factors_for(&premium, "vehicles[0].comprehensive");
    assert_eq!(
        names(&comprehensive),
        [
            "driver_age",
            "vehicle_age",
            "vehicle_class",
            "territory",
            "comprehensive_deductible",
            "multi_car",
        ]
    );
}

#[test]
fn the_highest_rated_driver_prices_every_vehicle() {
    // A 19-year-old licensed 2 years (2.10 × 1.40) and a 45-year-old licensed 25 years
    // (1.00 × 1.00): the young driver is the highest-rated for every coverage.
    let young = clean_driver(19, 2);
    let seasoned = clean_driver(45, 25);
    let both = quoted(rate(
        tables(),
        &input(vec![sedan()], vec![seasoned.clone(), young.clone()]),
    ));
    let young_only = quoted(rate(tables(), &input(vec![sedan()], vec![young])));
    let seasoned_only = quoted(rate(tables(), &input(vec![sedan()], vec![seasoned])));
    assert_eq!(both.annual, young_only.annual);
    assert!(seasoned_only.annual < both.annual);
    let age = factors_for(&both, "vehicles[0].liability")[0];
    assert_eq!(age.detail, "drivers[1]: age 19 (16-20)");
    assert_eq!(age.value, 2.1);
}

#[test]
fn the_worst_driver_is_chosen_per_coverage() {
    // drivers[0]: 19, licensed 5 years: 2.10 × 1.15 = 2.415 for liability and collision,
    //   2.10 for comprehensive (years licensed does not apply to it).
    // drivers[1]: 40, licensed 20 years, two at-fault accidents and a reckless-driving ticket:
    //   1.40² × 1.60 = 3.136 for liability and collision, higher than 2.415; but 1.00 for
    //   comprehensive (accidents and violations do not apply to it), lower than 2.10.
    let young = clean_driver(19, 5);
    let mut reckless = clean_driver(40, 20);
    reckless.at_fault_accidents = vec![date!(2023 - 01 - 01), date!(2025 - 01 - 01)];
    reckless.violations = vec![RatedViolation::new(
        "Reckless Driving",
        date!(2025 - 02 - 01),
    )];
    let premium = quoted(rate(tables(), &input(vec![sedan()], vec![young, reckless])));
    let first = |line: &str| factors_for(&premium, line)[0].detail.clone();
    assert_eq!(first("vehicles[0].liability"), "drivers[1]: age 40 (30-49)");
    assert_eq!(first("vehicles[0].collision"), "drivers[1]: age 40 (30-49)");
    assert_eq!(
        first("vehicles[0].comprehensive"),
        "drivers[0]: age 19 (16-20)"
    );
    assert!(premium
        .factors
        .iter()
        .any(|f| f.name == "violations.reckless_driving" && f.value == 1.6));
}

#[test]
fn multi_car_discount_applies_to_every_vehicle() {
    let alone = quoted(rate(
        tables(),
        &input(vec![sedan()], vec![clean_driver(40, 20)]),
    ));
    let two = quoted(rate(
        tables(),
        &input(vec![sedan(), sedan()], vec![clean_driver(40, 20)]),
    ));
    // Each coverage of each car × 0.90: 2 × 0.90 = 1.8 times the single car, to the cent
    // (rounding happens per vehicle and coverage).
    for ((name, one), (name2, both)) in alone
        .breakdown_by_coverage
        .iter()
        .zip(&two.breakdown_by_coverage)
    {
        assert_eq!(name, name2);
        let per_car = (one.cents() as f64 * 0.9).round() as u64;
        assert!(
            both.cents().abs_diff(2 * per_car) <= 2,
            "{name}: {one} vs {both}"
        );
    }
    let multi: Vec<&Factor> = two
        .factors
        .iter()
        .filter(|f| f.name == "multi_car")
        .collect();
    assert_eq!(multi.len(), 6);
    assert!(multi.iter().all(|f| f.value == 0.9));
    assert_eq!(multi[0].detail, "2 vehicles on the policy (band 2)");
}

#[test]
fn unknown_vehicle_data_is_rated_with_the_unknown_factors() {
    let mut vehicle = sedan();
    vehicle.model_year = None;
    vehicle.body_class = None;
    vehicle.vehicle_type = None;
    vehicle.garaging_zip = ZipCode::parse("99999-1234").unwrap();
    let premium = quoted(rate(
        tables(),
        &input(vec![vehicle], vec![clean_driver(40, 20)]),
    ));
    let collision = factors_for(&premium, "vehicles[0].collision");
    let find = |name: &str| collision.iter().find(|f| f.name == name).unwrap();
    assert_eq!(find("vehicle_age").value, 1.10);
    assert_eq!(
        find("vehicle_age").detail,
        "vehicles[0]: model year unknown"
    );
    assert_eq!(find("vehicle_class").value, 1.15);
    assert_eq!(
        find("vehicle_class").detail,
        "vehicles[0]: unknown (no body class or type)"
    );
    assert_eq!(find("territory").value, 1.0);
    assert_eq!(
        find("territory").detail,
        "vehicles[0]: ZIP prefix 999 (default territory)"
    );
}

#[test]
fn a_next_year_model_is_new() {
    let mut vehicle = sedan();
    vehicle.model_year = Some(2027);
    let premium = quoted(rate(
        tables(),
        &input(vec![vehicle], vec![clean_driver(40, 20)]),
    ));
    let age = premium
        .factors
        .iter()
        .find(|f| f.name == "vehicle_age")
        .unwrap();
    assert_eq!(age.value, 1.15);
    assert_eq!(
        age.detail,
        "vehicles[0]: model year 2027, 0 years old (0-2)"
    );
}

#[test]
fn the_minimum_premium_lifts_small_totals() {
    let mut json: serde_json::Value = serde_json::from_str(DEFAULT_TABLES_JSON).unwrap();
    json["minimum_premium_cents"] = serde_json::json!(1_000_000);
    let tables = RatingTables::from_json(&json.to_string()).unwrap();
    let premium = quoted(rate(
        &tables,
        &input(vec![sedan()], vec![clean_driver(40, 20)]),
    ));
    assert_eq!(premium.annual, Money::from_cents(1_000_000));
    let (last, adjustment) = premium.breakdown_by_coverage.last().unwrap();
    assert_eq!(last, "minimum_premium_adjustment");
    let rated: u64 = premium.breakdown_by_coverage[..3]
        .iter()
        .map(|(_, m)| m.cents())
        .sum();
    assert_eq!(rated + adjustment.cents(), 1_000_000);
}

// ---------------------------------------------------------------------------------------------
// Declines.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_recent_dui_declines_and_an_old_one_is_only_surcharged() {
    let mut driver = clean_driver(40, 20);
    driver.violations = vec![RatedViolation::new("DUI", date!(2024 - 01 - 01))];
    let reasons = declined(rate(tables(), &input(vec![sedan()], vec![driver.clone()])));
    assert_eq!(
        reasons,
        ["drivers[0]: 1 dui violation in the last 3 years (declined at 1 or more)"]
    );
    // Three years and a day ago: outside both the decline rule and the surcharge window.
    driver.violations = vec![RatedViolation::new("dui", date!(2023 - 06 - 14))];
    let premium = quoted(rate(tables(), &input(vec![sedan()], vec![driver.clone()])));
    assert!(premium
        .factors
        .iter()
        .all(|f| !f.name.starts_with("violations")));
    // Exactly three years ago: inside.
    driver.violations = vec![RatedViolation::new("dui", date!(2023 - 06 - 15))];
    declined(rate(tables(), &input(vec![sedan()], vec![driver])));
}

#[test]
fn three_at_fault_accidents_in_five_years_decline() {
    let mut driver = clean_driver(40, 20);
    driver.at_fault_accidents = vec![
        date!(2021 - 06 - 15),
        date!(2023 - 01 - 01),
        date!(2026 - 06 - 01),
    ];
    let reasons = declined(rate(tables(), &input(vec![sedan()], vec![driver.clone()])));
    assert_eq!(
        reasons,
        ["drivers[0]: 3 at-fault accidents in the last 5 years (declined at 3 or more)"]
    );
    // The oldest one a day earlier falls out of the window: two accidents, surcharged 1.4².
    driver.at_fault_accidents[0] = date!(2021 - 06 - 14);
    let premium = quoted(rate(tables(), &input(vec![sedan()], vec![driver])));
    let accidents = premium
        .factors
        .iter()
        .find(|f| f.name == "at_fault_accidents")
        .unwrap();
    assert!((accidents.value - 1.96).abs() < 1e-12);
}

#[test]
fn an_invalid_licence_declines() {
    let mut driver = clean_driver(40, 20);
    driver.license_status = " Valid ".into();
    quoted(rate(tables(), &input(vec![sedan()], vec![driver.clone()])));
    driver.license_status = "suspended".into();
    let reasons = declined(rate(tables(), &input(vec![sedan()], vec![driver])));
    assert_eq!(
        reasons,
        ["drivers[0]: licence status is \"suspended\"; only valid licences are accepted"]
    );
}

#[test]
fn every_reason_is_reported() {
    let mut first = clean_driver(40, 20);
    first.license_status = "revoked".into();
    let mut second = clean_driver(15, 0);
    second.violations = vec![RatedViolation::new("dui", date!(2026 - 01 - 01))];
    second.at_fault_accidents = vec![date!(2026 - 01 - 01); 4];
    let reasons = declined(rate(tables(), &input(vec![sedan()], vec![first, second])));
    assert_eq!(
        reasons,
        [
            "drivers[0]: licence status is \"revoked\"; only valid licences are accepted",
            "drivers[1]: 4 at-fault accidents in the last 5 years (declined at 3 or more)",
            "drivers[1]: 1 dui violation in the last 3 years (declined at 1 or more)",
            "drivers[1]: age 15 is below the youngest rated age, 16",
        ]
    );
}

#[test]
fn nothing_to_rate_declines() {
    let reasons = declined(rate(tables(), &input(vec![], vec![])));
    assert_eq!(
        reasons,
        ["there is no vehicle to rate", "there is no driver to rate"]
    );
}

#[test]
fn outcomes_serialize_with_integer_cents() {
    let premium = quoted(rate(
        tables(),
        &input(vec![sedan()], vec![clean_driver(40, 20)]),
    ));
    let json = serde_json::to_value(RatingOutcome::Quoted(premium.clone())).unwrap();
    assert_eq!(json["outcome"], "quoted");
    assert_eq!(json["annual"], premium.annual.cents());
    assert_eq!(json["breakdown_by_coverage"][0][0], "liability");
    let back: RatingOutcome = serde_json::from_value(json).unwrap();
    assert_eq!(back.premium(), Some(&premium));

    let declined = RatingOutcome::Declined {
        reasons: vec!["no".into()],
    };
    assert_eq!(
        serde_json::to_value(&declined).unwrap(),
        serde_json::json!({"outcome": "declined", "reasons": ["no"]})
    );
    assert_eq!(declined.decline_reasons(), Some(&["no".to_owned()][..]));
}
