//! Lease coordination decisions, free of I/O so they can be tested deterministically.
//!
//! - [`expiry`]: a lease is expired when its counter has not moved for the lease duration of
//!   *local monotonic* time (never by comparing wall clocks).
//! - [`plan`]: which leases a worker takes (unowned and expired ones, always) and steals (towards
//!   a fair share, several per round when far from balance, never in a way that oscillates).
//! - [`handoff`]: what a worker does with a lease it asked for, each time it reads it.
//! - [`cleanup`]: when a finished lease may be deleted (children begun, or shard gone).

pub mod cleanup;
pub mod expiry;
pub mod handoff;
pub mod plan;

pub use cleanup::{finished_leases_to_delete, Cleanup};
pub use expiry::ExpiryTracker;
pub use handoff::{decide_handoff, HandoffPoll};
pub use plan::{plan_acquisitions, AcquirePlan};
