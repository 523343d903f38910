//! The REST API end to end in process: the real router and layers on the in-memory adapters.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use event_relay::InMemorySink;
use event_source::api::{router, AppState};
use event_source::auth::mint_hs256;
use event_source::config::Config;
use event_source::Service;
use event_store::{EventStore, InMemoryEventStore};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const SECRET: &str = "test-secret-0123456789";

struct TestApp {
    read_model: Arc<quote_read_model::InMemoryReadModel>,
    router: Router,
    state: AppState,
    store: Arc<InMemoryEventStore>,
    sink: Arc<InMemorySink>,
    _shutdown: tokio_util::sync::DropGuard,
}

fn spawn_app() -> TestApp {
    spawn_app_with(Config::for_memory(SECRET))
}

fn spawn_app_with(config: Config) -> TestApp {
    spawn_app_watching(config, Vec::new())
}

/// An app whose operations view watches `applications`.
fn spawn_app_watching(
    config: Config,
    applications: Vec<event_source::ops::WatchedApplication>,
) -> TestApp {
    let store = Arc::new(InMemoryEventStore::new());
    let sink = Arc::new(InMemorySink::new());
    let shutdown = CancellationToken::new();
    let read_model = Arc::new(quote_read_model::InMemoryReadModel::new());
    let service = Service::with_read_model(
        &config,
        store.clone(),
        sink.clone(),
        read_model.clone(),
        shutdown.clone(),
    )
    .with_operations(applications);
    TestApp {
        read_model,
        router: router(service.state.clone()),
        state: service.state,
        store,
        sink,
        _shutdown: shutdown.drop_guard(),
    }
}

fn token(customer: &str, agent: bool) -> String {
    mint_hs256(
        SECRET,
        customer,
        agent,
        Duration::from_secs(600),
        None,
        None,
    )
    .expect("token")
}

fn quote_body(customer: &str) -> Value {
    json!({
        "customer_id": customer,
        "contact": {"email": "ana@example.com", "phone": "+18045550142"},
        "vehicles": [{"vin": "1HGCM82633A004352", "annual_mileage": 12000,
                      "garaging_zip": "23220", "use": "commute"}],
        "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14",
                     "license_number": "T12345678", "license_state": "VA",
                     "first_licensed": "2006-05-01"}],
        "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500,
                     "comprehensive_deductible": 500},
        "notify": {"email": true, "sms": false, "max_premium": 1800}
    })
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl TestApp {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn post_raw(
        &self,
        token: Option<&str>,
        body: impl Into<Body>,
        key: Option<&str>,
    ) -> Reply {
        let mut builder =
            Request::post("/v1/quotes").header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(key) = key {
            builder = builder.header("Idempotency-Key", key);
        }
        self.send(builder.body(body.into()).expect("request")).await
    }

    async fn post(&self, token: &str, body: &Value) -> Reply {
        self.post_raw(Some(token), body.to_string(), None).await
    }

    async fn get(&self, token: Option<&str>, path: &str) -> Reply {
        let mut builder = Request::get(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(builder.body(Body::empty()).expect("request"))
            .await
    }

    async fn stream_count(&self) -> usize {
        self.store
            .unpublished_streams(
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                10_000,
            )
            .await
            .expect("heads")
            .len()
            + self.sink.records().len()
    }
}

fn assert_problem(reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "body: {}", reply.body);
    assert_eq!(
        reply
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    assert_eq!(reply.body["status"], status.as_u16());
    assert!(reply.body["type"]
        .as_str()
        .is_some_and(|t| t.starts_with("urn:quote-platform:problem:")));
    assert!(reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

fn problem_fields(reply: &Reply) -> Vec<String> {
    reply.body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_quote_request_is_accepted_stored_and_readable() {
    let app = spawn_app();
    let token = token("cust-42", false);
    let reply = app.post(&token, &quote_body("cust-42")).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let quote_id = reply.body["quote_id"]
        .as_str()
        .expect("quote_id")
        .to_owned();
    assert_eq!(reply.body["status"], "pending");
    assert_eq!(
        reply
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some(format!("/v1/quotes/{quote_id}").as_str())
    );
    assert!(reply.headers.contains_key("x-request-id"));

    let quote = app
        .get(Some(&token), &format!("/v1/quotes/{quote_id}"))
        .await;
    assert_eq!(quote.status, StatusCode::OK, "{}", quote.body);
    assert_eq!(quote.body["quote_id"], quote_id.as_str());
    assert_eq!(quote.body["customer_id"], "cust-42");
    assert_eq!(quote.body["status"], "pending");
    assert_eq!(quote.body["version"], 1);
    assert_eq!(quote.body["vehicles"][0]["vin"], "1HGCM82633A004352");
    assert_eq!(quote.body["drivers"], 1);

    let events = app
        .get(Some(&token), &format!("/v1/quotes/{quote_id}/events"))
        .await;
    assert_eq!(events.status, StatusCode::OK);
    let list = events.body["events"].as_array().expect("events");
    assert_eq!(list.len(), 1);
    let envelope = &list[0];
    assert_eq!(envelope["event_type"], "QuoteRequested");
    assert_eq!(envelope["version"], 1);
    assert_eq!(envelope["stream_id"], format!("quote#{quote_id}"));
    assert_eq!(envelope["actor"], "cust-42");
    assert_eq!(
        envelope["correlation_id"],
        reply.headers["x-request-id"].to_str().expect("id")
    );
    for field in [
        "event_id",
        "schema_version",
        "occurred_at",
        "recorded_at",
        "traceparent",
        "data",
    ] {
        assert!(!envelope[field].is_null(), "envelope lacks {field}");
    }
    assert_eq!(
        envelope["data"]["request"]["vehicles"][0]["vin"],
        "1HGCM82633A004352"
    );

    // The relay publishes the committed event.
    for _ in 0..100 {
        if !app.sink.records().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let published = app.sink.records();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].stream_id, format!("quote#{quote_id}"));
}

#[tokio::test]
async fn the_callers_trace_is_continued_in_the_event() {
    let app = spawn_app();
    let request = Request::post("/v1/quotes")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", token("cust-42", false)),
        )
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::from(quote_body("cust-42").to_string()))
        .expect("request");
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let id = reply.body["quote_id"].as_str().expect("id");
    let events = app
        .get(
            Some(&token("cust-42", false)),
            &format!("/v1/quotes/{id}/events"),
        )
        .await;
    let traceparent = events.body["events"][0]["traceparent"]
        .as_str()
        .expect("traceparent");
    assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
}

#[tokio::test]
async fn v1_routes_need_a_valid_token() {
    let app = spawn_app();
    let missing = app
        .post_raw(None, quote_body("cust-42").to_string(), None)
        .await;
    assert_problem(&missing, StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing
            .headers
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );

    let forged = mint_hs256(
        "another-secret-0123456789",
        "cust-42",
        true,
        Duration::from_secs(60),
        None,
        None,
    )
    .expect("token");
    assert_problem(
        &app.post(&forged, &quote_body("cust-42")).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_problem(
        &app.get(Some("not-a-jwt"), "/v1/quotes/x").await,
        StatusCode::UNAUTHORIZED,
    );
    assert_problem(
        &app.get(None, "/v1/quotes/x/events").await,
        StatusCode::UNAUTHORIZED,
    );

    // Expired beyond the leeway.
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "cust-42", "exp": time::OffsetDateTime::now_utc().unix_timestamp() - 600}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("an HMAC key"),
    )
    .expect("token");
    assert_problem(
        &app.post(&expired, &quote_body("cust-42")).await,
        StatusCode::UNAUTHORIZED,
    );
    // No exp at all.
    let eternal = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "cust-42"}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("an HMAC key"),
    )
    .expect("token");
    assert_problem(
        &app.post(&eternal, &quote_body("cust-42")).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(app.stream_count().await, 0);
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let mut config = Config::for_memory(SECRET);
    config.auth.issuer = Some("https://issuer.test".into());
    config.auth.audience = Some("quotes-api".into());
    let app = spawn_app_with(config);
    let good = mint_hs256(
        SECRET,
        "cust-42",
        false,
        Duration::from_secs(60),
        Some("https://issuer.test"),
        Some("quotes-api"),
    )
    .expect("token");
    assert_eq!(
        app.post(&good, &quote_body("cust-42")).await.status,
        StatusCode::ACCEPTED
    );
    let wrong_issuer = mint_hs256(
        SECRET,
        "cust-42",
        false,
        Duration::from_secs(60),
        Some("https://evil.test"),
        Some("quotes-api"),
    )
    .expect("token");
    assert_problem(
        &app.post(&wrong_issuer, &quote_body("cust-42")).await,
        StatusCode::UNAUTHORIZED,
    );
    let wrong_audience = mint_hs256(
        SECRET,
        "cust-42",
        false,
        Duration::from_secs(60),
        Some("https://issuer.test"),
        Some("other"),
    )
    .expect("token");
    assert_problem(
        &app.post(&wrong_audience, &quote_body("cust-42")).await,
        StatusCode::UNAUTHORIZED,
    );
}

