//! Runs an [`EventHandler`] as a record processor of the consumer library.
//!
//! Each record is decoded as an event envelope; events the handler does not want are skipped;
//! each handled event gets a `handle` span that continues the trace carried in the event, so
//! one quote request is one trace across every service. A record that is not an envelope is an
//! error (after the worker's retries it goes to the dead-letter store).

use std::sync::Arc;

use async_trait::async_trait;
use event_store::EventEnvelope;
use kinesis_consumer::{Checkpointer, ProcessorError, Record, RecordProcessor, ShardContext};
use tracing::Instrument;

use crate::handler::{EventHandler, HandlerContext};

/// Reads trace context from an event envelope.
struct EnvelopeCarrier<'a>(&'a EventEnvelope);

impl quote_runtime::telemetry::Extractor for EnvelopeCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.0.traceparent.as_deref(),
            "tracestate" => self.0.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// A record processor delegating to a handler.
pub struct HandlerProcessor {
    handler: Arc<dyn EventHandler>,
    context: HandlerContext,
    shard_id: String,
}

impl std::fmt::Debug for HandlerProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerProcessor")
            .field("handler", &self.handler.name())
            .field("shard_id", &self.shard_id)
            .finish_non_exhaustive()
    }
}

impl HandlerProcessor {
    /// A processor for one shard.
    pub fn new(handler: Arc<dyn EventHandler>, context: HandlerContext, shard_id: &str) -> Self {
        Self {
            handler,
            context,
            shard_id: shard_id.to_owned(),
        }
    }
}

#[async_trait]
impl RecordProcessor for HandlerProcessor {
    async fn initialize(&mut self, shard: &ShardContext) -> Result<(), ProcessorError> {
        tracing::debug!(handler = self.handler.name(), shard_id = %shard.shard_id, checkpoint = %shard.checkpoint, "handler starts on shard");
        Ok(())
    }

    async fn process_records(
        &mut self,
        records: &[Record],
        _checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        for record in records {
            let envelope: EventEnvelope = serde_json::from_slice(&record.data).map_err(|e| {
                format!(
                    "record {} of {} is not an event envelope: {e}",
                    record.sequence_number, self.shard_id
                )
            })?;
            if !self.handler.handles(&envelope.event_type) {
                continue;
            }
            let span = tracing::info_span!(
                "handle",
                handler = self.handler.name(),
                event_type = %envelope.event_type,
                stream_id = %envelope.stream_id,
                version = envelope.version,
                event_id = %envelope.event_id,
            );
            quote_runtime::telemetry::set_parent(&span, &EnvelopeCarrier(&envelope));
            self.handler
                .handle(&envelope, &self.context)
                .instrument(span)
                .await?;
        }
        Ok(())
    }
}
