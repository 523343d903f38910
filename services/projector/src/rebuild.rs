//! Rebuilding the read model into another table from the event store (`quotes rebuild
//! read-model --into TABLE`, ADR 0011).
//!
//! The operator's command first makes the new table *standby* in the routing
//! ([`quote_read_model::routing`]), so every projector writes it too from then on. The rebuild
//! then runs in two phases, its progress kept in the new table as the control document
//! `rebuild` (written on its revision, so two rebuilds of one table cannot both run):
//!
//! 1. **Scan**: the events table in parallel Scan segments; each stream's events arrive
//!    together and in order, so each quote is folded from what the scan read and upserted
//!    (guarded by version). A segment's progress is the last stream it finished, so a run
//!    killed mid-way resumes after it. Reads are paced to `max_rcu` (estimated from item sizes:
//!    one read unit per 4 KB, strongly consistent).
//! 2. **Follow**: every shard of the stream from shortly before the standby registration
//!    (`registered_at - clock_margin`) until the reader is at the tip, and no earlier than one
//!    routing TTL after the registration; each record's quote is loaded from the store, folded
//!    and upserted. This covers what was committed while projectors had not yet seen the new
//!    routing; after it, the projectors' own writes keep the table current.
//!
//! Every write is a version-guarded upsert of a fold of the stream as stored, so the two
//! phases and the projectors may write one quote in any order: the newest fold wins. A stream
//! that cannot be folded (an event this code cannot read) is counted and named, not fatal: the
//! projector's dead letters hold the same record.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use event_store::{EventEnvelope, EventStore, LoadBound, ScanCursor, ScanPart};
use kinesis_consumer::source::{RecordSource, SourceError, StartPosition};
use quote_domain::quote::QuoteEvent;
use quote_pipeline::quote;
use quote_read_model::projection::summarize;
use quote_read_model::{ReadModel, ReadModelError};
use quote_runtime::backoff::Backoff;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::Mutex;

/// The control document holding a rebuild's progress in its target table.
pub const REBUILD_DOCUMENT: &str = "rebuild";

/// How many stream ids that could not be folded are named in the progress (the count is
/// exact).
const MAX_NAMED_UNREADABLE: usize = 100;

/// Attempts of one read or write before the rebuild stops (it resumes where it stopped).
const MAX_ATTEMPTS: u32 = 8;

/// How a rebuild runs.
#[derive(Debug, Clone)]
pub struct RebuildPlan {
    /// Parallel Scan segments (on a new rebuild; a resumed one keeps its own).
    pub segments: u32,
    /// Events per Scan page.
    pub page_size: usize,
    /// Read units per second the rebuild may use, if limited.
    pub max_rcu: Option<f64>,
    /// How long services keep the routing (`READ_MODEL_ROUTING_SECS`): the follow lasts at
    /// least this long after the registration.
    pub routing_ttl: Duration,
    /// How far before the registration the follow starts (clock skew between this machine and
    /// Kinesis's arrival timestamps).
    pub clock_margin: Duration,
}

/// Where a scan segment is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum SegmentProgress {
    /// Not begun.
    Todo,
    /// Every stream up to and including this one is written.
    After {
        /// The last stream finished.
        stream_id: String,
        /// Its last event's version.
        version: i64,
    },
    /// Finished.
    Done,
}

/// The rebuild's phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum Phase {
    /// Scanning the event store.
    Scanning,
    /// Following the stream to its tip.
    Following,
    /// Done: the table was current at `at` and projectors keep it so.
    CaughtUp {
        /// When the follow reached the tip.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// A rebuild's progress, as stored in its target table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildProgress {
    /// The table rebuilt.
    pub table: String,
    /// When the table was made standby (projectors write it from about then on).
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
    /// Where the rebuild is.
    #[serde(flatten)]
    pub phase: Phase,
    /// One entry per Scan segment.
    pub segments: Vec<SegmentProgress>,
    /// Events read by the scan.
    pub events_scanned: u64,
    /// Quote summaries written (by the scan and the follow; stale writes included).
    pub quotes_written: u64,
    /// Records read by the follow.
    pub records_followed: u64,
    /// Streams that could not be folded.
    pub unreadable: u64,
    /// The first of them, by stream id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable_streams: Vec<String>,
}

