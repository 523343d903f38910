//! The relay: drains the event store's publication outbox into the sink, in order per stream.
//!
//! Work arrives two ways:
//! - **hints** from the appender right after a commit (the fast path: the committed envelopes
//!   travel with the hint, so a new stream is published without reading the store);
//! - **sweeps** of the outbox every `sweep_interval`, which pick up streams whose oldest
//!   unpublished commit is older than `sweep_grace`: commits whose process died before
//!   publishing, and commits whose publication failed (Kinesis unavailable).
//!
//! A hint is only an optimisation: when the hint queue is full the hint is dropped and the sweep
//! publishes the events a little later. Nothing is ever lost because nothing leaves the outbox
//! until the sink acknowledged it.
//!
//! The per-stream store calls around a publication (reading a stream's unpublished events,
//! marking its head published) are independent across streams, and DynamoDB has no batch
//! conditional update, so the relay makes up to [`RelayConfig::store_concurrency`] of them at
//! once. Each stream appears once in a round's work, so a stream is never in two of these calls
//! at the same time, and its head is marked only after all its records were acknowledged.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use event_store::{EventEnvelope, EventStore, LoadBound, StoreError};
use quote_runtime::backoff::Backoff;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::sink::{EventSink, MAX_RECORDS_PER_CALL};

/// The span of one publication call (kind producer).
///
/// A call carries the events of up to 500 streams, i.e. of as many traces, so by OpenTelemetry's
/// messaging conventions the span cannot be the child of each: it is a root span with a *link*
/// to the trace context of every event it sends (the span that appended the event). Consumers
/// continue the event's own context, not this span's: one quote request stays one trace, and
/// the publication points into it through the links.
fn publication_span(destination: &str, records: &[EventEnvelope]) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "publish",
        otel.name = %format!("send {destination}"),
        otel.kind = "producer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "aws_kinesis",
        messaging.operation.type = "send",
        messaging.operation.name = "PutRecords",
        messaging.destination.name = %destination,
        messaging.batch.message_count = records.len(),
        refused = tracing::field::Empty,
    );
    for record in records {
        quote_runtime::telemetry::add_link(
            &span,
            &quote_runtime::telemetry::TraceContextCarrier {
                traceparent: record.traceparent.as_deref(),
                tracestate: record.tracestate.as_deref(),
            },
        );
    }
    span
}

/// Tuning of the relay; the defaults suit one event-source task.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Hints queued before new ones are dropped (the sweep covers dropped hints).
    pub hint_capacity: usize,
    /// How often the outbox is swept.
    pub sweep_interval: Duration,
    /// Commits younger than this are left to the relay that committed them.
    pub sweep_grace: Duration,
    /// Streams taken per sweep.
    pub sweep_batch: usize,
    /// Consecutive failed rounds before a batch is left to the next sweep.
    pub max_failed_rounds: u32,
    /// First retry delay ceiling (full jitter).
    pub retry_base: Duration,
    /// Largest retry delay.
    pub retry_cap: Duration,
    /// Per-stream store calls in flight at once (marking heads published, reading the
    /// unpublished events of swept streams), each for a different stream. At least 1.
    pub store_concurrency: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            hint_capacity: 10_000,
            sweep_interval: Duration::from_secs(1),
            sweep_grace: Duration::from_secs(2),
            sweep_batch: 500,
            max_failed_rounds: 5,
            retry_base: Duration::from_millis(50),
            retry_cap: Duration::from_secs(2),
            store_concurrency: 16,
        }
    }
}

impl RelayConfig {
    /// The defaults, with what the environment overrides: `RELAY_SWEEP_INTERVAL_MS` (1000),
    /// `RELAY_SWEEP_GRACE_MS` (2000) and `RELAY_STORE_CONCURRENCY` (16, at least 1). Every
    /// process with a relay (event-source and the consumer services) reads the same variables.
    pub fn from_env() -> Result<Self, quote_runtime::env::EnvError> {
        use quote_runtime::env::{parse_or, EnvError};
        let defaults = Self::default();
        let store_concurrency = parse_or("RELAY_STORE_CONCURRENCY", defaults.store_concurrency)?;
        if store_concurrency == 0 {
            return Err(EnvError {
                name: "RELAY_STORE_CONCURRENCY".into(),
                value: "0".into(),
                reason: "at least one store call must be allowed".into(),
            });
        }
        Ok(Self {
            sweep_interval: Duration::from_millis(parse_or("RELAY_SWEEP_INTERVAL_MS", 1000)?),
            sweep_grace: Duration::from_millis(parse_or("RELAY_SWEEP_GRACE_MS", 2000)?),
            store_concurrency,
            ..defaults
        })
    }
}

