//! Event handlers and what they may do.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_relay::RelayHandle;
use event_store::{AppendRequest, EventEnvelope, EventStore, LoadBound, NewEvent, StoreError};
use quote_runtime::backoff::Backoff;
use time::OffsetDateTime;
use uuid::Uuid;

/// Namespace of derived event ids: `UUIDv5(namespace, "<cause event id>/<handler>/<key>")`.
const DERIVED_EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a5e_0d1b_4c8e_9a37_51e2_c4d6_a001);

/// Conflicting appends re-decided before giving up (the record is then retried by the worker).
const MAX_CONFLICT_RETRIES: u32 = 20;

/// A dependency's error, kept as the source of a [`HandlerError`].
pub type DependencyError = Box<dyn std::error::Error + Send + Sync>;

/// Why handling an event failed, and whether waiting can help ([`HandlerError::is_transient`]):
/// the worker retries a transient failure until it succeeds (the shard waits), and a permanent
/// one a bounded number of times before dead-lettering the record (and setting aside the later
/// records of its quote behind it).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event store failed: transient when it is unavailable (throttling, 5xx, timeouts) or
    /// a concurrent writer won, permanent when what was asked cannot be stored or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event could not be understood (permanent).
    #[error("cannot handle event: {what}")]
    Invalid {
        /// What is wrong with it.
        what: String,
        /// The decoder's or the domain's own error, when there is one.
        #[source]
        source: Option<DependencyError>,
    },
    /// A dependency is unavailable: throttling, 5xx, a timeout, no connection, its circuit
    /// open (transient).
    #[error("{what} is unavailable")]
    Unavailable {
        /// The dependency and what was asked of it.
        what: String,
        /// Its error.
        #[source]
        source: DependencyError,
    },
    /// A dependency refused the request for good (permanent).
    #[error("{what} refused the request")]
    Refused {
        /// The dependency and what was asked of it.
        what: String,
        /// Its error.
        #[source]
        source: DependencyError,
    },
    /// Concurrent writers kept winning (transient).
    #[error("stream {0} kept changing; giving up for now")]
    Contended(String),
}

impl HandlerError {
    /// A transient failure of `what` (throttling, 5xx, timeouts, a dependency down).
    pub fn unavailable(what: impl Into<String>, source: impl Into<DependencyError>) -> Self {
        Self::Unavailable {
            what: what.into(),
            source: source.into(),
        }
    }

    /// An event that cannot be understood (permanent): `what` is wrong with it.
    pub fn invalid(what: impl Into<String>) -> Self {
        Self::Invalid {
            what: what.into(),
            source: None,
        }
    }

    /// An event that cannot be understood (permanent), because of `source`.
    pub fn invalid_because(what: impl Into<String>, source: impl Into<DependencyError>) -> Self {
        Self::Invalid {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// A permanent refusal by `what`.
    pub fn refused(what: impl Into<String>, source: impl Into<DependencyError>) -> Self {
        Self::Refused {
            what: what.into(),
            source: source.into(),
        }
    }

    /// Whether the failure may go away by waiting (the worker then retries without ever
    /// dead-lettering).
    pub fn is_transient(&self) -> bool {
        match self {
            HandlerError::Store(err) => store_error_is_transient(err),
            HandlerError::Unavailable { .. } | HandlerError::Contended(_) => true,
            HandlerError::Invalid { .. } | HandlerError::Refused { .. } => false,
        }
    }
}

/// Whether an event store failure may go away by waiting: the backend being unavailable (the
/// store's adapters report throttling, 5xx, timeouts and dispatch failures there, after the
/// SDK's own retries) and a lost race; not a request the store can never accept or an item it
/// cannot read.
fn store_error_is_transient(err: &StoreError) -> bool {
    match err {
        StoreError::Backend(_) | StoreError::WrongExpectedVersion { .. } => true,
        StoreError::IdempotencyKeyUsed(_)
        | StoreError::EmptyAppend
        | StoreError::TooManyEvents { .. }
        | StoreError::EventTooLarge { .. }
        | StoreError::AppendTooLarge { .. }
        | StoreError::Corrupt { .. } => false,
    }
}

/// An event a handler derives from another; its id is deterministic, so handling the same cause
/// twice cannot append it twice.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedEvent {
    /// Distinguishes several events derived from one cause (e.g. the VIN), stable across retries.
    pub key: String,
    /// Event type.
    pub event_type: String,
    /// Payload schema version.
    pub schema_version: u32,
    /// Payload.
    pub data: serde_json::Value,
}

/// What [`HandlerContext::update_stream`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    /// Appended these events.
    Appended(Vec<EventEnvelope>),
    /// Everything decided was already in the stream (a redelivery).
    AlreadyApplied,
    /// The decision was to append nothing.
    NothingToDo,
}

