//! The relay publishes every committed event exactly in stream order, survives a crash between
//! commit and publication, and catches up after an outage of the target. Each scenario runs on
//! the in-memory adapters and on moto (DynamoDB) + kinesis-mock.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{
    assert_complete_and_ordered, aws_setup, commit_interleaved, fast_config, memory_setup, streams,
    wait_published, Target,
};
use event_relay::{CommitHint, EventSink, InMemorySink, Relay, RelayConfig};
use event_store::contract::event;
use event_store::store::{AppendOutcome, EventPage, IdempotencyRecord, StreamHead};
use event_store::{AppendRequest, EventStore, InMemoryEventStore, StoreError};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

async fn publishes_in_order(setup: (Arc<dyn EventStore>, Arc<dyn EventSink>, Target)) {
    let (store, sink, target) = setup;
    let shutdown = CancellationToken::new();
    let (handle, task) = Relay::new(store.clone(), sink, fast_config()).spawn(shutdown.clone());
    let ids = streams(12);
    commit_interleaved(store.as_ref(), &ids, 5, |events| {
        handle.notify(events);
    })
    .await;
    wait_published(store.as_ref(), &ids, 5).await;
    shutdown.cancel();
    task.await.expect("relay task");
    let published = target.published().await;
    let duplicates = assert_complete_and_ordered(&published, &ids, 5);
    assert_eq!(published.len(), 60 + duplicates);
}

