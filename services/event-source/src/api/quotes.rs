//! The `/v1/quotes` routes: request a quote, read its state (now or as of a version or instant),
//! list its events.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use event_store::{
    AppendRequest, EventEnvelope, IdempotencyRecord, LoadBound, NewEvent, StoreError,
};
use quote_domain::quote::{
    request_quote as decide_request, Quote, QuoteEvent, QuoteId, RequestQuote,
};
use quote_domain::request::{FieldError, QuoteRequest, QuoteRequestInput};
use quote_domain::types::CustomerId;
use quote_read_model::projection::summarize;
use quote_read_model::QuoteSummary;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{ApiPath, ApiQuery, EventTrace, QuoteRequestBody, RequestId};
use super::idempotency::{replay, IdempotencyHeader, StoredResponse};
use super::problem::{ApiError, Problem};
use super::AppState;
use crate::auth::Principal;
use crate::trace_context::TraceContext;
use quote_runtime::error_chain::chain;

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

/// Time travel: read the state as of a version or an instant (at most one of the two).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AsOfQuery {
    /// The state after this version (1 is the request itself).
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64, example = 1)]
    pub version: Option<u64>,
    /// The state as of this instant (RFC 3339).
    #[param(format = DateTime, example = "2026-12-01T12:00:00Z")]
    pub as_of: Option<String>,
}

/// Highest `version` accepted (the largest signed 64-bit integer, as documented).
pub(super) const MAX_VERSION: u64 = i64::MAX as u64;

