//! Counters of a worker, shared by its tasks: logged as structured events every minute,
//! exported as OpenTelemetry metrics (observable instruments on the global meter provider,
//! exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set), and readable by tests.
//!
//! | instrument | kind | unit | attributes |
//! | --- | --- | --- | --- |
//! | `kinesis_consumer.records_processed` | counter | `{record}` | application, worker_id |
//! | `kinesis_consumer.bytes_processed` | counter | `By` | application, worker_id |
//! | `kinesis_consumer.leases_held` | gauge | `{lease}` | application, worker_id |
//! | `kinesis_consumer.leases_taken` / `_stolen` / `_lost` / `_released` | counters | `{lease}` | application, worker_id |
//! | `kinesis_consumer.dead_lettered` | counter | `{record}` | application, worker_id |
//! | `kinesis_consumer.retries` | counter | `{retry}` | application, worker_id, kind (`transient` / `permanent`) |
//! | `kinesis_consumer.source_retries` | counter | `{retry}` | application, worker_id (reads of the stream retried with the lease kept) |
//! | `kinesis_consumer.shard_blocked_seconds` | gauge | `s` | application, worker_id, shard_id (only while the shard waits out a transient failure or a failing open) |
//! | `kinesis_consumer.checkpoints` | counter | `{checkpoint}` | application, worker_id |
//! | `kinesis_consumer.lease_table_writes` / `_scans` | counters | `{write}` / `{scan}` | application, worker_id |
//! | `kinesis_consumer.millis_behind_latest` | gauge | `ms` | application, worker_id, shard_id |
//! | `kinesis_consumer.checkpoint_lag_records` | gauge | `{record}` | application, worker_id, shard_id |

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry::KeyValue;
use tokio::time::Instant;

