//! The rating function: [`rate`] turns tables and an input into a premium or a decline.
//!
//! See the crate documentation for the model; this module follows it step by step.

use quote_domain::Money;
use serde::{Deserialize, Serialize};
use time::{Date, Month};

use crate::input::{RatedDriver, RatedVehicle, RatingInput};
use crate::tables::{
    AppliesTo, DeclineRule, IncidentFactor, Line, RatingTables, OTHER_VIOLATION, UNKNOWN_CLASS,
};

/// The breakdown line added when the minimum premium lifts the total.
pub const MINIMUM_PREMIUM_ADJUSTMENT: &str = "minimum_premium_adjustment";

/// The coverage names of [`Premium::breakdown_by_coverage`], in order.
pub const COVERAGES: [&str; 3] = ["liability", "collision", "comprehensive"];

/// What rating decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RatingOutcome {
    /// The risk is accepted at this premium.
    Quoted(Premium),
    /// The risk is not accepted.
    Declined {
        /// Why, as human sentences naming the driver (`drivers[1]: …`); at least one.
        reasons: Vec<String>,
    },
}

impl RatingOutcome {
    /// The premium, when quoted.
    pub fn premium(&self) -> Option<&Premium> {
        match self {
            RatingOutcome::Quoted(premium) => Some(premium),
            RatingOutcome::Declined { .. } => None,
        }
    }

    /// The decline reasons, when declined.
    pub fn decline_reasons(&self) -> Option<&[String]> {
        match self {
            RatingOutcome::Quoted(_) => None,
            RatingOutcome::Declined { reasons } => Some(reasons),
        }
    }
}

/// A quoted premium and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Premium {
    /// The annual premium: the sum of [`Premium::breakdown_by_coverage`], at least the tables'
    /// minimum premium.
    pub annual: Money,
    /// `liability`, `collision`, `comprehensive` (summed over the vehicles, multi-car discount
    /// included), then `minimum_premium_adjustment` when the minimum premium applied. The
    /// amounts add up to [`Premium::annual`] exactly.
    pub breakdown_by_coverage: Vec<(String, Money)>,
    /// Every factor applied, per vehicle and coverage, in the order they were applied.
    pub factors: Vec<Factor>,
    /// The version of the tables used, e.g. `2026-01`.
    pub table_version: String,
}

/// One factor applied to one coverage of one vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// The factor table, e.g. `driver_age`, `territory`, `violations.speeding`,
    /// `collision_deductible`, `multi_car`.
    pub name: String,
    /// The coverage of the vehicle it multiplies, e.g. `vehicles[0].collision`.
    pub applies_to: String,
    /// Why this value, e.g. `drivers[1]: age 27 (25-29)` or `vehicles[0]: ZIP prefix 232`.
    pub detail: String,
    /// The multiplier.
    pub value: f64,
}

