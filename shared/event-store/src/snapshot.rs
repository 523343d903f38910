//! Snapshots: an aggregate's state at a version, so a load folds only the events after it.
//!
//! A snapshot carries the schema version of the state it holds: code that folds a newer state
//! shape ignores an older snapshot it cannot read, and folds from the first event (then writes a
//! snapshot of its own). Snapshots are a cache of the fold: losing them, or ignoring them,
//! changes nothing but the time a load takes.
//!
//! [`load_aggregate`] loads an aggregate through a [`SnapshotStore`]: it starts from the latest
//! readable snapshot at or below the wanted version, folds the events after it and, when it
//! folded at least `every` events past that snapshot, saves a new one (so a stream is
//! snapshotted about every `every` events, by whoever reads it).

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use time::OffsetDateTime;

use crate::envelope::EventEnvelope;
use crate::error::StoreError;
use crate::store::{EventStore, LoadBound};

/// An aggregate's state at a version of its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The stream.
    pub stream_id: String,
    /// The last event folded into the state.
    pub version: u64,
    /// When that event was recorded.
    pub recorded_at: OffsetDateTime,
    /// The schema version of `state` (the aggregate's, not an event's).
    pub schema_version: u32,
    /// The state, as JSON.
    pub state: serde_json::Value,
    /// When the snapshot was taken.
    pub taken_at: OffsetDateTime,
}

/// Where snapshots are kept (the event store's adapters: the DynamoDB one keeps them in the
/// events table, beside the stream they summarize).
#[async_trait]
pub trait SnapshotStore: Send + Sync + std::fmt::Debug {
    /// Stores `snapshot` (replacing one of the same stream and version).
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// The snapshot of `stream_id` with the highest version at or below `at_or_below`.
    async fn latest_snapshot(
        &self,
        stream_id: &str,
        at_or_below: u64,
    ) -> Result<Option<Snapshot>, StoreError>;
}

/// An aggregate that can be snapshotted: a state folded from its stream's events.
pub trait Aggregate: Serialize + DeserializeOwned + Send + Sized {
    /// Why an event cannot be folded.
    type Error: From<StoreError> + Send;

    /// The schema version of the serialized state; bump it when the state's shape changes, so
    /// older snapshots are ignored.
    const STATE_SCHEMA_VERSION: u32;

    /// Folds `events` (in version order) into `state` (`None`: from the first event).
    fn fold(state: Option<Self>, events: &[EventEnvelope]) -> Result<Option<Self>, Self::Error>;
}

/// What [`load_aggregate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadStats {
    /// The version of the snapshot it started from (0: none).
    pub from_snapshot: u64,
    /// Events it read and folded.
    pub events_folded: u64,
    /// Whether it saved a new snapshot.
    pub snapshot_saved: bool,
}

/// A loaded aggregate: its state, the version and recording time of its last event.
#[derive(Debug)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The last event folded.
    pub version: u64,
    /// When that event was recorded.
    pub recorded_at: OffsetDateTime,
    /// How it was loaded.
    pub stats: LoadStats,
}

/// Loads `stream_id` up to `up_to` (every event when `None`) from the latest readable snapshot
/// at or below it (the store's [`EventStore::snapshots`]; none: from the first event); saves a
/// snapshot when it folded `every` events or more past it (`every` = 0: never). `None` when the
/// stream has no events up to there. A snapshot that fails to load, decode or save is logged
/// and the load goes on without it.
pub async fn load_aggregate<A: Aggregate>(
    store: &dyn EventStore,
    stream_id: &str,
    up_to: Option<u64>,
    every: u64,
) -> Result<Option<Loaded<A>>, A::Error> {
    let mut stats = LoadStats::default();
    let snapshots = store.snapshots();
    let latest = match snapshots {
        Some(snapshots) => {
            snapshots
                .latest_snapshot(stream_id, up_to.unwrap_or(u64::MAX))
                .await
        }
        None => Ok(None),
    };
    let snapshot = match latest {
        Ok(snapshot) => snapshot,
        Err(err) => {
            tracing::warn!(%stream_id, error = %quote_runtime::error_chain::chain(&err), "reading the snapshot failed; folding from the first event");
            None
        }
    };
    let mut start: Option<(A, u64, OffsetDateTime)> = None;
    if let Some(snapshot) = snapshot.filter(|s| s.schema_version == A::STATE_SCHEMA_VERSION) {
        match serde_json::from_value::<A>(snapshot.state) {
            Ok(state) => start = Some((state, snapshot.version, snapshot.recorded_at)),
            Err(err) => {
                tracing::warn!(%stream_id, version = snapshot.version, error = %err, "a snapshot does not decode; folding from the first event")
            }
        }
    }
    let after = start.as_ref().map_or(0, |(_, version, _)| *version);
    stats.from_snapshot = after;
    let bound = up_to.map_or(LoadBound::Latest, LoadBound::UpToVersion);
    let events = store.load_after(stream_id, after, bound).await?;
    stats.events_folded = events.len() as u64;
    let (state, mut version, mut recorded_at) = match start {
        Some((state, version, recorded_at)) => (Some(state), version, recorded_at),
        None => (None, 0, OffsetDateTime::UNIX_EPOCH),
    };
    if let Some(last) = events.last() {
        version = last.version;
        recorded_at = last.recorded_at;
    }
    let Some(state) = A::fold(state, &events)? else {
        return Ok(None);
    };
    if let Some(snapshots) = snapshots.filter(|_| every > 0 && stats.events_folded >= every) {
        match serde_json::to_value(&state) {
            Ok(json) => {
                let snapshot = Snapshot {
                    stream_id: stream_id.to_owned(),
                    version,
                    recorded_at,
                    schema_version: A::STATE_SCHEMA_VERSION,
                    state: json,
                    taken_at: OffsetDateTime::now_utc(),
                };
                match snapshots.save_snapshot(&snapshot).await {
                    Ok(()) => stats.snapshot_saved = true,
                    Err(err) => {
                        tracing::warn!(%stream_id, version, error = %quote_runtime::error_chain::chain(&err), "saving a snapshot failed")
                    }
                }
            }
            Err(err) => tracing::warn!(%stream_id, error = %err, "the state does not encode"),
        }
    }
    Ok(Some(Loaded {
        state,
        version,
        recorded_at,
        stats,
    }))
}
