//! `quotes archive backfill` (`archiver::backfill`): the events recorded before the cut-off,
//! each once, in the relay's format, in scan order; resumable after a crash; once only. On
//! in-memory adapters, and once on the emulators (the event store and the manifest on moto's
//! DynamoDB, the segments on moto's S3).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use archiver::backfill::{backfill_cutoff, Backfill, BackfillError, BackfillReport};
use archiver::ArchiverConfig;
use async_trait::async_trait;
use event_store::contract::event;
use event_store::{
    AppendRequest, EventEnvelope, EventStore, InMemoryEventStore, LoadBound, ScanPart,
};
use kinesis_consumer::Record;
use quote_archive::reader::read_shard;
use quote_archive::{
    InMemoryManifest, InMemoryObjects, Manifest, ObjectStore, ObjectStoreError, ShardWriter,
};
use time::OffsetDateTime;

const STREAM: &str = "quote-events";

fn config(segment_bytes: u64) -> ArchiverConfig {
    ArchiverConfig {
        stream: STREAM.to_owned(),
        prefix: "events/".to_owned(),
        segment_bytes,
        segment_age: Duration::from_secs(60),
    }
}

/// Appends `count` quotes of 1–4 events each; returns their stream ids.
async fn quotes(store: &dyn EventStore, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let id = format!("quote#{}", uuid::Uuid::new_v4());
        let events = (0..1 + i % 4).map(event).collect();
        store
            .append(AppendRequest {
                stream_id: id.clone(),
                expected_version: 0,
                events,
                idempotency: None,
                customer_id: None,
            })
            .await
            .expect("append");
        ids.push(id);
    }
    ids
}

/// Every event of the store, in scan order.
async fn scanned(store: &dyn EventStore) -> Vec<EventEnvelope> {
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scan_events(ScanPart::WHOLE, after.as_ref(), 100)
            .await
            .expect("scan");
        events.extend(page.events);
        match page.next {
            Some(next) => after = Some(next),
            None => return events,
        }
    }
}

/// The backfill shard's records as envelopes, checking each is the relay's record.
async fn backfilled(
    objects: &dyn ObjectStore,
    manifest: &dyn Manifest,
    report: &BackfillReport,
) -> Vec<EventEnvelope> {
    let records = read_shard(objects, manifest, STREAM, &report.shard_id)
        .await
        .expect("read the backfill shard");
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            assert_eq!(record.sequence_number, (i + 1).to_string());
            let envelope: EventEnvelope =
                serde_json::from_slice(&record.data).expect("an envelope");
            assert_eq!(record.partition_key, envelope.stream_id);
            assert_eq!(record.approximate_arrival, Some(envelope.recorded_at));
            assert_eq!(
                record.data,
                serde_json::to_vec(&envelope).expect("encode"),
                "byte for byte what the relay publishes"
            );
            envelope
        })
        .collect()
}

async fn settle() -> OffsetDateTime {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let at = OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(5)).await;
    at
}

fn no_progress() -> impl FnMut(&BackfillReport) + Send {
    |_: &BackfillReport| {}
}

/// What backfilling `store` before `until` must write: its events recorded before then, in
/// scan order.
async fn expected(store: &dyn EventStore, until: OffsetDateTime) -> Vec<EventEnvelope> {
    scanned(store)
        .await
        .into_iter()
        .filter(|e| e.recorded_at < until)
        .collect()
}

