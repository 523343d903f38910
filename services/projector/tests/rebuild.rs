//! The read-model rebuild on the in-memory store, read model and stream: the rebuilt table
//! equals the fold of the store, including what the scan missed but the stream carried; a run
//! killed mid-way resumes after the streams it finished; two rebuilds of one table cannot both
//! run; a stream that cannot be folded is named and the others are written.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use event_store::{
    AppendRequest, EventEnvelope, EventStore, InMemoryEventStore, LoadBound, NewEvent, ScanCursor,
    ScanPage, ScanPart,
};
use kinesis_consumer::source::memory::InMemoryStream;
use projector::rebuild::{Phase, Rebuild, RebuildError, RebuildPlan};
use quote_domain::quote::{QuoteEvent, QuoteReferred};
use quote_pipeline::quote;
use quote_read_model::projection::summarize;
use quote_read_model::{
    ControlDocument, InMemoryReadModel, Page, PendingQuote, QuoteSummary, ReadModel,
    ReadModelError, Upsert,
};

fn new_event(event: &QuoteEvent) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        occurred_at: time::OffsetDateTime::now_utc(),
        correlation_id: "rebuild".into(),
        causation_id: None,
        traceparent: None,
        tracestate: None,
        actor: "test".into(),
        data: event.to_data().expect("data"),
    }
}

/// Appends `events` to `stream_id` at its current version.
async fn append(
    store: &dyn EventStore,
    stream_id: &str,
    events: Vec<NewEvent>,
) -> Vec<EventEnvelope> {
    let version = store
        .stream_head(stream_id)
        .await
        .expect("head")
        .map_or(0, |h| h.version);
    store
        .append(AppendRequest {
            stream_id: stream_id.to_owned(),
            expected_version: version,
            events,
            idempotency: None,
            customer_id: Some("cust-42".into()),
        })
        .await
        .expect("append")
        .events
}

/// `count` quotes: every third referred (two events), the others pending.
async fn quotes(store: &dyn EventStore, count: usize) -> Vec<String> {
    let mut streams = Vec::new();
    for n in 0..count {
        let (quote_id, requested) =
            testkit::fixtures::quote_requested(testkit::fixtures::quote_request(&[
                "1HGCM82633A004352",
            ]));
        let mut events = vec![new_event(&requested)];
        if n % 3 == 0 {
            events.push(new_event(&QuoteEvent::QuoteReferred(QuoteReferred {
                reasons: vec!["manual review".into()],
            })));
        }
        append(store, &quote_id.stream_id(), events).await;
        streams.push(quote_id.stream_id());
    }
    streams
}

/// The summary the read model must hold for each quote: the fold of its stream as stored.
async fn expected(store: &dyn EventStore, streams: &[String]) -> Vec<QuoteSummary> {
    let mut summaries = Vec::new();
    for stream_id in streams {
        let events = store
            .load(stream_id, LoadBound::Latest)
            .await
            .expect("load");
        let state = quote::fold(&events).expect("fold").expect("a quote");
        summaries.push(summarize(
            &state,
            events.last().expect("events").recorded_at,
        ));
    }
    summaries
}

async fn assert_rebuilt(target: &dyn ReadModel, expected: &[QuoteSummary]) {
    for summary in expected {
        assert_eq!(
            target.get(&summary.quote_id).await.expect("get").as_ref(),
            Some(summary),
            "quote {}",
            summary.quote_id
        );
    }
}

fn plan(segments: u32, page_size: usize) -> RebuildPlan {
    RebuildPlan {
        segments,
        page_size,
        max_rcu: None,
        routing_ttl: Duration::ZERO,
        clock_margin: Duration::from_secs(5),
    }
}

/// A store whose scan does not see the events listed: the scan passed them before they were
/// committed, as happens to what is committed while a rebuild scans.
#[derive(Debug)]
struct ScanMisses {
    inner: Arc<InMemoryEventStore>,
    unseen: Mutex<HashSet<uuid::Uuid>>,
}

