//! `throughput`: how fast the library reads a backlog on kinesis-mock, next to the fastest a
//! plain SDK reader can go.
//!
//! Each run creates a fresh stream of S shards and puts N records, then reads the backlog twice
//! (the order alternates between runs so neither reader always meets a warmer emulator):
//! - **raw**: one task per shard, `GetShardIterator(TRIM_HORIZON)` then `GetRecords(limit
//!   10000)` back to back, no pacing, timed until the call that brought the N-th record
//!   returned;
//! - **worker**: one `Worker` with a no-op processor, the default `CheckpointPolicy`, a
//!   `KinesisPolling` source with `PollingConfig::default()` and an in-memory (or DynamoDB)
//!   lease table, timed from `Worker::run` until `records_processed == N` (so the idle pacing
//!   after the last record is not counted; start-up, shard sync and lease taking are).
//!
//! CPU seconds of the process are sampled around each reader.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::types::ShardIteratorType;
use kinesis_consumer::lease_table::{create_lease_table, DynamoLeaseTable, InMemoryLeaseTable};
use kinesis_consumer::source::polling::{KinesisPolling, PollingConfig};
use kinesis_consumer::{LeaseTable, RecordProcessor, Worker, WorkerConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{median, round, CpuClock, NoOp};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Records per stream.
    pub records: u64,
    /// Shards per stream.
    pub shards: u32,
    /// Runs.
    pub runs: usize,
    /// Payload bytes per record.
    pub record_bytes: usize,
    /// Coordinate through moto's DynamoDB instead of memory.
    pub dynamodb_leases: bool,
}

/// One reader's measurement.
#[derive(Debug, Clone, Copy)]
struct Measured {
    seconds: f64,
    cpu_seconds: f64,
}

