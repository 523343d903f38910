//! The worker: one process's share of a consumer application.
//!
//! Tasks of a running worker:
//! - the **scan loop** reads the lease table, tracks expiry, takes unowned and expired leases,
//!   steals towards a fair share (asking owners to hand leases over), starts a shard consumer per
//!   acquired lease, reaps consumers as soon as they end (a handoff is written right after the
//!   consumer's last checkpoint), reads the leases it asked for every `renew_interval` and adopts
//!   each once handed over (`coordination::handoff`), and lists shards periodically (and
//!   whenever a shard ends) to create leases;
//! - the **renewer** renews every held lease each `renew_interval`; a lease it cannot renew
//!   (taken by another worker, or not writable for most of the lease duration) is marked lost
//!   and its consumer stops without checkpointing;
//! - one **shard consumer** per held lease (`shard`).
//!
//! On shutdown (the token passed to [`Worker::run`], e.g. SIGTERM) every consumer stops
//! fetching, finishes its batch and checkpoints; then the worker releases its leases
//! (owner-conditioned), so other workers take them at their next scan, about a second later.

pub(crate) mod held;
pub mod shard;
pub mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::coordination::plan::{plan_acquisitions, Candidate};
use crate::coordination::{decide_handoff, ExpiryTracker, HandoffPoll};
use crate::lease::Lease;
use crate::lease_table::{LeaseTable, LeaseTableError};
use crate::metrics::WorkerMetrics;
use crate::processor::ProcessorFactory;
use crate::source::RecordSource;
use held::HeldLease;
use shard::{ShardOutcome, ShardTask};

type Registry = Arc<Mutex<HashMap<String, Arc<HeldLease>>>>;

/// How often the worker logs its counters.
const METRICS_LOG_INTERVAL: Duration = Duration::from_secs(60);

struct Running {
    held: Arc<HeldLease>,
    task: JoinHandle<ShardOutcome>,
    /// Set by the consumer just before it returns (and the scan loop is woken to settle it).
    done: Arc<AtomicBool>,
}

/// Leases this worker asked for (`handoffOwner`) and when: read one by one every renew interval
/// until handed over (see `coordination::handoff`).
type Pending = HashMap<String, Instant>;

/// One worker of a consumer application.
pub struct Worker {
    config: WorkerConfig,
    table: Arc<dyn LeaseTable>,
    source: Arc<dyn RecordSource>,
    factory: Arc<dyn ProcessorFactory>,
    metrics: Arc<WorkerMetrics>,
    /// Woken when a shard consumer ends, so its lease is settled (e.g. handed over) at once.
    ended: Arc<Notify>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("application", &self.config.application)
            .field("worker_id", &self.config.worker_id)
            .finish_non_exhaustive()
    }
}

fn lock(registry: &Registry) -> std::sync::MutexGuard<'_, HashMap<String, Arc<HeldLease>>> {
    registry.lock().unwrap_or_else(|p| p.into_inner())
}

impl Worker {
    /// A worker reading `source`, coordinating through `table`, processing with `factory`.
    pub fn new(
        config: WorkerConfig,
        table: Arc<dyn LeaseTable>,
        source: Arc<dyn RecordSource>,
        factory: Arc<dyn ProcessorFactory>,
    ) -> Self {
        Self {
            config,
            table,
            source,
            factory,
            metrics: Arc::new(WorkerMetrics::default()),
            ended: Arc::new(Notify::new()),
        }
    }

