//! Publication into the in-memory stream: the embedded mode's "Kinesis", so the relay feeds the
//! consumer services running in the same process exactly as it feeds Kinesis in AWS.

use async_trait::async_trait;
use event_relay::sink::check_call_limits;
use event_relay::{EventSink, SinkError};
use event_store::EventEnvelope;
use kinesis_consumer::source::memory::InMemoryStream;

/// Publishes envelopes to an [`InMemoryStream`], partition key = stream id, within Kinesis's
/// call limits.
#[derive(Debug, Clone)]
pub struct InMemoryStreamSink {
    stream: InMemoryStream,
}

impl InMemoryStreamSink {
    /// A sink into `stream`.
    pub fn new(stream: InMemoryStream) -> Self {
        Self { stream }
    }
}

#[async_trait]
impl EventSink for InMemoryStreamSink {
    async fn publish(&self, records: &[EventEnvelope]) -> Result<Vec<bool>, SinkError> {
        // Refuse what Kinesis would refuse, so the embedded mode behaves as AWS does.
        check_call_limits(records)?;
        for record in records {
            self.stream
                .put(&record.stream_id, serde_json::to_vec(record)?);
        }
        Ok(vec![true; records.len()])
    }

    async fn ping(&self) -> Result<(), SinkError> {
        Ok(())
    }
}