/// Longest a reader may take before the run is declared failed.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Reads the whole backlog with plain `GetRecords` calls, one task per shard.
async fn raw(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    records: u64,
    cpu: CpuClock,
) -> anyhow::Result<Measured> {
    let shards = kinesis_consumer::source::polling::list_all_shards(client, stream)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let read = Arc::new(AtomicU64::new(0));
    // Nanoseconds from the start until the N-th record arrived (tasks still end their call).
    let done_after = Arc::new(AtomicU64::new(u64::MAX));
    let cpu_before = cpu.seconds()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for shard in shards {
        let client = client.clone();
        let stream = stream.to_owned();
        let read = read.clone();
        let done_after = done_after.clone();
        tasks.push(tokio::spawn(async move {
            let mut iterator = client
                .get_shard_iterator()
                .stream_name(&stream)
                .shard_id(&shard.shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("GetShardIterator: {}", DisplayErrorContext(e)))?
                .shard_iterator;
            while let Some(it) = iterator.take() {
                if read.load(Ordering::Relaxed) >= records {
                    break;
                }
                let page = client
                    .get_records()
                    .shard_iterator(it)
                    .limit(10_000)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("GetRecords: {}", DisplayErrorContext(e)))?;
                let got = page.records().len() as u64;
                if got > 0 && read.fetch_add(got, Ordering::Relaxed) + got >= records {
                    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    done_after.fetch_min(nanos, Ordering::Relaxed);
                }
                if got == 0 && page.millis_behind_latest() == Some(0) {
                    // This shard is drained; others may still be reading.
                    if read.load(Ordering::Relaxed) >= records {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                iterator = page.next_shard_iterator;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        tokio::time::timeout(READ_TIMEOUT, task).await???;
    }
    let total = read.load(Ordering::Relaxed);
    anyhow::ensure!(total >= records, "raw reader read {total} of {records}");
    let seconds = Duration::from_nanos(done_after.load(Ordering::Relaxed)).as_secs_f64();
    Ok(Measured {
        seconds,
        cpu_seconds: cpu.seconds()? - cpu_before,
    })
}

/// Reads the whole backlog with one `Worker`.
async fn worker(
    kinesis: &aws_sdk_kinesis::Client,
    dynamo: &aws_sdk_dynamodb::Client,
    stream: &str,
    records: u64,
    dynamodb_leases: bool,
    cpu: CpuClock,
) -> anyhow::Result<Measured> {
    let table: Arc<dyn LeaseTable> = if dynamodb_leases {
        let name = super::unique_name("bench-leases");
        create_lease_table(dynamo, &name).await?;
        Arc::new(DynamoLeaseTable::new(dynamo.clone(), name))
    } else {
        Arc::new(InMemoryLeaseTable::new())
    };
    let source = KinesisPolling::new(kinesis.clone(), stream, PollingConfig::default());
    let config = WorkerConfig {
        worker_id: "bench-worker".into(),
        ..WorkerConfig::new("bench-throughput")
    };
    let factory = |_shard: &str| -> Box<dyn RecordProcessor> { Box::new(NoOp) };
    let worker = Worker::new(config, table, Arc::new(source), Arc::new(factory));
    let metrics = worker.metrics();
    let stop = CancellationToken::new();
    let cpu_before = cpu.seconds()?;
    let started = Instant::now();
    let task = tokio::spawn(worker.run(stop.clone()));
    while metrics.records_processed.load(Ordering::Relaxed) < records {
        anyhow::ensure!(
            started.elapsed() < READ_TIMEOUT,
            "worker processed {} of {records} records in {READ_TIMEOUT:?}",
            metrics.records_processed.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu.seconds()? - cpu_before;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), task).await??;
    Ok(Measured {
        seconds,
        cpu_seconds,
    })
}

/// Runs the benchmark; returns the report.
pub async fn run(options: Options) -> anyhow::Result<serde_json::Value> {
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let cpu = CpuClock::new();
    let n = options.records;
    let mut runs = Vec::new();
    let (mut raw_rates, mut worker_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut raw_cpu, mut worker_cpu) = (Vec::new(), Vec::new());
    for run in 0..options.runs {
        let stream = super::unique_name("bench-throughput");
        super::create_stream(&kinesis, &stream, options.shards).await?;
        let put_started = Instant::now();
        super::put_records(&kinesis, &stream, n, options.record_bytes).await?;
        let put_seconds = put_started.elapsed().as_secs_f64();
        let worker_first = run % 2 == 1;
        let (r, w) = if worker_first {
            let w = worker(&kinesis, &dynamo, &stream, n, options.dynamodb_leases, cpu).await?;
            (raw(&kinesis, &stream, n, cpu).await?, w)
        } else {
            let r = raw(&kinesis, &stream, n, cpu).await?;
            (
                r,
                worker(&kinesis, &dynamo, &stream, n, options.dynamodb_leases, cpu).await?,
            )
        };
        super::delete_stream(&kinesis, &stream).await;
        let (raw_rate, worker_rate) = (n as f64 / r.seconds, n as f64 / w.seconds);
        raw_rates.push(raw_rate);
        worker_rates.push(worker_rate);
        ratios.push(worker_rate / raw_rate);
        raw_cpu.push(r.cpu_seconds);
        worker_cpu.push(w.cpu_seconds);
        runs.push(json!({
            "run": run + 1,
            "order": if worker_first { "worker, raw" } else { "raw, worker" },
            "put_records_per_s": round(n as f64 / put_seconds, 0),
            "raw": { "seconds": round(r.seconds, 3), "records_per_s": round(raw_rate, 0), "cpu_seconds": round(r.cpu_seconds, 2) },
            "worker": { "seconds": round(w.seconds, 3), "records_per_s": round(worker_rate, 0), "cpu_seconds": round(w.cpu_seconds, 2) },
        }));
        eprintln!(
            "run {}: raw {:.0} records/s, worker {:.0} records/s",
            run + 1,
            raw_rate,
            worker_rate
        );
    }
    Ok(json!({
        "benchmark": "throughput",
        "records": n,
        "shards": options.shards,
        "record_bytes": options.record_bytes,
        "lease_table": if options.dynamodb_leases { "dynamodb" } else { "memory" },
        "polling": "PollingConfig::default()",
        "runs": runs,
        "median": {
            "raw_records_per_s": round(median(&raw_rates), 0),
            "worker_records_per_s": round(median(&worker_rates), 0),
            "worker_over_raw": round(median(&ratios), 3),
            "raw_cpu_seconds": round(median(&raw_cpu), 2),
            "worker_cpu_seconds": round(median(&worker_cpu), 2),
        },
    }))
}
