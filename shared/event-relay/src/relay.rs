//! The relay: drains the event store's publication outbox into the sink, in order per stream.
//!
//! Work arrives two ways:
//! - **hints** from the appender right after a commit (the fast path: the committed envelopes
//!   travel with the hint, so a new stream is published without reading the store);
//! - **sweeps** of the outbox every `sweep_interval`, which pick up streams whose oldest
//!   unpublished commit is older than `sweep_grace`: commits whose process died before
//!   publishing, and commits whose publication failed (Kinesis unavailable).
//!
//! The two run side by side (a sweep's queries never hold up a fresh commit's publication); a
//! stream they both take is published twice at worst, never out of order (the guarantee of two
//! relays racing, `lib.rs`).
//!
//! Every process's sweep finds the same stranded streams, so a sweep first **claims** each
//! ([`EventStore::claim_publication`], renewed between rounds while it publishes) and publishes
//! only those it won: one process per stranded stream, however slow the target.
//!
//! A hint's relay publishes the stream up to the last version the hint names, and no further:
//! later versions belong to their committers' hints. When earlier versions are still
//! unpublished, committed moments ago by another process, it waits for that process's relay
//! (up to `handoff_wait`) rather than publish a second copy of them ([`crate::handoff`]).
//!
//! A hint is only an optimisation: when the hint queue is full the hint is dropped and the sweep
//! publishes the events a little later. Nothing is ever lost because nothing leaves the outbox
//! until the sink acknowledged it (or, for a record the sink can never accept, until it was set
//! aside in the dead-letter store).
//!
//! **Calls.** Each round sends the oldest pending record of every stream, packed into calls of
//! at most 500 records and 5 MiB ([`crate::calls`]), so no call is refused for its size.
//!
//! **Records that can never be published** (over Kinesis's record limit, or refused as invalid
//! when sent alone [`RelayConfig::max_invalid_attempts`] times) are set aside: an entry in the
//! relay's dead-letter store ([`crate::dead_letter`]), the `event_relay.dead_lettered` counter
//! and an error log; the stream's head then moves past the record, so the stream's later events
//! still publish. A call refused as invalid is split in halves until the offending record is
//! alone, so other streams' records in the same call are published. Outages and throttling
//! never set anything aside.
//!
//! **Failing streams.** A sweep that leaves streams unpublished (the target refused them for
//! `max_failed_rounds` rounds, their events could not be read, their heads not marked) defers
//! each of them in the store ([`EventStore::defer_publication`]) for a backoff that doubles with
//! the stream's consecutive failures, so a stuck stream leaves the head of every process's
//! sweeps and cannot starve the others; and it returns an error, which the run loop logs at
//! error level and counts (`event_relay.sweeps_failed`).
//!
//! The per-stream store calls around a publication (reading a stream's unpublished events,
//! marking its head published, deferring it) are independent across streams, and DynamoDB has
//! no batch conditional update, so the relay makes up to [`RelayConfig::store_concurrency`] of
//! them at once. Each stream appears once in a round's work, so a stream is never in two of
//! these calls at the same time, and its head is marked only after all its records were
//! acknowledged or set aside.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use event_store::{EventEnvelope, EventStore, LoadBound, StoreError, StreamHead};
use quote_runtime::backoff::Backoff;
use rand::Rng;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::calls::{pack, Outgoing};
use crate::dead_letter::{
    DeadLetterError, InMemoryRelayDeadLetters, RelayDeadLetter, RelayDeadLetters,
    DEFAULT_RELAY_DEAD_LETTER_TABLE,
};
use crate::handoff::{decide, Decision, Handoffs, Parked};
use crate::metrics::RelayStats;
use crate::outbox::outbox_status;
use crate::sink::{EventSink, SinkError, MAX_RECORDS_PER_CALL};
use quote_runtime::error_chain::chain;

/// Streams the outbox probe examines at most (the backlog is normally empty; in an outage the
/// probe's counts are lower bounds, the age that of the oldest among them).
const OUTBOX_PROBE_STREAMS: usize = 100;

