//! The enricher against vPIC-shaped answers served by wiremock: decoded VINs, unknown VINs and
//! an unavailable vPIC (fallback, circuit breaker), and redelivery.

use std::sync::Arc;
use std::time::Duration;

use event_relay::{InMemorySink, Relay, RelayConfig};
use event_store::{
    AppendRequest, EventEnvelope, EventStore, InMemoryEventStore, LoadBound, NewEvent,
};
use quote_domain::quote::QuoteEvent;
use quote_pipeline::{EventHandler, HandlerContext};
use quote_runtime::resilience::CircuitState;
use testkit::fixtures::{quote_request, quote_requested};
use vehicle_enricher::vpic::{VpicClient, VpicConfig};
use vehicle_enricher::VehicleEnricher;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const HONDA: &str = "1HGCM82633A004352";
const FORD: &str = "1FAFP40492F172825";

fn vin_with_check_digit(prefix8: &str, rest8: &str) -> String {
    let raw = format!("{prefix8}0{rest8}");
    let digit = quote_domain::Vin::compute_check_digit(&raw).expect("check digit");
    format!("{prefix8}{digit}{rest8}")
}

async fn requested(store: &dyn EventStore, vins: &[&str]) -> EventEnvelope {
    let (quote_id, event) = quote_requested(quote_request(vins));
    let outcome = store
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
                traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
                tracestate: None,
                actor: "cust-42".into(),
                data: event.to_data().expect("data"),
            }],
            idempotency: None,
            customer_id: Some("cust-42".into()),
        })
        .await
        .expect("append");
    outcome.events[0].clone()
}

fn vpic_answer(make: &str, model: &str, year: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "Count": 1, "Message": "Results returned successfully", "SearchCriteria": "VIN",
        "Results": [{"Make": make, "Model": model, "ModelYear": year, "BodyClass": "Sedan/Saloon",
                     "VehicleType": "PASSENGER CAR", "ErrorCode": "0", "ErrorText": "0 - VIN decoded clean."}]
    }))
}

struct Setup {
    store: Arc<dyn EventStore>,
    context: HandlerContext,
    _shutdown: tokio_util_guard::Guard,
}

mod tokio_util_guard {
    /// Stops the relay when the test ends.
    pub struct Guard(pub tokio::task::JoinHandle<()>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
}

fn setup() -> Setup {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let (relay, task) = Relay::new(
        store.clone(),
        Arc::new(InMemorySink::new()),
        RelayConfig::default(),
    )
    .spawn(Default::default());
    Setup {
        context: HandlerContext::new(store.clone(), relay, "vehicle-enricher"),
        store,
        _shutdown: tokio_util_guard::Guard(task),
    }
}

fn enricher(server: &MockServer) -> VehicleEnricher {
    VehicleEnricher::new(
        VpicClient::new(VpicConfig {
            base_url: server.uri(),
            timeout: Duration::from_millis(500),
            attempts: 2,
            breaker_threshold: 2,
            breaker_cool_down: Duration::from_secs(60),
        })
        .expect("client"),
    )
}

/// The payloads appended after the request (each decodable as a domain event).
async fn facts(store: &dyn EventStore, stream_id: &str) -> Vec<serde_json::Value> {
    store
        .load(stream_id, LoadBound::Latest)
        .await
        .expect("load")
        .iter()
        .skip(1)
        .map(|e| {
            QuoteEvent::decode(&e.event_type, e.schema_version, &e.data).expect("decode");
            e.data.clone()
        })
        .collect()
}

#[tokio::test]
async fn decoded_vins_are_recorded_once_with_their_source() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/vehicles/DecodeVinValues/{HONDA}")))
        .respond_with(vpic_answer("HONDA", "Accord", "2003"))
        .mount(&server)
        .await;
    // An unknown VIN: vPIC answers with an error code and no make.
    Mock::given(method("GET"))
        .and(path(format!("/vehicles/DecodeVinValues/{FORD}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "Results": [{"Make": "", "Model": "", "ModelYear": "", "ErrorCode": "8", "ErrorText": "8 - No detailed data available"}]
        })))
        .mount(&server)
        .await;
    let setup = setup();
    let enricher = enricher(&server);
    let cause = requested(setup.store.as_ref(), &[HONDA, FORD]).await;
    enricher
        .handle(&cause, &setup.context)
        .await
        .expect("handle");
    enricher
        .handle(&cause, &setup.context)
        .await
        .expect("redelivery");

    let facts = facts(setup.store.as_ref(), &cause.stream_id).await;
    assert_eq!(
        facts.len(),
        2,
        "one fact per vehicle, redelivery appended nothing: {facts:?}"
    );
    let json = serde_json::to_value(&facts).expect("json").to_string();
    assert!(
        json.contains("\"make\":\"HONDA\"") && json.contains("\"source\":\"vpic\""),
        "{json}"
    );
    assert!(
        json.contains("\"source\":\"vin_fallback\""),
        "unknown VIN falls back: {json}"
    );
    let events = setup
        .store
        .load(&cause.stream_id, LoadBound::Latest)
        .await
        .expect("load");
    assert!(events[1..]
        .iter()
        .all(|e| e.causation_id.as_deref() == Some(cause.event_id.to_string().as_str())));
    assert!(events[1..]
        .iter()
        .all(|e| e.correlation_id == "corr" && e.actor == "vehicle-enricher"));
}

#[tokio::test]
async fn an_unavailable_vpic_falls_back_and_opens_the_circuit() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let setup = setup();
    let enricher = enricher(&server);
    let tesla = vin_with_check_digit("5YJ3E1EA", "KF317000");
    let cause = requested(setup.store.as_ref(), &[HONDA, &tesla]).await;
    enricher
        .handle(&cause, &setup.context)
        .await
        .expect("handle");
    let facts = facts(setup.store.as_ref(), &cause.stream_id).await;
    let json = serde_json::to_value(&facts).expect("json").to_string();
    assert_eq!(facts.len(), 2, "{json}");
    assert!(json.contains("Honda") && json.contains("Tesla"), "{json}");
    assert!(
        json.contains("\"model_year\":2003") && json.contains("\"model_year\":2019"),
        "{json}"
    );
    assert!(!json.contains("\"source\":\"vpic\""));
    let requests_before = server
        .received_requests()
        .await
        .map(|r| r.len())
        .unwrap_or(0);
    assert_eq!(requests_before, 2, "two attempts, then the circuit opened");

    // While open, no more calls go out.
    let cause = requested(setup.store.as_ref(), &[HONDA]).await;
    enricher
        .handle(&cause, &setup.context)
        .await
        .expect("handle");
    assert_eq!(
        server
            .received_requests()
            .await
            .map(|r| r.len())
            .unwrap_or(0),
        requests_before
    );
}

#[test]
fn the_breaker_state_is_visible() {
    let client = VpicClient::new(VpicConfig::default()).expect("client");
    assert_eq!(client.breaker().state(), CircuitState::Closed);
}
