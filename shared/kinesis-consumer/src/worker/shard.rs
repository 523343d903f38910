//! The consumer of one held lease: reads its shard ahead into a byte-bounded buffer, hands
//! batches to the processor in order, applies the failure and checkpoint policies (the
//! checkpoint timer fires on idle shards too), and ends with exactly one of lease lost, shard
//! end, or shutdown; the worker learns the outcome over its report channel.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use quote_runtime::backoff::Backoff;
use time::OffsetDateTime;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::held::HeldLease;
use crate::config::{FailurePolicy, WorkerConfig};
use crate::dead_letter::DeadLetter;
use crate::lease::{compare_sequence_numbers, Checkpoint};
use crate::lease_table::LeaseTable;
use crate::metrics::WorkerMetrics;
use crate::processor::{
    CheckpointError, Checkpointer, ProcessorFactory, RecordProcessor, ShardContext,
};
use crate::record::Record;
use crate::source::{Batch, RecordSource, SourceError, StartPosition};
use quote_runtime::error_chain::chain;

/// How a shard consumer ended.
#[derive(Debug)]
pub enum ShardOutcome {
    /// The shard was processed to its end and `SHARD_END` checkpointed; its children follow.
    Finished {
        /// Child shard ids reported by the source.
        children: Vec<String>,
    },
    /// Another worker owns the lease now.
    LeaseLost,
    /// Stopped on request after checkpointing what was processed.
    Stopped,
    /// Another worker asked for the lease; processed records are checkpointed and the lease
    /// is to be handed over.
    HandOff,
    /// Could not run (the lease is released so it can be retried).
    Failed(String),
}

/// Everything a shard consumer needs.
pub(crate) struct ShardTask {
    pub shard_id: String,
    pub held: Arc<HeldLease>,
    pub table: Arc<dyn LeaseTable>,
    pub source: Arc<dyn RecordSource>,
    pub factory: Arc<dyn ProcessorFactory>,
    pub config: WorkerConfig,
    pub metrics: Arc<WorkerMetrics>,
    /// Fired on graceful shutdown: stop fetching, finish the batch, checkpoint.
    pub stop: CancellationToken,
}

/// Why a shard's reader was not opened.
enum Opening {
    /// The shard is past retention.
    Trimmed,
    /// The lease was lost while retrying.
    LeaseLost,
    /// Shutdown was requested while retrying (nothing was read, nothing to checkpoint).
    Stopped,
    /// Another worker asked for the lease while retrying.
    HandOff,
}

type Fetched = Result<(Batch, Option<OwnedSemaphorePermit>), SourceError>;

