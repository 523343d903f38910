//! Workers on the in-memory stream and lease table: every record is processed, in order per
//! partition key; leases spread over the fleet; a graceful shutdown hands leases over with no
//! re-delivery; resharding keeps per-key order; a poison record is dead-lettered and the later
//! records of its key are set aside behind it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kinesis_consumer::dead_letter::InMemoryDeadLetters;
use kinesis_consumer::lease_table::InMemoryLeaseTable;
use kinesis_consumer::source::memory::InMemoryStream;
use kinesis_consumer::{
    CheckpointPolicy, Checkpointer, FailurePolicy, LeaseTable, ProcessorError, Record,
    RecordProcessor, Worker, WorkerConfig,
};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
struct Seen {
    worker: String,
    partition_key: String,
    n: u64,
}

#[derive(Debug, Default, Clone)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

struct Recorder {
    worker: String,
    log: Log,
    poison: Option<String>,
}

#[async_trait]
impl RecordProcessor for Recorder {
    async fn process_records(
        &mut self,
        records: &[Record],
        _: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let text = |r: &Record| String::from_utf8_lossy(&r.data).into_owned();
        if let Some(poison) = &self.poison {
            if records.iter().any(|r| &text(r) == poison) {
                return Err("poison record".into());
            }
        }
        let mut log = self.log.0.lock().unwrap_or_else(|p| p.into_inner());
        for r in records {
            let (key, n) = text(r)
                .split_once(':')
                .map(|(k, n)| (k.to_owned(), n.parse().unwrap_or(0)))
                .unwrap_or_default();
            log.push(Seen {
                worker: self.worker.clone(),
                partition_key: key,
                n,
            });
        }
        Ok(())
    }
}

fn config(worker: &str) -> WorkerConfig {
    WorkerConfig {
        worker_id: worker.to_owned(),
        lease_duration: Duration::from_millis(1500),
        renew_interval: Duration::from_millis(300),
        scan_interval: Duration::from_millis(100),
        shard_sync_interval: Duration::from_millis(500),
        checkpoint: CheckpointPolicy {
            every_records: Some(50),
            every: Some(Duration::from_millis(200)),
        },
        retry_base: Duration::from_millis(5),
        retry_cap: Duration::from_millis(20),
        ..WorkerConfig::new("test-app")
    }
}

