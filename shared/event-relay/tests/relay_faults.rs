//! The relay on moto (DynamoDB) + kinesis-mock behind the fault proxy (`testkit::fault_proxy`):
//! throttled and partially refused `PutRecords`, failing, dropped and hung `UpdateItem`s (the
//! outbox marks) and hung publications delay publication but lose nothing, and the first copy
//! of every event still arrives in version order per stream. The store and the sink use the
//! platform's SDK policy (`quote_runtime::aws::load_sdk_config`: its retries and timeouts).

use std::sync::Arc;
use std::time::{Duration, Instant};

use event_relay::{EventSink, KinesisSink, Relay, RelayConfig};
use event_store::contract::event;
use event_store::dynamodb::{create_tables, DynamoEventStore, TableNames};
use event_store::ordering::{Observation, StreamPositions};
use event_store::{AppendRequest, EventEnvelope, EventStore};
use testkit::fault_proxy::{AwsError, Fault, FaultProxy, Rule};
use tokio_util::sync::CancellationToken;

const PUT_RECORDS: &str = "Kinesis_20131202.PutRecords";
const UPDATE_ITEM: &str = "DynamoDB_20120810.UpdateItem";

fn config() -> RelayConfig {
    RelayConfig {
        sweep_interval: Duration::from_millis(200),
        sweep_grace: Duration::from_millis(500),
        max_failed_rounds: 3,
        retry_base: Duration::from_millis(20),
        retry_cap: Duration::from_millis(200),
        ..RelayConfig::default()
    }
}

/// The relay's world: a store and a sink that go through the proxies, and direct clients to
/// check what happened.
struct Faulty {
    dynamo_proxy: FaultProxy,
    kinesis_proxy: FaultProxy,
    /// The store as the relay sees it (through the DynamoDB proxy).
    store: Arc<dyn EventStore>,
    /// The store read directly (for the checks).
    direct_store: DynamoEventStore,
    sink: Arc<dyn EventSink>,
    kinesis: aws_sdk_kinesis::Client,
    stream: String,
}

impl Faulty {
    async fn new() -> Self {
        let direct = testkit::aws_config().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&direct);
        let tables = TableNames {
            events: testkit::unique_name("events"),
            idempotency: testkit::unique_name("idempotency"),
        };
        create_tables(&dynamo, &tables).await.expect("tables");
        let kinesis = aws_sdk_kinesis::Client::new(&direct);
        let stream = testkit::unique_name("faults");
        testkit::create_stream(&kinesis, &stream, 4).await;

