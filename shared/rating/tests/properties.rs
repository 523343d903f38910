//! Property tests of the rating function with the shipped tables.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::sample::{select, Index};
use quote_domain::{Coverage, Deductible, LiabilityLimit, Money, VehicleUse, ZipCode};
use quote_rating::{
    rate, Premium, RatedDriver, RatedVehicle, RatedViolation, RatingInput, RatingOutcome,
    RatingTables, DEFAULT_TABLES_JSON,
};
use time::macros::date;
use time::{Date, Duration};

const TODAY: Date = date!(2026 - 06 - 15);
/// Days in the five years before `TODAY` (2021-06-15 to 2026-06-15 holds one 29 February).
const FIVE_YEARS_OF_DAYS: i64 = 5 * 365 + 1;

fn tables() -> &'static RatingTables {
    RatingTables::default_tables()
}

fn days_ago(days: i64) -> Date {
    TODAY - Duration::days(days)
}

fn arb_vehicle() -> impl Strategy<Value = RatedVehicle> {
    (
        proptest::option::of(1985u16..=2027),
        proptest::option::of(select(vec![
            "Sedan/Saloon",
            "Hatchback/Liftback/Notchback",
            "Sport Utility Vehicle (SUV)/Multi-Purpose Vehicle (MPV)",
            "Pickup",
            "Convertible/Cabriolet",
            "Coupe",
            "Minivan",
            "Wagon",
            "Limousine",
            "",
        ])),
        proptest::option::of(select(vec![
            "PASSENGER CAR",
            "MULTIPURPOSE PASSENGER VEHICLE (MPV)",
            "TRUCK",
            "MOTORCYCLE",
        ])),
        0u32..=200_000,
        select(VehicleUse::ALL.to_vec()),
        select(vec![
            "23220",
            "10001",
            "11201",
            "90210",
            "59001",
            "60601",
            "99999",
            "00501",
            "24501",
            "33101-1234",
        ]),
    )
        .prop_map(
            |(model_year, body, kind, annual_mileage, use_, zip)| RatedVehicle {
                model_year,
                body_class: body.map(str::to_owned),
                vehicle_type: kind.map(str::to_owned),
                annual_mileage,
                use_,
                garaging_zip: ZipCode::parse(zip).unwrap(),
            },
        )
}

fn arb_violation() -> impl Strategy<Value = RatedViolation> {
    (
        select(vec![
            "speeding",
            "distracted_driving",
            "Reckless Driving",
            "dui",
            "other",
            "parking",
            "Distracted-Driving",
        ]),
        0i64..=3650,
    )
        .prop_map(|(kind, days)| RatedViolation::new(kind, days_ago(days)))
}

/// Any driver: recent DUIs, many accidents and bad licences included (often declined).
fn arb_driver() -> impl Strategy<Value = RatedDriver> {
    (16u8..=100)
        .prop_flat_map(|age| (Just(age), 0..=age - 14))
        .prop_flat_map(|(age, years_licensed)| {
            (
                Just(age),
                Just(years_licensed),
                proptest::collection::vec(0i64..=3650, 0..4),
                proptest::collection::vec(0i64..=3650, 0..3),
                proptest::collection::vec(arb_violation(), 0..4),
                prop_oneof![
                    6 => Just("valid"),
                    1 => Just("VALID"),
                    1 => select(vec!["suspended", "revoked", "expired"]),
                ],
            )
        })
        .prop_map(
            |(age, years_licensed, at_fault, not_at_fault, violations, status)| RatedDriver {
                age,
                years_licensed,
                at_fault_accidents: at_fault.into_iter().map(days_ago).collect(),
                not_at_fault_accidents: not_at_fault.into_iter().map(days_ago).collect(),
                violations,
                license_status: status.to_owned(),
            },
        )
}

/// A driver no decline rule applies to: a valid licence, at most two at-fault accidents, no
/// DUI.
fn arb_clean_driver() -> impl Strategy<Value = RatedDriver> {
    arb_driver().prop_map(|mut d| {
        d.license_status = "valid".into();
        d.at_fault_accidents.truncate(2);
        d.violations.retain(|v| !v.kind.eq_ignore_ascii_case("dui"));
        d
    })
}

fn arb_coverage() -> impl Strategy<Value = Coverage> {
    (
        select(LiabilityLimit::ALL.to_vec()),
        select(Deductible::ALL.to_vec()),
        select(Deductible::ALL.to_vec()),
    )
        .prop_map(|(liability_limit, collision, comprehensive)| Coverage {
            liability_limit,
            collision_deductible: collision,
            comprehensive_deductible: comprehensive,
        })
}

fn arb_input_with(
    drivers: impl Strategy<Value = RatedDriver>,
) -> impl Strategy<Value = RatingInput> {
    (
        arb_coverage(),
        proptest::collection::vec(arb_vehicle(), 1..=4),
        proptest::collection::vec(drivers, 1..=6),
    )
        .prop_map(|(coverage, vehicles, drivers)| RatingInput {
            today: TODAY,
            coverage,
            vehicles,
            drivers,
        })
}

