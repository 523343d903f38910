//! `quotes archive backfill`: the events the store holds from before the archive begins,
//! written to the archive in the archiver's format, so the archive holds the whole history.
//!
//! The archive begins where the archiver first read each shard (its `TRIM_HORIZON` when it
//! started); what Kinesis had already dropped by then exists only in the event store. The
//! backfill writes every event recorded before a cut-off `until` to one pseudo-shard,
//! `backfill-<until in Unix milliseconds>`, one record per event exactly as the relay publishes
//! it (the envelope's JSON, partition key = its stream id, arrival = its `recorded_at`), with
//! sequence numbers 1, 2, 3, … in the store's scan order (a stream's events together and in
//! version order). Readers of the archive take the backfill shard before every shard of the
//! stream (ADR 0009).
//!
//! - **The cut-off** defaults to the latest first arrival among the archive's root shards (the
//!   shards whose parents the archive does not hold) plus a clock margin (five minutes). Every
//!   event recorded before it is backfilled. A later one reached Kinesis after the first
//!   archived record of every root, on a root (archived from that record on) or on a shard
//!   split or merged from the roots (archived whole); a root with nothing archived held only
//!   records older than the stream's retention when the archiver began, which are older than
//!   every other root's first record. So every event is in the backfill or the archive. An
//!   event near the cut may be in both, as Kinesis itself may deliver a record twice;
//!   consumers are idempotent.
//! - **Resumable**: segments are committed through the same fenced manifest as the archiver's
//!   (`ShardWriter`); after a crash, a second run finds the unfinished backfill shard (its
//!   cut-off is in its name), skips what is committed and continues. The cut-off is in the
//!   past, so the events before it, and their scan order, do not change between runs.
//! - **Once**: a finished backfill shard is ended in the manifest; running again reports it.

use std::sync::Arc;
use std::time::Duration;

use event_store::{EventEnvelope, EventStore, ScanCursor, ScanPart, StoreError};
use kinesis_consumer::Record;
use quote_archive::reader::{read_segment, ReadError};
use quote_archive::{
    ArchiverConfig, Manifest, ManifestError, ObjectStore, ShardHead, ShardWriter, WriteError,
};
use quote_runtime::backoff::Backoff;
use quote_runtime::error_chain::chain;
use serde::Serialize;
use time::OffsetDateTime;

pub use quote_archive::BACKFILL_SHARD_PREFIX;

/// How much later than the archive's beginning the default cut-off is: covers the clock
/// difference between the hosts that record events and Kinesis, which stamps arrivals.
pub const DEFAULT_CLOCK_MARGIN: Duration = Duration::from_secs(300);

/// Events read per scan page.
const SCAN_PAGE: usize = 500;

/// Attempts at a failing call before the backfill stops (a later run resumes).
const ATTEMPTS: u32 = 8;

/// The id of the backfill shard for a cut-off.
pub fn backfill_shard_id(until: OffsetDateTime) -> String {
    format!(
        "{BACKFILL_SHARD_PREFIX}{}",
        until.unix_timestamp_nanos() / 1_000_000
    )
}

/// The cut-off of a backfill shard, or `None` when `shard_id` is not one.
pub fn backfill_cutoff(shard_id: &str) -> Option<OffsetDateTime> {
    let millis: i128 = shard_id.strip_prefix(BACKFILL_SHARD_PREFIX)?.parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).ok()
}

/// Why a backfill cannot start or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The archive has nothing to start from and no cut-off was given.
    #[error("nothing is archived yet: start the archiver (`quotes run archiver`) and backfill once it has archived a segment, or give --until")]
    EmptyArchive,
    /// The default cut-off is in the future (the archiver began less than the margin ago).
    #[error("the backfill covers events recorded before {until} (the archive's beginning plus the clock margin), which is still in the future: run it after that time, or give --until")]
    CutoffInFuture {
        /// The cut-off.
        until: String,
    },
    /// A cut-off in the future was given.
    #[error("--until {0} is in the future: events recorded after it are still arriving")]
    UntilInFuture(String),
    /// Another backfill of this stream exists with a different cut-off.
    #[error(
        "the stream already has a backfill up to {existing} ({state}); it is the one to {action}"
    )]
    OtherBackfill {
        /// Its cut-off.
        existing: String,
        /// `finished` or `unfinished`.
        state: &'static str,
        /// What to do.
        action: &'static str,
    },
    /// The event store failed (after retries).
    #[error("reading the event store failed")]
    Store(#[source] StoreError),
    /// The manifest failed (after retries).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Writing a segment failed (after retries).
    #[error("writing the backfill failed; run it again to resume")]
    Write(#[source] WriteError),
    /// An archived segment could not be read (to find where the archive begins).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// An event does not encode (never expected: it was decoded from the store).
    #[error("event {stream_id} v{version} does not encode")]
    Encode {
        /// Its stream.
        stream_id: String,
        /// Its version.
        version: u64,
        /// What the encoder said.
        #[source]
        source: serde_json::Error,
    },
}

/// What a backfill did (or, finished earlier, had done).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackfillReport {
    /// The backfill shard.
    pub shard_id: String,
    /// Events recorded before this instant were backfilled.
    #[serde(with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
    /// Whether this run found the backfill already finished.
    pub already_finished: bool,
    /// Events read from the store.
    pub events_scanned: u64,
    /// Events before the cut-off (the backfill's records).
    pub events_before_cutoff: u64,
    /// Of those, committed by an earlier, interrupted run and skipped.
    pub records_resumed: u64,
    /// Records written by this run.
    pub records_written: u64,
    /// Records in the backfill shard now.
    pub records_total: u64,
    /// Segments in the backfill shard now.
    pub segments_total: u64,
}