/// Rates `input` with `tables`: pure and deterministic (same tables and input, same outcome).
///
/// Declines, with every reason, when a decline rule fires for any driver, when a driver is
/// younger than the youngest rated age, or when there is no vehicle or no driver. Otherwise
/// quotes: see the crate documentation for the formula and the rounding rule.
pub fn rate(tables: &RatingTables, input: &RatingInput) -> RatingOutcome {
    let mut reasons = Vec::new();
    if input.vehicles.is_empty() {
        reasons.push("there is no vehicle to rate".to_owned());
    }
    if input.drivers.is_empty() {
        reasons.push("there is no driver to rate".to_owned());
    }
    let mut drivers = Vec::with_capacity(input.drivers.len());
    for (i, driver) in input.drivers.iter().enumerate() {
        reasons.extend(decline_reasons(tables, i, driver, input.today));
        match driver_factors(tables, i, driver, input.today) {
            Ok(factors) => drivers.push(factors),
            Err(reason) => reasons.push(reason),
        }
    }
    let mut vehicles = Vec::with_capacity(input.vehicles.len());
    for (i, vehicle) in input.vehicles.iter().enumerate() {
        match vehicle_factors(tables, i, vehicle, input.today) {
            Ok(factors) => vehicles.push(factors),
            Err(reason) => reasons.push(reason),
        }
    }
    let vehicle_count = u32::try_from(input.vehicles.len()).unwrap_or(u32::MAX);
    let multi_car = tables.multi_car.lookup(vehicle_count);
    if multi_car.is_none() && !input.vehicles.is_empty() {
        reasons.push(format!("no multi-car factor for {vehicle_count} vehicles"));
    }
    let multi_car = match (reasons.is_empty(), multi_car) {
        (true, Some(band)) => band,
        _ => return RatingOutcome::Declined { reasons },
    };

    // The highest-rated driver for each coverage, and their combined factor.
    let worst: Vec<(usize, f64)> = Line::ALL
        .iter()
        .map(|&line| {
            let mut worst = (0, f64::NEG_INFINITY);
            for (i, factors) in drivers.iter().enumerate() {
                let product = product_for(factors, line);
                if product > worst.1 {
                    worst = (i, product);
                }
            }
            worst
        })
        .collect();

    let mut totals = [0u64; 3];
    let mut factors = Vec::new();
    for (v, vehicle) in vehicles.iter().enumerate() {
        for line in Line::ALL {
            let applies_to = format!("vehicles[{v}].{}", line.as_str());
            let (driver, driver_product) = worst[line.index()];
            let mut amount = tables.base_cents(line, input.coverage.liability_limit) as f64;
            amount *= driver_product;
            let mut applied: Vec<&Applied> = drivers[driver]
                .iter()
                .filter(|f| f.applies_to.contains(line))
                .collect();
            for f in vehicle.iter().filter(|f| f.applies_to.contains(line)) {
                amount *= f.value;
                applied.push(f);
            }
            factors.extend(applied.into_iter().map(|f| Factor {
                name: f.name.clone(),
                applies_to: applies_to.clone(),
                detail: f.detail.clone(),
                value: f.value,
            }));
            let deductible = match line {
                Line::Liability => None,
                Line::Collision => Some((
                    "collision_deductible",
                    input.coverage.collision_deductible,
                    tables
                        .collision_deductible
                        .get(input.coverage.collision_deductible),
                )),
                Line::Comprehensive => Some((
                    "comprehensive_deductible",
                    input.coverage.comprehensive_deductible,
                    tables
                        .comprehensive_deductible
                        .get(input.coverage.comprehensive_deductible),
                )),
            };
            if let Some((name, deductible, value)) = deductible {
                amount *= value;
                factors.push(Factor {
                    name: name.to_owned(),
                    applies_to: applies_to.clone(),
                    detail: format!("{deductible} deductible"),
                    value,
                });
            }
            amount *= multi_car.factor;
            factors.push(Factor {
                name: "multi_car".to_owned(),
                applies_to,
                detail: format!(
                    "{} on the policy (band {})",
                    plural(input.vehicles.len(), "vehicle", "vehicles"),
                    multi_car.label()
                ),
                value: multi_car.factor,
            });
            let total = &mut totals[line.index()];
            *total = total.saturating_add(round_cents(amount));
        }
    }

    let mut breakdown_by_coverage: Vec<(String, Money)> = Line::ALL
        .iter()
        .map(|line| {
            (
                line.as_str().to_owned(),
                Money::from_cents(totals[line.index()]),
            )
        })
        .collect();
    let sum = totals.iter().fold(0u64, |acc, t| acc.saturating_add(*t));
    let minimum = tables.minimum_premium.cents();
    if sum < minimum {
        breakdown_by_coverage.push((
            MINIMUM_PREMIUM_ADJUSTMENT.to_owned(),
            Money::from_cents(minimum - sum),
        ));
    }
    RatingOutcome::Quoted(Premium {
        annual: Money::from_cents(sum.max(minimum)),
        breakdown_by_coverage,
        factors,
        table_version: tables.version.clone(),
    })
}

