//! Counters of a worker, shared by its tasks; logged and readable by tests and health checks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What a worker has done so far.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    /// Records handed to processors successfully.
    pub records_processed: AtomicU64,
    /// Their payload bytes.
    pub bytes_processed: AtomicU64,
    /// Leases taken because they were unowned or expired.
    pub leases_taken: AtomicU64,
    /// Leases stolen to balance the fleet.
    pub leases_stolen: AtomicU64,
    /// Leases lost to another worker (or not renewable in time).
    pub leases_lost: AtomicU64,
    /// Leases released on shutdown.
    pub leases_released: AtomicU64,
    /// Records sent to the dead-letter store.
    pub dead_lettered: AtomicU64,
    /// Checkpoints written.
    pub checkpoints: AtomicU64,
    /// Writes to the lease table (renewals, takes, checkpoints, releases, creations).
    pub lease_table_writes: AtomicU64,
    /// Full scans of the lease table.
    pub lease_table_scans: AtomicU64,
    /// Per shard: how far behind the tip the last read was.
    millis_behind: Mutex<BTreeMap<String, u64>>,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// See [`WorkerMetrics::records_processed`].
    pub records_processed: u64,
    /// See [`WorkerMetrics::bytes_processed`].
    pub bytes_processed: u64,
    /// See [`WorkerMetrics::leases_taken`].
    pub leases_taken: u64,
    /// See [`WorkerMetrics::leases_stolen`].
    pub leases_stolen: u64,
    /// See [`WorkerMetrics::leases_lost`].
    pub leases_lost: u64,
    /// See [`WorkerMetrics::leases_released`].
    pub leases_released: u64,
    /// See [`WorkerMetrics::dead_lettered`].
    pub dead_lettered: u64,
    /// See [`WorkerMetrics::checkpoints`].
    pub checkpoints: u64,
    /// See [`WorkerMetrics::lease_table_writes`].
    pub lease_table_writes: u64,
    /// See [`WorkerMetrics::lease_table_scans`].
    pub lease_table_scans: u64,
    /// Per shard `MillisBehindLatest`.
    pub millis_behind: BTreeMap<String, u64>,
}

impl WorkerMetrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_millis_behind(&self, shard_id: &str, millis: u64) {
        self.millis_behind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(shard_id.to_owned(), millis);
    }

    pub(crate) fn forget_shard(&self, shard_id: &str) {
        self.millis_behind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(shard_id);
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            records_processed: get(&self.records_processed),
            bytes_processed: get(&self.bytes_processed),
            leases_taken: get(&self.leases_taken),
            leases_stolen: get(&self.leases_stolen),
            leases_lost: get(&self.leases_lost),
            leases_released: get(&self.leases_released),
            dead_lettered: get(&self.dead_lettered),
            checkpoints: get(&self.checkpoints),
            lease_table_writes: get(&self.lease_table_writes),
            lease_table_scans: get(&self.lease_table_scans),
            millis_behind: self
                .millis_behind
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}
