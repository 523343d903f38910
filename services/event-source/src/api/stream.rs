//! Live updates (ADR 0012), as Server-Sent Events:
//!
//! - `GET /v1/quotes/{quote_id}/stream`: one event per recorded event of the quote, in version
//!   order: `id` is the event's version, `event` its type, `data` the envelope as
//!   `GET /v1/quotes/{quote_id}/events` lists it. It closes after the quote's outcome (issued,
//!   declined or referred).
//! - `GET /v1/customers/{customer_id}/quotes/stream`: the customer's quotes as they change
//!   (`event: quote`, `data` the summary as `GET /v1/customers/{customer_id}/quotes` lists it,
//!   `id` the summary's `updated_at` in Unix microseconds): first the current summaries of the
//!   [`WATCHED_QUOTES`] newest quotes, then each new or changed one.
//!
//! A client that reconnects with `Last-Event-ID` gets what came after that id: a quote's
//! events with no gap and no repeat; a customer's summaries changed after it, and those of the
//! [`RESUME_OVERLAP`] before it again (a summary projected late is never skipped). Every stream closes after [`MAX_STREAM_AGE`] (the client reconnects with its
//! last id); comment lines keep an idle connection open.
//!
//! A quote's events are read from the event store and a customer's summaries from the read
//! model, which every replica shares: each open stream reads what is new every
//! [`POLL_INTERVAL`] (a quote's stream) or [`CUSTOMER_POLL_INTERVAL`] (a customer's), so a
//! replica sees what any process committed, and the stream never depends on which replica the
//! client reached. At most [`MAX_OPEN_STREAMS`] streams are open per process; more are
//! answered 503.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use event_store::{EventEnvelope, EventStore, LoadBound};
use futures::{Stream, StreamExt};
use quote_domain::quote::{QuoteDeclined, QuoteIssued, QuoteReferred};
use quote_read_model::{QuoteSummary, ReadModel};
use quote_runtime::error_chain::chain;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::extract::ApiPath;
use super::problem::ApiError;
use super::quotes::{load_visible, visible_customer, MAX_VERSION};
use super::AppState;
use crate::auth::Principal;

/// How often an open stream reads the quote's new events.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How often an open stream reads the customer's quotes.
pub const CUSTOMER_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How many of a customer's newest quotes its stream watches.
pub const WATCHED_QUOTES: usize = 100;

/// How far before a customer stream's `Last-Event-ID` a resumed stream starts: the projector
/// writes different quotes' summaries out of `updated_at` order (their shards lag differently),
/// so a summary older than the last one sent may be projected after it. Summaries are state,
/// keyed by quote and version: one sent again is harmless, one skipped would be stale until its
/// quote changes again.
pub const RESUME_OVERLAP: Duration = Duration::from_secs(30);

/// How often an idle stream sends a comment line.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long one stream stays open; the client then reconnects with `Last-Event-ID`.
pub const MAX_STREAM_AGE: Duration = Duration::from_secs(15 * 60);

/// Streams open at once in one process.
pub const MAX_OPEN_STREAMS: usize = 10_000;

/// Events read per query.
const PAGE: usize = 100;

/// The open streams of a process: at most [`MAX_OPEN_STREAMS`], and all ended at once when the
/// server stops (a graceful shutdown would otherwise wait for streams that never end; their
/// clients reconnect, with `Last-Event-ID`, to another replica).
#[derive(Debug, Clone)]
pub struct OpenStreams {
    places: Arc<Semaphore>,
    closing: CancellationToken,
}

impl Default for OpenStreams {
    fn default() -> Self {
        Self {
            places: Arc::new(Semaphore::new(MAX_OPEN_STREAMS)),
            closing: CancellationToken::new(),
        }
    }
}

impl OpenStreams {
    /// A place for one more stream, held while it is open; 503 when every place is taken or
    /// the server is stopping.
    pub(super) fn open(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if self.closing.is_cancelled() {
            return Err(ApiError::Unavailable(
                "the server is stopping; reconnect".into(),
            ));
        }
        self.places
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Unavailable("too many open streams; retry with backoff".into()))
    }

    /// Ends every open stream (and refuses new ones): call when the server stops.
    pub fn close_all(&self) {
        self.closing.cancel();
    }
}

/// The version after which a stream resumes: the `Last-Event-ID` header (0 without it).
#[derive(Debug, Clone, Copy)]
pub struct LastEventId(pub u64);