/// How far empty sweeps stretch the sweep interval: an idle outbox is swept every
/// `8 × sweep_interval` (8 s by default), one query per outbox bucket each time.
pub const SWEEP_BACKOFF_LIMIT: u32 = 8;

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
    /// How often the outbox is swept while sweeps find work. Each sweep that finds none doubles
    /// the wait, up to [`SWEEP_BACKOFF_LIMIT`] times this; a sweep that finds work, or a
    /// publication of hinted events that failed, brings it back.
    pub sweep_interval: Duration,
    /// Commits younger than this are left to the relay that committed them.
    pub sweep_grace: Duration,
    /// How long a sweep's claim on a stranded stream keeps other processes' sweeps off it
    /// ([`EventStore::claim_publication`]); a claimant that died is replaced after this.
    pub sweep_claim: Duration,
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
    /// Times a record sent alone must be refused as invalid before it is set aside (at most
    /// `max_failed_rounds` count in one pass). Guards against a refusal misread as permanent.
    pub max_invalid_attempts: u32,
    /// Deferral of a stream after its first failed sweep; doubles with each consecutive failure.
    pub stream_backoff_base: Duration,
    /// Longest deferral of a failing stream.
    pub stream_backoff_cap: Duration,
    /// The DynamoDB table of the relay's dead letters, on AWS.
    pub dead_letter_table: String,
    /// How long a hinted stream may wait for the relay of an earlier, unpublished commit (another
    /// process's) to publish it before publishing it here too ([`crate::handoff`]).
    pub handoff_wait: Duration,
    /// How often the relay measures the outbox's backlog and the age of its oldest commit
    /// (the `event_relay.outbox_*` gauges; [`crate::outbox`]).
    pub outbox_probe_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            hint_capacity: 10_000,
            sweep_interval: Duration::from_secs(1),
            sweep_grace: Duration::from_secs(2),
            sweep_claim: Duration::from_secs(10),
            sweep_batch: 500,
            max_failed_rounds: 5,
            retry_base: Duration::from_millis(50),
            retry_cap: Duration::from_secs(2),
            store_concurrency: 16,
            max_invalid_attempts: 3,
            stream_backoff_base: Duration::from_secs(1),
            stream_backoff_cap: Duration::from_secs(300),
            dead_letter_table: DEFAULT_RELAY_DEAD_LETTER_TABLE.to_owned(),
            outbox_probe_interval: Duration::from_secs(30),
            handoff_wait: Duration::from_secs(2),
        }
    }
}

impl RelayConfig {
    /// How long a stream is deferred after `failures` consecutive failed sweeps before this
    /// one: a doubling ceiling, capped, with "equal jitter" (at least half the ceiling, so the
    /// stream really leaves the head of the sweeps, and spread so relays do not align).
    fn stream_backoff(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.min(20)).unwrap_or(u32::MAX);
        let ceiling = self
            .stream_backoff_base
            .saturating_mul(factor)
            .min(self.stream_backoff_cap);
        let half = ceiling / 2;
        let jitter = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::thread_rng().gen_range(0..=jitter))
    }
}

/// What an appender tells the relay after a commit.
#[derive(Debug, Clone)]
pub struct CommitHint {
    /// The envelopes just committed to one stream, in version order.
    pub events: Vec<EventEnvelope>,
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
            RelayStats::add(&self.stats.hints_dropped, 1);
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
    /// Times the oldest pending record was refused as invalid when sent alone.
    invalid_refusals: u32,
}

impl StreamWork {
    fn new(pending: VecDeque<EventEnvelope>, published_upto: u64) -> Self {
        Self {
            pending,
            published_upto,
            progressed: false,
            invalid_refusals: 0,
        }
    }

    /// The oldest pending record is done with (acknowledged or set aside).
    fn advance(&mut self) {
        if let Some(event) = self.pending.pop_front() {
            self.published_upto = event.version;
            self.progressed = true;
            self.invalid_refusals = 0;
        }
    }
}

/// What the target did with one record of a call.
#[derive(Debug)]
enum Outcome {
    /// Acknowledged.
    Accepted,
    /// Refused on its own (throttled, failed inside the target), or in a call that failed:
    /// retried.
    Retry,
    /// Refused as invalid when sent alone.
    Invalid(String),
}

/// What a publication pass left undone.
#[derive(Debug, Default)]
struct Unfinished {
    /// Streams still unpublished (or not marked), to retry later.
    streams: Vec<String>,
    /// The first cause, for the caller's error.
    first_error: Option<RelayError>,
}

/// A sweep's claim on the stranded streams it publishes: until when the other processes'
/// sweeps leave them alone ([`EventStore::claim_publication`]).
#[derive(Debug, Clone, Copy)]
struct SweepClaim {
    until: OffsetDateTime,
}

/// Publishes the outbox to a sink.
#[derive(Debug, Clone)]
pub struct Relay {
    store: Arc<dyn EventStore>,
    sink: Arc<dyn EventSink>,
    dead_letters: Arc<dyn RelayDeadLetters>,
    config: RelayConfig,
    stats: Arc<RelayStats>,
    /// Brings the sweeps back to `sweep_interval` (a hinted publication failed).
    sweep_soon: Arc<tokio::sync::Notify>,
}

