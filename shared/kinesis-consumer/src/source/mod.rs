//! Record sources: where a shard's records come from, behind one trait.
//!
//! - [`polling`]: Kinesis `GetRecords`, adaptive (re-polls at once while behind, backs off when
//!   caught up, never above 5 calls/s per shard, honours the throttle after a large response,
//!   renews expired iterators).
//! - [`fanout`]: Kinesis enhanced fan-out (`SubscribeToShard`): a registered consumer, one pump
//!   task per reader, subscriptions renewed before their 5 minutes run out without loss or
//!   duplication, paced resubscription with full-jitter backoff.
//! - [`memory`]: an in-process stream with Kinesis's shard model (hash ranges, splits, merges),
//!   for the embedded mode and tests.

pub mod fanout;
pub mod memory;
pub mod polling;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::record::Record;

/// Where a shard's reader starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record still in the shard.
    TrimHorizon,
    /// Only records added from now on.
    Latest,
    /// Records added at or after an instant.
    AtTimestamp(OffsetDateTime),
    /// Records after a sequence number (resuming from a checkpoint).
    AfterSequence(String),
}

/// A shard as listed by the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// The shard id.
    pub shard_id: String,
    /// Its parent shards (one after a split, two after a merge).
    pub parent_shard_ids: Vec<String>,
    /// Lowest hash key it serves.
    pub starting_hash_key: String,
    /// Highest hash key it serves.
    pub ending_hash_key: String,
    /// True when the shard is closed (split or merged): it has an ending sequence number.
    pub closed: bool,
}

/// One read from a shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Records in sequence order (may be empty).
    pub records: Vec<Record>,
    /// How far the reader is behind the tip of the shard.
    pub millis_behind_latest: Option<u64>,
    /// Set when the shard is closed and every record was read: the child shard ids.
    pub shard_end: Option<Vec<String>>,
}

/// Why a source operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The stream or shard does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Still throttled after the SDK's retries.
    #[error("throttled: {0}")]
    Throttled(String),
    /// Any other failure (after the SDK's retries).
    #[error("record source failed: {0}")]
    Backend(String),
}

/// A stream's shards and their readers.
#[async_trait]
pub trait RecordSource: Send + Sync + std::fmt::Debug {
    /// Every shard of the stream, open and closed (still within retention).
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, SourceError>;

    /// A reader of one shard from `start`.
    async fn open(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<Box<dyn ShardReader>, SourceError>;
}

/// Reads one shard, pacing itself.
#[async_trait]
pub trait ShardReader: Send + std::fmt::Debug {
    /// The next batch. Waits as the source's pacing requires; may return an empty batch.
    async fn next_batch(&mut self) -> Result<Batch, SourceError>;
}
