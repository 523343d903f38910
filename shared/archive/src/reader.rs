//! Reading the archive back: a shard's records in order, from its committed segments.

use kinesis_consumer::Record;

use crate::manifest::{Manifest, ManifestError, SegmentEntry};
use crate::objects::{ObjectStore, ObjectStoreError};
use crate::segment::{decode_segment, SegmentError};

/// Why the archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The manifest failed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The object store failed.
    #[error(transparent)]
    Objects(#[from] ObjectStoreError),
    /// A committed segment's object is missing.
    #[error("segment {0} is in the manifest but not in the object store")]
    Missing(String),
    /// A segment does not decode.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// A segment's records are not the ones the manifest lists.
    #[error("segment {key} holds {found} records from {first:?}, the manifest says {expected}")]
    Mismatch {
        /// The object.
        key: String,
        /// Records in the manifest.
        expected: u64,
        /// Records in the object.
        found: u64,
        /// The first record's sequence number in the object.
        first: Option<String>,
    },
}

/// The records of one committed segment, checked against its manifest entry.
pub async fn read_segment(
    objects: &dyn ObjectStore,
    segment: &SegmentEntry,
) -> Result<Vec<Record>, ReadError> {
    let body = objects
        .get(&segment.key)
        .await?
        .ok_or_else(|| ReadError::Missing(segment.key.clone()))?;
    let records = decode_segment(&segment.key, &body)?;
    let first = records.first().map(|r| r.sequence_number.clone());
    let last = records.last().map(|r| r.sequence_number.as_str());
    if records.len() as u64 != segment.records
        || first.as_deref() != Some(segment.first_sequence.as_str())
        || last != Some(segment.last_sequence.as_str())
    {
        return Err(ReadError::Mismatch {
            key: segment.key.clone(),
            expected: segment.records,
            found: records.len() as u64,
            first,
        });
    }
    Ok(records)
}

/// Every archived record of one shard, in order.
pub async fn read_shard(
    objects: &dyn ObjectStore,
    manifest: &dyn Manifest,
    stream: &str,
    shard_id: &str,
) -> Result<Vec<Record>, ReadError> {
    let mut records = Vec::new();
    for segment in manifest.segments(stream, shard_id).await? {
        records.extend(read_segment(objects, &segment).await?);
    }
    Ok(records)
}
