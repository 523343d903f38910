//! The publication target: where committed envelopes go (Kinesis in production).
//!
//! Kinesis refuses a whole `PutRecords` call that breaks one of its limits: more than
//! [`MAX_RECORDS_PER_CALL`] records, more than [`MAX_CALL_BYTES`] in all, a record over
//! [`MAX_RECORD_BYTES`] or a partition key outside 1 to [`MAX_PARTITION_KEY_CHARS`] characters
//! (sizes count each record's data and partition key, see [`record_bytes`]). The relay sizes its
//! calls to stay inside them, and the in-memory sinks enforce them exactly as Kinesis does
//! ([`check_call_limits`]), so tests see what production would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_kinesis::operation::put_records::PutRecordsError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use event_store::EventEnvelope;

pub use event_store::limits::{record_bytes, MAX_PARTITION_KEY_CHARS, MAX_RECORD_BYTES};

/// Kinesis takes at most 500 records per `PutRecords` call.
pub const MAX_RECORDS_PER_CALL: usize = 500;

/// Kinesis takes at most 5 MiB per `PutRecords` call (data and partition keys).
pub const MAX_CALL_BYTES: usize = 5 * 1024 * 1024;

/// Boxed cause of a failure.
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a whole publication call failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target could not be reached or failed: throttling, 5xx, a timeout, a missing stream
    /// or permission. Sending the same records later may succeed: the relay retries them and
    /// never sets them aside for this.
    #[error("publication target unavailable")]
    Unavailable(#[source] Cause),
    /// The target refused the call as invalid (a record too large, a bad partition key, a call
    /// over the limits): sending the same records again fails the same way. The relay narrows
    /// the call down to the offending record and sets it aside.
    #[error("publication target refused the call as invalid: {reason}")]
    Invalid {
        /// What the target said.
        reason: String,
        /// The target's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// A record could not be encoded (it can never be published).
    #[error("record does not encode")]
    Encode(#[from] serde_json::Error),
}

impl SinkError {
    /// An invalid call, with the reason only.
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::Invalid {
            reason: reason.into(),
            source: None,
        }
    }

    /// True when sending the same records again cannot succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SinkError::Invalid { .. } | SinkError::Encode(_))
    }
}

/// Checks a call against Kinesis's limits, as Kinesis does before accepting any of it: the
/// in-memory sinks refuse what Kinesis would refuse.
pub fn check_call_limits(records: &[EventEnvelope]) -> Result<(), SinkError> {
    if records.len() > MAX_RECORDS_PER_CALL {
        return Err(SinkError::invalid(format!(
            "{} records in one call; at most {MAX_RECORDS_PER_CALL}",
            records.len()
        )));
    }
    let mut total = 0usize;
    for record in records {
        let keys = record.stream_id.chars().count();
        if keys == 0 || keys > MAX_PARTITION_KEY_CHARS {
            return Err(SinkError::invalid(format!(
                "partition key of {keys} characters; 1 to {MAX_PARTITION_KEY_CHARS} allowed"
            )));
        }
        let bytes = record_bytes(record);
        if bytes > MAX_RECORD_BYTES {
            return Err(SinkError::invalid(format!(
                "record of {bytes} bytes; at most {MAX_RECORD_BYTES}"
            )));
        }
        total = total.saturating_add(bytes);
    }
    if total > MAX_CALL_BYTES {
        return Err(SinkError::invalid(format!(
            "call of {total} bytes; at most {MAX_CALL_BYTES}"
        )));
    }
    Ok(())
}

/// A place committed events are published to.
#[async_trait]
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Publishes up to [`MAX_RECORDS_PER_CALL`] records of at most [`MAX_CALL_BYTES`] in all
    /// (each of a different stream); returns, per record, whether it was accepted. A record
    /// refused on its own (throttled, failed inside the target) is retried by the caller; a call
    /// refused whole says whether it may succeed later ([`SinkError::is_permanent`]).
    async fn publish(&self, records: &[EventEnvelope]) -> Result<Vec<bool>, SinkError>;

    /// Checks that the target answers (for readiness probes).
    async fn ping(&self) -> Result<(), SinkError>;

    /// The name of the target (the Kinesis stream), for telemetry.
    fn destination(&self) -> &str {
        "events"
    }
}

/// Publishes to a Kinesis data stream: record data is the envelope JSON, partition key the
/// stream id (so all events of a quote land on one shard, in order).
#[derive(Debug, Clone)]
pub struct KinesisSink {
    client: aws_sdk_kinesis::Client,
    stream_name: String,
}

impl KinesisSink {
    /// A sink for the named stream.
    pub fn new(client: aws_sdk_kinesis::Client, stream_name: impl Into<String>) -> Self {
        Self {
            client,
            stream_name: stream_name.into(),
        }
    }
}

