//! The fulfillment handler on the in-memory event store: issued, declined and referred
//! quotes, quotes not ready yet, redelivered and late events, and two events completing a
//! quote at the same time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_relay::{InMemorySink, Relay, RelayConfig};
use event_store::{
    AppendOutcome, AppendRequest, EventEnvelope, EventPage, EventStore, IdempotencyRecord,
    InMemoryEventStore, LoadBound, NewEvent, StoreError, StreamHead,
};
use fulfillment::handler::OUTCOME_KEY;
use fulfillment::Fulfillment;
use quote_domain::{
    Accident, DecodeSource, DriverHistoryRetrieved, DriverHistoryUnavailable, HistorySource,
    LicenseStatus, QuoteEvent, QuoteIssued, VehicleDecodeFailed, VehicleDecoded, Vin, Violation,
    ViolationKind,
};
use quote_pipeline::{EventHandler, HandlerContext};
use testkit::fixtures::{quote_request, quote_requested};
use time::OffsetDateTime;

const HONDA: &str = "1HGCM82633A004352";
const FORD: &str = "1FAFP40492F172825";

// ---------------------------------------------------------------------------------------------
// Fixtures.
// ---------------------------------------------------------------------------------------------

fn vin(s: &str) -> Vin {
    Vin::parse(s).expect("vin")
}

fn decoded(s: &str) -> QuoteEvent {
    QuoteEvent::VehicleDecoded(VehicleDecoded {
        vin: vin(s),
        make: "HONDA".into(),
        model: "Accord".into(),
        model_year: Some(2003),
        body_class: Some("Sedan/Saloon".into()),
        vehicle_type: Some("PASSENGER CAR".into()),
        source: DecodeSource::Vpic,
    })
}

fn failed(s: &str) -> QuoteEvent {
    QuoteEvent::VehicleDecodeFailed(VehicleDecodeFailed {
        vin: vin(s),
        reason: "vPIC is unavailable and the WMI is unknown".into(),
    })
}

fn history(accidents: Vec<Accident>, violations: Vec<Violation>) -> QuoteEvent {
    QuoteEvent::DriverHistoryRetrieved(DriverHistoryRetrieved {
        license_state: "VA".parse().expect("state"),
        license_number: "T12345678".parse().expect("licence"),
        license_status: LicenseStatus::Valid,
        accidents,
        violations,
        source: HistorySource::Provider,
    })
}

fn clean_history() -> QuoteEvent {
    history(Vec::new(), Vec::new())
}

fn unavailable() -> QuoteEvent {
    QuoteEvent::DriverHistoryUnavailable(DriverHistoryUnavailable {
        license_state: "VA".parse().expect("state"),
        license_number: "T12345678".parse().expect("licence"),
        reason: "the provider is down".into(),
    })
}

/// Appends `event` at the end of `stream_id`, as an enricher (or the API) would.
async fn append(store: &dyn EventStore, stream_id: &str, event: &QuoteEvent) -> EventEnvelope {
    let version = store
        .load(stream_id, LoadBound::Latest)
        .await
        .expect("load")
        .len() as u64;
    store
        .append(AppendRequest {
            stream_id: stream_id.to_owned(),
            expected_version: version,
            events: vec![NewEvent {
                event_id: uuid::Uuid::new_v4(),
                event_type: event.event_type().to_owned(),
                schema_version: event.schema_version(),
                occurred_at: OffsetDateTime::now_utc(),
                correlation_id: "corr".into(),
                causation_id: None,
                traceparent: None,
                tracestate: None,
                actor: "test".into(),
                data: event.to_data().expect("data"),
            }],
            idempotency: None,
            customer_id: Some("cust-42".into()),
        })
        .await
        .expect("append")
        .events[0]
        .clone()
}

/// A new quote stream with its `QuoteRequested`.
async fn requested(store: &dyn EventStore, vins: &[&str]) -> EventEnvelope {
    let (quote_id, event) = quote_requested(quote_request(vins));
    append(store, &quote_id.stream_id(), &event).await
}

struct Setup {
    store: Arc<InMemoryEventStore>,
    context: HandlerContext,
    _relay: Guard,
}

