//! A lease this worker holds: its latest known state (for conditional writes) and the signal
//! that it was lost.

use std::sync::Mutex;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::lease::Lease;

/// A held lease, shared by the renewer, the shard consumer and its checkpointer. Every write
/// to the lease locks `lease`, so writes are serialised and always carry the latest counter.
#[derive(Debug)]
pub struct HeldLease {
    /// The lease as last written by this worker.
    pub(crate) lease: tokio::sync::Mutex<Lease>,
    /// Fired when the lease is lost: the consumer stops without checkpointing.
    pub(crate) lost: CancellationToken,
    /// Fired when another worker asked for the lease: the consumer finishes its batch,
    /// checkpoints and hands the lease over.
    pub(crate) handoff: CancellationToken,
    /// When the lease was last written successfully (renewal or checkpoint).
    pub(crate) last_written: Mutex<Instant>,
    /// The counter right after acquisition: the fencing token handed to the processor.
    pub(crate) acquired_counter: u64,
}

impl HeldLease {
    pub(crate) fn new(lease: Lease) -> Self {
        Self {
            acquired_counter: lease.lease_counter,
            lease: tokio::sync::Mutex::new(lease),
            lost: CancellationToken::new(),
            handoff: CancellationToken::new(),
            last_written: Mutex::new(Instant::now()),
        }
    }

    pub(crate) fn mark_lost(&self) {
        self.lost.cancel();
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    pub(crate) fn touch(&self) {
        *self.last_written.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    pub(crate) fn since_last_write(&self) -> std::time::Duration {
        self.last_written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}
