//! The worker: one process's share of a consumer application, as an actor.
//!
//! One struct, `WorkerActor`, owns everything the worker holds: the consumers of its leases
//! (one map), the leases it asked for, the expiry tracker, the last shard listing and its
//! timers. Nothing else mutates that state; the tasks it starts report back over one channel
//! ([`Report`]). Its parts:
//! - **taking** (`acquire`): the scan reads the lease table, tracks expiry, takes unowned and
//!   expired leases, steals towards a fair share (asking owners to hand leases over), reads the
//!   leases it asked for every `renew_interval` and adopts each once handed over
//!   (`coordination::handoff`), and starts a shard consumer and a renewer per acquired lease;
//! - **renewing** (`renew`): one task per held lease renews it on its own, each call bounded;
//!   a lease not proven for `lease_duration − renew_interval` is marked lost and its consumer
//!   stops before any other worker may take the shard;
//! - **cleaning up** (`cleanup`): settles consumers as they end (hands over, releases, records a
//!   finished shard's children and syncs at once so they start), lists shards periodically to
//!   create leases (`sync`), and deletes finished leases once their children have begun
//!   (`coordination::cleanup`);
//! - one **shard consumer** per held lease (`shard`).
//!
//! Every lease-table call the worker makes is bounded in time (`timed`).
//!
//! On shutdown (the token passed to [`Worker::run`], e.g. SIGTERM) every consumer stops
//! fetching, finishes its batch and checkpoints; then the worker releases its leases
//! (owner-conditioned), so other workers take them at their next scan, about a second later.

mod acquire;
mod cleanup;
pub(crate) mod held;
mod renew;
pub mod shard;
pub mod sync;
pub mod timed;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::coordination::ExpiryTracker;
use crate::lease_table::LeaseTable;
use crate::metrics::WorkerMetrics;
use crate::processor::ProcessorFactory;
use crate::source::{RecordSource, ShardInfo};
use held::HeldLease;
use renew::GaveUp;
use shard::ShardOutcome;
use timed::TimedLeaseTable;

/// How often the worker logs its counters.
const METRICS_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// What the worker's tasks tell it.
#[derive(Debug)]
pub(crate) enum Report {
    /// A shard consumer ended.
    Ended {
        shard_id: String,
        outcome: ShardOutcome,
    },
    /// A renewer gave its lease up (the consumer stops and reports `Ended` too).
    GaveUp { shard_id: String, why: GaveUp },
}