/// Rounds an amount of cents to whole cents, halves away from zero; saturates at the top
/// (and maps the impossible NaN to 0).
fn round_cents(amount: f64) -> u64 {
    // `as` saturates: +inf and anything above u64::MAX become u64::MAX, NaN becomes 0.
    amount.round() as u64
}

/// A factor resolved for one driver or vehicle, before it is attached to a coverage.
#[derive(Debug, Clone)]
struct Applied {
    name: String,
    detail: String,
    value: f64,
    applies_to: AppliesTo,
}

/// The product of the factors applying to `line`, in order.
fn product_for(factors: &[Applied], line: Line) -> f64 {
    factors
        .iter()
        .filter(|f| f.applies_to.contains(line))
        .fold(1.0, |acc, f| acc * f.value)
}

/// `surcharge` multiplied once per incident: a loop rather than `powi`, so that one more
/// incident provably never lowers the value (each step multiplies by a number ≥ 1, and IEEE
/// multiplication is monotonic).
fn compound(surcharge: f64, count: usize) -> f64 {
    (0..count).fold(1.0, |acc, _| acc * surcharge)
}

/// The first day of the look-back window of `years` years ending `today`: the same calendar
/// day `years` years earlier (28 February for 29 February). Incidents on or after it count.
pub(crate) fn window_start(today: Date, years: u32) -> Date {
    let year = i32::try_from(years)
        .ok()
        .and_then(|y| today.year().checked_sub(y));
    let Some(year) = year else {
        return Date::MIN;
    };
    Date::from_calendar_date(year, today.month(), today.day())
        .or_else(|_| Date::from_calendar_date(year, Month::February, 28))
        .unwrap_or(Date::MIN)
}

fn count_within(dates: &[Date], today: Date, years: u32) -> usize {
    let start = window_start(today, years);
    dates.iter().filter(|d| **d >= start).count()
}

/// The kind a violation is rated as: its normalized name when the tables list it, else
/// `other`.
pub(crate) fn rated_kind<'t>(tables: &'t RatingTables, kind: &str) -> &'t str {
    let normalized = kind.trim().to_lowercase().replace([' ', '-'], "_");
    tables
        .violations
        .surcharges
        .get_key_value(&normalized)
        .map_or(OTHER_VIOLATION, |(k, _)| k.as_str())
}