/// The backfill of one stream's archive from the event store.
#[derive(Debug, Clone)]
pub struct Backfill {
    store: Arc<dyn EventStore>,
    objects: Arc<dyn ObjectStore>,
    manifest: Arc<dyn Manifest>,
    config: Arc<ArchiverConfig>,
}

impl Backfill {
    /// A backfill of `config.stream` (segments of up to `config.segment_bytes`; the age limit
    /// does not apply).
    pub fn new(
        store: Arc<dyn EventStore>,
        objects: Arc<dyn ObjectStore>,
        manifest: Arc<dyn Manifest>,
        mut config: ArchiverConfig,
    ) -> Self {
        config.segment_age = Duration::MAX;
        Self {
            store,
            objects,
            manifest,
            config: Arc::new(config),
        }
    }

    /// Where the archive of the stream begins: the latest first arrival among its root shards.
    pub async fn archive_begins(&self) -> Result<OffsetDateTime, BackfillError> {
        let heads = self.manifest.shards(&self.config.stream).await?;
        self.begins_from(&heads).await
    }

    /// [`Backfill::archive_begins`] for the manifest's `heads`.
    async fn begins_from(&self, heads: &[ShardHead]) -> Result<OffsetDateTime, BackfillError> {
        let known: std::collections::BTreeSet<&str> =
            heads.iter().map(|head| head.shard_id.as_str()).collect();
        let mut begins: Option<OffsetDateTime> = None;
        for head in heads.iter().filter(|head| {
            backfill_cutoff(&head.shard_id).is_none()
                && head.parents.iter().all(|p| !known.contains(p.as_str()))
        }) {
            // A root without a segment yet had no record in the stream's retention when the
            // archiver began (or the archiver has not reached it): what it had is older than
            // any other root's first record, so before the cut.
            let Some(first) = self
                .manifest
                .segments(&self.config.stream, &head.shard_id)
                .await?
                .into_iter()
                .next()
            else {
                continue;
            };
            let records = read_segment(self.objects.as_ref(), &first).await?;
            let arrival = records
                .first()
                .and_then(|record| record.approximate_arrival)
                .unwrap_or(first.committed_at);
            begins = Some(begins.map_or(arrival, |b| b.max(arrival)));
        }
        begins.ok_or(BackfillError::EmptyArchive)
    }

    /// The backfill shard to write (an unfinished one resumes), or the report of a finished one.
    async fn choose(
        &self,
        until: Option<OffsetDateTime>,
        margin: Duration,
        now: OffsetDateTime,
    ) -> Result<Result<(String, OffsetDateTime, u64), BackfillReport>, BackfillError> {
        let heads = self.manifest.shards(&self.config.stream).await?;
        let existing: Option<(&ShardHead, OffsetDateTime)> = heads
            .iter()
            .find_map(|head| backfill_cutoff(&head.shard_id).map(|cut| (head, cut)));
        if let Some((head, cut)) = existing {
            if until.is_some_and(|until| backfill_shard_id(until) != head.shard_id) {
                return Err(BackfillError::OtherBackfill {
                    existing: rfc3339(cut),
                    state: if head.ended { "finished" } else { "unfinished" },
                    action: if head.ended {
                        "keep"
                    } else {
                        "finish: run again without --until"
                    },
                });
            }
            if head.ended {
                return Ok(Err(BackfillReport {
                    shard_id: head.shard_id.clone(),
                    until: Some(cut),
                    already_finished: true,
                    records_total: head.records,
                    segments_total: head.segments,
                    ..BackfillReport::default()
                }));
            }
            return Ok(Ok((head.shard_id.clone(), cut, head.fencing_token)));
        }
        let until = match until {
            Some(until) if until > now => return Err(BackfillError::UntilInFuture(rfc3339(until))),
            Some(until) => until,
            None => {
                let until = self.begins_from(&heads).await? + margin;
                if until > now {
                    return Err(BackfillError::CutoffInFuture {
                        until: rfc3339(until),
                    });
                }
                until
            }
        };
        // Millisecond precision, as the shard id keeps it.
        let until = backfill_cutoff(&backfill_shard_id(until)).unwrap_or(until);
        Ok(Ok((backfill_shard_id(until), until, 0)))
    }