struct Fleet {
    table: Arc<InMemoryLeaseTable>,
    stream: InMemoryStream,
    log: Log,
    workers: BTreeMap<String, (CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Fleet {
    fn new(shards: u64) -> Self {
        Self {
            table: Arc::new(InMemoryLeaseTable::new()),
            stream: InMemoryStream::new(shards),
            log: Log::default(),
            workers: BTreeMap::new(),
        }
    }

    fn start(&mut self, name: &str, config: WorkerConfig, poison: Option<String>) {
        let log = self.log.clone();
        let worker_name = name.to_owned();
        let factory = move |_shard: &str| -> Box<dyn RecordProcessor> {
            Box::new(Recorder {
                worker: worker_name.clone(),
                log: log.clone(),
                poison: poison.clone(),
            })
        };
        let worker = Worker::new(
            config,
            self.table.clone(),
            Arc::new(self.stream.clone()),
            Arc::new(factory),
        );
        let token = CancellationToken::new();
        let task = tokio::spawn(worker.run(token.clone()));
        self.workers.insert(name.to_owned(), (token, task));
    }

    async fn stop(&mut self, name: &str) {
        if let Some((token, task)) = self.workers.remove(name) {
            token.cancel();
            task.await.expect("worker task");
        }
    }

    fn produce(&self, keys: usize, per_key: u64, from: u64) {
        for n in from..from + per_key {
            for k in 0..keys {
                let key = format!("quote#{k}");
                self.stream.put(&key, format!("{key}:{n}"));
            }
        }
    }

    async fn owners(&self) -> HashMap<String, usize> {
        let mut owners = HashMap::new();
        for lease in self.table.list().await.expect("list") {
            if let Some(owner) = lease.lease_owner {
                *owners.entry(owner).or_insert(0) += 1;
            }
        }
        owners
    }

    async fn wait_processed(&self, keys: usize, last: u64) {
        for _ in 0..400 {
            let seen = self.log.all();
            let complete = (0..keys).all(|k| {
                let key = format!("quote#{k}");
                seen.iter()
                    .filter(|s| s.partition_key == key)
                    .map(|s| s.n)
                    .max()
                    == Some(last)
            });
            if complete {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("not every record was processed");
    }
}

/// Checks, per key, that the first delivery of every number comes in order and none is missing.
fn assert_complete_in_order(seen: &[Seen], keys: usize, last: u64) -> usize {
    let mut duplicates = 0;
    for k in 0..keys {
        let key = format!("quote#{k}");
        let mut next = 0;
        for s in seen.iter().filter(|s| s.partition_key == key) {
            if s.n < next {
                duplicates += 1;
            } else {
                assert_eq!(
                    s.n, next,
                    "{key}: expected {next}, got {} (by {})",
                    s.n, s.worker
                );
                next += 1;
            }
        }
        assert_eq!(next, last + 1, "{key} incomplete");
    }
    duplicates
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_processes_everything_in_order_and_hands_over_gracefully() {
    let mut fleet = Fleet::new(4);
    fleet.produce(20, 50, 0);
    for name in ["w1", "w2", "w3"] {
        fleet.start(name, config(name), None);
    }
    fleet.wait_processed(20, 49).await;
    assert_eq!(
        assert_complete_in_order(&fleet.log.all(), 20, 49),
        0,
        "no duplicates without failures"
    );

    // Leases spread: 4 shards over 3 workers.
    for _ in 0..100 {
        let owners = fleet.owners().await;
        if owners.len() == 3 && owners.values().all(|&n| n <= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let owners = fleet.owners().await;
    assert_eq!(owners.len(), 3, "{owners:?}");

    // Graceful stop of w1: its leases move without re-delivery.
    let before = fleet.log.all().len();
    fleet.stop("w1").await;
    // w1 released everything it held; a lease still being handed to it when it stopped goes to
    // a live worker when that handoff expires (lease duration).
    for _ in 0..100 {
        if !fleet.owners().await.contains_key("w1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!fleet.owners().await.contains_key("w1"));
    fleet.produce(20, 50, 50);
    fleet.wait_processed(20, 99).await;
    let seen = fleet.log.all();
    assert_eq!(
        assert_complete_in_order(&seen, 20, 99),
        0,
        "graceful handoff re-delivered records"
    );
    assert!(seen[before..].iter().all(|s| s.worker != "w1"));
    fleet.stop("w2").await;
    fleet.stop("w3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_start_after_their_parents_so_per_key_order_holds() {
    let mut fleet = Fleet::new(2);
    fleet.produce(30, 20, 0);
    fleet.start("w1", config("w1"), None);
    fleet.start("w2", config("w2"), None);
    fleet.wait_processed(30, 19).await;
    let (left, right) = fleet.stream.split("shardId-000000000000").expect("split");
    fleet.produce(30, 20, 20);
    fleet.stream.merge(&left, &right).expect("merge");
    fleet.produce(30, 20, 40);
    fleet.wait_processed(30, 59).await;
    assert_complete_in_order(&fleet.log.all(), 30, 59);
    // Finished parents were cleaned up; the open shards have leases.
    let mut keys: Vec<String> = Vec::new();
    for _ in 0..200 {
        keys = fleet
            .table
            .list()
            .await
            .expect("list")
            .into_iter()
            .map(|l| l.lease_key)
            .collect();
        if !keys.contains(&left) && !keys.contains(&right) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        !keys.contains(&"shardId-000000000000".to_owned()),
        "{keys:?}"
    );
    assert!(!keys.contains(&left) && !keys.contains(&right), "{keys:?}");
    fleet.stop("w1").await;
    fleet.stop("w2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_dead_lettered_and_the_shard_moves_on() {
    let mut fleet = Fleet::new(1);
    let letters = Arc::new(InMemoryDeadLetters::new());
    let mut cfg = config("w1");
    cfg.failure = FailurePolicy::DeadLetter {
        max_attempts: 3,
        store: letters.clone(),
    };
    fleet.start("w1", cfg, Some("quote#0:5".into()));
    fleet.produce(2, 10, 0);
    let of = |key: &str| -> Vec<u64> {
        let seen = fleet.log.all();
        seen.iter()
            .filter(|s| s.partition_key == key)
            .map(|s| s.n)
            .collect()
    };
    for _ in 0..400 {
        if of("quote#1").len() == 10 && letters.letters().len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The other key goes on; quote#0 stops at its poison record (6..9 wait behind it).
    assert_eq!(of("quote#1"), (0..10).collect::<Vec<u64>>());
    assert_eq!(of("quote#0"), (0..5).collect::<Vec<u64>>());
    let mut letters = letters.letters();
    letters.sort_by(|a, b| {
        kinesis_consumer::lease::compare_sequence_numbers(
            &a.record.sequence_number,
            &b.record.sequence_number,
        )
    });
    assert_eq!(letters.len(), 5);
    assert_eq!(letters[0].record.data, b"quote#0:5".to_vec());
    assert_eq!(letters[0].attempts, 3);
    assert!(letters[0].error.contains("poison"));
    for behind in &letters[1..] {
        assert_eq!(
            behind.blocked_behind.as_deref(),
            Some(letters[0].record.sequence_number.as_str())
        );
    }
    fleet.stop("w1").await;
}

/// A worker that asked for a lease (graceful steal) adopts it within a renew interval or two of
/// the owner handing it over, by reading just that lease: not at its next scan. Scans here are a
/// minute apart, so only the read of the pending request can adopt in time; the adopted lease's
/// counter moves at once, so no third worker could see it standing still for a lease duration.
#[tokio::test(start_paused = true)]
async fn a_stealer_adopts_a_handed_over_lease_at_once_without_waiting_for_a_scan() {
    let slow_scans = |worker: &str| WorkerConfig {
        lease_duration: Duration::from_secs(6),
        renew_interval: Duration::from_secs(2),
        scan_interval: Duration::from_secs(60),
        shard_sync_interval: Duration::from_secs(600),
        ..config(worker)
    };
    let mut fleet = Fleet::new(4);
    fleet.produce(8, 20, 0);
    fleet.start("w1", slow_scans("w1"), None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fleet.owners().await.get("w1"),
        Some(&4),
        "w1 takes every lease"
    );

    let log = fleet.log.clone();
    let factory = move |_shard: &str| -> Box<dyn RecordProcessor> {
        Box::new(Recorder {
            worker: "w2".into(),
            log: log.clone(),
            poison: None,
        })
    };
    let w2 = Worker::new(
        slow_scans("w2"),
        fleet.table.clone(),
        Arc::new(fleet.stream.clone()),
        Arc::new(factory),
    );
    let w2_metrics = w2.metrics();
    let token = CancellationToken::new();
    let task = tokio::spawn(w2.run(token.clone()));
    fleet.workers.insert("w2".into(), (token, task));

    // w2's first scan asks for leases; w1 learns at its next renewal (≤ 2 s), checkpoints and
    // hands over; w2 reads what it asked for every 2 s.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked: Vec<String> = fleet
        .table
        .list()
        .await
        .expect("list")
        .into_iter()
        .filter(|l| l.handoff_owner.as_deref() == Some("w2"))
        .map(|l| l.lease_key)
        .collect();
    assert!(!asked.is_empty(), "w2 asks for at least one lease");
    let handed_over_by = Duration::from_millis(4_500);
    tokio::time::sleep(handed_over_by).await;

    let leases = fleet.table.list().await.expect("list");
    for key in &asked {
        let lease = leases.iter().find(|l| &l.lease_key == key).expect("lease");
        assert_eq!(
            lease.lease_owner.as_deref(),
            Some("w2"),
            "{key} adopted within {handed_over_by:?}"
        );
        assert_eq!(lease.handoff_owner, None);
    }
    let m = w2_metrics.snapshot();
    assert_eq!(m.leases_stolen, asked.len() as u64, "adopted, not taken");
    assert_eq!(m.leases_held, asked.len() as u64);
    assert_eq!(
        m.lease_table_scans, 2,
        "one shard sync and one scan: adoption did not wait for a scan"
    );

    fleet.wait_processed(8, 19).await;
    fleet.stop("w1").await;
    fleet.stop("w2").await;
    let duplicates = assert_complete_in_order(&fleet.log.all(), 8, 19);
    assert_eq!(duplicates, 0, "a graceful steal re-delivers nothing");
}