/// Stops the relay when the test ends.
struct Guard(tokio::task::JoinHandle<()>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn context_on(
    store: Arc<dyn EventStore>,
    relay_store: Arc<dyn EventStore>,
) -> (HandlerContext, Guard) {
    let (relay, task) = Relay::new(
        relay_store,
        Arc::new(InMemorySink::new()),
        RelayConfig::default(),
    )
    .spawn(Default::default());
    (
        HandlerContext::new(store, relay, "fulfillment"),
        Guard(task),
    )
}

fn setup() -> Setup {
    let store = Arc::new(InMemoryEventStore::new());
    let (context, guard) = context_on(store.clone(), store.clone());
    Setup {
        store,
        context,
        _relay: guard,
    }
}

fn handler() -> Fulfillment {
    Fulfillment::with_default_tables()
}

/// The outcome events of a stream (issued, declined, referred).
async fn outcomes(store: &dyn EventStore, stream_id: &str) -> Vec<(EventEnvelope, QuoteEvent)> {
    store
        .load(stream_id, LoadBound::Latest)
        .await
        .expect("load")
        .into_iter()
        .map(|e| {
            let event =
                QuoteEvent::decode(&e.event_type, e.schema_version, &e.data).expect("decode");
            (e, event)
        })
        .filter(|(_, event)| {
            matches!(
                event,
                QuoteEvent::QuoteIssued(_)
                    | QuoteEvent::QuoteDeclined(_)
                    | QuoteEvent::QuoteReferred(_)
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Outcomes.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_complete_clean_quote_is_issued_with_its_breakdown() {
    let setup = setup();
    let fulfillment = handler();
    let store = setup.store.as_ref();
    let request = requested(store, &[HONDA]).await;
    let stream = request.stream_id.clone();
    fulfillment
        .handle(&request, &setup.context)
        .await
        .expect("request");
    let vehicle = append(store, &stream, &decoded(HONDA)).await;
    fulfillment
        .handle(&vehicle, &setup.context)
        .await
        .expect("vehicle");
    assert!(
        outcomes(store, &stream).await.is_empty(),
        "the driver is still pending"
    );

    let driver = append(store, &stream, &clean_history()).await;
    fulfillment
        .handle(&driver, &setup.context)
        .await
        .expect("driver");

    let outcomes = outcomes(store, &stream).await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    let (envelope, event) = &outcomes[0];
    let QuoteEvent::QuoteIssued(issued) = event else {
        panic!("not issued: {event:?}");
    };
    assert!(issued.annual_premium.cents() > 0);
    assert_eq!(
        issued.valid_until,
        driver.recorded_at + time::Duration::days(30)
    );
    assert_eq!(issued.rating_table_version, "2026-01");
    let coverages: Vec<&str> = issued
        .breakdown
        .iter()
        .map(|l| l.coverage.as_str())
        .collect();
    assert_eq!(coverages[..3], ["liability", "collision", "comprehensive"]);
    let total: u64 = issued.breakdown.iter().map(|l| l.amount.cents()).sum();
    assert_eq!(total, issued.annual_premium.cents());
    for name in [
        "driver_age",
        "territory",
        "multi_car",
        "collision_deductible",
    ] {
        assert!(
            issued.factors.iter().any(|f| f.name == name),
            "{name} missing from {:?}",
            issued.factors
        );
    }
    assert_eq!(envelope.data["breakdown"][0]["coverage"], "liability");
    // The envelope: derived from the completing event, by fulfillment.
    assert_eq!(envelope.version, 4);
    assert_eq!(
        envelope.event_id,
        setup.context.derived_event_id(&driver, OUTCOME_KEY)
    );
    assert_eq!(
        envelope.causation_id.as_deref(),
        Some(driver.event_id.to_string().as_str())
    );
    assert_eq!(
        (envelope.actor.as_str(), envelope.correlation_id.as_str()),
        ("fulfillment", "corr")
    );
}

#[tokio::test]
async fn a_driver_with_a_recent_dui_is_declined() {
    let setup = setup();
    let fulfillment = handler();
    let store = setup.store.as_ref();
    let request = requested(store, &[HONDA]).await;
    let stream = request.stream_id.clone();
    append(store, &stream, &decoded(HONDA)).await;
    let today = OffsetDateTime::now_utc().date();
    let dui = Violation {
        kind: ViolationKind::Dui,
        date: today - time::Duration::days(200),
    };
    let driver = append(store, &stream, &history(Vec::new(), vec![dui])).await;
    fulfillment
        .handle(&driver, &setup.context)
        .await
        .expect("handle");
    let outcomes = outcomes(store, &stream).await;
    assert_eq!(outcomes.len(), 1);
    let QuoteEvent::QuoteDeclined(declined) = &outcomes[0].1 else {
        panic!("not declined: {:?}", outcomes[0].1);
    };
    assert!(
        declined
            .reasons
            .iter()
            .any(|r| r.contains("drivers[0]") && r.contains("dui violation")),
        "{:?}",
        declined.reasons
    );
}

#[tokio::test]
async fn a_vin_that_failed_to_decode_is_referred() {
    let setup = setup();
    let fulfillment = handler();
    let store = setup.store.as_ref();
    let request = requested(store, &[HONDA, FORD]).await;
    let stream = request.stream_id.clone();
    append(store, &stream, &decoded(HONDA)).await;
    append(store, &stream, &clean_history()).await;
    let vehicle = append(store, &stream, &failed(FORD)).await;
    fulfillment
        .handle(&vehicle, &setup.context)
        .await
        .expect("handle");
    let outcomes = outcomes(store, &stream).await;
    assert_eq!(outcomes.len(), 1);
    let QuoteEvent::QuoteReferred(referred) = &outcomes[0].1 else {
        panic!("not referred: {:?}", outcomes[0].1);
    };
    assert_eq!(
        referred.reasons,
        [format!(
            "vehicle {FORD}: the vehicle could not be identified (vPIC is unavailable and the WMI is unknown)"
        )]
    );
}

#[tokio::test]
async fn an_unavailable_history_is_referred_too() {
    let setup = setup();
    let store = setup.store.as_ref();
    let request = requested(store, &[HONDA]).await;
    append(store, &request.stream_id, &decoded(HONDA)).await;
    let driver = append(store, &request.stream_id, &unavailable()).await;
    handler()
        .handle(&driver, &setup.context)
        .await
        .expect("handle");
    let outcomes = outcomes(store, &request.stream_id).await;
    let QuoteEvent::QuoteReferred(referred) = &outcomes[0].1 else {
        panic!("not referred: {outcomes:?}");
    };
    assert!(
        referred.reasons[0].starts_with("driver VA T12345678: the driving history is unavailable")
    );
}

#[tokio::test]
async fn a_quote_with_pending_items_gets_nothing() {
    let setup = setup();
    let fulfillment = handler();
    let store = setup.store.as_ref();
    let request = requested(store, &[HONDA, FORD]).await;
    let stream = request.stream_id.clone();
    let mut causes = vec![request];
    causes.push(append(store, &stream, &decoded(HONDA)).await);
    causes.push(append(store, &stream, &accident_history()).await);
    for cause in &causes {
        fulfillment
            .handle(cause, &setup.context)
            .await
            .expect("handle");
    }
    let events = store.load(&stream, LoadBound::Latest).await.expect("load");
    assert_eq!(
        events.len(),
        3,
        "the Ford is still pending: nothing appended"
    );
}

fn accident_history() -> QuoteEvent {
    history(
        vec![Accident {
            date: OffsetDateTime::now_utc().date() - time::Duration::days(400),
            at_fault: true,
        }],
        Vec::new(),
    )
}

#[tokio::test]
async fn a_replayed_request_with_everything_known_is_decided() {
    let setup = setup();
    let store = setup.store.as_ref();
    let request = requested(store, &[HONDA]).await;
    append(store, &request.stream_id, &decoded(HONDA)).await;
    append(store, &request.stream_id, &accident_history()).await;
    handler()
        .handle(&request, &setup.context)
        .await
        .expect("handle");
    let outcomes = outcomes(store, &request.stream_id).await;
    assert_eq!(outcomes.len(), 1);
    assert!(matches!(outcomes[0].1, QuoteEvent::QuoteIssued(_)));
    assert_eq!(
        outcomes[0].0.event_id,
        setup.context.derived_event_id(&request, OUTCOME_KEY)
    );
}

// ---------------------------------------------------------------------------------------------
// Duplicates, late events, races.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn redelivered_and_late_events_append_no_second_outcome() {
    let setup = setup();
    let fulfillment = handler();
    let store = setup.store.as_ref();
    let request = requested(store, &[HONDA]).await;
    let stream = request.stream_id.clone();
    let vehicle = append(store, &stream, &decoded(HONDA)).await;
    let driver = append(store, &stream, &clean_history()).await;
    fulfillment
        .handle(&driver, &setup.context)
        .await
        .expect("first delivery");
    let first = outcomes(store, &stream).await;
    assert_eq!(first.len(), 1);

    // The completing event again, then the earlier ones, late, and from a fresh instance
    // (a restarted task).
    let restarted = handler();
    fulfillment
        .handle(&driver, &setup.context)
        .await
        .expect("redelivery");
    restarted
        .handle(&driver, &setup.context)
        .await
        .expect("redelivery after a restart");
    restarted
        .handle(&vehicle, &setup.context)
        .await
        .expect("late vehicle fact");
    restarted
        .handle(&request, &setup.context)
        .await
        .expect("late request");

    let after = outcomes(store, &stream).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].0.event_id, first[0].0.event_id);
    let events = store.load(&stream, LoadBound::Latest).await.expect("load");
    assert_eq!(events.len(), 4);
}

/// A store that makes the first two appends wait for each other, so that both are attempted
/// at the version both writers read: exactly one of them can win.
#[derive(Debug)]
struct RacingStore {
    inner: Arc<InMemoryEventStore>,
    gate: tokio::sync::Barrier,
    appends: AtomicUsize,
    conflicts: AtomicUsize,
}

#[async_trait]
impl EventStore for RacingStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        if self.appends.fetch_add(1, Ordering::SeqCst) < 2 {
            self.gate.wait().await;
        }
        let result = self.inner.append(request).await;
        if matches!(result, Err(StoreError::WrongExpectedVersion { .. })) {
            self.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    async fn read_page(
        &self,
        stream_id: &str,
        after_version: u64,
        up_to_version: Option<u64>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        self.inner
            .read_page(stream_id, after_version, up_to_version, limit)
            .await
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

    async fn claim_publication(
        &self,
        stream_id: &str,
        seen: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.inner.claim_publication(stream_id, seen, until).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_events_completing_a_quote_at_once_give_one_outcome() {
    let inner = Arc::new(InMemoryEventStore::new());
    // The two enrichers append their last facts; fulfillment has not seen either yet.
    let request = requested(inner.as_ref(), &[HONDA]).await;
    let stream = request.stream_id.clone();
    let vehicle = append(inner.as_ref(), &stream, &decoded(HONDA)).await;
    let driver = append(inner.as_ref(), &stream, &clean_history()).await;

    let racing = Arc::new(RacingStore {
        inner: inner.clone(),
        gate: tokio::sync::Barrier::new(2),
        appends: AtomicUsize::new(0),
        conflicts: AtomicUsize::new(0),
    });
    // Two instances (two tasks of the service), each with its own context.
    let (context_a, _relay_a) = context_on(racing.clone(), inner.clone());
    let (context_b, _relay_b) = context_on(racing.clone(), inner.clone());
    let a = tokio::spawn(async move { handler().handle(&vehicle, &context_a).await });
    let b = tokio::spawn(async move { handler().handle(&driver, &context_b).await });
    let (a, b) = tokio::time::timeout(Duration::from_secs(10), async { (a.await, b.await) })
        .await
        .expect("both handlers finish");
    a.expect("task a").expect("handler a");
    b.expect("task b").expect("handler b");

    assert_eq!(racing.appends.load(Ordering::SeqCst), 2, "both tried");
    assert_eq!(
        racing.conflicts.load(Ordering::SeqCst),
        1,
        "the loser conflicted, reloaded, and found the quote decided"
    );
    let outcomes = outcomes(inner.as_ref(), &stream).await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert!(matches!(
        outcomes[0].1,
        QuoteEvent::QuoteIssued(QuoteIssued { .. })
    ));
}
