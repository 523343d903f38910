//! A crash right after the DynamoDB commit, before the relay hears of it, loses nothing: the
//! failpoint `event_source::after_commit` cuts the request off at exactly that point (in its own
//! test binary, since failpoints are process-wide).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use event_relay::{InMemorySink, Relay, RelayConfig};
use event_source::auth::mint_hs256;
use event_source::config::Config;
use event_source::Service;
use event_store::{EventStore, InMemoryEventStore, LoadBound};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const SECRET: &str = "test-secret-0123456789";

fn body() -> String {
    serde_json::json!({
        "customer_id": "cust-42",
        "contact": {"email": "ana@example.com"},
        "vehicles": [{"vin": "1HGCM82633A004352", "annual_mileage": 12000, "garaging_zip": "23220", "use": "commute"}],
        "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14",
                     "license_number": "T12345678", "license_state": "VA", "first_licensed": "2006-05-01"}],
        "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500, "comprehensive_deductible": 500}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_commit_is_published_by_the_next_process_and_the_retry_is_safe() {
    let scenario = fail::FailScenario::setup();
    let store = Arc::new(InMemoryEventStore::new());
    let sink = Arc::new(InMemorySink::new());
    let token = mint_hs256(
        SECRET,
        "cust-42",
        false,
        Duration::from_secs(60),
        None,
        None,
    )
    .expect("token");
    let request = || {
        Request::post("/v1/quotes")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("Idempotency-Key", "crash-1")
            .body(Body::from(body()))
            .expect("request")
    };

    // The first process commits, then "dies" before telling its relay.
    let first_life = CancellationToken::new();
    let mut config = Config::for_memory(SECRET);
    config.relay.sweep_interval = Duration::from_secs(3600);
    let first = Service::new(&config, store.clone(), sink.clone(), first_life.clone());
    fail::cfg("event_source::after_commit", "return").expect("failpoint");
    let response = event_source::api::router(first.state)
        .oneshot(request())
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    first_life.cancel();
    first.relay_task.await.expect("relay");
    fail::remove("event_source::after_commit");

    let stranded = store
        .unpublished_streams(
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            10,
        )
        .await
        .expect("outbox");
    assert_eq!(
        stranded.len(),
        1,
        "the event is committed and waits in the outbox"
    );
    let stream_id = stranded[0].stream_id.clone();
    assert!(
        sink.records().is_empty(),
        "nothing was published before the crash"
    );

    // The next process: its relay sweeps the outbox and publishes the stranded event.
    let second_life = CancellationToken::new();
    let relay = Relay::new(
        store.clone(),
        sink.clone(),
        RelayConfig {
            sweep_interval: Duration::from_millis(20),
            sweep_grace: Duration::ZERO,
            ..RelayConfig::default()
        },
    );
    let (_handle, relay_task) = relay.spawn(second_life.clone());
    for _ in 0..200 {
        if !sink.records().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stored = store
        .load(&stream_id, LoadBound::Latest)
        .await
        .expect("load");
    assert_eq!(
        sink.records(),
        stored,
        "exactly the committed event was published"
    );
    second_life.cancel();
    relay_task.await.expect("relay");

    // The client's retry after the crash gets the original answer and writes nothing new.
    let second = Service::new(
        &config,
        store.clone(),
        sink.clone(),
        CancellationToken::new(),
    );
    let response = event_source::api::router(second.state)
        .oneshot(request())
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let accepted: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(
        format!("quote#{}", accepted["quote_id"].as_str().expect("id")),
        stream_id
    );
    let heads = store
        .unpublished_streams(
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            10,
        )
        .await
        .expect("outbox");
    assert!(heads.is_empty());
    assert_eq!(
        store
            .stream_head(&stream_id)
            .await
            .expect("head")
            .map(|h| h.version),
        Some(1)
    );
    scenario.teardown();
}
