//! The lease table as the worker uses it: every call bounded in time.
//!
//! The AWS SDK allows 10 s per attempt and about 30 s per operation, against a 6 s lease: one
//! hung `UpdateItem` could otherwise hold a lease's lock (and with it every checkpoint and
//! renewal of that lease) past the moment another worker may take the shard. Single-item calls
//! get `WorkerConfig::lease_call_timeout` (2 s by default); full scans, which page through the
//! whole table, get [`SCAN_TIMEOUT`]. A call that runs out fails with
//! [`LeaseTableError::Backend`] holding a [`CallTimedOut`]; a write cut off this way may still
//! have been applied, in which case the next conditional write finds the counter moved and the
//! lease is treated as lost (safe: nothing is written over another owner).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::lease::{Checkpoint, Lease};
use crate::lease_table::{LeaseTable, LeaseTableError};

/// The limit of a full scan of the lease table.
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(30);

/// A lease-table call ran out of time.
#[derive(Debug, thiserror::Error)]
#[error("lease-table {operation} did not answer within {limit:?}")]
pub struct CallTimedOut {
    /// The operation.
    pub operation: &'static str,
    /// Its limit.
    pub limit: Duration,
}

/// A lease table whose every call is bounded in time.
#[derive(Debug)]
pub(crate) struct TimedLeaseTable {
    inner: Arc<dyn LeaseTable>,
    call_timeout: Duration,
}

impl TimedLeaseTable {
    pub(crate) fn new(inner: Arc<dyn LeaseTable>, call_timeout: Duration) -> Self {
        Self {
            inner,
            call_timeout,
        }
    }

    async fn bounded<T>(
        &self,
        operation: &'static str,
        limit: Duration,
        call: impl Future<Output = Result<T, LeaseTableError>>,
    ) -> Result<T, LeaseTableError> {
        tokio::time::timeout(limit, call)
            .await
            .map_err(|_| LeaseTableError::backend(CallTimedOut { operation, limit }))?
    }
}

#[async_trait]
impl LeaseTable for TimedLeaseTable {
    async fn create_if_absent(&self, lease: &Lease) -> Result<bool, LeaseTableError> {
        let call = self.inner.create_if_absent(lease);
        self.bounded("create", self.call_timeout, call).await
    }

    async fn list(&self) -> Result<Vec<Lease>, LeaseTableError> {
        self.bounded("scan", SCAN_TIMEOUT, self.inner.list()).await
    }

    async fn get(&self, lease_key: &str) -> Result<Option<Lease>, LeaseTableError> {
        let call = self.inner.get(lease_key);
        self.bounded("get", self.call_timeout, call).await
    }

    async fn renew(&self, held: &Lease) -> Result<Lease, LeaseTableError> {
        let call = self.inner.renew(held);
        self.bounded("renew", self.call_timeout, call).await
    }

    async fn take(&self, seen: &Lease, new_owner: &str) -> Result<Lease, LeaseTableError> {
        let call = self.inner.take(seen, new_owner);
        self.bounded("take", self.call_timeout, call).await
    }

    async fn release(&self, held: &Lease) -> Result<(), LeaseTableError> {
        let call = self.inner.release(held);
        self.bounded("release", self.call_timeout, call).await
    }

    async fn checkpoint(
        &self,
        held: &Lease,
        checkpoint: &Checkpoint,
        sub_sequence_number: u64,
    ) -> Result<Lease, LeaseTableError> {
        let call = self.inner.checkpoint(held, checkpoint, sub_sequence_number);
        self.bounded("checkpoint", self.call_timeout, call).await
    }

    async fn request_handoff(&self, seen: &Lease, to: &str) -> Result<(), LeaseTableError> {
        let call = self.inner.request_handoff(seen, to);
        self.bounded("request_handoff", self.call_timeout, call)
            .await
    }

    async fn hand_off(&self, held: &Lease) -> Result<(), LeaseTableError> {
        let call = self.inner.hand_off(held);
        self.bounded("hand_off", self.call_timeout, call).await
    }

    async fn rewind(&self, seen: &Lease, to: &Checkpoint) -> Result<Lease, LeaseTableError> {
        let call = self.inner.rewind(seen, to);
        self.bounded("rewind", self.call_timeout, call).await
    }

    async fn add_children(
        &self,
        lease_key: &str,
        children: &[String],
    ) -> Result<(), LeaseTableError> {
        let call = self.inner.add_children(lease_key, children);
        self.bounded("add_children", self.call_timeout, call).await
    }

    async fn delete_finished(&self, lease_key: &str) -> Result<bool, LeaseTableError> {
        let call = self.inner.delete_finished(lease_key);
        self.bounded("delete", self.call_timeout, call).await
    }
}
