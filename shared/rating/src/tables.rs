//! Rating tables: the JSON file format, its validation and the validated [`RatingTables`].
//!
//! A table file is parsed in two steps. Serde reads it into private `Raw*` structs that
//! mirror the file exactly (unknown fields are rejected, so a misspelt key is an error rather
//! than a silently ignored factor); then [`validate`] checks every rule the rating function
//! and its property tests rely on and builds the validated model, collecting *every* problem
//! with the path of the offending value (`factors.driver_age.bands[2]`,
//! `base_rates_cents.liability["100/300/100"]`, …) instead of stopping at the first one.
//!
//! The format itself is described in the crate documentation and in `README.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use quote_domain::{Deductible, LiabilityLimit, Money, VehicleUse};
use serde::Deserialize;
use time::Date;

/// The shipped default tables, `tables/2026-01.json`, embedded at compile time.
pub const DEFAULT_TABLES_JSON: &str = include_str!("../tables/2026-01.json");

/// The only `format_version` this crate reads.
pub const FORMAT_VERSION: u32 = 1;

/// Longest look-back window (`within_years`) a table may use.
pub const MAX_WITHIN_YEARS: u32 = 50;

/// The lowest driver age the first `driver_age` band may start at or below: the youngest age
/// the quote domain accepts.
pub const YOUNGEST_RATED_AGE: u32 = 16;

// ---------------------------------------------------------------------------------------------
// Coverage lines.
// ---------------------------------------------------------------------------------------------

/// A coverage line rated separately: every policy carries all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Line {
    Liability,
    Collision,
    Comprehensive,
}

impl Line {
    pub(crate) const ALL: [Line; 3] = [Line::Liability, Line::Collision, Line::Comprehensive];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Line::Liability => "liability",
            Line::Collision => "collision",
            Line::Comprehensive => "comprehensive",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Line::Liability => 0,
            Line::Collision => 1,
            Line::Comprehensive => 2,
        }
    }

    fn parse(s: &str) -> Option<Line> {
        Line::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// The coverage lines a factor multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AppliesTo([bool; 3]);

impl AppliesTo {
    pub(crate) fn contains(self, line: Line) -> bool {
        self.0[line.index()]
    }
}

// ---------------------------------------------------------------------------------------------
// Validated model.
// ---------------------------------------------------------------------------------------------

/// One band of a banded lookup: `min..=max`, or `min` and up when `max` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Band {
    pub(crate) min: u32,
    pub(crate) max: Option<u32>,
    pub(crate) factor: f64,
}

impl Band {
    fn contains(&self, value: u32) -> bool {
        value >= self.min && self.max.is_none_or(|max| value <= max)
    }

    /// `16-20`, `2` (a one-value band) or `75+`.
    pub(crate) fn label(&self) -> String {
        match self.max {
            Some(max) if max == self.min => max.to_string(),
            Some(max) => format!("{}-{max}", self.min),
            None => format!("{}+", self.min),
        }
    }
}

/// Contiguous, non-overlapping bands, open-ended at the top.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bands(Vec<Band>);

impl Bands {
    /// The band holding `value`; `None` only below the first band.
    pub(crate) fn lookup(&self, value: u32) -> Option<&Band> {
        self.0.iter().find(|b| b.contains(value))
    }

    /// The lowest value covered.
    pub(crate) fn start(&self) -> u32 {
        self.0.first().map_or(0, |b| b.min)
    }
}

/// A banded factor table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BandedFactor {
    pub(crate) applies_to: AppliesTo,
    pub(crate) bands: Bands,
}

/// A surcharge multiplied once per incident within a look-back window.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IncidentFactor {
    pub(crate) applies_to: AppliesTo,
    pub(crate) within_years: u32,
    pub(crate) surcharge: f64,
}

/// Violation surcharges by kind; unknown kinds are rated as `other`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ViolationFactor {
    pub(crate) applies_to: AppliesTo,
    pub(crate) within_years: u32,
    pub(crate) surcharges: BTreeMap<String, f64>,
}

/// The kind every violation whose kind the table does not list is rated as.
pub(crate) const OTHER_VIOLATION: &str = "other";

/// The class of vehicles no classification rule matches.
pub(crate) const UNKNOWN_CLASS: &str = "unknown";

/// Vehicle age bands, plus the factor for an unknown model year.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VehicleAgeFactor {
    pub(crate) applies_to: AppliesTo,
    pub(crate) bands: Bands,
    pub(crate) unknown: f64,
}

/// One classification rule; every matcher present must match (case-insensitive substring).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClassRule {
    pub(crate) class: String,
    pub(crate) body_class_contains: Option<String>,
    pub(crate) vehicle_type_contains: Option<String>,
}

/// Vehicle classes: their factors and the ordered rules assigning them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VehicleClassFactor {
    pub(crate) applies_to: AppliesTo,
    pub(crate) factors: BTreeMap<String, f64>,
    pub(crate) rules: Vec<ClassRule>,
}