/// Why a relay operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading, marking or deferring the outbox failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The publication target failed the calls.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A record that can never be published could not be set aside (it stays in the outbox).
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
    /// The target kept refusing a stream's record on its own (throttled or failing inside).
    #[error("the publication target kept refusing the record of {stream_id}")]
    Refused {
        /// The stream.
        stream_id: String,
    },
    /// Some streams could not be published; they stay in the outbox.
    #[error("{failed} of {streams} streams could not be published; they stay in the outbox")]
    StreamsFailed {
        /// Streams left unpublished.
        failed: usize,
        /// Streams attempted.
        streams: usize,
        /// The first cause.
        #[source]
        first: Box<RelayError>,
    },
}

impl Relay {
    /// A relay from `store`'s outbox to `sink`, setting records that can never be published
    /// aside in memory (see [`with_dead_letters`](Self::with_dead_letters)).
    pub fn new(store: Arc<dyn EventStore>, sink: Arc<dyn EventSink>, config: RelayConfig) -> Self {
        Self {
            store,
            sink,
            dead_letters: Arc::new(InMemoryRelayDeadLetters::new()),
            config,
            stats: Arc::new(RelayStats::default()),
            sweep_soon: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Sets records that can never be published aside in `dead_letters` (on AWS: the DynamoDB
    /// table `RELAY_DEAD_LETTER_TABLE`).
    pub fn with_dead_letters(mut self, dead_letters: Arc<dyn RelayDeadLetters>) -> Self {
        self.dead_letters = dead_letters;
        self
    }

    /// Where records that can never be published are set aside.
    pub fn dead_letters(&self) -> Arc<dyn RelayDeadLetters> {
        self.dead_letters.clone()
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

    /// The relay's work: hints and parked streams in one loop, the sweeps and the outbox probe
    /// in another, side by side, so a sweep (one query per outbox bucket) never delays the
    /// publication of a fresh commit.
    async fn run(self, hints: mpsc::Receiver<CommitHint>, shutdown: CancellationToken) {
        tokio::join!(
            self.run_hints(hints, shutdown.clone()),
            self.run_sweeps(shutdown)
        );
        tracing::info!("relay stopped");
    }

    async fn run_sweeps(&self, shutdown: CancellationToken) {
        let shortest = self.config.sweep_interval;
        let longest = shortest.saturating_mul(SWEEP_BACKOFF_LIMIT);
        let mut wait = shortest;
        let mut next_sweep = Instant::now();
        let mut probe = tokio::time::interval(self.config.outbox_probe_interval);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = self.sweep_soon.notified() => {
                    wait = shortest;
                    next_sweep = next_sweep.min(Instant::now() + shortest);
                }
                () = tokio::time::sleep_until(next_sweep) => {
                    wait = match self.sweep_once().await {
                        Ok(0) => (wait * 2).min(longest),
                        Ok(_) => shortest,
                        Err(err) => {
                            RelayStats::add(&self.stats.sweeps_failed, 1);
                            tracing::error!(error = %chain(&err), "outbox sweep failed");
                            shortest
                        }
                    };
                    next_sweep = Instant::now() + wait;
                }
                _ = probe.tick() => self.probe_outbox().await,
            }
        }
    }

    async fn run_hints(&self, mut hints: mpsc::Receiver<CommitHint>, shutdown: CancellationToken) {
        let mut handoffs = Handoffs::default();
        loop {
            let next_check = handoffs.next_check();
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
                    let due = self.admit(batch, &mut handoffs);
                    self.relay_hinted_logged(due, Some(&mut handoffs)).await;
                }
                () = tokio::time::sleep_until(next_check.unwrap_or_else(Instant::now)), if next_check.is_some() => {
                    let due = handoffs.take_due(Instant::now());
                    self.relay_hinted_logged(due, Some(&mut handoffs)).await;
                }
            }
        }
        hints.close();
        let mut rest = Vec::new();
        while let Ok(hint) = hints.try_recv() {
            rest.push(hint);
        }
        let mut due = self.admit(rest, &mut handoffs);
        due.extend(handoffs.take_all());
        if !due.is_empty() {
            if let Err(err) = self.relay_hinted(due, None).await {
                tracing::warn!(error = %chain(&err), "could not publish queued events at shutdown; they stay in the outbox");
            }
        }
    }

