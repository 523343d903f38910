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
//! # Configuration
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `RATING_TABLES_PATH` | unset: the embedded tables (`2026-01`) | a rating table file (JSON, see `shared/rating/README.md`), read and validated at start; the service refuses to start when it cannot be read or is invalid, naming the path and every problem |
//!
//! plus the consumer settings of `quote_pipeline::service` (event store, stream, leases, …).
//!
//! # Layout
//! - [`rating_input`]: the pure adapter from the quote's state to the rating input.
//! - [`outcome`]: the pure decision (refer, rate, issue or decline).
//! - [`tables`]: loading and validating the rating tables.
//! - [`handler`]: the event handler.

pub mod handler;
pub mod outcome;
pub mod rating_input;
pub mod tables;

pub use handler::Fulfillment;