/// Factors by [`VehicleUse`], in the order of [`VehicleUse::ALL`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VehicleUseFactor {
    pub(crate) applies_to: AppliesTo,
    pub(crate) factors: [f64; 3],
}

impl VehicleUseFactor {
    pub(crate) fn get(&self, vehicle_use: VehicleUse) -> f64 {
        self.factors[use_index(vehicle_use)]
    }
}

/// Territory factors by three-digit ZIP prefix, with a default.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TerritoryFactor {
    pub(crate) applies_to: AppliesTo,
    pub(crate) default: f64,
    pub(crate) zip3: BTreeMap<String, f64>,
}

/// Deductible factors, in the order of [`Deductible::ALL`] (lowest deductible first).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeductibleFactors([f64; 4]);

impl DeductibleFactors {
    pub(crate) fn get(&self, deductible: Deductible) -> f64 {
        // Every `Deductible` is one of `Deductible::ALL` (its field is private and only ever
        // set from that list), so the position always exists.
        let i = Deductible::ALL
            .iter()
            .position(|d| *d == deductible)
            .unwrap_or(0);
        self.0[i]
    }
}

/// A decline rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeclineRule {
    /// Decline when a driver's licence status (lower-cased) is not in `allowed`.
    LicenseStatus { allowed: Vec<String> },
    /// Decline when a driver has at least `at_least` at-fault accidents in the window.
    AtFaultAccidents { within_years: u32, at_least: u32 },
    /// Decline when a driver has at least `at_least` violations of `kind` in the window.
    Violations {
        kind: String,
        within_years: u32,
        at_least: u32,
    },
}

/// Validated rating tables: build them with [`RatingTables::from_json`] or take the shipped
/// [`RatingTables::default_tables`].
///
/// Everything the rating function relies on has been checked: every band table covers its
/// whole domain without gaps or overlaps, every factor is positive and finite, every liability
/// limit and deductible has its rate, accident and violation surcharges are at least 1,
/// deductible factors never grow with the deductible, mileage factors never shrink with the
/// mileage, and the multi-car discount never makes an extra car lower the total for identical
/// cars (see the crate documentation for the full list).
#[derive(Debug, Clone, PartialEq)]
pub struct RatingTables {
    pub(crate) version: String,
    effective_date: Date,
    description: Option<String>,
    pub(crate) minimum_premium: Money,
    /// Base rates in cents by limit, in the order of [`LiabilityLimit::ALL`].
    pub(crate) liability_base: [u64; 4],
    pub(crate) collision_base: u64,
    pub(crate) comprehensive_base: u64,
    pub(crate) driver_age: BandedFactor,
    pub(crate) years_licensed: BandedFactor,
    pub(crate) at_fault_accidents: IncidentFactor,
    pub(crate) not_at_fault_accidents: IncidentFactor,
    pub(crate) violations: ViolationFactor,
    pub(crate) vehicle_age: VehicleAgeFactor,
    pub(crate) vehicle_class: VehicleClassFactor,
    pub(crate) annual_mileage: BandedFactor,
    pub(crate) vehicle_use: VehicleUseFactor,
    pub(crate) territory: TerritoryFactor,
    pub(crate) collision_deductible: DeductibleFactors,
    pub(crate) comprehensive_deductible: DeductibleFactors,
    pub(crate) multi_car: Bands,
    pub(crate) decline_rules: Vec<DeclineRule>,
}

impl RatingTables {
    /// Parses and validates a table file, reporting every problem at once.
    pub fn from_json(json: &str) -> Result<RatingTables, TableError> {
        // Read the format version first, so that a file in a newer format is reported as such
        // rather than as a list of unknown fields.
        let header: RawHeader = serde_json::from_str(json).map_err(TableError::Parse)?;
        match header.format_version {
            Some(FORMAT_VERSION) => {}
            Some(other) => {
                return Err(TableError::Invalid(vec![TableIssue::new(
                    "format_version",
                    format!("this crate reads format_version {FORMAT_VERSION}, got {other}"),
                )]))
            }
            None => {
                return Err(TableError::Invalid(vec![TableIssue::new(
                    "format_version",
                    format!("missing (expected {FORMAT_VERSION})"),
                )]))
            }
        }
        let raw: RawTables = serde_json::from_str(json).map_err(TableError::Parse)?;
        let mut issues = Issues::default();
        let tables = validate(raw, &mut issues);
        if issues.0.is_empty() {
            Ok(tables)
        } else {
            Err(TableError::Invalid(issues.0))
        }
    }

