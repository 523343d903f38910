//! Writing one shard of the archive: records are added to an open segment, which closes by
//! size or age and is then stored (`PutObject`) and committed to the manifest, fenced by the
//! writer's token. The archiver (a lease holder reading Kinesis) and the backfill (a reader of
//! the event store) both write through a [`ShardWriter`], so a segment is made, stored and
//! committed one way.
//!
//! 1. [`ShardWriter::claim`] raises the shard's fencing token to the writer's (a writer with an
//!    older token can no longer commit), learns how far the shard is archived, and deletes the
//!    objects a crashed writer stored after that point without committing them.
//! 2. Records at or below that point are [`seen`](ShardWriter::seen) (the caller skips them);
//!    the others are [`add`](ShardWriter::add)ed to the open segment, compressed as they come.
//! 3. [`ShardWriter::close_if_due`] closes the open segment when it is full or old;
//!    [`ShardWriter::store_closed`] stores and commits it and says up to where the shard is now
//!    archived (the archiver then checkpoints there). A failure leaves the closed segment to
//!    retry; a crash leaves either nothing or a committed segment.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kinesis_consumer::lease::compare_sequence_numbers;
use kinesis_consumer::Record;
use time::OffsetDateTime;

use crate::manifest::{Manifest, ManifestError, SegmentEntry, ShardHead};
use crate::objects::{ObjectStore, ObjectStoreError};
use crate::segment::{after_sequence_key, segment_key, shard_prefix, ClosedSegment, SegmentWriter};

/// What is archived where, and when a segment closes.
#[derive(Debug, Clone)]
pub struct ArchiverConfig {
    /// The stream archived (it names the objects and the manifest's partition).
    pub stream: String,
    /// Prefix of every object key (`ARCHIVE_PREFIX`, `events/` by default).
    pub prefix: String,
    /// A segment closes once its JSON Lines reach this many bytes (`ARCHIVE_SEGMENT_BYTES`).
    pub segment_bytes: u64,
    /// A segment closes once it is this old (`ARCHIVE_SEGMENT_SECS`).
    pub segment_age: Duration,
}

/// Why writing a shard failed (worth retrying, except [`WriteError::Manifest`] with
/// [`ManifestError::Fenced`]: another writer owns the shard now).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A segment was stored or committed before the shard was claimed.
    #[error("the shard was not claimed")]
    NotClaimed,
    /// The manifest refused or failed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The object store failed.
    #[error(transparent)]
    Objects(#[from] ObjectStoreError),
}

/// The writer of one shard of the archive.
#[derive(Debug)]
pub struct ShardWriter {
    objects: Arc<dyn ObjectStore>,
    manifest: Arc<dyn Manifest>,
    config: Arc<ArchiverConfig>,
    shard_id: String,
    /// Set by [`ShardWriter::claim`]: the writer's fencing token.
    token: Option<u64>,
    /// The last record committed to the manifest.
    archived_to: Option<String>,
    /// The segment records are being added to, and when it opened.
    open: Option<(SegmentWriter, Instant)>,
    /// A closed segment not yet stored and committed (retried first).
    closed: Option<ClosedSegment>,
}

impl ShardWriter {
    /// A writer of `shard_id`; nothing is written before [`ShardWriter::claim`].
    pub fn new(
        objects: Arc<dyn ObjectStore>,
        manifest: Arc<dyn Manifest>,
        config: Arc<ArchiverConfig>,
        shard_id: &str,
    ) -> Self {
        Self {
            objects,
            manifest,
            config,
            shard_id: shard_id.to_owned(),
            token: None,
            archived_to: None,
            open: None,
            closed: None,
        }
    }

    /// The shard written.
    pub fn shard_id(&self) -> &str {
        &self.shard_id
    }

    /// The last record committed to the manifest.
    pub fn archived_to(&self) -> Option<&str> {
        self.archived_to.as_deref()
    }

    /// Claims the shard with `token` (creating its head with `parents` if it has none), then
    /// deletes the objects stored after its head but never committed (a writer crashed between
    /// `PutObject` and the commit; a new segment from the same first record replaces them).
    pub async fn claim(&mut self, token: u64, parents: &[String]) -> Result<ShardHead, WriteError> {
        let head = self
            .manifest
            .claim(&self.config.stream, &self.shard_id, token, parents)
            .await?;
        self.token = Some(token);
        self.archived_to = head.last_sequence.clone();
        self.open = None;
        self.closed = None;
        self.delete_uncommitted().await?;
        Ok(head)
    }

