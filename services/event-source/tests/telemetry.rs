//! With telemetry on, the request span continues the caller's trace, the appended event carries
//! that span's context, and spans are exported over OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (a local collector stand-in here).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::post;
use event_relay::InMemorySink;
use event_store::{EventStore, InMemoryEventStore, LoadBound};
use tower::ServiceExt;

const SECRET: &str = "test-secret-0123456789";
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_continue_the_callers_trace_and_are_exported() {
    let exports = Arc::new(AtomicUsize::new(0));
    let counter = exports.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let collector = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                if !body.is_empty() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, collector).await });
    // This test binary holds only this test, so setting the variable cannot race another test.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"));
    let guard = quote_runtime::telemetry::init("event-source-test");

    let store = Arc::new(InMemoryEventStore::new());
    let config = event_source::config::Config::for_memory(SECRET);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let service = event_source::Service::new(
        &config,
        store.clone(),
        Arc::new(InMemorySink::new()),
        shutdown.clone(),
    );
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

    shutdown.cancel();
    let flushed = tokio::task::spawn_blocking(move || drop(guard));
    flushed.await.expect("flush");
    for _ in 0..100 {
        if exports.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        exports.load(Ordering::SeqCst) > 0,
        "no OTLP export reached the collector"
    );
}