#[async_trait]
impl EventStore for ScanMisses {
    async fn append(
        &self,
        request: AppendRequest,
    ) -> Result<event_store::AppendOutcome, event_store::StoreError> {
        self.inner.append(request).await
    }
    async fn read_page(
        &self,
        stream_id: &str,
        after_version: u64,
        up_to_version: Option<u64>,
        limit: usize,
    ) -> Result<event_store::EventPage, event_store::StoreError> {
        self.inner
            .read_page(stream_id, after_version, up_to_version, limit)
            .await
    }
    async fn stream_head(
        &self,
        stream_id: &str,
    ) -> Result<Option<event_store::StreamHead>, event_store::StoreError> {
        self.inner.stream_head(stream_id).await
    }
    async fn idempotency_record(
        &self,
        key: &str,
    ) -> Result<Option<event_store::IdempotencyRecord>, event_store::StoreError> {
        self.inner.idempotency_record(key).await
    }
    async fn unpublished_streams(
        &self,
        pending_before: time::OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<event_store::StreamHead>, event_store::StoreError> {
        self.inner.unpublished_streams(pending_before, limit).await
    }
    async fn mark_published(
        &self,
        stream_id: &str,
        version: u64,
    ) -> Result<(), event_store::StoreError> {
        self.inner.mark_published(stream_id, version).await
    }
    async fn claim_publication(
        &self,
        stream_id: &str,
        seen: time::OffsetDateTime,
        until: time::OffsetDateTime,
    ) -> Result<bool, event_store::StoreError> {
        self.inner.claim_publication(stream_id, seen, until).await
    }
    async fn scan_events(
        &self,
        part: ScanPart,
        after: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage, event_store::StoreError> {
        let mut page = self.inner.scan_events(part, after, limit).await?;
        let unseen = self.unseen.lock().expect("lock");
        page.events.retain(|e| !unseen.contains(&e.event_id));
        Ok(page)
    }
}

#[tokio::test]
async fn the_rebuilt_table_is_the_fold_of_the_store_including_what_only_the_stream_carried() {
    let inner = Arc::new(InMemoryEventStore::new());
    let streams = quotes(inner.as_ref(), 20).await;
    // Two quotes decided while the rebuild scanned: the scan misses the decision, the stream
    // carries it.
    let stream = Arc::new(InMemoryStream::new(2));
    let mut unseen = HashSet::new();
    for stream_id in &streams[1..3] {
        for envelope in append(
            inner.as_ref(),
            stream_id,
            vec![new_event(&QuoteEvent::QuoteReferred(QuoteReferred {
                reasons: vec!["late".into()],
            }))],
        )
        .await
        {
            unseen.insert(envelope.event_id);
            stream.put(stream_id, serde_json::to_vec(&envelope).expect("record"));
        }
    }
    let store = Arc::new(ScanMisses {
        inner: inner.clone(),
        unseen: Mutex::new(unseen),
    });
    let target = Arc::new(InMemoryReadModel::new());
    // Three segments, pages of 7 events: streams continue across pages.
    let rebuild = Rebuild::open(
        store,
        target.clone(),
        "customer-quotes-v2",
        stream,
        plan(3, 7),
    )
    .await
    .expect("open");
    let progress = rebuild.run().await.expect("rebuild");

    assert!(
        matches!(progress.phase, Phase::CaughtUp { .. }),
        "{progress:?}"
    );
    assert_eq!(progress.segments_done(), 3);
    assert_eq!(progress.events_scanned, 20 + 7);
    assert_eq!(progress.records_followed, 2);
    assert_eq!(progress.unreadable, 0);
    let expected = expected(inner.as_ref(), &streams).await;
    assert!(expected[1..3].iter().all(|s| s.status == "referred"));
    assert_rebuilt(target.as_ref(), &expected).await;

    // Finished: a second run reports and writes nothing.
    let again = Rebuild::open(
        inner,
        target.clone(),
        "customer-quotes-v2",
        Arc::new(InMemoryStream::new(1)),
        plan(3, 7),
    )
    .await
    .expect("open");
    assert_eq!(again.run().await.expect("again"), progress);
}

/// A read model whose upserts hang after `limit` of them (a process about to be killed).
#[derive(Debug)]
struct HangsAfter {
    inner: Arc<InMemoryReadModel>,
    upserts: AtomicUsize,
    limit: usize,
}

#[async_trait]
impl ReadModel for HangsAfter {
    async fn upsert(&self, summary: &QuoteSummary) -> Result<Upsert, ReadModelError> {
        if self.upserts.fetch_add(1, Ordering::SeqCst) >= self.limit {
            std::future::pending::<()>().await;
        }
        self.inner.upsert(summary).await
    }
    async fn get(&self, quote_id: &str) -> Result<Option<QuoteSummary>, ReadModelError> {
        self.inner.get(quote_id).await
    }
    async fn list_by_customer(
        &self,
        customer_id: &str,
        limit: usize,
        page_token: Option<&str>,
    ) -> Result<Page, ReadModelError> {
        self.inner
            .list_by_customer(customer_id, limit, page_token)
            .await
    }
    async fn pending_before(
        &self,
        before: time::OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<PendingQuote>, ReadModelError> {
        self.inner.pending_before(before, limit).await
    }
    async fn read_control(&self, name: &str) -> Result<Option<ControlDocument>, ReadModelError> {
        self.inner.read_control(name).await
    }
    async fn write_control(
        &self,
        name: &str,
        body: &str,
        expected: Option<u64>,
    ) -> Result<u64, ReadModelError> {
        self.inner.write_control(name, body, expected).await
    }
}

#[tokio::test]
async fn a_killed_rebuild_resumes_after_the_streams_it_finished() {
    let store = Arc::new(InMemoryEventStore::new());
    let streams = quotes(store.as_ref(), 40).await;
    let target = Arc::new(InMemoryReadModel::new());
    let hanging = Arc::new(HangsAfter {
        inner: target.clone(),
        upserts: AtomicUsize::new(0),
        limit: 25,
    });
    let first = Rebuild::open(
        store.clone(),
        hanging.clone(),
        "customer-quotes-v2",
        Arc::new(InMemoryStream::new(1)),
        plan(2, 4),
    )
    .await
    .expect("open");
    // Killed once it hangs: the run never finishes.
    let killed = tokio::time::timeout(Duration::from_secs(2), first.run()).await;
    assert!(killed.is_err(), "the first run should hang");
    let stored = first.progress().await;
    assert_eq!(stored.phase, Phase::Scanning);
    assert!(
        stored.quotes_written > 0 && stored.quotes_written < 40,
        "{stored:?}"
    );
    drop(first);

    let second = Rebuild::open(
        store.clone(),
        target.clone(),
        "customer-quotes-v2",
        Arc::new(InMemoryStream::new(1)),
        plan(8, 4),
    )
    .await
    .expect("open");
    let resumed_from = second.progress().await;
    assert_eq!(
        resumed_from.segments.len(),
        2,
        "a resumed rebuild keeps its segments"
    );
    let done = second.run().await.expect("resume");
    assert!(matches!(done.phase, Phase::CaughtUp { .. }));
    assert_rebuilt(target.as_ref(), &expected(store.as_ref(), &streams).await).await;
    // Resumed, not restarted: the streams finished before the kill were not written again
    // (at most one per segment was in flight when it hung).
    let written_again = done.quotes_written - resumed_from.quotes_written;
    assert!(
        written_again <= 40 - resumed_from.quotes_written + 2,
        "resumed {resumed_from:?}, done {done:?}"
    );
    // A stream cut by the kill is read again from its start.
    assert!(done.events_scanned >= 40 + 14, "{done:?}");
}

#[tokio::test]
async fn two_rebuilds_of_one_table_cannot_both_run() {
    let store = Arc::new(InMemoryEventStore::new());
    quotes(store.as_ref(), 3).await;
    let target = Arc::new(InMemoryReadModel::new());
    let open = || {
        Rebuild::open(
            store.clone(),
            target.clone(),
            "customer-quotes-v2",
            Arc::new(InMemoryStream::new(1)),
            plan(1, 10),
        )
    };
    let first = open().await.expect("open");
    let second = open().await.expect("open");
    first.run().await.expect("the first runs");
    assert!(matches!(
        second.run().await,
        Err(RebuildError::Concurrent { .. })
    ));
}

#[tokio::test]
async fn a_stream_that_cannot_be_folded_is_named_and_the_others_are_written() {
    let store = Arc::new(InMemoryEventStore::new());
    let streams = quotes(store.as_ref(), 4).await;
    // A decision before any request: folding it fails.
    let (poisoned, _) = testkit::fixtures::quote_requested(testkit::fixtures::quote_request(&[
        "1HGCM82633A004352",
    ]));
    append(
        store.as_ref(),
        &poisoned.stream_id(),
        vec![new_event(&QuoteEvent::QuoteReferred(QuoteReferred {
            reasons: vec!["orphan".into()],
        }))],
    )
    .await;
    let target = Arc::new(InMemoryReadModel::new());
    let progress = Rebuild::open(
        store.clone(),
        target.clone(),
        "customer-quotes-v2",
        Arc::new(InMemoryStream::new(1)),
        plan(2, 3),
    )
    .await
    .expect("open")
    .run()
    .await
    .expect("rebuild");
    assert_eq!(progress.unreadable, 1);
    assert_eq!(progress.unreadable_streams, vec![poisoned.stream_id()]);
    assert_rebuilt(target.as_ref(), &expected(store.as_ref(), &streams).await).await;
}