    /// Groups hints by stream; a stream parked in `handoffs` takes its new events (and is due
    /// at once). Returns the other streams, and every parked stream now due.
    fn admit(&self, hints: Vec<CommitHint>, handoffs: &mut Handoffs) -> Vec<(String, Parked)> {
        let now = Instant::now();
        let mut by_stream: HashMap<String, Vec<EventEnvelope>> = HashMap::new();
        for hint in hints {
            if let Some(first) = hint.events.first() {
                by_stream
                    .entry(first.stream_id.clone())
                    .or_default()
                    .extend(hint.events);
            }
        }
        let mut due = Vec::with_capacity(by_stream.len());
        for (stream_id, mut events) in by_stream {
            events.sort_by_key(|e| e.version);
            events.dedup_by_key(|e| e.version);
            if let Some(events) = handoffs.join(&stream_id, events) {
                due.push((
                    stream_id,
                    Parked::new(events, now, self.config.handoff_wait),
                ));
            }
        }
        due.extend(handoffs.take_due(now));
        due
    }

    async fn relay_hinted_logged(
        &self,
        due: Vec<(String, Parked)>,
        handoffs: Option<&mut Handoffs>,
    ) {
        if due.is_empty() {
            return;
        }
        if let Err(err) = self.relay_hinted(due, handoffs).await {
            tracing::warn!(error = %chain(&err), "publishing committed events failed; the sweep will retry");
            self.sweep_soon.notify_one();
        }
    }

    /// Measures the outbox's backlog into the stats (its gauges). A failure leaves the last
    /// measure; the sweep reports the store being unreachable.
    async fn probe_outbox(&self) {
        match outbox_status(
            self.store.as_ref(),
            OUTBOX_PROBE_STREAMS,
            OffsetDateTime::now_utc(),
        )
        .await
        {
            Ok(status) => self.stats.record_outbox(&status),
            Err(err) => {
                tracing::debug!(error = %chain(&err), "measuring the outbox failed");
            }
        }
    }

    /// Publishes the events named by commit hints (and any unpublished events before them) at
    /// once, without waiting for other relays. Streams it could not publish stay in the outbox
    /// for the sweep, and make it an error.
    pub async fn publish_hints(&self, hints: Vec<CommitHint>) -> Result<(), RelayError> {
        let due = self.admit(hints, &mut Handoffs::default());
        self.relay_hinted(due, None).await
    }

    /// Publishes hinted streams ([`crate::handoff`]): a new stream's events at once; the others
    /// after reading their heads: the hinted events that follow the published version, or, when
    /// earlier versions are unpublished, those too (read from the store), unless `handoffs` is
    /// given and they were committed moments ago, in which case the stream is parked there
    /// while their own relay publishes them. Streams it could not publish stay in the outbox
    /// for the sweep, and make it an error.
    async fn relay_hinted(
        &self,
        due: Vec<(String, Parked)>,
        mut handoffs: Option<&mut Handoffs>,
    ) -> Result<(), RelayError> {
        let now = Instant::now();
        let mut work = HashMap::new();
        let mut to_read = Vec::new();
        for (stream_id, parked) in due {
            let starts_stream = parked.events.first().is_some_and(|e| e.version == 1);
            let contiguous = parked
                .events
                .windows(2)
                .all(|w| w[1].version == w[0].version + 1);
            if starts_stream && contiguous {
                // A new stream: nothing before these events can be unpublished.
                work.insert(stream_id, StreamWork::new(parked.events.into(), 0));
            } else {
                to_read.push((stream_id, parked));
            }
        }
        let streams = work.len() + to_read.len();
        let store = self.store.clone();
        let heads = bounded(
            to_read,
            self.config.store_concurrency,
            move |(stream_id, parked)| {
                let store = store.clone();
                async move {
                    let head = store.stream_head(&stream_id).await;
                    Ok((stream_id, parked, head))
                }
            },
        )
        .await;
        let wall_clock = OffsetDateTime::now_utc();
        let mut unfinished = Unfinished::default();
        let mut to_load = Vec::new();
        for result in heads {
            let (stream_id, parked, head) = match result {
                Ok(read) => read,
                // A cancelled task (runtime shutting down): its stream stays in the outbox.
                Err(err) => {
                    unfinished.first_error.get_or_insert(err.into());
                    continue;
                }
            };
            let head = match head {
                Ok(head) => head,
                Err(err) => {
                    unfinished.add(stream_id, err.into());
                    continue;
                }
            };
            let may_wait = handoffs.is_some() && parked.may_wait(now);
            match decide(
                head.as_ref(),
                &parked.events,
                may_wait,
                self.config.handoff_wait,
                wall_clock,
            ) {
                Decision::Done => {}
                Decision::Publish { after } => {
                    let pending: VecDeque<EventEnvelope> = parked
                        .events
                        .into_iter()
                        .filter(|e| e.version > after)
                        .collect();
                    work.insert(stream_id, StreamWork::new(pending, after));
                }
                Decision::Wait => {
                    if let Some(handoffs) = handoffs.as_deref_mut() {
                        RelayStats::add(&self.stats.handoffs_waited, 1);
                        handoffs.park(stream_id, parked, now);
                    }
                }
                Decision::Load { after, up_to } => {
                    if parked.events.first().is_some_and(|e| e.version > after + 1) {
                        RelayStats::add(&self.stats.handoffs_taken_over, 1);
                    }
                    to_load.push((stream_id, after, up_to));
                }
            }
        }
        let store = self.store.clone();
        let loaded = bounded(
            to_load,
            self.config.store_concurrency,
            move |(stream_id, after, up_to)| {
                let store = store.clone();
                async move {
                    let events = store
                        .load_after(&stream_id, after, LoadBound::UpToVersion(up_to))
                        .await;
                    Ok((stream_id, after, events))
                }
            },
        )
        .await;
        for result in loaded {
            match result {
                Ok((stream_id, after, Ok(events))) => {
                    work.insert(stream_id, StreamWork::new(events.into(), after));
                }
                Ok((stream_id, _, Err(err))) => unfinished.add(stream_id, err.into()),
                Err(err) => {
                    unfinished.first_error.get_or_insert(err.into());
                }
            }
        }
        unfinished.merge(self.publish(work, None).await);
        unfinished.into_result(streams)
    }