    async fn delete_uncommitted(&self) -> Result<(), WriteError> {
        let config = &self.config;
        let start_after = self
            .archived_to
            .as_deref()
            .map(|last| after_sequence_key(&config.prefix, &config.stream, &self.shard_id, last));
        let prefix = shard_prefix(&config.prefix, &config.stream, &self.shard_id);
        for key in self.objects.list(&prefix, start_after.as_deref()).await? {
            tracing::info!(shard_id = %self.shard_id, %key, "deleting a segment stored but never committed (a writer crashed)");
            self.objects.delete(&key).await?;
        }
        Ok(())
    }

    /// Whether the record with `sequence_number` is already archived or buffered.
    pub fn seen(&self, sequence_number: &str) -> bool {
        let upto = self
            .open
            .as_ref()
            .map(|(writer, _)| writer.last())
            .or(self.closed.as_ref().map(|c| c.last.as_str()))
            .or(self.archived_to.as_deref());
        upto.is_some_and(|upto| {
            compare_sequence_numbers(sequence_number, upto) != std::cmp::Ordering::Greater
        })
    }

    /// Adds a record (not [`seen`](Self::seen)) to the open segment, opening one if needed.
    pub fn add(&mut self, record: &Record) {
        match &mut self.open {
            Some((writer, _)) => writer.push(record),
            None => self.open = Some((SegmentWriter::new(record), Instant::now())),
        }
    }

    /// Records in the closed segment waiting to be stored (0 when none).
    pub fn closed_records(&self) -> u64 {
        self.closed.as_ref().map_or(0, |closed| closed.records)
    }

    /// Whether records are buffered and not yet committed.
    pub fn has_buffered(&self) -> bool {
        self.open.is_some() || self.closed.is_some()
    }

    /// Closes the open segment if it is full or old enough (`force`: in any case), unless a
    /// closed one still waits to be stored.
    pub fn close_if_due(&mut self, force: bool) {
        let due = self.open.as_ref().is_some_and(|(writer, opened)| {
            force
                || writer.uncompressed_bytes() >= self.config.segment_bytes
                || opened.elapsed() >= self.config.segment_age
        });
        if due && self.closed.is_none() {
            if let Some((writer, _)) = self.open.take() {
                self.closed = Some(writer.finish());
            }
        }
    }

    /// Stores and commits the closed segment, if any: `Some(last)` when the shard is now
    /// archived up to `last`, `None` when nothing was closed.
    pub async fn store_closed(&mut self) -> Result<Option<String>, WriteError> {
        let Some(segment) = &self.closed else {
            return Ok(None);
        };
        let token = self.token.ok_or(WriteError::NotClaimed)?;
        let config = &self.config;
        let key = segment_key(
            &config.prefix,
            &config.stream,
            &self.shard_id,
            &segment.first,
            &segment.last,
        );
        self.objects.put(&key, segment.body.clone()).await?;
        let entry = SegmentEntry {
            key,
            first_sequence: segment.first.clone(),
            last_sequence: segment.last.clone(),
            records: segment.records,
            bytes: segment.body.len() as u64,
            committed_at: OffsetDateTime::now_utc(),
        };
        let committed = self
            .manifest
            .commit(
                &config.stream,
                &self.shard_id,
                &entry,
                self.archived_to.as_deref(),
                token,
            )
            .await;
        match committed {
            Ok(()) => {}
            // The commit was applied but its answer was lost: a retry finds the head where
            // this very commit put it.
            Err(ManifestError::Moved { actual, .. })
                if actual.as_deref() == Some(&segment.last) => {}
            Err(err) => return Err(err.into()),
        }
        tracing::debug!(shard_id = %self.shard_id, key = %entry.key, records = entry.records, bytes = entry.bytes, "segment archived");
        let last = segment.last.clone();
        self.archived_to = Some(last.clone());
        self.closed = None;
        Ok(Some(last))
    }

    /// Records in the manifest that the shard ended (every record of it is archived).
    pub async fn end(&self) -> Result<(), WriteError> {
        let token = self.token.ok_or(WriteError::NotClaimed)?;
        self.manifest
            .end_shard(&self.config.stream, &self.shard_id, token)
            .await?;
        Ok(())
    }

    /// Drops what is buffered (the lease was lost: the next owner reads it again).
    pub fn discard(&mut self) {
        self.open = None;
        self.closed = None;
    }
}
