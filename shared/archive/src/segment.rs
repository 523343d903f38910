//! The archive's format: a segment is one shard's records, in order, as gzip-compressed JSON
//! Lines, one record per line.
//!
//! ```text
//! {"sequence_number":"4963…","partition_key":"quote#…","approximate_arrival":"2026-12-07T13:00:00.123Z","data":{…the envelope…}}
//! ```
//!
//! `data` is the record's payload as it was on the stream, byte for byte, when it is one line
//! of JSON (every record the platform writes is an event envelope); any other payload is kept
//! as `data_base64`. A record read back is the record that was archived.
//!
//! Segments are keyed `<prefix>stream=<name>/shard=<id>/<first>-<last>.jsonl.gz`, first and
//! last being the sequence numbers of the first and last record, left-padded with zeros to 56
//! digits (the width of Kinesis sequence numbers) so that keys list in sequence order.

use std::io::{Read, Write};

use base64::Engine;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use kinesis_consumer::Record;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

/// Width sequence numbers are padded to in object keys.
pub const SEQUENCE_KEY_WIDTH: usize = 56;

/// Why a segment could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The object is not gzip, or not UTF-8 JSON Lines.
    #[error("segment {key} is unreadable")]
    Unreadable {
        /// The object.
        key: String,
        /// What the decoder said.
        #[source]
        source: std::io::Error,
    },
    /// A line is not an archived record.
    #[error("segment {key}, line {line}, is not an archived record")]
    BadLine {
        /// The object.
        key: String,
        /// 1-based line number.
        line: usize,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// `data_base64` is not base64.
    #[error("segment {key}, line {line}: data_base64 does not decode")]
    BadBase64 {
        /// The object.
        key: String,
        /// 1-based line number.
        line: usize,
        /// What the decoder said.
        #[source]
        source: base64::DecodeError,
    },
}

/// One line of a segment.
#[derive(Debug, Serialize, Deserialize)]
struct Line<'a> {
    sequence_number: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "is_zero")]
    sub_sequence_number: u64,
    partition_key: std::borrow::Cow<'a, str>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    approximate_arrival: Option<OffsetDateTime>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A segment being written: records are compressed as they are added.
pub struct SegmentWriter {
    encoder: GzEncoder<Vec<u8>>,
    first: String,
    last: String,
    records: u64,
    uncompressed: u64,
}

impl std::fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("first", &self.first)
            .field("last", &self.last)
            .field("records", &self.records)
            .field("uncompressed", &self.uncompressed)
            .finish()
    }
}

impl SegmentWriter {
    /// A segment that starts with `record`.
    pub fn new(record: &Record) -> Self {
        let mut writer = Self {
            encoder: GzEncoder::new(Vec::new(), Compression::default()),
            first: record.sequence_number.clone(),
            last: record.sequence_number.clone(),
            records: 0,
            uncompressed: 0,
        };
        writer.push(record);
        writer
    }

    /// Appends `record` (which must follow the last one).
    pub fn push(&mut self, record: &Record) {
        let line = encode_line(record);
        // Writing into a Vec cannot fail.
        let _ = self.encoder.write_all(&line);
        self.uncompressed += line.len() as u64;
        self.records += 1;
        self.last.clone_from(&record.sequence_number);
    }

    /// Sequence number of the last record.
    pub fn last(&self) -> &str {
        &self.last
    }

    /// Bytes of JSON Lines written so far (before compression).
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed
    }

    /// Closes the segment.
    pub fn finish(self) -> ClosedSegment {
        // Finishing into a Vec cannot fail; an empty body would be refused by the reader.
        let body = self.encoder.finish().unwrap_or_default();
        ClosedSegment {
            first: self.first,
            last: self.last,
            records: self.records,
            body,
        }
    }
}

/// A complete segment, compressed, not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedSegment {
    /// Sequence number of its first record.
    pub first: String,
    /// Sequence number of its last record.
    pub last: String,
    /// Records in it.
    pub records: u64,
    /// The gzip-compressed JSON Lines.
    pub body: Vec<u8>,
}

