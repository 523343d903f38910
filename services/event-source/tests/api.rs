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
    );
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
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
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
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
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

#[tokio::test]
async fn probes_and_openapi_answer() {
    let app = spawn_app();
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
    let _ = &app.state;
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
