//! Quote deadlines (`fulfillment::deadline`): a quote still pending past `QUOTE_DEADLINE_SECS`
//! is referred with the reason `enrichment timed out`, once, even by several sweepers at once;
//! a decided quote, or one still within its deadline, is left alone; an enrichment arriving
//! after the referral changes nothing. On the in-memory store and read model (the read model's
//! `pending` index on DynamoDB is in its contract suite).

use std::sync::Arc;
use std::time::Duration;

use event_relay::{InMemorySink, Relay, RelayConfig};
use event_store::{
    AppendRequest, EventEnvelope, EventStore, InMemoryEventStore, LoadBound, NewEvent,
};
use fulfillment::deadline::{overdue_referral, Deadlines, TIMED_OUT_REASON};
use fulfillment::Fulfillment;
use quote_domain::{QuoteEvent, QuoteReferred, QuoteStatus};
use quote_pipeline::{quote, EventHandler, HandlerContext};
use quote_read_model::projection::summarize;
use quote_read_model::{InMemoryReadModel, ReadModel};
use testkit::fixtures::{quote_request, quote_requested};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(300);

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

/// Projects the stream into the read model, as the projector would.
async fn project(store: &dyn EventStore, model: &dyn ReadModel, stream_id: &str) {
    let events = store
        .load(stream_id, LoadBound::Latest)
        .await
        .expect("load");
    let state = quote::fold(&events).expect("fold").expect("a quote");
    model
        .upsert(&summarize(&state, OffsetDateTime::now_utc()))
        .await
        .expect("upsert");
}

/// A requested quote (one vehicle, one driver), projected as pending.
async fn pending_quote(store: &dyn EventStore, model: &dyn ReadModel) -> String {
    let (quote_id, event) = quote_requested(quote_request(&["1HGCM82633A004352"]));
    let stream_id = quote_id.stream_id();
    append(store, &stream_id, &event).await;
    project(store, model, &stream_id).await;
    stream_id
}

struct Setup {
    store: Arc<InMemoryEventStore>,
    model: Arc<InMemoryReadModel>,
    context: HandlerContext,
    deadlines: Deadlines,
    stop: CancellationToken,
}

fn setup() -> Setup {
    let store = Arc::new(InMemoryEventStore::new());
    let model = Arc::new(InMemoryReadModel::new());
    let stop = CancellationToken::new();
    let (relay, _task) = Relay::new(
        store.clone(),
        Arc::new(InMemorySink::new()),
        RelayConfig::default(),
    )
    .spawn(stop.clone());
    Setup {
        context: HandlerContext::new(store.clone(), relay, "fulfillment"),
        deadlines: Deadlines {
            pending: model.clone(),
            deadline: DEADLINE,
        },
        store,
        model,
        stop,
    }
}