fn arb_input() -> impl Strategy<Value = RatingInput> {
    arb_input_with(arb_driver())
}

fn arb_clean_input() -> impl Strategy<Value = RatingInput> {
    arb_input_with(arb_clean_driver())
}

fn annual(outcome: &RatingOutcome) -> Option<Money> {
    outcome.premium().map(|p| p.annual)
}

/// `after` is no cheaper than `before`, and no decline became a quote.
fn never_lower(before: &RatingOutcome, after: &RatingOutcome) -> Result<(), TestCaseError> {
    match (annual(before), annual(after)) {
        (Some(b), Some(a)) => prop_assert!(a >= b, "{a} < {b}"),
        (None, Some(a)) => prop_assert!(false, "a decline became a quote of {a}"),
        (_, None) => {}
    }
    Ok(())
}

/// `after` is no dearer than `before`, and the decision did not change.
fn never_higher(before: &RatingOutcome, after: &RatingOutcome) -> Result<(), TestCaseError> {
    match (annual(before), annual(after)) {
        (Some(b), Some(a)) => prop_assert!(a <= b, "{a} > {b}"),
        (None, None) => {}
        _ => prop_assert!(false, "the decision changed"),
    }
    Ok(())
}

/// The cheaper, higher-or-equal-deductible pairs of the offered deductibles.
fn deductible_pair() -> impl Strategy<Value = (Deductible, Deductible)> {
    (0usize..4, 0usize..4).prop_map(|(a, b)| {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        (Deductible::ALL[lo], Deductible::ALL[hi])
    })
}

