//! Enrichment facts: what the pipeline learns about each requested vehicle and driver.
//!
//! After `QuoteRequested`, two enrichers append one fact per item of the request:
//!
//! - the vehicle enricher appends [`VehicleDecoded`] (make, model, model year, body class,
//!   vehicle type, and whether the NHTSA vPIC service answered or the VIN was decoded offline,
//!   see [`crate::vin_decode`]) or [`VehicleDecodeFailed`] for each VIN;
//! - the driver-history enricher appends [`DriverHistoryRetrieved`] (licence status,
//!   accidents, violations) or [`DriverHistoryUnavailable`] for each licence (state and
//!   number); [`crate::driver_simulation`] makes deterministic simulated histories.
//!
//! Fulfillment rates the quote once every vehicle and driver has an outcome
//! ([`crate::Quote::ready_for_rating`]); failed or unavailable items are the
//! [`crate::Quote::missing_data`] behind a referral.
//!
//! [`crate::Quote`] keeps one [`VehicleOutcome`] per requested vehicle and one
//! [`DriverOutcome`] per requested driver, in request order, `Pending` until their fact
//! arrives. Folding rejects a fact about an item that is not in the request, a second fact
//! that differs from the first one, and any fact after a final outcome; an identical second
//! fact (a redelivered message) is ignored. [`record_enrichment`](crate::record_enrichment)
//! tells an enricher whether a fact still needs to be appended.
//!
//! Every payload here is at schema version 1. Enrichment does not change the quote's status.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::types::{LicenseNumber, UsState, Vin};

// ---------------------------------------------------------------------------------------------
// Vehicles.
// ---------------------------------------------------------------------------------------------

/// Where a vehicle description came from. Serialized `vpic` or `vin_fallback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DecodeSource {
    /// The NHTSA vPIC service answered.
    Vpic,
    /// Decoded offline from the VIN itself: the make from the WMI, the model year from
    /// position 10 ([`crate::vin_decode::decode_offline`]).
    VinFallback,
}

impl DecodeSource {
    /// The serialized name.
    pub fn as_str(&self) -> &'static str {
        match self {
            DecodeSource::Vpic => "vpic",
            DecodeSource::VinFallback => "vin_fallback",
        }
    }
}

impl fmt::Display for DecodeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Payload of `VehicleDecoded` (schema version 1): a requested VIN was decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VehicleDecoded {
    /// The VIN, one of the request's.
    pub vin: Vin,
    /// Make, e.g. `HONDA` (as the source spells it).
    pub make: String,
    /// Model, e.g. `Accord`; empty when the source does not know it (the VIN alone does not
    /// name the model).
    pub model: String,
    /// Model year.
    #[serde(default)]
    pub model_year: Option<u16>,
    /// Body class, e.g. `Sedan/Saloon`.
    #[serde(default)]
    pub body_class: Option<String>,
    /// Vehicle type, e.g. `PASSENGER CAR`.
    #[serde(default)]
    pub vehicle_type: Option<String>,
    /// Where the description came from.
    pub source: DecodeSource,
}

impl VehicleDecoded {
    /// The event type name.
    pub const EVENT_TYPE: &'static str = "VehicleDecoded";
    /// Current payload schema version.
    pub const SCHEMA_VERSION: u32 = 1;
}

/// Payload of `VehicleDecodeFailed` (schema version 1): a requested VIN could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VehicleDecodeFailed {
    /// The VIN, one of the request's.
    pub vin: Vin,
    /// Why, as a human sentence.
    pub reason: String,
}

impl VehicleDecodeFailed {
    /// The event type name.
    pub const EVENT_TYPE: &'static str = "VehicleDecodeFailed";
    /// Current payload schema version.
    pub const SCHEMA_VERSION: u32 = 1;
}

/// What is known about one requested vehicle. Serialized with a `status` tag:
/// `{"status": "pending"}`, `{"status": "decoded", "make": …}`,
/// `{"status": "failed", "reason": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum VehicleOutcome {
    /// No fact yet.
    Pending,
    /// From [`VehicleDecoded`].
    Decoded {
        /// Make.
        make: String,
        /// Model (empty when unknown).
        model: String,
        /// Model year.
        #[serde(default)]
        model_year: Option<u16>,
        /// Body class.
        #[serde(default)]
        body_class: Option<String>,
        /// Vehicle type.
        #[serde(default)]
        vehicle_type: Option<String>,
        /// Where the description came from.
        source: DecodeSource,
    },
    /// From [`VehicleDecodeFailed`].
    Failed {
        /// Why.
        reason: String,
    },
}

impl VehicleOutcome {
    /// Whether a fact has arrived (decoded or failed).
    pub fn is_known(&self) -> bool {
        !matches!(self, VehicleOutcome::Pending)
    }
}

