//! `quotes archive`: the event archive seen and completed from the command line.
//!
//! - `status`: per shard of the stream, how far it is archived (segments, records, the last
//!   sequence number), its lineage and whether it ended; the backfill shard included.
//! - `backfill`: the events the store holds from before the archive begins, written to the
//!   archive in the archiver's format (`archiver::backfill`, ADR 0009).

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use archiver::backfill::{Backfill, BackfillReport};
use aws_config::SdkConfig;
use quote_archive::dynamodb::DynamoManifest;
use quote_archive::s3::S3Objects;
use quote_archive::{Manifest, ShardHead};
use serde::Serialize;

use crate::cli::ArchiveBackfillArgs;
use crate::settings::archive::ArchiveStorageSettings;

/// The archive's manifest on AWS.
fn manifest(storage: &ArchiveStorageSettings, sdk: &SdkConfig) -> DynamoManifest {
    DynamoManifest::new(
        aws_sdk_dynamodb::Client::new(sdk),
        storage.archive_manifest_table.clone(),
    )
}

/// One shard as `status` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ShardView {
    /// The shard (or the backfill's pseudo-shard, `backfill-<cut-off ms>`).
    pub shard_id: String,
    /// The shards it was split or merged from.
    pub parents: Vec<String>,
    /// Committed segments.
    pub segments: u64,
    /// Records in them.
    pub records: u64,
    /// The last archived record's sequence number.
    pub last_sequence: Option<String>,
    /// Read to its end, every record archived.
    pub ended: bool,
    /// The token of the writer that may commit next (the archiver's lease counter).
    pub fencing_token: u64,
}

impl From<ShardHead> for ShardView {
    fn from(head: ShardHead) -> Self {
        Self {
            shard_id: head.shard_id,
            parents: head.parents,
            segments: head.segments,
            records: head.records,
            last_sequence: head.last_sequence,
            ended: head.ended,
            fencing_token: head.fencing_token,
        }
    }
}

/// Every shard of `stream` in the manifest.
pub async fn status(
    storage: &ArchiveStorageSettings,
    stream: &str,
    sdk: &SdkConfig,
) -> anyhow::Result<Vec<ShardView>> {
    let table = &storage.archive_manifest_table;
    let heads = manifest(storage, sdk)
        .shards(stream)
        .await
        .with_context(|| format!("reading the archive manifest {table}"))?;
    Ok(heads.into_iter().map(ShardView::from).collect())
}

/// The shards as an aligned table.
pub fn render_status(shards: &[ShardView]) -> String {
    let mut out = format!(
        "{:<28} {:>8} {:>10} {:<6} {:<24} {}\n",
        "SHARD", "SEGMENTS", "RECORDS", "ENDED", "LAST SEQUENCE", "PARENTS"
    );
    for shard in shards {
        let last = shard.last_sequence.as_deref().unwrap_or("-");
        let tail = &last[last.len().saturating_sub(24)..];
        let _ = writeln!(
            out,
            "{:<28} {:>8} {:>10} {:<6} {:<24} {}",
            shard.shard_id,
            shard.segments,
            shard.records,
            if shard.ended { "yes" } else { "no" },
            tail,
            if shard.parents.is_empty() {
                "-".to_owned()
            } else {
                shard.parents.join(",")
            }
        );
    }
    if shards.is_empty() {
        out.push_str("(nothing archived yet)\n");
    }
    out
}

/// `quotes archive backfill`: runs (or resumes, or reports) the backfill, printing progress
/// to stderr.
pub async fn backfill(
    args: &ArchiveBackfillArgs,
    sdk: &SdkConfig,
) -> anyhow::Result<BackfillReport> {
    let store = event_store::dynamodb::DynamoEventStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        args.event_store.tables(),
    );
    let objects = S3Objects::new(
        S3Objects::client(sdk),
        args.archive.storage.archive_bucket.clone(),
    );
    let backfill = Backfill::new(
        Arc::new(store),
        Arc::new(objects),
        Arc::new(manifest(&args.archive.storage, sdk)),
        args.archive.config(&args.event_store.event_stream),
    );
    let mut progress = |report: &BackfillReport| {
        eprintln!(
            "scanned {} events: {} before the cut-off, {} written, {} already archived, {} segments",
            report.events_scanned,
            report.events_before_cutoff,
            report.records_written,
            report.records_resumed,
            report.segments_total
        );
    };
    backfill
        .run(
            args.until,
            Duration::from_secs(args.clock_margin_secs),
            &mut progress,
        )
        .await
        .context("archive backfill")
}
