//! The worker's taking part: scans the lease table, takes and steals by the plan, adopts leases
//! handed over to it, and starts a consumer and a renewer for each lease it acquires.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::held::HeldLease;
use super::renew::Renewer;
use super::shard::{ShardOutcome, ShardTask};
use super::{Consumer, Report, WorkerActor};
use crate::coordination::plan::{plan_acquisitions, Candidate};
use crate::coordination::{decide_handoff, HandoffPoll};
use crate::lease::Lease;
use crate::lease_table::LeaseTableError;
use crate::metrics::WorkerMetrics;
use quote_runtime::error_chain::chain;

/// How a lease came to this worker (for counters and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acquired {
    /// Unowned or expired.
    Taken,
    /// Handed over by its previous owner after we asked.
    HandedOver,
}

impl WorkerActor {
    /// Reads the table, notices leases lost or asked for, takes and steals, cleans up finished
    /// leases, and remembers the fleet size.
    pub(super) async fn scan(&mut self) {
        let leases = match self.table.list().await {
            Ok(leases) => leases,
            Err(err) => {
                tracing::warn!(error = %chain(&err), "lease table scan failed");
                return;
            }
        };
        WorkerMetrics::add(&self.metrics.lease_table_scans, 1);
        let now = Instant::now();
        self.tracker.observe(&leases, now);
        let me = self.config.worker_id.clone();
        for lease in &leases {
            match self.consumers.get(&lease.lease_key) {
                Some(consumer) if !lease.is_owned_by(&me) && !consumer.held.is_lost() => {
                    tracing::warn!(shard_id = %lease.lease_key, new_owner = ?lease.lease_owner, "lease taken by another worker");
                    consumer.held.mark_lost();
                }
                Some(consumer) if lease.handoff_owner.is_some() => consumer.held.handoff.cancel(),
                Some(_) => {}
                None if lease.is_owned_by(&me) && !lease.is_finished() => {
                    // Handed to us by its previous owner (or ours from before a restart, or
                    // one whose renewals we gave up): prove it with a write before processing.
                    self.asked.remove(&lease.lease_key);
                    self.adopt(lease, Acquired::HandedOver).await;
                }
                None => {}
            }
        }
        // Keep polling only requests still pending on the lease as scanned; released leases are
        // taken by the plan below.
        let lease_duration = self.config.lease_duration;
        self.asked.retain(|key, asked_at| {
            let current = leases.iter().find(|l| &l.lease_key == key);
            decide_handoff(&me, current, *asked_at, now, lease_duration) == HandoffPoll::Wait
        });
        let candidates: Vec<Candidate<'_>> = leases
            .iter()
            .map(|lease| Candidate {
                lease,
                expired: self
                    .tracker
                    .is_expired(lease, now, self.config.lease_duration),
            })
            .collect();
        let plan = plan_acquisitions(&me, &candidates, &leases);
        for lease in &plan.take {
            if !self.consumers.contains_key(&lease.lease_key) {
                self.adopt(lease, Acquired::Taken).await;
            }
        }
        for lease in &plan.steal {
            if !self.consumers.contains_key(&lease.lease_key) {
                self.ask_for(lease).await;
            }
        }
        self.fleet_size = candidates
            .iter()
            .filter(|c| !c.expired)
            .filter_map(|c| c.lease.lease_owner.as_deref())
            .chain(std::iter::once(me.as_str()))
            .collect::<HashSet<&str>>()
            .len();
        self.clean_up_finished(&leases, now).await;
    }

    /// Graceful steal: asks the owner to finish its batch, checkpoint and hand over, so nothing
    /// is processed twice.
    async fn ask_for(&mut self, seen: &Lease) {
        match self
            .table
            .request_handoff(seen, &self.config.worker_id)
            .await
        {
            Ok(()) => {
                self.asked.insert(seen.lease_key.clone(), Instant::now());
                tracing::info!(shard_id = %seen.lease_key, owner = ?seen.lease_owner, "asked for lease to balance the fleet");
            }
            Err(LeaseTableError::Lost(_)) => {}
            Err(err) => {
                tracing::warn!(shard_id = %seen.lease_key, error = %chain(&err), "handoff request failed")
            }
        }
    }