#[tokio::test]
async fn writes_the_events_before_the_cutoff_once_in_the_relays_format() {
    let store = Arc::new(InMemoryEventStore::new());
    let objects = Arc::new(InMemoryObjects::new());
    let manifest = Arc::new(InMemoryManifest::new());
    quotes(store.as_ref(), 30).await;
    let until = settle().await;
    let later = quotes(store.as_ref(), 5).await;
    // A quote with events on both sides of the cut: only its earlier ones are backfilled.
    store
        .append(AppendRequest {
            stream_id: later[0].clone(),
            expected_version: 1,
            events: vec![event(9)],
            idempotency: None,
            customer_id: None,
        })
        .await
        .expect("append");

    let backfill = Backfill::new(
        store.clone(),
        objects.clone(),
        manifest.clone(),
        config(2_000),
    );
    let mut pages = 0;
    let report = backfill
        .run(Some(until), Duration::ZERO, &mut |_: &BackfillReport| {
            pages += 1
        })
        .await
        .expect("backfill");

    let want = expected(store.as_ref(), until).await;
    assert_eq!(want.len(), (0..30).map(|i| 1 + i % 4).sum::<usize>());
    assert_eq!(
        backfilled(objects.as_ref(), manifest.as_ref(), &report).await,
        want
    );
    assert_eq!(report.events_before_cutoff, want.len() as u64);
    assert_eq!(report.records_written, want.len() as u64);
    assert_eq!(report.records_total, want.len() as u64);
    assert!(
        report.segments_total > 1,
        "segments close by size: {report:?}"
    );
    assert!(pages >= 1, "progress is reported");
    assert_eq!(backfill_cutoff(&report.shard_id), report.until);

    let head = manifest
        .shards(STREAM)
        .await
        .expect("heads")
        .into_iter()
        .find(|head| head.shard_id == report.shard_id)
        .expect("the backfill shard");
    assert!(head.ended, "a finished backfill is ended in the manifest");

    // Once only: a second run reports the finished backfill and writes nothing.
    let again = backfill
        .run(None, Duration::ZERO, &mut no_progress())
        .await
        .expect("second run");
    assert!(again.already_finished);
    assert_eq!(again.records_total, want.len() as u64);
    assert_eq!(again.records_written, 0);
    // A different cut-off is refused rather than writing a second history.
    let other = backfill
        .run(
            Some(OffsetDateTime::now_utc()),
            Duration::ZERO,
            &mut no_progress(),
        )
        .await;
    assert!(
        matches!(other, Err(BackfillError::OtherBackfill { .. })),
        "{other:?}"
    );
}

/// Archives one record, arrived at `arrival`, on a root shard, as the archiver would.
async fn archive_first_record(
    objects: Arc<InMemoryObjects>,
    manifest: Arc<InMemoryManifest>,
    shard_id: &str,
    parents: &[&str],
    arrival: OffsetDateTime,
) {
    let mut writer = ShardWriter::new(objects, manifest, Arc::new(config(1 << 20)), shard_id);
    let parents: Vec<String> = parents.iter().map(|p| (*p).to_owned()).collect();
    writer.claim(1, &parents).await.expect("claim");
    writer.add(&Record {
        sequence_number: "49660000000000000000000000000000000000000000000000000001".to_owned(),
        sub_sequence_number: 0,
        partition_key: "quote#x".to_owned(),
        data: b"{}".to_vec(),
        approximate_arrival: Some(arrival),
    });
    writer.close_if_due(true);
    writer.store_closed().await.expect("commit");
}