/// A process that committed and died before publishing (no hint ever reaches a relay): the
/// next relay's sweep publishes the stranded events, in order.
async fn crash_after_commit_loses_nothing(
    setup: (Arc<dyn EventStore>, Arc<dyn EventSink>, Target),
) {
    let (store, sink, target) = setup;
    let ids = streams(6);
    commit_interleaved(store.as_ref(), &ids, 3, |_lost_with_the_process| {}).await;
    for id in &ids {
        let head = store.stream_head(id).await.expect("head").expect("exists");
        assert_eq!((head.version, head.published_version), (3, 0));
    }
    let shutdown = CancellationToken::new();
    let (_handle, task) = Relay::new(store.clone(), sink, fast_config()).spawn(shutdown.clone());
    wait_published(store.as_ref(), &ids, 3).await;
    shutdown.cancel();
    task.await.expect("relay task");
    assert_complete_and_ordered(&target.published().await, &ids, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_publishes_in_order() {
    publishes_in_order(memory_setup().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_publishes_in_order() {
    publishes_in_order(aws_setup().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_crash_after_commit_loses_nothing() {
    crash_after_commit_loses_nothing(memory_setup().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_crash_after_commit_loses_nothing() {
    crash_after_commit_loses_nothing(aws_setup().await).await;
}

/// While the target is down, commits still succeed; publication catches up when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_of_the_target_delays_but_loses_nothing() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let sink = Arc::new(InMemorySink::new());
    sink.set_available(false);
    let relay = Relay::new(store.clone(), sink.clone(), fast_config());
    let stats = relay.stats();
    let shutdown = CancellationToken::new();
    let (handle, task) = relay.spawn(shutdown.clone());
    let ids = streams(5);
    commit_interleaved(store.as_ref(), &ids, 4, |events| {
        handle.notify(events);
    })
    .await;
    // Let the relay fail and defer at least once.
    for _ in 0..100 {
        if stats.deferred.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sink.records().is_empty());
    assert!(stats.deferred.load(std::sync::atomic::Ordering::Relaxed) > 0);
    for id in &ids {
        let head = store.stream_head(id).await.expect("head").expect("exists");
        assert_eq!((head.version, head.published_version), (4, 0));
    }
    sink.set_available(true);
    wait_published(store.as_ref(), &ids, 4).await;
    shutdown.cancel();
    task.await.expect("relay task");
    assert_complete_and_ordered(&sink.records(), &ids, 4);
}

/// A target that answers every call `delay` late (Kinesis under load).
#[derive(Debug)]
struct SlowSink {
    inner: Arc<dyn EventSink>,
    delay: Duration,
}

#[async_trait]
impl EventSink for SlowSink {
    async fn publish(
        &self,
        records: &[event_store::EventEnvelope],
    ) -> Result<Vec<bool>, event_relay::SinkError> {
        tokio::time::sleep(self.delay).await;
        self.inner.publish(records).await
    }

    async fn ping(&self) -> Result<(), event_relay::SinkError> {
        self.inner.ping().await
    }
}

/// Stranded streams (their processes died before publishing) are found by the sweep of every
/// process at once. With a target slower than the sweep interval, each sweep used to publish
/// them all again until the first marks landed: one copy per process, more the slower the
/// target. The sweeps' claims leave each stream to one process.
async fn many_sweepers_publish_stranded_events_once(
    setup: (Arc<dyn EventStore>, Arc<dyn EventSink>, Target),
    config: RelayConfig,
) {
    let (store, sink, target) = setup;
    let ids = streams(10);
    commit_interleaved(store.as_ref(), &ids, 3, |_lost_with_the_process| {}).await;
    let slow: Arc<dyn EventSink> = Arc::new(SlowSink {
        inner: sink,
        delay: Duration::from_millis(400),
    });
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (_handle, task) =
            Relay::new(store.clone(), slow.clone(), config.clone()).spawn(shutdown.clone());
        tasks.push(task);
    }
    wait_published(store.as_ref(), &ids, 3).await;
    shutdown.cancel();
    for task in tasks {
        task.await.expect("relay task");
    }
    let published = target.published().await;
    let duplicates = assert_complete_and_ordered(&published, &ids, 3);
    assert_eq!(
        duplicates,
        0,
        "every stranded event published once by six sweeping relays ({} records for 30 events)",
        published.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_many_sweepers_publish_stranded_events_once() {
    many_sweepers_publish_stranded_events_once(memory_setup().await, fast_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_many_sweepers_publish_stranded_events_once() {
    many_sweepers_publish_stranded_events_once(aws_setup().await, fast_config()).await;
}

/// A sweep that outlasts its claim (three rounds of 400 ms against a 300 ms claim) extends it
/// between rounds, so the other sweeps still leave its streams alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_sweep_slower_than_its_claim_keeps_it() {
    let config = RelayConfig {
        sweep_claim: Duration::from_millis(300),
        ..fast_config()
    };
    many_sweepers_publish_stranded_events_once(memory_setup().await, config).await;
}

/// Two relays racing on the same outbox (two event-source tasks) may duplicate records but never
/// reorder the first copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_relays_never_reorder() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let sink = Arc::new(InMemorySink::new());
    let shutdown = CancellationToken::new();
    let (a, task_a) =
        Relay::new(store.clone(), sink.clone(), fast_config()).spawn(shutdown.clone());
    let (b, task_b) =
        Relay::new(store.clone(), sink.clone(), fast_config()).spawn(shutdown.clone());
    let ids = streams(8);
    let mut which = 0;
    commit_interleaved(store.as_ref(), &ids, 6, |events| {
        which += 1;
        if which % 2 == 0 {
            a.notify(events)
        } else {
            b.notify(events)
        };
    })
    .await;
    wait_published(store.as_ref(), &ids, 6).await;
    shutdown.cancel();
    task_a.await.expect("relay a");
    task_b.await.expect("relay b");
    let records = sink.records();
    assert_complete_and_ordered(&records, &ids, 6);
    let mut per_stream: HashMap<&str, usize> = HashMap::new();
    for r in &records {
        *per_stream.entry(&r.stream_id).or_default() += 1;
    }
    assert!(per_stream.values().all(|&n| n >= 6));
}

/// An in-memory store whose per-stream relay calls (`stream_head`, `read_page`,
/// `mark_published`) are slow and observed: how many run at once, whether one stream is ever in
/// two at once, and marks that fail for chosen streams.
#[derive(Debug, Default)]
struct ObservedStore {
    inner: InMemoryEventStore,
    state: Mutex<Observed>,
}

#[derive(Debug, Default)]
struct Observed {
    in_flight: usize,
    max_in_flight: usize,
    streams_in_flight: HashSet<String>,
    overlapped: Vec<String>,
    failing_marks: HashSet<String>,
    marks: usize,
}

impl ObservedStore {
    fn observe(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.state.lock().expect("observed state")
    }

    async fn slow_call<T>(&self, stream_id: &str, call: impl std::future::Future<Output = T>) -> T {
        {
            let mut s = self.observe();
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
            if !s.streams_in_flight.insert(stream_id.to_owned()) {
                s.overlapped.push(stream_id.to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let result = call.await;
        let mut s = self.observe();
        s.in_flight -= 1;
        s.streams_in_flight.remove(stream_id);
        result
    }
}

#[async_trait]
impl EventStore for ObservedStore {
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
        self.slow_call(
            stream_id,
            self.inner
                .read_page(stream_id, after_version, up_to_version, limit),
        )
        .await
    }

    async fn stream_head(&self, stream_id: &str) -> Result<Option<StreamHead>, StoreError> {
        self.slow_call(stream_id, self.inner.stream_head(stream_id))
            .await
    }

    async fn scan_events(
        &self,
        part: event_store::ScanPart,
        after: Option<&event_store::ScanCursor>,
        limit: usize,
    ) -> Result<event_store::ScanPage, StoreError> {
        self.inner.scan_events(part, after, limit).await
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
        let fail = {
            let mut s = self.observe();
            s.marks += 1;
            s.failing_marks.contains(stream_id)
        };
        self.slow_call(stream_id, async {
            if fail {
                Err(StoreError::corrupt(format!(
                    "injected failure marking {stream_id}"
                )))
            } else {
                self.inner.mark_published(stream_id, version).await
            }
        })
        .await
    }

    async fn claim_publication(
        &self,
        stream_id: &str,
        seen: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.inner.claim_publication(stream_id, seen, until).await
    }
}

fn concurrent_config(store_concurrency: usize) -> RelayConfig {
    RelayConfig {
        sweep_grace: Duration::ZERO,
        store_concurrency,
        ..fast_config()
    }
}

/// Commits one event to each stream and returns the hints an appender would send.
async fn commit_new_streams(store: &dyn EventStore, ids: &[String]) -> Vec<CommitHint> {
    let mut hints = Vec::new();
    commit_interleaved(store, ids, 1, |events| hints.push(CommitHint { events })).await;
    hints
}

/// Heads are marked published concurrently, never more than `store_concurrency` at once and
/// never two calls for one stream at once; reads of swept streams likewise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_stream_store_calls_run_concurrently_within_the_bound() {
    let store = Arc::new(ObservedStore::default());
    let sink = Arc::new(InMemorySink::new());
    let relay = Relay::new(store.clone(), sink.clone(), concurrent_config(4));
    let ids = streams(40);
    let hints = commit_new_streams(store.as_ref(), &ids).await;
    relay.publish_hints(hints).await.expect("publish");
    {
        let s = store.observe();
        assert_eq!(s.marks, 40);
        assert!(
            (2..=4).contains(&s.max_in_flight),
            "{} marks at once",
            s.max_in_flight
        );
        assert!(
            s.overlapped.is_empty(),
            "overlapping calls: {:?}",
            s.overlapped
        );
    }
    wait_published(store.as_ref(), &ids, 1).await;

    // Stranded commits (no hint): the sweep reads the streams concurrently, too.
    store.observe().max_in_flight = 0;
    for expected_version in 1..3 {
        for stream_id in &ids {
            store
                .append(AppendRequest {
                    stream_id: stream_id.clone(),
                    expected_version,
                    events: vec![event(expected_version as usize + 1)],
                    idempotency: None,
                    customer_id: None,
                })
                .await
                .expect("append");
        }
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(relay.sweep_once().await.expect("sweep"), 40);
    {
        let s = store.observe();
        assert!(
            (2..=4).contains(&s.max_in_flight),
            "{} calls at once",
            s.max_in_flight
        );
        assert!(
            s.overlapped.is_empty(),
            "overlapping calls: {:?}",
            s.overlapped
        );
    }
    wait_published(store.as_ref(), &ids, 3).await;
    assert_complete_and_ordered(&sink.records(), &ids, 3);
}

/// A mark that fails leaves its head unpublished (the others are still marked); the sweep
/// publishes that stream again: a duplicate, never a loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_mark_leaves_the_stream_to_the_sweep() {
    let store = Arc::new(ObservedStore::default());
    let sink = Arc::new(InMemorySink::new());
    let relay = Relay::new(store.clone(), sink.clone(), concurrent_config(4));
    let ids = streams(10);
    let hints = commit_new_streams(store.as_ref(), &ids).await;
    let failing = ids[3].clone();
    store.observe().failing_marks.insert(failing.clone());
    relay
        .publish_hints(hints)
        .await
        .expect_err("the failed mark is reported");
    assert_eq!(store.observe().marks, 10, "every mark is attempted");
    for id in &ids {
        let head = store.stream_head(id).await.expect("head").expect("exists");
        let expected = if *id == failing { 0 } else { 1 };
        assert_eq!(head.published_version, expected, "{id}");
    }
    store.observe().failing_marks.clear();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(relay.sweep_once().await.expect("sweep"), 1);
    wait_published(store.as_ref(), &ids, 1).await;
    let records = sink.records();
    assert_eq!(assert_complete_and_ordered(&records, &ids, 1), 1);
    assert_eq!(records.iter().filter(|r| r.stream_id == failing).count(), 2);
}