impl RebuildProgress {
    /// Scan segments finished.
    pub fn segments_done(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| **s == SegmentProgress::Done)
            .count()
    }

    /// The progress stored in `table`'s read model, if a rebuild ever ran into it.
    pub async fn load(target: &dyn ReadModel) -> Result<Option<(Self, u64)>, RebuildError> {
        let Some(document) = target.read_control(REBUILD_DOCUMENT).await? else {
            return Ok(None);
        };
        let progress = serde_json::from_str(&document.body).map_err(RebuildError::Progress)?;
        Ok(Some((progress, document.revision)))
    }
}

/// Why a rebuild stopped.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The event store failed (after retries).
    #[error("reading the event store")]
    Store(#[from] event_store::StoreError),
    /// The target table failed (after retries).
    #[error("writing the read model")]
    ReadModel(#[from] ReadModelError),
    /// The stream failed (after retries).
    #[error("reading the stream")]
    Source(#[from] SourceError),
    /// Another rebuild wrote the progress meanwhile.
    #[error("another rebuild of {table} is running (its progress changed under this one)")]
    Concurrent {
        /// The table.
        table: String,
    },
    /// The stored progress is unreadable.
    #[error("the rebuild's stored progress is unreadable")]
    Progress(#[source] serde_json::Error),
    /// The stored progress is for another table.
    #[error("{stored} holds the progress of a rebuild into {table}")]
    Foreign {
        /// The table asked for.
        table: String,
        /// The table the progress names.
        stored: String,
    },
    /// A follow task ended abnormally.
    #[error("a follow task failed: {0}")]
    Task(String),
}

/// Paces reads to a read-unit budget.
#[derive(Debug)]
struct Pacer {
    max_rcu: Option<f64>,
    started: tokio::time::Instant,
    consumed: f64,
}

impl Pacer {
    /// Charges a read of `events` (one unit per 4 KB of their size, at least one) and waits
    /// until the budget allows it.
    async fn charge(this: &Mutex<Pacer>, events: &[EventEnvelope]) {
        let wait = {
            let mut pacer = this.lock().await;
            let Some(max_rcu) = pacer.max_rcu else {
                return;
            };
            // Sized only when paced: an unlimited rebuild does not encode what it reads.
            let bytes: usize = events.iter().map(event_bytes).sum();
            pacer.consumed += (bytes.div_ceil(4096)).max(1) as f64;
            let due = pacer.started + Duration::from_secs_f64(pacer.consumed / max_rcu);
            due.saturating_duration_since(tokio::time::Instant::now())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The progress and the revision it was stored at (the rebuild's fence).
#[derive(Debug)]
struct Stored {
    progress: RebuildProgress,
    revision: Option<u64>,
}

/// One rebuild into one table.
#[derive(Debug)]
pub struct Rebuild {
    store: Arc<dyn EventStore>,
    target: Arc<dyn ReadModel>,
    table: String,
    source: Arc<dyn RecordSource>,
    plan: RebuildPlan,
    stored: Mutex<Stored>,
    pacer: Mutex<Pacer>,
}

impl Rebuild {
    /// A rebuild of `table` (the read model `target`) from `store`, following `source`;
    /// resumes the stored progress, or starts one registered now.
    pub async fn open(
        store: Arc<dyn EventStore>,
        target: Arc<dyn ReadModel>,
        table: &str,
        source: Arc<dyn RecordSource>,
        plan: RebuildPlan,
    ) -> Result<Self, RebuildError> {
        let stored = match RebuildProgress::load(target.as_ref()).await? {
            Some((progress, _)) if progress.table != table => {
                return Err(RebuildError::Foreign {
                    table: table.to_owned(),
                    stored: progress.table,
                })
            }
            Some((progress, revision)) => Stored {
                progress,
                revision: Some(revision),
            },
            None => Stored {
                progress: RebuildProgress {
                    table: table.to_owned(),
                    registered_at: OffsetDateTime::now_utc(),
                    phase: Phase::Scanning,
                    segments: vec![SegmentProgress::Todo; plan.segments.max(1) as usize],
                    events_scanned: 0,
                    quotes_written: 0,
                    records_followed: 0,
                    unreadable: 0,
                    unreadable_streams: Vec::new(),
                },
                revision: None,
            },
        };
        Ok(Self {
            store,
            target,
            table: table.to_owned(),
            source,
            pacer: Mutex::new(Pacer {
                max_rcu: plan.max_rcu.filter(|r| *r > 0.0),
                started: tokio::time::Instant::now(),
                consumed: 0.0,
            }),
            plan,
            stored: Mutex::new(stored),
        })
    }

    /// The progress so far.
    pub async fn progress(&self) -> RebuildProgress {
        self.stored.lock().await.progress.clone()
    }

    /// Runs the rebuild to the end (or resumes it); returns the final progress. A finished
    /// rebuild returns at once.
    pub async fn run(&self) -> Result<RebuildProgress, RebuildError> {
        if self.stored.lock().await.revision.is_none() {
            self.save(|_| {}).await?;
        }
        if self.progress().await.phase == Phase::Scanning {
            self.scan().await?;
            self.save(|p| p.phase = Phase::Following).await?;
        }
        if self.progress().await.phase == Phase::Following {
            self.follow().await?;
            self.save(|p| {
                p.phase = Phase::CaughtUp {
                    at: OffsetDateTime::now_utc(),
                }
            })
            .await?;
        }
        Ok(self.progress().await)
    }

    /// Changes the progress and stores it on the revision last stored.
    async fn save(&self, change: impl FnOnce(&mut RebuildProgress)) -> Result<(), RebuildError> {
        let mut stored = self.stored.lock().await;
        change(&mut stored.progress);
        let body = serde_json::to_string(&stored.progress).map_err(RebuildError::Progress)?;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            match self
                .target
                .write_control(REBUILD_DOCUMENT, &body, stored.revision)
                .await
            {
                Ok(revision) => {
                    stored.revision = Some(revision);
                    return Ok(());
                }
                Err(ReadModelError::Conflict { .. }) => {
                    return Err(RebuildError::Concurrent {
                        table: self.table.clone(),
                    })
                }
                Err(err) if backoff.attempts() + 1 < MAX_ATTEMPTS => {
                    tracing::warn!(error = %err, "storing the rebuild's progress failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Phase 1: every segment not done, concurrently.
    async fn scan(&self) -> Result<(), RebuildError> {
        let segments = self.progress().await.segments;
        let total = u32::try_from(segments.len()).unwrap_or(u32::MAX);
        let parts = segments
            .into_iter()
            .enumerate()
            .filter(|(_, s)| *s != SegmentProgress::Done)
            .map(|(segment, progress)| {
                let part = ScanPart {
                    segment: u32::try_from(segment).unwrap_or(u32::MAX),
                    total,
                };
                self.scan_segment(part, progress)
            });
        futures::future::try_join_all(parts).await?;
        Ok(())
    }

    /// One segment from where it stopped: each stream is written once its last event is read.
    async fn scan_segment(
        &self,
        part: ScanPart,
        progress: SegmentProgress,
    ) -> Result<(), RebuildError> {
        let index = part.segment as usize;
        let mut cursor = match progress {
            SegmentProgress::After { stream_id, version } => {
                Some(ScanCursor { stream_id, version })
            }
            SegmentProgress::Todo | SegmentProgress::Done => None,
        };
        // The stream being read: its events may continue on the next page.
        let mut current: Vec<EventEnvelope> = Vec::new();
        loop {
            let page = retry("scanning the event store", || {
                self.store
                    .scan_events(part, cursor.as_ref(), self.plan.page_size)
            })
            .await?;
            Pacer::charge(&self.pacer, &page.events).await;
            let scanned = page.events.len() as u64;
            let mut finished = None;
            let mut written = 0;
            for event in page.events {
                if current
                    .last()
                    .is_some_and(|last| last.stream_id != event.stream_id)
                {
                    written += self.write_fold(&current).await?;
                    finished = current.last().map(|e| (e.stream_id.clone(), e.version));
                    current.clear();
                }
                current.push(event);
            }
            cursor = page.next;
            if cursor.is_none() {
                if !current.is_empty() {
                    written += self.write_fold(&current).await?;
                }
                self.save(|p| {
                    p.segments[index] = SegmentProgress::Done;
                    p.events_scanned += scanned;
                    p.quotes_written += written;
                })
                .await?;
                return Ok(());
            }
            self.save(|p| {
                if let Some((stream_id, version)) = finished {
                    p.segments[index] = SegmentProgress::After {
                        stream_id,
                        version: i64::try_from(version).unwrap_or(i64::MAX),
                    };
                }
                p.events_scanned += scanned;
                p.quotes_written += written;
            })
            .await?;
        }
    }

    /// Phase 2: every shard from before the registration to its tip, concurrently.
    async fn follow(&self) -> Result<(), RebuildError> {
        let registered_at = self.progress().await.registered_at;
        let start = registered_at - self.plan.clock_margin;
        let not_before = registered_at + self.plan.routing_ttl + Duration::from_secs(1);
        let shards = retry("listing the stream's shards", || self.source.list_shards()).await?;
        let follows = shards
            .iter()
            .map(|shard| self.follow_shard(&shard.shard_id, start, not_before));
        futures::future::try_join_all(follows).await?;
        Ok(())
    }

    /// One shard from `start` until it ends or its reader is at the tip after `not_before`.
    async fn follow_shard(
        &self,
        shard_id: &str,
        start: OffsetDateTime,
        not_before: OffsetDateTime,
    ) -> Result<(), RebuildError> {
        let mut reader = retry("opening a shard", || {
            self.source
                .open(shard_id, StartPosition::AtTimestamp(start))
        })
        .await?;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let batch = match reader.next_batch().await {
                Ok(batch) => {
                    backoff.reset();
                    batch
                }
                Err(err) if backoff.attempts() + 1 < MAX_ATTEMPTS => {
                    tracing::warn!(shard_id, error = %err, "reading a shard failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
                Err(err) => return Err(err.into()),
            };
            let streams: BTreeSet<String> = batch
                .records
                .iter()
                .filter_map(|record| serde_json::from_slice::<EventEnvelope>(&record.data).ok())
                .filter(is_quote_event)
                .map(|envelope| envelope.stream_id)
                .collect();
            let mut written = 0;
            for stream_id in &streams {
                let events = retry("loading a stream", || {
                    self.store.load(stream_id, LoadBound::Latest)
                })
                .await?;
                Pacer::charge(&self.pacer, &events).await;
                written += self.write_fold(&events).await?;
            }
            let records = batch.records.len() as u64;
            if records > 0 {
                self.save(|p| {
                    p.records_followed += records;
                    p.quotes_written += written;
                })
                .await?;
            }
            if batch.shard_end.is_some() {
                return Ok(());
            }
            let at_tip = batch.millis_behind_latest == Some(0);
            if at_tip && OffsetDateTime::now_utc() >= not_before {
                return Ok(());
            }
        }
    }

    /// Folds one stream and upserts its summary; 1 when written, 0 when the stream is not a
    /// quote's or cannot be folded (then recorded as unreadable).
    async fn write_fold(&self, events: &[EventEnvelope]) -> Result<u64, RebuildError> {
        let Some(last) = events.last() else {
            return Ok(0);
        };
        if !events.iter().all(is_quote_event) {
            return Ok(0);
        }
        let state = match quote::fold(events) {
            Ok(Some(state)) => state,
            Ok(None) => return Ok(0),
            Err(err) => {
                tracing::warn!(stream_id = %last.stream_id, error = %err, "a stream that cannot be folded is left out of the rebuild");
                let stream_id = last.stream_id.clone();
                self.save(move |p| {
                    p.unreadable += 1;
                    if p.unreadable_streams.len() < MAX_NAMED_UNREADABLE
                        && !p.unreadable_streams.contains(&stream_id)
                    {
                        p.unreadable_streams.push(stream_id);
                    }
                })
                .await?;
                return Ok(0);
            }
        };
        let summary = summarize(&state, last.recorded_at);
        retry("writing the read model", || self.target.upsert(&summary)).await?;
        Ok(1)
    }
}

fn is_quote_event(envelope: &EventEnvelope) -> bool {
    QuoteEvent::EVENT_TYPES.contains(&envelope.event_type.as_str())
}

/// An event's size as stored, near enough for pacing.
fn event_bytes(event: &EventEnvelope) -> usize {
    event.data.to_string().len() + 400
}

/// Runs `attempt` until it succeeds or fails [`MAX_ATTEMPTS`] times, with full-jitter backoff.
async fn retry<T, E, F, Fut>(what: &str, mut attempt: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) if backoff.attempts() + 1 < MAX_ATTEMPTS => {
                tracing::warn!(error = %err, "{what} failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(err) => return Err(err),
        }
    }
}