/// What an appender tells the relay after a commit.
#[derive(Debug, Clone)]
pub struct CommitHint {
    /// The envelopes just committed to one stream, in version order.
    pub events: Vec<EventEnvelope>,
}

/// Counters of the relay's work.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Records acknowledged by the sink.
    pub published: AtomicU64,
    /// Records the sink refused or calls that failed, retried.
    pub retried: AtomicU64,
    /// Hints dropped because the queue was full (the sweep publishes their events).
    pub hints_dropped: AtomicU64,
    /// Batches left to the sweep after `max_failed_rounds`.
    pub deferred: AtomicU64,
    /// Sweeps that found work.
    pub sweeps_with_work: AtomicU64,
}

/// The appender's handle on a running relay.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    hints: mpsc::Sender<CommitHint>,
    stats: Arc<RelayStats>,
}

impl RelayHandle {
    /// Hands committed events to the relay without waiting. Returns false when the hint was
    /// dropped (queue full or relay stopped); the outbox sweep will publish the events.
    pub fn notify(&self, events: Vec<EventEnvelope>) -> bool {
        if events.is_empty() {
            return true;
        }
        let sent = self.hints.try_send(CommitHint { events }).is_ok();
        if !sent {
            self.stats.hints_dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// The relay's counters.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }
}

/// Events of one stream awaiting publication.
#[derive(Debug)]
struct StreamWork {
    pending: VecDeque<EventEnvelope>,
    published_upto: u64,
    progressed: bool,
}

/// Publishes the outbox to a sink.
#[derive(Debug, Clone)]
pub struct Relay {
    store: Arc<dyn EventStore>,
    sink: Arc<dyn EventSink>,
    config: RelayConfig,
    stats: Arc<RelayStats>,
}

/// Why a relay operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading or marking the outbox failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Relay {
    /// A relay from `store`'s outbox to `sink`.
    pub fn new(store: Arc<dyn EventStore>, sink: Arc<dyn EventSink>, config: RelayConfig) -> Self {
        Self {
            store,
            sink,
            config,
            stats: Arc::new(RelayStats::default()),
        }
    }

    /// The relay's counters.
    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    /// Starts the relay task. It stops when `shutdown` fires, after publishing the hints queued
    /// by then (what it cannot publish stays in the outbox for the next process).
    pub fn spawn(self, shutdown: CancellationToken) -> (RelayHandle, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(self.config.hint_capacity.max(1));
        let handle = RelayHandle {
            hints: tx,
            stats: self.stats.clone(),
        };
        let task = tokio::spawn(self.run(rx, shutdown));
        (handle, task)
    }

    async fn run(self, mut hints: mpsc::Receiver<CommitHint>, shutdown: CancellationToken) {
        let mut sweep = tokio::time::interval(self.config.sweep_interval);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(first) = hints.recv() => {
                    let mut batch = vec![first];
                    while batch.len() < MAX_RECORDS_PER_CALL {
                        match hints.try_recv() {
                            Ok(hint) => batch.push(hint),
                            Err(_) => break,
                        }
                    }
                    if let Err(err) = self.publish_hints(batch).await {
                        tracing::warn!(error = %err, "publishing committed events failed; the sweep will retry");
                    }
                }
                _ = sweep.tick() => {
                    if let Err(err) = self.sweep_once().await {
                        tracing::warn!(error = %err, "outbox sweep failed");
                    }
                }
            }
        }
        hints.close();
        let mut rest = Vec::new();
        while let Ok(hint) = hints.try_recv() {
            rest.push(hint);
        }
        if !rest.is_empty() {
            if let Err(err) = self.publish_hints(rest).await {
                tracing::warn!(error = %err, "could not publish queued events at shutdown; they stay in the outbox");
            }
        }
        tracing::info!("relay stopped");
    }

    /// Publishes the events named by commit hints (and any unpublished events before them).
    pub async fn publish_hints(&self, hints: Vec<CommitHint>) -> Result<(), RelayError> {
        let mut by_stream: HashMap<String, Vec<EventEnvelope>> = HashMap::new();
        for hint in hints {
            if let Some(first) = hint.events.first() {
                by_stream
                    .entry(first.stream_id.clone())
                    .or_default()
                    .extend(hint.events);
            }
        }
        let mut work = HashMap::new();
        let mut to_load = Vec::new();
        for (stream_id, mut events) in by_stream {
            events.sort_by_key(|e| e.version);
            events.dedup_by_key(|e| e.version);
            let starts_stream = events.first().is_some_and(|e| e.version == 1);
            let contiguous = events.windows(2).all(|w| w[1].version == w[0].version + 1);
            if starts_stream && contiguous {
                // A new stream: nothing before these events can be unpublished.
                work.insert(
                    stream_id,
                    StreamWork {
                        pending: events.into(),
                        published_upto: 0,
                        progressed: false,
                    },
                );
            } else {
                to_load.push(stream_id);
            }
        }
        let store = self.store.clone();
        let loaded = bounded(to_load, self.config.store_concurrency, move |stream_id| {
            let store = store.clone();
            async move {
                let w = load_unpublished(store.as_ref(), &stream_id).await?;
                Ok((stream_id, w))
            }
        })
        .await;
        // Streams that could not be read are left to the sweep; the others are published.
        let first_error = add_loaded(&mut work, loaded);
        self.publish(work).await?;
        first_error.map_or(Ok(()), |err| Err(err.into()))
    }

    /// Publishes streams whose unpublished commits are older than the grace period. Returns the
    /// number of streams found.
    pub async fn sweep_once(&self) -> Result<usize, RelayError> {
        let before = OffsetDateTime::now_utc() - self.config.sweep_grace;
        let heads = self
            .store
            .unpublished_streams(before, self.config.sweep_batch)
            .await?;
        if heads.is_empty() {
            return Ok(0);
        }
        self.stats.sweeps_with_work.fetch_add(1, Ordering::Relaxed);
        let found = heads.len();
        // One task per stream: never two calls for the same stream at once.
        let mut seen = HashSet::new();
        let heads: Vec<_> = heads
            .into_iter()
            .filter(|h| seen.insert(h.stream_id.clone()))
            .collect();
        let store = self.store.clone();
        let loaded = bounded(heads, self.config.store_concurrency, move |head| {
            let store = store.clone();
            async move {
                let w = load_unpublished(store.as_ref(), &head.stream_id).await?;
                if w.is_none() {
                    // Fully published meanwhile; make sure the pending mark is gone.
                    store.mark_published(&head.stream_id, head.version).await?;
                }
                Ok((head.stream_id, w))
            }
        })
        .await;
        // Streams that could not be read stay in the outbox for the next sweep; the others are
        // published now.
        let mut work = HashMap::new();
        let first_error = add_loaded(&mut work, loaded);
        tracing::info!(streams = found, "outbox sweep publishing stranded events");
        self.publish(work).await?;
        match first_error {
            Some(err) => Err(err.into()),
            None => Ok(found),
        }
    }

    /// Records how far each stream was published, up to `store_concurrency` heads at once.
    /// Every mark is attempted; a failed one leaves its head unpublished (the sweep publishes
    /// those events again: a duplicate, never a loss) and the first failure is returned.
    async fn mark_all(&self, marks: Vec<(String, u64)>) -> Result<(), RelayError> {
        let store = self.store.clone();
        let results = bounded(
            marks,
            self.config.store_concurrency,
            move |(stream_id, version)| {
                let store = store.clone();
                async move { store.mark_published(&stream_id, version).await }
            },
        )
        .await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        match results.into_iter().find_map(Result::err) {
            Some(err) => {
                tracing::warn!(
                    failed,
                    error = %err,
                    "marking streams published failed; the sweep will publish them again"
                );
                Err(err.into())
            }
            None => Ok(()),
        }
    }

    /// Publishes in rounds: each round sends the oldest pending event of every stream, so a
    /// stream's next event goes out only after the previous one was acknowledged.
    async fn publish(&self, mut work: HashMap<String, StreamWork>) -> Result<(), RelayError> {
        let mut backoff = Backoff::new(self.config.retry_base, self.config.retry_cap);
        let mut failed_rounds = 0;
        loop {
            let heads: Vec<(String, EventEnvelope)> = work
                .iter()
                .filter_map(|(id, w)| w.pending.front().map(|e| (id.clone(), e.clone())))
                .collect();
            if heads.is_empty() {
                break;
            }
            let mut progress = false;
            for chunk in heads.chunks(MAX_RECORDS_PER_CALL) {
                let records: Vec<EventEnvelope> = chunk.iter().map(|(_, e)| e.clone()).collect();
                let span = publication_span(self.sink.destination(), &records);
                match self.sink.publish(&records).instrument(span.clone()).await {
                    Ok(accepted) => {
                        let refused = accepted.iter().filter(|ok| !**ok).count();
                        if refused > 0 {
                            span.record("refused", refused);
                        }
                        for ((stream_id, event), ok) in chunk.iter().zip(accepted) {
                            if !ok {
                                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            if let Some(w) = work.get_mut(stream_id) {
                                w.pending.pop_front();
                                w.published_upto = event.version;
                                w.progressed = true;
                                progress = true;
                                self.stats.published.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(err) => {
                        span.record("otel.status_code", "error");
                        self.stats
                            .retried
                            .fetch_add(records.len() as u64, Ordering::Relaxed);
                        span.in_scope(|| tracing::debug!(error = %err, "publication call failed"));
                    }
                }
            }
            if progress {
                failed_rounds = 0;
                backoff.reset();
            } else {
                failed_rounds += 1;
                if failed_rounds >= self.config.max_failed_rounds {
                    self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        streams = work.values().filter(|w| !w.pending.is_empty()).count(),
                        "publication target unavailable; leaving events in the outbox for the sweep"
                    );
                    break;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
        let marks = work
            .into_iter()
            .filter(|(_, w)| w.progressed)
            .map(|(stream_id, w)| (stream_id, w.published_upto))
            .collect();
        self.mark_all(marks).await
    }
}

/// Reads the stream's head and its unpublished events, in order.
async fn load_unpublished(
    store: &dyn EventStore,
    stream_id: &str,
) -> Result<Option<StreamWork>, StoreError> {
    let Some(head) = store.stream_head(stream_id).await? else {
        return Ok(None);
    };
    if !head.has_unpublished() {
        return Ok(None);
    }
    let events = store
        .load_after(
            stream_id,
            head.published_version,
            LoadBound::UpToVersion(head.version),
        )
        .await?;
    Ok(Some(StreamWork {
        pending: events.into(),
        published_upto: head.published_version,
        progressed: false,
    }))
}

/// Runs `call` on every item, at most `limit` (at least 1) at once, each in its own task (in the
/// current span), and returns the results in completion order once all have finished. A task
/// that panicked re-raises its panic here; one cancelled (the runtime shutting down) is an error.
/// Adds the streams that were read and have unpublished events to `work`; returns the first
/// read error (those streams stay in the outbox for the sweep).
fn add_loaded(
    work: &mut HashMap<String, StreamWork>,
    loaded: Vec<Result<(String, Option<StreamWork>), StoreError>>,
) -> Option<StoreError> {
    let mut first_error = None;
    for result in loaded {
        match result {
            Ok((stream_id, Some(w))) => {
                work.insert(stream_id, w);
            }
            Ok((_, None)) => {}
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    first_error
}

async fn bounded<I, T, F, Fut>(items: I, limit: usize, mut call: F) -> Vec<Result<T, StoreError>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    T: Send + 'static,
{
    fn joined<T>(
        result: Result<Result<T, StoreError>, tokio::task::JoinError>,
    ) -> Result<T, StoreError> {
        match result {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => Err(StoreError::backend(err)),
        }
    }
    let limit = limit.max(1);
    let mut tasks = JoinSet::new();
    let mut results = Vec::new();
    for item in items {
        if tasks.len() >= limit {
            if let Some(result) = tasks.join_next().await {
                results.push(joined(result));
            }
        }
        tasks.spawn(call(item).in_current_span());
    }
    while let Some(result) = tasks.join_next().await {
        results.push(joined(result));
    }
    results
}
