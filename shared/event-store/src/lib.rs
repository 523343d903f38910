//! The event store: the system's source of truth.
//!
//! Every change to a quote is an immutable event in a *stream* (`quote#<uuid>`), numbered by a
//! contiguous version (1, 2, 3, …). Appends name the version they expect the stream to be at, so
//! concurrent writers cannot interleave: exactly one wins, the others get
//! [`StoreError::WrongExpectedVersion`].
//!
//! Each stream also has a *head* that records the committed version and how far the stream has
//! been published to Kinesis. Heads with unpublished events form the publication outbox that the
//! relay (crate `event-relay`) drains; see `docs/adr/0002-publication-outbox.md`.
//!
//! # Layout
//! - [`envelope`]: the event envelope (the stored item and the Kinesis record) and new events.
//! - [`store`]: the [`EventStore`] port and its request/response types.
//! - [`error`]: the typed errors of the port.
//! - [`limits`]: the size limits of an event (Kinesis record, DynamoDB item), checked on the
//!   whole envelope before anything is written.
//! - [`memory`]: the in-memory adapter (embedded mode, fast tests).
//! - [`dynamodb`]: the DynamoDB adapter and table definitions.
//! - [`ordering`]: per-stream position tracking for consumers (duplicates and gaps).
//! - [`snapshot`]: snapshots of aggregates (port, both adapters) and loading through them.
//! - `contract` (feature `contract`): the test suite every adapter must pass.

pub mod dynamodb;
pub mod envelope;
pub mod error;
pub mod limits;
pub mod memory;
pub mod ordering;
pub mod snapshot;
pub mod store;

#[cfg(feature = "contract")]
pub mod contract;

pub use envelope::{EventEnvelope, NewEvent};
pub use error::{SizeLimit, StoreError};
pub use memory::InMemoryEventStore;
pub use snapshot::{load_aggregate, Aggregate, Snapshot, SnapshotStore};
pub use store::{
    AppendOutcome, AppendRequest, EventPage, EventStore, IdempotencyRecord, LoadBound, ScanCursor,
    ScanPage, ScanPart, StreamHead, MAX_EVENTS_PER_APPEND,
};