/// One worker of a consumer application.
pub struct Worker {
    config: WorkerConfig,
    table: Arc<dyn LeaseTable>,
    source: Arc<dyn RecordSource>,
    factory: Arc<dyn ProcessorFactory>,
    metrics: Arc<WorkerMetrics>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("application", &self.config.application)
            .field("worker_id", &self.config.worker_id)
            .finish_non_exhaustive()
    }
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
        }
    }

    /// The worker's counters.
    pub fn metrics(&self) -> Arc<WorkerMetrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` fires, then hands its leases over gracefully.
    #[tracing::instrument(name = "worker", skip_all, fields(application = %self.config.application, worker_id = %self.config.worker_id))]
    pub async fn run(self, shutdown: CancellationToken) {
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let table: Arc<dyn LeaseTable> = Arc::new(TimedLeaseTable::new(
            self.table,
            self.config.lease_call_timeout(),
        ));
        let now = Instant::now();
        let actor = WorkerActor {
            table,
            source: self.source,
            factory: self.factory,
            metrics: self.metrics,
            consumers: HashMap::new(),
            asked: HashMap::new(),
            tracker: ExpiryTracker::new(),
            fleet_size: 1,
            shards: None,
            timers: Timers {
                scan: now,
                sync: now,
                poll_asked: None,
                metrics_log: now + METRICS_LOG_INTERVAL,
            },
            reports_tx,
            reports,
            consumers_stop: CancellationToken::new(),
            config: self.config,
        };
        actor.run(shutdown).await;
    }
}

/// The consumer of a held lease and its renewer.
#[derive(Debug)]
struct Consumer {
    held: Arc<HeldLease>,
    /// Stops the renewer once the consumer has ended and its lease is settled.
    renewer_stop: CancellationToken,
    renewer: JoinHandle<()>,
}

/// When the actor next does each periodic part.
#[derive(Debug)]
struct Timers {
    scan: Instant,
    sync: Instant,
    /// Next read of the leases asked for (only while some are).
    poll_asked: Option<Instant>,
    metrics_log: Instant,
}

impl Timers {
    fn next(&self) -> Instant {
        [
            Some(self.scan),
            Some(self.sync),
            self.poll_asked,
            Some(self.metrics_log),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.scan)
    }
}

/// The worker's state, owned by its run loop.
struct WorkerActor {
    config: WorkerConfig,
    /// The lease table, every call bounded in time.
    table: Arc<dyn LeaseTable>,
    source: Arc<dyn RecordSource>,
    factory: Arc<dyn ProcessorFactory>,
    metrics: Arc<WorkerMetrics>,
    /// The leases this worker holds, by shard id.
    consumers: HashMap<String, Consumer>,
    /// Leases this worker asked for (`handoffOwner`) and when.
    asked: HashMap<String, Instant>,
    tracker: ExpiryTracker,
    /// Workers seen in the last scan (this one included).
    fleet_size: usize,
    /// The last successful shard listing.
    shards: Option<Vec<ShardInfo>>,
    timers: Timers,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
    /// Fired on shutdown: every consumer finishes its batch and checkpoints.
    consumers_stop: CancellationToken,
}

impl WorkerActor {
    async fn run(mut self, shutdown: CancellationToken) {
        self.metrics
            .export_to_opentelemetry(&self.config.application, &self.config.worker_id);
        tracing::info!("worker started");
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(report) = self.reports.recv() => self.on_report(report).await,
                () = tokio::time::sleep_until(self.timers.next()) => self.on_timers().await,
            }
            self.metrics
                .leases_held
                .store(self.consumers.len() as u64, Ordering::Relaxed);
        }
        self.shut_down().await;
    }

    /// Runs every periodic part that is due.
    async fn on_timers(&mut self) {
        let now = Instant::now();
        if self.timers.poll_asked.is_some_and(|at| now >= at) {
            self.poll_asked().await;
            self.timers.poll_asked = Some(Instant::now() + self.config.renew_interval);
        }
        if now >= self.timers.sync {
            self.sync().await;
            self.timers.sync = Instant::now() + self.config.shard_sync_interval;
        }
        if now >= self.timers.metrics_log {
            self.log_metrics();
            self.timers.metrics_log = Instant::now() + METRICS_LOG_INTERVAL;
        }
        if now >= self.timers.scan {
            self.scan().await;
            self.timers.scan =
                Instant::now() + jittered(self.config.scan_interval_for(self.fleet_size));
        }
        if self.asked.is_empty() {
            self.timers.poll_asked = None;
        } else if self.timers.poll_asked.is_none() {
            self.timers.poll_asked = Some(Instant::now() + self.config.renew_interval);
        }
    }

    async fn on_report(&mut self, report: Report) {
        match report {
            Report::Ended { shard_id, outcome } => {
                let finished = matches!(outcome, ShardOutcome::Finished { .. });
                self.settle(&shard_id, outcome).await;
                if finished {
                    // Its children start without waiting for the next scan.
                    self.timers.scan = Instant::now();
                }
            }
            Report::GaveUp { shard_id, why } => match why {
                GaveUp::Taken => {
                    tracing::warn!(%shard_id, "lease renewal refused: taken by another worker")
                }
                GaveUp::Unprovable { last_error } => tracing::error!(
                    %shard_id,
                    error = last_error.as_ref().map(tracing::field::display),
                    bound = ?self.config.proof_bound(),
                    "lease not renewed within the proof bound; its consumer stops before anyone may take it"
                ),
            },
        }
    }

    fn log_metrics(&self) {
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
    }

    /// Stops every consumer (each checkpoints), settles them, releases what is left.
    async fn shut_down(mut self) {
        tracing::info!(
            leases = self.consumers.len(),
            "shutting down: finishing batches, checkpointing, releasing leases"
        );
        self.consumers_stop.cancel();
        while !self.consumers.is_empty() {
            match self.reports.recv().await {
                Some(Report::Ended { shard_id, outcome }) => self.settle(&shard_id, outcome).await,
                Some(Report::GaveUp { .. }) => {}
                None => break,
            }
        }
        self.release_handed_over().await;
        tracing::info!(metrics = ?self.metrics.snapshot(), "worker stopped");
    }
}

/// ±20 % jitter so workers do not scan in lockstep.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::thread_rng().gen_range(0.8..1.2))
}
