//! Lease coordination decisions, free of I/O so they can be tested deterministically.
//!
//! - [`expiry`]: a lease is expired when its counter has not moved for the lease duration of
//!   *local monotonic* time (never by comparing wall clocks).
//! - [`plan`]: which leases a worker takes (unowned and expired ones, always) and steals (towards
//!   a fair share, several per round when far from balance, never in a way that oscillates).

pub mod expiry;
pub mod plan;

pub use expiry::ExpiryTracker;
pub use plan::{plan_acquisitions, AcquirePlan};
