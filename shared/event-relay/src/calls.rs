//! Cutting a round's records into `PutRecords` calls that Kinesis accepts: at most
//! [`MAX_RECORDS_PER_CALL`] records and [`MAX_CALL_BYTES`] bytes each, and no record that
//! Kinesis can never accept.

use event_store::EventEnvelope;

use crate::sink::{
    record_bytes, MAX_CALL_BYTES, MAX_PARTITION_KEY_CHARS, MAX_RECORDS_PER_CALL, MAX_RECORD_BYTES,
};

/// One record on its way out, with its size as Kinesis counts it.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// The envelope (its `stream_id` is the partition key).
    pub(crate) event: EventEnvelope,
    /// Envelope JSON plus partition key ([`record_bytes`]).
    pub(crate) bytes: usize,
}

impl Outgoing {
    pub(crate) fn new(event: EventEnvelope) -> Self {
        let bytes = record_bytes(&event);
        Self { event, bytes }
    }

    /// Why Kinesis can never accept this record, if it cannot: over the record limit, or a
    /// partition key outside Kinesis's bounds.
    pub(crate) fn never_publishable(&self) -> Option<String> {
        if self.bytes > MAX_RECORD_BYTES {
            return Some(format!(
                "record of {} bytes (envelope JSON and partition key); Kinesis takes at most {MAX_RECORD_BYTES}",
                self.bytes
            ));
        }
        let key_chars = self.event.stream_id.chars().count();
        if key_chars == 0 || key_chars > MAX_PARTITION_KEY_CHARS {
            return Some(format!(
                "partition key of {key_chars} characters; Kinesis takes 1 to {MAX_PARTITION_KEY_CHARS}"
            ));
        }
        None
    }
}

/// Packs records (each within the record limit) into calls, in order: a call ends when it
/// holds [`MAX_RECORDS_PER_CALL`] records or the next record would take it over
/// [`MAX_CALL_BYTES`].
pub(crate) fn pack(records: Vec<Outgoing>) -> Vec<Vec<Outgoing>> {
    let mut calls = Vec::new();
    let mut call: Vec<Outgoing> = Vec::new();
    let mut call_bytes = 0usize;
    for record in records {
        let full = call.len() == MAX_RECORDS_PER_CALL
            || call_bytes.saturating_add(record.bytes) > MAX_CALL_BYTES;
        if full && !call.is_empty() {
            calls.push(std::mem::take(&mut call));
            call_bytes = 0;
        }
        call_bytes = call_bytes.saturating_add(record.bytes);
        call.push(record);
    }
    if !call.is_empty() {
        calls.push(call);
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bytes: usize) -> Outgoing {
        Outgoing {
            event: EventEnvelope {
                event_id: uuid::Uuid::nil(),
                stream_id: "s".into(),
                version: 1,
                event_type: "T".into(),
                schema_version: 1,
                occurred_at: time::OffsetDateTime::UNIX_EPOCH,
                recorded_at: time::OffsetDateTime::UNIX_EPOCH,
                correlation_id: "c".into(),
                causation_id: None,
                traceparent: None,
                tracestate: None,
                actor: "a".into(),
                data: serde_json::Value::Null,
            },
            bytes,
        }
    }

    #[test]
    fn calls_stay_within_the_count_and_byte_limits() {
        let sizes = |calls: &[Vec<Outgoing>]| -> Vec<(usize, usize)> {
            calls
                .iter()
                .map(|c| (c.len(), c.iter().map(|r| r.bytes).sum()))
                .collect()
        };
        // 1,001 small records: by count.
        let calls = pack((0..1001).map(|_| record(100)).collect());
        assert_eq!(sizes(&calls), vec![(500, 50_000), (500, 50_000), (1, 100)]);
        // 160 records of 40 KiB (6.25 MiB): by bytes, 128 + 32.
        let calls = pack((0..160).map(|_| record(40 * 1024)).collect());
        assert_eq!(
            sizes(&calls),
            vec![(128, 128 * 40 * 1024), (32, 32 * 40 * 1024)]
        );
        // Records of exactly 1 MiB: five per call.
        let calls = pack((0..6).map(|_| record(MAX_RECORD_BYTES)).collect());
        assert_eq!(
            sizes(&calls),
            vec![(5, MAX_CALL_BYTES), (1, MAX_RECORD_BYTES)]
        );
        assert!(pack(Vec::new()).is_empty());
    }

    #[test]
    fn oversized_records_and_bad_partition_keys_are_never_publishable() {
        assert!(record(MAX_RECORD_BYTES).never_publishable().is_none());
        assert!(record(MAX_RECORD_BYTES + 1)
            .never_publishable()
            .is_some_and(|reason| reason.contains("at most 1048576")));
        let mut long_key = record(10);
        long_key.event.stream_id = "k".repeat(MAX_PARTITION_KEY_CHARS + 1);
        assert!(long_key.never_publishable().is_some());
    }
}
