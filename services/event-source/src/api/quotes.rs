//! The `/v1/quotes` routes: request a quote, read its state (now or as of a version or instant),
//! list its events.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use event_store::{
    AppendRequest, EventEnvelope, IdempotencyRecord, LoadBound, NewEvent, StoreError,
};
use quote_domain::quote::{
    request_quote as decide_request, Quote, QuoteEvent, QuoteId, RequestQuote,
};
use quote_domain::request::{FieldError, QuoteRequest, QuoteRequestInput};
use quote_read_model::projection::summarize;
use quote_read_model::{QuoteSummary, ReadModelError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::problem::{ApiError, Problem};
use super::AppState;
use crate::auth::Principal;
use crate::trace_context::TraceContext;

/// The answer to an accepted quote request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuoteAccepted {
    /// Id of the new quote.
    pub quote_id: String,
    /// Always `pending` on acceptance.
    #[schema(example = "pending")]
    pub status: String,
}

/// A quote's events in version order.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// The envelopes, as stored and as published to Kinesis.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<EventEnvelope>,
}

/// Time travel: read the state as of a version or an instant.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AsOfQuery {
    /// The state after this version.
    pub version: Option<u64>,
    /// The state as of this instant (RFC 3339).
    pub as_of: Option<String>,
}

/// Idempotency keys are at most this long.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// What is stored with an idempotency key, to replay the response.
#[derive(Debug, Serialize, Deserialize)]
struct StoredResponse {
    status: u16,
    location: String,
    body: QuoteAccepted,
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
fn parse_body(bytes: &[u8]) -> Result<QuoteRequestInput, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<QuoteRequestInput, _> = serde_path_to_error::deserialize(&mut deserializer);
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

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| {
            !k.is_empty()
                && k.len() <= MAX_IDEMPOTENCY_KEY
                && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or(ApiError::InvalidHeader {
            header: "Idempotency-Key",
            reason: format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        })?;
    Ok(Some(key.to_owned()))
}

fn accepted_response(stored: &StoredResponse, replayed: bool) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::ACCEPTED);
    let mut response = (status, Json(&stored.body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&stored.location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

fn replay(record: &IdempotencyRecord, request_hash: &str) -> Result<Response, ApiError> {
    if record.request_hash != request_hash {
        return Err(ApiError::IdempotencyKeyReused);
    }
    let stored: StoredResponse = serde_json::from_value(record.response.clone())
        .map_err(|e| ApiError::Internal(format!("stored idempotent response: {e}")))?;
    Ok(accepted_response(&stored, true))
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::new_v4().to_string())
}

/// Request a quote.
#[utoipa::path(
    post,
    path = "/v1/quotes",
    tag = "quotes",
    request_body = QuoteRequestInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response")),
    responses(
        (status = 202, description = "Accepted; the quote is being prepared", body = QuoteAccepted,
         headers(("Location" = String, description = "URL of the quote"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token for another customer", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or an Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(customer_id, quote_id))]
pub async fn request_quote(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: super::MAX_BODY_BYTES,
            }
        } else {
            ApiError::MalformedJson {
                detail: rejection.body_text(),
            }
        }
    })?;
    if !is_json(&headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let key = idempotency_key(&headers)?;
    let input = parse_body(&bytes)?;
    tracing::Span::current().record("customer_id", input.customer_id.as_str());
    if !principal.may_act_for(&input.customer_id) {
        return Err(ApiError::Forbidden(
            "a customer token may only request quotes for its own customer_id".into(),
        ));
    }
    let now = OffsetDateTime::now_utc();
    let request = QuoteRequest::parse(&input, now.date()).map_err(|e| ApiError::Validation(e.0))?;

    let request_hash = fingerprint(&bytes);
    let scoped_key = key.map(|k| format!("{}#{k}", principal.subject));
    if let Some(scoped) = &scoped_key {
        if let Some(record) = state.store.idempotency_record(scoped).await? {
            return replay(&record, &request_hash);
        }
    }

    let quote_id = QuoteId::new_random();
    tracing::Span::current().record("quote_id", quote_id.to_string());
    let customer_id = request.customer_id.as_str().to_owned();
    let event = decide_request(RequestQuote {
        quote_id,
        request,
        requested_at: now,
    });
    let data = event
        .to_data()
        .map_err(|e| ApiError::Internal(format!("encoding {}: {e}", event.event_type())))?;
    // The request's own span context when tracing is on; otherwise the caller's trace continued.
    let trace = match quote_runtime::telemetry::current_trace_context() {
        Some((traceparent, tracestate)) => TraceContext {
            traceparent,
            tracestate,
        },
        None => TraceContext::from_headers(&headers),
    };
    let request_id = request_id(&headers);
    let new_event = NewEvent {
        event_id: Uuid::new_v4(),
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        occurred_at: now,
        correlation_id: request_id.clone(),
        causation_id: Some(request_id),
        traceparent: Some(trace.traceparent),
        tracestate: trace.tracestate,
        actor: principal.subject.clone(),
        data,
    };
    let stored = StoredResponse {
        status: StatusCode::ACCEPTED.as_u16(),
        location: format!("/v1/quotes/{quote_id}"),
        body: QuoteAccepted {
            quote_id: quote_id.to_string(),
            status: "pending".into(),
        },
    };
    let idempotency = match &scoped_key {
        Some(scoped) => Some(IdempotencyRecord {
            key: scoped.clone(),
            request_hash: request_hash.clone(),
            stream_id: quote_id.stream_id(),
            response: serde_json::to_value(&stored)
                .map_err(|e| ApiError::Internal(e.to_string()))?,
            created_at: now,
            expires_at: now + state.config.idempotency_ttl,
        }),
        None => None,
    };
    let appended = state
        .store
        .append(AppendRequest {
            stream_id: quote_id.stream_id(),
            expected_version: 0,
            events: vec![new_event],
            idempotency,
            customer_id: Some(customer_id),
        })
        .await;
    match appended {
        Ok(outcome) => {
            // A crash here (after the commit, before publication) must lose nothing: the event
            // is in the outbox and the relay's sweep publishes it.
            fail::fail_point!("event_source::after_commit", |_| {
                Err(ApiError::Internal(
                    "failpoint event_source::after_commit".into(),
                ))
            });
            state.relay.notify(outcome.events);
            Ok(accepted_response(&stored, false))
        }
        Err(StoreError::IdempotencyKeyUsed(record)) => replay(&record, &request_hash),
        Err(err) => Err(err.into()),
    }
}

fn decode_events(events: &[EventEnvelope]) -> Result<Option<Quote>, ApiError> {
    let decoded = events
        .iter()
        .map(|e| {
            QuoteEvent::decode(&e.event_type, e.schema_version, &e.data)
                .map(|event| (e.version, event))
                .map_err(|err| ApiError::Internal(format!("{} v{}: {err}", e.stream_id, e.version)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Quote::fold(decoded.iter().map(|(v, e)| (*v, e))).map_err(|e| ApiError::Internal(e.to_string()))
}

async fn load_visible(
    state: &AppState,
    principal: &Principal,
    quote_id: &str,
    bound: LoadBound,
) -> Result<(Quote, Vec<EventEnvelope>), ApiError> {
    let not_found = || ApiError::NotFound(format!("no quote {quote_id}"));
    let id: QuoteId = quote_id.parse().map_err(|_| not_found())?;
    let events = state.store.load(&id.stream_id(), bound).await?;
    let quote = decode_events(&events)?.ok_or_else(not_found)?;
    // Another customer's quote is reported as absent, not forbidden: ids are not disclosed.
    if !principal.may_act_for(quote.customer_id.as_str()) {
        return Err(not_found());
    }
    Ok((quote, events))
}

fn bound_of(query: &AsOfQuery) -> Result<LoadBound, ApiError> {
    match (query.version, &query.as_of) {
        (Some(_), Some(_)) => Err(ApiError::Validation(vec![FieldError {
            field: "as_of".into(),
            reason: "give either version or as_of, not both".into(),
        }])),
        (Some(version), None) => Ok(LoadBound::UpToVersion(version)),
        (None, Some(instant)) => {
            OffsetDateTime::parse(instant, &time::format_description::well_known::Rfc3339)
                .map(LoadBound::AsOf)
                .map_err(|e| {
                    ApiError::Validation(vec![FieldError {
                        field: "as_of".into(),
                        reason: format!("expected an RFC 3339 timestamp: {e}"),
                    }])
                })
        }
        (None, None) => Ok(LoadBound::Latest),
    }
}

/// Read a quote's state (optionally as of a version or an instant).
///
/// The current state comes from the read model (eventually consistent, kept by the projector);
/// a quote the projector has not seen yet, and every time-travel read, is folded from the event
/// store instead.
#[utoipa::path(
    get,
    path = "/v1/quotes/{quote_id}",
    tag = "quotes",
    params(("quote_id" = String, Path, description = "The quote id"), AsOfQuery),
    responses(
        (status = 200, description = "The quote", body = QuoteSummary),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such quote for this caller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_quote(
    State(state): State<AppState>,
    principal: Principal,
    Path(quote_id): Path<String>,
    Query(query): Query<AsOfQuery>,
) -> Result<Json<QuoteSummary>, ApiError> {
    let bound = bound_of(&query)?;
    if bound == LoadBound::Latest {
        if let Ok(id) = quote_id.parse::<QuoteId>() {
            match state.read_model.get(&id.to_string()).await {
                Ok(Some(summary)) if principal.may_act_for(&summary.customer_id) => {
                    return Ok(Json(summary))
                }
                Ok(Some(_)) => return Err(ApiError::NotFound(format!("no quote {quote_id}"))),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "read model unavailable; folding the event store")
                }
            }
        }
    }
    let (quote, events) = load_visible(&state, &principal, &quote_id, bound).await?;
    let updated_at = events
        .last()
        .map(|e| e.recorded_at)
        .unwrap_or(quote.requested_at);
    Ok(Json(summarize(&quote, updated_at)))
}

/// Paging of a customer's quotes.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Quotes per page (1–100, default 20).
    pub limit: Option<usize>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// A page of a customer's quotes, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteList {
    /// The quotes.
    pub quotes: Vec<QuoteSummary>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// List a customer's quotes, newest first.
#[utoipa::path(
    get,
    path = "/v1/customers/{customer_id}/quotes",
    tag = "quotes",
    params(("customer_id" = String, Path, description = "The customer"), ListQuery),
    responses(
        (status = 200, description = "A page of quotes", body = QuoteList),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not visible to this caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or page token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_customer_quotes(
    State(state): State<AppState>,
    principal: Principal,
    Path(customer_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<QuoteList>, ApiError> {
    if !principal.may_act_for(&customer_id) {
        return Err(ApiError::NotFound(format!("no customer {customer_id}")));
    }
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::Validation(vec![FieldError {
            field: "limit".into(),
            reason: "must be between 1 and 100".into(),
        }]));
    }
    let page = state
        .read_model
        .list_by_customer(&customer_id, limit, query.page_token.as_deref())
        .await
        .map_err(|err| match err {
            ReadModelError::InvalidPageToken => ApiError::Validation(vec![FieldError {
                field: "page_token".into(),
                reason: "not a page token of this listing".into(),
            }]),
            other => ApiError::Unavailable(format!("read model unavailable: {other}")),
        })?;
    Ok(Json(QuoteList {
        quotes: page.quotes,
        next_page_token: page.next_page_token,
    }))
}

/// List a quote's events in version order.
#[utoipa::path(
    get,
    path = "/v1/quotes/{quote_id}/events",
    tag = "quotes",
    params(("quote_id" = String, Path, description = "The quote id")),
    responses(
        (status = 200, description = "The events", body = EventList),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such quote for this caller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_events(
    State(state): State<AppState>,
    principal: Principal,
    Path(quote_id): Path<String>,
) -> Result<Json<EventList>, ApiError> {
    let (_, events) = load_visible(&state, &principal, &quote_id, LoadBound::Latest).await?;
    Ok(Json(EventList { events }))
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
