//! The processor interface, in the spirit of the KCL's `ShardRecordProcessor`, and the
//! checkpointer handed to it.
//!
//! Call order for one lease: `initialize`, then `process_records` per batch (records in
//! sequence order; also empty batches with `WorkerConfig::deliver_empty_batches`), then:
//! `lease_lost` (another worker took the lease: do not checkpoint), `shard_ended` (the shard
//! was read to its end; retried until it succeeds, then the library checkpoints `SHARD_END` so
//! the children start), or `shutdown_requested` (the worker is stopping; unless it fails, the
//! library checkpoints the last processed record afterwards and releases the lease). Only a
//! `shard_ended` still being retried when the lease is lost or the worker stops is followed
//! by `lease_lost` or `shutdown_requested`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::lease::Checkpoint;
use crate::lease_table::{LeaseTable, LeaseTableError};
use crate::record::Record;
use crate::worker::held::HeldLease;

/// An error a processor reports for a batch, saying whether it is worth waiting for.
///
/// - **Transient** ([`ProcessorError::transient`]): a dependency is throttling, failing (5xx),
///   timing out or down. The batch is retried with capped, jittered backoff for as long as it
///   takes; the shard waits and is never dead-lettered for it.
/// - **Permanent** ([`ProcessorError::permanent`], and any error converted with `?` or `into`):
///   the record itself is at fault (undecodable, invalid). It is retried a bounded number of
///   times, then set aside under the [`FailurePolicy`](crate::FailurePolicy).
///
/// Deliberately not a `std::error::Error` itself (like `anyhow::Error`), so that any error
/// converts into it.
pub struct ProcessorError {
    transient: bool,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl ProcessorError {
    /// A failure that may go away by waiting (throttling, 5xx, timeouts, a dependency down).
    pub fn transient(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            transient: true,
            source: source.into(),
        }
    }

    /// A failure of the record itself: retrying it cannot help.
    pub fn permanent(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            transient: false,
            source: source.into(),
        }
    }

    /// Whether the failure may go away by waiting.
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// The error reported.
    pub fn source(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.source.as_ref()
    }
}

/// The error and its sources, `: `-separated (what a dead letter and the logs record).
impl std::fmt::Display for ProcessorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source: &(dyn std::error::Error + 'static) = self.source.as_ref();
        write!(f, "{}", quote_runtime::error_chain::chain(source))
    }
}

impl std::fmt::Debug for ProcessorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorError")
            .field("transient", &self.transient)
            .field("source", &self.source)
            .finish()
    }
}

/// Any error is permanent unless the processor says otherwise.
impl<E> From<E> for ProcessorError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn from(source: E) -> Self {
        Self::permanent(source)
    }
}

/// What a processor learns when it starts on a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardContext {
    /// The shard.
    pub shard_id: String,
    /// The worker processing it.
    pub worker_id: String,
    /// Where processing resumes.
    pub checkpoint: Checkpoint,
    /// The lease counter when the lease was acquired: a fencing token that grows with every
    /// change of owner, for writes the processor makes to other systems.
    pub fencing_token: u64,
    /// The shards this one was split or merged from (empty for a shard of the stream's
    /// creation).
    pub parent_shard_ids: Vec<String>,
}

/// Processes the records of one shard.
#[async_trait]
pub trait RecordProcessor: Send {
    /// Called once before the first batch.
    async fn initialize(&mut self, _shard: &ShardContext) -> Result<(), ProcessorError> {
        Ok(())
    }