/// One record as a JSON line (with its newline).
fn encode_line(record: &Record) -> Vec<u8> {
    let raw = std::str::from_utf8(&record.data)
        .ok()
        .filter(|text| !text.contains('\n'))
        .and_then(|text| serde_json::from_str::<&RawValue>(text).ok());
    let line = Line {
        sequence_number: record.sequence_number.as_str().into(),
        sub_sequence_number: record.sub_sequence_number,
        partition_key: record.partition_key.as_str().into(),
        approximate_arrival: record.approximate_arrival,
        data: raw,
        data_base64: match raw {
            Some(_) => None,
            None => Some(base64::engine::general_purpose::STANDARD.encode(&record.data)),
        },
    };
    // A struct of strings, numbers and a validated raw value always serializes.
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The records of a stored segment, in order.
pub fn decode_segment(key: &str, body: &[u8]) -> Result<Vec<Record>, SegmentError> {
    let mut text = String::new();
    GzDecoder::new(body)
        .read_to_string(&mut text)
        .map_err(|source| SegmentError::Unreadable {
            key: key.to_owned(),
            source,
        })?;
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let parsed: Line<'_> =
            serde_json::from_str(line).map_err(|source| SegmentError::BadLine {
                key: key.to_owned(),
                line: index + 1,
                source,
            })?;
        let data = match (parsed.data, parsed.data_base64) {
            (Some(raw), _) => raw.get().as_bytes().to_vec(),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|source| SegmentError::BadBase64 {
                    key: key.to_owned(),
                    line: index + 1,
                    source,
                })?,
            (None, None) => Vec::new(),
        };
        records.push(Record {
            sequence_number: parsed.sequence_number.into_owned(),
            sub_sequence_number: parsed.sub_sequence_number,
            partition_key: parsed.partition_key.into_owned(),
            data,
            approximate_arrival: parsed.approximate_arrival,
        });
    }
    Ok(records)
}

/// Where the segments of one shard live: `<prefix>stream=<stream>/shard=<shard>/`.
pub fn shard_prefix(prefix: &str, stream: &str, shard_id: &str) -> String {
    format!("{prefix}stream={stream}/shard={shard_id}/")
}

/// The object key of a segment.
pub fn segment_key(prefix: &str, stream: &str, shard_id: &str, first: &str, last: &str) -> String {
    format!(
        "{}{}-{}.jsonl.gz",
        shard_prefix(prefix, stream, shard_id),
        pad(first),
        pad(last)
    )
}

/// The key every segment starting after `last` sorts after (for listing what follows it).
pub fn after_sequence_key(prefix: &str, stream: &str, shard_id: &str, last: &str) -> String {
    // '~' sorts after the digits and '-', so `<last>-~` is after every key that starts at or
    // before `last` and before every key that starts after it.
    format!("{}{}-~", shard_prefix(prefix, stream, shard_id), pad(last))
}

fn pad(sequence: &str) -> String {
    format!("{sequence:0>SEQUENCE_KEY_WIDTH$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sequence: &str, data: &[u8]) -> Record {
        Record {
            sequence_number: sequence.to_owned(),
            sub_sequence_number: 0,
            partition_key: "quote#1".to_owned(),
            data: data.to_vec(),
            approximate_arrival: Some(
                OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("time"),
            ),
        }
    }

    #[test]
    fn records_read_back_byte_for_byte() {
        let records = [
            record(
                "1",
                br#"{"event_type":"QuoteRequested","data":{"b":1,"a":[1, 2]}}"#,
            ),
            record("2", b"not json \xff\x00"),
            record("3", b"{\n  \"pretty\": true\n}"),
            record("4", b""),
        ];
        let mut writer = SegmentWriter::new(&records[0]);
        for r in &records[1..] {
            writer.push(r);
        }
        assert_eq!(writer.last(), "4");
        let closed = writer.finish();
        assert_eq!(
            (closed.first.as_str(), closed.last.as_str(), closed.records),
            ("1", "4", 4)
        );
        let decoded = decode_segment("k", &closed.body).expect("decodes");
        assert_eq!(decoded, records);
    }

    #[test]
    fn envelopes_stay_readable_json() {
        let closed =
            SegmentWriter::new(&record("7", br#"{"event_type":"QuoteRequested"}"#)).finish();
        let mut text = String::new();
        GzDecoder::new(closed.body.as_slice())
            .read_to_string(&mut text)
            .expect("gzip");
        assert!(
            text.contains(r#""data":{"event_type":"QuoteRequested"}"#),
            "{text}"
        );
        assert!(!text.contains("data_base64"), "{text}");
    }

    #[test]
    fn keys_list_in_sequence_order_and_after_keys_split_them() {
        let key = |first: &str, last: &str| segment_key("events/", "s", "shard-0", first, last);
        assert_eq!(
            key("5", "9"),
            format!(
                "events/stream=s/shard=shard-0/{:0>56}-{:0>56}.jsonl.gz",
                5, 9
            )
        );
        assert!(key("5", "9") < key("10", "12"));
        let after_9 = after_sequence_key("events/", "s", "shard-0", "9");
        assert!(key("5", "9") < after_9);
        assert!(key("9", "9") < after_9);
        assert!(key("10", "12") > after_9);
    }

    #[test]
    fn a_corrupt_segment_is_an_error_naming_it() {
        let err = decode_segment("events/x.jsonl.gz", b"not gzip").expect_err("not gzip");
        assert!(err.to_string().contains("events/x.jsonl.gz"));
    }
}
