//! Publication of committed events to Kinesis, with no loss and per-stream order.
//!
//! The event store keeps, per stream, the last committed and the last published version; heads
//! with unpublished events form an outbox (`docs/adr/0002-publication-outbox.md`). The
//! [`Relay`] drains it: right after a commit (the appender sends it a hint) and, for commits whose
//! process died before publishing, by sweeping the outbox.
//!
//! **Ordering guarantee.** For each stream a relay publishes the contiguous range
//! `(published_version, committed_version]` in version order, one record of the stream per
//! `PutRecords` call, the next only after Kinesis acknowledged the previous; `published_version`
//! advances only after acknowledgement. Hence the first copy of every version reaches its shard
//! after every lower version of the same stream. Copies can repeat (two relays, a retry after a
//! lost acknowledgement); consumers drop versions they have applied
//! (`event_store::ordering::StreamPositions`).
//!
//! # Layout
//! - [`sink`]: the publication target port, with the Kinesis and in-memory adapters.
//! - [`relay`]: the relay task (hints, sweeps, ordered rounds, retries).

pub mod relay;
pub mod sink;

pub use relay::{CommitHint, Relay, RelayConfig, RelayHandle};
pub use sink::{EventSink, InMemorySink, KinesisSink, SinkError};
