//! Runs an [`EventHandler`] as a record processor of the consumer library.
//!
//! Each record is decoded as an event envelope; events the handler does not want are skipped;
//! each handled event gets a `handle <event type>` span (kind consumer) that is a child of the
//! trace context carried in the event (the span that appended it), so one quote request is one
//! trace across every service. A handler's failure reaches the worker as transient or permanent
//! ([`crate::HandlerError::is_transient`]): transient ones are retried until they succeed, and
//! permanent ones (a record that is not an envelope, an invalid event) go to the dead-letter
//! store after the worker's bounded retries.

use std::sync::Arc;

use async_trait::async_trait;
use event_store::EventEnvelope;
use kinesis_consumer::{Checkpointer, ProcessorError, Record, RecordProcessor, ShardContext};
use tracing::Instrument;

use crate::handler::{EventHandler, HandlerContext};

/// The trace context an event carries.
fn carrier(envelope: &EventEnvelope) -> quote_runtime::telemetry::TraceContextCarrier<'_> {
    quote_runtime::telemetry::TraceContextCarrier {
        traceparent: envelope.traceparent.as_deref(),
        tracestate: envelope.tracestate.as_deref(),
    }
}

/// A record that is not an event envelope (permanent: it can never be handled).
#[derive(Debug, thiserror::Error)]
#[error("record {sequence_number} of {shard_id} is not an event envelope")]
struct NotAnEnvelope {
    sequence_number: String,
    shard_id: String,
    #[source]
    source: serde_json::Error,
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
                ProcessorError::permanent(NotAnEnvelope {
                    sequence_number: record.sequence_number.clone(),
                    shard_id: self.shard_id.clone(),
                    source: e,
                })
            })?;
            if !self.handler.handles(&envelope.event_type) {
                continue;
            }
            // One consumer span per record, a child of the context the event carries (the
            // span that appended it): each record belongs to exactly one trace.
            let span = tracing::info_span!(
                "handle",
                otel.name = %format!("handle {}", envelope.event_type),
                otel.kind = "consumer",
                handler = self.handler.name(),
                event_type = %envelope.event_type,
                stream_id = %envelope.stream_id,
                version = envelope.version,
                event_id = %envelope.event_id,
                messaging.system = "aws_kinesis",
                messaging.operation.type = "process",
                messaging.destination.partition.id = %self.shard_id,
                otel.status_description = tracing::field::Empty,
            );
            quote_runtime::telemetry::set_parent(&span, &carrier(&envelope));
            let handled = self
                .handler
                .handle(&envelope, &self.context)
                .instrument(span.clone())
                .await;
            if let Err(err) = handled {
                // Marks the span as failed; the worker waits out a transient failure, and
                // retries then dead-letters a permanent one.
                span.record("otel.status_description", tracing::field::display(&err));
                return Err(if err.is_transient() {
                    ProcessorError::transient(err)
                } else {
                    ProcessorError::permanent(err)
                });
            }
        }
        Ok(())
    }
}
