//! Worker configuration and its defaults, with the reasoning behind them.
//!
//! | setting | default | KCL 2.x | why |
//! | --- | --- | --- | --- |
//! | `lease_duration` | 6 s | 10 s | a lease whose counter has not moved this long is expired: crash failover ≈ 6–7 s |
//! | `renew_interval` | 2 s | 3.3 s | three renewals per duration, so one slow or throttled write never loses a lease |
//! | `scan_interval` | 1 s, grown with the fleet | 20 s | see below |
//! | `shard_sync_interval` | 30 s | 60 s | new shards are also found at once when a shard ends |
//! | checkpoint | every 1,000 records or 5 s (on a timer, idle shards too) | processor's choice | bounds re-delivery after a crash |
//! | proof bound | lease duration − renew interval (4 s) | — | a consumer stops once its lease was last proven this long ago: before any other worker can judge it expired |
//! | lease-table call timeout | proof bound ÷ 2 (2 s) | SDK's (10 s per attempt) | one hung call cannot outlast the proof bound |
//!
//! **Lease-table cost.** Renewals cost one write per lease per `renew_interval`: proportional to
//! shards. A full scan reads every lease; if every worker scanned every second, reads would grow
//! with shards × workers (the KCL's cost complaint). So each worker scans every
//! `max(scan_interval, renew_interval × workers / 20)`, with ±20 % jitter: with W workers and S
//! leases, scans read about S × W / (renew_interval × W / 20) = 20 S / renew_interval leases per
//! second, i.e. proportional to shards (10 s between scans at 100 workers, like the KCL's
//! failover-sized take interval), while a small fleet still notices a released lease within
//! about a second and an expired one within `lease_duration` plus one scan. Leases asked for in
//! a graceful steal do not wait for a scan: the stealer reads just those every `renew_interval`
//! and adopts them as soon as they are handed over (`coordination::handoff`), so a handed-over
//! lease never stands still long enough to look expired, whatever the scan interval.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::dead_letter::DeadLetterStore;
use crate::lease::Checkpoint;
use crate::source::StartPosition;

/// Where a shard with no checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    /// The oldest record still in the stream.
    TrimHorizon,
    /// Only new records.
    Latest,
    /// Records from an instant.
    AtTimestamp(OffsetDateTime),
}

impl InitialPosition {
    /// The checkpoint sentinel stored on new leases.
    pub fn checkpoint(&self) -> Checkpoint {
        match self {
            InitialPosition::TrimHorizon => Checkpoint::TrimHorizon,
            InitialPosition::Latest => Checkpoint::Latest,
            InitialPosition::AtTimestamp(_) => Checkpoint::AtTimestamp,
        }
    }

    /// Where a reader starts for a lease checkpointed at `checkpoint` (None when finished).
    pub fn start_for(&self, checkpoint: &Checkpoint) -> Option<StartPosition> {
        match checkpoint {
            Checkpoint::TrimHorizon => Some(StartPosition::TrimHorizon),
            Checkpoint::Latest => Some(StartPosition::Latest),
            Checkpoint::AtTimestamp => Some(match self {
                InitialPosition::AtTimestamp(at) => StartPosition::AtTimestamp(*at),
                _ => StartPosition::TrimHorizon,
            }),
            Checkpoint::AtTime(at) => Some(StartPosition::AtTimestamp(*at)),
            Checkpoint::Sequence(sequence) => Some(StartPosition::AfterSequence(sequence.clone())),
            Checkpoint::ShardEnd => None,
        }
    }
}

/// What happens when a processor keeps failing on a record.
///
/// Under either policy a **transient** failure ([`crate::ProcessorError::transient`]) is
/// retried with capped exponential backoff and full jitter (`retry_base` .. `retry_cap`) until
/// it succeeds: the shard waits, its lag grows, `kinesis_consumer.retries{kind=transient}` and
/// `kinesis_consumer.shard_blocked_seconds` show it; lease loss, shutdown and a hand-off
/// request still interrupt the wait. The policy decides what happens to **permanent** failures.
#[derive(Debug, Clone)]
pub enum FailurePolicy {
    /// Retry with backoff until it succeeds (the shard waits).
    RetryForever,
    /// Retry the batch, then each record, up to `max_attempts` permanent failures; a record
    /// that still fails goes to the dead-letter store and the shard moves on. Every later
    /// record of the same partition key is set aside behind it ("blocked behind <sequence
    /// number>"), so a key's records never overtake each other and a redrive replays them in
    /// order; the store is asked, so this holds after a restart too. Other keys go on.
    DeadLetter {
        /// Permanent failures per record (and per batch) before giving up.
        max_attempts: u32,
        /// Where failed records go.
        store: Arc<dyn DeadLetterStore>,
    },
}