    /// Writes (or finishes) the backfill: every event recorded before `until` (default: where
    /// the archive begins plus `margin`). `progress` is told after each page of the scan.
    pub async fn run(
        &self,
        until: Option<OffsetDateTime>,
        margin: Duration,
        progress: &mut (dyn FnMut(&BackfillReport) + Send),
    ) -> Result<BackfillReport, BackfillError> {
        let now = OffsetDateTime::now_utc();
        let (shard_id, until, last_token) = match self.choose(until, margin, now).await? {
            Ok(chosen) => chosen,
            Err(finished) => return Ok(finished),
        };
        let mut writer = ShardWriter::new(
            self.objects.clone(),
            self.manifest.clone(),
            self.config.clone(),
            &shard_id,
        );
        let token = u64::try_from(now.unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(0)
            .max(last_token + 1);
        let head = writer
            .claim(token, &[])
            .await
            .map_err(BackfillError::Write)?;
        let mut report = BackfillReport {
            shard_id: shard_id.clone(),
            until: Some(until),
            records_total: head.records,
            segments_total: head.segments,
            ..BackfillReport::default()
        };
        tracing::info!(%shard_id, until = %rfc3339(until), resumed_after = ?head.last_sequence, "backfilling the archive from the event store");

        let mut cursor: Option<ScanCursor> = None;
        loop {
            let page = retry("scanning the event store", || {
                self.store
                    .scan_events(ScanPart::WHOLE, cursor.as_ref(), SCAN_PAGE)
            })
            .await
            .map_err(BackfillError::Store)?;
            for event in page.events {
                report.events_scanned += 1;
                if event.recorded_at >= until {
                    continue;
                }
                report.events_before_cutoff += 1;
                let sequence = report.events_before_cutoff.to_string();
                if writer.seen(&sequence) {
                    report.records_resumed += 1;
                    continue;
                }
                writer.add(&record(&event, sequence)?);
                report.records_written += 1;
                writer.close_if_due(false);
                self.store_closed(&mut writer, &mut report).await?;
            }
            progress(&report);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        writer.close_if_due(true);
        self.store_closed(&mut writer, &mut report).await?;
        retry("ending the backfill shard", || writer.end())
            .await
            .map_err(BackfillError::Write)?;
        tracing::info!(%shard_id, records = report.records_total, segments = report.segments_total, "backfill finished");
        Ok(report)
    }

    async fn store_closed(
        &self,
        writer: &mut ShardWriter,
        report: &mut BackfillReport,
    ) -> Result<(), BackfillError> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let records = writer.closed_records();
            match writer.store_closed().await {
                Ok(Some(_)) => {
                    report.records_total += records;
                    report.segments_total += 1;
                    return Ok(());
                }
                Ok(None) => return Ok(()),
                Err(err @ WriteError::Manifest(ManifestError::Fenced { .. })) => {
                    return Err(BackfillError::Write(err))
                }
                Err(err) if backoff.attempts() + 1 >= ATTEMPTS => {
                    return Err(BackfillError::Write(err))
                }
                Err(err) => {
                    tracing::warn!(error = %chain(&err), "storing a backfill segment failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

/// The record the relay would have published for `event`, at `sequence` of the backfill shard.
fn record(event: &EventEnvelope, sequence: String) -> Result<Record, BackfillError> {
    let data = serde_json::to_vec(event).map_err(|source| BackfillError::Encode {
        stream_id: event.stream_id.clone(),
        version: event.version,
        source,
    })?;
    Ok(Record {
        sequence_number: sequence,
        sub_sequence_number: 0,
        partition_key: event.stream_id.clone(),
        data,
        approximate_arrival: Some(event.recorded_at),
    })
}

/// Calls `call` until it succeeds, with backoff, [`ATTEMPTS`] times at most.
async fn retry<T, E, F, Fut>(what: &str, mut call: F) -> Result<T, E>
where
    E: std::error::Error + 'static,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(err) if backoff.attempts() + 1 >= ATTEMPTS => return Err(err),
            Err(err) => {
                tracing::warn!(error = %chain(&err), "{what} failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}
