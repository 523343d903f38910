//! The event archive: every Kinesis record, kept in S3 as compressed JSON Lines segments per
//! shard, with a manifest in DynamoDB that says which segments hold which records.
//!
//! Kinesis keeps records for a day to a year; the archive keeps them for as long as the bucket
//! does, so a consumer can start from before the stream's retention and an operator can replay
//! history. The archiver service writes it (`services/archiver`); this crate is its format and
//! its storage.
//!
//! # Layout
//! - [`segment`]: the format of a segment (one JSON line per record, gzip) and its object key,
//!   `<prefix>stream=<name>/shard=<id>/<first>-<last>.jsonl.gz`.
//! - [`objects`]: the object-store port and its in-memory adapter; [`s3`]: the S3 adapter.
//! - [`manifest`]: the manifest port (per shard: how far it is archived, by whom, its lineage;
//!   its segments in order) and its in-memory adapter; [`dynamodb`]: the DynamoDB adapter.
//! - [`writer`]: one shard written segment by segment (claim, add, close, store and commit),
//!   for the archiver and the backfill.
//! - [`reader`]: a shard's records read back from its committed segments.
//! - [`catch_up`]: a record source that serves the archive before the stream (catch-up
//!   subscriptions, `CONSUMER_INITIAL_POSITION=ARCHIVE`).
//! - [`contract`] (feature `contract`): the suites every adapter passes.

pub mod catch_up;
pub mod dynamodb;
pub mod manifest;
pub mod objects;
pub mod reader;
pub mod s3;
pub mod segment;
pub mod writer;

#[cfg(feature = "contract")]
pub mod contract;

pub use manifest::{InMemoryManifest, Manifest, ManifestError, SegmentEntry, ShardHead};
pub use objects::{InMemoryObjects, ObjectStore, ObjectStoreError};
pub use segment::{ClosedSegment, SegmentWriter};
pub use writer::{ArchiverConfig, ShardWriter, WriteError};

/// Prefix of the pseudo-shards `quotes archive backfill` writes (`backfill-<cut-off in Unix
/// ms>`): the events from before the archive, not records of a shard of the stream.
pub const BACKFILL_SHARD_PREFIX: &str = "backfill-";