impl From<&VehicleDecoded> for VehicleOutcome {
    fn from(e: &VehicleDecoded) -> Self {
        VehicleOutcome::Decoded {
            make: e.make.clone(),
            model: e.model.clone(),
            model_year: e.model_year,
            body_class: e.body_class.clone(),
            vehicle_type: e.vehicle_type.clone(),
            source: e.source,
        }
    }
}

impl From<&VehicleDecodeFailed> for VehicleOutcome {
    fn from(e: &VehicleDecodeFailed) -> Self {
        VehicleOutcome::Failed {
            reason: e.reason.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Drivers.
// ---------------------------------------------------------------------------------------------

/// Status of a driver's licence. Serialized lower-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LicenseStatus {
    /// Valid.
    Valid,
    /// Suspended.
    Suspended,
    /// Revoked.
    Revoked,
    /// Expired.
    Expired,
}

impl LicenseStatus {
    /// The serialized name.
    pub fn as_str(&self) -> &'static str {
        match self {
            LicenseStatus::Valid => "valid",
            LicenseStatus::Suspended => "suspended",
            LicenseStatus::Revoked => "revoked",
            LicenseStatus::Expired => "expired",
        }
    }
}

impl fmt::Display for LicenseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kind of a traffic violation. Serialized snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ViolationKind {
    /// Speeding.
    Speeding,
    /// Driving under the influence.
    Dui,
    /// Reckless driving.
    RecklessDriving,
    /// Distracted driving (e.g. phone use).
    DistractedDriving,
    /// Anything else.
    Other,
}

impl ViolationKind {
    /// Every kind.
    pub const ALL: [ViolationKind; 5] = [
        ViolationKind::Speeding,
        ViolationKind::Dui,
        ViolationKind::RecklessDriving,
        ViolationKind::DistractedDriving,
        ViolationKind::Other,
    ];

