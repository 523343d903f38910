//! driver-history: for each `QuoteRequested`, asks a driver-record provider for each driver's
//! accidents, violations and licence status, and appends `DriverHistoryRetrieved` or
//! `DriverHistoryUnavailable`.
//!
//! `DRIVER_HISTORY_PROVIDER` must be set: `http` (with `DRIVER_HISTORY_URL`) or `simulated`
//! (deterministic, for local runs). The binary has no default and refuses to start without a
//! choice, so a production deployment can never quote on invented histories by accident.
//!
//! # Layout
//! - [`provider`]: the HTTP contract and the simulated provider.
//! - [`handler`]: the event handler.

pub mod handler;
pub mod provider;

pub use handler::DriverHistory;
