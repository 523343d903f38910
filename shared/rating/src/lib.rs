//! Rating: versioned rating tables and the pure function that prices a quote with them.
//!
//! Rates are data. A table file (JSON, one per version, e.g. the shipped
//! `tables/2026-01.json`) holds the base rates, every rating factor and the decline rules; it
//! is loaded and validated once at start-up with [`RatingTables::from_json`] (or
//! [`RatingTables::default_tables`] for the embedded default), and [`rate`] is then a pure,
//! deterministic function of the tables and a [`RatingInput`]: no I/O, no clock, no
//! randomness. The quote records [`Premium::table_version`] so that any premium can be
//! reproduced from its input and the table file of that version.
//!
//! ```
//! use quote_domain::{Coverage, Deductible, LiabilityLimit, VehicleUse, ZipCode};
//! use quote_rating::{rate, RatedDriver, RatedVehicle, RatingInput, RatingOutcome, RatingTables};
//! use time::macros::date;
//!
//! let input = RatingInput {
//!     today: date!(2026 - 06 - 15),
//!     coverage: Coverage {
//!         liability_limit: LiabilityLimit::L100_300_100,
//!         collision_deductible: Deductible::parse(500).expect("offered"),
//!         comprehensive_deductible: Deductible::parse(500).expect("offered"),
//!     },
//!     vehicles: vec![RatedVehicle {
//!         model_year: Some(2021),
//!         body_class: Some("Sedan/Saloon".into()),
//!         vehicle_type: Some("PASSENGER CAR".into()),
//!         annual_mileage: 11_000,
//!         use_: VehicleUse::Commute,
//!         garaging_zip: ZipCode::parse("23220").expect("valid ZIP"),
//!     }],
//!     drivers: vec![RatedDriver {
//!         age: 41,
//!         years_licensed: 24,
//!         at_fault_accidents: vec![],
//!         not_at_fault_accidents: vec![],
//!         violations: vec![],
//!         license_status: "valid".into(),
//!     }],
//! };
//! match rate(RatingTables::default_tables(), &input) {
//!     RatingOutcome::Quoted(premium) => {
//!         assert_eq!(premium.table_version, "2026-01");
//!         assert!(premium.annual >= RatingTables::default_tables().minimum_premium());
//!     }
//!     RatingOutcome::Declined { reasons } => panic!("declined: {reasons:?}"),
//! }
//! ```
//!
//! # The model
//!
//! Every policy carries three coverages, rated separately for each vehicle: **liability**
//! (base rate by [`LiabilityLimit`](quote_domain::LiabilityLimit)), **collision** and
//! **comprehensive** (one base rate each, adjusted by the chosen
//! [`Deductible`](quote_domain::Deductible)). For vehicle `v` and coverage `c`:
//!
//! ```text
//! amount(v, c) = base(c)
//!              × D(c)                                   driver factors, see below
//!              × Π vehicle factors of v applying to c   age, class, mileage, use, territory
//!              × deductible(c)                          collision and comprehensive only
//!              × multi_car(number of vehicles)
//! ```
//!
//! Each factor table names the coverages it `applies_to`; a factor multiplies only those.
//!
//! **Driver factors** of one driver: the age band, the years-licensed band, the at-fault
//! accident surcharge once per at-fault accident in its look-back window, the not-at-fault
//! surcharge likewise, and, for each violation in the violation window, the surcharge of its
//! kind (`speeding`, `distracted_driving`, `reckless_driving`, `dui`, `other`; a kind the table
//! does not list is `other`). Incidents count when dated on or after the same calendar day
//! `within_years` years before `today` (28 February for 29 February); an incident dated after
//! `today` counts too, the cautious reading of bad data.
//!
//! **Which driver:** `D(c)` is the product of the driver factors of the *highest-rated driver
//! for that coverage* (the driver with the largest product; the first such driver on a tie),
//! applied to every vehicle. Every listed driver may drive every car, so the policy is priced
//! for the riskiest of them. The alternative, averaging the drivers, was rejected: adding a
//! clean, experienced driver to a policy would then *lower* the premium of a young driver's
//! car, which is both wrong and easy to game. With the maximum, adding a driver or an incident
//! never lowers a premium.
//!
//! **Vehicle factors:** the vehicle-age band (`today`'s year minus the model year, 0 for a
//! next-year model; a separate `unknown` factor without a model year), the vehicle class (the
//! first classification rule whose case-insensitive substrings match the decoded body class
//! and/or vehicle type, else `unknown`), the annual-mileage band, the use (`commute`,
//! `pleasure`, `business`) and the territory (the three-digit prefix of the garaging ZIP code,
//! or the table's default).
//!
//! **Multi-car discount:** a factor by the number of vehicles on the policy, applied to every
//! coverage of every vehicle.
//!
//! **Rounding:** each `amount(v, c)` is computed in `f64` cents, in the fixed order above, and
//! rounded to whole cents, halves away from zero ([`f64::round`]); the coverage totals of
//! [`Premium::breakdown_by_coverage`] are exact sums of those whole cents. Because every step
//! (multiplication by a positive factor, the maximum, rounding, integer sums) is monotonic, a
//! factor that does not decrease can never make the premium decrease, even by a cent.
//!
//! **Minimum premium:** when the total is below the tables' minimum, the premium is the minimum
//! and the breakdown gets a `minimum_premium_adjustment` line, so the breakdown always adds up
//! to [`Premium::annual`].
//!
//! **Decline rules** run first, for every driver, and every reason is reported: a licence
//! status not in the allowed list, at least N at-fault accidents in a window, at least N
//! violations of a kind in a window. The input is also declined when there is no vehicle or no
//! driver, or a driver is younger than the first driver-age band. Referral (sending a quote to
//! an underwriter because data is missing, e.g. an undecodable VIN) is the caller's decision:
//! this crate rates unknown values with the tables' `unknown` factors.
//!
//! # What the tables guarantee
//!
//! [`RatingTables::from_json`] rejects any table that would break the following properties,
//! which the crate's property tests check against the shipped tables:
//!
//! - one more at-fault accident (or violation, or driver) never lowers the premium, nor turns
//!   a decline into a quote: surcharges are at least 1 and decline thresholds only count up;
//! - a higher deductible never raises the premium: deductible factors never grow with the
//!   deductible;
//! - a higher liability limit never lowers it: liability base rates never shrink with the
//!   limit;
//! - more annual mileage never lowers it: mileage factors never shrink from band to band;
//! - every quoted premium is positive and at least the minimum premium;
//! - the multi-car discount: a single car is undiscounted, discounts never shrink as cars are
//!   added, so cars rated together never cost more than the same cars rated on separate
//!   policies; and `n × factor(n)` grows with `n`, so `n + 1` identical cars always cost more
//!   than `n`, and two cars together never cost less than the cheaper of them alone.
//!
//! What is *not* true, and not promised: "adding a car never lowers the premium". The discount
//! on the cars already on the policy can exceed the price of a much cheaper added car (with a
//! 10 % two-car discount, adding a car under a ninth of the first one's price lowers the
//! total). Only adding a car at least as dear as the average car on the policy is guaranteed
//! never to lower it.
//!
//! # The table file
//!
//! JSON, unknown fields rejected, all amounts in integer US cents, all factors positive
//! numbers (see `README.md` in this crate for a field-by-field reference):
//!
//! ```text
//! format_version          1
//! version                 "2026-01"              recorded on every quote
//! effective_date          "2026-01-01"
//! currency                "USD"
//! description             optional text
//! minimum_premium_cents   25000
//! base_rates_cents        { liability: { "25/50/25": …, "50/100/50": …, "100/300/100": …,
//!                           "250/500/250": … }, collision: …, comprehensive: … }
//! factors
//!   driver_age            { applies_to, bands }      bands from 16 (or lower), open-ended
//!   years_licensed        { applies_to, bands }      bands from 0
//!   at_fault_accidents    { applies_to, within_years, surcharge_per_incident }
//!   not_at_fault_accidents{ applies_to, within_years, surcharge_per_incident }
//!   violations            { applies_to, within_years, surcharge_per_violation: { kind: … } }
//!   vehicle_age           { applies_to, bands, unknown }
//!   vehicle_class         { applies_to, factors: { class: … }, rules: [ { class,
//!                           body_class_contains?, vehicle_type_contains? } ] }
//!   annual_mileage        { applies_to, bands }      bands from 0, never decreasing
//!   vehicle_use           { applies_to, factors: { commute, pleasure, business } }
//!   territory             { applies_to, default, zip3: { "232": … } }
//!   deductible            { collision: { "250", "500", "1000", "2000" }, comprehensive: … }
//!   multi_car             { bands }                  by number of vehicles, from 1
//! decline_rules           [ { rule: "license_status", allowed: ["valid"] },
//!                           { rule: "at_fault_accidents", within_years, at_least },
//!                           { rule: "violations", kind, within_years, at_least } ]
//! ```
//!
//! A band is `{ "min": 16, "max": 20, "factor": 2.1 }`; the last band has `"max": null`.
//! Bands must be in ascending order, contiguous (each starts right after the previous one
//! ends), non-overlapping, start at the domain's start and end open-ended, so every value has
//! exactly one band. Problems are reported all at once, each with its path
//! ([`TableIssue`]).

mod input;
mod rate;
mod tables;

pub use input::{RatedDriver, RatedVehicle, RatedViolation, RatingInput};
pub use rate::{rate, Factor, Premium, RatingOutcome, COVERAGES, MINIMUM_PREMIUM_ADJUSTMENT};
pub use tables::{
    RatingTables, TableError, TableIssue, DEFAULT_TABLES_JSON, FORMAT_VERSION, MAX_WITHIN_YEARS,
    YOUNGEST_RATED_AGE,
};