        let dynamo_proxy = FaultProxy::in_front_of("AWS_ENDPOINT_URL_DYNAMODB").await;
        let kinesis_proxy = FaultProxy::in_front_of("AWS_ENDPOINT_URL_KINESIS").await;
        let platform = quote_runtime::aws::load_sdk_config().await;
        let faulty_dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&platform)
                .endpoint_url(dynamo_proxy.url())
                .build(),
        );
        let faulty_kinesis = aws_sdk_kinesis::Client::from_conf(
            aws_sdk_kinesis::config::Builder::from(&platform)
                .endpoint_url(kinesis_proxy.url())
                .build(),
        );
        Self {
            dynamo_proxy,
            kinesis_proxy,
            store: Arc::new(DynamoEventStore::new(faulty_dynamo, tables.clone())),
            direct_store: DynamoEventStore::new(dynamo, tables),
            sink: Arc::new(KinesisSink::new(faulty_kinesis, stream.clone())),
            kinesis,
            stream,
        }
    }

    /// Commits `per_stream` single-event commits to each of `streams` (directly: appends are
    /// not under test), interleaved, handing each to the relay as a hint, with `pause` after
    /// each round of commits.
    async fn commit(
        &self,
        handle: &event_relay::RelayHandle,
        streams: &[String],
        per_stream: u64,
        pause: Duration,
    ) {
        for version in 0..per_stream {
            for stream_id in streams {
                let outcome = self
                    .direct_store
                    .append(AppendRequest {
                        stream_id: stream_id.clone(),
                        expected_version: version,
                        events: vec![event(version as usize + 1)],
                        idempotency: None,
                        customer_id: None,
                    })
                    .await
                    .expect("append");
                handle.notify(outcome.events);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Waits (up to `timeout`) until every stream is published up to `version`.
    async fn wait_published(&self, streams: &[String], version: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut behind = Vec::new();
            for stream_id in streams {
                let head = self
                    .direct_store
                    .stream_head(stream_id)
                    .await
                    .expect("head")
                    .expect("exists");
                if head.published_version < version || head.pending_since.is_some() {
                    behind.push((stream_id.clone(), head.published_version));
                }
            }
            if behind.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not published within {timeout:?}: {behind:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn published(&self) -> Vec<EventEnvelope> {
        testkit::read_all_records(&self.kinesis, &self.stream)
            .await
            .into_iter()
            .map(|r| serde_json::from_slice(&r.data).expect("envelope json"))
            .collect()
    }
}

/// Every committed version was published and the first copy of each follows all lower
/// versions of its stream; returns the number of duplicate copies.
fn assert_complete_and_ordered(
    published: &[EventEnvelope],
    streams: &[String],
    per_stream: u64,
) -> usize {
    let mut positions = StreamPositions::default();
    let mut duplicates = 0;
    for record in published {
        match positions.observe(&record.stream_id, record.version) {
            Observation::Next => positions.applied(&record.stream_id, record.version),
            Observation::Duplicate => duplicates += 1,
            Observation::Gap { from, to } => panic!(
                "{} version {} arrived before versions {from}..={to}",
                record.stream_id, record.version
            ),
        }
    }
    for stream_id in streams {
        assert_eq!(
            positions.last_applied(stream_id),
            per_stream,
            "{stream_id} incomplete"
        );
    }
    duplicates
}

fn streams(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| format!("quote#{}", uuid::Uuid::new_v4()))
        .collect()
}

fn error(error: AwsError) -> Fault {
    Fault::Error { error }
}

/// Throttled and partially refused `PutRecords`, and a window of failing, throttled and
/// dropped-after-applying outbox marks (`UpdateItem`), while 20 quotes commit 6 events each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_publication_and_failing_marks_lose_nothing_and_keep_order() {
    let world = Faulty::new().await;
    let seconds = Duration::from_secs;
    let kinesis = &world.kinesis_proxy;
    kinesis.add(
        Rule::new(error(AwsError::ProvisionedThroughputExceeded))
            .operation(PUT_RECORDS)
            .rate(0.5)
            .window(Duration::ZERO, seconds(4)),
    );
    kinesis.add(
        Rule::new(Fault::PartialFailure { fraction: 0.4 })
            .operation(PUT_RECORDS)
            .rate(0.7)
            .window(Duration::ZERO, seconds(6)),
    );
    let dynamo = &world.dynamo_proxy;
    dynamo.add(
        Rule::new(error(AwsError::InternalServerError))
            .operation(UPDATE_ITEM)
            .rate(0.5)
            .window(seconds(1), seconds(4)),
    );
    dynamo.add(
        Rule::new(error(AwsError::Throttling))
            .operation(UPDATE_ITEM)
            .rate(0.5)
            .window(seconds(1), seconds(4)),
    );
    dynamo.add(
        Rule::new(Fault::DropResponse)
            .operation(UPDATE_ITEM)
            .rate(0.2)
            .window(seconds(1), seconds(4)),
    );

    let shutdown = CancellationToken::new();
    let (handle, task) =
        Relay::new(world.store.clone(), world.sink.clone(), config()).spawn(shutdown.clone());
    let ids = streams(20);
    world
        .commit(&handle, &ids, 6, Duration::from_millis(500))
        .await;
    world.wait_published(&ids, 6, seconds(90)).await;
    shutdown.cancel();
    task.await.expect("relay task");

    let published = world.published().await;
    let duplicates = assert_complete_and_ordered(&published, &ids, 6);
    let kinesis_stats = world.kinesis_proxy.stats();
    let dynamo_stats = world.dynamo_proxy.stats();
    eprintln!(
        "120 events published ({duplicates} duplicates) through {} PutRecords faults and {} \
         UpdateItem faults: {kinesis_stats:?} {dynamo_stats:?}",
        kinesis_stats.injected_for(PUT_RECORDS),
        dynamo_stats.injected_for(UPDATE_ITEM),
    );
    assert!(kinesis_stats.injected_for(PUT_RECORDS) > 0);
    assert!(dynamo_stats.injected_for(UPDATE_ITEM) > 0);
}

/// A `PutRecords` and an outbox mark that hang (the connection held, no answer) cost one SDK
/// attempt timeout each; the streams behind them are published afterwards, the others meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_calls_delay_publication_but_lose_nothing() {
    let world = Faulty::new().await;
    world.kinesis_proxy.add(
        Rule::new(Fault::Hang { ms: 60_000 })
            .operation(PUT_RECORDS)
            .limit(1),
    );
    world.dynamo_proxy.add(
        Rule::new(Fault::Hang { ms: 60_000 })
            .operation(UPDATE_ITEM)
            .limit(1),
    );
    let shutdown = CancellationToken::new();
    let (handle, task) =
        Relay::new(world.store.clone(), world.sink.clone(), config()).spawn(shutdown.clone());
    let ids = streams(8);
    world
        .commit(&handle, &ids, 3, Duration::from_millis(200))
        .await;
    world.wait_published(&ids, 3, Duration::from_secs(90)).await;
    shutdown.cancel();
    task.await.expect("relay task");
    assert_complete_and_ordered(&world.published().await, &ids, 3);
    assert_eq!(world.kinesis_proxy.stats().injected_for(PUT_RECORDS), 1);
    assert_eq!(world.dynamo_proxy.stats().injected_for(UPDATE_ITEM), 1);
}