#[tokio::test]
async fn customers_act_only_for_themselves_and_agents_for_anyone() {
    let app = spawn_app();
    let ana = token("cust-42", false);
    let bob = token("cust-7", false);
    let agent = token("agent-1", true);

    let forbidden = app.post(&bob, &quote_body("cust-42")).await;
    assert_problem(&forbidden, StatusCode::FORBIDDEN);
    assert_eq!(app.stream_count().await, 0);

    let by_agent = app.post(&agent, &quote_body("cust-42")).await;
    assert_eq!(by_agent.status, StatusCode::ACCEPTED);
    let id = by_agent.body["quote_id"].as_str().expect("id");

    assert_eq!(
        app.get(Some(&ana), &format!("/v1/quotes/{id}"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get(Some(&agent), &format!("/v1/quotes/{id}"))
            .await
            .status,
        StatusCode::OK
    );
    // Another customer cannot tell the quote exists.
    assert_problem(
        &app.get(Some(&bob), &format!("/v1/quotes/{id}")).await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &app.get(Some(&bob), &format!("/v1/quotes/{id}/events"))
            .await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &app.get(
            Some(&ana),
            "/v1/quotes/0190d7a8-0000-7000-8000-000000000000",
        )
        .await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &app.get(Some(&ana), "/v1/quotes/not-a-uuid").await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn idempotency_key_replays_the_first_response_and_refuses_a_different_body() {
    let app = spawn_app();
    let ana = token("cust-42", false);
    let body = quote_body("cust-42").to_string();
    let first = app.post_raw(Some(&ana), body.clone(), Some("key-1")).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    // Same body, reformatted with other key order: still a retry.
    let reordered: Value = serde_json::from_str(&body).expect("json");
    let pretty = serde_json::to_string_pretty(&reordered).expect("json");
    let retry = app.post_raw(Some(&ana), pretty, Some("key-1")).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED);
    assert_eq!(retry.body, first.body);
    assert_eq!(
        retry.headers.get(header::LOCATION),
        first.headers.get(header::LOCATION)
    );
    assert_eq!(
        retry
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );

    let mut other = quote_body("cust-42");
    other["vehicles"][0]["annual_mileage"] = json!(5000);
    let reused = app
        .post_raw(Some(&ana), other.to_string(), Some("key-1"))
        .await;
    assert_problem(&reused, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&reused), vec!["Idempotency-Key"]);

    // Keys are per caller: another customer's identical key is independent.
    let bob = token("cust-7", false);
    let bob_reply = app
        .post_raw(Some(&bob), quote_body("cust-7").to_string(), Some("key-1"))
        .await;
    assert_eq!(bob_reply.status, StatusCode::ACCEPTED);
    assert_ne!(bob_reply.body["quote_id"], first.body["quote_id"]);

    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(app.stream_count().await, 2, "the retry wrote nothing");
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_one_quote() {
    let app = spawn_app();
    let ana = token("cust-42", false);
    let body = quote_body("cust-42").to_string();
    let replies = futures::future::join_all((0..8).map(|_| {
        let app_router = app.router.clone();
        let body = body.clone();
        let ana = ana.clone();
        async move {
            let request = Request::post("/v1/quotes")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, format!("Bearer {ana}"))
                .header("Idempotency-Key", "same-key")
                .body(Body::from(body))
                .expect("request");
            let response = app_router.oneshot(request).await.expect("response");
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).expect("json"),
            )
        }
    }))
    .await;
    let ids: std::collections::HashSet<String> = replies
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
            body["quote_id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1);
}

#[tokio::test]
async fn bad_input_gets_problem_json_naming_the_field() {
    let app = spawn_app();
    let ana = token("cust-42", false);

    let malformed = app.post_raw(Some(&ana), "{\"customer_id\": ", None).await;
    assert_problem(&malformed, StatusCode::BAD_REQUEST);

    let mut invalid = quote_body("cust-42");
    invalid["vehicles"][0]["vin"] = json!("1HGCM82633A004353");
    invalid["vehicles"][0]["garaging_zip"] = json!("2322");
    invalid["coverage"]["liability_limit"] = json!("10/20/10");
    invalid["drivers"][0]["date_of_birth"] = json!("2015-01-01");
    let reply = app.post(&ana, &invalid).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = problem_fields(&reply);
    for field in [
        "vehicles[0].vin",
        "vehicles[0].garaging_zip",
        "coverage.liability_limit",
        "drivers[0].date_of_birth",
    ] {
        assert!(
            fields.iter().any(|f| f == field),
            "{field} missing from {fields:?}"
        );
    }

    let mut wrong_type = quote_body("cust-42");
    wrong_type["vehicles"][0]["annual_mileage"] = json!("lots");
    let reply = app.post(&ana, &wrong_type).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&reply), vec!["vehicles[0].annual_mileage"]);

    let too_many: Vec<Value> = (0..5)
        .map(|_| quote_body("cust-42")["vehicles"][0].clone())
        .collect();
    let mut crowded = quote_body("cust-42");
    crowded["vehicles"] = json!(too_many);
    let reply = app.post(&ana, &crowded).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem_fields(&reply).iter().any(|f| f == "vehicles"));

    let huge = json!({"customer_id": "x".repeat(70 * 1024)}).to_string();
    assert_problem(
        &app.post_raw(Some(&ana), huge, None).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );

    let text = Request::post("/v1/quotes")
        .header(header::AUTHORIZATION, format!("Bearer {ana}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(quote_body("cust-42").to_string()))
        .expect("request");
    assert_problem(&app.send(text).await, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    assert_problem(
        &app.get(Some(&ana), "/v2/nothing").await,
        StatusCode::NOT_FOUND,
    );
    let delete = Request::delete("/v1/quotes")
        .body(Body::empty())
        .expect("request");
    assert_problem(&app.send(delete).await, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.stream_count().await, 0, "nothing was written");
}

#[tokio::test]
async fn time_travel_reads_the_state_as_of_a_version() {
    let app = spawn_app();
    let ana = token("cust-42", false);
    let reply = app.post(&ana, &quote_body("cust-42")).await;
    let id = reply.body["quote_id"].as_str().expect("id");
    let at_one = app
        .get(Some(&ana), &format!("/v1/quotes/{id}?version=1"))
        .await;
    assert_eq!(at_one.status, StatusCode::OK);
    assert_eq!(at_one.body["version"], 1);
    let before = app
        .get(
            Some(&ana),
            &format!("/v1/quotes/{id}?as_of=2000-01-01T00:00:00Z"),
        )
        .await;
    assert_problem(&before, StatusCode::NOT_FOUND);
    let bad = app
        .get(Some(&ana), &format!("/v1/quotes/{id}?as_of=yesterday"))
        .await;
    assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&bad), vec!["as_of"]);
}