impl<S: Send + Sync> FromRequestParts<S> for LastEventId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let invalid = |reason: &str| ApiError::InvalidHeader {
            header: "Last-Event-ID",
            reason: reason.to_owned(),
        };
        let mut values = parts.headers.get_all("last-event-id").iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(Self(0)),
            (Some(value), None) => value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .filter(|version| *version <= MAX_VERSION)
                .map(Self)
                .ok_or_else(|| invalid("must be the id of an event this stream sent (a version)")),
            (Some(_), Some(_)) => Err(invalid("must be sent once")),
        }
    }
}

/// Follow a quote's events as they are recorded (Server-Sent Events).
#[utoipa::path(
    get,
    path = "/v1/quotes/{quote_id}/stream",
    tag = "quotes",
    params(
        ("quote_id" = String, Path, format = Uuid, description = "The quote id", example = "019a0000-0000-7000-8000-000000000001"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this version (the last `id` received)"),
    ),
    responses(
        (status = 200, description = "A `text/event-stream`: one event per recorded event (`id` = version, `event` = its type, `data` = the envelope); closes after the outcome", content_type = "text/event-stream"),
        (status = 404, description = "No such quote for this caller", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 400, description = "Invalid Last-Event-ID", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many open streams", body = super::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn quote_stream(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(quote_id): ApiPath<String>,
    LastEventId(after): LastEventId,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // The quote exists and the caller may see it (another customer's is "not found"); what it
    // holds after `after` is sent first.
    let (_, events) = load_visible(&state, &principal, &quote_id, LoadBound::Latest).await?;
    let stream_id = events
        .first()
        .map(|event| event.stream_id.clone())
        .ok_or_else(|| ApiError::NotFound("no such quote for this caller".into()))?;
    let decided = events.iter().any(|event| is_outcome(&event.event_type));
    let read_to = events.last().map_or(0, |event| event.version).max(after);
    let pending: VecDeque<EventEnvelope> = events
        .into_iter()
        .filter(|event| event.version > after)
        .collect();
    let permit = state.open_streams.open()?;
    let follow = QuoteFollow {
        store: state.store.clone(),
        stream_id,
        after: read_to,
        pending,
        decided,
        opened: Instant::now(),
        _permit: permit,
    };
    Ok(sse(follow, &state.open_streams))
}

/// One open stream: where it is in the quote's events.
#[derive(Debug)]
struct QuoteFollow {
    store: Arc<dyn EventStore>,
    stream_id: String,
    /// The last version read (or the client's `Last-Event-ID`, if later).
    after: u64,
    /// Events read and not sent yet.
    pending: VecDeque<EventEnvelope>,
    /// The outcome was read: the stream ends once it is sent.
    decided: bool,
    opened: Instant,
    /// Held while the stream is open.
    _permit: OwnedSemaphorePermit,
}

impl Follow for QuoteFollow {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(envelope) = self.pending.pop_front() {
                return Some(sse_event(&envelope));
            }
            if self.decided || self.opened.elapsed() >= MAX_STREAM_AGE {
                return None;
            }
            match self
                .store
                .read_page(&self.stream_id, self.after, None, PAGE)
                .await
            {
                Ok(page) if !page.events.is_empty() => {
                    for envelope in page.events {
                        self.after = envelope.version;
                        self.decided |= is_outcome(&envelope.event_type);
                        self.pending.push_back(envelope);
                    }
                    continue;
                }
                Ok(_) => {}
                Err(err) => {
                    // The store unavailable: the stream waits (the client sees keep-alives).
                    tracing::warn!(stream_id = %self.stream_id, error = %chain(&err), "reading a streamed quote failed; retrying");
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

fn is_outcome(event_type: &str) -> bool {
    [
        QuoteIssued::EVENT_TYPE,
        QuoteDeclined::EVENT_TYPE,
        QuoteReferred::EVENT_TYPE,
    ]
    .contains(&event_type)
}

/// The SSE event of one recorded event.
fn sse_event(envelope: &EventEnvelope) -> Event {
    json_event(envelope.version, &envelope.event_type, envelope)
}

/// An SSE event with `data` the JSON of `data`. Should it not encode (it always does), the
/// client still learns the id, as an `unreadable` event.
pub(super) fn json_event(id: u64, kind: &str, data: &impl serde::Serialize) -> Event {
    let event = Event::default().id(id.to_string()).event(kind);
    match event.json_data(data) {
        Ok(event) => event,
        Err(err) => {
            tracing::error!(error = %err, id, kind, "encoding a streamed event failed");
            Event::default()
                .id(id.to_string())
                .event("unreadable")
                .data("{}")
        }
    }
}

/// A stream's state: what it sends next.
pub(super) trait Follow: Send + 'static {
    /// The next event to send, or `None` when the stream is over.
    fn next(&mut self) -> impl std::future::Future<Output = Option<Event>> + Send;
}

/// The SSE response of `follow`, with keep-alives; it ends when the server stops.
pub(super) fn sse(
    follow: impl Follow,
    streams: &OpenStreams,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures::stream::unfold(follow, |mut follow| async move {
        follow.next().await.map(|event| (Ok(event), follow))
    })
    .take_until(streams.closing.clone().cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// Follow a customer's quotes as they change (Server-Sent Events).
#[utoipa::path(
    get,
    path = "/v1/customers/{customer_id}/quotes/stream",
    tag = "quotes",
    params(
        ("customer_id" = String, Path, pattern = r"^[A-Za-z0-9._:@-]{1,128}$", description = "The customer", example = "cust-42"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this id (the last `id` received)"),
    ),
    responses(
        (status = 200, description = "A `text/event-stream`: `event: quote` with the summary as `data` (`id` = its `updated_at` in Unix microseconds), first for each of the 100 newest quotes, then for each new or changed one", content_type = "text/event-stream"),
        (status = 400, description = "Invalid Last-Event-ID", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not visible to this caller, or not a customer id", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many open streams", body = super::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn customer_stream(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(customer_id): ApiPath<String>,
    LastEventId(after): LastEventId,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let customer = visible_customer(&principal, &customer_id)?;
    let permit = state.open_streams.open()?;
    let follow = CustomerFollow {
        read_model: state.read_model.clone(),
        customer_id: customer.as_str().to_owned(),
        after,
        seen: HashMap::new(),
        pending: VecDeque::new(),
        first_read: true,
        opened: Instant::now(),
        _permit: permit,
    };
    Ok(sse(follow, &state.open_streams))
}

/// One open stream of a customer's quotes: what it has sent.
#[derive(Debug)]
struct CustomerFollow {
    read_model: Arc<dyn ReadModel>,
    customer_id: String,
    /// The client's `Last-Event-ID` (0: none): on the first read, only what changed after it.
    after: u64,
    /// Each watched quote's version as last sent (or seen).
    seen: HashMap<String, u64>,
    /// Summaries read and not sent yet, oldest change first.
    pending: VecDeque<QuoteSummary>,
    first_read: bool,
    opened: Instant,
    /// Held while the stream is open.
    _permit: OwnedSemaphorePermit,
}

impl Follow for CustomerFollow {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(summary) = self.pending.pop_front() {
                return Some(summary_event(&summary));
            }
            if self.opened.elapsed() >= MAX_STREAM_AGE {
                return None;
            }
            if !self.first_read {
                tokio::time::sleep(CUSTOMER_POLL_INTERVAL).await;
            }
            match self
                .read_model
                .list_by_customer(&self.customer_id, WATCHED_QUOTES, None)
                .await
            {
                Ok(page) => self.changes(page.quotes),
                Err(err) => {
                    // The read model unavailable: the stream waits (the client sees keep-alives).
                    tracing::warn!(customer_id = %self.customer_id, error = %chain(&err), "reading a streamed customer's quotes failed; retrying");
                }
            }
        }
    }
}

impl CustomerFollow {
    /// Queues the summaries that are new or changed since they were last seen; on the first
    /// read, those changed after the client's `Last-Event-ID` less [`RESUME_OVERLAP`].
    fn changes(&mut self, quotes: Vec<QuoteSummary>) {
        let first = std::mem::replace(&mut self.first_read, false);
        let mut changed: Vec<QuoteSummary> = quotes
            .into_iter()
            .filter(|summary| {
                let newer = self
                    .seen
                    .get(&summary.quote_id)
                    .is_none_or(|version| summary.version > *version);
                self.seen
                    .entry(summary.quote_id.clone())
                    .and_modify(|v| *v = (*v).max(summary.version))
                    .or_insert(summary.version);
                let before_resume = updated_micros(summary)
                    .saturating_add(RESUME_OVERLAP.as_micros() as u64)
                    <= self.after;
                newer && !(first && before_resume)
            })
            .collect();
        changed.sort_by_key(updated_micros);
        self.pending.extend(changed);
    }
}

/// A summary's `updated_at` in Unix microseconds: its event id.
fn updated_micros(summary: &QuoteSummary) -> u64 {
    u64::try_from(summary.updated_at.unix_timestamp_nanos() / 1_000).unwrap_or(0)
}

/// The SSE event of one summary.
fn summary_event(summary: &QuoteSummary) -> Event {
    json_event(updated_micros(summary), "quote", summary)
}