#[async_trait]
impl EventSink for KinesisSink {
    // Traced by the relay's `send <stream>` span around each call.
    async fn publish(&self, records: &[EventEnvelope]) -> Result<Vec<bool>, SinkError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut entries = Vec::with_capacity(records.len());
        for record in records {
            let data = serde_json::to_vec(record)?;
            let entry = PutRecordsRequestEntry::builder()
                .data(Blob::new(data))
                .partition_key(&record.stream_id)
                .build()
                .map_err(|e| SinkError::Invalid {
                    reason: "the record is not a valid PutRecords entry".into(),
                    source: Some(Box::new(e)),
                })?;
            entries.push(entry);
        }
        let output = self
            .client
            .put_records()
            .stream_name(&self.stream_name)
            .set_records(Some(entries))
            .send()
            .await
            .map_err(|e| classify(e.into_service_error()))?;
        let results = output.records();
        if results.len() != records.len() {
            return Err(SinkError::Unavailable(
                format!(
                    "PutRecords answered {} results for {} records",
                    results.len(),
                    records.len()
                )
                .into(),
            ));
        }
        Ok(results.iter().map(|r| r.error_code().is_none()).collect())
    }

    fn destination(&self) -> &str {
        &self.stream_name
    }

    async fn ping(&self) -> Result<(), SinkError> {
        self.client
            .describe_stream_summary()
            .stream_name(&self.stream_name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| SinkError::Unavailable(Box::new(e.into_service_error())))
    }
}

/// Decides whether a failed `PutRecords` call may succeed later. Only the target saying the
/// request itself is invalid (`InvalidArgumentException`, or the protocol's
/// `ValidationException` for a record or call over the limits) is permanent; a missing stream,
/// a denied permission, KMS trouble, throttling, 5xx and network errors are configuration or
/// outages, never a reason to set records aside.
fn classify(err: PutRecordsError) -> SinkError {
    let invalid = matches!(err, PutRecordsError::InvalidArgumentException(_))
        || aws_sdk_kinesis::error::ProvideErrorMetadata::code(&err) == Some("ValidationException");
    if invalid {
        SinkError::Invalid {
            reason: aws_sdk_kinesis::error::ProvideErrorMetadata::message(&err)
                .unwrap_or("invalid request")
                .to_owned(),
            source: Some(Box::new(err)),
        }
    } else {
        SinkError::Unavailable(Box::new(err))
    }
}

/// How the in-memory sink answers for a stream's records (tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Each of the stream's records is refused on its own, as a throttled record is; the rest of
    /// the call is accepted.
    Record,
    /// A call carrying one of the stream's records is refused whole as invalid.
    Invalid,
}

/// An in-memory sink: the embedded mode's "stream", and a controllable target for tests. It
/// refuses calls over Kinesis's limits exactly as Kinesis does ([`check_call_limits`]).
#[derive(Debug, Default)]
pub struct InMemorySink {
    records: Mutex<Vec<EventEnvelope>>,
    unavailable: AtomicBool,
    /// Refusals by stream id or by event id (as a string).
    refusals: Mutex<HashMap<String, Refusal>>,
}

impl InMemorySink {
    /// An empty, available sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates an outage (every call fails) or its end.
    pub fn set_available(&self, available: bool) {
        self.unavailable.store(!available, Ordering::SeqCst);
    }

    /// Refuses the records of `stream_id` from now on (`None`: accepts them again).
    pub fn refuse_stream(&self, stream_id: &str, refusal: Option<Refusal>) {
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        match refusal {
            Some(refusal) => refusals.insert(stream_id.to_owned(), refusal),
            None => refusals.remove(stream_id),
        };
    }

    /// Refuses the record of one event from now on (`None`: accepts it again).
    pub fn refuse_event(&self, event_id: uuid::Uuid, refusal: Option<Refusal>) {
        self.refuse_stream(&event_id.to_string(), refusal);
    }

    /// Everything published so far, in publication order.
    pub fn records(&self) -> Vec<EventEnvelope> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl EventSink for InMemorySink {
    async fn publish(&self, records: &[EventEnvelope]) -> Result<Vec<bool>, SinkError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(SinkError::Unavailable(
                "in-memory sink is switched off".into(),
            ));
        }
        check_call_limits(records)?;
        let refusals = self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let refusal = |record: &EventEnvelope| {
            refusals
                .get(&record.stream_id)
                .or_else(|| refusals.get(&record.event_id.to_string()))
                .copied()
        };
        if let Some(record) = records
            .iter()
            .find(|r| refusal(r) == Some(Refusal::Invalid))
        {
            return Err(SinkError::invalid(format!(
                "the in-memory sink refuses record {} of {}",
                record.version, record.stream_id
            )));
        }
        let accepted: Vec<bool> = records.iter().map(|r| refusal(r).is_none()).collect();
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(
                records
                    .iter()
                    .zip(&accepted)
                    .filter(|(_, ok)| **ok)
                    .map(|(r, _)| r.clone()),
            );
        Ok(accepted)
    }

    async fn ping(&self) -> Result<(), SinkError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(SinkError::Unavailable(
                "in-memory sink is switched off".into(),
            ));
        }
        Ok(())
    }
}
