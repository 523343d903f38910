//! The manifest: for each shard of a stream, which segments hold its records, in order. It
//! is the archive's commit point — a segment object counts once its entry is in the manifest —
//! and its fencing keeps two writers of one shard (a worker that lost its lease but does not
//! know yet, and the new owner) from both committing.
//!
//! Per shard a head says how far the archive goes (`last_sequence`), who may extend it
//! (`fencing_token`, the lease counter of the owner when it took the lease), the shard's
//! parents (its lineage, kept after Kinesis has forgotten it) and whether the shard ended.
//!
//! - [`Manifest::claim`]: the new owner of a shard's lease raises the head's token to its own;
//!   from then on a writer with an older token cannot commit.
//! - [`Manifest::commit`]: appends a segment, conditionally on the head still being at
//!   `previous_last` with the committer's token: segments of a shard never overlap and never
//!   leave a gap.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

/// How far one shard is archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardHead {
    /// The shard.
    pub shard_id: String,
    /// The last archived record's sequence number (`None` before the first segment).
    pub last_sequence: Option<String>,
    /// Segments committed.
    pub segments: u64,
    /// Records in them.
    pub records: u64,
    /// The token of the writer that may commit next.
    pub fencing_token: u64,
    /// The shards this one was split or merged from.
    pub parents: Vec<String>,
    /// Whether the shard was read to its end and every record archived.
    pub ended: bool,
}

/// One committed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEntry {
    /// Its object key.
    pub key: String,
    /// First record's sequence number.
    pub first_sequence: String,
    /// Last record's sequence number.
    pub last_sequence: String,
    /// Records in it.
    pub records: u64,
    /// Size of the object (compressed).
    pub bytes: u64,
    /// When it was committed.
    pub committed_at: OffsetDateTime,
}

/// Why a manifest operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A writer with a newer token owns the shard: stop writing it.
    #[error("shard {shard_id} is archived by a newer owner (token {current}, ours {ours})")]
    Fenced {
        /// The shard.
        shard_id: String,
        /// The head's token.
        current: u64,
        /// The caller's.
        ours: u64,
    },
    /// The head is not where the committer thought (another commit came first).
    #[error("shard {shard_id} is archived up to {actual:?}, not {expected:?}")]
    Moved {
        /// The shard.
        shard_id: String,
        /// Where the committer thought it was.
        expected: Option<String>,
        /// Where it is.
        actual: Option<String>,
    },
    /// The shard ended: every record of it is archived, nothing more can be.
    #[error("shard {0} ended; it takes no more segments")]
    Ended(String),
    /// The shard has no head: nobody claimed it.
    #[error("shard {0} was never claimed")]
    Unclaimed(String),
    /// An item of the manifest is unreadable.
    #[error("manifest item {what} is corrupt")]
    Corrupt {
        /// Which item and attribute.
        what: String,
    },
    /// The backend failed (after the SDK's retries).
    #[error("manifest backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The manifest of the archive.
#[async_trait]
pub trait Manifest: Send + Sync + std::fmt::Debug {
    /// Makes `fencing_token` the shard's owner (creating its head with `parents` if there is
    /// none) and returns the head. [`ManifestError::Fenced`] when the head's token is newer.
    async fn claim(
        &self,
        stream: &str,
        shard_id: &str,
        fencing_token: u64,
        parents: &[String],
    ) -> Result<ShardHead, ManifestError>;

    /// Appends `segment` to the shard, if its head is at `previous_last` and owned by
    /// `fencing_token`.
    async fn commit(
        &self,
        stream: &str,
        shard_id: &str,
        segment: &SegmentEntry,
        previous_last: Option<&str>,
        fencing_token: u64,
    ) -> Result<(), ManifestError>;

    /// Records that the shard ended and everything in it is archived.
    async fn end_shard(
        &self,
        stream: &str,
        shard_id: &str,
        fencing_token: u64,
    ) -> Result<(), ManifestError>;

    /// The heads of every shard of `stream`, by shard id.
    async fn shards(&self, stream: &str) -> Result<Vec<ShardHead>, ManifestError>;