    /// The shipped tables ([`DEFAULT_TABLES_JSON`], version `2026-01`), parsed once.
    ///
    /// # Panics
    ///
    /// Never in a released build: the embedded file is validated by this crate's tests. It
    /// would panic on first use if the embedded file were edited into an invalid one.
    pub fn default_tables() -> &'static RatingTables {
        static DEFAULT: OnceLock<RatingTables> = OnceLock::new();
        DEFAULT.get_or_init(|| match RatingTables::from_json(DEFAULT_TABLES_JSON) {
            Ok(tables) => tables,
            Err(e) => panic!("the embedded rating tables are invalid: {e}"),
        })
    }

    /// The version id, e.g. `2026-01`, recorded on every quote rated with these tables.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The first day these tables may be used.
    pub fn effective_date(&self) -> Date {
        self.effective_date
    }

    /// Whether these tables may be used on `date` (on or after the effective date).
    pub fn is_effective_on(&self, date: Date) -> bool {
        date >= self.effective_date
    }

    /// The currency of every amount: always `USD`.
    pub fn currency(&self) -> &'static str {
        "USD"
    }

    /// The free-text description, if the file has one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The lowest annual premium quoted.
    pub fn minimum_premium(&self) -> Money {
        self.minimum_premium
    }

    /// The annual base rate of the liability coverage at `limit`, before any factor.
    pub fn liability_base_rate(&self, limit: LiabilityLimit) -> Money {
        Money::from_cents(self.liability_base[limit_index(limit)])
    }

    /// The annual base rate of the collision coverage, before any factor.
    pub fn collision_base_rate(&self) -> Money {
        Money::from_cents(self.collision_base)
    }

    /// The annual base rate of the comprehensive coverage, before any factor.
    pub fn comprehensive_base_rate(&self) -> Money {
        Money::from_cents(self.comprehensive_base)
    }

    pub(crate) fn base_cents(&self, line: Line, limit: LiabilityLimit) -> u64 {
        match line {
            Line::Liability => self.liability_base[limit_index(limit)],
            Line::Collision => self.collision_base,
            Line::Comprehensive => self.comprehensive_base,
        }
    }
}

fn limit_index(limit: LiabilityLimit) -> usize {
    match limit {
        LiabilityLimit::L25_50_25 => 0,
        LiabilityLimit::L50_100_50 => 1,
        LiabilityLimit::L100_300_100 => 2,
        LiabilityLimit::L250_500_250 => 3,
    }
}

