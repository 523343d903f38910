//! A shard whose reader cannot be opened for a while (`GetShardIterator` throttled or failing
//! after the SDK's attempts, the endpoint down) keeps its lease: the worker retries the open
//! with backoff instead of releasing the lease, which would only move the same failure to the
//! next worker and re-deliver everything since the checkpoint. On tokio's paused clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kinesis_consumer::lease_table::InMemoryLeaseTable;
use kinesis_consumer::source::memory::InMemoryStream;
use kinesis_consumer::source::{RecordSource, ShardInfo, ShardReader, SourceError, StartPosition};
use kinesis_consumer::{
    CheckpointPolicy, Checkpointer, ProcessorError, Record, RecordProcessor, Worker, WorkerConfig,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The in-memory stream, whose `open` fails (as a throttled `GetShardIterator` does after the
/// SDK's attempts) until `failing_until`.
#[derive(Debug)]
struct FailingOpen {
    stream: InMemoryStream,
    failing_until: Instant,
    failed_opens: AtomicU64,
}

#[async_trait]
impl RecordSource for FailingOpen {
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, SourceError> {
        self.stream.list_shards().await
    }

    async fn open(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<Box<dyn ShardReader>, SourceError> {
        if Instant::now() < self.failing_until {
            self.failed_opens.fetch_add(1, Ordering::SeqCst);
            return Err(SourceError::Backend(format!(
                "GetShardIterator {shard_id}: LimitExceededException: rate exceeded"
            )));
        }
        self.stream.open(shard_id, start).await
    }
}

/// Records processed (`key:n`, in order) and processors created, shared with the test.
#[derive(Debug, Default, Clone)]
struct Seen {
    processed: Arc<Mutex<Vec<String>>>,
    processors: Arc<AtomicU64>,
}

struct Collect(Seen);

#[async_trait]
impl RecordProcessor for Collect {
    async fn process_records(
        &mut self,
        records: &[Record],
        _: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let mut processed = self.0.processed.lock().unwrap_or_else(|p| p.into_inner());
        processed.extend(
            records
                .iter()
                .map(|r| String::from_utf8_lossy(&r.data).into_owned()),
        );
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_shard_that_cannot_be_opened_for_a_while_keeps_its_lease_and_is_read_once_it_can() {
    let stream = InMemoryStream::new(1);
    for n in 0..20 {
        stream.put("quote#a", format!("quote#a:{n}"));
    }
    let source = Arc::new(FailingOpen {
        stream: stream.clone(),
        // Failing for 40 s: many lease durations and many times the retry cap.
        failing_until: Instant::now() + Duration::from_secs(40),
        failed_opens: AtomicU64::new(0),
    });
    let seen = Seen::default();
    let factory = {
        let seen = seen.clone();
        move |_: &str| -> Box<dyn RecordProcessor> {
            seen.processors.fetch_add(1, Ordering::SeqCst);
            Box::new(Collect(seen.clone()))
        }
    };
    let config = WorkerConfig {
        worker_id: "w1".into(),
        lease_duration: Duration::from_secs(6),
        renew_interval: Duration::from_secs(2),
        scan_interval: Duration::from_millis(200),
        shard_sync_interval: Duration::from_secs(5),
        checkpoint: CheckpointPolicy {
            every_records: Some(1),
            every: None,
        },
        retry_base: Duration::from_millis(100),
        retry_cap: Duration::from_secs(2),
        ..WorkerConfig::new("test-app")
    };
    let worker = Worker::new(
        config,
        Arc::new(InMemoryLeaseTable::new()),
        source.clone(),
        Arc::new(factory),
    );
    let metrics = worker.metrics();
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));

    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = metrics.snapshot();
    assert!(
        source.failed_opens.load(Ordering::SeqCst) >= 10,
        "the open kept failing and was retried: {} failed opens",
        source.failed_opens.load(Ordering::SeqCst)
    );
    assert_eq!(during.leases_taken, 1, "the lease was taken once and kept");
    assert_eq!(
        during.leases_released, 0,
        "the lease was not released over a failed open"
    );
    assert_eq!(during.leases_held, 1);
    assert!(
        during.source_retries >= 10,
        "the retries are counted: {}",
        during.source_retries
    );
    assert!(
        during.blocked_seconds.values().any(|&s| s >= 20),
        "the shard shows it is blocked: {:?}",
        during.blocked_seconds
    );

    for _ in 0..600 {
        if seen
            .processed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
            >= 20
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expected: Vec<String> = (0..20).map(|n| format!("quote#a:{n}")).collect();
    assert_eq!(
        *seen.processed.lock().unwrap_or_else(|p| p.into_inner()),
        expected,
        "every record delivered once, in order, once the shard could be opened"
    );
    assert_eq!(
        seen.processors.load(Ordering::SeqCst),
        1,
        "one processor for the shard: the lease never changed hands"
    );
    let after = metrics.snapshot();
    assert_eq!(after.leases_taken, 1);
    assert!(after.blocked_seconds.is_empty(), "no longer blocked");
    stop.cancel();
    task.await.expect("worker task");
}
