//! The rating input: plain facts about the vehicles and drivers, on a given day.
//!
//! These structs are deliberately independent of the quote aggregate and of the enrichment
//! events: an adapter maps the requested vehicles and drivers, the decoded vehicle facts
//! (model year, body class, vehicle type) and the driver histories into them. Strings that
//! come from outside (body class, vehicle type, violation kind, licence status) are kept as
//! strings and interpreted by the tables, so a new value never breaks the mapping: an unknown
//! violation kind is rated as `other`, an unrecognised body class as the `unknown` class, and a
//! licence status the decline rules do not allow declines.

use quote_domain::{Coverage, VehicleUse, ZipCode};
use time::Date;

/// Everything the rating function needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingInput {
    /// The rating date: ages of vehicles and look-back windows are counted back from it.
    pub today: Date,
    /// The chosen liability limit and deductibles.
    pub coverage: Coverage,
    /// The vehicles, in request order (at least one to be quoted).
    pub vehicles: Vec<RatedVehicle>,
    /// The drivers, in request order (at least one to be quoted).
    pub drivers: Vec<RatedDriver>,
}

/// A vehicle as rated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatedVehicle {
    /// Model year, when the VIN could be decoded.
    pub model_year: Option<u16>,
    /// Body class as decoded, e.g. vPIC's `Sedan/Saloon` or `Pickup`.
    pub body_class: Option<String>,
    /// Vehicle type as decoded, e.g. vPIC's `PASSENGER CAR` or `TRUCK`.
    pub vehicle_type: Option<String>,
    /// Declared miles per year.
    pub annual_mileage: u32,
    /// Main use.
    pub use_: VehicleUse,
    /// Where the vehicle is kept overnight; its first three digits pick the territory.
    pub garaging_zip: ZipCode,
}

/// A driver as rated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatedDriver {
    /// Age in full years on [`RatingInput::today`].
    pub age: u8,
    /// Full years since first licensed, on [`RatingInput::today`].
    pub years_licensed: u8,
    /// Dates of the at-fault accidents on record (any age; the tables pick the window).
    pub at_fault_accidents: Vec<Date>,
    /// Dates of the accidents on record where the driver was not at fault.
    pub not_at_fault_accidents: Vec<Date>,
    /// Violations on record.
    pub violations: Vec<RatedViolation>,
    /// Licence status as reported, e.g. `valid`, `suspended`, `revoked`, `expired`
    /// (compared case-insensitively).
    pub license_status: String,
}

/// A traffic violation as rated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatedViolation {
    /// The kind, e.g. `speeding`, `distracted_driving`, `reckless_driving`, `dui`, `other`.
    /// Compared after trimming, lower-casing and turning spaces and `-` into `_`; a kind the
    /// tables do not list is rated as `other`.
    pub kind: String,
    /// When it happened.
    pub date: Date,
}

impl RatedViolation {
    /// A violation of `kind` on `date`.
    pub fn new(kind: impl Into<String>, date: Date) -> Self {
        Self {
            kind: kind.into(),
            date,
        }
    }
}
