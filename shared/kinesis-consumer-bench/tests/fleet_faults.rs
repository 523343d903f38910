//! Worker processes (`kinesis-consumer-probe`) on kinesis-mock + moto (DynamoDB), talking to
//! both through the fault proxy (`testkit::fault_proxy`): throttled `GetRecords`,
//! `GetShardIterator` and lease-table writes, a worker killed with SIGKILL, and one lease's
//! renewal hung. Checked against what every worker recorded: every record delivered, the first
//! delivery of each in order per key, and leases that move when (and only when) they should.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kinesis_consumer::lease_table::{create_lease_table, DynamoLeaseTable};
use kinesis_consumer::{Lease, LeaseTable};
use testkit::fault_proxy::{AwsError, Fault, FaultProxy, Rule};

const UPDATE_ITEM: &str = "DynamoDB_20120810.UpdateItem";
const GET_RECORDS: &str = "Kinesis_20131202.GetRecords";
const GET_SHARD_ITERATOR: &str = "Kinesis_20131202.GetShardIterator";

/// A processed record as the probe wrote it (`R <worker> <shard> <sequence> <fencing> <key>:<n>`).
#[derive(Debug, Clone)]
struct Delivery {
    worker: String,
    shard: String,
    sequence: String,
    key: String,
    n: u64,
}

/// The workers, the stream they read, and the proxies in front of the emulators.
struct Fleet {
    kinesis: aws_sdk_kinesis::Client,
    leases: DynamoLeaseTable,
    stream: String,
    lease_table: String,
    output: PathBuf,
    workers: BTreeMap<String, Child>,
    /// In front of moto's DynamoDB (the lease table).
    dynamo_proxy: FaultProxy,
    /// In front of kinesis-mock.
    kinesis_proxy: FaultProxy,
}

impl Fleet {
    async fn new(shards: i32) -> Self {
        let config = testkit::aws_config().await;
        let kinesis = aws_sdk_kinesis::Client::new(&config);
        let dynamo = aws_sdk_dynamodb::Client::new(&config);
        let stream = testkit::unique_name("fleet-faults");
        testkit::create_stream(&kinesis, &stream, shards).await;
        let lease_table = testkit::unique_name("fault-probe-leases");
        create_lease_table(&dynamo, &lease_table)
            .await
            .expect("lease table");
        let output = std::env::temp_dir().join(format!("{}.log", testkit::unique_name("probe")));
        Self {
            leases: DynamoLeaseTable::new(dynamo, lease_table.clone()),
            kinesis,
            stream,
            lease_table,
            output,
            workers: BTreeMap::new(),
            dynamo_proxy: FaultProxy::in_front_of("AWS_ENDPOINT_URL_DYNAMODB").await,
            kinesis_proxy: FaultProxy::in_front_of("AWS_ENDPOINT_URL_KINESIS").await,
        }
    }