    /// The serialized name.
    pub fn as_str(&self) -> &'static str {
        match self {
            ViolationKind::Speeding => "speeding",
            ViolationKind::Dui => "dui",
            ViolationKind::RecklessDriving => "reckless_driving",
            ViolationKind::DistractedDriving => "distracted_driving",
            ViolationKind::Other => "other",
        }
    }
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a driving history came from. Serialized `provider` or `simulated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HistorySource {
    /// A motor-vehicle-record provider answered.
    Provider,
    /// Made up by [`crate::driver_simulation::simulate`] (not a real record).
    Simulated,
}

impl HistorySource {
    /// The serialized name.
    pub fn as_str(&self) -> &'static str {
        match self {
            HistorySource::Provider => "provider",
            HistorySource::Simulated => "simulated",
        }
    }
}

impl fmt::Display for HistorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An accident on a driver's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accident {
    /// When, `YYYY-MM-DD`.
    #[serde(with = "crate::types::iso_date")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: Date,
    /// Whether the driver was at fault.
    pub at_fault: bool,
}

/// A traffic violation on a driver's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Violation {
    /// What.
    pub kind: ViolationKind,
    /// When, `YYYY-MM-DD`.
    #[serde(with = "crate::types::iso_date")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: Date,
}

/// Payload of `DriverHistoryRetrieved` (schema version 1): a requested driver's record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriverHistoryRetrieved {
    /// Issuing state of the licence, one of the request's.
    pub license_state: UsState,
    /// Licence number, one of the request's.
    pub license_number: LicenseNumber,
    /// Status of the licence.
    pub license_status: LicenseStatus,
    /// Accidents on record.
    #[serde(default)]
    pub accidents: Vec<Accident>,
    /// Violations on record.
    #[serde(default)]
    pub violations: Vec<Violation>,
    /// Where the record came from.
    pub source: HistorySource,
}

impl DriverHistoryRetrieved {
    /// The event type name.
    pub const EVENT_TYPE: &'static str = "DriverHistoryRetrieved";
    /// Current payload schema version.
    pub const SCHEMA_VERSION: u32 = 1;
}

/// Payload of `DriverHistoryUnavailable` (schema version 1): a requested driver's record
/// could not be obtained.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriverHistoryUnavailable {
    /// Issuing state of the licence, one of the request's.
    pub license_state: UsState,
    /// Licence number, one of the request's.
    pub license_number: LicenseNumber,
    /// Why, as a human sentence.
    pub reason: String,
}

impl DriverHistoryUnavailable {
    /// The event type name.
    pub const EVENT_TYPE: &'static str = "DriverHistoryUnavailable";
    /// Current payload schema version.
    pub const SCHEMA_VERSION: u32 = 1;
}

/// What is known about one requested driver. Serialized with a `status` tag:
/// `{"status": "pending"}`, `{"status": "retrieved", "license_status": …}`,
/// `{"status": "unavailable", "reason": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DriverOutcome {
    /// No fact yet.
    Pending,
    /// From [`DriverHistoryRetrieved`].
    Retrieved {
        /// Status of the licence.
        license_status: LicenseStatus,
        /// Accidents on record.
        #[serde(default)]
        accidents: Vec<Accident>,
        /// Violations on record.
        #[serde(default)]
        violations: Vec<Violation>,
        /// Where the record came from.
        source: HistorySource,
    },
    /// From [`DriverHistoryUnavailable`].
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl DriverOutcome {
    /// Whether a fact has arrived (retrieved or unavailable).
    pub fn is_known(&self) -> bool {
        !matches!(self, DriverOutcome::Pending)
    }
}

impl From<&DriverHistoryRetrieved> for DriverOutcome {
    fn from(e: &DriverHistoryRetrieved) -> Self {
        DriverOutcome::Retrieved {
            license_status: e.license_status,
            accidents: e.accidents.clone(),
            violations: e.violations.clone(),
            source: e.source,
        }
    }
}

impl From<&DriverHistoryUnavailable> for DriverOutcome {
    fn from(e: &DriverHistoryUnavailable) -> Self {
        DriverOutcome::Unavailable {
            reason: e.reason.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The enrichment facts as one type.
// ---------------------------------------------------------------------------------------------

/// One enrichment fact, the input of [`record_enrichment`](crate::record_enrichment); converts
/// into the matching [`QuoteEvent`](crate::QuoteEvent) variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrichment {
    /// See [`VehicleDecoded`].
    VehicleDecoded(VehicleDecoded),
    /// See [`VehicleDecodeFailed`].
    VehicleDecodeFailed(VehicleDecodeFailed),
    /// See [`DriverHistoryRetrieved`].
    DriverHistoryRetrieved(DriverHistoryRetrieved),
    /// See [`DriverHistoryUnavailable`].
    DriverHistoryUnavailable(DriverHistoryUnavailable),
}

impl From<VehicleDecoded> for Enrichment {
    fn from(e: VehicleDecoded) -> Self {
        Enrichment::VehicleDecoded(e)
    }
}

impl From<VehicleDecodeFailed> for Enrichment {
    fn from(e: VehicleDecodeFailed) -> Self {
        Enrichment::VehicleDecodeFailed(e)
    }
}

impl From<DriverHistoryRetrieved> for Enrichment {
    fn from(e: DriverHistoryRetrieved) -> Self {
        Enrichment::DriverHistoryRetrieved(e)
    }
}

impl From<DriverHistoryUnavailable> for Enrichment {
    fn from(e: DriverHistoryUnavailable) -> Self {
        Enrichment::DriverHistoryUnavailable(e)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::date;

    #[test]
    fn enums_use_snake_case_names() {
        for (value, name) in [
            (json!(DecodeSource::Vpic), "vpic"),
            (json!(DecodeSource::VinFallback), "vin_fallback"),
            (json!(LicenseStatus::Suspended), "suspended"),
            (json!(ViolationKind::RecklessDriving), "reckless_driving"),
            (
                json!(ViolationKind::DistractedDriving),
                "distracted_driving",
            ),
            (json!(ViolationKind::Dui), "dui"),
            (json!(HistorySource::Simulated), "simulated"),
        ] {
            assert_eq!(value, json!(name));
        }
        for kind in ViolationKind::ALL {
            assert_eq!(json!(kind), json!(kind.as_str()));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(DecodeSource::VinFallback.to_string(), "vin_fallback");
        assert_eq!(LicenseStatus::Expired.to_string(), "expired");
        assert_eq!(HistorySource::Provider.to_string(), "provider");
    }

    #[test]
    fn dates_are_iso_strings() {
        let accident = Accident {
            date: date!(2024 - 02 - 29),
            at_fault: true,
        };
        let json = serde_json::to_value(accident).unwrap();
        assert_eq!(json, json!({"date": "2024-02-29", "at_fault": true}));
        assert_eq!(serde_json::from_value::<Accident>(json).unwrap(), accident);
        assert!(serde_json::from_value::<Violation>(
            json!({"kind": "speeding", "date": "2023-02-30"})
        )
        .is_err());
        assert!(serde_json::from_value::<Violation>(
            json!({"kind": "speeding", "date": [2023, 1]})
        )
        .is_err());
    }

    #[test]
    fn outcomes_are_tagged_by_status() {
        assert_eq!(json!(VehicleOutcome::Pending), json!({"status": "pending"}));
        assert_eq!(
            json!(DriverOutcome::Unavailable {
                reason: "timeout".into()
            }),
            json!({"status": "unavailable", "reason": "timeout"})
        );
        let decoded = VehicleOutcome::Decoded {
            make: "HONDA".into(),
            model: "Accord".into(),
            model_year: Some(2003),
            body_class: None,
            vehicle_type: None,
            source: DecodeSource::Vpic,
        };
        let json = serde_json::to_value(&decoded).unwrap();
        assert_eq!(json["status"], "decoded");
        assert_eq!(json["source"], "vpic");
        assert_eq!(
            serde_json::from_value::<VehicleOutcome>(json).unwrap(),
            decoded
        );
        assert!(decoded.is_known());
        assert!(!DriverOutcome::Pending.is_known());
    }
}
