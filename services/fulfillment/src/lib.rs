//! fulfillment: once every vehicle and driver of a quote has an outcome, rates the quote and
//! appends `QuoteIssued` (annual premium, breakdown by coverage, every rating factor applied,
//! rating-table version, and `valid_until` 30 days on), `QuoteDeclined` (the rating's
//! reasons) or `QuoteReferred` (a vehicle could not be decoded or a driving history is
//! unavailable, so a person must look).
//!
//! It reacts to `QuoteRequested` and to the four enrichment facts (`VehicleDecoded`,
//! `VehicleDecodeFailed`, `DriverHistoryRetrieved`, `DriverHistoryUnavailable`): whichever
//! event completes the quote triggers the decision. Redelivered, late and concurrent events
//! append at most one outcome (see [`handler`]).
//!
//! A quote still pending `QUOTE_DEADLINE_SECS` after its request is referred with the reason
//! `enrichment timed out` ([`deadline`]), so every customer gets an answer.
//!
//! # Configuration
//!
//! `RATING_TABLES_PATH` (a rating table file, read and validated at start; the embedded
//! `2026-01` tables without it) and the settings of every consumer service are declared in the
//! `quotes` binary (`services/quotes/src/settings/`); `quotes settings fulfillment` lists them.
//!
//! # Layout
//! - [`rating_input`]: the pure adapter from the quote's state to the rating input.
//! - [`outcome`]: the pure decision (refer, rate, issue or decline).
//! - [`tables`]: loading and validating the rating tables.
//! - [`deadline`]: the quote deadline's sweep and its pure decision.
//! - [`handler`]: the event handler.

pub mod deadline;
pub mod handler;
pub mod outcome;
pub mod rating_input;
pub mod tables;

pub use handler::Fulfillment;