    /// Reads each lease asked for (consistent `get`) and adopts those handed over (or released)
    /// with a take conditional on the counter read; forgets requests that went elsewhere or
    /// are older than a lease duration (`coordination::handoff`).
    pub(super) async fn poll_asked(&mut self) {
        let me = self.config.worker_id.clone();
        let asked: Vec<(String, Instant)> =
            self.asked.iter().map(|(k, at)| (k.clone(), *at)).collect();
        for (key, asked_at) in asked {
            if self.consumers.contains_key(&key) {
                self.asked.remove(&key);
                continue;
            }
            let current = match self.table.get(&key).await {
                Ok(current) => current,
                Err(err) => {
                    tracing::warn!(shard_id = %key, error = %chain(&err), "reading a lease asked for failed");
                    if asked_at.elapsed() >= self.config.lease_duration {
                        self.asked.remove(&key);
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
            self.asked.remove(&key);
            if let Some(seen) = current.filter(|_| decision == HandoffPoll::Adopt) {
                let how = if seen.lease_owner.is_some() {
                    Acquired::HandedOver
                } else {
                    Acquired::Taken
                };
                tracing::debug!(shard_id = %key, waited = ?asked_at.elapsed(), "adopting lease asked for");
                self.adopt(&seen, how).await;
            }
        }
    }

    /// Takes `seen` with a write conditional on its owner and counter (proving the lease from
    /// the instant the write was sent) and starts its consumer.
    async fn adopt(&mut self, seen: &Lease, how: Acquired) {
        let sent_at = Instant::now();
        let lease = match self.table.take(seen, &self.config.worker_id).await {
            Ok(lease) => lease,
            Err(LeaseTableError::Lost(_)) => return,
            Err(err) => {
                tracing::warn!(shard_id = %seen.lease_key, error = %chain(&err), "taking lease failed");
                return;
            }
        };
        WorkerMetrics::add(&self.metrics.lease_table_writes, 1);
        let counter = match how {
            Acquired::Taken => &self.metrics.leases_taken,
            Acquired::HandedOver => &self.metrics.leases_stolen,
        };
        WorkerMetrics::add(counter, 1);
        tracing::info!(
            shard_id = %lease.lease_key,
            previous_owner = ?seen.lease_owner,
            lease_counter = lease.lease_counter,
            checkpoint = %lease.checkpoint,
            ?how,
            "acquired lease"
        );
        self.start(lease, sent_at);
    }

    /// Starts the consumer and the renewer of a lease this worker now holds.
    fn start(&mut self, lease: Lease, proven_at: Instant) {
        let shard_id = lease.lease_key.clone();
        let held = Arc::new(HeldLease::new(lease, proven_at));
        let consumer = ShardTask {
            shard_id: shard_id.clone(),
            held: held.clone(),
            table: self.table.clone(),
            source: self.source.clone(),
            factory: self.factory.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            stop: self.consumers_stop.child_token(),
        };
        let running = tokio::spawn(consumer.run());
        let reports = self.reports_tx.clone();
        let id = shard_id.clone();
        // Reports the consumer's end, even when it panicked.
        tokio::spawn(async move {
            let outcome = running
                .await
                .unwrap_or_else(|e| ShardOutcome::Failed(e.to_string()));
            let _ = reports.send(Report::Ended {
                shard_id: id,
                outcome,
            });
        });
        let renewer_stop = CancellationToken::new();
        let renewer = tokio::spawn(
            Renewer {
                shard_id: shard_id.clone(),
                held: held.clone(),
                table: self.table.clone(),
                metrics: self.metrics.clone(),
                interval: self.config.renew_interval,
                proof_bound: self.config.proof_bound(),
                reports: self.reports_tx.clone(),
            }
            .run(renewer_stop.clone()),
        );
        self.consumers.insert(
            shard_id,
            Consumer {
                held,
                renewer_stop,
                renewer,
            },
        );
    }
}
