//! A worker's leases under a slow lease table, and its checkpoint timer, on the paused clock
//! (issue 9 §4 and the idle-checkpoint hole): one hung write costs only its own lease, whose
//! consumer stops before any other worker could judge it expired; an idle shard's last records
//! are checkpointed on the timer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kinesis_consumer::lease_table::InMemoryLeaseTable;
use kinesis_consumer::source::memory::InMemoryStream;
use kinesis_consumer::{
    Checkpoint, CheckpointPolicy, Checkpointer, Lease, LeaseTable, LeaseTableError, ProcessorError,
    Record, RecordProcessor, Worker, WorkerConfig,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The in-memory table, except that every write to the `hung` lease never answers. Remembers
/// when each lease was last written (when another worker's expiry clock could start).
#[derive(Debug, Default)]
struct HangingTable {
    inner: InMemoryLeaseTable,
    hung: Mutex<Option<String>>,
    last_write: Mutex<HashMap<String, Instant>>,
}

impl HangingTable {
    async fn write<T>(
        &self,
        key: &str,
        call: impl std::future::Future<Output = Result<T, LeaseTableError>>,
    ) -> Result<T, LeaseTableError> {
        let hung = self.hung.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if hung.as_deref() == Some(key) {
            std::future::pending::<()>().await;
        }
        let result = call.await;
        if result.is_ok() {
            self.last_write
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.to_owned(), Instant::now());
        }
        result
    }

    fn last_write(&self, key: &str) -> Option<Instant> {
        self.last_write
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }
}

#[async_trait]
impl LeaseTable for HangingTable {
    async fn create_if_absent(&self, lease: &Lease) -> Result<bool, LeaseTableError> {
        self.inner.create_if_absent(lease).await
    }
    async fn list(&self) -> Result<Vec<Lease>, LeaseTableError> {
        self.inner.list().await
    }
    async fn get(&self, lease_key: &str) -> Result<Option<Lease>, LeaseTableError> {
        self.inner.get(lease_key).await
    }
    async fn renew(&self, held: &Lease) -> Result<Lease, LeaseTableError> {
        self.write(&held.lease_key, self.inner.renew(held)).await
    }
    async fn take(&self, seen: &Lease, new_owner: &str) -> Result<Lease, LeaseTableError> {
        self.write(&seen.lease_key, self.inner.take(seen, new_owner))
            .await
    }
    async fn release(&self, held: &Lease) -> Result<(), LeaseTableError> {
        self.write(&held.lease_key, self.inner.release(held)).await
    }
    async fn checkpoint(
        &self,
        held: &Lease,
        checkpoint: &Checkpoint,
        sub_sequence_number: u64,
    ) -> Result<Lease, LeaseTableError> {
        let call = self.inner.checkpoint(held, checkpoint, sub_sequence_number);
        self.write(&held.lease_key, call).await
    }
    async fn request_handoff(&self, seen: &Lease, to: &str) -> Result<(), LeaseTableError> {
        self.write(&seen.lease_key, self.inner.request_handoff(seen, to))
            .await
    }
    async fn hand_off(&self, held: &Lease) -> Result<(), LeaseTableError> {
        self.write(&held.lease_key, self.inner.hand_off(held)).await
    }
    async fn rewind(&self, seen: &Lease, to: &Checkpoint) -> Result<Lease, LeaseTableError> {
        self.write(&seen.lease_key, self.inner.rewind(seen, to))
            .await
    }
    async fn add_children(
        &self,
        lease_key: &str,
        children: &[String],
    ) -> Result<(), LeaseTableError> {
        self.inner.add_children(lease_key, children).await
    }
    async fn delete_finished(&self, lease_key: &str) -> Result<bool, LeaseTableError> {
        self.inner.delete_finished(lease_key).await
    }
}

/// Records when each shard's processor learned its lease was lost.
#[derive(Debug, Default, Clone)]
struct LostAt(Arc<Mutex<HashMap<String, Instant>>>);

struct Quiet {
    shard: String,
    lost: LostAt,
}

#[async_trait]
impl RecordProcessor for Quiet {
    async fn process_records(
        &mut self,
        _: &[Record],
        _: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        Ok(())
    }

    async fn lease_lost(&mut self) {
        self.lost
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.shard.clone(), Instant::now());
    }
}