#[tokio::test]
async fn the_default_cutoff_is_where_the_archive_begins_plus_the_margin() {
    let store = Arc::new(InMemoryEventStore::new());
    let objects = Arc::new(InMemoryObjects::new());
    let manifest = Arc::new(InMemoryManifest::new());
    let backfill = Backfill::new(
        store.clone(),
        objects.clone(),
        manifest.clone(),
        config(1 << 20),
    );

    let empty = backfill.run(None, Duration::ZERO, &mut no_progress()).await;
    assert!(
        matches!(empty, Err(BackfillError::EmptyArchive)),
        "{empty:?}"
    );

    quotes(store.as_ref(), 6).await;
    let first_shard_begins = settle().await;
    quotes(store.as_ref(), 4).await;
    let second_shard_begins = settle().await;
    quotes(store.as_ref(), 3).await;
    archive_first_record(
        objects.clone(),
        manifest.clone(),
        "shardId-000000000000",
        &[],
        first_shard_begins,
    )
    .await;

    // A root shard the archiver claimed but has nothing of yet does not move the cut.
    manifest
        .claim(STREAM, "shardId-000000000003", 1, &[])
        .await
        .expect("claim");
    assert_eq!(
        backfill.archive_begins().await.expect("begins"),
        first_shard_begins
    );
    archive_first_record(
        objects.clone(),
        manifest.clone(),
        "shardId-000000000001",
        &[],
        second_shard_begins,
    )
    .await;
    // A child is not a root: its records came after its parent's.
    archive_first_record(
        objects.clone(),
        manifest.clone(),
        "shardId-000000000002",
        &["shardId-000000000001"],
        OffsetDateTime::now_utc(),
    )
    .await;

    assert_eq!(
        backfill.archive_begins().await.expect("begins"),
        second_shard_begins
    );
    let too_soon = backfill
        .run(None, Duration::from_secs(3600), &mut no_progress())
        .await;
    assert!(
        matches!(too_soon, Err(BackfillError::CutoffInFuture { .. })),
        "{too_soon:?}"
    );

    let report = backfill
        .run(None, Duration::ZERO, &mut no_progress())
        .await
        .expect("backfill");
    let until = report.until.expect("until");
    assert!(
        until <= second_shard_begins
            && second_shard_begins - until < time::Duration::milliseconds(1)
    );
    let want = expected(store.as_ref(), until).await;
    assert_eq!(want.len(), (0..10).map(|i| 1 + i % 4).sum::<usize>());
    assert_eq!(
        backfilled(objects.as_ref(), manifest.as_ref(), &report).await,
        want
    );
}

/// An object store whose puts fail from the `fail_from`-th on while `failing`, after storing
/// the object (an answer lost: the object exists but was never committed).
#[derive(Debug)]
struct FailingPuts {
    inner: InMemoryObjects,
    puts: AtomicUsize,
    fail_from: usize,
    failing: AtomicBool,
}