/// When the library checkpoints on its own (the processor may also checkpoint at any time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After this many records since the last checkpoint.
    pub every_records: Option<u64>,
    /// After this much time since the last checkpoint.
    pub every: Option<Duration>,
}

impl CheckpointPolicy {
    /// Only the processor checkpoints (and the library at shard end and shutdown).
    pub const MANUAL: CheckpointPolicy = CheckpointPolicy {
        every_records: None,
        every: None,
    };
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every_records: Some(1000),
            every: Some(Duration::from_secs(5)),
        }
    }
}

/// Configuration of one worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The consumer application (one lease table per application).
    pub application: String,
    /// This worker's id in the lease table.
    pub worker_id: String,
    /// See the module documentation.
    pub lease_duration: Duration,
    /// See the module documentation.
    pub renew_interval: Duration,
    /// Shortest time between two scans of the lease table.
    pub scan_interval: Duration,
    /// How often shards are listed to create leases for new ones.
    pub shard_sync_interval: Duration,
    /// Where shards with no checkpoint start.
    pub initial_position: InitialPosition,
    /// When the library checkpoints on its own.
    pub checkpoint: CheckpointPolicy,
    /// What happens to records a processor keeps failing on.
    pub failure: FailurePolicy,
    /// Bytes read ahead per shard while the processor works.
    pub max_buffer_bytes: usize,
    /// First retry delay ceiling (full jitter) for processor retries.
    pub retry_base: Duration,
    /// Longest retry delay (also between the retries of a transient failure, which go on
    /// until it succeeds).
    pub retry_cap: Duration,
    /// Whether `process_records` is also called with the empty batches a reader returns while
    /// the shard is idle (the KCL's `callProcessRecordsEvenForEmptyRecordList`): for
    /// processors that act on time, such as closing a segment that is old enough.
    pub deliver_empty_batches: bool,
}

impl WorkerConfig {
    /// Defaults for `application` (see the module documentation).
    pub fn new(application: impl Into<String>) -> Self {
        Self {
            application: application.into(),
            worker_id: default_worker_id(),
            lease_duration: Duration::from_secs(6),
            renew_interval: Duration::from_secs(2),
            scan_interval: Duration::from_secs(1),
            shard_sync_interval: Duration::from_secs(30),
            initial_position: InitialPosition::TrimHorizon,
            checkpoint: CheckpointPolicy::default(),
            failure: FailurePolicy::RetryForever,
            max_buffer_bytes: 16 * 1024 * 1024,
            retry_base: Duration::from_millis(100),
            retry_cap: Duration::from_secs(10),
            deliver_empty_batches: false,
        }
    }

    /// The scan interval for a fleet of `workers` (see the module documentation). Not capped
    /// by the lease duration: handed-over leases are adopted by reading them, not by a scan
    /// (an earlier cap at half the lease duration cost 7× the KCL's reads at 100 workers; see
    /// `docs/benchmarks-consumer.md` §4).
    pub fn scan_interval_for(&self, workers: usize) -> Duration {
        let grown = self.renew_interval.mul_f64(workers as f64 / 20.0);
        self.scan_interval.max(grown)
    }

    /// How long after its last successful write a lease still provably belongs to this worker:
    /// `lease_duration − renew_interval`. Another worker judges the lease expired only once its
    /// counter stood still for `lease_duration`, so a consumer that stops at this bound stops at
    /// least a renew interval before anyone may take its shard (see `worker::renew`).
    pub fn proof_bound(&self) -> Duration {
        let bound = self.lease_duration.saturating_sub(self.renew_interval);
        if bound.is_zero() {
            self.lease_duration / 2
        } else {
            bound
        }
    }

    /// The limit of one lease-table call (half the proof bound), so a hung call fails in time
    /// for a retry before the bound.
    pub fn lease_call_timeout(&self) -> Duration {
        self.proof_bound() / 2
    }
}

/// Host name and process id: a worker id unique on a host and readable in the lease table.
pub fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Which record source a consumer application reads with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// `GetRecords` polling.
    Polling {
        /// Time between two calls on one shard at its tip
        /// ([`crate::source::polling::PollingConfig::read_interval`]).
        read_interval: std::time::Duration,
    },
    /// Enhanced fan-out with this registered consumer name.
    FanOut {
        /// The stream consumer's name (one per application).
        consumer_name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_slow_down_with_the_fleet_so_reads_stay_proportional_to_shards() {
        let config = WorkerConfig::new("app");
        let secs = |workers| config.scan_interval_for(workers).as_secs_f64();
        for (workers, expected) in [
            (1, 1.0),
            (10, 1.0),
            (20, 2.0),
            (30, 3.0),
            (60, 6.0),
            (100, 10.0),
        ] {
            assert_eq!(secs(workers), expected, "{workers} workers");
        }
    }
}