    /// The segments of one shard, in order.
    async fn segments(
        &self,
        stream: &str,
        shard_id: &str,
    ) -> Result<Vec<SegmentEntry>, ManifestError>;
}

/// One shard's part of an in-memory manifest.
#[derive(Debug, Clone)]
struct ShardState {
    head: ShardHead,
    segments: Vec<SegmentEntry>,
}

/// The manifest in memory (the embedded mode and tests).
#[derive(Debug, Default)]
pub struct InMemoryManifest {
    shards: Mutex<BTreeMap<(String, String), ShardState>>,
}

impl InMemoryManifest {
    /// An empty manifest.
    pub fn new() -> Self {
        Self::default()
    }

    fn shards(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), ShardState>> {
        self.shards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The state of a shard a writer with `token` may change.
fn owned<'a>(
    state: Option<&'a mut ShardState>,
    shard_id: &str,
    token: u64,
) -> Result<&'a mut ShardState, ManifestError> {
    let state = state.ok_or_else(|| ManifestError::Unclaimed(shard_id.to_owned()))?;
    if state.head.fencing_token != token {
        return Err(ManifestError::Fenced {
            shard_id: shard_id.to_owned(),
            current: state.head.fencing_token,
            ours: token,
        });
    }
    Ok(state)
}

#[async_trait]
impl Manifest for InMemoryManifest {
    async fn claim(
        &self,
        stream: &str,
        shard_id: &str,
        fencing_token: u64,
        parents: &[String],
    ) -> Result<ShardHead, ManifestError> {
        let mut shards = self.shards();
        let state = shards
            .entry((stream.to_owned(), shard_id.to_owned()))
            .or_insert_with(|| ShardState {
                head: ShardHead {
                    shard_id: shard_id.to_owned(),
                    last_sequence: None,
                    segments: 0,
                    records: 0,
                    fencing_token,
                    parents: parents.to_vec(),
                    ended: false,
                },
                segments: Vec::new(),
            });
        if state.head.fencing_token > fencing_token {
            return Err(ManifestError::Fenced {
                shard_id: shard_id.to_owned(),
                current: state.head.fencing_token,
                ours: fencing_token,
            });
        }
        state.head.fencing_token = fencing_token;
        Ok(state.head.clone())
    }

    async fn commit(
        &self,
        stream: &str,
        shard_id: &str,
        segment: &SegmentEntry,
        previous_last: Option<&str>,
        fencing_token: u64,
    ) -> Result<(), ManifestError> {
        let mut shards = self.shards();
        let key = (stream.to_owned(), shard_id.to_owned());
        let state = owned(shards.get_mut(&key), shard_id, fencing_token)?;
        if state.head.ended {
            return Err(ManifestError::Ended(shard_id.to_owned()));
        }
        if state.head.last_sequence.as_deref() != previous_last {
            return Err(ManifestError::Moved {
                shard_id: shard_id.to_owned(),
                expected: previous_last.map(str::to_owned),
                actual: state.head.last_sequence.clone(),
            });
        }
        state.head.last_sequence = Some(segment.last_sequence.clone());
        state.head.segments += 1;
        state.head.records += segment.records;
        state.segments.push(segment.clone());
        Ok(())
    }

    async fn end_shard(
        &self,
        stream: &str,
        shard_id: &str,
        fencing_token: u64,
    ) -> Result<(), ManifestError> {
        let mut shards = self.shards();
        let key = (stream.to_owned(), shard_id.to_owned());
        owned(shards.get_mut(&key), shard_id, fencing_token)?
            .head
            .ended = true;
        Ok(())
    }

    async fn shards(&self, stream: &str) -> Result<Vec<ShardHead>, ManifestError> {
        Ok(self
            .shards()
            .iter()
            .filter(|((s, _), _)| s == stream)
            .map(|(_, state)| state.head.clone())
            .collect())
    }

    async fn segments(
        &self,
        stream: &str,
        shard_id: &str,
    ) -> Result<Vec<SegmentEntry>, ManifestError> {
        Ok(self
            .shards()
            .get(&(stream.to_owned(), shard_id.to_owned()))
            .map(|state| state.segments.clone())
            .unwrap_or_default())
    }
}