#[async_trait]
impl ObjectStore for FailingPuts {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ObjectStoreError> {
        self.inner.put(key, body).await?;
        let nth = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
        if self.failing.load(Ordering::SeqCst) && nth >= self.fail_from {
            return Err(ObjectStoreError {
                operation: "PutObject",
                key: key.to_owned(),
                source: "connection reset (injected)".into(),
            });
        }
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectStoreError> {
        self.inner.get(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<String>, ObjectStoreError> {
        self.inner.list(prefix, start_after).await
    }
    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        self.inner.delete(key).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_stopped_mid_way_resumes_where_it_stopped() {
    let store = Arc::new(InMemoryEventStore::new());
    let manifest = Arc::new(InMemoryManifest::new());
    quotes(store.as_ref(), 40).await;
    let until = settle().await;
    let objects = Arc::new(FailingPuts {
        inner: InMemoryObjects::new(),
        puts: AtomicUsize::new(0),
        fail_from: 3,
        failing: AtomicBool::new(true),
    });

    // The first run commits two segments, stores a third whose answer is lost, and is stopped
    // (as by kill -9) while it retries.
    let first = tokio::spawn({
        let backfill = Backfill::new(
            store.clone(),
            objects.clone(),
            manifest.clone(),
            config(1_500),
        );
        async move {
            backfill
                .run(Some(until), Duration::ZERO, &mut no_progress())
                .await
        }
    });
    while objects.puts.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.abort();
    assert!(first.await.is_err_and(|err| err.is_cancelled()));
    let heads = manifest.shards(STREAM).await.expect("heads");
    assert_eq!(heads.len(), 1);
    assert_eq!(
        heads[0].segments, 2,
        "two segments committed before the stop"
    );
    assert!(!heads[0].ended);
    assert_eq!(objects.list("events/", None).await.expect("list").len(), 3);

    // The second run (no --until: it finds the unfinished backfill and its cut-off).
    objects.failing.store(false, Ordering::SeqCst);
    let report = Backfill::new(
        store.clone(),
        objects.clone(),
        manifest.clone(),
        config(1_500),
    )
    .run(None, Duration::ZERO, &mut no_progress())
    .await
    .expect("resumed backfill");
    assert_eq!(report.until, backfill_cutoff(&heads[0].shard_id));
    let want = expected(store.as_ref(), report.until.expect("until")).await;
    assert!(
        report.records_resumed > 0 && report.records_written > 0,
        "{report:?}"
    );
    assert_eq!(
        report.records_resumed + report.records_written,
        want.len() as u64
    );
    assert_eq!(
        backfilled(objects.as_ref(), manifest.as_ref(), &report).await,
        want
    );
    let keys = objects.list("events/", None).await.expect("list");
    assert_eq!(
        keys.len() as u64,
        report.segments_total,
        "nothing but the manifest's segments remains: {keys:?}"
    );
}

#[tokio::test]
async fn a_cutoff_in_the_future_is_refused() {
    let backfill = Backfill::new(
        Arc::new(InMemoryEventStore::new()),
        Arc::new(InMemoryObjects::new()),
        Arc::new(InMemoryManifest::new()),
        config(1 << 20),
    );
    let future = OffsetDateTime::now_utc() + time::Duration::minutes(1);
    let refused = backfill
        .run(Some(future), Duration::ZERO, &mut no_progress())
        .await;
    assert!(
        matches!(refused, Err(BackfillError::UntilInFuture(_))),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfills_on_the_emulators() {
    testkit::require_emulators();
    use event_store::dynamodb::{create_tables, DynamoEventStore, TableNames};
    use quote_archive::dynamodb::{create_manifest_table, DynamoManifest};
    use quote_archive::s3::{create_bucket, S3Objects};

    let sdk = testkit::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let tables = TableNames {
        events: testkit::unique_name("events"),
        idempotency: testkit::unique_name("idempotency"),
    };
    create_tables(&dynamo, &tables).await.expect("tables");
    let store = Arc::new(DynamoEventStore::new(dynamo.clone(), tables));
    let manifest_table = testkit::unique_name("archive-manifest");
    create_manifest_table(&dynamo, &manifest_table)
        .await
        .expect("manifest table");
    let manifest = Arc::new(DynamoManifest::new(dynamo, manifest_table));
    let s3 = S3Objects::client(&sdk);
    let bucket = testkit::unique_name("archive");
    create_bucket(&s3, &bucket).await.expect("bucket");
    let objects = Arc::new(S3Objects::new(s3, bucket));

    let ids = quotes(store.as_ref(), 25).await;
    let until = settle().await;
    quotes(store.as_ref(), 3).await;
    let backfill = Backfill::new(
        store.clone(),
        objects.clone(),
        manifest.clone(),
        config(3_000),
    );
    let report = backfill
        .run(Some(until), Duration::ZERO, &mut no_progress())
        .await
        .expect("backfill");
    let got = backfilled(objects.as_ref(), manifest.as_ref(), &report).await;
    assert_eq!(got, expected(store.as_ref(), until).await);
    // Every event of the earlier quotes, each once, in its quote's order.
    for id in &ids {
        let versions: Vec<u64> = got
            .iter()
            .filter(|e| &e.stream_id == id)
            .map(|e| e.version)
            .collect();
        let stored = store.load(id, LoadBound::Latest).await.expect("load");
        assert_eq!(
            versions,
            stored.iter().map(|e| e.version).collect::<Vec<_>>()
        );
    }
    assert!(report.segments_total > 1);
    let again = backfill
        .run(None, Duration::ZERO, &mut no_progress())
        .await
        .expect("second run");
    assert!(again.already_finished && again.records_written == 0);
}
