//! Typed extractors whose every rejection is an [`ApiError`] (so problem+json, never axum's
//! `text/plain`), after axum's `customize-extractor-error` example.
//!
//! - [`ApiQuery`]: the query string into a struct; a bad value is a 422 naming the parameter.
//! - [`ApiPath`]: path parameters; undecodable ones (e.g. invalid UTF-8) are a 404.
//! - [`QuoteRequestBody`]: the JSON body of a quote request: 415 when not JSON, 413 when over
//!   [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES), 400 when malformed, 422 when of the wrong shape;
//!   with its fingerprint for idempotency.
//! - [`RequestId`]: the request's id as the request-id layer set it (already bounded by
//!   [`client_metadata`](super::client_metadata)).
//! - [`EventTrace`]: the trace context to record in the request's events.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use quote_domain::request::{FieldError, QuoteRequestInput};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tower_http::request_id::RequestId as LayerRequestId;
use uuid::Uuid;

use super::problem::ApiError;
use crate::trace_context::TraceContext;

/// The query string deserialized into `T`; a missing, malformed or out-of-type parameter is a
/// 422 that names it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query();
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes());
        let deserializer = serde_urlencoded::Deserializer::new(pairs);
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|err| {
                let path = err.path().to_string();
                ApiError::Validation(vec![FieldError {
                    field: if path == "." { "query".into() } else { path },
                    reason: err.into_inner().to_string(),
                }])
            })
    }
}

/// Path parameters deserialized into `T`; one that cannot be decoded (invalid UTF-8, wrong
/// type) names no resource: 404.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::rejection::PathRejection;
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => {
                Err(ApiError::NotFound("no such resource".into()))
            }
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// A quote request's body: parsed into the raw DTO, and fingerprinted.
#[derive(Debug, Clone)]
pub struct QuoteRequestBody {
    /// The request as sent (raw values; validation is the domain's).
    pub input: QuoteRequestInput,
    /// SHA-256 of the canonical JSON (key order and whitespace ignored): an idempotent retry has
    /// the same fingerprint.
    pub fingerprint: String,
}

impl<S> FromRequest<S> for QuoteRequestBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(request, state).await?;
        let input = parse_json(&bytes)?;
        Ok(Self {
            input,
            fingerprint: fingerprint(&bytes),
        })
    }
}

/// A JSON body parsed into `T`: 415 unless it is JSON, 413 past the body limit, 400 when
/// malformed, 422 naming the field when well-formed but of the wrong shape.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(request, state).await?;
        parse_json(&bytes).map(Self)
    }
}

/// The body of a JSON request.
async fn json_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    if !is_json(request.headers()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: super::MAX_BODY_BYTES,
                }
            } else {
                ApiError::MalformedJson {
                    detail: "the request body could not be read".into(),
                }
            }
        })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| v == "application/json" || v.ends_with("+json"))
}

/// Parses the body, telling malformed JSON (400) from well-formed JSON of the wrong shape
/// (422, naming the field).
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let input = match parsed {
        Ok(input) => input,
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            return Err(match inner.classify() {
                serde_json::error::Category::Data => ApiError::Validation(vec![FieldError {
                    field: if path == "." { "body".into() } else { path },
                    reason: inner.to_string(),
                }]),
                _ => ApiError::MalformedJson {
                    detail: inner.to_string(),
                },
            });
        }
    };
    deserializer.end().map_err(|e| ApiError::MalformedJson {
        detail: e.to_string(),
    })?;
    Ok(input)
}

/// Key order and whitespace do not change a request's fingerprint.
fn canonical(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", serde_json::Value::String(k.clone()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

fn fingerprint(bytes: &[u8]) -> String {
    let text = serde_json::from_slice::<serde_json::Value>(bytes)
        .map(|v| canonical(&v))
        .unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The request's id: the client's `X-Request-Id` when it passed
/// [`client_metadata`](super::client_metadata), else the one the request-id layer generated.
/// Recorded as the events' `correlation_id` and `causation_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S> FromRequestParts<S> for RequestId
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let id = parts
            .extensions
            .get::<LayerRequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .filter(|id| super::client_metadata::is_valid_request_id(id))
            .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
        Ok(Self(id))
    }
}

/// The trace context to record in the request's events: the current span's own when tracing is
/// on (read with [`EventTrace::current`] inside the handler's span, so that events are children
/// of the handler), otherwise the caller's (validated) trace continued.
#[derive(Debug, Clone)]
pub struct EventTrace {
    /// The caller's trace continued with a new span id (used when tracing is off).
    from_caller: TraceContext,
}

impl EventTrace {
    /// The trace context of the current span, or the caller's continued.
    pub fn current(self) -> TraceContext {
        match quote_runtime::telemetry::current_trace_context() {
            Some((traceparent, tracestate)) => TraceContext {
                traceparent,
                tracestate,
            },
            None => self.from_caller,
        }
    }
}

impl<S> FromRequestParts<S> for EventTrace
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Self {
            from_caller: TraceContext::from_headers(&parts.headers),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_key_order_and_whitespace() {
        assert_eq!(
            fingerprint(br#"{"a": 1, "b": [1, {"c": 2, "d": 3}]}"#),
            fingerprint(br#"{"b":[1,{"d":3,"c":2}],"a":1}"#)
        );
        assert_ne!(fingerprint(br#"{"a": 1}"#), fingerprint(br#"{"a": 2}"#));
    }
}