fn one_vehicle(input: &RatingInput, vehicle: RatedVehicle) -> RatingInput {
    RatingInput {
        vehicles: vec![vehicle],
        ..input.clone()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn an_added_at_fault_accident_never_lowers_the_premium(
        input in arb_input(),
        driver in any::<Index>(),
        days in 0..FIVE_YEARS_OF_DAYS,
    ) {
        let before = rate(tables(), &input);
        let mut after = input.clone();
        let i = driver.index(after.drivers.len());
        after.drivers[i].at_fault_accidents.push(days_ago(days));
        never_lower(&before, &rate(tables(), &after))?;
    }

    #[test]
    fn an_added_violation_never_lowers_the_premium(
        input in arb_input(),
        driver in any::<Index>(),
        violation in arb_violation(),
    ) {
        let before = rate(tables(), &input);
        let mut after = input.clone();
        let i = driver.index(after.drivers.len());
        after.drivers[i].violations.push(violation);
        never_lower(&before, &rate(tables(), &after))?;
    }

    #[test]
    fn an_added_driver_never_lowers_the_premium(input in arb_input(), driver in arb_driver()) {
        let before = rate(tables(), &input);
        let mut after = input.clone();
        after.drivers.push(driver);
        never_lower(&before, &rate(tables(), &after))?;
    }

    #[test]
    fn a_higher_deductible_never_raises_the_premium(
        input in arb_input(),
        (collision_lo, collision_hi) in deductible_pair(),
        (comprehensive_lo, comprehensive_hi) in deductible_pair(),
    ) {
        let with = |collision, comprehensive| {
            let mut i = input.clone();
            i.coverage.collision_deductible = collision;
            i.coverage.comprehensive_deductible = comprehensive;
            rate(tables(), &i)
        };
        let low = with(collision_lo, comprehensive_lo);
        never_higher(&low, &with(collision_hi, comprehensive_lo))?;
        never_higher(&low, &with(collision_lo, comprehensive_hi))?;
        never_higher(&low, &with(collision_hi, comprehensive_hi))?;
    }

    #[test]
    fn a_higher_liability_limit_never_lowers_the_premium(
        input in arb_input(),
        a in 0usize..4,
        b in 0usize..4,
    ) {
        let with = |limit| {
            let mut i = input.clone();
            i.coverage.liability_limit = limit;
            rate(tables(), &i)
        };
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let low = with(LiabilityLimit::ALL[lo]);
        let high = with(LiabilityLimit::ALL[hi]);
        never_lower(&low, &high)?;
        prop_assert_eq!(low.premium().is_some(), high.premium().is_some());
    }

    #[test]
    fn more_annual_mileage_never_lowers_the_premium(
        input in arb_input(),
        vehicle in any::<Index>(),
        extra in 0u32..=100_000,
    ) {
        let before = rate(tables(), &input);
        let mut after = input.clone();
        let i = vehicle.index(after.vehicles.len());
        after.vehicles[i].annual_mileage = after.vehicles[i].annual_mileage.saturating_add(extra);
        let after = rate(tables(), &after);
        never_lower(&before, &after)?;
        prop_assert_eq!(before.premium().is_some(), after.premium().is_some());
    }

    #[test]
    fn every_valid_input_gets_a_positive_premium(input in arb_clean_input()) {
        let outcome = rate(tables(), &input);
        let premium = outcome.premium();
        prop_assert!(premium.is_some(), "declined: {:?}", outcome.decline_reasons());
        let premium = premium.unwrap();
        prop_assert!(premium.annual > Money::ZERO);
        prop_assert!(premium.annual >= tables().minimum_premium());
        let sum: u64 = premium.breakdown_by_coverage.iter().map(|(_, m)| m.cents()).sum();
        prop_assert_eq!(sum, premium.annual.cents());
        prop_assert_eq!(&premium.table_version, "2026-01");
        prop_assert!(premium.factors.iter().all(|f| f.value.is_finite() && f.value > 0.0));
    }

    #[test]
    fn a_decline_always_says_why(input in arb_input()) {
        if let RatingOutcome::Declined { reasons } = rate(tables(), &input) {
            prop_assert!(!reasons.is_empty());
            prop_assert!(reasons.iter().all(|r| !r.trim().is_empty()));
        }
    }

    #[test]
    fn rating_is_deterministic(input in arb_input()) {
        let reloaded = RatingTables::from_json(DEFAULT_TABLES_JSON).unwrap();
        let first = rate(tables(), &input);
        prop_assert_eq!(&first, &rate(tables(), &input));
        prop_assert_eq!(&first, &rate(&reloaded, &input.clone()));
    }

    #[test]
    fn the_factors_explain_each_coverage(input in arb_clean_input(), vehicle in arb_vehicle()) {
        // With one vehicle, each coverage line is its base rate times the factors listed for
        // it, rounded to the cent (the product is taken in a different order, hence ±1 cent).
        let input = one_vehicle(&input, vehicle);
        let premium: Premium = rate(tables(), &input).premium().cloned().unwrap();
        let t = tables();
        let bases = [
            ("liability", t.liability_base_rate(input.coverage.liability_limit)),
            ("collision", t.collision_base_rate()),
            ("comprehensive", t.comprehensive_base_rate()),
        ];
        for (i, (name, base)) in bases.into_iter().enumerate() {
            let applies_to = format!("vehicles[0].{name}");
            let product: f64 = premium
                .factors
                .iter()
                .filter(|f| f.applies_to == applies_to)
                .map(|f| f.value)
                .product();
            let expected = (base.cents() as f64 * product).round() as u64;
            let (line, amount) = &premium.breakdown_by_coverage[i];
            prop_assert_eq!(line, name);
            prop_assert!(amount.cents().abs_diff(expected) <= 1, "{}: {} vs {}", name, amount.cents(), expected);
        }
    }

    #[test]
    fn two_cars_together_never_cost_more_than_insured_separately(
        input in arb_clean_input(),
        a in arb_vehicle(),
        b in arb_vehicle(),
    ) {
        let alone_a = annual(&rate(tables(), &one_vehicle(&input, a.clone()))).unwrap();
        let alone_b = annual(&rate(tables(), &one_vehicle(&input, b.clone()))).unwrap();
        let together = RatingInput { vehicles: vec![a, b], ..input.clone() };
        let together = annual(&rate(tables(), &together)).unwrap();
        prop_assert!(together.cents() <= alone_a.cents() + alone_b.cents());
    }

    #[test]
    fn two_cars_together_never_cost_less_than_the_cheaper_alone(
        input in arb_clean_input(),
        a in arb_vehicle(),
        b in arb_vehicle(),
    ) {
        // Not "less than either alone": the 10 % discount on a dear car can exceed the price
        // of a much cheaper second one. What the tables guarantee (2 × factor(2) > factor(1))
        // is that the pair costs more than the cheaper car alone.
        let alone_a = annual(&rate(tables(), &one_vehicle(&input, a.clone()))).unwrap();
        let alone_b = annual(&rate(tables(), &one_vehicle(&input, b.clone()))).unwrap();
        let together = RatingInput { vehicles: vec![a, b], ..input.clone() };
        let together = annual(&rate(tables(), &together)).unwrap();
        prop_assert!(together >= alone_a.min(alone_b), "{} < min({}, {})", together, alone_a, alone_b);
    }

    #[test]
    fn one_more_identical_car_always_costs_more(
        input in arb_clean_input(),
        vehicle in arb_vehicle(),
        n in 1usize..=6,
    ) {
        let fleet = |n: usize| {
            let i = RatingInput { vehicles: vec![vehicle.clone(); n], ..input.clone() };
            annual(&rate(tables(), &i)).unwrap()
        };
        // Strictly more, unless both sit at the minimum premium.
        let (smaller, larger) = (fleet(n), fleet(n + 1));
        prop_assert!(
            larger > smaller || larger == tables().minimum_premium(),
            "{} cars: {}, {} cars: {}", n, smaller, n + 1, larger
        );
    }
}
