//! The driver-history handler with the HTTP provider (served by wiremock) and the simulated one.

use std::sync::Arc;
use std::time::Duration;

use driver_history::provider::{HttpProvider, HttpProviderConfig, SimulatedProvider};
use driver_history::DriverHistory;
use event_relay::{InMemorySink, Relay, RelayConfig};
use event_store::{
    AppendRequest, EventEnvelope, EventStore, InMemoryEventStore, LoadBound, NewEvent,
};
use quote_domain::request::QuoteRequest;
use quote_pipeline::{EventHandler, HandlerContext};
use testkit::fixtures::{parse_request, quote_requested, request_input};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A request with a second driver, Bo Diaz (licence MD B7654321).
fn request() -> QuoteRequest {
    let mut input = request_input(&["1HGCM82633A004352"]);
    input["drivers"]
        .as_array_mut()
        .expect("drivers")
        .push(serde_json::json!(
            {"first_name": "Bo", "last_name": "Diaz", "date_of_birth": "1990-01-02",
             "license_number": "B7654321", "license_state": "MD", "first_licensed": "2008-01-01"}
        ));
    parse_request(input)
}

async fn requested(store: &dyn EventStore) -> EventEnvelope {
    let (quote_id, event) = quote_requested(request());
    store
        .append(AppendRequest {
            stream_id: quote_id.stream_id(),
            expected_version: 0,
            events: vec![NewEvent {
                event_id: uuid::Uuid::new_v4(),
                event_type: event.event_type().to_owned(),
                schema_version: event.schema_version(),
                occurred_at: time::OffsetDateTime::now_utc(),
                correlation_id: "corr".into(),
                causation_id: None,
                traceparent: None,
                tracestate: None,
                actor: "cust-42".into(),
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

fn context(store: Arc<dyn EventStore>) -> HandlerContext {
    let (relay, _task) = Relay::new(
        store.clone(),
        Arc::new(InMemorySink::new()),
        RelayConfig::default(),
    )
    .spawn(Default::default());
    HandlerContext::new(store, relay, "driver-history")
}

fn provider(server: &MockServer) -> HttpProvider {
    HttpProvider::new(HttpProviderConfig {
        base_url: server.uri(),
        token: Some("secret-token".into()),
        timeout: Duration::from_millis(500),
        attempts: 2,
        breaker_threshold: 5,
        breaker_cool_down: Duration::from_secs(30),
    })
    .expect("provider")
}

async fn appended(store: &dyn EventStore, stream_id: &str) -> Vec<EventEnvelope> {
    store
        .load(stream_id, LoadBound::Latest)
        .await
        .expect("load")
        .into_iter()
        .skip(1)
        .collect()
}

#[tokio::test]
async fn histories_from_the_http_provider_are_recorded_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/driver-records/VA/T12345678"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "license_status": "valid",
            "accidents": [{"date": "2025-02-10", "at_fault": true}],
            "violations": [{"kind": "speeding", "date": "2024-07-01"}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/driver-records/MD/B7654321"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let ctx = context(store.clone());
    let handler = DriverHistory::new(Arc::new(provider(&server)));
    let cause = requested(store.as_ref()).await;
    handler.handle(&cause, &ctx).await.expect("handle");
    handler.handle(&cause, &ctx).await.expect("redelivery");
    let events = appended(store.as_ref(), &cause.stream_id).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        vec!["DriverHistoryRetrieved", "DriverHistoryUnavailable"]
    );
    assert_eq!(events[0].data["accidents"][0]["at_fault"], true);
    assert_eq!(events[0].data["source"], "provider");
    assert!(events[1].data["reason"]
        .as_str()
        .is_some_and(|r| r.contains("no driving record")));
    let received = server.received_requests().await.unwrap_or_default();
    assert!(received.iter().all(
        |r| r.headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some("Bearer secret-token")
    ));
}

#[tokio::test]
async fn a_provider_that_stays_down_gives_unavailable_histories() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let handler = DriverHistory::new(Arc::new(provider(&server)));
    let cause = requested(store.as_ref()).await;
    handler
        .handle(&cause, &context(store.clone()))
        .await
        .expect("handle");
    let events = appended(store.as_ref(), &cause.stream_id).await;
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|e| e.event_type == "DriverHistoryUnavailable"));
}

#[tokio::test]
async fn the_simulated_provider_is_deterministic_and_says_so() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let handler = DriverHistory::new(Arc::new(SimulatedProvider));
    let first = requested(store.as_ref()).await;
    let second = requested(store.as_ref()).await;
    handler
        .handle(&first, &context(store.clone()))
        .await
        .expect("handle");
    handler
        .handle(&second, &context(store.clone()))
        .await
        .expect("handle");
    let a = appended(store.as_ref(), &first.stream_id).await;
    let b = appended(store.as_ref(), &second.stream_id).await;
    assert_eq!(a.len(), 2);
    assert!(a.iter().all(|e| e.data["source"] == "simulated"));
    let data = |events: &[EventEnvelope]| events.iter().map(|e| e.data.clone()).collect::<Vec<_>>();
    assert_eq!(data(&a), data(&b), "same licences, same histories");
}
