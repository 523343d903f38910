//! Worker processes on kinesis-mock + moto (DynamoDB): kill -9, SIGTERM handoff, resharding and
//! poison records, checked against what every worker recorded (`kinesis-consumer-probe`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kinesis_consumer::dead_letter::{create_dead_letter_table, DynamoDeadLetters};
use kinesis_consumer::lease_table::{create_lease_table, DynamoLeaseTable};
use kinesis_consumer::{Lease, LeaseTable};

/// A sequence number, ordered numerically (they are up to 128-bit decimals, often longer
/// strings than `u128` parses).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Seq(String);

impl PartialOrd for Seq {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Seq {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        kinesis_consumer::lease::compare_sequence_numbers(&self.0, &other.0)
    }
}

/// A processed record or a checkpoint, as the probe wrote it.
#[derive(Debug, Clone)]
enum Line {
    Record {
        worker: String,
        shard: String,
        sequence: Seq,
        key: String,
        n: u64,
    },
    Checkpoint {
        shard: String,
        sequence: Seq,
    },
}

struct Fleet {
    kinesis: aws_sdk_kinesis::Client,
    leases: DynamoLeaseTable,
    dynamo: aws_sdk_dynamodb::Client,
    stream: String,
    lease_table: String,
    dead_letter_table: String,
    output: PathBuf,
    workers: BTreeMap<String, Child>,
}

impl Fleet {
    async fn new(shards: i32) -> Self {
        let config = testkit::aws_config().await;
        let kinesis = aws_sdk_kinesis::Client::new(&config);
        let dynamo = aws_sdk_dynamodb::Client::new(&config);
        let stream = testkit::unique_name("fleet");
        testkit::create_stream(&kinesis, &stream, shards).await;
        let lease_table = testkit::unique_name("probe-leases");
        create_lease_table(&dynamo, &lease_table)
            .await
            .expect("lease table");
        let dead_letter_table = testkit::unique_name("dead-letters");
        create_dead_letter_table(&dynamo, &dead_letter_table)
            .await
            .expect("dead-letter table");
        let output = std::env::temp_dir().join(format!("{}.log", testkit::unique_name("probe")));
        Self {
            leases: DynamoLeaseTable::new(dynamo.clone(), lease_table.clone()),
            kinesis,
            dynamo,
            stream,
            lease_table,
            dead_letter_table,
            output,
            workers: BTreeMap::new(),
        }
    }

    fn start(&mut self, worker: &str, extra: &[(&str, &str)]) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kinesis-consumer-probe"));
        command
            .env("STREAM_NAME", &self.stream)
            .env("LEASE_TABLE", &self.lease_table)
            .env("WORKER_ID", worker)
            .env("PROBE_OUTPUT", &self.output)
            .env("LEASE_DURATION_MS", "3000")
            .env("CHECKPOINT_EVERY", "25")
            .env(
                "RUST_LOG",
                std::env::var("PROBE_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (name, value) in extra {
            command.env(name, value);
        }
        self.workers
            .insert(worker.to_owned(), command.spawn().expect("start probe"));
    }

    fn kill_9(&mut self, worker: &str) {
        if let Some(mut child) = self.workers.remove(worker) {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    fn sigterm(&mut self, worker: &str) -> Child {
        let child = self.workers.remove(worker).expect("running worker");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        assert!(status.is_ok_and(|s| s.success()));
        child
    }

    async fn produce(&self, keys: usize, numbers: std::ops::Range<u64>) {
        let mut entries = Vec::new();
        for n in numbers {
            for k in 0..keys {
                let key = format!("pk-{k}");
                entries.push(
                    PutRecordsRequestEntry::builder()
                        .partition_key(&key)
                        .data(Blob::new(format!("{key}:{n}")))
                        .build()
                        .expect("entry"),
                );
            }
        }
        // Order per key needs one key's records in order: send in order, one call at a time,
        // and retry only the failed suffix of a call.
        for chunk in entries.chunks(250) {
            let mut pending = chunk.to_vec();
            while !pending.is_empty() {
                let output = self
                    .kinesis
                    .put_records()
                    .stream_name(&self.stream)
                    .set_records(Some(pending.clone()))
                    .send()
                    .await
                    .expect("put records");
                let first_failed = output
                    .records()
                    .iter()
                    .position(|r| r.error_code().is_some());
                pending = match first_failed {
                    Some(index) => pending.split_off(index),
                    None => Vec::new(),
                };
            }
        }
    }

    fn lines(&self) -> Vec<Line> {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let parts: Vec<&str> = line.splitn(6, ' ').collect();
                match parts.as_slice() {
                    ["R", worker, shard, sequence, _fencing, data] => {
                        let (key, n) = data.split_once(':')?;
                        Some(Line::Record {
                            worker: (*worker).to_owned(),
                            shard: (*shard).to_owned(),
                            sequence: Seq((*sequence).to_owned()),
                            key: key.to_owned(),
                            n: n.parse().ok()?,
                        })
                    }
                    ["C", _worker, shard, sequence] => Some(Line::Checkpoint {
                        shard: (*shard).to_owned(),
                        sequence: Seq((*sequence).to_owned()),
                    }),
                    _ => None,
                }
            })
            .collect()
    }