/// A service's reaction to events.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// The handler's name: its consumer application and the actor of what it appends.
    fn name(&self) -> &'static str;

    /// Whether it wants events of this type (others are skipped without decoding).
    fn handles(&self, event_type: &str) -> bool;

    /// Handles one event. Must be idempotent: a redelivered event changes nothing.
    async fn handle(
        &self,
        event: &EventEnvelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError>;

    /// Whether handling an event also covers every earlier event of its stream: true for a
    /// handler whose effect depends on the stream as stored, not on the event it is given (it
    /// loads and folds the whole stream, like the projector). The processor then handles only
    /// the last wanted event of each stream in a batch: one load and one write per stream
    /// instead of one per event while a shard catches up. The events it skips get a span that
    /// names the version that covered them.
    fn covers_earlier_events(&self) -> bool {
        false
    }

    /// Checks the handler's own dependencies (for readiness probes).
    async fn ready(&self) -> Result<(), HandlerError> {
        Ok(())
    }

    /// How often the service calls [`on_period`](Self::on_period): work done on time rather
    /// than on an event (fulfillment's quote deadlines). `None` (the default): never.
    fn period(&self) -> Option<Duration> {
        None
    }

    /// The periodic work, with the context events are handled with. It runs in every process
    /// that runs the handler, so it must be safe concurrently (appends at an expected version,
    /// derived ids); a failure is logged and the next period tries again.
    async fn on_period(&self, context: &HandlerContext) -> Result<(), HandlerError> {
        let _ = context;
        Ok(())
    }
}

/// Calls `handler`'s [`EventHandler::on_period`] every [`EventHandler::period`] until
/// `shutdown`; `None` when the handler has no periodic work.
pub fn spawn_periodic(
    handler: Arc<dyn EventHandler>,
    context: HandlerContext,
    shutdown: tokio_util::sync::CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let period = handler.period()?;
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {
                    if let Err(err) = handler.on_period(&context).await {
                        tracing::error!(handler = handler.name(), error = %quote_runtime::error_chain::chain(&err), "periodic work failed; retrying next period");
                    }
                }
            }
        }
    }))
}

/// What a handler may use.
#[derive(Debug, Clone)]
pub struct HandlerContext {
    /// The event store (the single source of truth).
    pub store: Arc<dyn EventStore>,
    relay: RelayHandle,
    handler: &'static str,
}

impl HandlerContext {
    /// A context appending through `store` and publishing through `relay`.
    pub fn new(store: Arc<dyn EventStore>, relay: RelayHandle, handler: &'static str) -> Self {
        Self {
            store,
            relay,
            handler,
        }
    }

    /// The id of an event derived from `cause` under `key`.
    pub fn derived_event_id(&self, cause: &EventEnvelope, key: &str) -> Uuid {
        Uuid::new_v5(
            &DERIVED_EVENT_NAMESPACE,
            format!("{}/{}/{key}", cause.event_id, self.handler).as_bytes(),
        )
    }

    /// Every event of a stream, in version order.
    pub async fn load(&self, stream_id: &str) -> Result<Vec<EventEnvelope>, HandlerError> {
        Ok(self.store.load(stream_id, LoadBound::Latest).await?)
    }

    /// Loads `stream_id`, lets `decide` derive events from its current events, and appends the
    /// ones not already there, at the version it read. On a concurrent append it reloads and
    /// decides again; events carry `cause`'s correlation id, `cause` as causation, and the
    /// current trace context.
    pub async fn update_stream<F>(
        &self,
        stream_id: &str,
        cause: &EventEnvelope,
        decide: F,
    ) -> Result<UpdateOutcome, HandlerError>
    where
        F: Fn(&[EventEnvelope]) -> Result<Vec<DerivedEvent>, HandlerError> + Send + Sync,
    {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(500));
        loop {
            let events = self.load(stream_id).await?;
            let decided = decide(&events)?;
            if decided.is_empty() {
                return Ok(UpdateOutcome::NothingToDo);
            }
            let existing: std::collections::HashSet<Uuid> =
                events.iter().map(|e| e.event_id).collect();
            let (traceparent, tracestate) = quote_runtime::telemetry::current_trace_context()
                .map(|(p, s)| (Some(p), s))
                .unwrap_or_else(|| (cause.traceparent.clone(), cause.tracestate.clone()));
            let now = OffsetDateTime::now_utc();
            let new: Vec<NewEvent> = decided
                .into_iter()
                .map(|d| (self.derived_event_id(cause, &d.key), d))
                .filter(|(id, _)| !existing.contains(id))
                .map(|(event_id, d)| NewEvent {
                    event_id,
                    event_type: d.event_type,
                    schema_version: d.schema_version,
                    occurred_at: now,
                    correlation_id: cause.correlation_id.clone(),
                    causation_id: Some(cause.event_id.to_string()),
                    traceparent: traceparent.clone(),
                    tracestate: tracestate.clone(),
                    actor: self.handler.to_owned(),
                    data: d.data,
                })
                .collect();
            if new.is_empty() {
                return Ok(UpdateOutcome::AlreadyApplied);
            }
            let customer_id = events
                .first()
                .and_then(|e| e.data.pointer("/request/customer_id"))
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            let request = AppendRequest {
                stream_id: stream_id.to_owned(),
                expected_version: events.len() as u64,
                events: new,
                idempotency: None,
                customer_id,
            };
            match self.store.append(request).await {
                Ok(outcome) => {
                    self.relay.notify(outcome.events.clone());
                    return Ok(UpdateOutcome::Appended(outcome.events));
                }
                Err(StoreError::WrongExpectedVersion { .. }) => {
                    if backoff.attempts() >= MAX_CONFLICT_RETRIES {
                        return Err(HandlerError::Contended(stream_id.to_owned()));
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(other) => return Err(other.into()),
            }
        }
    }
}