fn violations_within<'a>(
    tables: &'a RatingTables,
    driver: &'a RatedDriver,
    today: Date,
    years: u32,
) -> impl Iterator<Item = &'a str> + 'a {
    let start = window_start(today, years);
    driver
        .violations
        .iter()
        .filter(move |v| v.date >= start)
        .map(move |v| rated_kind(tables, &v.kind))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

fn decline_reasons(
    tables: &RatingTables,
    i: usize,
    driver: &RatedDriver,
    today: Date,
) -> Vec<String> {
    let mut reasons = Vec::new();
    for rule in &tables.decline_rules {
        match rule {
            DeclineRule::LicenseStatus { allowed } => {
                let status = driver.license_status.trim().to_ascii_lowercase();
                if !allowed.contains(&status) {
                    reasons.push(format!(
                        "drivers[{i}]: licence status is {:?}; only {} licences are accepted",
                        driver.license_status.trim(),
                        allowed.join(" or ")
                    ));
                }
            }
            DeclineRule::AtFaultAccidents {
                within_years,
                at_least,
            } => {
                let n = count_within(&driver.at_fault_accidents, today, *within_years);
                if n >= *at_least as usize {
                    reasons.push(format!(
                        "drivers[{i}]: {} in the last {within_years} years (declined at \
                         {at_least} or more)",
                        plural(n, "at-fault accident", "at-fault accidents")
                    ));
                }
            }
            DeclineRule::Violations {
                kind,
                within_years,
                at_least,
            } => {
                let n = violations_within(tables, driver, today, *within_years)
                    .filter(|k| k == kind)
                    .count();
                if n >= *at_least as usize {
                    reasons.push(format!(
                        "drivers[{i}]: {} in the last {within_years} years (declined at \
                         {at_least} or more)",
                        plural(
                            n,
                            &format!("{kind} violation"),
                            &format!("{kind} violations")
                        )
                    ));
                }
            }
        }
    }
    reasons
}

fn incident_factor(
    name: &str,
    what: (&str, &str),
    table: &IncidentFactor,
    i: usize,
    dates: &[Date],
    today: Date,
) -> Option<Applied> {
    let n = count_within(dates, today, table.within_years);
    (n > 0).then(|| Applied {
        name: name.to_owned(),
        detail: format!(
            "drivers[{i}]: {} in the last {} years, {} each",
            plural(n, what.0, what.1),
            table.within_years,
            table.surcharge
        ),
        value: compound(table.surcharge, n),
        applies_to: table.applies_to,
    })
}

/// The driver's factors, in application order: age, years licensed, at-fault accidents,
/// not-at-fault accidents, then violations by kind (alphabetically). Incident factors appear
/// only when at least one incident counts.
fn driver_factors(
    tables: &RatingTables,
    i: usize,
    driver: &RatedDriver,
    today: Date,
) -> Result<Vec<Applied>, String> {
    let mut factors = Vec::new();
    let age_band = tables
        .driver_age
        .bands
        .lookup(u32::from(driver.age))
        .ok_or_else(|| {
            format!(
                "drivers[{i}]: age {} is below the youngest rated age, {}",
                driver.age,
                tables.driver_age.bands.start()
            )
        })?;
    factors.push(Applied {
        name: "driver_age".to_owned(),
        detail: format!("drivers[{i}]: age {} ({})", driver.age, age_band.label()),
        value: age_band.factor,
        applies_to: tables.driver_age.applies_to,
    });
    let years = u32::from(driver.years_licensed);
    let licensed_band = tables
        .years_licensed
        .bands
        .lookup(years)
        .ok_or_else(|| format!("drivers[{i}]: no years-licensed band for {years} years"))?;
    factors.push(Applied {
        name: "years_licensed".to_owned(),
        detail: format!(
            "drivers[{i}]: {} ({})",
            plural(
                usize::from(driver.years_licensed),
                "year licensed",
                "years licensed"
            ),
            licensed_band.label()
        ),
        value: licensed_band.factor,
        applies_to: tables.years_licensed.applies_to,
    });
    factors.extend(incident_factor(
        "at_fault_accidents",
        ("at-fault accident", "at-fault accidents"),
        &tables.at_fault_accidents,
        i,
        &driver.at_fault_accidents,
        today,
    ));
    factors.extend(incident_factor(
        "not_at_fault_accidents",
        ("not-at-fault accident", "not-at-fault accidents"),
        &tables.not_at_fault_accidents,
        i,
        &driver.not_at_fault_accidents,
        today,
    ));
    let table = &tables.violations;
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for kind in violations_within(tables, driver, today, table.within_years) {
        *counts.entry(kind).or_default() += 1;
    }
    for (kind, n) in counts {
        let surcharge = table.surcharges.get(kind).copied().unwrap_or(1.0);
        factors.push(Applied {
            name: format!("violations.{kind}"),
            detail: format!(
                "drivers[{i}]: {} in the last {} years, {surcharge} each",
                plural(
                    n,
                    &format!("{kind} violation"),
                    &format!("{kind} violations")
                ),
                table.within_years
            ),
            value: compound(surcharge, n),
            applies_to: table.applies_to,
        });
    }
    Ok(factors)
}

/// The class of a vehicle: the first rule whose matchers all match, else `unknown`.
fn classify<'t>(tables: &'t RatingTables, vehicle: &RatedVehicle) -> &'t str {
    let body = vehicle.body_class.as_deref().map(str::to_lowercase);
    let kind = vehicle.vehicle_type.as_deref().map(str::to_lowercase);
    let matches = |pattern: &Option<String>, value: &Option<String>| match (pattern, value) {
        (None, _) => true,
        (Some(p), Some(v)) => v.contains(p.as_str()),
        (Some(_), None) => false,
    };
    tables
        .vehicle_class
        .rules
        .iter()
        .find(|r| {
            matches(&r.body_class_contains, &body) && matches(&r.vehicle_type_contains, &kind)
        })
        .map_or(UNKNOWN_CLASS, |r| r.class.as_str())
}