    /// Waits until every key has every number below `end` (except `skip`).
    async fn wait_processed(&self, keys: usize, end: u64, skip: Option<(&str, u64)>) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut seen: HashMap<String, HashSet<u64>> = HashMap::new();
            for line in self.lines() {
                if let Line::Record { key, n, .. } = line {
                    seen.entry(key).or_default().insert(n);
                }
            }
            let complete = (0..keys).all(|k| {
                let key = format!("pk-{k}");
                (0..end).all(|n| {
                    skip == Some((key.as_str(), n))
                        || seen.get(&key).is_some_and(|s| s.contains(&n))
                })
            });
            if complete {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "records were not all processed within 90 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn leases(&self) -> Vec<Lease> {
        self.leases.list().await.expect("leases")
    }

    fn stop_all(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.workers) {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.workers) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.output);
    }
}

/// Per key, the first delivery of each number comes in order. Returns duplicate deliveries.
fn assert_first_deliveries_in_order(lines: &[Line]) -> Vec<(String, Seq, String)> {
    let mut next: HashMap<String, u64> = HashMap::new();
    let mut delivered: HashSet<(String, Seq)> = HashSet::new();
    let mut duplicates = Vec::new();
    for line in lines {
        if let Line::Record {
            worker,
            shard,
            sequence,
            key,
            n,
        } = line
        {
            if !delivered.insert((shard.clone(), sequence.clone())) {
                duplicates.push((shard.clone(), sequence.clone(), worker.clone()));
                continue;
            }
            let expected = next.entry(key.clone()).or_insert(0);
            assert_eq!(
                *n, *expected,
                "{key}: first delivery of {n} came before {expected}"
            );
            *expected += 1;
        }
    }
    duplicates
}