    /// The worker's counters.
    pub fn metrics(&self) -> Arc<WorkerMetrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` fires, then hands its leases over gracefully.
    #[tracing::instrument(name = "worker", skip_all, fields(application = %self.config.application, worker_id = %self.config.worker_id))]
    pub async fn run(self, shutdown: CancellationToken) {
        let registry: Registry = Arc::default();
        let renewer_stop = CancellationToken::new();
        let renewer = tokio::spawn(renew_loop(
            registry.clone(),
            self.table.clone(),
            self.config.clone(),
            self.metrics.clone(),
            renewer_stop.clone(),
        ));
        let consumers_stop = CancellationToken::new();
        let mut running: HashMap<String, Running> = HashMap::new();
        let mut tracker = ExpiryTracker::new();
        let mut workers = 1;
        let mut pending: Pending = HashMap::new();
        let mut next_scan = Instant::now();
        let mut next_poll: Option<Instant> = None;
        let mut next_sync = Instant::now();
        let mut next_metrics_log = Instant::now() + METRICS_LOG_INTERVAL;
        self.metrics
            .export_to_opentelemetry(&self.config.application, &self.config.worker_id);
        tracing::info!("worker started");
        loop {
            // Wake for the next scan, a consumer that ended (settle it now: a handoff is written
            // as soon as the last checkpoint is), or the next read of leases asked for.
            let poll_at = next_poll.filter(|_| !pending.is_empty());
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(next_scan) => {}
                () = self.ended.notified() => {}
                () = async {
                    match poll_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
            if shutdown.is_cancelled() {
                break;
            }
            let finished = self.reap(&mut running, &registry).await;
            if poll_at.is_some_and(|at| Instant::now() >= at) {
                self.poll_handoffs(&mut pending, &mut running, &registry, &consumers_stop)
                    .await;
                next_poll = Some(Instant::now() + self.config.renew_interval);
            }
            self.metrics
                .leases_held
                .store(running.len() as u64, Ordering::Relaxed);
            // A finished shard scans at once so its children start without waiting.
            if !finished && Instant::now() < next_scan {
                continue;
            }
            if Instant::now() >= next_sync {
                self.sync().await;
                next_sync = Instant::now() + self.config.shard_sync_interval;
            }
            if Instant::now() >= next_metrics_log {
                let m = self.metrics.snapshot();
                tracing::info!(
                    leases_held = m.leases_held,
                    records_processed = m.records_processed,
                    bytes_processed = m.bytes_processed,
                    leases_taken = m.leases_taken,
                    leases_stolen = m.leases_stolen,
                    leases_lost = m.leases_lost,
                    dead_lettered = m.dead_lettered,
                    checkpoints = m.checkpoints,
                    lease_table_writes = m.lease_table_writes,
                    millis_behind = ?m.millis_behind,
                    checkpoint_lag = ?m.checkpoint_lag,
                    "worker metrics"
                );
                next_metrics_log = Instant::now() + METRICS_LOG_INTERVAL;
            }
            match self
                .scan(
                    &mut tracker,
                    &mut pending,
                    &mut running,
                    &registry,
                    &consumers_stop,
                )
                .await
            {
                Ok(fleet) => workers = fleet,
                Err(err) => tracing::warn!(error = %err, "lease table scan failed"),
            }
            if pending.is_empty() {
                next_poll = None;
            } else if next_poll.is_none() {
                next_poll = Some(Instant::now() + self.config.renew_interval);
            }
            next_scan = Instant::now() + jittered(self.config.scan_interval_for(workers));
        }

        tracing::info!(
            leases = running.len(),
            "shutting down: finishing batches, checkpointing, releasing leases"
        );
        consumers_stop.cancel();
        for (shard_id, run) in running.drain() {
            let outcome = run
                .task
                .await
                .unwrap_or_else(|e| ShardOutcome::Failed(e.to_string()));
            self.settle(&shard_id, &run.held, outcome, &registry).await;
        }
        // Leases handed over to this worker but not adopted yet: release them too, so nobody
        // waits for them to expire.
        if let Ok(leases) = self.table.list().await {
            for lease in leases
                .iter()
                .filter(|l| l.is_owned_by(&self.config.worker_id) && !l.is_finished())
            {
                if self.table.release(lease).await.is_ok() {
                    WorkerMetrics::add(&self.metrics.leases_released, 1);
                    WorkerMetrics::add(&self.metrics.lease_table_writes, 1);
                    tracing::info!(shard_id = %lease.lease_key, "released a lease handed over during shutdown");
                }
            }
        }
        renewer_stop.cancel();
        let _ = renewer.await;
        tracing::info!(metrics = ?self.metrics.snapshot(), "worker stopped");
    }

    async fn sync(&self) {
        match sync::sync_shards(
            self.table.as_ref(),
            self.source.as_ref(),
            self.config.initial_position,
            &self.metrics,
        )
        .await
        {
            Ok(created) if created > 0 => tracing::info!(created, "shard sync created leases"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "shard sync failed"),
        }
    }

    /// Reads the table, takes and steals, starts consumers. Returns the fleet size seen.
    async fn scan(
        &self,
        tracker: &mut ExpiryTracker,
        pending: &mut Pending,
        running: &mut HashMap<String, Running>,
        registry: &Registry,
        consumers_stop: &CancellationToken,
    ) -> Result<usize, LeaseTableError> {
        let leases = self.table.list().await?;
        WorkerMetrics::add(&self.metrics.lease_table_scans, 1);
        let now = Instant::now();
        tracker.observe(&leases, now);
        let me = self.config.worker_id.as_str();
        for lease in &leases {
            match running.get(&lease.lease_key) {
                Some(run) if !lease.is_owned_by(me) && !run.held.is_lost() => {
                    tracing::warn!(shard_id = %lease.lease_key, new_owner = ?lease.lease_owner, "lease taken by another worker");
                    run.held.mark_lost();
                }
                Some(run) if lease.handoff_owner.is_some() => run.held.handoff.cancel(),
                Some(_) => {}
                None if lease.is_owned_by(me) && !lease.is_finished() => {
                    // Handed to us by its previous owner (or ours from before a restart), and
                    // not adopted by a read of the pending request yet.
                    pending.remove(&lease.lease_key);
                    WorkerMetrics::add(&self.metrics.leases_stolen, 1);
                    tracing::info!(shard_id = %lease.lease_key, lease_counter = lease.lease_counter, checkpoint = %lease.checkpoint, "lease handed over to this worker");
                    self.start(lease.clone(), running, registry, consumers_stop);
                }
                None => {}
            }
        }
        // Keep polling only requests still pending on the lease as scanned; released leases are
        // taken by the plan below.
        pending.retain(|key, asked_at| {
            let current = leases.iter().find(|l| &l.lease_key == key);
            decide_handoff(me, current, *asked_at, now, self.config.lease_duration)
                == HandoffPoll::Wait
        });
        let candidates: Vec<Candidate<'_>> = leases
            .iter()
            .map(|lease| Candidate {
                lease,
                expired: tracker.is_expired(lease, now, self.config.lease_duration),
            })
            .collect();
        let plan = plan_acquisitions(me, &candidates, &leases);
        for (lease, stolen) in plan
            .take
            .iter()
            .map(|l| (l, false))
            .chain(plan.steal.iter().map(|l| (l, true)))
        {
            self.acquire(lease, stolen, pending, running, registry, consumers_stop)
                .await;
        }
        let owners: HashSet<&str> = candidates
            .iter()
            .filter(|c| !c.expired)
            .filter_map(|c| c.lease.lease_owner.as_deref())
            .chain(std::iter::once(me))
            .collect();
        Ok(owners.len())
    }

    async fn acquire(
        &self,
        seen: &Lease,
        stolen: bool,
        pending: &mut Pending,
        running: &mut HashMap<String, Running>,
        registry: &Registry,
        consumers_stop: &CancellationToken,
    ) {
        if running.contains_key(&seen.lease_key) {
            return;
        }
        if stolen {
            // Graceful steal: the owner finishes its batch, checkpoints and hands over, so
            // nothing is processed twice.
            match self
                .table
                .request_handoff(seen, &self.config.worker_id)
                .await
            {
                Ok(()) => {
                    pending.insert(seen.lease_key.clone(), Instant::now());
                    tracing::info!(shard_id = %seen.lease_key, owner = ?seen.lease_owner, "asked for lease to balance the fleet")
                }
                Err(LeaseTableError::Lost(_)) => {}
                Err(err) => {
                    tracing::warn!(shard_id = %seen.lease_key, error = %err, "handoff request failed")
                }
            }
            return;
        }
        let lease = match self.table.take(seen, &self.config.worker_id).await {
            Ok(lease) => lease,
            Err(LeaseTableError::Lost(_)) => return,
            Err(err) => {
                tracing::warn!(shard_id = %seen.lease_key, error = %err, "taking lease failed");
                return;
            }
        };
        WorkerMetrics::add(&self.metrics.lease_table_writes, 1);
        WorkerMetrics::add(&self.metrics.leases_taken, 1);
        tracing::info!(
            shard_id = %lease.lease_key,
            previous_owner = ?seen.lease_owner,
            lease_counter = lease.lease_counter,
            checkpoint = %lease.checkpoint,
            "took lease"
        );
        self.start(lease, running, registry, consumers_stop);
    }

    /// Starts the consumer of a lease this worker now holds.
    fn start(
        &self,
        lease: Lease,
        running: &mut HashMap<String, Running>,
        registry: &Registry,
        consumers_stop: &CancellationToken,
    ) {
        let key = lease.lease_key.clone();
        let held = Arc::new(HeldLease::new(lease));
        lock(registry).insert(key.clone(), held.clone());
        let done = Arc::new(AtomicBool::new(false));
        let task = ShardTask {
            shard_id: key.clone(),
            held: held.clone(),
            table: self.table.clone(),
            source: self.source.clone(),
            factory: self.factory.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            stop: consumers_stop.child_token(),
        };
        running.insert(
            key,
            Running {
                held,
                task: tokio::spawn({
                    let (done, ended) = (done.clone(), self.ended.clone());
                    async move {
                        let outcome = task.run().await;
                        done.store(true, Ordering::Release);
                        ended.notify_one();
                        outcome
                    }
                }),
                done,
            },
        );
    }

    /// Reads each lease asked for (consistent `get`) and adopts those handed over (or released)
    /// with a take conditional on the counter read; forgets requests that went elsewhere or
    /// are older than a lease duration (`coordination::handoff`).
    async fn poll_handoffs(
        &self,
        pending: &mut Pending,
        running: &mut HashMap<String, Running>,
        registry: &Registry,
        consumers_stop: &CancellationToken,
    ) {
        let me = self.config.worker_id.clone();
        let asked: Vec<(String, Instant)> =
            pending.iter().map(|(k, at)| (k.clone(), *at)).collect();
        for (key, asked_at) in asked {
            if running.contains_key(&key) {
                pending.remove(&key);
                continue;
            }
            let current = match self.table.get(&key).await {
                Ok(current) => current,
                Err(err) => {
                    tracing::warn!(shard_id = %key, error = %err, "reading a lease asked for failed");
                    if asked_at.elapsed() >= self.config.lease_duration {
                        pending.remove(&key);
                    }
                    continue;
                }
            };
            let decision = decide_handoff(
                &me,
                current.as_ref(),
                asked_at,
                Instant::now(),
                self.config.lease_duration,
            );
            if decision == HandoffPoll::Wait {
                continue;
            }
            pending.remove(&key);
            let Some(seen) = current.filter(|_| decision == HandoffPoll::Adopt) else {
                continue;
            };
            match self.table.take(&seen, &me).await {
                Ok(lease) => {
                    WorkerMetrics::add(&self.metrics.lease_table_writes, 1);
                    let counter = if seen.lease_owner.is_some() {
                        &self.metrics.leases_stolen
                    } else {
                        &self.metrics.leases_taken
                    };
                    WorkerMetrics::add(counter, 1);
                    tracing::info!(shard_id = %key, lease_counter = lease.lease_counter, checkpoint = %lease.checkpoint, waited = ?asked_at.elapsed(), "adopted lease asked for");
                    self.start(lease, running, registry, consumers_stop);
                }
                Err(LeaseTableError::Lost(_)) => {}
                Err(err) => tracing::warn!(shard_id = %key, error = %err, "adopting lease failed"),
            }
        }
    }

    /// Handles consumers that ended. Returns true when a shard finished (scan again at once so
    /// its children start without waiting).
    async fn reap(&self, running: &mut HashMap<String, Running>, registry: &Registry) -> bool {
        let ended: Vec<String> = running
            .iter()
            .filter(|(_, r)| r.task.is_finished() || r.done.load(Ordering::Acquire))
            .map(|(k, _)| k.clone())
            .collect();
        let mut finished_any = false;
        for shard_id in ended {
            let Some(run) = running.remove(&shard_id) else {
                continue;
            };
            let outcome = run
                .task
                .await
                .unwrap_or_else(|e| ShardOutcome::Failed(e.to_string()));
            finished_any |= matches!(outcome, ShardOutcome::Finished { .. });
            self.settle(&shard_id, &run.held, outcome, registry).await;
        }
        finished_any
    }

    /// Acts on a consumer's outcome and forgets the lease.
    async fn settle(
        &self,
        shard_id: &str,
        held: &Arc<HeldLease>,
        outcome: ShardOutcome,
        registry: &Registry,
    ) {
        lock(registry).remove(shard_id);
        match outcome {
            ShardOutcome::Finished { children } => {
                tracing::info!(shard_id, ?children, "shard finished");
                // Children need leases (with their parents) before the parent lease goes.
                self.sync().await;
                match self.table.delete_finished(shard_id).await {
                    Ok(_) => WorkerMetrics::add(&self.metrics.lease_table_writes, 1),
                    Err(err) => {
                        tracing::warn!(shard_id, error = %err, "cleaning the finished lease failed")
                    }
                }
            }
            ShardOutcome::LeaseLost => {
                WorkerMetrics::add(&self.metrics.leases_lost, 1);
                tracing::warn!(shard_id, "lease lost");
            }
            ShardOutcome::Stopped => self.release(shard_id, held).await,
            ShardOutcome::HandOff => self.hand_off(shard_id, held).await,
            ShardOutcome::Failed(reason) => {
                tracing::error!(shard_id, %reason, "shard consumer failed; releasing the lease");
                self.release(shard_id, held).await;
            }
        }
    }

    async fn hand_off(&self, shard_id: &str, held: &Arc<HeldLease>) {
        if held.is_lost() {
            return;
        }
        let mut lease = held.lease.lock().await;
        if lease.handoff_owner.is_none() {
            // Learned from a scan, not from our own writes: read who asked.
            if let Ok(Some(current)) = self.table.get(shard_id).await {
                lease.handoff_owner = current.handoff_owner;
            }
        }
        match self.table.hand_off(&lease).await {
            Ok(()) => {
                WorkerMetrics::add(&self.metrics.lease_table_writes, 1);
                tracing::info!(shard_id, to = ?lease.handoff_owner, "lease handed over");
            }
            Err(err) => tracing::warn!(shard_id, error = %err, "handing the lease over failed"),
        }
        held.mark_lost();
    }

    async fn release(&self, shard_id: &str, held: &Arc<HeldLease>) {
        if held.is_lost() {
            return;
        }
        let lease = held.lease.lock().await;
        match self.table.release(&lease).await {
            Ok(()) => {
                WorkerMetrics::add(&self.metrics.leases_released, 1);
                WorkerMetrics::add(&self.metrics.lease_table_writes, 1);
                tracing::info!(shard_id, "lease released");
            }
            Err(err) => {
                tracing::warn!(shard_id, error = %err, "releasing lease failed; it will expire")
            }
        }
        held.mark_lost();
    }
}

/// ±20 % jitter so workers do not scan in lockstep.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::thread_rng().gen_range(0.8..1.2))
}

async fn renew_loop(
    registry: Registry,
    table: Arc<dyn LeaseTable>,
    config: WorkerConfig,
    metrics: Arc<WorkerMetrics>,
    stop: CancellationToken,
) {
    let give_up_after = config.lease_duration.saturating_sub(config.renew_interval);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(config.renew_interval) => {}
        }
        let held: Vec<(String, Arc<HeldLease>)> = lock(&registry)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        join_all(held.into_iter().map(|(shard_id, held)| {
            let table = table.clone();
            let metrics = metrics.clone();
            async move {
                if held.is_lost() {
                    return;
                }
                let mut lease = held.lease.lock().await;
                match table.renew(&lease).await {
                    Ok(renewed) => {
                        if renewed.handoff_owner.is_some() {
                            held.handoff.cancel();
                        }
                        *lease = renewed;
                        held.touch();
                        WorkerMetrics::add(&metrics.lease_table_writes, 1);
                    }
                    Err(LeaseTableError::Lost(_)) => {
                        tracing::warn!(%shard_id, "lease renewal refused: taken by another worker");
                        held.mark_lost();
                    }
                    Err(err) => {
                        if held.since_last_write() >= give_up_after {
                            tracing::error!(%shard_id, error = %err, "lease not renewable in time; giving it up");
                            held.mark_lost();
                        } else {
                            tracing::warn!(%shard_id, error = %err, "lease renewal failed; retrying next round");
                        }
                    }
                }
            }
        }))
        .await;
    }
}
