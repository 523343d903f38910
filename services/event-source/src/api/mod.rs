//! The HTTP edge: router, shared state, authentication extractor and the tower layers that give
//! every route bounded client metadata ([`client_metadata`]), request ids, tracing and metrics
//! ([`telemetry`]), timeouts, load shedding, panic safety and body limits.
//!
//! Every answer other than success is RFC 9457 problem+json ([`problem`]): the handlers' errors,
//! the extractors' rejections ([`extract`]), unknown routes (404), unknown methods (405), and the
//! layers' timeouts, load shedding and panics.

pub mod client_metadata;
pub mod dev_sign_in;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod quotes;
pub mod stream;
pub mod telemetry;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Router};
use event_relay::{EventSink, RelayHandle};
use event_store::EventStore;
use quote_read_model::ReadModel;
use quote_runtime::error_chain::chain;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{AuthError, Authenticator, Principal};
use problem::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Settings the handlers need.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Requests in flight before shedding.
    pub max_concurrent_requests: usize,
    /// Events folded past a quote's last snapshot before a load saves a new one (0: never).
    pub snapshot_every: u64,
    /// The development sign-in's minting key: present only in embedded mode.
    pub dev_sign_in: Option<dev_sign_in::DevSignIn>,
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The event store.
    pub store: Arc<dyn EventStore>,
    /// The publication target (checked by readiness).
    pub sink: Arc<dyn EventSink>,
    /// The relay that publishes commits.
    pub relay: RelayHandle,
    /// The customer-quotes read model (kept by the projector).
    pub read_model: Arc<dyn ReadModel>,
    /// Token verification.
    pub auth: Authenticator,
    /// The last readiness answer, reused for a few seconds (`/readyz` is public).
    pub readiness: Arc<health::ReadinessCache>,
    /// The live streams open in this process (bounded).
    pub open_streams: stream::OpenStreams,
    /// The operations view, shared by every open operations stream.
    pub ops: Arc<crate::ops::OpsMonitor>,
    /// Settings.
    pub config: ApiSettings,
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| ApiError::Unauthorized(AuthError::Missing.to_string()))?;
        state.auth.verify(token).await.map_err(|err| match &err {
            AuthError::KeysUnavailable(_) => {
                tracing::warn!(error = %chain(&err), "cannot fetch token signing keys");
                ApiError::Unavailable("token signing keys unavailable; retry later".into())
            }
            other => ApiError::Unauthorized(other.to_string()),
        })
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn handle_layer_error(err: BoxError) -> ApiError {
    if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Unavailable("too many requests in flight; retry with backoff".into())
    } else {
        ApiError::Internal {
            what: "a middleware failed".into(),
            source: Some(err),
        }
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("handler panicked").into_response()
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let settings = state.config.clone();
    Router::new()
        .route("/v1/quotes", post(quotes::request_quote))
        .route("/v1/quotes/{quote_id}", get(quotes::get_quote))
        .route("/v1/quotes/{quote_id}/events", get(quotes::list_events))
        .route("/v1/quotes/{quote_id}/stream", get(stream::quote_stream))
        .route(
            "/v1/customers/{customer_id}/quotes",
            get(quotes::list_customer_quotes),
        )
        .route(
            "/v1/customers/{customer_id}/quotes/stream",
            get(stream::customer_stream),
        )
        .route("/v1/dev/sign-in", post(dev_sign_in::sign_in))
        .route("/v1/ops", get(ops::ops_view))
        .route("/v1/ops/stream", get(ops::ops_stream))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::serve))
        .route("/", get(web::index))
        .route("/docs", get(web::docs))
        .route("/assets/{name}", get(web::asset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(telemetry::RecordDurationLayer(
                    telemetry::HttpMetrics::global(),
                ))
                .map_request(client_metadata::sanitize)
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                ]))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(telemetry::request_span)
                        .on_response(telemetry::on_response),
                )
                .map_response(telemetry::trace_response)
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(HandleErrorLayer::new(handle_layer_error))
                .load_shed()
                .concurrency_limit(settings.max_concurrent_requests.max(1))
                .timeout(settings.request_timeout),
        )
}
