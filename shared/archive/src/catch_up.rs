//! Catch-up subscriptions: a record source that serves each shard's archived records first and
//! then continues on the stream right after the last archived one (`CONSUMER_INITIAL_POSITION=
//! ARCHIVE`), so a new consumer application can start from before the stream's retention.
//!
//! [`ArchiveSource`] wraps the stream's own source:
//!
//! - **Shards**: the stream's, plus the archived shards the stream no longer lists (closed
//!   parents whose records outlived its retention only in the archive), with their lineage from
//!   the manifest, so the worker's parent-before-child rule covers them.
//! - **Reading** a shard from its beginning, or after a sequence number the archive holds
//!   records beyond: its committed segments in order (records after the position only), then
//!   the stream `AFTER_SEQUENCE_NUMBER` the last archived record. The archive holds a shard's
//!   records contiguously up to its head (ADR 0009), so the seam has no gap and no duplicate;
//!   a shard the stream no longer has (listed because its archived head ended) ends after its
//!   archived records, naming its children.
//! - Any other start (a checkpoint past the archive, `LATEST`, an instant) goes to the stream.
//!
//! The worker checkpoints archived records by their own sequence numbers, so a restart resumes
//! in the archive or on the stream, wherever the checkpoint lies.
//!
//! A shard's archive is taken to begin where the stream began for the archiver (its default
//! `TRIM_HORIZON`): records the stream held before the archive's first one (an archiver
//! started at `LATEST`) are not read.
//!
//! **History from before the archiver**: a finished `quotes archive backfill` (the pseudo-shard
//! `backfill-<cut-off>`, ended) is listed as the parent of every root shard (a shard none of
//! whose parents is listed), so the worker reads the whole backfill before any shard, and a
//! quote's old events come before its newer ones. Events near the cut-off may be in both the
//! backfill and a shard's archive; handlers are idempotent. A backfill still running is not
//! listed: start the application after it finished. A backfill that appears after an
//! application made progress is read too (its shards keep their checkpoints): a replay of old
//! events, which changes nothing.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use kinesis_consumer::lease::compare_sequence_numbers;
use kinesis_consumer::source::{
    Batch, RecordSource, ShardInfo, ShardReader, SourceError, StartPosition,
};

use crate::manifest::{Manifest, SegmentEntry, ShardHead};
use crate::objects::ObjectStore;
use crate::reader::read_segment;
use crate::BACKFILL_SHARD_PREFIX;

/// A record source that reads the archive before the stream.
#[derive(Debug, Clone)]
pub struct ArchiveSource {
    stream: Arc<dyn RecordSource>,
    objects: Arc<dyn ObjectStore>,
    manifest: Arc<dyn Manifest>,
    /// The stream's name in the archive.
    name: String,
}

impl ArchiveSource {
    /// The archive of stream `name` (in `objects` and `manifest`) in front of `stream`.
    pub fn new(
        stream: Arc<dyn RecordSource>,
        objects: Arc<dyn ObjectStore>,
        manifest: Arc<dyn Manifest>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            stream,
            objects,
            manifest,
            name: name.into(),
        }
    }

    /// Every shard head of the archive: the stream's shards, and a finished backfill.
    async fn heads(&self) -> Result<Vec<ShardHead>, SourceError> {
        Ok(self
            .manifest
            .shards(&self.name)
            .await
            .map_err(|err| SourceError::Backend(format!("archive manifest: {err}")))?
            .into_iter()
            .filter(|head| !is_backfill(&head.shard_id) || head.ended)
            .collect())
    }
}

fn is_backfill(shard_id: &str) -> bool {
    shard_id.starts_with(BACKFILL_SHARD_PREFIX)
}

fn after(sequence: &str, position: Option<&str>) -> bool {
    position.is_none_or(|position| {
        compare_sequence_numbers(sequence, position) == std::cmp::Ordering::Greater
    })
}

#[async_trait]
impl RecordSource for ArchiveSource {
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, SourceError> {
        let mut shards = self.stream.list_shards().await?;
        let listed: BTreeSet<String> = shards.iter().map(|s| s.shard_id.clone()).collect();
        let mut backfills = Vec::new();
        for head in self.heads().await? {
            if listed.contains(&head.shard_id) || !head.ended {
                continue;
            }
            if is_backfill(&head.shard_id) {
                backfills.push(head.shard_id.clone());
            }
            shards.push(ShardInfo {
                shard_id: head.shard_id,
                parent_shard_ids: head.parents,
                // The manifest keeps no hash ranges; only its lineage matters to the worker.
                starting_hash_key: String::new(),
                ending_hash_key: String::new(),
                closed: true,
            });
        }
        // The backfill comes before every root shard.
        let ids: BTreeSet<String> = shards.iter().map(|s| s.shard_id.clone()).collect();
        for shard in &mut shards {
            let root = !shard.parent_shard_ids.iter().any(|p| ids.contains(p));
            if root && !is_backfill(&shard.shard_id) {
                shard.parent_shard_ids.extend(backfills.iter().cloned());
            }
        }
        Ok(shards)
    }

