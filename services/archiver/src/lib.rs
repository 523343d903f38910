//! The archiver: a consumer application of its own that writes every record of the event
//! stream to the archive (`quote-archive`), one segment at a time per shard, and checkpoints a
//! record only once the segment holding it is durable and committed to the manifest.
//!
//! Per shard lease ([`ShardArchiver`]):
//!
//! 1. `initialize` claims the shard in the manifest with the lease's fencing token (a worker
//!    that lost the lease can no longer commit), learns how far the shard is archived, and
//!    deletes the objects a crashed writer stored after that point without committing them.
//! 2. Records already archived (redelivered after a crash between commit and checkpoint) are
//!    skipped; the others are appended to the open segment, compressed as they come.
//! 3. A segment closes when its JSON Lines reach `segment_bytes` or it is `segment_age` old
//!    (the worker delivers the empty batches of an idle shard, so an old segment closes
//!    without new records). Closing = `PutObject`, then the manifest commit (conditional on the
//!    head and the token), then the checkpoint at its last record.
//! 4. `shutdown_requested` and `shard_ended` close the open segment first; `shard_ended` then
//!    marks the shard ended in the manifest.
//!
//! Every failure is transient to the worker (the shard waits and retries; a record is never
//! dead-lettered for the archive being unreachable): a crash at any point leaves either nothing
//! or a committed segment, and the records after the last commit are delivered again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kinesis_consumer::lease::compare_sequence_numbers;
use kinesis_consumer::{
    Checkpointer, ProcessorError, ProcessorFactory, Record, RecordProcessor, ShardContext,
};
use quote_archive::segment::{after_sequence_key, segment_key, shard_prefix};
use quote_archive::{
    ClosedSegment, Manifest, ManifestError, ObjectStore, SegmentEntry, SegmentWriter,
};
use quote_runtime::backoff::Backoff;
use quote_runtime::error_chain::chain;
use time::OffsetDateTime;

/// Least time between two reads of a shard when polling (see
/// [`quote_pipeline::service::RecordService::min_read_interval`]).
pub const MIN_READ_INTERVAL: Duration = Duration::from_secs(1);

/// The archiver's consumer application name (its lease table's default is
/// `quote-archiver-leases`).
pub const NAME: &str = "archiver";

/// What the archiver writes and when it closes a segment.
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

/// The archiver of one stream: a factory of [`ShardArchiver`]s.
#[derive(Debug, Clone)]
pub struct Archiver {
    objects: Arc<dyn ObjectStore>,
    manifest: Arc<dyn Manifest>,
    config: Arc<ArchiverConfig>,
}

impl Archiver {
    /// An archiver writing segments to `objects` and committing them to `manifest`.
    pub fn new(
        objects: Arc<dyn ObjectStore>,
        manifest: Arc<dyn Manifest>,
        config: ArchiverConfig,
    ) -> Self {
        Self {
            objects,
            manifest,
            config: Arc::new(config),
        }
    }

    /// The processor factory to give the worker.
    pub fn factory(&self) -> Arc<dyn ProcessorFactory> {
        let archiver = self.clone();
        Arc::new(move |shard_id: &str| -> Box<dyn RecordProcessor> {
            Box::new(ShardArchiver::new(archiver.clone(), shard_id))
        })
    }

    /// Checks that the manifest and the object store answer (for readiness probes).
    pub async fn ready(&self) -> Result<(), String> {
        self.manifest
            .shards(&self.config.stream)
            .await
            .map_err(|err| format!("archive manifest: {}", chain(&err)))?;
        self.objects
            .list(
                &shard_prefix(&self.config.prefix, &self.config.stream, "-"),
                None,
            )
            .await
            .map_err(|err| format!("archive bucket: {}", chain(&err)))?;
        Ok(())
    }
}

#[async_trait]
impl quote_pipeline::service::RecordService for Archiver {
    fn name(&self) -> &'static str {
        NAME
    }

    fn factory(&self) -> Arc<dyn ProcessorFactory> {
        Archiver::factory(self)
    }

    async fn ready(&self) -> Result<(), String> {
        Archiver::ready(self).await
    }

    /// One read per second per shard at most: the archive is not latency-sensitive, and the
    /// pipeline's services share the shard's 5 reads/s.
    fn min_read_interval(&self) -> Duration {
        MIN_READ_INTERVAL
    }
}

