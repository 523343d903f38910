//! Telemetry of the HTTP edge, after OpenTelemetry's HTTP semantic conventions.
//!
//! - One server span per request, `<method> <route>` (e.g. `POST /v1/quotes`), a child of the
//!   caller's `traceparent` when it sent one, with `http.request.method`, `http.route`,
//!   `url.path`, `http.response.status_code` and `request_id`; 5xx answers mark it as an error.
//! - The response carries that span's context in a `traceresponse` header
//!   (`00-<trace id>-<span id>-<flags>`, W3C Trace Context level 2), so a caller that sent no
//!   `traceparent` still learns the trace id to look up.
//! - The `http.server.request.duration` histogram (seconds) with `http.request.method`,
//!   `http.route` (when a route matched) and `http.response.status_code`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Method, Response};
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::KeyValue;
use tracing::Span;

/// The response header naming the request's span.
pub const TRACE_RESPONSE_HEADER: &str = "traceresponse";

/// Name of the latency histogram.
pub const REQUEST_DURATION: &str = "http.server.request.duration";

/// Bucket boundaries the semantic conventions advise for [`REQUEST_DURATION`] (seconds).
const DURATION_BOUNDARIES: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The method as the conventions want it: a known method, or `_OTHER`.
fn method_name(method: &Method) -> &str {
    match *method {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::HEAD
        | Method::OPTIONS
        | Method::CONNECT
        | Method::TRACE => method.as_str(),
        _ => "_OTHER",
    }
}

fn route<B>(request: &axum::http::Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
}

/// The server span of a request (`TraceLayer::make_span_with`).
pub fn request_span<B>(request: &axum::http::Request<B>) -> Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let method = method_name(request.method());
    let route = route(request);
    let name = match (method, route) {
        ("_OTHER", _) => "HTTP".to_owned(),
        (method, Some(route)) => format!("{method} {route}"),
        (method, None) => method.to_owned(),
    };
    let span = tracing::info_span!(
        "http",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        request_id,
    );
    // Continue the caller's trace when it sent one.
    quote_runtime::telemetry::set_parent(
        &span,
        &quote_runtime::telemetry::HeaderCarrier(request.headers()),
    );
    span
}

/// Records the answer on the request span and logs it (`TraceLayer::on_response`).
pub fn on_response<B>(response: &Response<B>, latency: Duration, span: &Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    tracing::info!(
        status = status.as_u16(),
        latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        "finished processing request"
    );
}

/// Adds the `traceresponse` header naming the current (request) span: runs inside the
/// `TraceLayer`, whose span is entered while the response future is polled.
pub fn trace_response<B>(mut response: Response<B>) -> Response<B> {
    if let Some((traceparent, _)) = quote_runtime::telemetry::current_trace_context() {
        if let Ok(value) = HeaderValue::from_str(&traceparent) {
            response.headers_mut().insert(TRACE_RESPONSE_HEADER, value);
        }
    }
    response
}

/// The HTTP server instruments.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    duration: Histogram<f64>,
}

impl HttpMetrics {
    /// Instruments on `meter`.
    pub fn new(meter: &Meter) -> Self {
        Self {
            duration: meter
                .f64_histogram(REQUEST_DURATION)
                .with_unit("s")
                .with_description("Duration of HTTP server requests")
                .with_boundaries(DURATION_BOUNDARIES.to_vec())
                .build(),
        }
    }

    /// Instruments on the global meter provider (exported over OTLP when telemetry is on).
    pub fn global() -> Self {
        Self::new(&opentelemetry::global::meter("event-source"))
    }
}

/// A tower layer recording every request's duration; outermost, so that timeouts and load
/// shedding are measured with their status.
#[derive(Debug, Clone)]
pub struct RecordDurationLayer(pub HttpMetrics);

impl<S> tower::Layer<S> for RecordDurationLayer {
    type Service = RecordDuration<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordDuration {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// The service of [`RecordDurationLayer`].
#[derive(Debug, Clone)]
pub struct RecordDuration<S> {
    inner: S,
    metrics: HttpMetrics,
}

impl<S, B, R> tower::Service<axum::http::Request<B>> for RecordDuration<S>
where
    S: tower::Service<axum::http::Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = method_name(request.method()).to_owned();
        let route = route(&request).map(str::to_owned);
        let answer = self.inner.call(request);
        let duration = self.metrics.duration.clone();
        Box::pin(async move {
            let answer = answer.await;
            if let Ok(response) = &answer {
                let mut attributes = vec![
                    KeyValue::new("http.request.method", method),
                    KeyValue::new(
                        "http.response.status_code",
                        i64::from(response.status().as_u16()),
                    ),
                ];
                if let Some(route) = route {
                    attributes.push(KeyValue::new("http.route", route));
                }
                duration.record(started.elapsed().as_secs_f64(), &attributes);
            }
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_are_other() {
        assert_eq!(method_name(&Method::POST), "POST");
        assert_eq!(
            method_name(&Method::from_bytes(b"PURGE").expect("method")),
            "_OTHER"
        );
    }
}
