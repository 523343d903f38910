//! Publication never stalls on what Kinesis refuses: calls are sized by bytes as well as by
//! count, a record that can never be published lets its stream move on, and a stream that keeps
//! failing does not starve the others. In memory and on moto (DynamoDB) + kinesis-mock.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{
    assert_complete_and_ordered, aws_setup, commit_interleaved, fast_config, memory_setup, streams,
    wait_published, Target,
};
use event_relay::dead_letter::create_relay_dead_letter_table;
use event_relay::sink::{Refusal, MAX_RECORD_BYTES};
use event_relay::{
    CommitHint, DynamoRelayDeadLetters, EventSink, InMemoryRelayDeadLetters, InMemorySink,
    KinesisSink, Relay, RelayConfig, RelayDeadLetters, RelayStats, SinkError,
};
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
        self.inner.mark_published(stream_id, version).await
    }

    async fn defer_publication(
        &self,
        stream_id: &str,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.inner.defer_publication(stream_id, until).await
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
/// versions 1 and 3 of that stream, in order; its head moves past version 2, which is set
/// aside in the relay's dead letters (and counted).
async fn a_record_too_large_for_kinesis_lets_its_stream_move_on(
    setup: Setup,
    dead_letters: Arc<dyn RelayDeadLetters>,
) {
    let (inner, sink, target) = setup;
    let store = Arc::new(LegacyStore::new(inner));
    let ids = streams(5);
    let mut oversized_id = None;
    let poisoned = ids[2].clone();
    commit_interleaved(store.as_ref(), &ids, 3, |events| {
        for e in events {
            if e.stream_id == poisoned && e.version == 2 {
                oversized_id = Some(e.event_id);
            }
        }
    })
    .await;
    store.oversize(&poisoned, 2);
    let relay =
        Relay::new(store.clone(), sink, fast_config()).with_dead_letters(dead_letters.clone());
    let stats = relay.stats();
    let shutdown = CancellationToken::new();
    let (_handle, task) = relay.spawn(shutdown.clone());
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
    let letters = dead_letters.list(100).await.expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(
        (&letter.stream_id, letter.version, Some(letter.event_id)),
        (&poisoned, 2, oversized_id)
    );
    assert!(letter.record_bytes > MAX_RECORD_BYTES, "{letter:?}");
    assert!(letter.reason.contains("1048576"), "{}", letter.reason);
    assert_eq!(RelayStats::get(&stats.dead_lettered), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_record_too_large_for_kinesis_lets_its_stream_move_on() {
    a_record_too_large_for_kinesis_lets_its_stream_move_on(
        memory_setup().await,
        Arc::new(InMemoryRelayDeadLetters::new()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_a_record_too_large_for_kinesis_lets_its_stream_move_on() {
    let client = aws_sdk_dynamodb::Client::new(&testkit::aws_config().await);
    let table = testkit::unique_name("relay-dead-letters");
    assert!(create_relay_dead_letter_table(&client, &table)
        .await
        .expect("create table"));
    assert!(!create_relay_dead_letter_table(&client, &table)
        .await
        .expect("table exists"));
    a_record_too_large_for_kinesis_lets_its_stream_move_on(
        aws_setup().await,
        Arc::new(DynamoRelayDeadLetters::new(client, table)),
    )
    .await;
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
    let relay = Relay::new(store.clone(), sink.clone(), fast_config());
    let dead_letters = relay.dead_letters();
    let shutdown = CancellationToken::new();
    let (_handle, task) = relay.spawn(shutdown.clone());
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
    let letters = dead_letters.list(100).await.expect("dead letters");
    assert_eq!(
        letters
            .iter()
            .map(|l| (l.stream_id.clone(), l.version))
            .collect::<Vec<_>>(),
        vec![(poisoned, 2)]
    );
    assert!(
        letters[0].reason.contains("invalid"),
        "{}",
        letters[0].reason
    );
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
    let stats = relay.stats();
    let committed_pending_since = store
        .stream_head(&stuck[0])
        .await
        .expect("head")
        .expect("exists")
        .pending_since
        .expect("pending");
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
    assert!(head.publish_failures >= 1, "{head:?}");
    // Deferred: its next attempt moved past the commit (compared with the commit, not with
    // the clock: on a slow machine the backoff may already have run out by now).
    assert!(
        head.pending_since
            .is_some_and(|at| at > committed_pending_since),
        "{head:?}"
    );
    assert_eq!(
        RelayStats::get(&stats.streams_deferred),
        u64::from(head.publish_failures)
    );

    // The run loop counts failed sweeps (and logs them at error level).
    let due = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    store
        .defer_publication(&stuck[0], due)
        .await
        .expect("make due");
    let shutdown = CancellationToken::new();
    let (_handle, task) = relay.clone().spawn(shutdown.clone());
    for _ in 0..200 {
        if RelayStats::get(&stats.sweeps_failed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    shutdown.cancel();
    task.await.expect("relay task");
    assert!(RelayStats::get(&stats.sweeps_failed) > 0);
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

/// Kinesis's answers sorted as the relay needs them: a missing stream is unavailable (a
/// configuration or an outage, never a reason to set records aside); a record over the limit
/// is never accepted (AWS refuses the call with `ValidationException`, which is permanent;
/// kinesis-mock refuses the record alone). The relay never sends such a record anyway: it sets
/// it aside before the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_kinesis_refusals_are_sorted_into_invalid_and_unavailable() {
    let config = testkit::aws_config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let stream = testkit::unique_name("quote-events");
    testkit::create_stream(&kinesis, &stream, 1).await;
    let sink = KinesisSink::new(kinesis.clone(), stream.clone());
    let mut oversized = event(1).into_envelope("quote#oversized", 1, OffsetDateTime::now_utc());
    oversized.tracestate = Some("t".repeat(MAX_RECORD_BYTES));
    match sink.publish(std::slice::from_ref(&oversized)).await {
        Err(err) => assert!(err.is_permanent(), "{err:?}"),
        Ok(accepted) => assert_eq!(accepted, vec![false]),
    }

    let fine = event(1).into_envelope("quote#fine", 1, OffsetDateTime::now_utc());
    let missing = KinesisSink::new(kinesis, testkit::unique_name("missing"));
    let err = missing
        .publish(std::slice::from_ref(&fine))
        .await
        .expect_err("no such stream");
    assert!(!err.is_permanent(), "{err:?}");
    assert_eq!(sink.publish(&[fine]).await.expect("published"), vec![true]);
}

/// The in-memory sink refuses whole calls over Kinesis's limits, as Kinesis does: over 500
/// records, over 5 MiB, a record over 1 MiB.
#[tokio::test]
async fn the_in_memory_sink_refuses_what_kinesis_refuses() {
    let sink = InMemorySink::new();
    let envelope = |stream: &str, blob: usize| {
        let mut new = event(1);
        new.data = serde_json::json!({ "blob": "x".repeat(blob) });
        new.into_envelope(stream, 1, OffsetDateTime::now_utc())
    };
    let many: Vec<EventEnvelope> = (0..501).map(|i| envelope(&format!("s{i}"), 1)).collect();
    assert!(sink
        .publish(&many)
        .await
        .expect_err("501 records")
        .is_permanent());
    assert_eq!(
        sink.publish(&many[..500]).await.expect("500 records").len(),
        500
    );
    let big: Vec<EventEnvelope> = (0..6)
        .map(|i| envelope(&format!("b{i}"), 1000 * 1024))
        .collect();
    assert!(sink.publish(&big).await.expect_err("6 MB").is_permanent());
    assert_eq!(sink.publish(&big[..5]).await.expect("5 MB").len(), 5);
    let too_big = envelope("t", MAX_RECORD_BYTES);
    assert!(sink
        .publish(&[too_big])
        .await
        .expect_err("over 1 MiB")
        .is_permanent());
    assert_eq!(sink.records().len(), 505);
}
