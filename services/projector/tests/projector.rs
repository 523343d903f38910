//! The projector on the real worker, in-memory adapters and tokio's paused clock: a read model
//! that fails for far longer than the worker's old retry budget (5 attempts from a 100 ms base,
//! about 3 s, after which a quote's last event was dead-lettered and the quote stayed "pending"
//! forever) is waited out, and the quote ends final with nothing dead-lettered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_relay::{Relay, RelayConfig};
use event_store::{AppendRequest, EventStore, InMemoryEventStore, NewEvent};
use kinesis_consumer::source::memory::InMemoryStream;
use projector::Projector;
use quote_domain::quote::{QuoteEvent, QuoteIssued};
use quote_pipeline::service::embedded_worker;
use quote_pipeline::stream_sink::InMemoryStreamSink;
use quote_read_model::memory::InMemoryReadModel;
use quote_read_model::{Page, QuoteSummary, ReadModel, ReadModelError, Upsert};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A read model that is unavailable (throttled) until an instant, then the in-memory one.
#[derive(Debug)]
struct Outage {
    inner: InMemoryReadModel,
    until: Instant,
    refused: AtomicU64,
}

impl Outage {
    fn check(&self) -> Result<(), ReadModelError> {
        if Instant::now() < self.until {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(ReadModelError::Backend(
                "ProvisionedThroughputExceededException: throughput exceeded".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl ReadModel for Outage {
    async fn upsert(&self, summary: &QuoteSummary) -> Result<Upsert, ReadModelError> {
        self.check()?;
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
    ) -> Result<Vec<quote_read_model::PendingQuote>, ReadModelError> {
        self.inner.pending_before(before, limit).await
    }

    async fn read_control(
        &self,
        name: &str,
    ) -> Result<Option<quote_read_model::ControlDocument>, ReadModelError> {
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

fn new_event(event: &QuoteEvent) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        occurred_at: time::OffsetDateTime::now_utc(),
        correlation_id: "corr".into(),
        causation_id: None,
        traceparent: None,
        tracestate: None,
        actor: "test".into(),
        data: event.to_data().expect("data"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_read_model_down_for_minutes_is_waited_out_and_the_quote_ends_final() {
    let model = Arc::new(Outage {
        inner: InMemoryReadModel::new(),
        until: Instant::now() + Duration::from_secs(120),
        refused: AtomicU64::new(0),
    });
    let stream = InMemoryStream::new(1);
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let shutdown = CancellationToken::new();
    let (relay, relay_task) = Relay::new(
        store.clone(),
        Arc::new(InMemoryStreamSink::new(stream.clone())),
        RelayConfig::default(),
    )
    .spawn(shutdown.clone());
    let quote_pipeline::service::EmbeddedWorker {
        worker,
        dead_letters,
        ..
    } = embedded_worker(
        Arc::new(Projector::new(model.clone())),
        stream,
        store.clone(),
        relay.clone(),
    );
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));

    let (quote_id, requested) =
        testkit::fixtures::quote_requested(testkit::fixtures::quote_request(&[
            "1HGCM82633A004352",
        ]));
    let issued: QuoteIssued = serde_json::from_value(serde_json::json!({
        "annual_premium": 123_400,
        "valid_until": "2026-12-27T10:00:00Z",
        "rating_table_version": "2026-11",
    }))
    .expect("QuoteIssued");
    let appended = store
        .append(AppendRequest {
            stream_id: quote_id.stream_id(),
            expected_version: 0,
            events: vec![
                new_event(&requested),
                new_event(&QuoteEvent::QuoteIssued(issued)),
            ],
            idempotency: None,
            customer_id: Some("cust-42".into()),
        })
        .await
        .expect("append");
    relay.notify(appended.events);

    let mut status = None;
    for _ in 0..600 {
        status = model
            .get(&quote_id.to_string())
            .await
            .expect("get")
            .map(|s| s.status);
        if status.as_deref() == Some("quoted") {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(status.as_deref(), Some("quoted"), "the quote ends final");
    assert!(
        model.refused.load(Ordering::SeqCst) > 5,
        "the outage outlasted the old retry budget"
    );
    assert!(dead_letters.letters().is_empty(), "nothing dead-lettered");
    shutdown.cancel();
    worker_task.await.expect("worker");
    relay_task.await.expect("relay");
}
