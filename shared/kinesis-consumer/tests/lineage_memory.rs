//! Resharding lineage on the in-memory stream and lease table (issue 9 §2 and §3): a grandparent
//! shard is never consumed again after two reshards, and children of a consumed parent start at
//! their own beginning even when listing shards failed around the parent's end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kinesis_consumer::lease_table::InMemoryLeaseTable;
use kinesis_consumer::source::memory::InMemoryStream;
use kinesis_consumer::source::{RecordSource, ShardInfo, ShardReader, SourceError, StartPosition};
use kinesis_consumer::{
    CheckpointPolicy, Checkpointer, InitialPosition, LeaseTable, ProcessorError, Record,
    RecordProcessor, ShardContext, Worker, WorkerConfig,
};
use tokio_util::sync::CancellationToken;

/// Every delivery, as `(shard, data)`.
#[derive(Debug, Default, Clone)]
struct Log(Arc<Mutex<Vec<(String, String)>>>);

impl Log {
    fn all(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

struct Recorder {
    shard: String,
    log: Log,
    initialized: Arc<AtomicU64>,
}

#[async_trait]
impl RecordProcessor for Recorder {
    async fn initialize(&mut self, _: &ShardContext) -> Result<(), ProcessorError> {
        self.initialized.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn process_records(
        &mut self,
        records: &[Record],
        _: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let mut log = self.log.0.lock().unwrap_or_else(|p| p.into_inner());
        for r in records {
            log.push((
                self.shard.clone(),
                String::from_utf8_lossy(&r.data).into_owned(),
            ));
        }
        Ok(())
    }
}

/// The in-memory stream, with `ListShards` failing while `failing` is set.
#[derive(Debug)]
struct FlakyListing {
    stream: InMemoryStream,
    failing: AtomicBool,
    failed: AtomicU64,
}

#[async_trait]
impl RecordSource for FlakyListing {
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, SourceError> {
        if self.failing.load(Ordering::SeqCst) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(SourceError::Backend("injected ListShards failure".into()));
        }
        self.stream.list_shards().await
    }

    async fn open(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<Box<dyn ShardReader>, SourceError> {
        self.stream.open(shard_id, start).await
    }
}

fn config() -> WorkerConfig {
    WorkerConfig {
        worker_id: "w1".into(),
        lease_duration: Duration::from_millis(1500),
        renew_interval: Duration::from_millis(300),
        scan_interval: Duration::from_millis(100),
        shard_sync_interval: Duration::from_millis(200),
        checkpoint: CheckpointPolicy {
            every_records: Some(10),
            every: Some(Duration::from_millis(100)),
        },
        ..WorkerConfig::new("lineage-test")
    }
}

struct Run {
    table: Arc<InMemoryLeaseTable>,
    log: Log,
    initialized: Arc<AtomicU64>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(source: Arc<dyn RecordSource>, config: WorkerConfig) -> Run {
    let table = Arc::new(InMemoryLeaseTable::new());
    let log = Log::default();
    let initialized = Arc::new(AtomicU64::new(0));
    let factory = {
        let (log, initialized) = (log.clone(), initialized.clone());
        move |shard: &str| -> Box<dyn RecordProcessor> {
            Box::new(Recorder {
                shard: shard.to_owned(),
                log: log.clone(),
                initialized: initialized.clone(),
            })
        }
    };
    let worker = Worker::new(config, table.clone(), source, Arc::new(factory));
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    Run {
        table,
        log,
        initialized,
        stop,
        task,
    }
}

fn produce(stream: &InMemoryStream, phase: u64, keys: u64, per_key: u64) {
    for n in 0..per_key {
        for k in 0..keys {
            stream.put(&format!("key-{k}"), format!("{phase}:{k}:{n}"));
        }
    }
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn lease_keys(table: &InMemoryLeaseTable) -> Vec<String> {
    table
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|l| l.lease_key)
        .collect()
}

/// Issue 9 §2: P is split into C1 and C2, which are merged into G. Once the leases of P, C1 and
/// C2 are cleaned up, P must not look new: before the fix it was re-created at the next shard
/// sync, consumed again, deleted, and re-created again (150 deliveries became 500 in 4 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grandparent_is_never_consumed_again_after_two_reshards() {
    let stream = InMemoryStream::new(1);
    let run = start(Arc::new(stream.clone()), config());
    let parent = "shardId-000000000000".to_owned();
    produce(&stream, 0, 10, 5);
    wait_until("the parent's 50 records", || run.log.all().len() >= 50).await;
    let (left, right) = stream.split(&parent).expect("split");
    produce(&stream, 1, 10, 5);
    wait_until("the children's 50 records", || run.log.all().len() >= 100).await;
    let grandchild = stream.merge(&left, &right).expect("merge");
    produce(&stream, 2, 10, 5);
    wait_until("the grandchild's 50 records", || run.log.all().len() >= 150).await;

    for _ in 0..400 {
        let keys = lease_keys(&run.table).await;
        if keys == vec![grandchild.clone()] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        lease_keys(&run.table).await,
        vec![grandchild.clone()],
        "finished lineage cleaned up"
    );
    // Ten shard syncs and many scans later, nothing came back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = run.log.all();
    let replayed = log.iter().filter(|(shard, _)| shard == &parent).count();
    assert_eq!(
        log.len(),
        150,
        "every record delivered once ({} deliveries from the grandparent, 50 expected)",
        replayed
    );
    assert_eq!(lease_keys(&run.table).await, vec![grandchild]);
    run.stop.cancel();
    run.task.await.expect("worker");
}

/// Issue 9 §3: with `LATEST`, `ListShards` fails while the parent ends. The parent's lease must
/// stay until its children have leases, and the children must start at their own beginning:
/// before the fix the parent was deleted anyway and the children created later at `LATEST`
/// (50 of 100 records delivered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_start_at_their_beginning_when_listing_shards_failed_as_the_parent_ended() {
    let stream = InMemoryStream::new(1);
    let source = Arc::new(FlakyListing {
        stream: stream.clone(),
        failing: AtomicBool::new(false),
        failed: AtomicU64::new(0),
    });
    let run = start(
        source.clone(),
        WorkerConfig {
            initial_position: InitialPosition::Latest,
            ..config()
        },
    );
    let parent = "shardId-000000000000".to_owned();
    wait_until("the parent's consumer", || {
        run.initialized.load(Ordering::SeqCst) >= 1
    })
    .await;
    // The reader opens at LATEST right after `initialize`.
    tokio::time::sleep(Duration::from_millis(300)).await;
    produce(&stream, 0, 10, 5);
    wait_until("the parent's 50 records", || run.log.all().len() >= 50).await;

    source.failing.store(true, Ordering::SeqCst);
    stream.split(&parent).expect("split");
    produce(&stream, 1, 10, 5);
    for _ in 0..400 {
        let finished = run
            .table
            .get(&parent)
            .await
            .expect("get")
            .is_none_or(|l| l.is_finished());
        if finished {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Several shard syncs fail after the parent's end.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        source.failed.load(Ordering::SeqCst) >= 2,
        "failures injected"
    );
    source.failing.store(false, Ordering::SeqCst);

    for _ in 0..200 {
        if run.log.all().len() >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let delivered = run.log.all().len();
    assert_eq!(delivered, 100, "{delivered} of 100 records delivered");
    run.stop.cancel();
    run.task.await.expect("worker");
}
