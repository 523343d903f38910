//! Renewing one held lease, on its own: one task per lease, so a slow or hung write delays
//! nothing but that lease.
//!
//! Every `renew_interval` the task renews the lease (a write conditional on owner and counter,
//! under the lease's lock so it never races a checkpoint), bounded by the lease-table call
//! timeout and by the lease's proof deadline. A renewal proves the lease from the instant it was
//! *sent*. When the last proof is `proof_bound` (`lease_duration − renew_interval`) old, the
//! lease is marked lost and its consumer stops: another worker can only judge it expired once its
//! counter stood still for a whole `lease_duration`, so the consumer stops at least a renew
//! interval before anyone may take the shard. A failed renewal is retried after a quarter of the
//! interval, so a short blip costs nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::held::HeldLease;
use super::Report;
use crate::lease_table::{LeaseTable, LeaseTableError};
use crate::metrics::WorkerMetrics;
use quote_runtime::error_chain::chain;

/// Why a renewer gave a lease up.
#[derive(Debug)]
pub(crate) enum GaveUp {
    /// The table refused the renewal: another worker owns the lease (or it changed).
    Taken,
    /// No renewal succeeded within the proof bound.
    Unprovable {
        /// The last renewal's error, if one returned.
        last_error: Option<LeaseTableError>,
    },
}

/// Renews one lease until it is lost or `stop` fires.
pub(crate) struct Renewer {
    pub shard_id: String,
    pub held: Arc<HeldLease>,
    pub table: Arc<dyn LeaseTable>,
    pub metrics: Arc<WorkerMetrics>,
    pub interval: Duration,
    pub proof_bound: Duration,
    pub reports: mpsc::UnboundedSender<Report>,
}

impl Renewer {
    #[tracing::instrument(name = "renewer", skip_all, fields(shard_id = %self.shard_id))]
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut next = Instant::now() + self.interval;
        let mut last_error = None;
        loop {
            let deadline = self.held.provable_until(self.proof_bound);
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.held.lost.cancelled() => return,
                () = tokio::time::sleep_until(next.min(deadline)) => {}
            }
            if Instant::now() >= deadline {
                return self.give_up(GaveUp::Unprovable { last_error });
            }
            let sent_at = Instant::now();
            let renewed = tokio::select! {
                () = stop.cancelled() => return,
                renewed = tokio::time::timeout_at(deadline, self.renew_once()) => renewed,
            };
            match renewed {
                Ok(Ok(())) => {
                    self.held.proved(sent_at);
                    last_error = None;
                    next = sent_at + self.interval;
                }
                Ok(Err(LeaseTableError::Lost(_))) => return self.give_up(GaveUp::Taken),
                Ok(Err(err)) => {
                    tracing::warn!(error = %chain(&err), "lease renewal failed; retrying");
                    last_error = Some(err);
                    next = Instant::now() + self.interval / 4;
                }
                // The deadline passed during the call: the next turn gives the lease up.
                Err(_) => next = Instant::now(),
            }
        }
    }

    async fn renew_once(&self) -> Result<(), LeaseTableError> {
        let mut lease = self.held.lease.lock().await;
        lease.progress = self.metrics.progress(&self.shard_id);
        let renewed = self.table.renew(&lease).await?;
        if renewed.handoff_owner.is_some() {
            self.held.handoff.cancel();
        }
        *lease = renewed;
        WorkerMetrics::add(&self.metrics.lease_table_writes, 1);
        Ok(())
    }

    fn give_up(self, why: GaveUp) {
        self.held.mark_lost();
        let _ = self.reports.send(Report::GaveUp {
            shard_id: self.shard_id,
            why,
        });
    }
}
