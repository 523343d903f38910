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
use std::time::Duration;

use async_trait::async_trait;
use kinesis_consumer::{
    Checkpointer, ProcessorError, ProcessorFactory, Record, RecordProcessor, ShardContext,
};
use quote_archive::segment::shard_prefix;
use quote_archive::{Manifest, ObjectStore, ShardWriter, WriteError};
use quote_runtime::backoff::Backoff;
use quote_runtime::error_chain::chain;

pub mod backfill;

pub use quote_archive::ArchiverConfig;

/// Least time between two reads of a shard when polling (see
/// [`quote_pipeline::service::RecordService::min_read_interval`]).
pub const MIN_READ_INTERVAL: Duration = Duration::from_secs(1);

/// The archiver's consumer application name (its lease table's default is
/// `quote-archiver-leases`).
pub const NAME: &str = "archiver";

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
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("checkpointing after the commit failed")]
    Checkpoint(#[source] kinesis_consumer::processor::CheckpointError),
}

/// The archiver of one shard while its lease is held.
#[derive(Debug)]
pub struct ShardArchiver {
    writer: ShardWriter,
}

impl ShardArchiver {
    fn new(archiver: Archiver, shard_id: &str) -> Self {
        Self {
            writer: ShardWriter::new(
                archiver.objects,
                archiver.manifest,
                archiver.config,
                shard_id,
            ),
        }
    }

    /// Stores and commits the closed segment, if any, then checkpoints at its last record.
    async fn store_closed(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ArchiveError> {
        if let Some(last) = self.writer.store_closed().await? {
            checkpointer
                .checkpoint_at(&last)
                .await
                .map_err(ArchiveError::Checkpoint)?;
        }
        Ok(())
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
            self.writer.close_if_due(true);
            match self.store_closed(checkpointer).await {
                Ok(()) if !self.writer.has_buffered() => return Ok(()),
                Ok(()) => continue,
                Err(err) if backoff.attempts() + 1 >= attempts => return Err(err),
                Err(err) => {
                    tracing::warn!(shard_id = %self.writer.shard_id(), error = %chain(&err), "storing the last segment failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

#[async_trait]
impl RecordProcessor for ShardArchiver {
    async fn initialize(&mut self, shard: &ShardContext) -> Result<(), ProcessorError> {
        let head = self
            .writer
            .claim(shard.fencing_token, &shard.parent_shard_ids)
            .await
            .map_err(ProcessorError::transient)?;
        tracing::debug!(shard_id = %self.writer.shard_id(), archived_to = ?head.last_sequence, segments = head.segments, "archiving shard");
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
            if self.writer.seen(&record.sequence_number) {
                continue;
            }
            self.writer.add(record);
            self.writer.close_if_due(false);
            self.store_closed(checkpointer)
                .await
                .map_err(ProcessorError::transient)?;
        }
        self.writer.close_if_due(false);
        self.store_closed(checkpointer)
            .await
            .map_err(ProcessorError::transient)?;
        Ok(())
    }

    async fn lease_lost(&mut self) {
        self.writer.discard();
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        self.flush(checkpointer, 1)
            .await
            .map_err(ProcessorError::transient)?;
        self.writer.end().await.map_err(ProcessorError::transient)?;
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