    /// Publishes streams whose unpublished commits are older than the grace period. Returns the
    /// number of streams found, or an error when the outbox could not be read or some streams
    /// stay unpublished; those are deferred (backed off) in the store first.
    pub async fn sweep_once(&self) -> Result<usize, RelayError> {
        let before = OffsetDateTime::now_utc() - self.config.sweep_grace;
        let heads = self
            .store
            .unpublished_streams(before, self.config.sweep_batch)
            .await?;
        if heads.is_empty() {
            return Ok(0);
        }
        RelayStats::add(&self.stats.sweeps_with_work, 1);
        let found = heads.len();
        // One task per stream: never two calls for the same stream at once.
        let mut failures: HashMap<String, u32> = HashMap::new();
        let mut unique = Vec::new();
        for head in heads {
            if failures
                .insert(head.stream_id.clone(), head.publish_failures)
                .is_none()
            {
                unique.push(head);
            }
        }
        let mut claim = SweepClaim {
            until: OffsetDateTime::now_utc() + self.config.sweep_claim,
        };
        let ids = self.claim(unique, claim.until).await?;
        if ids.is_empty() {
            return Ok(found);
        }
        tracing::info!(
            streams = ids.len(),
            found,
            "outbox sweep publishing stranded events"
        );
        let mut work = HashMap::new();
        let mut unfinished = self.load_into(&mut work, ids).await;
        unfinished.merge(self.publish(work, Some(&mut claim)).await);
        if !unfinished.streams.is_empty() {
            self.defer(&unfinished.streams, &failures).await;
        }
        unfinished.into_result(found).map(|()| found)
    }