/// A quote read from the store (time travel, or before the projector has it) is folded from
/// its latest snapshot: with SNAPSHOT_EVERY=1 the first read saves one, the next starts from
/// it, and both answer the same state; a version past the stream's end is not found.
#[tokio::test]
async fn time_travel_reads_start_from_the_latest_snapshot() {
    use event_store::SnapshotStore;
    let mut config = Config::for_memory(SECRET);
    config.snapshot_every = 1;
    let app = spawn_app_with(config);
    let ana = token("cust-42", false);
    let reply = app.post(&ana, &quote_body("cust-42")).await;
    let id = reply.body["quote_id"].as_str().expect("id");
    let stream_id = format!("quote#{id}");
    assert!(app
        .store
        .latest_snapshot(&stream_id, 1)
        .await
        .expect("latest")
        .is_none());

    let first = app
        .get(Some(&ana), &format!("/v1/quotes/{id}?version=1"))
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let snapshot = app
        .store
        .latest_snapshot(&stream_id, 1)
        .await
        .expect("latest")
        .expect("the read saved a snapshot");
    assert_eq!(snapshot.version, 1);
    assert_eq!(snapshot.state["customer_id"], "cust-42");
    let second = app
        .get(Some(&ana), &format!("/v1/quotes/{id}?version=1"))
        .await;
    assert_eq!(second.body, first.body, "the same state from the snapshot");
    let beyond = app
        .get(Some(&ana), &format!("/v1/quotes/{id}?version=2"))
        .await;
    assert_problem(&beyond, StatusCode::NOT_FOUND);
    let other = app
        .get(
            Some(&token("cust-7", false)),
            &format!("/v1/quotes/{id}?version=1"),
        )
        .await;
    assert_problem(&other, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn probes_and_openapi_answer() {
    let mut app = spawn_app();
    // Answers are cached for a couple of seconds in service; here every probe checks again.
    app.state.readiness = Arc::new(event_source::api::health::ReadinessCache::new(
        Duration::ZERO,
    ));
    app.router = router(app.state.clone());
    let health = app.get(None, "/healthz").await;
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let ready = app.get(None, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    app.sink.set_available(false);
    assert_problem(
        &app.get(None, "/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE,
    );
    app.sink.set_available(true);

    let doc = app.get(None, "/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    for path in [
        "/v1/quotes",
        "/v1/quotes/{quote_id}",
        "/v1/quotes/{quote_id}/events",
        "/healthz",
        "/readyz",
    ] {
        assert!(doc.body["paths"][path].is_object(), "openapi lacks {path}");
    }
    assert!(doc.body["components"]["schemas"]["QuoteRequestInput"].is_object());
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn requests_succeed_while_the_stream_is_down_and_are_published_when_it_returns() {
    let mut config = Config::for_memory(SECRET);
    config.relay.sweep_interval = Duration::from_millis(50);
    config.relay.sweep_grace = Duration::from_millis(100);
    let app = spawn_app_with(config);
    app.sink.set_available(false);
    let ana = token("cust-42", false);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let reply = app.post(&ana, &quote_body("cust-42")).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        ids.push(reply.body["quote_id"].as_str().expect("id").to_owned());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.sink.records().is_empty());
    app.sink.set_available(true);
    for _ in 0..200 {
        if app.sink.records().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let published: std::collections::HashSet<String> = app
        .sink
        .records()
        .into_iter()
        .map(|e| e.stream_id)
        .collect();
    for id in ids {
        assert!(
            published.contains(&format!("quote#{id}")),
            "{id} not published"
        );
    }
}

#[tokio::test]
async fn customers_list_their_quotes_newest_first_from_the_read_model() {
    use quote_read_model::ReadModel;
    let app = spawn_app();
    let ana = token("cust-42", false);
    let bob = token("cust-7", false);
    let agent = token("agent-1", true);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let reply = app.post(&ana, &quote_body("cust-42")).await;
        ids.push(reply.body["quote_id"].as_str().expect("id").to_owned());
    }
    app.post(&bob, &quote_body("cust-7")).await;
    // What the projector would write: the summaries (answered by folding the store for now).
    for id in &ids {
        let summary = app.get(Some(&ana), &format!("/v1/quotes/{id}")).await;
        let summary: quote_read_model::QuoteSummary =
            serde_json::from_value(summary.body).expect("summary");
        app.read_model.upsert(&summary).await.expect("upsert");
    }
    let first = app
        .get(Some(&ana), "/v1/customers/cust-42/quotes?limit=2")
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let listed: Vec<&str> = first.body["quotes"]
        .as_array()
        .expect("quotes")
        .iter()
        .filter_map(|q| q["quote_id"].as_str())
        .collect();
    assert_eq!(
        listed,
        vec![ids[2].as_str(), ids[1].as_str()],
        "newest first"
    );
    let token_param = first.body["next_page_token"].as_str().expect("more pages");
    let second = app
        .get(
            Some(&ana),
            &format!("/v1/customers/cust-42/quotes?limit=2&page_token={token_param}"),
        )
        .await;
    let listed: Vec<&str> = second.body["quotes"]
        .as_array()
        .expect("quotes")
        .iter()
        .filter_map(|q| q["quote_id"].as_str())
        .collect();
    assert_eq!(listed, vec![ids[0].as_str()]);
    assert!(second.body.get("next_page_token").is_none());

    // The read model answers GET /v1/quotes/{id} now, with the same visibility rules.
    assert_eq!(
        app.get(Some(&ana), &format!("/v1/quotes/{}", ids[0]))
            .await
            .status,
        StatusCode::OK
    );
    assert_problem(
        &app.get(Some(&bob), &format!("/v1/quotes/{}", ids[0])).await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &app.get(Some(&bob), "/v1/customers/cust-42/quotes").await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(
        app.get(Some(&agent), "/v1/customers/cust-42/quotes")
            .await
            .body["quotes"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let bad_limit = app
        .get(Some(&ana), "/v1/customers/cust-42/quotes?limit=0")
        .await;
    assert_problem(&bad_limit, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&bad_limit), vec!["limit"]);
    let bad_token = app
        .get(Some(&ana), "/v1/customers/cust-42/quotes?page_token=bm9wZQ")
        .await;
    assert_problem(&bad_token, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&bad_token), vec!["page_token"]);
}

// ---------------------------------------------------------------------------------------------
// Hardening (issue 9): client metadata, tokens, authorization after normalisation, keys, probes,
// page tokens, problem+json everywhere, the OpenAPI document.
// ---------------------------------------------------------------------------------------------

/// A read model that counts the calls reaching it and can fail like a backend.
#[derive(Debug, Default)]
struct CountingReadModel {
    inner: quote_read_model::InMemoryReadModel,
    pings: std::sync::atomic::AtomicUsize,
    lists: std::sync::atomic::AtomicUsize,
    failing: std::sync::atomic::AtomicBool,
}

impl CountingReadModel {
    fn backend_error(&self) -> Result<(), quote_read_model::ReadModelError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            Err(quote_read_model::ReadModelError::Backend(
                "ValidationException: table arn:aws:dynamodb:secret-table key too large".into(),
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl quote_read_model::ReadModel for CountingReadModel {
    async fn upsert(
        &self,
        summary: &quote_read_model::QuoteSummary,
    ) -> Result<quote_read_model::Upsert, quote_read_model::ReadModelError> {
        self.inner.upsert(summary).await
    }

    async fn get(
        &self,
        quote_id: &str,
    ) -> Result<Option<quote_read_model::QuoteSummary>, quote_read_model::ReadModelError> {
        self.backend_error()?;
        self.inner.get(quote_id).await
    }

    async fn list_by_customer(
        &self,
        customer_id: &str,
        limit: usize,
        page_token: Option<&str>,
    ) -> Result<quote_read_model::Page, quote_read_model::ReadModelError> {
        self.lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.backend_error()?;
        self.inner
            .list_by_customer(customer_id, limit, page_token)
            .await
    }

    async fn pending_before(
        &self,
        before: time::OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<quote_read_model::PendingQuote>, quote_read_model::ReadModelError> {
        self.inner.pending_before(before, limit).await
    }

    async fn read_control(
        &self,
        name: &str,
    ) -> Result<Option<quote_read_model::ControlDocument>, quote_read_model::ReadModelError> {
        self.inner.read_control(name).await
    }

    async fn write_control(
        &self,
        name: &str,
        body: &str,
        expected: Option<u64>,
    ) -> Result<u64, quote_read_model::ReadModelError> {
        self.inner.write_control(name, body, expected).await
    }

    async fn ping(&self) -> Result<(), quote_read_model::ReadModelError> {
        self.pings.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.backend_error()
    }
}

fn spawn_counting_app() -> (TestApp, Arc<CountingReadModel>) {
    let counting = Arc::new(CountingReadModel::default());
    let store = Arc::new(InMemoryEventStore::new());
    let sink = Arc::new(InMemorySink::new());
    let shutdown = CancellationToken::new();
    let service = Service::with_read_model(
        &Config::for_memory(SECRET),
        store.clone(),
        sink.clone(),
        counting.clone(),
        shutdown.clone(),
    );
    let app = TestApp {
        read_model: Arc::new(quote_read_model::InMemoryReadModel::new()),
        router: router(service.state.clone()),
        state: service.state,
        store,
        sink,
        _shutdown: shutdown.drop_guard(),
    };
    (app, counting)
}

fn signed(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("an HMAC key"),
    )
    .expect("token")
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn stored_events(app: &TestApp, quote_id: &str) -> Vec<event_store::EventEnvelope> {
    let id: quote_domain::quote::QuoteId = quote_id.parse().expect("quote id");
    app.store
        .load(&id.stream_id(), event_store::LoadBound::Latest)
        .await
        .expect("load")
}

#[tokio::test]
async fn an_oversized_request_id_is_replaced_by_a_bounded_one_and_never_stored() {
    let app = spawn_app();
    let huge = "r".repeat(200 * 1024);
    let request = Request::post("/v1/quotes")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", token("cust-42", false)),
        )
        .header("x-request-id", huge.as_str())
        .body(Body::from(quote_body("cust-42").to_string()))
        .expect("request");
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let echoed = reply.headers["x-request-id"].to_str().expect("id");
    assert!(
        echoed.len() <= 128 && echoed != huge,
        "echoed {} bytes",
        echoed.len()
    );
    let quote_id = reply.body["quote_id"].as_str().expect("id");
    let events = stored_events(&app, quote_id).await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert!(
        event.correlation_id.len() <= 128,
        "{}",
        event.correlation_id.len()
    );
    assert_eq!(event.correlation_id, echoed);
    assert_eq!(event.causation_id.as_deref(), Some(echoed));

    // Not visible ASCII: replaced too; a valid id is kept.
    for (sent, kept) in [("id with spaces", false), ("req-0001", true)] {
        let request = Request::post("/v1/quotes")
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", token("cust-42", false)),
            )
            .header("x-request-id", sent)
            .body(Body::from(quote_body("cust-42").to_string()))
            .expect("request");
        let reply = app.send(request).await;
        let events = stored_events(&app, reply.body["quote_id"].as_str().expect("id")).await;
        assert_eq!(events[0].correlation_id == sent, kept, "{sent}");
    }
}

#[tokio::test]
async fn tracestate_outside_the_w3c_limits_is_dropped() {
    let app = spawn_app();
    let post = |tracestate: String| {
        Request::post("/v1/quotes")
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", token("cust-42", false)),
            )
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .header("tracestate", tracestate)
            .body(Body::from(quote_body("cust-42").to_string()))
            .expect("request")
    };
    let many: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
    for (state, kept) in [
        ("rojo=00f067aa0ba902b7".to_owned(), true),
        (many.join(","), false),
        (format!("a={}", "x".repeat(16 * 1024)), false),
        ("BAD KEY=1".to_owned(), false),
    ] {
        let reply = app.send(post(state.clone())).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        let events = stored_events(&app, reply.body["quote_id"].as_str().expect("id")).await;
        assert_eq!(events[0].tracestate.is_some(), kept, "{state:.40}");
        let traceparent = events[0].traceparent.as_deref().expect("traceparent");
        assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    }
    // An invalid traceparent starts a new trace and takes no tracestate along.
    let request = Request::post("/v1/quotes")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", token("cust-42", false)),
        )
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-zz-01")
        .header("tracestate", "rojo=1")
        .body(Body::from(quote_body("cust-42").to_string()))
        .expect("request");
    let reply = app.send(request).await;
    let events = stored_events(&app, reply.body["quote_id"].as_str().expect("id")).await;
    assert!(events[0].tracestate.is_none());
}

#[tokio::test]
async fn tokens_not_yet_valid_or_oversized_are_refused() {
    let app = spawn_app();
    let early =
        signed(&json!({"sub": "cust-42", "exp": now_secs() + 600, "nbf": now_secs() + 300}));
    assert_problem(
        &app.post(&early, &quote_body("cust-42")).await,
        StatusCode::UNAUTHORIZED,
    );
    // Within the leeway, like exp.
    let skewed =
        signed(&json!({"sub": "cust-42", "exp": now_secs() + 600, "nbf": now_secs() + 10}));
    assert_eq!(
        app.post(&skewed, &quote_body("cust-42")).await.status,
        StatusCode::ACCEPTED
    );
    let padded = signed(&json!({"sub": "cust-42", "exp": now_secs() + 600,
                                "pad": "p".repeat(100 * 1024)}));
    assert_problem(
        &app.post(&padded, &quote_body("cust-42")).await,
        StatusCode::UNAUTHORIZED,
    );
    let long_subject = signed(&json!({"sub": "a".repeat(2500), "exp": now_secs() + 600,
                                      "scope": "quotes:agent"}));
    assert_problem(
        &app.post_raw(
            Some(&long_subject),
            quote_body("cust-42").to_string(),
            Some("k"),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(app.stream_count().await, 1);
}

#[tokio::test]
async fn audience_may_be_a_string_or_an_array() {
    let mut config = Config::for_memory(SECRET);
    config.auth.audience = Some("quotes-api".into());
    let app = spawn_app_with(config);
    for (aud, status) in [
        (json!("quotes-api"), StatusCode::ACCEPTED),
        (json!(["other", "quotes-api"]), StatusCode::ACCEPTED),
        (json!(["other"]), StatusCode::UNAUTHORIZED),
    ] {
        let token = signed(&json!({"sub": "cust-42", "exp": now_secs() + 600, "aud": aud}));
        let reply = app.post(&token, &quote_body("cust-42")).await;
        assert_eq!(reply.status, status, "aud {aud}: {}", reply.body);
    }
}

#[tokio::test]
async fn a_subject_is_compared_with_the_normalised_customer_id() {
    let app = spawn_app();
    for subject in ["cust-42 ", "cust-42\t", "cust-42\n", " cust-42"] {
        let sneaky = token(subject, false);
        let reply = app.post(&sneaky, &quote_body(subject)).await;
        assert_problem(&reply, StatusCode::FORBIDDEN);
        assert_problem(
            &app.get(Some(&sneaky), "/v1/customers/cust-42/quotes").await,
            StatusCode::NOT_FOUND,
        );
    }
    assert_eq!(app.stream_count().await, 0, "nothing written for cust-42");
    // The path's id is not trimmed either: only the id exactly as issued names a customer.
    let ana = token("cust-42", false);
    assert_problem(
        &app.get(Some(&ana), "/v1/customers/cust-42%20/quotes").await,
        StatusCode::NOT_FOUND,
    );
    // And the owner still writes (and an id sent with spaces is normalised before the check).
    let reply = app.post(&ana, &quote_body(" cust-42 ")).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
}

#[tokio::test]
async fn idempotency_keys_of_subjects_containing_a_separator_do_not_collide() {
    let app = spawn_app();
    let body = quote_body("cust-42").to_string();
    let first = app
        .post_raw(Some(&token("a#b", true)), body.clone(), Some("c"))
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let second = app
        .post_raw(Some(&token("a", true)), body, Some("b#c"))
        .await;
    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert!(second.headers.get("idempotent-replayed").is_none());
    assert_ne!(second.body["quote_id"], first.body["quote_id"]);
}

#[tokio::test]
async fn readiness_is_cached_and_a_flood_makes_one_round_of_calls() {
    use std::sync::atomic::Ordering;
    let (mut app, counting) = spawn_counting_app();
    app.state.readiness = Arc::new(event_source::api::health::ReadinessCache::new(
        Duration::from_secs(3600),
    ));
    app.router = router(app.state.clone());
    let replies = futures::future::join_all((0..50).map(|_| app.get(None, "/readyz"))).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    assert_eq!(
        counting.pings.load(Ordering::SeqCst),
        1,
        "one round for 50 probes"
    );

    // Without caching each probe is a round (what the TTL bounds).
    app.state.readiness = Arc::new(event_source::api::health::ReadinessCache::new(
        Duration::ZERO,
    ));
    app.router = router(app.state.clone());
    for _ in 0..3 {
        app.get(None, "/readyz").await;
    }
    assert_eq!(counting.pings.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn long_page_tokens_never_reach_the_read_model_and_backend_messages_never_reach_clients() {
    use std::sync::atomic::Ordering;
    let (app, counting) = spawn_counting_app();
    let ana = token("cust-42", false);
    let long = "A".repeat(4096);
    let reply = app
        .get(
            Some(&ana),
            &format!("/v1/customers/cust-42/quotes?page_token={long}"),
        )
        .await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&reply), vec!["page_token"]);
    assert_eq!(counting.lists.load(Ordering::SeqCst), 0);

    counting.failing.store(true, Ordering::SeqCst);
    let reply = app.get(Some(&ana), "/v1/customers/cust-42/quotes").await;
    assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE);
    let text = reply.body.to_string();
    assert!(
        !text.contains("secret-table") && !text.contains("ValidationException"),
        "{text}"
    );
    let ready = app.get(None, "/readyz").await;
    assert!(!ready.body.to_string().contains("secret-table"));
}

#[tokio::test]
async fn every_error_is_problem_json() {
    let app = spawn_app();
    let ana = token("cust-42", false);
    let reply = app.post(&ana, &quote_body("cust-42")).await;
    let id = reply.body["quote_id"].as_str().expect("id").to_owned();
    for (path, status, field) in [
        (
            "/v1/customers/cust-42/quotes?limit=-1",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("limit"),
        ),
        (
            "/v1/customers/cust-42/quotes?limit=abc",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("limit"),
        ),
        (
            "/v1/customers/cust-42/quotes?limit=101",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("limit"),
        ),
        (
            &format!("/v1/quotes/{id}?version=abc"),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("version"),
        ),
        (
            &format!("/v1/quotes/{id}?version=-1"),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("version"),
        ),
        (
            &format!("/v1/quotes/{id}?version=0"),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("version"),
        ),
        ("/v1/quotes/%FF%FE", StatusCode::NOT_FOUND, None),
        ("/v1/quotes/%FF/events", StatusCode::NOT_FOUND, None),
        ("/v1/customers/%C3%28/quotes", StatusCode::NOT_FOUND, None),
        ("/nowhere", StatusCode::NOT_FOUND, None),
    ] {
        let reply = app.get(Some(&ana), path).await;
        assert_problem(&reply, status);
        if let Some(field) = field {
            assert_eq!(problem_fields(&reply), vec![field], "{path}");
        }
    }
    let put = Request::put(format!("/v1/quotes/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {ana}"))
        .body(Body::empty())
        .expect("request");
    assert_problem(&app.send(put).await, StatusCode::METHOD_NOT_ALLOWED);
    let no_type = Request::post("/v1/quotes")
        .header(header::AUTHORIZATION, format!("Bearer {ana}"))
        .body(Body::from(quote_body("cust-42").to_string()))
        .expect("request");
    assert_problem(&app.send(no_type).await, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let key_twice = Request::post("/v1/quotes")
        .header(header::AUTHORIZATION, format!("Bearer {ana}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .body(Body::from(quote_body("cust-42").to_string()))
        .expect("request");
    assert_problem(&app.send(key_twice).await, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_openapi_document_describes_the_server() {
    let app = spawn_app();
    let doc = app.get(None, "/openapi.json").await.body;
    let params = |path: &str, method: &str| -> Vec<(String, String, bool)> {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|p| {
                        (
                            p["name"].as_str().unwrap_or_default().to_owned(),
                            p["in"].as_str().unwrap_or_default().to_owned(),
                            p["required"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let list = params("/v1/customers/{customer_id}/quotes", "get");
    assert!(
        list.contains(&("limit".into(), "query".into(), false)),
        "{list:?}"
    );
    assert!(
        list.contains(&("page_token".into(), "query".into(), false)),
        "{list:?}"
    );
    let get = params("/v1/quotes/{quote_id}", "get");
    assert!(
        get.contains(&("version".into(), "query".into(), false)),
        "{get:?}"
    );
    assert!(
        get.contains(&("as_of".into(), "query".into(), false)),
        "{get:?}"
    );
    let limit = doc["paths"]["/v1/customers/{customer_id}/quotes"]["get"]["parameters"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["name"] == "limit"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(limit["schema"]["maximum"], 100);
    assert_eq!(limit["schema"]["minimum"], 1);

    for (path, method, statuses) in [
        (
            "/v1/quotes",
            "post",
            &[
                "202", "400", "401", "403", "409", "413", "415", "422", "500", "503",
            ][..],
        ),
        (
            "/v1/quotes/{quote_id}",
            "get",
            &["200", "401", "404", "422", "500", "503"][..],
        ),
        (
            "/v1/quotes/{quote_id}/events",
            "get",
            &["200", "401", "404", "503"][..],
        ),
        (
            "/v1/customers/{customer_id}/quotes",
            "get",
            &["200", "401", "404", "422", "503"][..],
        ),
    ] {
        for status in statuses {
            assert!(
                doc["paths"][path][method]["responses"][status].is_object(),
                "{method} {path} does not document {status}"
            );
        }
    }
    let schemas = &doc["components"]["schemas"];
    let input = &schemas["QuoteRequestInput"];
    assert_eq!(input["properties"]["vehicles"]["maxItems"], 4);
    assert_eq!(input["properties"]["drivers"]["maxItems"], 6);
    assert!(input["example"].is_object(), "{input}");
    assert!(schemas["RawVehicle"]["properties"]["vin"]["pattern"].is_string());
    assert_eq!(
        schemas["RawVehicle"]["properties"]["use"]["enum"],
        json!(["commute", "pleasure", "business"])
    );
    let key = doc["paths"]["/v1/quotes"]["post"]["parameters"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["name"] == "Idempotency-Key"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(key["schema"]["maxLength"], 255);
}

fn updated_micros_of(sent: &Sent) -> u64 {
    sent.id.parse().expect("a numeric id")
}

/// One Server-Sent Event as a client parses it.
#[derive(Debug, PartialEq)]
struct Sent {
    id: String,
    event: String,
    data: Value,
}

/// An open `GET /v1/quotes/{id}/stream`: its status and body, read event by event.
struct OpenStream {
    status: StatusCode,
    content_type: Option<String>,
    body: Body,
    buffer: String,
}

impl OpenStream {
    /// The next event; `None` when the stream ended. Panics after 5 s without one.
    async fn next(&mut self) -> Option<Sent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}:")))
                        .map(|v| v.trim_start().to_owned())
                };
                // Comment lines (keep-alives) carry no event.
                if let (Some(id), Some(event), Some(data)) =
                    (field("id"), field("event"), field("data"))
                {
                    return Some(Sent {
                        id,
                        event,
                        data: serde_json::from_str(&data).expect("JSON data"),
                    });
                }
                continue;
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .expect("an event within 5 s");
            match frame {
                None => return None,
                Some(frame) => {
                    if let Ok(data) = frame.expect("frame").into_data() {
                        self.buffer.push_str(&String::from_utf8_lossy(&data));
                    }
                }
            }
        }
    }
}

impl TestApp {
    async fn open_stream(
        &self,
        token: Option<&str>,
        quote_id: &str,
        last_event_id: Option<&str>,
    ) -> OpenStream {
        self.open_stream_at(
            token,
            &format!("/v1/quotes/{quote_id}/stream"),
            last_event_id,
        )
        .await
    }

    async fn open_stream_at(
        &self,
        token: Option<&str>,
        path: &str,
        last_event_id: Option<&str>,
    ) -> OpenStream {
        let mut builder = Request::get(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(id) = last_event_id {
            builder = builder.header("Last-Event-ID", id);
        }
        let response = self
            .router
            .clone()
            .oneshot(builder.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        OpenStream {
            status: response.status(),
            content_type: response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// A new quote of `customer`, requested with `token`: its id.
    async fn requested(&self, token: &str, customer: &str) -> String {
        self.post(token, &quote_body(customer)).await.body["quote_id"]
            .as_str()
            .expect("quote_id")
            .to_owned()
    }

    /// Appends `event` to the quote's stream, as a consumer service would.
    async fn record(&self, quote_id: &str, event: &quote_domain::quote::QuoteEvent) {
        let id: quote_domain::quote::QuoteId = quote_id.parse().expect("quote id");
        let head = self
            .store
            .stream_head(&id.stream_id())
            .await
            .expect("head")
            .expect("stream");
        self.store
            .append(event_store::AppendRequest {
                stream_id: id.stream_id(),
                expected_version: head.version,
                events: vec![event_store::NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: event.event_type().to_owned(),
                    schema_version: event.schema_version(),
                    occurred_at: time::OffsetDateTime::now_utc(),
                    correlation_id: "stream-test".into(),
                    causation_id: None,
                    traceparent: None,
                    tracestate: None,
                    actor: "test".into(),
                    data: event.to_data().expect("data"),
                }],
                idempotency: None,
                customer_id: None,
            })
            .await
            .expect("append");
    }
}

fn referral() -> quote_domain::quote::QuoteEvent {
    quote_domain::quote::QuoteEvent::QuoteReferred(quote_domain::quote::QuoteReferred {
        reasons: vec!["manual review".into()],
    })
}

#[tokio::test]
async fn a_quote_stream_sends_each_event_as_recorded_and_ends_after_the_outcome() {
    let app = spawn_app();
    let ana = token("ana", false);
    let quote_id = app.requested(&ana, "ana").await;
    let mut stream = app.open_stream(Some(&ana), &quote_id, None).await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.content_type.as_deref(), Some("text/event-stream"));
    let first = stream.next().await.expect("the request");
    assert_eq!(
        (first.id.as_str(), first.event.as_str()),
        ("1", "QuoteRequested")
    );
    assert_eq!(first.data["version"], 1);
    assert_eq!(first.data["stream_id"], format!("quote#{quote_id}"));

    // Recorded while the stream is open (by another process, as far as the API knows).
    app.record(&quote_id, &referral()).await;
    let outcome = stream.next().await.expect("the outcome");
    assert_eq!(
        (outcome.id.as_str(), outcome.event.as_str()),
        ("2", "QuoteReferred")
    );
    assert_eq!(outcome.data["data"]["reasons"], json!(["manual review"]));
    assert_eq!(
        stream.next().await,
        None,
        "the stream ends after the outcome"
    );
}

#[tokio::test]
async fn a_quote_stream_resumes_after_the_last_event_id_without_gap_or_repeat() {
    let app = spawn_app();
    let ana = token("ana", false);
    let quote_id = app.requested(&ana, "ana").await;
    app.record(&quote_id, &referral()).await;
    let mut resumed = app.open_stream(Some(&ana), &quote_id, Some("1")).await;
    let next = resumed.next().await.expect("the event after 1");
    assert_eq!(next.id, "2");
    assert_eq!(resumed.next().await, None);
    // After the outcome: nothing more, and the stream ends at once.
    let mut done = app.open_stream(Some(&ana), &quote_id, Some("2")).await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.next().await, None);
}

#[tokio::test]
async fn a_quote_stream_has_the_json_routes_authorization_and_bounded_input() {
    let app = spawn_app();
    let ana = token("ana", false);
    let quote_id = app.requested(&ana, "ana").await;
    let stranger = app
        .open_stream(Some(&token("bob", false)), &quote_id, None)
        .await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
    let anonymous = app.open_stream(None, &quote_id, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let agent = app
        .open_stream(Some(&token("agent-1", true)), &quote_id, None)
        .await;
    assert_eq!(agent.status, StatusCode::OK);
    for bad in ["abc", "-1", "99999999999999999999999"] {
        let reply = app.open_stream(Some(&ana), &quote_id, Some(bad)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            reply.content_type.as_deref(),
            Some("application/problem+json"),
            "{bad}"
        );
    }
    let unknown = app
        .open_stream(Some(&ana), "019a0000-0000-7000-8000-000000000001", None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_customer_stream_sends_its_quotes_then_each_change_and_resumes_after_an_id() {
    use quote_read_model::ReadModel;
    let app = spawn_app();
    let summary = |n: u32, version: u64| quote_read_model::contract::summary("ana", n, version);
    app.read_model.upsert(&summary(1, 1)).await.expect("upsert");
    app.read_model.upsert(&summary(2, 1)).await.expect("upsert");
    let ana = token("ana", false);
    let path = "/v1/customers/ana/quotes/stream";
    let mut stream = app.open_stream_at(Some(&ana), path, None).await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.content_type.as_deref(), Some("text/event-stream"));
    let first = stream.next().await.expect("a quote");
    let second = stream.next().await.expect("a quote");
    assert_eq!(
        (first.event.as_str(), second.event.as_str()),
        ("quote", "quote")
    );
    assert_eq!(first.data["quote_id"], json!(summary(1, 1).quote_id));
    assert_eq!(second.data["quote_id"], json!(summary(2, 1).quote_id));

    // A change of the first quote (its summary at version 4 is quoted) comes as it happens.
    let mut changed = summary(1, 4);
    changed.updated_at += time::Duration::hours(1);
    app.read_model.upsert(&changed).await.expect("upsert");
    let update = stream.next().await.expect("the change");
    assert_eq!(update.data["status"], "quoted");
    assert_eq!(update.data["version"], 4);

    // Resuming after the second event sends what changed after it, and again what changed in
    // the overlap before it (summary 2, a second after summary 1's first version, which is
    // older than the overlap and not sent again).
    let mut resumed = app.open_stream_at(Some(&ana), path, Some(&second.id)).await;
    let again = resumed.next().await.expect("the overlap");
    assert_eq!(again.id, second.id);
    let next = resumed.next().await.expect("the change");
    assert_eq!(next.id, update.id);
    assert_eq!(next.data["version"], 4);
    let long_after = (updated_micros_of(&second) + 31_000_000).to_string();
    let mut late = app
        .open_stream_at(Some(&ana), path, Some(&long_after))
        .await;
    assert_eq!(late.next().await.expect("the change").id, update.id);

    // Another customer's stream is not visible; an agent's is.
    let stranger = app
        .open_stream_at(Some(&token("bob", false)), path, None)
        .await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
    let agent = app
        .open_stream_at(Some(&token("agent-1", true)), path, None)
        .await;
    assert_eq!(agent.status, StatusCode::OK);
    let bad = app.open_stream_at(Some(&ana), path, Some("x")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// One consumer application's tables, as the operations view reads them: a lease owned by
/// `worker-1` that reported its progress, and one dead letter.
async fn watched_projector() -> event_source::ops::WatchedApplication {
    use kinesis_consumer::dead_letter::{DeadLetter, DeadLetterStore, InMemoryDeadLetters};
    use kinesis_consumer::lease_table::InMemoryLeaseTable;
    use kinesis_consumer::{Checkpoint, Lease, LeaseTable, Record, ShardProgress};
    let leases = Arc::new(InMemoryLeaseTable::new());
    let lease = Lease::new("shardId-000000000000", Checkpoint::TrimHorizon);
    leases.create_if_absent(&lease).await.expect("create");
    let held = leases.take(&lease, "worker-1").await.expect("take");
    leases
        .renew(&Lease {
            progress: Some(ShardProgress {
                millis_behind_latest: 4_200,
                records_since_checkpoint: 7,
            }),
            ..held
        })
        .await
        .expect("renew");
    leases
        .create_if_absent(&Lease::new("shardId-000000000001", Checkpoint::TrimHorizon))
        .await
        .expect("create");
    let dead_letters = Arc::new(InMemoryDeadLetters::new());
    dead_letters
        .put(&DeadLetter {
            application: "projector".into(),
            shard_id: "shardId-000000000000".into(),
            record: Record {
                sequence_number: "4959".into(),
                sub_sequence_number: 0,
                partition_key: "019a0000-0000-7000-8000-000000000001".into(),
                data: b"{}".to_vec(),
                approximate_arrival: None,
            },
            error: "cannot fold the quote".into(),
            attempts: 5,
            failed_at: time::OffsetDateTime::now_utc(),
            blocked_behind: None,
        })
        .await
        .expect("put");
    event_source::ops::WatchedApplication {
        name: "projector".into(),
        leases,
        dead_letters,
    }
}

#[tokio::test]
async fn the_operations_view_shows_leases_lag_dead_letters_and_the_outbox_to_operators_only() {
    let app = spawn_app_watching(Config::for_memory(SECRET), vec![watched_projector().await]);
    // A commit the relay has not published yet (the stream is down) is in the outbox.
    app.sink.set_available(false);
    let quote_id = app.requested(&token("ana", false), "ana").await;

    let customer = app.get(Some(&token("ana", false)), "/v1/ops").await;
    assert_problem(&customer, StatusCode::FORBIDDEN);
    let stream = app
        .open_stream_at(Some(&token("ana", false)), "/v1/ops/stream", None)
        .await;
    assert_eq!(stream.status, StatusCode::FORBIDDEN);
    let operator = mint_ops_reader("oncall-1");

    let view = app.get(Some(&operator), "/v1/ops").await;
    assert_eq!(view.status, StatusCode::OK, "{:?}", view.body);
    let projector = &view.body["applications"][0];
    assert_eq!(projector["name"], "projector");
    assert_eq!(projector["max_millis_behind_latest"], 4_200);
    assert_eq!(projector["shards"][0]["owner"], "worker-1");
    assert_eq!(projector["shards"][0]["state"], "active");
    assert_eq!(
        projector["shards"][0]["progress"],
        json!({"millis_behind_latest": 4_200, "records_since_checkpoint": 7})
    );
    assert_eq!(projector["shards"][1]["state"], "unowned");
    assert_eq!(projector["dead_letters"]["count"], 1);
    assert_eq!(
        projector["dead_letters"]["newest"][0]["error"],
        "cannot fold the quote"
    );
    assert_eq!(view.body["outbox"]["backlog"]["events"], 1);
    assert_eq!(
        view.body["outbox"]["backlog"]["oldest"]["stream_id"],
        json!(format!("quote#{quote_id}"))
    );

    // The stream sends the view, then a newer one each second; an agent may read it too.
    let mut live = app
        .open_stream_at(Some(&token("agent-1", true)), "/v1/ops/stream", None)
        .await;
    assert_eq!(live.status, StatusCode::OK);
    let first = live.next().await.expect("a view");
    assert_eq!(first.event, "ops");
    assert_eq!(first.data["applications"][0]["dead_letters"]["count"], 1);
    // Once the stream is back, the relay's sweep publishes the commit and the view shows it.
    app.sink.set_available(true);
    let id = |sent: &Sent| sent.id.parse::<u64>().expect("a numeric id");
    let mut last = id(&first);
    for _ in 0..60 {
        let next = live.next().await.expect("a newer view");
        assert!(id(&next) > last, "views come in order");
        last = id(&next);
        if next.data["outbox"]["backlog"]["events"] == 0 {
            return;
        }
    }
    panic!("the outbox never emptied in the live view");
}

fn mint_ops_reader(subject: &str) -> String {
    signed(&json!({
        "sub": subject,
        "exp": now_secs() + 600,
        "scope": "ops:read",
    }))
}

#[tokio::test]
async fn the_pages_and_assets_are_served_compiled_in_with_a_strict_policy_and_etags() {
    let app = spawn_app();
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/docs", "text/html; charset=utf-8"),
        ("/assets/dom.js", "text/javascript; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/docs.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
    ] {
        let page = app.get(None, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(page.headers[header::CONTENT_TYPE], content_type, "{path}");
        let policy = page.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
        let etag = page.headers[header::ETAG].clone();
        let again = app
            .send(
                Request::get(path)
                    .header(header::IF_NONE_MATCH, etag)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
    }
    // Pages reach nothing but this server: no scheme-qualified address in any asset.
    let script = app.get(None, "/assets/app.js").await;
    let text = script.body.as_str().expect("text");
    assert!(!text.contains("http://") && !text.contains("https://"));
    assert!(event_source::api::web::total_bytes() < 150 * 1024);
    assert_problem(
        &app.get(None, "/assets/nothing.js").await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &app.get(None, "/assets/index.html").await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn the_dev_sign_in_mints_a_working_token_embedded_and_is_refused_otherwise() {
    let app = spawn_app_with(Config::for_memory(event_source::config::DEV_SECRET));
    let sign_in = |body: Value| {
        Request::post("/v1/dev/sign-in")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let signed = app.send(sign_in(json!({"customer_id": "cust-7"}))).await;
    assert_eq!(signed.status, StatusCode::OK, "{:?}", signed.body);
    let minted = signed.body["token"].as_str().expect("token").to_owned();
    assert_eq!(signed.body["token_type"], "Bearer");
    let own = app.get(Some(&minted), "/v1/customers/cust-7/quotes").await;
    assert_eq!(own.status, StatusCode::OK);
    let other = app.get(Some(&minted), "/v1/customers/cust-8/quotes").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "not an agent");
    let bad = app.send(sign_in(json!({"customer_id": "no spaces"}))).await;
    assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&bad), vec!["customer_id".to_owned()]);

    // On AWS, and embedded with a secret of the operator's own, nobody mints tokens over the
    // network.
    let mut aws = Config::for_memory(event_source::config::DEV_SECRET);
    aws.backend = event_source::config::Backend::Aws;
    for refusing in [spawn_app_with(aws), spawn_app()] {
        let refused = refusing
            .send(sign_in(json!({"customer_id": "cust-7"})))
            .await;
        assert_problem(&refused, StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn stopping_the_server_ends_every_open_stream_and_refuses_new_ones() {
    let app = spawn_app();
    let ana = token("ana", false);
    let path = "/v1/customers/ana/quotes/stream";
    let mut open = app.open_stream_at(Some(&ana), path, None).await;
    assert_eq!(open.status, StatusCode::OK);
    app.state.open_streams.close_all();
    assert!(open.next().await.is_none(), "the stream ended");
    let late = app.open_stream_at(Some(&ana), path, None).await;
    assert_eq!(late.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_thousand_streams_open_on_one_process_each_get_the_next_event() {
    const STREAMS: usize = 1_000;
    let app = spawn_app();
    let ana = token("ana", false);
    let quote_id = app.requested(&ana, "ana").await;
    let mut streams = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        let mut stream = app.open_stream(Some(&ana), &quote_id, None).await;
        assert_eq!(stream.status, StatusCode::OK);
        let first = stream.next().await.expect("the request");
        assert_eq!(first.id, "1");
        streams.push(stream);
    }
    app.record(&quote_id, &referral()).await;
    let received = futures::future::join_all(streams.iter_mut().map(|s| s.next())).await;
    assert!(received.iter().all(|sent| sent
        .as_ref()
        .is_some_and(|s| s.id == "2" && s.event == "QuoteReferred")));
    // The outcome ends every stream.
    let ended = futures::future::join_all(streams.iter_mut().map(|s| s.next())).await;
    assert!(ended.iter().all(Option::is_none));
}
