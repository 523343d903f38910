//! A lease this worker holds: its latest known state (for conditional writes), when it was last
//! proven, and the signals that it was lost or asked for.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::lease::Lease;

/// A held lease, shared by its renewer, its shard consumer and the consumer's checkpointer.
/// Every write to the lease locks `lease`, so writes are serialised and always carry the latest
/// counter.
#[derive(Debug)]
pub struct HeldLease {
    /// The lease as last written by this worker.
    pub(crate) lease: tokio::sync::Mutex<Lease>,
    /// Fired when the lease is lost (taken, or no longer provable): the consumer stops without
    /// checkpointing.
    pub(crate) lost: CancellationToken,
    /// Fired when another worker asked for the lease: the consumer finishes its batch,
    /// checkpoints and hands the lease over.
    pub(crate) handoff: CancellationToken,
    /// When the last successful write of the lease (acquisition or renewal) was *sent*: the
    /// write took effect at or after this instant, so every other worker's expiry clock for the
    /// counter it wrote started no earlier.
    proven_at: Mutex<Instant>,
    /// The counter right after acquisition: the fencing token handed to the processor.
    pub(crate) acquired_counter: u64,
}

impl HeldLease {
    /// A lease just acquired by a write sent at `proven_at`.
    pub(crate) fn new(lease: Lease, proven_at: Instant) -> Self {
        Self {
            acquired_counter: lease.lease_counter,
            lease: tokio::sync::Mutex::new(lease),
            lost: CancellationToken::new(),
            handoff: CancellationToken::new(),
            proven_at: Mutex::new(proven_at),
        }
    }

    pub(crate) fn mark_lost(&self) {
        self.lost.cancel();
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Records a successful write sent at `sent_at`.
    pub(crate) fn proved(&self, sent_at: Instant) {
        let mut proven_at = self.proven_at.lock().unwrap_or_else(|p| p.into_inner());
        *proven_at = (*proven_at).max(sent_at);
    }

    /// Until when the lease is provably ours: `bound` after the last proof.
    pub(crate) fn provable_until(&self, bound: Duration) -> Instant {
        *self.proven_at.lock().unwrap_or_else(|p| p.into_inner()) + bound
    }
}