/// Why archiving a batch failed (always worth retrying).
#[derive(Debug, thiserror::Error)]
enum ArchiveError {
    #[error("the shard was not initialized")]
    NotInitialized,
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Objects(#[from] quote_archive::ObjectStoreError),
    #[error("checkpointing after the commit failed")]
    Checkpoint(#[source] kinesis_consumer::processor::CheckpointError),
}

/// The archiver of one shard while its lease is held.
#[derive(Debug)]
pub struct ShardArchiver {
    archiver: Archiver,
    shard_id: String,
    /// Set by `initialize`: the lease's fencing token.
    token: Option<u64>,
    /// The last record committed to the manifest.
    archived_to: Option<String>,
    /// The segment records are being added to, and when it opened.
    open: Option<(SegmentWriter, Instant)>,
    /// A closed segment not yet stored and committed (retried first).
    closed: Option<ClosedSegment>,
}

impl ShardArchiver {
    fn new(archiver: Archiver, shard_id: &str) -> Self {
        Self {
            archiver,
            shard_id: shard_id.to_owned(),
            token: None,
            archived_to: None,
            open: None,
            closed: None,
        }
    }

    fn config(&self) -> &ArchiverConfig {
        &self.archiver.config
    }

    /// Whether `record` is already archived or buffered.
    fn seen(&self, record: &Record) -> bool {
        let upto = self
            .open
            .as_ref()
            .map(|(writer, _)| writer.last())
            .or(self.closed.as_ref().map(|c| c.last.as_str()))
            .or(self.archived_to.as_deref());
        upto.is_some_and(|upto| {
            compare_sequence_numbers(&record.sequence_number, upto) != std::cmp::Ordering::Greater
        })
    }

    fn add(&mut self, record: &Record) {
        match &mut self.open {
            Some((writer, _)) => writer.push(record),
            None => self.open = Some((SegmentWriter::new(record), Instant::now())),
        }
    }

    /// Closes the open segment if it is full or old enough (`force`: in any case).
    fn close_if_due(&mut self, force: bool) {
        let due = self.open.as_ref().is_some_and(|(writer, opened)| {
            force
                || writer.uncompressed_bytes() >= self.config().segment_bytes
                || opened.elapsed() >= self.config().segment_age
        });
        if due && self.closed.is_none() {
            if let Some((writer, _)) = self.open.take() {
                self.closed = Some(writer.finish());
            }
        }
    }

    /// Stores and commits the closed segment, if any, then checkpoints at its last record.
    async fn store_closed(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ArchiveError> {
        let Some(segment) = &self.closed else {
            return Ok(());
        };
        let token = self.token.ok_or(ArchiveError::NotInitialized)?;
        let config = &self.archiver.config;
        let key = segment_key(
            &config.prefix,
            &config.stream,
            &self.shard_id,
            &segment.first,
            &segment.last,
        );
        self.archiver
            .objects
            .put(&key, segment.body.clone())
            .await?;
        let entry = SegmentEntry {
            key,
            first_sequence: segment.first.clone(),
            last_sequence: segment.last.clone(),
            records: segment.records,
            bytes: segment.body.len() as u64,
            committed_at: OffsetDateTime::now_utc(),
        };
        let committed = self
            .archiver
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
        self.archived_to = Some(segment.last.clone());
        let last = segment.last.clone();
        self.closed = None;
        checkpointer
            .checkpoint_at(&last)
            .await
            .map_err(ArchiveError::Checkpoint)
    }

    /// Closes and stores everything buffered, retrying a few times (for shutdown, which has
    /// a deadline; what is not stored is delivered again to the next owner).
    async fn flush(
        &mut self,
        checkpointer: &mut Checkpointer,
        attempts: u32,
    ) -> Result<(), ArchiveError> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            self.close_if_due(true);
            let stored = self.store_closed(checkpointer).await;
            let done = stored.is_ok() && self.open.is_none();
            match stored {
                Ok(()) if done => return Ok(()),
                Ok(()) => continue,
                Err(err) if backoff.attempts() + 1 >= attempts => return Err(err),
                Err(err) => {
                    tracing::warn!(shard_id = %self.shard_id, error = %chain(&err), "storing the last segment failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Deletes the segments a crashed writer stored after the committed head (never in the
    /// manifest, so never read; a new segment from the same first record replaces them).
    async fn delete_uncommitted(&self) -> Result<(), ArchiveError> {
        let config = self.config();
        let start_after = self
            .archived_to
            .as_deref()
            .map(|last| after_sequence_key(&config.prefix, &config.stream, &self.shard_id, last));
        let prefix = shard_prefix(&config.prefix, &config.stream, &self.shard_id);
        for key in self
            .archiver
            .objects
            .list(&prefix, start_after.as_deref())
            .await?
        {
            tracing::info!(shard_id = %self.shard_id, %key, "deleting a segment stored but never committed (a writer crashed)");
            self.archiver.objects.delete(&key).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl RecordProcessor for ShardArchiver {
    async fn initialize(&mut self, shard: &ShardContext) -> Result<(), ProcessorError> {
        let head = self
            .archiver
            .manifest
            .claim(
                &self.config().stream,
                &self.shard_id,
                shard.fencing_token,
                &shard.parent_shard_ids,
            )
            .await
            .map_err(|err| ProcessorError::transient(ArchiveError::from(err)))?;
        self.token = Some(shard.fencing_token);
        self.archived_to = head.last_sequence;
        self.delete_uncommitted()
            .await
            .map_err(ProcessorError::transient)?;
        tracing::debug!(shard_id = %self.shard_id, archived_to = ?self.archived_to, segments = head.segments, "archiving shard");
        Ok(())
    }

    async fn process_records(
        &mut self,
        records: &[Record],
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        // A segment that failed to store is retried before anything is added.
        self.store_closed(checkpointer)
            .await
            .map_err(ProcessorError::transient)?;
        for record in records {
            if self.seen(record) {
                continue;
            }
            self.add(record);
            self.close_if_due(false);
            self.store_closed(checkpointer)
                .await
                .map_err(ProcessorError::transient)?;
        }
        self.close_if_due(false);
        self.store_closed(checkpointer)
            .await
            .map_err(ProcessorError::transient)?;
        Ok(())
    }

    async fn lease_lost(&mut self) {
        self.open = None;
        self.closed = None;
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        self.flush(checkpointer, 1)
            .await
            .map_err(ProcessorError::transient)?;
        let token = self
            .token
            .ok_or_else(|| ProcessorError::transient(ArchiveError::NotInitialized))?;
        self.archiver
            .manifest
            .end_shard(&self.config().stream, &self.shard_id, token)
            .await
            .map_err(|err| ProcessorError::transient(ArchiveError::from(err)))?;
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.flush(checkpointer, 3)
            .await
            .map_err(ProcessorError::transient)?;
        Ok(())
    }
}