    /// Starts a worker whose AWS calls go through `dynamo` and `kinesis` (proxies or the
    /// emulators themselves).
    fn start_via(&mut self, worker: &str, dynamo: &str, kinesis: &str) {
        let child = Command::new(env!("CARGO_BIN_EXE_kinesis-consumer-probe"))
            .env("STREAM_NAME", &self.stream)
            .env("LEASE_TABLE", &self.lease_table)
            .env("WORKER_ID", worker)
            .env("PROBE_OUTPUT", &self.output)
            .env("LEASE_DURATION_MS", "3000")
            .env("CHECKPOINT_EVERY", "25")
            .env("AWS_ENDPOINT_URL_DYNAMODB", dynamo)
            .env("AWS_ENDPOINT_URL_KINESIS", kinesis)
            .env(
                "RUST_LOG",
                std::env::var("PROBE_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start probe");
        self.workers.insert(worker.to_owned(), child);
    }

    /// Starts a worker behind both proxies.
    fn start(&mut self, worker: &str) {
        let (dynamo, kinesis) = (self.dynamo_proxy.url(), self.kinesis_proxy.url());
        self.start_via(worker, &dynamo, &kinesis);
    }

    fn kill_9(&mut self, worker: &str) {
        if let Some(mut child) = self.workers.remove(worker) {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    /// Puts `key:n` for every key and number, in order per key (directly: producing is not
    /// under test).
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

    fn deliveries(&self) -> Vec<Delivery> {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let parts: Vec<&str> = line.splitn(6, ' ').collect();
                let ["R", worker, shard, sequence, _fencing, data] = parts.as_slice() else {
                    return None;
                };
                let (key, n) = data.split_once(':')?;
                Some(Delivery {
                    worker: (*worker).to_owned(),
                    shard: (*shard).to_owned(),
                    sequence: (*sequence).to_owned(),
                    key: key.to_owned(),
                    n: n.parse().ok()?,
                })
            })
            .collect()
    }

    /// Waits (up to `timeout`) until every key has every number below `end`.
    async fn wait_processed(&self, keys: usize, end: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen: HashMap<String, HashSet<u64>> = HashMap::new();
            for d in self.deliveries() {
                seen.entry(d.key).or_default().insert(d.n);
            }
            let missing: usize = (0..keys)
                .map(|k| {
                    let have = seen.get(&format!("pk-{k}"));
                    (0..end)
                        .filter(|n| !have.is_some_and(|s| s.contains(n)))
                        .count()
                })
                .sum();
            if missing == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{missing} records not processed within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn leases(&self) -> Vec<Lease> {
        self.leases.list().await.expect("leases")
    }

    /// Waits (up to `timeout`) until the leases satisfy `check`.
    async fn wait_leases(&self, what: &str, timeout: Duration, check: impl Fn(&[Lease]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if check(&self.leases().await) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

/// Per key, the first delivery of each number comes in order; returns the re-deliveries.
fn assert_first_deliveries_in_order(deliveries: &[Delivery]) -> usize {
    let mut next: HashMap<&str, u64> = HashMap::new();
    let mut delivered: HashSet<(&str, &str)> = HashSet::new();
    let mut again = 0;
    for d in deliveries {
        if !delivered.insert((&d.shard, &d.sequence)) {
            again += 1;
            continue;
        }
        let expected = next.entry(&d.key).or_insert(0);
        assert_eq!(
            d.n, *expected,
            "{}: first delivery of {} (to {}) came before {expected}",
            d.key, d.n, d.worker
        );
        *expected += 1;
    }
    again
}

fn owners(leases: &[Lease]) -> HashSet<String> {
    leases
        .iter()
        .filter_map(|l| l.lease_owner.clone())
        .collect()
}

fn throttle() -> Fault {
    Fault::Error {
        error: AwsError::ProvisionedThroughputExceeded,
    }
}

/// Two workers whose reads (`GetRecords`, `GetShardIterator`) and lease-table writes are
/// throttled at a third of the calls, for the whole run; one is killed with SIGKILL mid-stream.
/// Every record is delivered, first deliveries stay in order per key, and the dead worker's
/// leases move to the survivor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_reads_and_lease_writes_deliver_everything_and_leases_move() {
    let mut fleet = Fleet::new(4).await;
    fleet
        .kinesis_proxy
        .add(Rule::new(throttle()).operation(GET_RECORDS).rate(0.3));
    fleet.kinesis_proxy.add(
        Rule::new(Fault::Error {
            error: AwsError::LimitExceeded,
        })
        .operation(GET_SHARD_ITERATOR)
        .rate(0.2),
    );
    fleet
        .dynamo_proxy
        .add(Rule::new(throttle()).operation(UPDATE_ITEM).rate(0.3));
    fleet.dynamo_proxy.add(
        Rule::new(Fault::Latency { ms: 200 })
            .operation("DynamoDB_20120810.")
            .rate(0.2),
    );
    fleet.start("w1");
    fleet.start("w2");
    fleet
        .wait_leases(
            "leases spread over both workers",
            Duration::from_secs(60),
            |l| l.len() == 4 && owners(l).len() == 2,
        )
        .await;
    for step in 0..4 {
        fleet.produce(30, step * 10..step * 10 + 10).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    fleet.wait_processed(30, 20, Duration::from_secs(90)).await;
    fleet.kill_9("w1");
    fleet.produce(30, 40..60).await;
    fleet
        .wait_leases("w1's leases to move to w2", Duration::from_secs(60), |l| {
            l.iter()
                .all(|lease| lease.lease_owner.as_deref() == Some("w2"))
        })
        .await;
    fleet.wait_processed(30, 60, Duration::from_secs(120)).await;
    let again = assert_first_deliveries_in_order(&fleet.deliveries());
    let kinesis = fleet.kinesis_proxy.stats();
    let dynamo = fleet.dynamo_proxy.stats();
    eprintln!(
        "1800 records delivered, {again} again; faults injected: GetRecords {}, \
         GetShardIterator {}, UpdateItem {}",
        kinesis.injected_for(GET_RECORDS),
        kinesis.injected_for(GET_SHARD_ITERATOR),
        dynamo.injected_for(UPDATE_ITEM),
    );
    assert!(kinesis.injected_for(GET_RECORDS) > 0);
    assert!(dynamo.injected_for(UPDATE_ITEM) > 0);
    fleet.stop_all();
}

/// Issue 9, hole 4: one lease's `UpdateItem` hangs (the connection held, no answer) while the
/// worker's other leases' calls go through. The worker must lose at most that lease: its other
/// leases stay its own, renewed on time, for the whole hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hung_renewal_costs_a_worker_only_that_lease() {
    let mut fleet = Fleet::new(4).await;
    fleet.start("w1");
    // w2 talks to the emulators directly: only w1's calls are faulted.
    let (dynamo, kinesis) = (
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("dynamodb endpoint"),
        std::env::var("AWS_ENDPOINT_URL_KINESIS").expect("kinesis endpoint"),
    );
    fleet.start_via("w2", &dynamo, &kinesis);
    fleet
        .wait_leases(
            "leases spread over both workers",
            Duration::from_secs(60),
            |l| {
                l.len() == 4
                    && l.iter()
                        .filter(|lease| lease.lease_owner.as_deref() == Some("w1"))
                        .count()
                        == 2
            },
        )
        .await;
    let leases = fleet.leases().await;
    let mut w1: Vec<String> = leases
        .iter()
        .filter(|l| l.lease_owner.as_deref() == Some("w1"))
        .map(|l| l.lease_key.clone())
        .collect();
    w1.sort();
    let (hung, kept) = (w1[0].clone(), w1[1].clone());
    fleet.dynamo_proxy.add(
        Rule::new(Fault::Hang { ms: 60_000 })
            .operation(UPDATE_ITEM)
            .body_contains(&format!("\"{hung}\"")),
    );
    fleet.produce(10, 0..10).await;
    // Three lease durations: long enough for w2 to take every lease w1 fails to renew.
    let watch_until = Instant::now() + Duration::from_secs(9);
    let mut lost = None;
    while Instant::now() < watch_until && lost.is_none() {
        let now = fleet.leases().await;
        lost = now
            .iter()
            .find(|l| l.lease_key == kept && l.lease_owner.as_deref() != Some("w1"))
            .cloned();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let injected = fleet.dynamo_proxy.stats().injected_for(UPDATE_ITEM);
    fleet.dynamo_proxy.clear();
    assert!(injected > 0, "the hung lease's renewal was never attempted");
    assert!(
        lost.is_none(),
        "w1 lost {kept}, whose renewals were not faulted, while only {hung}'s hung: {lost:?}"
    );
    fleet.wait_processed(10, 10, Duration::from_secs(60)).await;
    assert_first_deliveries_in_order(&fleet.deliveries());
    fleet.stop_all();
}
