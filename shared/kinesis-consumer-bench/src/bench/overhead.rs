//! `overhead`: the library's own cost per record, with no network in the way.
//!
//! One `Worker` (defaults, no-op processor, default `CheckpointPolicy`) reads a backlog of N
//! records from an `InMemoryStream` of S shards, coordinating through an `InMemoryLeaseTable`.
//! Timed from `Worker::run` until `records_processed == N`; CPU seconds (user + system, all
//! threads, from `/proc/self/stat`) over the same interval. Records per CPU-second is the
//! throughput one core would give if the library were the only work.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kinesis_consumer::lease_table::InMemoryLeaseTable;
use kinesis_consumer::source::memory::InMemoryStream;
use kinesis_consumer::{RecordProcessor, Worker, WorkerConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{median, payload, round, CpuClock, NoOp};

/// Runs the benchmark; returns the report.
pub async fn run(
    records: u64,
    shards: u64,
    runs: usize,
    record_bytes: usize,
) -> anyhow::Result<serde_json::Value> {
    let cpu = CpuClock::new();
    let mut per_run = Vec::new();
    let (mut rates, mut cpu_rates, mut cpu_seconds) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let stream = InMemoryStream::new(shards);
        for n in 0..records {
            stream.put(&format!("pk-{n}"), payload(n, record_bytes));
        }
        let config = WorkerConfig {
            worker_id: "bench-worker".into(),
            ..WorkerConfig::new("bench-overhead")
        };
        let factory = |_shard: &str| -> Box<dyn RecordProcessor> { Box::new(NoOp) };
        let worker = Worker::new(
            config,
            Arc::new(InMemoryLeaseTable::new()),
            Arc::new(stream),
            Arc::new(factory),
        );
        let metrics = worker.metrics();
        let stop = CancellationToken::new();
        let cpu_before = cpu.seconds()?;
        let started = Instant::now();
        let task = tokio::spawn(worker.run(stop.clone()));
        while metrics.records_processed.load(Ordering::Relaxed) < records {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "the worker did not finish within 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        let used = cpu.seconds()? - cpu_before;
        let checkpoints = metrics.checkpoints.load(Ordering::Relaxed);
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), task).await??;
        let rate = records as f64 / seconds;
        let per_cpu = records as f64 / used.max(f64::EPSILON);
        rates.push(rate);
        cpu_rates.push(per_cpu);
        cpu_seconds.push(used);
        per_run.push(json!({
            "run": run + 1,
            "seconds": round(seconds, 3),
            "records_per_s": round(rate, 0),
            "cpu_seconds": round(used, 2),
            "records_per_cpu_second": round(per_cpu, 0),
            "checkpoints": checkpoints,
        }));
        eprintln!(
            "run {}: {rate:.0} records/s, {used:.2} CPU-s, {per_cpu:.0} records/CPU-s",
            run + 1
        );
    }
    let per_cpu = median(&cpu_rates);
    Ok(json!({
        "benchmark": "overhead",
        "source": "InMemoryStream",
        "lease_table": "memory",
        "records": records,
        "shards": shards,
        "record_bytes": record_bytes,
        "runs": per_run,
        "median": {
            "records_per_s": round(median(&rates), 0),
            "cpu_seconds": round(median(&cpu_seconds), 2),
            "records_per_cpu_second": round(per_cpu, 0),
            "cpu_microseconds_per_record": round(1e6 / per_cpu.max(f64::EPSILON), 3),
        },
    }))
}