    async fn open(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<Box<dyn ShardReader>, SourceError> {
        let position = match &start {
            StartPosition::TrimHorizon => None,
            StartPosition::AfterSequence(sequence) => Some(sequence.clone()),
            StartPosition::Latest | StartPosition::AtTimestamp(_) => {
                return self.stream.open(shard_id, start).await
            }
        };
        let heads = self.heads().await?;
        let Some(head) = heads.iter().find(|head| head.shard_id == shard_id) else {
            return self.stream.open(shard_id, start).await;
        };
        let Some(archived_to) = head.last_sequence.clone() else {
            return self.stream.open(shard_id, start).await;
        };
        if !after(&archived_to, position.as_deref()) {
            return self.stream.open(shard_id, start).await;
        }
        let segments: VecDeque<SegmentEntry> = self
            .manifest
            .segments(&self.name, shard_id)
            .await
            .map_err(|err| SourceError::Backend(format!("archive manifest: {err}")))?
            .into_iter()
            .filter(|segment| after(&segment.last_sequence, position.as_deref()))
            .collect();
        let on_stream = self.stream.list_shards().await?;
        let tail = if is_backfill(shard_id) {
            // Ended with its records: the root shards follow it.
            let children = self
                .list_shards()
                .await?
                .into_iter()
                .filter(|s| s.parent_shard_ids.iter().any(|p| p == shard_id))
                .map(|s| s.shard_id)
                .collect();
            Tail::Ended(children)
        } else if on_stream.iter().any(|s| s.shard_id == shard_id) {
            Tail::Stream
        } else {
            // Gone from the stream: it ends with its archived records.
            let mut children: Vec<String> = heads
                .iter()
                .filter(|h| h.parents.iter().any(|p| p == shard_id))
                .map(|h| h.shard_id.clone())
                .collect();
            for info in on_stream {
                if info.parent_shard_ids.iter().any(|p| p == shard_id)
                    && !children.contains(&info.shard_id)
                {
                    children.push(info.shard_id);
                }
            }
            Tail::Ended(children)
        };
        tracing::info!(%shard_id, from = ?position, %archived_to, segments = segments.len(), "catching up from the archive");
        Ok(Box::new(ArchiveReader {
            source: self.clone(),
            shard_id: shard_id.to_owned(),
            position,
            archived_to,
            segments,
            tail,
            live: None,
        }))
    }
}

/// What follows a shard's archived records.
#[derive(Debug)]
enum Tail {
    /// The stream, after the last archived record.
    Stream,
    /// Nothing: the shard ended; these are its children.
    Ended(Vec<String>),
}

/// Reads one shard's archived segments, then its tail.
#[derive(Debug)]
struct ArchiveReader {
    source: ArchiveSource,
    shard_id: String,
    /// The last record delivered (or the start position).
    position: Option<String>,
    /// The shard's last archived record.
    archived_to: String,
    /// Committed segments not read yet.
    segments: VecDeque<SegmentEntry>,
    tail: Tail,
    /// The stream's reader, once the archive is read.
    live: Option<Box<dyn ShardReader>>,
}

#[async_trait]
impl ShardReader for ArchiveReader {
    async fn next_batch(&mut self) -> Result<Batch, SourceError> {
        if let Some(live) = &mut self.live {
            return live.next_batch().await;
        }
        if let Some(segment) = self.segments.front() {
            let records = read_segment(self.source.objects.as_ref(), segment)
                .await
                .map_err(|err| SourceError::Backend(format!("archive segment: {err}")))?;
            self.segments.pop_front();
            let records: Vec<_> = records
                .into_iter()
                .filter(|r| after(&r.sequence_number, self.position.as_deref()))
                .collect();
            if let Some(last) = records.last() {
                self.position = Some(last.sequence_number.clone());
            }
            return Ok(Batch {
                records,
                millis_behind_latest: None,
                shard_end: None,
            });
        }
        match &self.tail {
            Tail::Ended(children) => Ok(Batch {
                records: Vec::new(),
                millis_behind_latest: Some(0),
                shard_end: Some(children.clone()),
            }),
            Tail::Stream => {
                tracing::info!(shard_id = %self.shard_id, after = %self.archived_to, "archive read; continuing on the stream");
                let mut live = self
                    .source
                    .stream
                    .open(
                        &self.shard_id,
                        StartPosition::AfterSequence(self.archived_to.clone()),
                    )
                    .await?;
                let batch = live.next_batch().await;
                self.live = Some(live);
                batch
            }
        }
    }
}
