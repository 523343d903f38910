//! With telemetry on, the request span continues the caller's trace, the appended event carries
//! that span's context, and spans and metrics are exported over OTLP/HTTP to
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (an in-process receiver here): the server span
//! `POST /v1/quotes` with its HTTP attributes, the append under it, the relay's publication
//! linked to the event's context, and the `http.server.request.duration` histogram.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use event_relay::InMemorySink;
use event_store::{EventStore, InMemoryEventStore, LoadBound};
use testkit::otlp::OtlpReceiver;
use tower::ServiceExt;

const SECRET: &str = "test-secret-0123456789";
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_continue_the_callers_trace_and_are_exported() {
    let receiver = OtlpReceiver::start().await;
    // This test binary holds only this test, so setting the variables cannot race another test.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint());
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    let guard = quote_runtime::telemetry::init(
        "event-source-test",
        &quote_runtime::telemetry::LogConfig::from_rust_log(),
    );

    let store = Arc::new(InMemoryEventStore::new());
    let sink = Arc::new(InMemorySink::new());
    let config = event_source::config::Config::for_memory(SECRET);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let service =
        event_source::Service::new(&config, store.clone(), sink.clone(), shutdown.clone());
    let token = event_source::auth::mint_hs256(
        SECRET,
        "cust-42",
        false,
        Duration::from_secs(60),
        None,
        None,
    )
    .expect("token");
    let body = serde_json::json!({
        "customer_id": "cust-42",
        "contact": {"email": "ana@example.com"},
        "vehicles": [{"vin": "1HGCM82633A004352", "annual_mileage": 12000, "garaging_zip": "23220", "use": "commute"}],
        "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14",
                     "license_number": "T12345678", "license_state": "VA", "first_licensed": "2006-05-01"}],
        "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500, "comprehensive_deductible": 500}
    });
    let request = Request::post("/v1/quotes")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(
            "traceparent",
            format!("00-{CALLER_TRACE}-00f067aa0ba902b7-01"),
        )
        .body(Body::from(body.to_string()))
        .expect("request");
    let response = event_source::api::router(service.state)
        .oneshot(request)
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let traceresponse = response
        .headers()
        .get("traceresponse")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        traceresponse.starts_with(&format!("00-{CALLER_TRACE}-")) && traceresponse.len() == 55,
        "traceresponse {traceresponse:?}"
    );
    let server_span_id = traceresponse[36..52].to_owned();

    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    let accepted: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    let stream_id = format!("quote#{}", accepted["quote_id"].as_str().expect("id"));
    let stored = store
        .load(&stream_id, LoadBound::Latest)
        .await
        .expect("load");
    let traceparent = stored
        .first()
        .and_then(|e| e.traceparent.clone())
        .unwrap_or_default();
    assert!(
        traceparent.starts_with(&format!("00-{CALLER_TRACE}-")),
        "{traceparent}"
    );
    assert!(
        !traceparent.contains("00f067aa0ba902b7"),
        "the event names our span, not the caller's"
    );

    // The relay publishes asynchronously: wait for it before flushing.
    for _ in 0..200 {
        if !sink.records().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.records().len(), 1, "the event was published");
    shutdown.cancel();
    // Dropping the guard flushes spans and metrics (blocking: off the runtime's threads).
    let flushed = tokio::task::spawn_blocking(move || drop(guard));
    flushed.await.expect("flush");
    assert!(receiver.rejected().is_empty(), "{:?}", receiver.rejected());

    let spans: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.service == "event-source-test")
        .collect();
    let find = |pred: &dyn Fn(&testkit::otlp::CollectedSpan) -> bool, what: &str| {
        spans
            .iter()
            .find(|s| pred(s))
            .unwrap_or_else(|| panic!("no {what} span among {spans:#?}"))
            .clone()
    };
    // The server span: named after the route, a child of the caller's span.
    let server = find(&|s| s.span_id == server_span_id, "server");
    assert_eq!(server.name, "POST /v1/quotes");
    assert_eq!(server.kind, "server");
    assert_eq!(server.trace_id, CALLER_TRACE);
    assert_eq!(server.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    assert_eq!(server.attribute("http.request.method"), Some("POST"));
    assert_eq!(server.attribute("http.route"), Some("/v1/quotes"));
    assert_eq!(server.attribute("url.path"), Some("/v1/quotes"));
    assert_eq!(server.attribute("http.response.status_code"), Some("202"));
    // The handler span under it, the append under that; the event names the handler span.
    let handler = find(&|s| s.name == "request_quote", "request_quote");
    assert_eq!(
        handler.parent_span_id.as_deref(),
        Some(server_span_id.as_str())
    );
    let append = find(&|s| s.name == "append", "append");
    assert_eq!(append.trace_id, CALLER_TRACE);
    assert_eq!(append.parent_span_id, Some(handler.span_id.clone()));
    assert_eq!(traceparent[36..52], handler.span_id);
    // The publication: a producer span of its own trace, linked to the event's context.
    let publish = find(&|s| s.kind == "producer", "publication");
    assert_eq!(publish.name, "send events");
    assert_eq!(publish.parent_span_id, None);
    assert_eq!(
        publish.links,
        vec![(CALLER_TRACE.to_owned(), handler.span_id.clone())]
    );
    assert_eq!(
        publish.attribute("messaging.batch.message_count"),
        Some("1")
    );

    // The latency histogram, per the HTTP semantic conventions.
    let metrics = receiver.metrics();
    let duration = metrics
        .iter()
        .find(|m| m.name == "http.server.request.duration")
        .unwrap_or_else(|| panic!("no latency histogram among {metrics:#?}"));
    assert_eq!(duration.service, "event-source-test");
    assert_eq!(duration.unit, "s");
    assert_eq!(duration.kind, "histogram");
    let (attributes, count) = duration.points.first().expect("a data point");
    assert_eq!(*count, 1.0);
    assert_eq!(
        attributes.get("http.request.method").map(String::as_str),
        Some("POST")
    );
    assert_eq!(
        attributes.get("http.route").map(String::as_str),
        Some("/v1/quotes")
    );
    assert_eq!(
        attributes
            .get("http.response.status_code")
            .map(String::as_str),
        Some("202")
    );
}