async fn referrals(store: &dyn EventStore, stream_id: &str) -> Vec<QuoteReferred> {
    store
        .load(stream_id, LoadBound::Latest)
        .await
        .expect("load")
        .iter()
        .filter_map(|e| match quote::decode(e).expect("decode") {
            QuoteEvent::QuoteReferred(referred) => Some(referred),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_quote_pending_past_its_deadline_is_referred_once() {
    let s = setup();
    let overdue = pending_quote(s.store.as_ref(), s.model.as_ref()).await;
    let now = OffsetDateTime::now_utc();

    // Within its deadline: nothing.
    let early = s
        .deadlines
        .sweep(&s.context, now + DEADLINE - Duration::from_secs(5))
        .await
        .expect("sweep");
    assert_eq!(early, 0);
    assert!(referrals(s.store.as_ref(), &overdue).await.is_empty());

    // Past it: referred, with the reason, by exactly one of three concurrent sweepers.
    let later = now + DEADLINE + Duration::from_secs(1);
    let (a, b, c) = tokio::join!(
        s.deadlines.sweep(&s.context, later),
        s.deadlines.sweep(&s.context, later),
        s.deadlines.sweep(&s.context, later),
    );
    assert_eq!(a.expect("a") + b.expect("b") + c.expect("c"), 1);
    let referred = referrals(s.store.as_ref(), &overdue).await;
    assert_eq!(referred.len(), 1, "referred once");
    assert_eq!(referred[0].reasons, vec![TIMED_OUT_REASON.to_owned()]);

    // The read model has not caught up yet: the next sweep finds it referred in the store.
    assert_eq!(
        s.deadlines.sweep(&s.context, later).await.expect("sweep"),
        0
    );
    assert_eq!(referrals(s.store.as_ref(), &overdue).await.len(), 1);

    // Projected, it leaves the pending list.
    project(s.store.as_ref(), s.model.as_ref(), &overdue).await;
    let pending = s.model.pending_before(later, 10).await.expect("pending");
    assert!(pending.is_empty(), "{pending:?}");

    // An enrichment arriving after the referral changes nothing.
    let (_, requested) = quote_requested(quote_request(&["1HGCM82633A004352"]));
    let QuoteEvent::QuoteRequested(request) = requested else {
        panic!("a request");
    };
    let late = append(
        s.store.as_ref(),
        &overdue,
        &QuoteEvent::DriverHistoryUnavailable(quote_domain::DriverHistoryUnavailable {
            license_state: request.request.drivers[0].license_state,
            license_number: request.request.drivers[0].license_number.clone(),
            reason: "the provider answered at last".into(),
        }),
    )
    .await;
    let before = s
        .store
        .load(&overdue, LoadBound::Latest)
        .await
        .expect("load")
        .len();
    Fulfillment::with_default_tables()
        .handle(&late, &s.context)
        .await
        .expect("handle");
    assert_eq!(
        s.store
            .load(&overdue, LoadBound::Latest)
            .await
            .expect("load")
            .len(),
        before,
        "a referred quote waits for an underwriter"
    );
    s.stop.cancel();
}

#[tokio::test]
async fn a_quote_the_store_lacks_does_not_stop_the_others() {
    let s = setup();
    // A quote the read model lists as pending although the store has no such stream.
    let (ghost, _) = quote_requested(quote_request(&["1HGCM82633A004352"]));
    let mut summary = {
        let stream_id = pending_quote(s.store.as_ref(), s.model.as_ref()).await;
        let events = s
            .store
            .load(&stream_id, LoadBound::Latest)
            .await
            .expect("load");
        summarize(
            &quote::fold(&events).expect("fold").expect("quote"),
            OffsetDateTime::now_utc(),
        )
    };
    let real = format!("quote#{}", summary.quote_id);
    summary.quote_id = ghost.to_string();
    summary.requested_at -= Duration::from_secs(1);
    s.model.upsert(&summary).await.expect("upsert ghost");

    let later = OffsetDateTime::now_utc() + DEADLINE + Duration::from_secs(1);
    let referred = s.deadlines.sweep(&s.context, later).await.expect("sweep");
    assert_eq!(referred, 1, "the ghost is skipped, the real quote referred");
    assert_eq!(referrals(s.store.as_ref(), &real).await.len(), 1);
    s.stop.cancel();
}

#[test]
fn only_pending_quotes_past_the_deadline_are_overdue() {
    let (_, event) = quote_requested(quote_request(&["1HGCM82633A004352"]));
    let mut state = quote_domain::Quote::fold([(1, &event)])
        .expect("fold")
        .expect("quote");
    let at = state.requested_at;
    assert!(overdue_referral(&state, DEADLINE, at + DEADLINE - Duration::from_secs(1)).is_none());
    assert!(matches!(
        overdue_referral(&state, DEADLINE, at + DEADLINE),
        Some(QuoteEvent::QuoteReferred(QuoteReferred { reasons })) if reasons == [TIMED_OUT_REASON]
    ));
    state.status = QuoteStatus::Quoted;
    assert!(overdue_referral(&state, DEADLINE, at + DEADLINE * 2).is_none());
}
