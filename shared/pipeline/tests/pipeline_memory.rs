//! A handler on the embedded adapters: it sees published events, its derived appends are
//! published in turn, and redelivered events change nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_relay::{Relay, RelayConfig};
use event_store::contract::event;
use event_store::{AppendRequest, EventEnvelope, EventStore, InMemoryEventStore, LoadBound};
use kinesis_consumer::source::memory::InMemoryStream;
use quote_pipeline::service::embedded_worker;
use quote_pipeline::stream_sink::InMemoryStreamSink;
use quote_pipeline::{DerivedEvent, EventHandler, HandlerContext, HandlerError, UpdateOutcome};
use tokio_util::sync::CancellationToken;

/// Answers every `Numbered` event with one `Answered` event on the same stream.
#[derive(Default)]
struct Answerer {
    calls: AtomicUsize,
    appended: AtomicUsize,
}

#[async_trait]
impl EventHandler for Answerer {
    fn name(&self) -> &'static str {
        "answerer"
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type == "Numbered"
    }

    async fn handle(
        &self,
        event: &EventEnvelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let outcome = context
            .update_stream(&event.stream_id, event, |_events| {
                Ok(vec![DerivedEvent {
                    key: "answer".into(),
                    event_type: "Answered".into(),
                    schema_version: 1,
                    data: serde_json::json!({ "to": event.version }),
                }])
            })
            .await?;
        if matches!(outcome, UpdateOutcome::Appended(_)) {
            self.appended.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_events_are_appended_once_and_published() {
    let stream = InMemoryStream::new(2);
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let shutdown = CancellationToken::new();
    let relay_config = RelayConfig {
        sweep_interval: Duration::from_millis(50),
        ..RelayConfig::default()
    };
    let (relay, relay_task) = Relay::new(
        store.clone(),
        Arc::new(InMemoryStreamSink::new(stream.clone())),
        relay_config,
    )
    .spawn(shutdown.clone());
    let handler = Arc::new(Answerer::default());
    let quote_pipeline::service::EmbeddedWorker {
        worker,
        dead_letters,
        ..
    } = embedded_worker(
        handler.clone(),
        stream.clone(),
        store.clone(),
        relay.clone(),
    );
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));

    let mut streams = Vec::new();
    for i in 0..10 {
        let stream_id = format!("quote#{}", uuid::Uuid::new_v4());
        let outcome = store
            .append(AppendRequest {
                stream_id: stream_id.clone(),
                expected_version: 0,
                events: vec![event(i)],
                idempotency: None,
                customer_id: None,
            })
            .await
            .expect("append");
        relay.notify(outcome.events.clone());
        // Redeliver the same record: the handler must not answer twice.
        relay.notify(outcome.events);
        streams.push(stream_id);
    }
    for _ in 0..200 {
        let mut done = true;
        for id in &streams {
            done &= store.load(id, LoadBound::Latest).await.expect("load").len() == 2;
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in &streams {
        let events = store.load(id, LoadBound::Latest).await.expect("load");
        assert_eq!(events.len(), 2, "{id}: exactly one answer");
        let answer = &events[1];
        assert_eq!(answer.event_type, "Answered");
        assert_eq!(answer.actor, "answerer");
        assert_eq!(answer.correlation_id, events[0].correlation_id);
        assert_eq!(answer.causation_id, Some(events[0].event_id.to_string()));
        assert_eq!(
            answer.traceparent, events[0].traceparent,
            "the trace continues (no subscriber: cause's context)"
        );
    }
    assert_eq!(handler.appended.load(Ordering::SeqCst), 10);
    assert!(handler.calls.load(Ordering::SeqCst) >= 10);
    assert!(dead_letters.letters().is_empty());
    shutdown.cancel();
    worker_task.await.expect("worker");
    relay_task.await.expect("relay");
}