/// Reads ahead until stopped, holding at most `max_buffer_bytes` of unprocessed records.
async fn prefetch(
    mut reader: Box<dyn crate::source::ShardReader>,
    budget: Arc<Semaphore>,
    max_bytes: usize,
    tx: mpsc::Sender<Fetched>,
    stop: CancellationToken,
    metrics: Arc<WorkerMetrics>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return,
            next = reader.next_batch() => next,
        };
        match next {
            Ok(batch) => {
                backoff.reset();
                let bytes: usize = batch.records.iter().map(Record::size).sum();
                let permits = u32::try_from(bytes.clamp(1, max_bytes)).unwrap_or(u32::MAX);
                let permit = tokio::select! {
                    () = stop.cancelled() => return,
                    permit = budget.clone().acquire_many_owned(permits) => permit.ok(),
                };
                let ended = batch.shard_end.is_some();
                if tx.send(Ok((batch, permit))).await.is_err() || ended {
                    return;
                }
            }
            Err(SourceError::NotFound(shard)) => {
                let _ = tx.send(Err(SourceError::NotFound(shard))).await;
                return;
            }
            Err(err) => {
                WorkerMetrics::add(&metrics.source_retries, 1);
                tracing::warn!(error = %chain(&err), "reading the shard failed; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
}

/// Sleeps until `due`, or forever when nothing is due.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl ShardTask {
    #[tracing::instrument(name = "shard", skip_all, fields(shard_id = %self.shard_id))]
    pub(crate) async fn run(self) -> ShardOutcome {
        let lease = self.held.lease.lock().await.clone();
        let context = ShardContext {
            shard_id: self.shard_id.clone(),
            worker_id: self.config.worker_id.clone(),
            checkpoint: lease.checkpoint.clone(),
            fencing_token: self.held.acquired_counter,
            parent_shard_ids: lease.parent_shard_ids.clone(),
        };
        let mut checkpointer = Checkpointer::new(
            self.held.clone(),
            self.table.clone(),
            lease.checkpoint.clone(),
        );
        let Some(start) = self.config.initial_position.start_for(&lease.checkpoint) else {
            return ShardOutcome::Finished {
                children: lease.child_shard_ids,
            };
        };
        let mut processor = self.factory.create(&self.shard_id);
        if let Err(err) = processor.initialize(&context).await {
            return ShardOutcome::Failed(format!("initialize: {err}"));
        }
        let reader = match self.open_reader(start).await {
            Ok(reader) => reader,
            Err(Opening::Trimmed) => return self.trimmed(processor, checkpointer).await,
            Err(Opening::LeaseLost) => {
                processor.lease_lost().await;
                return ShardOutcome::LeaseLost;
            }
            // Nothing was delivered, so the checkpoint is a no-op; the processor still hears of
            // the shutdown (exactly one of lease_lost, shard_ended, shutdown_requested).
            Err(Opening::Stopped) => {
                return self.shutdown(processor.as_mut(), &mut checkpointer).await;
            }
            Err(Opening::HandOff) => {
                return match self.shutdown(processor.as_mut(), &mut checkpointer).await {
                    ShardOutcome::Stopped => ShardOutcome::HandOff,
                    other => other,
                };
            }
        };
        let budget = Arc::new(Semaphore::new(self.config.max_buffer_bytes.max(1)));
        let (tx, mut rx) = mpsc::channel::<Fetched>(64);
        let fetch_stop = self.stop.child_token();
        let fetcher = tokio::spawn(prefetch(
            reader,
            budget,
            self.config.max_buffer_bytes.max(1),
            tx,
            fetch_stop.clone(),
            self.metrics.clone(),
        ));
        let _stop_fetching = fetch_stop.clone().drop_guard();
        tracing::info!(checkpoint = %lease.checkpoint, fencing_token = context.fencing_token, "processing shard");

        let mut since_checkpoint: u64 = 0;
        let mut last_checkpoint_at = Instant::now();
        let outcome = loop {
            // The checkpoint timer runs whether batches arrive or not, so an idle shard's last
            // records are checkpointed too.
            let checkpoint_due = self
                .config
                .checkpoint
                .every
                .filter(|_| since_checkpoint > 0)
                .map(|every| last_checkpoint_at + every);
            let fetched = tokio::select! {
                biased;
                () = self.held.lost.cancelled() => {
                    processor.lease_lost().await;
                    break ShardOutcome::LeaseLost;
                }
                () = self.stop.cancelled() => {
                    break self.shutdown(processor.as_mut(), &mut checkpointer).await;
                }
                () = self.held.handoff.cancelled() => {
                    break match self.shutdown(processor.as_mut(), &mut checkpointer).await {
                        ShardOutcome::Stopped => ShardOutcome::HandOff,
                        other => other,
                    };
                }
                () = sleep_until_due(checkpoint_due) => {
                    match self.checkpoint(&mut checkpointer).await {
                        Ok(()) => {
                            since_checkpoint = 0;
                            self.metrics.set_checkpoint_lag(&self.shard_id, 0);
                            last_checkpoint_at = Instant::now();
                        }
                        Err(outcome) => break outcome,
                    }
                    continue;
                }
                fetched = rx.recv() => fetched,
            };
            let (batch, _permit) = match fetched {
                Some(Ok(item)) => item,
                Some(Err(SourceError::NotFound(_))) => {
                    break self.trimmed(processor, checkpointer).await;
                }
                Some(Err(err)) => break ShardOutcome::Failed(err.to_string()),
                None => break ShardOutcome::Failed("reader stopped".into()),
            };
            if let Some(millis) = batch.millis_behind_latest {
                self.metrics.set_millis_behind(&self.shard_id, millis);
            }
            if !batch.records.is_empty() {
                if let Err(outcome) = self
                    .deliver(processor.as_mut(), &mut checkpointer, &batch.records)
                    .await
                {
                    break outcome;
                }
                since_checkpoint += batch.records.len() as u64;
                self.metrics
                    .set_checkpoint_lag(&self.shard_id, since_checkpoint);
                let policy = self.config.checkpoint;
                let due = policy.every_records.is_some_and(|n| since_checkpoint >= n)
                    || policy
                        .every
                        .is_some_and(|d| last_checkpoint_at.elapsed() >= d);
                if due {
                    match self.checkpoint(&mut checkpointer).await {
                        Ok(()) => {
                            since_checkpoint = 0;
                            self.metrics.set_checkpoint_lag(&self.shard_id, 0);
                            last_checkpoint_at = Instant::now();
                        }
                        Err(outcome) => break outcome,
                    }
                }
            } else if self.config.deliver_empty_batches {
                if let Err(outcome) = self
                    .deliver(processor.as_mut(), &mut checkpointer, &[])
                    .await
                {
                    break outcome;
                }
            }
            if let Some(children) = batch.shard_end {
                if let Err(outcome) = self.end_shard(processor.as_mut(), &mut checkpointer).await {
                    break outcome;
                }
                match self
                    .checkpoint_to(&mut checkpointer, Checkpoint::ShardEnd)
                    .await
                {
                    Ok(()) => break ShardOutcome::Finished { children },
                    Err(outcome) => break outcome,
                }
            }
        };
        fetch_stop.cancel();
        let _ = fetcher.await;
        self.metrics.forget_shard(&self.shard_id);
        outcome
    }

    /// Opens the shard's reader, retrying a failed open (`GetShardIterator` throttled, a 5xx,
    /// the emulator or network down) with capped, jittered backoff for as long as the lease is
    /// held. Releasing the lease instead would send the shard to another worker that meets the
    /// same failure, and re-deliver everything since the checkpoint each time. While it
    /// retries the shard counts as blocked (`kinesis_consumer.shard_blocked_seconds`, alarmed),
    /// so a shard that can never be opened (access denied, a missing key) is seen.
    async fn open_reader(
        &self,
        start: StartPosition,
    ) -> Result<Box<dyn crate::source::ShardReader>, Opening> {
        let opened = self.open_reader_retrying(start).await;
        self.metrics.shard_unblocked(&self.shard_id);
        opened
    }

    async fn open_reader_retrying(
        &self,
        start: StartPosition,
    ) -> Result<Box<dyn crate::source::ShardReader>, Opening> {
        let mut backoff = Backoff::new(self.config.retry_base, self.config.retry_cap);
        loop {
            let opened = tokio::select! {
                biased;
                () = self.held.lost.cancelled() => return Err(Opening::LeaseLost),
                () = self.stop.cancelled() => return Err(Opening::Stopped),
                () = self.held.handoff.cancelled() => return Err(Opening::HandOff),
                opened = self.source.open(&self.shard_id, start.clone()) => opened,
            };
            let err = match opened {
                Ok(reader) => return Ok(reader),
                Err(SourceError::NotFound(_)) => return Err(Opening::Trimmed),
                Err(err) => err,
            };
            WorkerMetrics::add(&self.metrics.source_retries, 1);
            self.metrics.shard_blocked(&self.shard_id);
            let delay = backoff.next_delay();
            tracing::warn!(error = %chain(&err), retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "opening the shard failed; retrying while the lease is held");
            tokio::select! {
                biased;
                () = self.held.lost.cancelled() => return Err(Opening::LeaseLost),
                () = self.stop.cancelled() => return Err(Opening::Stopped),
                () = self.held.handoff.cancelled() => return Err(Opening::HandOff),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// The shard no longer exists (trimmed after retention): treat it as finished.
    async fn trimmed(
        &self,
        mut processor: Box<dyn RecordProcessor>,
        mut checkpointer: Checkpointer,
    ) -> ShardOutcome {
        tracing::warn!("shard no longer exists (past retention); marking it finished");
        let _ = processor.shard_ended(&mut checkpointer).await;
        match self
            .checkpoint_to(&mut checkpointer, Checkpoint::ShardEnd)
            .await
        {
            Ok(()) => ShardOutcome::Finished {
                children: Vec::new(),
            },
            Err(outcome) => outcome,
        }
    }

    /// Tells the processor the shard ended, retrying its failure with capped, jittered backoff
    /// for as long as the lease is held (the shard counts as blocked meanwhile).
    async fn end_shard(
        &self,
        processor: &mut dyn RecordProcessor,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ShardOutcome> {
        let mut backoff = Backoff::new(self.config.retry_base, self.config.retry_cap);
        loop {
            let Err(err) = processor.shard_ended(checkpointer).await else {
                self.metrics.shard_unblocked(&self.shard_id);
                return Ok(());
            };
            self.metrics.shard_blocked(&self.shard_id);
            WorkerMetrics::add(&self.metrics.retries_transient, 1);
            tracing::warn!(error = %err, retry = backoff.attempts() + 1, "shard_ended failed; retrying before SHARD_END is checkpointed");
            if let Err(interrupted) = self.pause(backoff.next_delay()).await {
                return Err(self.interrupted(interrupted, processor, checkpointer).await);
            }
        }
    }

    async fn shutdown(
        &self,
        processor: &mut dyn RecordProcessor,
        checkpointer: &mut Checkpointer,
    ) -> ShardOutcome {
        if let Err(err) = processor.shutdown_requested(checkpointer).await {
            tracing::warn!(error = %err, "shutdown_requested failed; not checkpointing what it may still hold");
            return ShardOutcome::Stopped;
        }
        match self.checkpoint(checkpointer).await {
            Ok(()) => ShardOutcome::Stopped,
            Err(outcome) => outcome,
        }
    }

    async fn checkpoint(&self, checkpointer: &mut Checkpointer) -> Result<(), ShardOutcome> {
        match checkpointer.last_delivered().map(str::to_owned) {
            Some(sequence) => {
                self.checkpoint_to(checkpointer, Checkpoint::Sequence(sequence))
                    .await
            }
            None => Ok(()),
        }
    }

    async fn checkpoint_to(
        &self,
        checkpointer: &mut Checkpointer,
        checkpoint: Checkpoint,
    ) -> Result<(), ShardOutcome> {
        let before = checkpointer.writes();
        let mut backoff = Backoff::new(self.config.retry_base, self.config.retry_cap);
        loop {
            match checkpointer.checkpoint_to(checkpoint.clone()).await {
                Ok(()) => {
                    let written = checkpointer.writes() - before;
                    WorkerMetrics::add(&self.metrics.checkpoints, written);
                    WorkerMetrics::add(&self.metrics.lease_table_writes, written);
                    return Ok(());
                }
                Err(CheckpointError::LeaseLost) => return Err(ShardOutcome::LeaseLost),
                Err(CheckpointError::Invalid(reason)) => return Err(ShardOutcome::Failed(reason)),
                Err(CheckpointError::Table(err)) => {
                    if self.held.is_lost() {
                        return Err(ShardOutcome::LeaseLost);
                    }
                    tracing::warn!(error = %chain(&err), "checkpoint failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Hands records to the processor under the failure policy. `Err` ends the consumer.
    ///
    /// - A **transient** failure (see [`crate::ProcessorError`]) is retried with capped,
    ///   jittered backoff until it succeeds: the shard waits, nothing is dead-lettered.
    /// - A **permanent** failure is retried `max_attempts` times (batch, then record by record);
    ///   the record is then dead-lettered, and so is every later record of its partition key
    ///   ("blocked behind" it), here and after a restart, while other keys go on.
    /// - Lease loss, shutdown and a hand-off request interrupt any wait; what was handled
    ///   before is checkpointed (except on lease loss), the rest is delivered again later.
    async fn deliver(
        &self,
        processor: &mut dyn RecordProcessor,
        checkpointer: &mut Checkpointer,
        records: &[Record],
    ) -> Result<(), ShardOutcome> {
        let handled = checkpointer.last_delivered().map(str::to_owned);
        match self.deliver_or_wait(processor, checkpointer, records).await {
            Ok(()) => Ok(()),
            Err((interrupted, handled_in_batch)) => {
                checkpointer.rewind_delivered(handled_in_batch.or(handled));
                Err(self.interrupted(interrupted, processor, checkpointer).await)
            }
        }
    }

    /// [`ShardTask::deliver`] until interrupted; on interruption, also the last record of the
    /// batch that was handled (processed or set aside).
    async fn deliver_or_wait(
        &self,
        processor: &mut dyn RecordProcessor,
        checkpointer: &mut Checkpointer,
        records: &[Record],
    ) -> Result<(), (Interrupted, Option<String>)> {
        let max_attempts = match &self.config.failure {
            FailurePolicy::RetryForever => u32::MAX,
            FailurePolicy::DeadLetter { max_attempts, .. } => (*max_attempts).max(1),
        };
        let none_blocked = self
            .blocked_keys(records)
            .await
            .map_err(|i| (i, None))?
            .is_empty();
        if none_blocked
            && self
                .attempt(processor, checkpointer, records, max_attempts)
                .await
                .map_err(|i| (i, None))?
                .is_ok()
        {
            self.count(records);
            return Ok(());
        }
        // The batch keeps failing, or holds records of keys set aside: one record at a time.
        let mut handled: Option<String> = None;
        for record in records {
            let single = std::slice::from_ref(record);
            let step = async {
                if let Some(behind) = self.first_dead_letter(&record.partition_key).await? {
                    match compare_sequence_numbers(&behind, &record.sequence_number) {
                        // An earlier record of its key was set aside: so is this one.
                        Ordering::Less => {
                            let error = format!("blocked behind {behind}");
                            return self.dead_letter(record, error, 0, Some(behind)).await;
                        }
                        // This very record, delivered again (its owner stopped before the
                        // checkpoint): its letter stays as it was, with its error.
                        Ordering::Equal => return Ok(()),
                        // The letter is of a later record: this one is handled as usual.
                        Ordering::Greater => {}
                    }
                }
                match self
                    .attempt(processor, checkpointer, single, max_attempts)
                    .await?
                {
                    Ok(()) => {
                        self.count(single);
                        Ok(())
                    }
                    Err(error) => self.dead_letter(record, error, max_attempts, None).await,
                }
            };
            step.await.map_err(|i| (i, handled.clone()))?;
            handled = Some(record.sequence_number.clone());
        }
        Ok(())
    }

    /// Ends the consumer after a wait was interrupted.
    async fn interrupted(
        &self,
        interrupted: Interrupted,
        processor: &mut dyn RecordProcessor,
        checkpointer: &mut Checkpointer,
    ) -> ShardOutcome {
        self.metrics.shard_unblocked(&self.shard_id);
        match interrupted {
            Interrupted::LeaseLost => {
                processor.lease_lost().await;
                ShardOutcome::LeaseLost
            }
            Interrupted::Stop => self.shutdown(processor, checkpointer).await,
            Interrupted::HandOff => match self.shutdown(processor, checkpointer).await {
                ShardOutcome::Stopped => ShardOutcome::HandOff,
                other => other,
            },
        }
    }

    fn count(&self, records: &[Record]) {
        WorkerMetrics::add(&self.metrics.records_processed, records.len() as u64);
        WorkerMetrics::add(
            &self.metrics.bytes_processed,
            records.iter().map(|r| r.data.len() as u64).sum(),
        );
    }

    /// Sleeps `delay` unless the lease is lost, the worker stops or a hand-off is asked for.
    async fn pause(&self, delay: Duration) -> Result<(), Interrupted> {
        tokio::select! {
            biased;
            () = self.held.lost.cancelled() => Err(Interrupted::LeaseLost),
            () = self.stop.cancelled() => Err(Interrupted::Stop),
            () = self.held.handoff.cancelled() => Err(Interrupted::HandOff),
            () = tokio::time::sleep(delay) => Ok(()),
        }
    }

    /// Tries `records` until they succeed, a transient failure forever and a permanent one up
    /// to `max_attempts` times. `Ok(Err)`: the last permanent error.
    async fn attempt(
        &self,
        processor: &mut dyn RecordProcessor,
        checkpointer: &mut Checkpointer,
        records: &[Record],
        max_attempts: u32,
    ) -> Result<Result<(), String>, Interrupted> {
        let mut transient = Backoff::new(self.config.retry_base, self.config.retry_cap);
        let mut permanent = Backoff::new(self.config.retry_base, self.config.retry_cap);
        let mut permanent_failures = 0;
        loop {
            if let Some(last) = records.last() {
                checkpointer.delivered(&last.sequence_number);
            }
            let error = match processor.process_records(records, checkpointer).await {
                Ok(()) => {
                    if transient.attempts() > 0 {
                        tracing::info!(
                            retries = transient.attempts(),
                            "transient failure over; the shard goes on"
                        );
                    }
                    self.metrics.shard_unblocked(&self.shard_id);
                    return Ok(Ok(()));
                }
                Err(err) => err,
            };
            if self.held.is_lost() {
                return Err(Interrupted::LeaseLost);
            }
            let delay = if error.is_transient() {
                WorkerMetrics::add(&self.metrics.retries_transient, 1);
                self.metrics.shard_blocked(&self.shard_id);
                let delay = transient.next_delay();
                tracing::warn!(retry = transient.attempts(), %error, records = records.len(), ?delay, "transient failure; the shard waits and retries");
                delay
            } else {
                permanent_failures += 1;
                if permanent_failures >= max_attempts {
                    self.metrics.shard_unblocked(&self.shard_id);
                    return Ok(Err(error.to_string()));
                }
                WorkerMetrics::add(&self.metrics.retries_permanent, 1);
                tracing::warn!(attempt = permanent_failures, max_attempts, %error, records = records.len(), "processor failed; retrying");
                permanent.next_delay()
            };
            self.pause(delay).await?;
        }
    }

    /// The distinct partition keys of `records` that may be set aside (a record of the key was
    /// dead-lettered; each record is then judged on its own).
    async fn blocked_keys(
        &self,
        records: &[Record],
    ) -> Result<std::collections::HashSet<String>, Interrupted> {
        let mut blocked = std::collections::HashSet::new();
        let mut seen = std::collections::HashSet::new();
        for record in records {
            if seen.insert(record.partition_key.as_str())
                && self
                    .first_dead_letter(&record.partition_key)
                    .await?
                    .is_some()
            {
                blocked.insert(record.partition_key.clone());
            }
        }
        Ok(blocked)
    }

    /// The first dead-lettered record of `partition_key` in this application, if any (the
    /// dead-letter store is asked, so this holds across restarts; failures are waited out).
    async fn first_dead_letter(&self, partition_key: &str) -> Result<Option<String>, Interrupted> {
        let FailurePolicy::DeadLetter { store, .. } = &self.config.failure else {
            return Ok(None);
        };
        let mut backoff = Backoff::new(self.config.retry_base, self.config.retry_cap);
        loop {
            match store
                .first_for_key(&self.config.application, partition_key)
                .await
            {
                Ok(first) => return Ok(first),
                Err(err) => {
                    tracing::warn!(error = %chain(&err), "dead-letter store lookup failed; retrying (the shard waits)");
                    WorkerMetrics::add(&self.metrics.retries_transient, 1);
                    self.metrics.shard_blocked(&self.shard_id);
                    self.pause(backoff.next_delay()).await?;
                }
            }
        }
    }

    async fn dead_letter(
        &self,
        record: &Record,
        error: String,
        attempts: u32,
        blocked_behind: Option<String>,
    ) -> Result<(), Interrupted> {
        let FailurePolicy::DeadLetter { store, .. } = &self.config.failure else {
            return Ok(());
        };
        let letter = DeadLetter {
            application: self.config.application.clone(),
            shard_id: self.shard_id.clone(),
            record: record.clone(),
            error,
            attempts,
            failed_at: OffsetDateTime::now_utc(),
            blocked_behind,
        };
        let mut backoff = Backoff::new(self.config.retry_base, self.config.retry_cap);
        loop {
            match store.put(&letter).await {
                Ok(()) => {
                    self.metrics.shard_unblocked(&self.shard_id);
                    match &letter.blocked_behind {
                        None => {
                            tracing::error!(sequence_number = %record.sequence_number, partition_key = %record.partition_key, error = %letter.error, "record dead-lettered")
                        }
                        Some(behind) => {
                            tracing::error!(sequence_number = %record.sequence_number, partition_key = %record.partition_key, blocked_behind = %behind, "record set aside behind a dead-lettered record of its key")
                        }
                    }
                    WorkerMetrics::add(&self.metrics.dead_lettered, 1);
                    return Ok(());
                }
                Err(err) => {
                    if self.held.is_lost() {
                        return Err(Interrupted::LeaseLost);
                    }
                    tracing::warn!(error = %chain(&err), "dead-letter store failed; retrying (the shard waits)");
                    WorkerMetrics::add(&self.metrics.retries_transient, 1);
                    self.metrics.shard_blocked(&self.shard_id);
                    self.pause(backoff.next_delay()).await?;
                }
            }
        }
    }
}

/// Why a wait inside [`ShardTask::deliver`] ended before the records were handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupted {
    /// Another worker owns the lease now.
    LeaseLost,
    /// The worker is stopping.
    Stop,
    /// Another worker asked for the lease.
    HandOff,
}
