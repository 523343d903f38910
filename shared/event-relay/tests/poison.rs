//! Publication never stalls on what Kinesis refuses: calls are sized by bytes as well as by
//! count, a record that can never be published lets its stream move on, and a stream that keeps
//! failing does not starve the others. In memory and on DynamoDB Local + kinesis-mock.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{
    assert_complete_and_ordered, aws_setup, commit_interleaved, fast_config, memory_setup, streams,
    wait_published, Target,
};
use event_relay::sink::Refusal;
use event_relay::{CommitHint, EventSink, InMemorySink, Relay, RelayConfig, SinkError};
use event_store::contract::event;
use event_store::store::{AppendOutcome, EventPage, IdempotencyRecord, StreamHead};
use event_store::{AppendRequest, EventEnvelope, EventStore, InMemoryEventStore, StoreError};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

type Setup = (Arc<dyn EventStore>, Arc<dyn EventSink>, Target);

/// Commits one event of about 40 KB to each of 160 streams with no hint (as a crashed process
/// leaves them): the sweep finds them all at once, 6.4 MB of records for one round, more than
/// one `PutRecords` call may carry (5 MiB).
async fn calls_over_five_mib_are_split_by_bytes(setup: Setup) {
    let (store, sink, target) = setup;
    let ids = streams(160);
    for stream_id in &ids {
        let mut big = event(1);
        big.data = serde_json::json!({ "blob": "x".repeat(40 * 1024) });
        store
            .append(AppendRequest {
                stream_id: stream_id.clone(),
                expected_version: 0,
                events: vec![big],
                idempotency: None,
                customer_id: None,
            })
            .await
            .expect("append");
    }
    // All of them older than the grace period: the first sweep takes the 160 together.
    let config = fast_config();
    tokio::time::sleep(config.sweep_grace + Duration::from_millis(100)).await;
    let shutdown = CancellationToken::new();
    let (_handle, task) = Relay::new(store.clone(), sink, config).spawn(shutdown.clone());
    wait_published(store.as_ref(), &ids, 1).await;
    shutdown.cancel();
    task.await.expect("relay task");
    assert_complete_and_ordered(&target.published().await, &ids, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_calls_over_five_mib_are_split_by_bytes() {
    calls_over_five_mib_are_split_by_bytes(memory_setup().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_calls_over_five_mib_are_split_by_bytes() {
    calls_over_five_mib_are_split_by_bytes(aws_setup().await).await;
}

/// A store whose chosen events come back with 1.2 MB of trace state: events committed before
/// the store checked whole envelopes, too large for a Kinesis record.
#[derive(Debug)]
struct LegacyStore {
    inner: Arc<dyn EventStore>,
    oversized: Mutex<HashSet<(String, u64)>>,
}

impl LegacyStore {
    fn new(inner: Arc<dyn EventStore>) -> Self {
        Self {
            inner,
            oversized: Mutex::default(),
        }
    }

    fn oversize(&self, stream_id: &str, version: u64) {
        self.oversized
            .lock()
            .expect("oversized")
            .insert((stream_id.to_owned(), version));
    }
}

#[async_trait]
impl EventStore for LegacyStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.inner.append(request).await
    }

    async fn read_page(
        &self,
        stream_id: &str,
        after_version: u64,
        up_to_version: Option<u64>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let mut page = self
            .inner
            .read_page(stream_id, after_version, up_to_version, limit)
            .await?;
        let oversized = self.oversized.lock().expect("oversized").clone();
        for event in &mut page.events {
            if oversized.contains(&(event.stream_id.clone(), event.version)) {
                event.tracestate = Some("\u{1}".repeat(200 * 1024));
            }
        }
        Ok(page)
    }

    async fn stream_head(&self, stream_id: &str) -> Result<Option<StreamHead>, StoreError> {
        self.inner.stream_head(stream_id).await
    }

    async fn idempotency_record(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency_record(key).await
    }

    async fn unpublished_streams(
        &self,
        pending_before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<StreamHead>, StoreError> {
        self.inner.unpublished_streams(pending_before, limit).await
    }

    async fn mark_published(&self, stream_id: &str, version: u64) -> Result<(), StoreError> {
        self.inner.mark_published(stream_id, version).await
    }

    async fn defer_publication(
        &self,
        stream_id: &str,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.inner.defer_publication(stream_id, until).await
    }
}

/// The first copy of each version published, per stream.
fn versions_published(published: &[EventEnvelope]) -> BTreeMap<String, Vec<u64>> {
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for record in published {
        let seen = versions.entry(record.stream_id.clone()).or_default();
        if !seen.contains(&record.version) {
            seen.push(record.version);
        }
    }
    versions
}

/// Version 2 of one stream is too large for Kinesis: the other streams publish, and so do
/// versions 1 and 3 of that stream, in order; its head moves past version 2.
async fn a_record_too_large_for_kinesis_lets_its_stream_move_on(setup: Setup) {
    let (inner, sink, target) = setup;
    let store = Arc::new(LegacyStore::new(inner));
    let ids = streams(5);
    commit_interleaved(store.as_ref(), &ids, 3, |_stranded| {}).await;
    let poisoned = ids[2].clone();
    store.oversize(&poisoned, 2);
    let shutdown = CancellationToken::new();
    let (_handle, task) = Relay::new(store.clone(), sink, fast_config()).spawn(shutdown.clone());
    wait_published(store.as_ref(), &ids, 3).await;
    shutdown.cancel();
    task.await.expect("relay task");
    let versions = versions_published(&target.published().await);
    for id in &ids {
        let expected = if *id == poisoned {
            vec![1, 3]
        } else {
            vec![1, 2, 3]
        };
        assert_eq!(versions.get(id), Some(&expected), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_record_too_large_for_kinesis_lets_its_stream_move_on() {
    a_record_too_large_for_kinesis_lets_its_stream_move_on(memory_setup().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_a_record_too_large_for_kinesis_lets_its_stream_move_on() {
    a_record_too_large_for_kinesis_lets_its_stream_move_on(aws_setup().await).await;
}

/// The target refuses every call carrying version 2 of one stream as invalid: the other
/// records of those calls are published, and the stream moves past version 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_refused_as_invalid_does_not_block_its_call_or_its_stream() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let sink = Arc::new(InMemorySink::new());
    let ids = streams(8);
    let poisoned = ids[5].clone();
    let mut invalid = None;
    commit_interleaved(store.as_ref(), &ids, 3, |events| {
        for e in events {
            if e.stream_id == poisoned && e.version == 2 {
                invalid = Some(e.event_id);
            }
        }
    })
    .await;
    sink.refuse_event(invalid.expect("committed"), Some(Refusal::Invalid));
    let shutdown = CancellationToken::new();
    let (_handle, task) =
        Relay::new(store.clone(), sink.clone(), fast_config()).spawn(shutdown.clone());
    wait_published(store.as_ref(), &ids, 3).await;
    shutdown.cancel();
    task.await.expect("relay task");
    let versions = versions_published(&sink.records());
    for id in &ids {
        let expected = if *id == poisoned {
            vec![1, 3]
        } else {
            vec![1, 2, 3]
        };
        assert_eq!(versions.get(id), Some(&expected), "{id}");
    }
}

/// A sink that refuses every record of one stream on its own, for ever (as a throttled
/// record is refused), and forwards everything else.
#[derive(Debug)]
struct StuckSink {
    inner: Arc<dyn EventSink>,
    stuck: String,
}

#[async_trait]
impl EventSink for StuckSink {
    async fn publish(&self, records: &[EventEnvelope]) -> Result<Vec<bool>, SinkError> {
        let others: Vec<EventEnvelope> = records
            .iter()
            .filter(|r| r.stream_id != self.stuck)
            .cloned()
            .collect();
        let mut accepted = self.inner.publish(&others).await?.into_iter();
        Ok(records
            .iter()
            .map(|r| r.stream_id != self.stuck && accepted.next().unwrap_or(false))
            .collect())
    }

    async fn ping(&self) -> Result<(), SinkError> {
        self.inner.ping().await
    }
}

/// One stream among many can never be published right now, and it is the oldest; each sweep
/// takes one stream. The sweeps that fail on it say so, and every other stream drains.
async fn a_stuck_stream_does_not_starve_the_others(setup: Setup) {
    let (store, sink, _target) = setup;
    let stuck = streams(1);
    commit_interleaved(store.as_ref(), &stuck, 1, |_stranded| {}).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let others = streams(20);
    commit_interleaved(store.as_ref(), &others, 1, |_stranded| {}).await;
    let sink = Arc::new(StuckSink {
        inner: sink,
        stuck: stuck[0].clone(),
    });
    let config = RelayConfig {
        sweep_batch: 1,
        sweep_grace: Duration::ZERO,
        ..fast_config()
    };
    let relay = Relay::new(store.clone(), sink, config);
    let mut failed_sweeps = 0;
    for _ in 0..60 {
        if relay.sweep_once().await.is_err() {
            failed_sweeps += 1;
        }
    }
    wait_published(store.as_ref(), &others, 1).await;
    assert!(failed_sweeps > 0, "a sweep that could not publish said so");
    let head = store
        .stream_head(&stuck[0])
        .await
        .expect("head")
        .expect("exists");
    assert_eq!(head.published_version, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_stuck_stream_does_not_starve_the_others() {
    a_stuck_stream_does_not_starve_the_others(memory_setup().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_a_stuck_stream_does_not_starve_the_others() {
    a_stuck_stream_does_not_starve_the_others(aws_setup().await).await;
}

/// Issue 9's scenario at the store and relay level: about 160 quotes requested at once, each
/// carrying a 16 KiB request id (copied into the correlation and causation ids), appended
/// concurrently; their hints reach the relay together (as they queue while it is busy with a
/// call): about 5.3 MB of records in one batch. Then the relay runs its sweeps. Every event
/// must be published; prints how long that took.
async fn concurrent_quotes_with_big_request_ids_all_publish(setup: Setup) {
    let (store, sink, target) = setup;
    let relay = Relay::new(store.clone(), sink, fast_config());
    let stats = relay.stats();
    let ids = streams(160);
    let started = std::time::Instant::now();
    let mut appends = tokio::task::JoinSet::new();
    for stream_id in ids.clone() {
        let store = store.clone();
        appends.spawn(async move {
            let request_id = format!("req-{}", "r".repeat(16 * 1024 - 4));
            let mut requested = event(1);
            requested.correlation_id = request_id.clone();
            requested.causation_id = Some(request_id);
            store
                .append(AppendRequest {
                    stream_id,
                    expected_version: 0,
                    events: vec![requested],
                    idempotency: None,
                    customer_id: None,
                })
                .await
                .expect("append")
        });
    }
    let mut hints = Vec::new();
    while let Some(joined) = appends.join_next().await {
        hints.push(CommitHint {
            events: joined.expect("append task").events,
        });
    }
    let appended = started.elapsed();
    let hinted = relay.publish_hints(hints).await;
    let hinted_in = started.elapsed();
    let shutdown = CancellationToken::new();
    let task = relay.clone().spawn(shutdown.clone()).1;
    wait_published(store.as_ref(), &ids, 1).await;
    let elapsed = started.elapsed();
    shutdown.cancel();
    task.await.expect("relay task");
    let published = target.published().await;
    assert_complete_and_ordered(&published, &ids, 1);
    let bytes: usize = published.iter().map(event_relay::sink::record_bytes).sum();
    println!(
        "160 quotes with 16 KiB request ids: appended in {appended:?}; the hints' batch \
         done at {hinted_in:?} ({}); all {} records ({bytes} bytes) published and marked \
         {elapsed:?} after the first append; {} retried, {} batches left to the sweep",
        match &hinted {
            Ok(()) => "reported success".to_owned(),
            Err(err) => format!("reported {err}"),
        },
        published.len(),
        stats.retried.load(std::sync::atomic::Ordering::Relaxed),
        stats.deferred.load(std::sync::atomic::Ordering::Relaxed),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_concurrent_quotes_with_big_request_ids_all_publish() {
    concurrent_quotes_with_big_request_ids_all_publish(memory_setup().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_concurrent_quotes_with_big_request_ids_all_publish() {
    concurrent_quotes_with_big_request_ids_all_publish(aws_setup().await).await;
}