fn config() -> WorkerConfig {
    WorkerConfig {
        worker_id: "w1".into(),
        lease_duration: Duration::from_secs(6),
        renew_interval: Duration::from_secs(2),
        scan_interval: Duration::from_secs(1),
        shard_sync_interval: Duration::from_secs(30),
        ..WorkerConfig::new("proof-test")
    }
}

/// Issue 9 §4: the write of one lease hangs. Before the fix, renewals ran together and each
/// round waited for all of them: the hung call stalled every renewal (others could take all the
/// worker's leases) and the hung shard kept processing forever.
#[tokio::test(start_paused = true)]
async fn one_hung_write_costs_only_its_lease_whose_consumer_stops_before_expiry() {
    let stream = InMemoryStream::new(4);
    let table = Arc::new(HangingTable::default());
    let lost = LostAt::default();
    let factory = {
        let lost = lost.clone();
        move |shard: &str| -> Box<dyn RecordProcessor> {
            Box::new(Quiet {
                shard: shard.to_owned(),
                lost: lost.clone(),
            })
        }
    };
    let config = config();
    let lease_duration = config.lease_duration;
    let worker = Worker::new(
        config,
        table.clone(),
        Arc::new(stream.clone()),
        Arc::new(factory),
    );
    let metrics = worker.metrics();
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leases = table.list().await.expect("list");
    assert_eq!(leases.len(), 4);
    assert!(leases.iter().all(|l| l.is_owned_by("w1")), "{leases:?}");

    let hung = leases[0].lease_key.clone();
    *table.hung.lock().unwrap_or_else(|p| p.into_inner()) = Some(hung.clone());
    let before: HashMap<String, u64> = leases
        .iter()
        .map(|l| (l.lease_key.clone(), l.lease_counter))
        .collect();
    tokio::time::sleep(lease_duration * 3).await;

    let lost = lost.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let last_write = table
        .last_write(&hung)
        .expect("the hung lease was written before");
    let stopped_at = lost.get(&hung).copied();
    assert!(
        stopped_at.is_some_and(|at| at < last_write + lease_duration),
        "the hung shard's consumer stopped at {:?} after its last write; another worker may take it after {lease_duration:?}",
        stopped_at.map(|at| at - last_write)
    );
    assert_eq!(lost.len(), 1, "only the hung lease was given up: {lost:?}");
    for lease in table.list().await.expect("list") {
        if lease.lease_key == hung {
            continue;
        }
        assert!(lease.is_owned_by("w1"), "{lease:?}");
        let renewals = lease.lease_counter - before[&lease.lease_key];
        assert!(
            renewals >= 7,
            "{} renewed {renewals} times in {:?} (every 2 s expected)",
            lease.lease_key,
            lease_duration * 3
        );
    }
    assert_eq!(metrics.snapshot().leases_lost, 1);
    stop.cancel();
    task.await.expect("worker");
}

/// The checkpoint timer fires on an idle shard: before the fix, `CHECKPOINT_EVERY_MS` was only
/// looked at when a batch arrived, so the last records stayed uncheckpointed (0 checkpoints in
/// 60 s idle) and a kill -9 delivered them all again.
#[tokio::test(start_paused = true)]
async fn an_idle_shard_is_checkpointed_on_the_timer() {
    let stream = InMemoryStream::new(1);
    let table = Arc::new(InMemoryLeaseTable::new());
    let factory = move |shard: &str| -> Box<dyn RecordProcessor> {
        Box::new(Quiet {
            shard: shard.to_owned(),
            lost: LostAt::default(),
        })
    };
    let worker = Worker::new(
        WorkerConfig {
            checkpoint: CheckpointPolicy {
                every_records: Some(1000),
                every: Some(Duration::from_secs(5)),
            },
            ..config()
        },
        table.clone(),
        Arc::new(stream.clone()),
        Arc::new(factory),
    );
    let metrics = worker.metrics();
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut last = String::new();
    for n in 0..10 {
        last = stream.put(&format!("key-{n}"), vec![1]).1;
    }
    tokio::time::sleep(Duration::from_secs(60)).await;

    let lease = table
        .get("shardId-000000000000")
        .await
        .expect("get")
        .expect("lease");
    assert_eq!(metrics.snapshot().records_processed, 10);
    assert_eq!(
        lease.checkpoint,
        Checkpoint::Sequence(last),
        "checkpoints in 60 s idle: {}",
        metrics.snapshot().checkpoints
    );
    stop.cancel();
    task.await.expect("worker");
}