    /// Claims the swept streams for this process (every process's sweep finds the same stranded
    /// streams; without a claim each would publish them, one copy per process, and a slow
    /// target would be sent more the slower it gets). Returns the streams won; an error only
    /// when no claim could be made at all.
    async fn claim(
        &self,
        heads: Vec<StreamHead>,
        until: OffsetDateTime,
    ) -> Result<Vec<String>, RelayError> {
        let store = self.store.clone();
        let claims = bounded(heads, self.config.store_concurrency, move |head| {
            let store = store.clone();
            async move {
                let won = match head.pending_since {
                    Some(seen) => {
                        store
                            .claim_publication(&head.stream_id, seen, until)
                            .await?
                    }
                    None => false,
                };
                Ok((head.stream_id, won))
            }
        })
        .await;
        let mut won = Vec::new();
        let mut lost = 0u64;
        let mut first_error = None;
        for claim in claims {
            match claim {
                Ok((stream_id, true)) => won.push(stream_id),
                Ok((_, false)) => lost += 1,
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        RelayStats::add(&self.stats.sweep_claims_lost, lost);
        match first_error {
            Some(err) if won.is_empty() && lost == 0 => Err(err.into()),
            Some(err) => {
                tracing::warn!(error = %chain(&err), "claiming some swept streams failed; the next sweep retries them");
                Ok(won)
            }
            None => Ok(won),
        }
    }

    /// Extends a sweep's claim on the streams it is still publishing once half of it has run
    /// (a slow target can make a sweep outlast its claim). A stream whose claim cannot be
    /// extended (another process claimed it after all, or the store failed) is relinquished:
    /// this sweep sends nothing more of it, and leaves it to its new claimant or the next sweep.
    async fn renew(
        &self,
        claim: &mut SweepClaim,
        work: &HashMap<String, StreamWork>,
        relinquished: &mut HashSet<String>,
    ) {
        let now = OffsetDateTime::now_utc();
        if now < claim.until - self.config.sweep_claim / 2 {
            return;
        }
        let (seen, until) = (claim.until, now + self.config.sweep_claim);
        let held: Vec<String> = work
            .iter()
            .filter(|(id, w)| !w.pending.is_empty() && !relinquished.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        let store = self.store.clone();
        let renewals = bounded(held, self.config.store_concurrency, move |stream_id| {
            let store = store.clone();
            async move {
                let kept = store.claim_publication(&stream_id, seen, until).await;
                Ok((stream_id, kept))
            }
        })
        .await;
        let mut lost = 0u64;
        for (stream_id, kept) in renewals.into_iter().flatten() {
            match kept {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(stream_id, error = %chain(&err), "renewing a sweep's claim failed; leaving the stream to the next sweep");
                }
            }
            relinquished.insert(stream_id);
            lost += 1;
        }
        RelayStats::add(&self.stats.sweep_claims_lost, lost);
        claim.until = until;
    }

    /// Reads the unpublished events of `streams` (up to `store_concurrency` at once) into
    /// `work`; streams that could not be read are returned as unfinished.
    async fn load_into(
        &self,
        work: &mut HashMap<String, StreamWork>,
        streams: Vec<String>,
    ) -> Unfinished {
        let store = self.store.clone();
        let loaded = bounded(streams, self.config.store_concurrency, move |stream_id| {
            let store = store.clone();
            async move {
                let result = load_unpublished(store.as_ref(), &stream_id).await;
                Ok((stream_id, result))
            }
        })
        .await;
        let mut unfinished = Unfinished::default();
        for result in loaded {
            match result {
                Ok((stream_id, Ok(Some(w)))) => {
                    work.insert(stream_id, w);
                }
                Ok((_, Ok(None))) => {}
                Ok((stream_id, Err(err))) => unfinished.add(stream_id, err.into()),
                // A cancelled task (runtime shutting down): its stream stays in the outbox.
                Err(err) => {
                    unfinished.first_error.get_or_insert(err.into());
                }
            }
        }
        unfinished
    }

    /// Defers the publication of failed streams, each for its own backoff, so that they leave
    /// the head of the sweeps (in every process) while the other streams drain.
    async fn defer(&self, streams: &[String], failures: &HashMap<String, u32>) {
        let now = OffsetDateTime::now_utc();
        let deferrals: Vec<(String, OffsetDateTime)> = streams
            .iter()
            .map(|id| {
                let failed_before = failures.get(id).copied().unwrap_or(0);
                (id.clone(), now + self.config.stream_backoff(failed_before))
            })
            .collect();
        let store = self.store.clone();
        let results = bounded(
            deferrals,
            self.config.store_concurrency,
            move |(stream_id, until)| {
                let store = store.clone();
                async move { store.defer_publication(&stream_id, until).await }
            },
        )
        .await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        RelayStats::add(
            &self.stats.streams_deferred,
            (results.len() - failed) as u64,
        );
        if let Some(err) = results.into_iter().find_map(Result::err) {
            tracing::warn!(failed, error = %chain(&err), "deferring failed streams failed; the next sweep may take them again");
        }
    }

    /// Records how far each stream was published, up to `store_concurrency` heads at once.
    /// Every mark is attempted; a failed one leaves its head unpublished (the sweep publishes
    /// those events again: a duplicate, never a loss) and is returned as unfinished.
    async fn mark_all(&self, marks: Vec<(String, u64)>) -> Unfinished {
        let store = self.store.clone();
        let results = bounded(
            marks,
            self.config.store_concurrency,
            move |(stream_id, version)| {
                let store = store.clone();
                async move {
                    let result = store.mark_published(&stream_id, version).await;
                    Ok((stream_id, result))
                }
            },
        )
        .await;
        let mut unfinished = Unfinished::default();
        for result in results {
            match result {
                Ok((_, Ok(()))) => {}
                Ok((stream_id, Err(err))) => unfinished.add(stream_id, err.into()),
                Err(err) => {
                    unfinished.first_error.get_or_insert(err.into());
                }
            }
        }
        if let Some(err) = &unfinished.first_error {
            tracing::warn!(
                failed = unfinished.streams.len(),
                error = %chain(err),
                "marking streams published failed; the sweep will publish them again"
            );
        }
        unfinished
    }

    /// Publishes in rounds: each round sends the oldest pending event of every stream, so a
    /// stream's next event goes out only after the previous one was acknowledged (or set
    /// aside). Returns the streams it could not finish.
    async fn publish(
        &self,
        mut work: HashMap<String, StreamWork>,
        mut claim: Option<&mut SweepClaim>,
    ) -> Unfinished {
        let mut backoff = Backoff::new(self.config.retry_base, self.config.retry_cap);
        let mut failed_rounds = 0;
        let mut last_sink_error: Option<SinkError> = None;
        let mut blocked: HashMap<String, RelayError> = HashMap::new();
        let invalid_limit = self
            .config
            .max_invalid_attempts
            .min(self.config.max_failed_rounds)
            .max(1);
        let mut relinquished: HashSet<String> = HashSet::new();
        loop {
            if let Some(claim) = claim.as_deref_mut() {
                self.renew(claim, &work, &mut relinquished).await;
            }
            let mut progress = false;
            let mut outgoing = Vec::new();
            for (stream_id, w) in &work {
                if blocked.contains_key(stream_id) || relinquished.contains(stream_id) {
                    continue;
                }
                if let Some(event) = w.pending.front() {
                    outgoing.push(Outgoing::new(event.clone()));
                }
            }
            if outgoing.is_empty() {
                break;
            }
            // Records Kinesis can never accept are set aside without a call.
            let mut sendable = Vec::with_capacity(outgoing.len());
            for record in outgoing {
                match record.never_publishable() {
                    Some(reason) => {
                        progress |= self
                            .set_aside(&mut work, &mut blocked, &record, reason)
                            .await;
                    }
                    None => sendable.push(record),
                }
            }
            for call in pack(sendable) {
                let (outcomes, error) = self.send(call).await;
                if let Some(err) = error {
                    last_sink_error = Some(err);
                }
                for (record, outcome) in outcomes {
                    let stream_id = record.event.stream_id.clone();
                    match outcome {
                        Outcome::Accepted => {
                            if let Some(w) = work.get_mut(&stream_id) {
                                w.advance();
                                progress = true;
                                RelayStats::add(&self.stats.published, 1);
                            }
                        }
                        Outcome::Retry => RelayStats::add(&self.stats.retried, 1),
                        Outcome::Invalid(reason) => {
                            let refusals = work.get_mut(&stream_id).map_or(0, |w| {
                                w.invalid_refusals += 1;
                                w.invalid_refusals
                            });
                            if refusals >= invalid_limit {
                                progress |= self
                                    .set_aside(&mut work, &mut blocked, &record, reason)
                                    .await;
                            } else {
                                RelayStats::add(&self.stats.retried, 1);
                            }
                        }
                    }
                }
            }
            if progress {
                failed_rounds = 0;
                backoff.reset();
            } else {
                failed_rounds += 1;
                if failed_rounds >= self.config.max_failed_rounds {
                    RelayStats::add(&self.stats.deferred, 1);
                    tracing::warn!(
                        streams = work.values().filter(|w| !w.pending.is_empty()).count(),
                        "publication target unavailable; leaving events in the outbox for the sweep"
                    );
                    break;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
        let mut unfinished = Unfinished::default();
        for (stream_id, err) in blocked {
            unfinished.add(stream_id, err);
        }
        for (stream_id, w) in &work {
            // A relinquished stream belongs to another sweep now: not ours to defer.
            if !w.pending.is_empty()
                && !unfinished.streams.contains(stream_id)
                && !relinquished.contains(stream_id)
            {
                let cause = match last_sink_error.take() {
                    Some(err) => RelayError::Sink(err),
                    None => RelayError::Refused {
                        stream_id: stream_id.clone(),
                    },
                };
                unfinished.add(stream_id.clone(), cause);
            }
        }
        let marks = work
            .into_iter()
            .filter(|(_, w)| w.progressed)
            .map(|(stream_id, w)| (stream_id, w.published_upto))
            .collect();
        unfinished.merge(self.mark_all(marks).await);
        unfinished
    }

    /// Sends one call. A call refused as invalid is split in halves until the offending
    /// records are alone, so the rest of the call is still published. Returns each record's
    /// outcome and the error of a call that failed for a reason other than its content.
    async fn send(&self, call: Vec<Outgoing>) -> (Vec<(Outgoing, Outcome)>, Option<SinkError>) {
        let mut outcomes = Vec::with_capacity(call.len());
        let mut unavailable = None;
        let mut calls = vec![call];
        while let Some(call) = calls.pop() {
            let records: Vec<EventEnvelope> = call.iter().map(|r| r.event.clone()).collect();
            let span = publication_span(self.sink.destination(), &records);
            match self.sink.publish(&records).instrument(span.clone()).await {
                Ok(accepted) => {
                    let refused = accepted.iter().filter(|ok| !**ok).count();
                    if refused > 0 {
                        span.record("refused", refused);
                    }
                    for (i, record) in call.into_iter().enumerate() {
                        let outcome = if accepted.get(i).copied().unwrap_or(false) {
                            Outcome::Accepted
                        } else {
                            Outcome::Retry
                        };
                        outcomes.push((record, outcome));
                    }
                }
                Err(err) if err.is_permanent() && call.len() > 1 => {
                    span.record("otel.status_code", "error");
                    span.in_scope(|| tracing::debug!(error = %chain(&err), "call refused as invalid; narrowing it down"));
                    let mut first = call;
                    let second = first.split_off(first.len() / 2);
                    calls.push(second);
                    calls.push(first);
                }
                Err(err) if err.is_permanent() => {
                    span.record("otel.status_code", "error");
                    let reason = chain(&err).to_string();
                    outcomes.extend(
                        call.into_iter()
                            .map(|record| (record, Outcome::Invalid(reason.clone()))),
                    );
                }
                Err(err) => {
                    span.record("otel.status_code", "error");
                    span.in_scope(
                        || tracing::debug!(error = %chain(&err), "publication call failed"),
                    );
                    outcomes.extend(call.into_iter().map(|record| (record, Outcome::Retry)));
                    unavailable = Some(err);
                }
            }
        }
        (outcomes, unavailable)
    }

    /// Sets a record that can never be published aside (dead-letter entry, counter, error log)
    /// and moves its stream past it. When the entry cannot be written the stream stops here
    /// for this pass (its record stays in the outbox). Returns true when the record was set
    /// aside.
    async fn set_aside(
        &self,
        work: &mut HashMap<String, StreamWork>,
        blocked: &mut HashMap<String, RelayError>,
        record: &Outgoing,
        reason: String,
    ) -> bool {
        let event = &record.event;
        let letter = RelayDeadLetter {
            stream_id: event.stream_id.clone(),
            version: event.version,
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            record_bytes: record.bytes,
            reason,
            dead_lettered_at: OffsetDateTime::now_utc(),
        };
        match self.dead_letters.put(&letter).await {
            Ok(()) => {
                RelayStats::add(&self.stats.dead_lettered, 1);
                tracing::error!(
                    stream_id = %letter.stream_id,
                    version = letter.version,
                    event_id = %letter.event_id,
                    event_type = %letter.event_type,
                    record_bytes = letter.record_bytes,
                    reason = %letter.reason,
                    "record can never be published: set aside in the relay's dead letters; the stream's later events still publish"
                );
                if let Some(w) = work.get_mut(&event.stream_id) {
                    w.advance();
                }
                true
            }
            Err(err) => {
                tracing::error!(stream_id = %event.stream_id, version = event.version, error = %chain(&err), "could not set aside a record that can never be published; the stream waits");
                blocked.insert(event.stream_id.clone(), err.into());
                false
            }
        }
    }
}

impl Unfinished {
    fn add(&mut self, stream_id: String, cause: RelayError) {
        if !self.streams.contains(&stream_id) {
            self.streams.push(stream_id);
        }
        self.first_error.get_or_insert(cause);
    }

    fn merge(&mut self, other: Unfinished) {
        for stream_id in other.streams {
            if !self.streams.contains(&stream_id) {
                self.streams.push(stream_id);
            }
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Ok when everything of `streams` attempted streams was finished.
    fn into_result(self, streams: usize) -> Result<(), RelayError> {
        match self.first_error {
            None => Ok(()),
            Some(first) => Err(RelayError::StreamsFailed {
                failed: self.streams.len(),
                streams,
                first: Box::new(first),
            }),
        }
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
        if head.pending_since.is_some() {
            // Fully published meanwhile; make sure the pending mark is gone.
            store.mark_published(stream_id, head.version).await?;
        }
        return Ok(None);
    }
    let events = store
        .load_after(
            stream_id,
            head.published_version,
            LoadBound::UpToVersion(head.version),
        )
        .await?;
    Ok(Some(StreamWork::new(events.into(), head.published_version)))
}

/// Runs `call` on every item, at most `limit` (at least 1) at once, each in its own task (in the
/// current span), and returns the results in completion order once all have finished. A task
/// that panicked re-raises its panic here; one cancelled (the runtime shutting down) is an error.
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
