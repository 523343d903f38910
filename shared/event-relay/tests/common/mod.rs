//! Set-ups and checks shared by the relay's test binaries.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use event_relay::{EventSink, InMemorySink, KinesisSink, RelayConfig};
use event_store::contract::event;
use event_store::dynamodb::{create_tables, DynamoEventStore, TableNames};
use event_store::ordering::{Observation, StreamPositions};
use event_store::{AppendRequest, EventEnvelope, EventStore, InMemoryEventStore};

pub fn fast_config() -> RelayConfig {
    RelayConfig {
        sweep_interval: Duration::from_millis(100),
        sweep_grace: Duration::from_millis(300),
        max_failed_rounds: 3,
        retry_base: Duration::from_millis(5),
        retry_cap: Duration::from_millis(20),
        ..RelayConfig::default()
    }
}

/// Where the published records can be read back.
pub enum Target {
    Memory(Arc<InMemorySink>),
    Kinesis(aws_sdk_kinesis::Client, String),
}

impl Target {
    pub async fn published(&self) -> Vec<EventEnvelope> {
        match self {
            Target::Memory(sink) => sink.records(),
            Target::Kinesis(client, stream) => testkit::read_all_records(client, stream)
                .await
                .into_iter()
                .map(|r| serde_json::from_slice(&r.data).expect("envelope json"))
                .collect(),
        }
    }
}

pub async fn memory_setup() -> (Arc<dyn EventStore>, Arc<dyn EventSink>, Target) {
    let sink = Arc::new(InMemorySink::new());
    (
        Arc::new(InMemoryEventStore::new()),
        sink.clone(),
        Target::Memory(sink),
    )
}

pub async fn aws_setup() -> (Arc<dyn EventStore>, Arc<dyn EventSink>, Target) {
    let config = testkit::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let tables = TableNames {
        events: testkit::unique_name("events"),
        idempotency: testkit::unique_name("idempotency"),
    };
    create_tables(&dynamo, &tables).await.expect("tables");
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let stream = testkit::unique_name("quote-events");
    testkit::create_stream(&kinesis, &stream, 4).await;
    (
        Arc::new(DynamoEventStore::new(dynamo, tables)),
        Arc::new(KinesisSink::new(kinesis.clone(), stream.clone())),
        Target::Kinesis(kinesis, stream),
    )
}

/// Appends `per_stream` single-event commits to each of `streams` streams, interleaved.
pub async fn commit_interleaved(
    store: &dyn EventStore,
    streams: &[String],
    per_stream: u64,
    mut on_commit: impl FnMut(Vec<EventEnvelope>),
) {
    for version in 0..per_stream {
        for stream_id in streams {
            let outcome = store
                .append(AppendRequest {
                    stream_id: stream_id.clone(),
                    expected_version: version,
                    events: vec![event(version as usize + 1)],
                    idempotency: None,
                    customer_id: None,
                })
                .await
                .expect("append");
            on_commit(outcome.events);
        }
    }
}

/// Checks that the first copy of every version follows all lower versions of its stream and
/// that every committed version was published; returns the number of duplicate copies.
pub fn assert_complete_and_ordered(
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

/// Waits (up to 15 s) until every stream is published up to `version` and no longer pending.
pub async fn wait_published(store: &dyn EventStore, streams: &[String], version: u64) {
    let mut published = 0;
    for _ in 0..300 {
        published = 0;
        for stream_id in streams {
            let head = store
                .stream_head(stream_id)
                .await
                .expect("head")
                .expect("exists");
            if head.published_version >= version && head.pending_since.is_none() {
                published += 1;
            }
        }
        if published == streams.len() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "after 15 s, {published} of {} streams were published up to version {version}",
        streams.len()
    );
}

pub fn streams(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| format!("quote#{}", uuid::Uuid::new_v4()))
        .collect()
}