/// The vehicle's factors, in application order: age, class, mileage, use, territory.
fn vehicle_factors(
    tables: &RatingTables,
    i: usize,
    vehicle: &RatedVehicle,
    today: Date,
) -> Result<Vec<Applied>, String> {
    let mut factors = Vec::new();
    let age = &tables.vehicle_age;
    let (detail, value) = match vehicle.model_year {
        None => ("model year unknown".to_owned(), age.unknown),
        Some(year) => {
            // A next-year model is 0 years old.
            let years = u32::try_from(today.year() - i32::from(year)).unwrap_or(0);
            let band = age
                .bands
                .lookup(years)
                .ok_or_else(|| format!("vehicles[{i}]: no vehicle-age band for {years} years"))?;
            (
                format!(
                    "model year {year}, {} old ({})",
                    plural(years as usize, "year", "years"),
                    band.label()
                ),
                band.factor,
            )
        }
    };
    factors.push(Applied {
        name: "vehicle_age".to_owned(),
        detail: format!("vehicles[{i}]: {detail}"),
        value,
        applies_to: age.applies_to,
    });

    let class = classify(tables, vehicle);
    let described = match (&vehicle.body_class, &vehicle.vehicle_type) {
        (Some(b), Some(t)) => format!("body class {b:?}, type {t:?}"),
        (Some(b), None) => format!("body class {b:?}"),
        (None, Some(t)) => format!("type {t:?}"),
        (None, None) => "no body class or type".to_owned(),
    };
    factors.push(Applied {
        name: "vehicle_class".to_owned(),
        detail: format!("vehicles[{i}]: {class} ({described})"),
        value: tables
            .vehicle_class
            .factors
            .get(class)
            .copied()
            .unwrap_or(1.0),
        applies_to: tables.vehicle_class.applies_to,
    });

    let mileage = tables
        .annual_mileage
        .bands
        .lookup(vehicle.annual_mileage)
        .ok_or_else(|| {
            format!(
                "vehicles[{i}]: no mileage band for {} miles",
                vehicle.annual_mileage
            )
        })?;
    factors.push(Applied {
        name: "annual_mileage".to_owned(),
        detail: format!(
            "vehicles[{i}]: {} miles a year ({})",
            vehicle.annual_mileage,
            mileage.label()
        ),
        value: mileage.factor,
        applies_to: tables.annual_mileage.applies_to,
    });

    factors.push(Applied {
        name: "vehicle_use".to_owned(),
        detail: format!("vehicles[{i}]: {}", vehicle.use_),
        value: tables.vehicle_use.get(vehicle.use_),
        applies_to: tables.vehicle_use.applies_to,
    });

    let prefix = vehicle.garaging_zip.prefix3();
    let territory = &tables.territory;
    let (detail, value) = match territory.zip3.get(prefix) {
        Some(&value) => (format!("vehicles[{i}]: ZIP prefix {prefix}"), value),
        None => (
            format!("vehicles[{i}]: ZIP prefix {prefix} (default territory)"),
            territory.default,
        ),
    };
    factors.push(Applied {
        name: "territory".to_owned(),
        detail,
        value,
        applies_to: territory.applies_to,
    });
    Ok(factors)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn window_start_is_the_same_day_years_earlier() {
        assert_eq!(
            window_start(date!(2026 - 06 - 15), 5),
            date!(2021 - 06 - 15)
        );
        assert_eq!(
            window_start(date!(2024 - 02 - 29), 3),
            date!(2021 - 02 - 28)
        );
        assert_eq!(
            window_start(date!(2024 - 02 - 29), 4),
            date!(2020 - 02 - 29)
        );
        assert_eq!(
            window_start(date!(2026 - 01 - 01), 1),
            date!(2025 - 01 - 01)
        );
    }

    #[test]
    fn counts_on_the_window_boundary() {
        let today = date!(2026 - 06 - 15);
        let dates = [
            date!(2021 - 06 - 14),
            date!(2021 - 06 - 15),
            date!(2026 - 06 - 15),
        ];
        assert_eq!(count_within(&dates, today, 5), 2);
    }

    #[test]
    fn rounding_is_half_away_from_zero_and_saturates() {
        assert_eq!(round_cents(0.5), 1);
        assert_eq!(round_cents(1.49), 1);
        assert_eq!(round_cents(2.5), 3);
        assert_eq!(round_cents(f64::INFINITY), u64::MAX);
        assert_eq!(round_cents(1e300), u64::MAX);
    }

    #[test]
    fn compound_multiplies_per_incident() {
        assert_eq!(compound(1.4, 0), 1.0);
        assert_eq!(compound(1.4, 1), 1.4);
        assert!((compound(1.4, 2) - 1.96).abs() < 1e-12);
    }

    #[test]
    fn violation_kinds_are_normalized() {
        let t = RatingTables::default_tables();
        assert_eq!(rated_kind(t, "speeding"), "speeding");
        assert_eq!(rated_kind(t, " Distracted-Driving "), "distracted_driving");
        assert_eq!(rated_kind(t, "reckless driving"), "reckless_driving");
        assert_eq!(rated_kind(t, "DUI"), "dui");
        assert_eq!(rated_kind(t, "parking"), "other");
        assert_eq!(rated_kind(t, ""), "other");
    }

    fn vehicle(body: Option<&str>, kind: Option<&str>) -> RatedVehicle {
        RatedVehicle {
            model_year: Some(2020),
            body_class: body.map(str::to_owned),
            vehicle_type: kind.map(str::to_owned),
            annual_mileage: 10_000,
            use_: quote_domain::VehicleUse::Pleasure,
            garaging_zip: quote_domain::ZipCode::parse("23220").unwrap(),
        }
    }

    #[test]
    fn classifies_vpic_body_classes_and_types() {
        let t = RatingTables::default_tables();
        let cases = [
            (Some("Sedan/Saloon"), Some("PASSENGER CAR"), "sedan"),
            (Some("Hatchback/Liftback/Notchback"), None, "sedan"),
            (
                Some("Sport Utility Vehicle (SUV)/Multi-Purpose Vehicle (MPV)"),
                Some("MULTIPURPOSE PASSENGER VEHICLE (MPV)"),
                "suv",
            ),
            (Some("Crossover Utility Vehicle (CUV)"), None, "suv"),
            (Some("Pickup"), Some("TRUCK"), "pickup"),
            (Some("Sport Utility Truck (SUT)"), None, "pickup"),
            (Some("Convertible/Cabriolet"), None, "sports"),
            (Some("Coupe"), Some("PASSENGER CAR"), "sports"),
            (
                Some("Minivan"),
                Some("MULTIPURPOSE PASSENGER VEHICLE (MPV)"),
                "minivan",
            ),
            (None, Some("TRUCK"), "pickup"),
            (None, Some("PASSENGER CAR"), "sedan"),
            (Some("Limousine"), Some("INCOMPLETE VEHICLE"), "unknown"),
            (None, None, "unknown"),
        ];
        for (body, kind, class) in cases {
            assert_eq!(
                classify(t, &vehicle(body, kind)),
                class,
                "{body:?} {kind:?}"
            );
        }
    }
}