/// Request a quote.
///
/// The handler only sequences the steps: the extractors have authenticated the caller, checked
/// the idempotency key and parsed the body; the domain validates and decides; the store appends
/// (with the idempotency record in the same transaction) and the relay publishes.
#[utoipa::path(
    post,
    path = "/v1/quotes",
    tag = "quotes",
    request_body(content = QuoteRequestInput, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[!-~]+$",
         description = "Makes retries safe: the same key and body (from the same caller) replay the first response; 1 to 255 visible ASCII characters", example = "3f1c2a9e-req-0001"),
        ("X-Request-Id" = Option<String>, Header,
         description = "Correlation id recorded in the quote's events and echoed in the response; a value over 128 characters or outside visible ASCII is replaced by a generated one"),
    ),
    responses(
        (status = 202, description = "Accepted; the quote is being prepared", body = QuoteAccepted,
         headers(("Location" = String, description = "URL of the quote"))),
        (status = 400, description = "Malformed JSON, or an invalid Idempotency-Key header", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token for another customer", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A concurrent write won; retry", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB, or an event over the store's item limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or an Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(customer_id, quote_id))]
pub async fn request_quote(
    State(state): State<AppState>,
    principal: Principal,
    IdempotencyHeader(key): IdempotencyHeader,
    RequestId(request_id): RequestId,
    trace: EventTrace,
    body: QuoteRequestBody,
) -> Result<Response, ApiError> {
    let now = OffsetDateTime::now_utc();
    let request = authorized_request(&principal, &body.input, now)?;
    let scoped_key = key.map(|k| k.scoped_to(&principal));
    if let Some(scoped) = &scoped_key {
        if let Some(record) = state.store.idempotency_record(scoped).await? {
            return replay(&record, &body.fingerprint);
        }
    }
    let submission = QuoteSubmission {
        request,
        now,
        actor: principal.subject,
        request_id,
        trace: trace.current(),
        idempotency: scoped_key.map(|key| (key, body.fingerprint.clone())),
        idempotency_ttl: state.config.idempotency_ttl,
    };
    let (append, accepted) = submission.into_append()?;
    match state.store.append(append).await {
        Ok(outcome) => {
            // A crash here (after the commit, before publication) must lose nothing: the event
            // is in the outbox and the relay's sweep publishes it.
            fail::fail_point!("event_source::after_commit", |_| {
                Err(ApiError::internal("failpoint event_source::after_commit"))
            });
            state.relay.notify(outcome.events);
            Ok(accepted.to_response(false))
        }
        Err(StoreError::IdempotencyKeyUsed(record)) => replay(&record, &body.fingerprint),
        Err(err) => Err(err.into()),
    }
}

/// Validates the request (normalising its customer id), then checks that the caller may act
/// for that normalised id: authorization never sees an id as sent.
fn authorized_request(
    principal: &Principal,
    input: &QuoteRequestInput,
    now: OffsetDateTime,
) -> Result<QuoteRequest, ApiError> {
    let request = QuoteRequest::parse(input, now.date()).map_err(|e| ApiError::Validation(e.0))?;
    tracing::Span::current().record("customer_id", request.customer_id.as_str());
    if !principal.may_act_for(request.customer_id.as_str()) {
        return Err(ApiError::Forbidden(
            "a customer token may only request quotes for its own customer_id".into(),
        ));
    }
    Ok(request)
}

/// Everything one accepted request writes: the `QuoteRequested` event, its metadata and the
/// idempotency record.
#[derive(Debug)]
struct QuoteSubmission {
    /// The validated, authorized request.
    request: QuoteRequest,
    /// When it was received.
    now: OffsetDateTime,
    /// The token's subject, recorded as the event's actor.
    actor: String,
    /// Recorded as `correlation_id` and `causation_id`.
    request_id: String,
    /// Recorded as the event's trace context.
    trace: TraceContext,
    /// The scoped idempotency key and the request's fingerprint.
    idempotency: Option<(String, String)>,
    /// How long the idempotency record is kept.
    idempotency_ttl: std::time::Duration,
}

impl QuoteSubmission {
    /// The append of a new quote stream, and the response it answers (and stores for replays).
    fn into_append(self) -> Result<(AppendRequest, StoredResponse), ApiError> {
        let quote_id = QuoteId::new_random();
        tracing::Span::current().record("quote_id", quote_id.to_string());
        let customer_id = self.request.customer_id.as_str().to_owned();
        let event = decide_request(RequestQuote {
            quote_id,
            request: self.request,
            requested_at: self.now,
        });
        let data = event.to_data().map_err(|e| {
            ApiError::internal_because(format!("encoding {}", event.event_type()), e)
        })?;
        let new_event = NewEvent {
            event_id: Uuid::new_v4(),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            occurred_at: self.now,
            correlation_id: self.request_id.clone(),
            causation_id: Some(self.request_id),
            traceparent: Some(self.trace.traceparent),
            tracestate: self.trace.tracestate,
            actor: self.actor,
            data,
        };
        let accepted = StoredResponse {
            status: StatusCode::ACCEPTED.as_u16(),
            location: format!("/v1/quotes/{quote_id}"),
            body: QuoteAccepted {
                quote_id: quote_id.to_string(),
                status: "pending".into(),
            },
        };
        let idempotency = match self.idempotency {
            Some((key, request_hash)) => Some(IdempotencyRecord {
                key,
                request_hash,
                stream_id: quote_id.stream_id(),
                response: serde_json::to_value(&accepted)
                    .map_err(ApiError::internal_by("encoding the idempotent response"))?,
                created_at: self.now,
                expires_at: self.now + self.idempotency_ttl,
            }),
            None => None,
        };
        let append = AppendRequest {
            stream_id: quote_id.stream_id(),
            expected_version: 0,
            events: vec![new_event],
            idempotency,
            customer_id: Some(customer_id),
        };
        Ok((append, accepted))
    }
}

fn decode_events(events: &[EventEnvelope]) -> Result<Option<Quote>, ApiError> {
    let decoded = events
        .iter()
        .map(|e| {
            QuoteEvent::decode(&e.event_type, e.schema_version, &e.data)
                .map(|event| (e.version, event))
                .map_err(|err| {
                    ApiError::internal_because(
                        format!("decoding {} v{}", e.stream_id, e.version),
                        err,
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Quote::fold(decoded.iter().map(|(v, e)| (*v, e)))
        .map_err(ApiError::internal_by("folding the quote's events"))
}

pub(super) async fn load_visible(
    state: &AppState,
    principal: &Principal,
    quote_id: &str,
    bound: LoadBound,
) -> Result<(Quote, Vec<EventEnvelope>), ApiError> {
    let not_found = || ApiError::NotFound("no such quote for this caller".into());
    let id: QuoteId = quote_id.parse().map_err(|_| not_found())?;
    let events = state.store.load(&id.stream_id(), bound).await?;
    let quote = decode_events(&events)?.ok_or_else(not_found)?;
    // Another customer's quote is reported as absent, not forbidden: ids are not disclosed.
    if !principal.may_act_for(quote.customer_id.as_str()) {
        return Err(not_found());
    }
    Ok((quote, events))
}

/// `SNAPSHOT_EVERY`'s default.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100;

/// The quote as a snapshotted aggregate ([`event_store::snapshot`]): its state, serialized.
#[derive(Debug, Serialize, Deserialize)]
#[serde(transparent)]
struct QuoteState(Quote);

impl event_store::Aggregate for QuoteState {
    type Error = ApiError;
    /// Bump when `Quote`'s serialized shape changes: older snapshots are then ignored.
    const STATE_SCHEMA_VERSION: u32 = 1;

    fn fold(state: Option<Self>, events: &[EventEnvelope]) -> Result<Option<Self>, ApiError> {
        let Some(QuoteState(mut quote)) = state else {
            return Ok(decode_events(events)?.map(QuoteState));
        };
        for e in events {
            let event =
                QuoteEvent::decode(&e.event_type, e.schema_version, &e.data).map_err(|err| {
                    ApiError::internal_because(
                        format!("decoding {} v{}", e.stream_id, e.version),
                        err,
                    )
                })?;
            quote
                .apply(e.version, &event)
                .map_err(ApiError::internal_by("folding the quote's events"))?;
        }
        Ok(Some(QuoteState(quote)))
    }
}

/// The quote's state up to `version` (every event when `None`) and when its last event was
/// recorded, from its latest snapshot (`SNAPSHOT_EVERY`), if the caller may see it.
async fn load_state(
    state: &AppState,
    principal: &Principal,
    quote_id: &str,
    version: Option<u64>,
) -> Result<(Quote, OffsetDateTime), ApiError> {
    let not_found = || ApiError::NotFound("no such quote for this caller".into());
    let id: QuoteId = quote_id.parse().map_err(|_| not_found())?;
    let loaded = event_store::load_aggregate::<QuoteState>(
        state.store.as_ref(),
        &id.stream_id(),
        version,
        state.config.snapshot_every,
    )
    .await?
    .ok_or_else(not_found)?;
    let QuoteState(quote) = loaded.state;
    if !principal.may_act_for(quote.customer_id.as_str()) {
        return Err(not_found());
    }
    // A version beyond the stream's end is not a state that existed.
    if version.is_some_and(|v| v > loaded.version) {
        return Err(not_found());
    }
    Ok((quote, loaded.recorded_at))
}

fn bound_of(query: &AsOfQuery) -> Result<LoadBound, ApiError> {
    match (query.version, &query.as_of) {
        (Some(_), Some(_)) => Err(ApiError::Validation(vec![FieldError {
            field: "as_of".into(),
            reason: "give either version or as_of, not both".into(),
        }])),
        (Some(version), None) if (1..=MAX_VERSION).contains(&version) => {
            Ok(LoadBound::UpToVersion(version))
        }
        (Some(_), None) => Err(ApiError::Validation(vec![FieldError {
            field: "version".into(),
            reason: format!("must be between 1 and {MAX_VERSION}"),
        }])),
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
    params(("quote_id" = String, Path, format = Uuid, description = "The quote id", example = "019a0000-0000-7000-8000-000000000001"), AsOfQuery),
    responses(
        (status = 200, description = "The quote", body = QuoteSummary),
        (status = 404, description = "No such quote for this caller (or not yet at that version or instant)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid version or as_of, or both given", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_quote(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(quote_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<AsOfQuery>,
) -> Result<Json<QuoteSummary>, ApiError> {
    let bound = bound_of(&query)?;
    if bound == LoadBound::Latest {
        if let Ok(id) = quote_id.parse::<QuoteId>() {
            match state.read_model.get(&id.to_string()).await {
                Ok(Some(summary)) if principal.may_act_for(&summary.customer_id) => {
                    return Ok(Json(summary))
                }
                Ok(Some(_)) => {
                    return Err(ApiError::NotFound("no such quote for this caller".into()))
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(error = %chain(&err), "read model unavailable; folding the event store")
                }
            }
        }
    }
    let (quote, updated_at) = match bound {
        // Folded from the latest snapshot at or below the version.
        LoadBound::Latest => load_state(&state, &principal, &quote_id, None).await?,
        LoadBound::UpToVersion(version) => {
            load_state(&state, &principal, &quote_id, Some(version)).await?
        }
        LoadBound::AsOf(_) => {
            let (quote, events) = load_visible(&state, &principal, &quote_id, bound).await?;
            let updated_at = events
                .last()
                .map(|e| e.recorded_at)
                .unwrap_or(quote.requested_at);
            (quote, updated_at)
        }
    };
    Ok(Json(summarize(&quote, updated_at)))
}

/// Most quotes on one page.
pub const MAX_PAGE_LIMIT: u32 = 100;
/// Quotes on a page when `limit` is not given.
pub const DEFAULT_PAGE_LIMIT: u32 = 20;
/// Longest page token accepted (the tokens issued are under 300 characters).
pub const MAX_PAGE_TOKEN_LEN: usize = 512;

/// Paging of a customer's quotes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Quotes per page.
    #[param(minimum = 1, maximum = 100, default = 20, example = 20)]
    pub limit: Option<u32>,
    /// The `next_page_token` of the previous page.
    #[param(min_length = 1, max_length = 512)]
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
    params(("customer_id" = String, Path, pattern = r"^[A-Za-z0-9._:@-]{1,128}$", description = "The customer", example = "cust-42"), ListQuery),
    responses(
        (status = 200, description = "A page of quotes", body = QuoteList),
        (status = 404, description = "Not visible to this caller, or not a customer id", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or page token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_customer_quotes(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(customer_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<QuoteList>, ApiError> {
    let customer = visible_customer(&principal, &customer_id)?;
    let (limit, page_token) = page_of(&query)?;
    let page = state
        .read_model
        .list_by_customer(customer.as_str(), limit, page_token)
        .await?;
    Ok(Json(QuoteList {
        quotes: page.quotes,
        next_page_token: page.next_page_token,
    }))
}

/// The customer of a path, when it is a customer id exactly as issued (not merely after
/// trimming) and the caller may act for it; otherwise 404 (ids are not disclosed).
pub(super) fn visible_customer(
    principal: &Principal,
    customer_id: &str,
) -> Result<CustomerId, ApiError> {
    let not_found = || ApiError::NotFound("no such customer for this caller".into());
    let customer = CustomerId::parse(customer_id)
        .ok()
        .filter(|c| c.as_str() == customer_id)
        .ok_or_else(not_found)?;
    if !principal.may_act_for(customer.as_str()) {
        return Err(not_found());
    }
    Ok(customer)
}

/// The page size and token, checked before anything reaches the read model.
fn page_of(query: &ListQuery) -> Result<(usize, Option<&str>), ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
        return Err(ApiError::Validation(vec![FieldError {
            field: "limit".into(),
            reason: format!("must be between 1 and {MAX_PAGE_LIMIT}"),
        }]));
    }
    let token = query.page_token.as_deref();
    if token.is_some_and(|t| t.is_empty() || t.len() > MAX_PAGE_TOKEN_LEN) {
        return Err(ApiError::Validation(vec![FieldError {
            field: "page_token".into(),
            reason: format!("a page token has 1 to {MAX_PAGE_TOKEN_LEN} characters"),
        }]));
    }
    Ok((usize::try_from(limit).unwrap_or(1), token))
}

/// List a quote's events in version order.
#[utoipa::path(
    get,
    path = "/v1/quotes/{quote_id}/events",
    tag = "quotes",
    params(("quote_id" = String, Path, format = Uuid, description = "The quote id", example = "019a0000-0000-7000-8000-000000000001")),
    responses(
        (status = 200, description = "The events", body = EventList),
        (status = 404, description = "No such quote for this caller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_events(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(quote_id): ApiPath<String>,
) -> Result<Json<EventList>, ApiError> {
    let (_, events) = load_visible(&state, &principal, &quote_id, LoadBound::Latest).await?;
    Ok(Json(EventList { events }))
}
