//! The publication target: where committed envelopes go (Kinesis in production).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use event_store::EventEnvelope;

/// Kinesis takes at most 500 records per `PutRecords` call.
pub const MAX_RECORDS_PER_CALL: usize = 500;

/// Why a whole publication call failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target could not be reached or refused the call (after the SDK's retries).
    #[error("publication target unavailable: {0}")]
    Unavailable(String),
    /// A record could not be encoded.
    #[error("record does not encode: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A place committed events are published to.
#[async_trait]
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Publishes up to [`MAX_RECORDS_PER_CALL`] records (each of a different stream); returns,
    /// per record, whether it was accepted. A rejected record is retried by the caller.
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
                .map_err(|e| SinkError::Unavailable(e.to_string()))?;
            entries.push(entry);
        }
        let output = self
            .client
            .put_records()
            .stream_name(&self.stream_name)
            .set_records(Some(entries))
            .send()
            .await
            .map_err(|e| SinkError::Unavailable(format!("{}", e.into_service_error())))?;
        let results = output.records();
        if results.len() != records.len() {
            return Err(SinkError::Unavailable(format!(
                "PutRecords answered {} results for {} records",
                results.len(),
                records.len()
            )));
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
            .map_err(|e| SinkError::Unavailable(format!("{}", e.into_service_error())))
    }
}

/// An in-memory sink: the embedded mode's "stream", and a controllable target for tests.
#[derive(Debug, Default)]
pub struct InMemorySink {
    records: Mutex<Vec<EventEnvelope>>,
    unavailable: AtomicBool,
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
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(records.iter().cloned());
        Ok(vec![true; records.len()])
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
