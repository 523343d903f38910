//! The worker's cleaning-up part: settles each consumer as it ends (hands the lease over,
//! releases it, or records a finished shard's children and syncs shards so they start), lists
//! shards to create leases, and deletes finished leases once `coordination::cleanup` allows.

use tokio::time::Instant;

use super::held::HeldLease;
use super::shard::ShardOutcome;
use super::sync;
use super::WorkerActor;
use crate::coordination::finished_leases_to_delete;
use crate::lease::Lease;
use crate::metrics::WorkerMetrics;
use quote_runtime::error_chain::chain;

impl WorkerActor {
    /// Acts on a consumer's outcome, then forgets the lease and stops its renewer.
    pub(super) async fn settle(&mut self, shard_id: &str, outcome: ShardOutcome) {
        let Some(consumer) = self.consumers.remove(shard_id) else {
            return;
        };
        // Settling writes under the lease's lock: no renewal may slip in between.
        consumer.renewer_stop.cancel();
        let _ = consumer.renewer.await;
        let held = consumer.held;
        match outcome {
            ShardOutcome::Finished { children } => {
                tracing::info!(shard_id, ?children, "shard finished");
                if !children.is_empty() {
                    // The lease remembers its children even if listing shards fails now, so it
                    // is not cleaned up before they have leases (issue 9 §3).
                    match self.table.add_children(shard_id, &children).await {
                        Ok(()) => WorkerMetrics::add(&self.metrics.lease_table_writes, 1),
                        Err(err) => {
                            tracing::warn!(shard_id, error = %chain(&err), "recording the children failed")
                        }
                    }
                }
                // Children need leases before they can start; the finished lease stays until
                // they have begun (`clean_up_finished`).
                self.sync().await;
            }
            ShardOutcome::LeaseLost => {
                WorkerMetrics::add(&self.metrics.leases_lost, 1);
                tracing::warn!(shard_id, "lease lost");
            }
            ShardOutcome::Stopped => self.release(shard_id, &held).await,
            ShardOutcome::HandOff => self.hand_off(shard_id, &held).await,
            ShardOutcome::Failed(reason) => {
                tracing::error!(shard_id, %reason, "shard consumer failed; releasing the lease");
                self.release(shard_id, &held).await;
            }
        }
    }

    async fn hand_off(&self, shard_id: &str, held: &HeldLease) {
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
            Err(err) => {
                tracing::warn!(shard_id, error = %chain(&err), "handing the lease over failed")
            }
        }
        held.mark_lost();
    }

    async fn release(&self, shard_id: &str, held: &HeldLease) {
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
                tracing::warn!(shard_id, error = %chain(&err), "releasing lease failed; it will expire")
            }
        }
        held.mark_lost();
    }

    /// Lists shards and creates missing leases; remembers the listing for cleanup.
    pub(super) async fn sync(&mut self) {
        match sync::sync_shards(
            self.table.as_ref(),
            self.source.as_ref(),
            self.config.initial_position,
            &self.metrics,
        )
        .await
        {
            Ok(synced) => {
                if synced.created > 0 {
                    tracing::info!(created = synced.created, "shard sync created leases");
                }
                self.shards = Some(synced.shards);
            }
            Err(err) => tracing::warn!(error = %chain(&err), "shard sync failed"),
        }
    }

    /// Deletes the finished leases of `leases` (a consistent scan) whose children have begun or
    /// whose shard left the stream. The worker that finished a shard cleans it up; anyone does
    /// once that worker's lease looks expired (it stopped, or was never renewed again).
    pub(super) async fn clean_up_finished(&self, leases: &[Lease], now: Instant) {
        let me = self.config.worker_id.as_str();
        let mine_to_clean = |lease: &Lease| {
            lease.lease_owner.is_none()
                || lease.is_owned_by(me)
                || self
                    .tracker
                    .is_expired(lease, now, self.config.lease_duration)
        };
        let deletable: Vec<(String, crate::coordination::Cleanup)> =
            finished_leases_to_delete(leases, self.shards.as_deref())
                .into_iter()
                .filter(|(lease, _)| mine_to_clean(lease))
                .map(|(lease, why)| (lease.lease_key.clone(), why))
                .collect();
        for (shard_id, why) in deletable {
            match self.table.delete_finished(&shard_id).await {
                Ok(deleted) => {
                    WorkerMetrics::add(&self.metrics.lease_table_writes, 1);
                    if deleted {
                        tracing::info!(%shard_id, ?why, "finished lease cleaned up");
                    }
                }
                Err(err) => {
                    tracing::warn!(%shard_id, error = %chain(&err), "cleaning up a finished lease failed")
                }
            }
        }
    }

    /// On shutdown: releases leases handed over to this worker but not adopted yet, so nobody
    /// waits for them to expire.
    pub(super) async fn release_handed_over(&self) {
        let Ok(leases) = self.table.list().await else {
            return;
        };
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
}
