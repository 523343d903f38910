//! The quote domain: pure types and rules of the auto-insurance quote platform.
//!
//! This crate has no I/O, no async runtime and does not read the clock: callers pass "today"
//! and timestamps in. Everything here is deterministic and cheap to test.
//!
//! Values follow *parse, don't validate*: a [`Vin`], a [`ZipCode`] or an [`Email`] can only
//! hold a valid value, is built with `parse`/`TryFrom`, serializes as its canonical string and
//! deserializes through the same parser.
//!
//! # Layout
//! - [`types`]: the validated value types, one file each ([`Vin`], [`ZipCode`],
//!   [`DateOfBirth`], [`FirstLicensed`], [`UsState`], [`LicenseNumber`], [`Email`],
//!   [`PhoneE164`], [`LiabilityLimit`], [`Deductible`], [`Coverage`], [`VehicleUse`],
//!   [`Money`], [`CustomerId`], [`PersonName`]).
//! - [`request`]: the raw quote request DTO ([`QuoteRequestInput`]) and its validation into a
//!   [`QuoteRequest`], reporting every field error at once ([`ValidationErrors`]).
//! - [`quote`]: the quote aggregate: [`QuoteId`], the versioned [`QuoteEvent`]s with their
//!   upcaster chain, the [`Quote`] state folded from events, and the command functions
//!   [`request_quote`], [`record_enrichment`] and [`decide_outcome`].
//! - [`enrichment`]: the facts the pipeline appends about each requested vehicle
//!   ([`VehicleDecoded`], [`VehicleDecodeFailed`]) and driver ([`DriverHistoryRetrieved`],
//!   [`DriverHistoryUnavailable`]), and the per-item outcomes a [`Quote`] keeps.
//! - [`premium`]: the optional rating breakdown of an issued quote ([`CoverageAmount`],
//!   [`RatingFactor`]).
//! - [`vin_decode`]: decoding the make and model year from a VIN alone, offline.
//! - [`driver_simulation`]: deterministic simulated driving histories.

pub mod driver_simulation;
pub mod enrichment;
pub mod premium;
pub mod quote;
pub mod request;
pub mod types;
pub mod vin_decode;

pub use enrichment::{
    Accident, DecodeSource, DriverHistoryRetrieved, DriverHistoryUnavailable, DriverOutcome,
    Enrichment, HistorySource, LicenseStatus, VehicleDecodeFailed, VehicleDecoded, VehicleOutcome,
    Violation, ViolationKind,
};
pub use premium::{CoverageAmount, RatingFactor};
pub use quote::{
    decide_outcome, record_enrichment, request_quote, CommandError, EventDecodeError,
    EventEncodeError, FoldError, Outcome, Quote, QuoteDeclined, QuoteEvent, QuoteId, QuoteIdError,
    QuoteIssued, QuoteReferred, QuoteRequested, QuoteStatus, RequestQuote, UpcastError, Upcaster,
};
pub use request::{
    Contact, Driver, FieldError, NotifyPreferences, QuoteRequest, QuoteRequestInput, RawContact,
    RawCoverage, RawDriver, RawNotify, RawVehicle, ValidationErrors, Vehicle, VehicleInput,
};
pub use types::{
    Coverage, CoverageError, CustomerId, CustomerIdError, DateError, DateOfBirth, Deductible,
    Email, EmailError, FirstLicensed, LiabilityLimit, LicenseNumber, LicenseNumberError, Money,
    PersonName, PersonNameError, PhoneE164, PhoneError, UsState, UsStateError, VehicleUse,
    VehicleUseError, Vin, VinError, ZipCode, ZipError,
};
pub use vin_decode::OfflineDecode;