    /// Processes a batch in order. An error is handled by the worker's failure policy.
    async fn process_records(
        &mut self,
        records: &[Record],
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError>;

    /// The lease was lost to another worker: stop, and do not checkpoint.
    async fn lease_lost(&mut self) {}

    /// Every record of the shard was delivered; the library checkpoints `SHARD_END` once this
    /// succeeds (an error is retried with backoff while the lease is held, as the KCL requires
    /// the end of a shard to be acknowledged: a processor that still holds records must not
    /// see them skipped). Should the lease be lost or the worker stop during those retries,
    /// `lease_lost` or `shutdown_requested` follows, and the shard is not ended.
    async fn shard_ended(
        &mut self,
        _checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        Ok(())
    }

    /// The worker is shutting down; the library checkpoints the last processed record next,
    /// unless this fails (the next owner then receives again what followed the last
    /// checkpoint).
    async fn shutdown_requested(
        &mut self,
        _checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        Ok(())
    }
}

/// Creates a processor per shard lease.
pub trait ProcessorFactory: Send + Sync {
    /// A processor for `shard_id`.
    fn create(&self, shard_id: &str) -> Box<dyn RecordProcessor>;
}

impl<F> ProcessorFactory for F
where
    F: Fn(&str) -> Box<dyn RecordProcessor> + Send + Sync,
{
    fn create(&self, shard_id: &str) -> Box<dyn RecordProcessor> {
        self(shard_id)
    }
}

/// Why a checkpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The lease is no longer ours; another worker owns the shard now.
    #[error("lease lost; the checkpoint was not written")]
    LeaseLost,
    /// The checkpoint would move backwards or past what was delivered.
    #[error("invalid checkpoint: {0}")]
    Invalid(String),
    /// The lease table failed.
    #[error(transparent)]
    Table(LeaseTableError),
}

/// Records progress for one shard. Handed to the processor with each batch.
#[derive(Debug)]
pub struct Checkpointer {
    held: Arc<HeldLease>,
    table: Arc<dyn LeaseTable>,
    last_delivered: Option<String>,
    checkpointed: Checkpoint,
    writes: u64,
}

impl Checkpointer {
    pub(crate) fn new(
        held: Arc<HeldLease>,
        table: Arc<dyn LeaseTable>,
        checkpointed: Checkpoint,
    ) -> Self {
        Self {
            held,
            table,
            last_delivered: None,
            checkpointed,
            writes: 0,
        }
    }

    pub(crate) fn delivered(&mut self, sequence_number: &str) {
        self.last_delivered = Some(sequence_number.to_owned());
    }

    /// Forgets deliveries after `handled` (a batch abandoned mid-retry), so that the next
    /// checkpoint covers only what was handled.
    pub(crate) fn rewind_delivered(&mut self, handled: Option<String>) {
        self.last_delivered = handled;
    }

    /// The sequence number of the last record delivered to the processor.
    pub fn last_delivered(&self) -> Option<&str> {
        self.last_delivered.as_deref()
    }

    /// The last checkpoint written (or read when the lease was acquired).
    pub fn last_checkpoint(&self) -> &Checkpoint {
        &self.checkpointed
    }

    /// Checkpoint writes made through this checkpointer.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// The lease counter now: a fencing token for writes to other systems.
    pub async fn fencing_token(&self) -> u64 {
        self.held.lease.lock().await.lease_counter
    }

    /// Checkpoints at the last record delivered (a no-op when nothing new was delivered).
    pub async fn checkpoint(&mut self) -> Result<(), CheckpointError> {
        match self.last_delivered.clone() {
            Some(sequence) => self.checkpoint_to(Checkpoint::Sequence(sequence)).await,
            None => Ok(()),
        }
    }

    /// Checkpoints at a record already delivered.
    pub async fn checkpoint_at(&mut self, sequence_number: &str) -> Result<(), CheckpointError> {
        let delivered = self.last_delivered.as_deref().unwrap_or("0");
        if crate::lease::compare_sequence_numbers(sequence_number, delivered)
            == std::cmp::Ordering::Greater
        {
            return Err(CheckpointError::Invalid(format!(
                "{sequence_number} was not delivered yet (last delivered {delivered})"
            )));
        }
        self.checkpoint_to(Checkpoint::Sequence(sequence_number.to_owned()))
            .await
    }

    pub(crate) async fn checkpoint_to(
        &mut self,
        checkpoint: Checkpoint,
    ) -> Result<(), CheckpointError> {
        if checkpoint == self.checkpointed {
            return Ok(());
        }
        if !self.checkpointed.may_advance_to(&checkpoint) {
            return Err(CheckpointError::Invalid(format!(
                "checkpoint would move backwards from {} to {checkpoint}",
                self.checkpointed
            )));
        }
        let mut lease = self.held.lease.lock().await;
        match self.table.checkpoint(&lease, &checkpoint, 0).await {
            Ok(updated) => {
                *lease = updated;
                self.checkpointed = checkpoint;
                self.writes += 1;
                Ok(())
            }
            Err(LeaseTableError::Lost(_)) => {
                self.held.mark_lost();
                Err(CheckpointError::LeaseLost)
            }
            Err(other) => Err(CheckpointError::Table(other)),
        }
    }
}
