//! The API on the DynamoDB event store (emulator): keys built from caller input stay within
//! DynamoDB's limits and never collide.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use event_relay::InMemorySink;
use event_source::auth::{mint_hs256, MAX_SUBJECT_BYTES};
use event_source::config::Config;
use event_source::Service;
use event_store::dynamodb::{create_tables, DynamoEventStore, TableNames};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const SECRET: &str = "test-secret-0123456789";

async fn app() -> (axum::Router, tokio_util::sync::DropGuard) {
    let config = testkit::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let tables = TableNames {
        events: testkit::unique_name("events"),
        idempotency: testkit::unique_name("idempotency"),
    };
    create_tables(&dynamo, &tables).await.expect("tables");
    let shutdown = CancellationToken::new();
    let service = Service::new(
        &Config::for_memory(SECRET),
        Arc::new(DynamoEventStore::new(dynamo, tables)),
        Arc::new(InMemorySink::new()),
        shutdown.clone(),
    );
    (
        event_source::api::router(service.state),
        shutdown.drop_guard(),
    )
}

fn agent(subject: &str) -> String {
    mint_hs256(SECRET, subject, true, Duration::from_secs(600), None, None).expect("token")
}

async fn post(router: &axum::Router, token: &str, key: &str) -> (StatusCode, Value, bool) {
    let body = testkit::fixtures::request_input(&["1HGCM82633A004352"]).to_string();
    let request = Request::post("/v1/quotes")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("idempotency-key", key)
        .body(Body::from(body))
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        replayed,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_input_in_keys_is_bounded_and_unambiguous_on_dynamodb() {
    let (router, _guard) = app().await;

    // A 2.5 KB subject would make a 2.5 KB partition key (DynamoDB allows 2,048 bytes): refused
    // as a bad token (4xx), never a 503 the client retries forever.
    let (status, body, _) = post(&router, &agent(&"a".repeat(2500)), "key-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // The longest subject and key accepted fit, even when every subject byte is escaped.
    let (status, body, _) = post(
        &router,
        &agent(&"#".repeat(MAX_SUBJECT_BYTES)),
        &"k".repeat(255),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // `a#b` + `c` and `a` + `b#c` are different keys.
    let (first, first_body, _) = post(&router, &agent("a#b"), "c").await;
    let (second, second_body, replayed) = post(&router, &agent("a"), "b#c").await;
    assert_eq!(
        (first, second),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    assert!(!replayed, "another caller's response was replayed");
    assert_ne!(first_body["quote_id"], second_body["quote_id"]);

    // A retry by the same caller still replays.
    let (status, retry, replayed) = post(&router, &agent("a"), "b#c").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(replayed);
    assert_eq!(retry["quote_id"], second_body["quote_id"]);
}