/// Reads one per-shard gauge of the metrics.
type ShardField = fn(&WorkerMetrics) -> &Mutex<BTreeMap<String, u64>>;

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
    /// Records sent to the dead-letter store (poison ones and those set aside behind them).
    pub dead_lettered: AtomicU64,
    /// Retries of a batch after a transient failure (the shard waits; never dead-lettered).
    pub retries_transient: AtomicU64,
    /// Retries of a batch after a permanent failure (bounded, then dead-lettered).
    pub retries_permanent: AtomicU64,
    /// Failed reads of the stream (opening a shard's iterator, `GetRecords`) retried with the
    /// lease kept, after the SDK's own attempts.
    pub source_retries: AtomicU64,
    /// Checkpoints written.
    pub checkpoints: AtomicU64,
    /// Writes to the lease table (renewals, takes, checkpoints, releases, creations).
    pub lease_table_writes: AtomicU64,
    /// Full scans of the lease table.
    pub lease_table_scans: AtomicU64,
    /// Leases held right now.
    pub leases_held: AtomicU64,
    /// Per shard: how far behind the tip the last read was.
    millis_behind: Mutex<BTreeMap<String, u64>>,
    /// Per shard: records processed since the last checkpoint (re-delivered after a crash).
    checkpoint_lag: Mutex<BTreeMap<String, u64>>,
    /// Per shard: since when it has been waiting out a transient failure.
    blocked_since: Mutex<BTreeMap<String, Instant>>,
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
    /// See [`WorkerMetrics::retries_transient`].
    pub retries_transient: u64,
    /// See [`WorkerMetrics::retries_permanent`].
    pub retries_permanent: u64,
    /// See [`WorkerMetrics::source_retries`].
    pub source_retries: u64,
    /// See [`WorkerMetrics::checkpoints`].
    pub checkpoints: u64,
    /// See [`WorkerMetrics::lease_table_writes`].
    pub lease_table_writes: u64,
    /// See [`WorkerMetrics::lease_table_scans`].
    pub lease_table_scans: u64,
    /// See [`WorkerMetrics::leases_held`].
    pub leases_held: u64,
    /// Per shard `MillisBehindLatest`.
    pub millis_behind: BTreeMap<String, u64>,
    /// Per shard records processed since the last checkpoint.
    pub checkpoint_lag: BTreeMap<String, u64>,
    /// Shards waiting out a transient failure, and for how long (whole seconds).
    pub blocked_seconds: BTreeMap<String, u64>,
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

    pub(crate) fn set_checkpoint_lag(&self, shard_id: &str, records: u64) {
        self.checkpoint_lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(shard_id.to_owned(), records);
    }

    /// How processing of `shard_id` stands (what a renewal writes to the lease), once the
    /// shard has been read.
    pub(crate) fn progress(&self, shard_id: &str) -> Option<crate::lease::ShardProgress> {
        let millis_behind_latest = *self
            .millis_behind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(shard_id)?;
        let records_since_checkpoint = self
            .checkpoint_lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(shard_id)
            .copied()
            .unwrap_or(0);
        Some(crate::lease::ShardProgress {
            millis_behind_latest,
            records_since_checkpoint,
        })
    }

    /// The shard started waiting out a transient failure (kept if it already was).
    pub(crate) fn shard_blocked(&self, shard_id: &str) {
        self.blocked_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(shard_id.to_owned())
            .or_insert_with(Instant::now);
    }

    /// The shard is no longer waiting out a transient failure.
    pub(crate) fn shard_unblocked(&self, shard_id: &str) {
        self.blocked_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(shard_id);
    }

    fn blocked_seconds(&self) -> BTreeMap<String, u64> {
        self.blocked_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(shard_id, since)| (shard_id.clone(), since.elapsed().as_secs()))
            .collect()
    }

    pub(crate) fn forget_shard(&self, shard_id: &str) {
        self.shard_unblocked(shard_id);
        self.millis_behind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(shard_id);
        self.checkpoint_lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(shard_id);
    }

    /// Registers the counters as OpenTelemetry observable instruments on the global meter
    /// provider (a no-op provider unless telemetry installed one).
    pub fn export_to_opentelemetry(self: &Arc<Self>, application: &str, worker_id: &str) {
        let meter = opentelemetry::global::meter("kinesis-consumer");
        let attributes = vec![
            KeyValue::new("application", application.to_owned()),
            KeyValue::new("worker_id", worker_id.to_owned()),
        ];
        let counters: [quote_runtime::telemetry::ObservedCounter<Self>; 11] = [
            (
                "kinesis_consumer.records_processed",
                "Records processed",
                "{record}",
                |m| &m.records_processed,
            ),
            (
                "kinesis_consumer.bytes_processed",
                "Payload bytes processed",
                "By",
                |m| &m.bytes_processed,
            ),
            (
                "kinesis_consumer.leases_taken",
                "Leases taken (unowned or expired)",
                "{lease}",
                |m| &m.leases_taken,
            ),
            (
                "kinesis_consumer.leases_stolen",
                "Leases received by graceful handoff",
                "{lease}",
                |m| &m.leases_stolen,
            ),
            (
                "kinesis_consumer.leases_lost",
                "Leases lost to another worker",
                "{lease}",
                |m| &m.leases_lost,
            ),
            (
                "kinesis_consumer.leases_released",
                "Leases released on shutdown",
                "{lease}",
                |m| &m.leases_released,
            ),
            (
                "kinesis_consumer.dead_lettered",
                "Records sent to the dead-letter store",
                "{record}",
                |m| &m.dead_lettered,
            ),
            (
                "kinesis_consumer.source_retries",
                "Failed reads of the stream retried with the lease kept",
                "{retry}",
                |m| &m.source_retries,
            ),
            (
                "kinesis_consumer.checkpoints",
                "Checkpoints written",
                "{checkpoint}",
                |m| &m.checkpoints,
            ),
            (
                "kinesis_consumer.lease_table_writes",
                "Writes to the lease table",
                "{write}",
                |m| &m.lease_table_writes,
            ),
            (
                "kinesis_consumer.lease_table_scans",
                "Full scans of the lease table",
                "{scan}",
                |m| &m.lease_table_scans,
            ),
        ];
        quote_runtime::telemetry::observe_counters(&meter, self, &attributes, &counters);
        let metrics = self.clone();
        let retry_attributes = attributes.clone();
        meter
            .u64_observable_counter("kinesis_consumer.retries")
            .with_description("Retries of a failing batch, by kind of failure")
            .with_unit("{retry}")
            .with_callback(move |observer| {
                for (kind, counter) in [
                    ("transient", &metrics.retries_transient),
                    ("permanent", &metrics.retries_permanent),
                ] {
                    let mut attributes = retry_attributes.clone();
                    attributes.push(KeyValue::new("kind", kind));
                    observer.observe(counter.load(Ordering::Relaxed), &attributes);
                }
            })
            .build();
        let metrics = self.clone();
        let blocked_attributes = attributes.clone();
        meter
            .u64_observable_gauge("kinesis_consumer.shard_blocked_seconds")
            .with_description("How long a shard has been waiting out a transient failure")
            .with_unit("s")
            .with_callback(move |observer| {
                for (shard_id, seconds) in metrics.blocked_seconds() {
                    let mut attributes = blocked_attributes.clone();
                    attributes.push(KeyValue::new("shard_id", shard_id));
                    observer.observe(seconds, &attributes);
                }
            })
            .build();
        let metrics = self.clone();
        let held_attributes = attributes.clone();
        meter
            .u64_observable_gauge("kinesis_consumer.leases_held")
            .with_description("Leases held")
            .with_unit("{lease}")
            .with_callback(move |observer| {
                observer.observe(
                    metrics.leases_held.load(Ordering::Relaxed),
                    &held_attributes,
                )
            })
            .build();
        let per_shard: [(&'static str, &'static str, &'static str, ShardField); 2] = [
            (
                "kinesis_consumer.millis_behind_latest",
                "How far behind the tip of the shard the last read was",
                "ms",
                |m| &m.millis_behind,
            ),
            (
                "kinesis_consumer.checkpoint_lag_records",
                "Records processed since the last checkpoint",
                "{record}",
                |m| &m.checkpoint_lag,
            ),
        ];
        for (name, description, unit, field) in per_shard {
            let metrics = self.clone();
            let attributes = attributes.clone();
            meter
                .u64_observable_gauge(name)
                .with_description(description)
                .with_unit(unit)
                .with_callback(move |observer| {
                    let values = field(&metrics)
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    for (shard_id, value) in values {
                        let mut attributes = attributes.clone();
                        attributes.push(KeyValue::new("shard_id", shard_id));
                        observer.observe(value, &attributes);
                    }
                })
                .build();
        }
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
            retries_transient: get(&self.retries_transient),
            retries_permanent: get(&self.retries_permanent),
            source_retries: get(&self.source_retries),
            checkpoints: get(&self.checkpoints),
            lease_table_writes: get(&self.lease_table_writes),
            lease_table_scans: get(&self.lease_table_scans),
            leases_held: get(&self.leases_held),
            millis_behind: self
                .millis_behind
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            checkpoint_lag: self
                .checkpoint_lag
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            blocked_seconds: self.blocked_seconds(),
        }
    }
}