fn use_index(vehicle_use: VehicleUse) -> usize {
    match vehicle_use {
        VehicleUse::Commute => 0,
        VehicleUse::Pleasure => 1,
        VehicleUse::Business => 2,
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------------

/// One problem in a table file: the path of the offending value and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableIssue {
    /// Path in the file, e.g. `factors.driver_age.bands[2]` or
    /// `factors.deductible.collision["1000"]`.
    pub path: String,
    /// A human sentence.
    pub problem: String,
}

impl TableIssue {
    fn new(path: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for TableIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

/// Why a table file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// Not JSON, or not the shape of the format (a missing, misspelt or mistyped field); the
    /// message is serde's, with the line and column.
    #[error("rating tables do not parse: {0}")]
    Parse(#[source] serde_json::Error),
    /// Well-formed but breaking the rules; every problem found, in file order.
    #[error("invalid rating tables: {}", join_issues(.0))]
    Invalid(Vec<TableIssue>),
}

impl TableError {
    /// The validation problems (empty for a [`TableError::Parse`]).
    pub fn issues(&self) -> &[TableIssue] {
        match self {
            TableError::Parse(_) => &[],
            TableError::Invalid(issues) => issues,
        }
    }
}

fn join_issues(issues: &[TableIssue]) -> String {
    issues
        .iter()
        .map(TableIssue::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, Default)]
struct Issues(Vec<TableIssue>);

impl Issues {
    fn push(&mut self, path: impl Into<String>, problem: impl Into<String>) {
        self.0.push(TableIssue::new(path, problem));
    }

    /// Checks that a factor is positive and finite.
    fn factor(&mut self, path: &str, value: f64) -> f64 {
        if !(value.is_finite() && value > 0.0) {
            self.push(
                path,
                format!("a factor must be a positive finite number, got {value}"),
            );
        }
        value
    }

    /// Checks that a surcharge is finite and at least 1 (an incident never lowers a premium).
    fn surcharge(&mut self, path: &str, value: f64) -> f64 {
        if !(value.is_finite() && value >= 1.0) {
            self.push(
                path,
                format!(
                    "a surcharge must be a finite number of at least 1 (an incident must never \
                     lower the premium), got {value}"
                ),
            );
        }
        value
    }

    fn within_years(&mut self, path: &str, years: u32) -> u32 {
        if !(1..=MAX_WITHIN_YEARS).contains(&years) {
            self.push(
                path,
                format!("must be 1 to {MAX_WITHIN_YEARS} years, got {years}"),
            );
        }
        years
    }
}

// ---------------------------------------------------------------------------------------------
// The file format.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawHeader {
    #[serde(default)]
    format_version: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTables {
    #[allow(dead_code)] // checked from the header
    format_version: u32,
    version: String,
    effective_date: String,
    currency: String,
    #[serde(default)]
    description: Option<String>,
    minimum_premium_cents: u64,
    base_rates_cents: RawBaseRates,
    factors: RawFactors,
    decline_rules: Vec<RawDeclineRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBaseRates {
    liability: BTreeMap<String, u64>,
    collision: u64,
    comprehensive: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFactors {
    driver_age: RawBanded,
    years_licensed: RawBanded,
    at_fault_accidents: RawIncidents,
    not_at_fault_accidents: RawIncidents,
    violations: RawViolations,
    vehicle_age: RawVehicleAge,
    vehicle_class: RawVehicleClass,
    annual_mileage: RawBanded,
    vehicle_use: RawVehicleUse,
    territory: RawTerritory,
    deductible: RawDeductibles,
    multi_car: RawMultiCar,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBand {
    min: u32,
    #[serde(default)]
    max: Option<u32>,
    factor: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBanded {
    applies_to: Vec<String>,
    bands: Vec<RawBand>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncidents {
    applies_to: Vec<String>,
    within_years: u32,
    surcharge_per_incident: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawViolations {
    applies_to: Vec<String>,
    within_years: u32,
    surcharge_per_violation: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVehicleAge {
    applies_to: Vec<String>,
    bands: Vec<RawBand>,
    unknown: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVehicleClass {
    applies_to: Vec<String>,
    factors: BTreeMap<String, f64>,
    rules: Vec<RawClassRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClassRule {
    class: String,
    #[serde(default)]
    body_class_contains: Option<String>,
    #[serde(default)]
    vehicle_type_contains: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVehicleUse {
    applies_to: Vec<String>,
    factors: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerritory {
    applies_to: Vec<String>,
    default: f64,
    zip3: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeductibles {
    collision: BTreeMap<String, f64>,
    comprehensive: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMultiCar {
    bands: Vec<RawBand>,
}

#[derive(Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
enum RawDeclineRule {
    LicenseStatus {
        allowed: Vec<String>,
    },
    AtFaultAccidents {
        within_years: u32,
        at_least: u32,
    },
    Violations {
        kind: String,
        within_years: u32,
        at_least: u32,
    },
}

// ---------------------------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------------------------

fn validate(raw: RawTables, issues: &mut Issues) -> RatingTables {
    let version = raw.version.trim().to_owned();
    let version_ok = (1..=64).contains(&version.len())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !version_ok {
        issues.push(
            "version",
            format!(
                "must be 1 to 64 ASCII letters, digits, '.', '_' or '-', got {:?}",
                raw.version
            ),
        );
    }
    let effective_date = parse_iso_date(&raw.effective_date).unwrap_or_else(|| {
        issues.push(
            "effective_date",
            format!(
                "expected a date as YYYY-MM-DD, got {:?}",
                raw.effective_date
            ),
        );
        Date::MIN
    });
    if raw.currency != "USD" {
        issues.push(
            "currency",
            format!(
                "must be \"USD\" (amounts are US cents), got {:?}",
                raw.currency
            ),
        );
    }
    if raw.minimum_premium_cents == 0 {
        issues.push("minimum_premium_cents", "must be more than zero");
    }
    let description = raw
        .description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());

    let base = &raw.base_rates_cents;
    let liability_base = check_liability(&base.liability, issues);
    for (name, rate) in [
        ("collision", base.collision),
        ("comprehensive", base.comprehensive),
    ] {
        if rate == 0 {
            issues.push(format!("base_rates_cents.{name}"), "must be more than zero");
        }
    }

    let f = &raw.factors;
    let driver_age = check_banded(
        "factors.driver_age",
        &f.driver_age,
        YOUNGEST_RATED_AGE,
        Start::AtMost,
        issues,
    );
    let years_licensed = check_banded(
        "factors.years_licensed",
        &f.years_licensed,
        0,
        Start::Exactly,
        issues,
    );
    let at_fault_accidents =
        check_incidents("factors.at_fault_accidents", &f.at_fault_accidents, issues);
    let not_at_fault_accidents = check_incidents(
        "factors.not_at_fault_accidents",
        &f.not_at_fault_accidents,
        issues,
    );
    let violations = check_violations("factors.violations", &f.violations, issues);
    let vehicle_age = VehicleAgeFactor {
        applies_to: check_applies_to(
            "factors.vehicle_age.applies_to",
            &f.vehicle_age.applies_to,
            issues,
        ),
        bands: check_bands(
            "factors.vehicle_age.bands",
            &f.vehicle_age.bands,
            0,
            Start::Exactly,
            issues,
        ),
        unknown: issues.factor("factors.vehicle_age.unknown", f.vehicle_age.unknown),
    };
    let vehicle_class = check_vehicle_class("factors.vehicle_class", &f.vehicle_class, issues);
    let annual_mileage = check_banded(
        "factors.annual_mileage",
        &f.annual_mileage,
        0,
        Start::Exactly,
        issues,
    );
    check_non_decreasing(
        "factors.annual_mileage.bands",
        &annual_mileage.bands,
        "more mileage must never cost less",
        issues,
    );
    let vehicle_use = check_vehicle_use("factors.vehicle_use", &f.vehicle_use, issues);
    let territory = check_territory("factors.territory", &f.territory, issues);
    let collision_deductible = check_deductibles(
        "factors.deductible.collision",
        &f.deductible.collision,
        issues,
    );
    let comprehensive_deductible = check_deductibles(
        "factors.deductible.comprehensive",
        &f.deductible.comprehensive,
        issues,
    );
    let multi_car = check_multi_car("factors.multi_car.bands", &f.multi_car.bands, issues);
    let decline_rules = check_decline_rules(&raw.decline_rules, &violations, issues);

    RatingTables {
        version,
        effective_date,
        description,
        minimum_premium: Money::from_cents(raw.minimum_premium_cents),
        liability_base,
        collision_base: base.collision,
        comprehensive_base: base.comprehensive,
        driver_age,
        years_licensed,
        at_fault_accidents,
        not_at_fault_accidents,
        violations,
        vehicle_age,
        vehicle_class,
        annual_mileage,
        vehicle_use,
        territory,
        collision_deductible,
        comprehensive_deductible,
        multi_car,
        decline_rules,
    }
}

fn parse_iso_date(s: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &format).ok()
}

fn check_liability(map: &BTreeMap<String, u64>, issues: &mut Issues) -> [u64; 4] {
    const PATH: &str = "base_rates_cents.liability";
    for key in map.keys() {
        if !LiabilityLimit::ALL.iter().any(|l| l.as_str() == key) {
            issues.push(
                format!("{PATH}[{key:?}]"),
                "not an offered liability limit (25/50/25, 50/100/50, 100/300/100, 250/500/250)",
            );
        }
    }
    let mut rates = [0; 4];
    let mut previous: Option<(LiabilityLimit, u64)> = None;
    for (i, limit) in LiabilityLimit::ALL.into_iter().enumerate() {
        let path = format!("{PATH}[{:?}]", limit.as_str());
        match map.get(limit.as_str()) {
            None => issues.push(PATH, format!("missing the base rate for the {limit} limit")),
            Some(0) => issues.push(path, "must be more than zero"),
            Some(&rate) => {
                rates[i] = rate;
                if let Some((lower, lower_rate)) = previous {
                    if rate < lower_rate {
                        issues.push(
                            path,
                            format!(
                                "{rate} is below the {lower} rate {lower_rate} (a higher limit \
                                 must never cost less)"
                            ),
                        );
                    }
                }
                previous = Some((limit, rate));
            }
        }
    }
    rates
}

fn check_applies_to(path: &str, names: &[String], issues: &mut Issues) -> AppliesTo {
    let mut set = [false; 3];
    if names.is_empty() {
        issues.push(
            path,
            "must name at least one of liability, collision, comprehensive",
        );
    }
    for (i, name) in names.iter().enumerate() {
        match Line::parse(name) {
            None => issues.push(
                format!("{path}[{i}]"),
                format!("{name:?} is not a coverage (liability, collision, comprehensive)"),
            ),
            Some(line) if set[line.index()] => {
                issues.push(format!("{path}[{i}]"), format!("{name} is listed twice"))
            }
            Some(line) => set[line.index()] = true,
        }
    }
    AppliesTo(set)
}

/// How the first band relates to the start of the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The first band starts exactly at the domain's start.
    Exactly,
    /// The first band starts at or below the given value (lower values are out of range).
    AtMost,
}

fn check_banded(
    path: &str,
    raw: &RawBanded,
    start: u32,
    rule: Start,
    issues: &mut Issues,
) -> BandedFactor {
    BandedFactor {
        applies_to: check_applies_to(&format!("{path}.applies_to"), &raw.applies_to, issues),
        bands: check_bands(&format!("{path}.bands"), &raw.bands, start, rule, issues),
    }
}

/// Checks that bands are well-formed, contiguous, non-overlapping, start where the domain
/// starts and are open-ended at the top, and that their factors are positive and finite.
fn check_bands(path: &str, raw: &[RawBand], start: u32, rule: Start, issues: &mut Issues) -> Bands {
    let Some(first) = raw.first() else {
        issues.push(path, "at least one band is required");
        return Bands(Vec::new());
    };
    match rule {
        Start::Exactly if first.min != start => issues.push(
            format!("{path}[0].min"),
            format!(
                "the first band must start at {start} so that every value is covered, got {}",
                first.min
            ),
        ),
        Start::AtMost if first.min > start => issues.push(
            format!("{path}[0].min"),
            format!(
                "the first band must start at {start} or lower so that every accepted value is \
                 covered, got {}",
                first.min
            ),
        ),
        _ => {}
    }
    let bands: Vec<Band> = raw
        .iter()
        .map(|b| Band {
            min: b.min,
            max: b.max,
            factor: b.factor,
        })
        .collect();
    for (i, band) in bands.iter().enumerate() {
        if let Some(max) = band.max {
            if max < band.min {
                issues.push(
                    format!("{path}[{i}]"),
                    format!("max {max} is below min {}", band.min),
                );
            }
        }
        issues.factor(&format!("{path}[{i}].factor"), band.factor);
        if i == 0 {
            continue;
        }
        let prev = &bands[i - 1];
        match prev.max {
            None => issues.push(
                format!("{path}[{}].max", i - 1),
                "only the last band may be open-ended (max: null)",
            ),
            Some(prev_max) if band.min <= prev_max => issues.push(
                format!("{path}[{i}]"),
                format!(
                    "band {} overlaps the previous band {} (bands must be in ascending \
                     order without overlaps)",
                    band.label(),
                    prev.label()
                ),
            ),
            Some(prev_max) if band.min > prev_max.saturating_add(1) => issues.push(
                format!("{path}[{i}].min"),
                format!(
                    "gap: no band covers {}-{} (the previous band ends at {prev_max})",
                    prev_max + 1,
                    band.min - 1
                ),
            ),
            Some(_) => {}
        }
    }
    if let Some(last) = bands.last() {
        if last.max.is_some() {
            issues.push(
                format!("{path}[{}].max", bands.len() - 1),
                format!(
                    "the last band must be open-ended (max: null) so that every value is \
                     covered, got {}",
                    last.label()
                ),
            );
        }
    }
    Bands(bands)
}

fn check_non_decreasing(path: &str, bands: &Bands, why: &str, issues: &mut Issues) {
    for (i, pair) in bands.0.windows(2).enumerate() {
        if pair[1].factor < pair[0].factor {
            issues.push(
                format!("{path}[{}].factor", i + 1),
                format!(
                    "{} is below the factor {} of the previous band {} ({why})",
                    pair[1].factor,
                    pair[0].factor,
                    pair[0].label()
                ),
            );
        }
    }
}

fn check_incidents(path: &str, raw: &RawIncidents, issues: &mut Issues) -> IncidentFactor {
    IncidentFactor {
        applies_to: check_applies_to(&format!("{path}.applies_to"), &raw.applies_to, issues),
        within_years: issues.within_years(&format!("{path}.within_years"), raw.within_years),
        surcharge: issues.surcharge(
            &format!("{path}.surcharge_per_incident"),
            raw.surcharge_per_incident,
        ),
    }
}

/// A kind or class name: a lower-case ASCII letter, then lower-case letters, digits or `_`.
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_violations(path: &str, raw: &RawViolations, issues: &mut Issues) -> ViolationFactor {
    let map_path = format!("{path}.surcharge_per_violation");
    let mut surcharges = BTreeMap::new();
    for (kind, &value) in &raw.surcharge_per_violation {
        let key_path = format!("{map_path}[{kind:?}]");
        if !is_name(kind) {
            issues.push(
                &key_path,
                "a violation kind is lower-case letters, digits and '_', e.g. reckless_driving",
            );
        }
        surcharges.insert(kind.clone(), issues.surcharge(&key_path, value));
    }
    if !surcharges.contains_key(OTHER_VIOLATION) {
        issues.push(
            map_path,
            "missing the \"other\" surcharge, used for every kind the table does not list",
        );
    }
    ViolationFactor {
        applies_to: check_applies_to(&format!("{path}.applies_to"), &raw.applies_to, issues),
        within_years: issues.within_years(&format!("{path}.within_years"), raw.within_years),
        surcharges,
    }
}

fn check_vehicle_class(
    path: &str,
    raw: &RawVehicleClass,
    issues: &mut Issues,
) -> VehicleClassFactor {
    let applies_to = check_applies_to(&format!("{path}.applies_to"), &raw.applies_to, issues);
    let mut factors = BTreeMap::new();
    for (class, &value) in &raw.factors {
        let key_path = format!("{path}.factors[{class:?}]");
        if !is_name(class) {
            issues.push(
                &key_path,
                "a class name is lower-case letters, digits and '_', e.g. sedan",
            );
        }
        factors.insert(class.clone(), issues.factor(&key_path, value));
    }
    if !factors.contains_key(UNKNOWN_CLASS) {
        issues.push(
            format!("{path}.factors"),
            "missing the \"unknown\" class, used when no rule matches",
        );
    }
    let mut rules = Vec::with_capacity(raw.rules.len());
    for (i, rule) in raw.rules.iter().enumerate() {
        let rule_path = format!("{path}.rules[{i}]");
        if !factors.contains_key(&rule.class) {
            issues.push(
                format!("{rule_path}.class"),
                format!("{:?} is not a class listed in {path}.factors", rule.class),
            );
        }
        let matcher = |name: &str, value: &Option<String>, issues: &mut Issues| {
            let normalized = value.as_ref().map(|v| v.trim().to_lowercase());
            if normalized.as_ref().is_some_and(|v| v.is_empty()) {
                issues.push(format!("{rule_path}.{name}"), "must not be blank");
            }
            normalized
        };
        let body_class_contains = matcher("body_class_contains", &rule.body_class_contains, issues);
        let vehicle_type_contains =
            matcher("vehicle_type_contains", &rule.vehicle_type_contains, issues);
        if body_class_contains.is_none() && vehicle_type_contains.is_none() {
            issues.push(
                rule_path,
                "a rule needs body_class_contains, vehicle_type_contains or both",
            );
        }
        rules.push(ClassRule {
            class: rule.class.clone(),
            body_class_contains,
            vehicle_type_contains,
        });
    }
    VehicleClassFactor {
        applies_to,
        factors,
        rules,
    }
}

fn check_vehicle_use(path: &str, raw: &RawVehicleUse, issues: &mut Issues) -> VehicleUseFactor {
    let map_path = format!("{path}.factors");
    for key in raw.factors.keys() {
        if !VehicleUse::ALL.iter().any(|u| u.as_str() == key) {
            issues.push(
                format!("{map_path}[{key:?}]"),
                "not a vehicle use (commute, pleasure, business)",
            );
        }
    }
    let mut factors = [1.0; 3];
    for vehicle_use in VehicleUse::ALL {
        match raw.factors.get(vehicle_use.as_str()) {
            None => issues.push(
                &map_path,
                format!("missing the factor for {vehicle_use} use"),
            ),
            Some(&value) => {
                factors[use_index(vehicle_use)] =
                    issues.factor(&format!("{map_path}[{:?}]", vehicle_use.as_str()), value);
            }
        }
    }
    VehicleUseFactor {
        applies_to: check_applies_to(&format!("{path}.applies_to"), &raw.applies_to, issues),
        factors,
    }
}

fn check_territory(path: &str, raw: &RawTerritory, issues: &mut Issues) -> TerritoryFactor {
    let mut zip3 = BTreeMap::new();
    for (prefix, &value) in &raw.zip3 {
        let key_path = format!("{path}.zip3[{prefix:?}]");
        if !(prefix.len() == 3 && prefix.bytes().all(|b| b.is_ascii_digit())) {
            issues.push(
                &key_path,
                "a territory key is a 3-digit ZIP prefix, e.g. 232",
            );
        }
        zip3.insert(prefix.clone(), issues.factor(&key_path, value));
    }
    TerritoryFactor {
        applies_to: check_applies_to(&format!("{path}.applies_to"), &raw.applies_to, issues),
        default: issues.factor(&format!("{path}.default"), raw.default),
        zip3,
    }
}

fn check_deductibles(
    path: &str,
    map: &BTreeMap<String, f64>,
    issues: &mut Issues,
) -> DeductibleFactors {
    for key in map.keys() {
        if !Deductible::ALL
            .iter()
            .any(|d| d.amount().to_string() == *key)
        {
            issues.push(
                format!("{path}[{key:?}]"),
                "not an offered deductible (250, 500, 1000, 2000)",
            );
        }
    }
    let mut factors = [1.0; 4];
    let mut previous: Option<(Deductible, f64)> = None;
    for (i, deductible) in Deductible::ALL.into_iter().enumerate() {
        let key = deductible.amount().to_string();
        let key_path = format!("{path}[{key:?}]");
        let Some(&value) = map.get(&key) else {
            issues.push(
                path,
                format!("missing the factor for the {deductible} deductible"),
            );
            continue;
        };
        factors[i] = issues.factor(&key_path, value);
        if let Some((lower, lower_factor)) = previous {
            if value > lower_factor {
                issues.push(
                    key_path,
                    format!(
                        "{value} is above the {lower} factor {lower_factor} (a higher \
                         deductible must never cost more)"
                    ),
                );
            }
        }
        previous = Some((deductible, value));
    }
    DeductibleFactors(factors)
}

/// The multi-car bands: by number of vehicles from 1, a single car undiscounted, discounts
/// never shrinking as cars are added, and never so deep that `n + 1` identical cars cost less
/// than `n` (`(n + 1) × factor(n + 1) > n × factor(n)`).
fn check_multi_car(path: &str, raw: &[RawBand], issues: &mut Issues) -> Bands {
    let bands = check_bands(path, raw, 1, Start::Exactly, issues);
    for (i, band) in bands.0.iter().enumerate() {
        if band.factor > 1.0 {
            issues.push(
                format!("{path}[{i}].factor"),
                format!(
                    "a multi-car factor is a discount and must be at most 1, got {}",
                    band.factor
                ),
            );
        }
    }
    if let Some(first) = bands.0.first() {
        if first.min <= 1 && first.factor != 1.0 {
            issues.push(
                format!("{path}[0].factor"),
                format!(
                    "a single car gets no multi-car discount: the factor must be 1, got {}",
                    first.factor
                ),
            );
        }
    }
    for (i, pair) in bands.0.windows(2).enumerate() {
        let (prev, band) = (&pair[0], &pair[1]);
        if band.factor > prev.factor {
            issues.push(
                format!("{path}[{}].factor", i + 1),
                format!(
                    "{} is above the factor {} for {} cars (the discount must never shrink \
                     as cars are added)",
                    band.factor,
                    prev.factor,
                    prev.label()
                ),
            );
        }
        let n = f64::from(band.min);
        if n * band.factor <= (n - 1.0) * prev.factor {
            issues.push(
                format!("{path}[{}].factor", i + 1),
                format!(
                    "{} identical cars at {} would cost no more than {} at {} (each extra \
                     car must add to the total: n x factor must grow with n)",
                    band.min,
                    band.factor,
                    band.min - 1,
                    prev.factor
                ),
            );
        }
    }
    bands
}

fn check_decline_rules(
    raw: &[RawDeclineRule],
    violations: &ViolationFactor,
    issues: &mut Issues,
) -> Vec<DeclineRule> {
    let mut rules = Vec::with_capacity(raw.len());
    for (i, rule) in raw.iter().enumerate() {
        let path = format!("decline_rules[{i}]");
        let at_least = |n: u32, issues: &mut Issues| {
            if n == 0 {
                issues.push(
                    format!("{path}.at_least"),
                    "must be at least 1 (0 would decline everybody)",
                );
            }
            n
        };
        rules.push(match rule {
            RawDeclineRule::LicenseStatus { allowed } => {
                let allowed: BTreeSet<String> = allowed
                    .iter()
                    .map(|s| s.trim().to_ascii_lowercase())
                    .collect();
                if allowed.is_empty() || allowed.contains("") {
                    issues.push(
                        format!("{path}.allowed"),
                        "list at least one licence status, none blank",
                    );
                }
                DeclineRule::LicenseStatus {
                    allowed: allowed.into_iter().collect(),
                }
            }
            RawDeclineRule::AtFaultAccidents {
                within_years,
                at_least: n,
            } => DeclineRule::AtFaultAccidents {
                within_years: issues.within_years(&format!("{path}.within_years"), *within_years),
                at_least: at_least(*n, issues),
            },
            RawDeclineRule::Violations {
                kind,
                within_years,
                at_least: n,
            } => {
                if !violations.surcharges.contains_key(kind) {
                    issues.push(
                        format!("{path}.kind"),
                        format!(
                            "{kind:?} is not a violation kind listed in \
                             factors.violations.surcharge_per_violation"
                        ),
                    );
                }
                DeclineRule::Violations {
                    kind: kind.clone(),
                    within_years: issues
                        .within_years(&format!("{path}.within_years"), *within_years),
                    at_least: at_least(*n, issues),
                }
            }
        });
    }
    rules
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bands_look_up_and_label() {
        let bands = Bands(vec![
            Band {
                min: 16,
                max: Some(20),
                factor: 2.0,
            },
            Band {
                min: 21,
                max: None,
                factor: 1.0,
            },
        ]);
        assert_eq!(bands.lookup(15), None);
        assert_eq!(bands.lookup(16).unwrap().label(), "16-20");
        assert_eq!(bands.lookup(20).unwrap().factor, 2.0);
        assert_eq!(bands.lookup(21).unwrap().label(), "21+");
        assert_eq!(bands.lookup(u32::MAX).unwrap().factor, 1.0);
        assert_eq!(bands.start(), 16);
    }

    #[test]
    fn deductible_factors_by_amount() {
        let d = DeductibleFactors([1.2, 1.0, 0.8, 0.6]);
        assert_eq!(d.get(Deductible::parse(250).unwrap()), 1.2);
        assert_eq!(d.get(Deductible::parse(2000).unwrap()), 0.6);
    }

    #[test]
    fn names() {
        assert!(is_name("reckless_driving"));
        assert!(is_name("dui2"));
        assert!(!is_name("Dui"));
        assert!(!is_name("_x"));
        assert!(!is_name(""));
        assert!(!is_name("distracted-driving"));
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_iso_date("2026-01-01"),
            Some(time::macros::date!(2026 - 01 - 01))
        );
        assert_eq!(parse_iso_date("2026-1-1"), None);
        assert_eq!(parse_iso_date("2026-02-30"), None);
    }
}
