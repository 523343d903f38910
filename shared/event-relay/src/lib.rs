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
//! A record Kinesis can never accept (too large, or refused as invalid) is set aside in the
//! relay's dead letters and the stream's later events publish after it: its version never
//! reaches Kinesis, and consumers that read the stream from the store still see it
//! (`docs/adr/0002-publication-outbox.md`).
//!
//! # Layout
//! - [`sink`]: the publication target port, with the Kinesis and in-memory adapters and
//!   Kinesis's call limits.
//! - [`relay`]: the relay task (hints, sweeps, ordered rounds, retries, deferral of failing
//!   streams).
//! - `handoff`: which of a stream's events a hint's relay publishes, and when it waits for an
//!   earlier commit's relay instead (one copy per event).
//! - `calls`: packing a round's records into calls within the count and byte limits.
//! - [`dead_letter`]: where records that can never be published are set aside.
//! - [`metrics`]: the relay's counters and their OpenTelemetry export.
//! - [`outbox`]: the outbox's backlog and the age of its oldest commit.

mod calls;
pub mod dead_letter;
mod handoff;
pub mod metrics;
pub mod outbox;
pub mod relay;
pub mod sink;

pub use dead_letter::{
    DynamoRelayDeadLetters, InMemoryRelayDeadLetters, RelayDeadLetter, RelayDeadLetters,
};
pub use metrics::RelayStats;
pub use relay::{CommitHint, Relay, RelayConfig, RelayError, RelayHandle};
pub use sink::{EventSink, InMemorySink, KinesisSink, Refusal, SinkError};