async fn wait_for<F: Fn(&[Lease]) -> bool>(
    fleet: &Fleet,
    what: &str,
    timeout: Duration,
    check: F,
) -> Duration {
    let start = Instant::now();
    loop {
        if check(&fleet.leases().await) {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_and_its_leases_move() {
    let mut fleet = Fleet::new(4).await;
    for worker in ["w1", "w2", "w3"] {
        fleet.start(worker, &[("CHECKPOINT_EVERY", "250")]);
    }
    wait_for(
        &fleet,
        "leases spread over three workers",
        Duration::from_secs(60),
        |leases| {
            leases
                .iter()
                .filter_map(|l| l.lease_owner.clone())
                .collect::<HashSet<_>>()
                .len()
                == 3
        },
    )
    .await;

    // Produce in steps while w1 dies, so it dies mid-stream with uncheckpointed records.
    fleet.produce(40, 0..10).await;
    for step in 1..4 {
        fleet.produce(40, step * 10..step * 10 + 10).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    fleet.kill_9("w1");
    let before_kill = fleet.lines();
    fleet.produce(40, 40..60).await;
    let failover = wait_for(
        &fleet,
        "w1's leases to move",
        Duration::from_secs(30),
        |leases| {
            leases
                .iter()
                .all(|l| l.lease_owner.as_deref() != Some("w1"))
        },
    )
    .await;
    eprintln!("kill -9 failover: leases moved {failover:?} after the kill");
    fleet.wait_processed(40, 60, None).await;

    // The uncheckpointed window: records w1 processed after its last checkpoint of the shard.
    let mut last_checkpoint: HashMap<String, Seq> = HashMap::new();
    for line in &before_kill {
        if let Line::Checkpoint { shard, sequence } = line {
            let entry = last_checkpoint
                .entry(shard.clone())
                .or_insert(Seq("0".into()));
            if *sequence > *entry {
                *entry = sequence.clone();
            }
        }
    }
    let window: HashSet<(String, Seq)> = before_kill
        .iter()
        .filter_map(|l| match l {
            Line::Record {
                worker,
                shard,
                sequence,
                ..
            } if worker == "w1" => {
                let checkpointed = last_checkpoint
                    .get(shard)
                    .cloned()
                    .unwrap_or(Seq("0".into()));
                (*sequence > checkpointed).then(|| (shard.clone(), sequence.clone()))
            }
            _ => None,
        })
        .collect();
    let duplicates = assert_first_deliveries_in_order(&fleet.lines());
    for (shard, sequence, worker) in &duplicates {
        assert!(
            window.contains(&(shard.clone(), sequence.clone())),
            "{shard} {sequence:?} re-delivered to {worker} but it was not in w1's uncheckpointed window"
        );
    }
    eprintln!(
        "kill -9: {} records re-delivered, all from w1's uncheckpointed window of {}",
        duplicates.len(),
        window.len()
    );
    fleet.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_leases_over_in_about_a_second_with_no_redelivery() {
    let mut fleet = Fleet::new(4).await;
    for worker in ["w1", "w2"] {
        fleet.start(worker, &[]);
    }
    wait_for(
        &fleet,
        "leases spread over two workers",
        Duration::from_secs(60),
        |leases| {
            let owners: Vec<_> = leases
                .iter()
                .filter_map(|l| l.lease_owner.clone())
                .collect();
            owners.len() == 4 && owners.iter().filter(|o| *o == "w1").count() == 2
        },
    )
    .await;
    fleet.produce(30, 0..10).await;
    fleet.wait_processed(30, 5, None).await;

    let mut stopping = fleet.sigterm("w1");
    let handoff = wait_for(
        &fleet,
        "w2 to own every lease",
        Duration::from_secs(20),
        |leases| {
            leases
                .iter()
                .all(|l| l.lease_owner.as_deref() == Some("w2"))
        },
    )
    .await;
    let status = stopping.wait().expect("exit");
    assert!(status.success(), "graceful exit: {status:?}");
    eprintln!("SIGTERM handoff: w2 owned every lease {handoff:?} after the signal");
    assert!(handoff < Duration::from_secs(5), "handoff took {handoff:?}");

    fleet.produce(30, 10..20).await;
    fleet.wait_processed(30, 20, None).await;
    let duplicates = assert_first_deliveries_in_order(&fleet.lines());
    assert!(
        duplicates.is_empty(),
        "graceful handoff re-delivered {duplicates:?}"
    );
    fleet.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_merge_mid_stream_keep_per_key_order() {
    let mut fleet = Fleet::new(2).await;
    fleet.start("w1", &[]);
    fleet.start("w2", &[]);
    fleet.produce(30, 0..10).await;
    fleet.wait_processed(30, 5, None).await;

    let shards = kinesis_consumer::source::polling::list_all_shards(&fleet.kinesis, &fleet.stream)
        .await
        .expect("shards");
    let first = &shards[0];
    let start: u128 = first.starting_hash_key.parse().expect("hash");
    let end: u128 = first.ending_hash_key.parse().expect("hash");
    fleet
        .kinesis
        .split_shard()
        .stream_name(&fleet.stream)
        .shard_to_split(&first.shard_id)
        .new_starting_hash_key((start + (end - start) / 2).to_string())
        .send()
        .await
        .expect("split");
    testkit::wait_stream_active(&fleet.kinesis, &fleet.stream).await;
    fleet.produce(30, 10..20).await;

    let shards = kinesis_consumer::source::polling::list_all_shards(&fleet.kinesis, &fleet.stream)
        .await
        .expect("shards");
    let children: Vec<_> = shards
        .iter()
        .filter(|s| s.parent_shard_ids.contains(&first.shard_id))
        .collect();
    assert_eq!(children.len(), 2);
    fleet
        .kinesis
        .merge_shards()
        .stream_name(&fleet.stream)
        .shard_to_merge(&children[0].shard_id)
        .adjacent_shard_to_merge(&children[1].shard_id)
        .send()
        .await
        .expect("merge");
    testkit::wait_stream_active(&fleet.kinesis, &fleet.stream).await;
    fleet.produce(30, 20..30).await;
    fleet.wait_processed(30, 30, None).await;
    assert_first_deliveries_in_order(&fleet.lines());

    // Finished parents are cleaned up; the merged child and the untouched shard remain.
    wait_for(
        &fleet,
        "finished parents to be cleaned",
        Duration::from_secs(30),
        |leases| {
            leases.iter().all(|l| {
                l.lease_key != first.shard_id && !children.iter().any(|c| c.shard_id == l.lease_key)
            })
        },
    )
    .await;
    fleet.stop_all();
}

/// Issue 9 §2 on kinesis-mock: P is split into C1 and C2, which are merged into G. Once the
/// leases of P, C1 and C2 are cleaned up, shard syncs (every 500 ms here) must not re-create P:
/// before the fix it was consumed again at every sync for the whole retention period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reshards_never_bring_a_grandparent_back() {
    let mut fleet = Fleet::new(1).await;
    fleet.start(
        "w1",
        &[("CHECKPOINT_EVERY", "5"), ("SHARD_SYNC_INTERVAL_MS", "500")],
    );
    fleet.produce(10, 0..5).await;
    fleet.wait_processed(10, 5, None).await;

    let shards = kinesis_consumer::source::polling::list_all_shards(&fleet.kinesis, &fleet.stream)
        .await
        .expect("shards");
    let parent = shards[0].shard_id.clone();
    let start: u128 = shards[0].starting_hash_key.parse().expect("hash");
    let end: u128 = shards[0].ending_hash_key.parse().expect("hash");
    fleet
        .kinesis
        .split_shard()
        .stream_name(&fleet.stream)
        .shard_to_split(&parent)
        .new_starting_hash_key((start + (end - start) / 2).to_string())
        .send()
        .await
        .expect("split");
    testkit::wait_stream_active(&fleet.kinesis, &fleet.stream).await;
    fleet.produce(10, 5..10).await;
    let shards = kinesis_consumer::source::polling::list_all_shards(&fleet.kinesis, &fleet.stream)
        .await
        .expect("shards");
    let children: Vec<String> = shards
        .iter()
        .filter(|s| s.parent_shard_ids.contains(&parent))
        .map(|s| s.shard_id.clone())
        .collect();
    assert_eq!(children.len(), 2);
    fleet
        .kinesis
        .merge_shards()
        .stream_name(&fleet.stream)
        .shard_to_merge(&children[0])
        .adjacent_shard_to_merge(&children[1])
        .send()
        .await
        .expect("merge");
    testkit::wait_stream_active(&fleet.kinesis, &fleet.stream).await;
    fleet.produce(10, 10..15).await;
    fleet.wait_processed(10, 15, None).await;

    wait_for(
        &fleet,
        "the finished lineage to be cleaned up",
        Duration::from_secs(60),
        |leases| {
            leases
                .iter()
                .all(|l| l.lease_key != parent && !children.contains(&l.lease_key))
        },
    )
    .await;
    // Six shard syncs later, nothing came back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leases = fleet.leases().await;
    assert!(
        leases.iter().all(|l| l.lease_key != parent),
        "the grandparent was re-created: {leases:?}"
    );
    let lines = fleet.lines();
    let deliveries = lines
        .iter()
        .filter(|l| matches!(l, Line::Record { .. }))
        .count();
    let duplicates = assert_first_deliveries_in_order(&lines);
    assert!(
        duplicates.is_empty(),
        "{deliveries} deliveries for 150 records; re-delivered: {duplicates:?}"
    );
    assert_eq!(deliveries, 150);
    fleet.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_dead_lettered_and_the_shard_goes_on() {
    let mut fleet = Fleet::new(1).await;
    let table = fleet.dead_letter_table.clone();
    // The last record of its key: later ones of the key would be set aside behind it
    // (`dead_letter_dynamodb::a_worker_sets_aside_a_dead_lettered_key_across_a_restart`).
    fleet.start("w1", &[("POISON", "pk-3:9"), ("DEAD_LETTER_TABLE", &table)]);
    fleet.produce(5, 0..10).await;
    fleet.wait_processed(5, 10, Some(("pk-3", 9))).await;
    let shard = fleet
        .leases()
        .await
        .first()
        .map(|l| l.lease_key.clone())
        .expect("lease");
    let letters = DynamoDeadLetters::new(fleet.dynamo.clone(), table)
        .list("probe", &shard)
        .await
        .expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].record.data, b"pk-3:9".to_vec());
    assert_eq!(letters[0].attempts, 3);
    assert!(letters[0].error.contains("poison"));
    fleet.stop_all();
}
