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
        let envelopes = records
            .iter()
            .map(|record| {
                serde_json::from_slice::<EventEnvelope>(&record.data).map_err(|e| {
                    ProcessorError::permanent(NotAnEnvelope {
                        sequence_number: record.sequence_number.clone(),
                        shard_id: self.shard_id.clone(),
                        source: e,
                    })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let steps = plan_batch(
            &envelopes,
            |event_type| self.handler.handles(event_type),
            self.handler.covers_earlier_events(),
        );
        for (envelope, step) in envelopes.iter().zip(steps) {
            let covering = match step {
                Step::Skip => continue,
                Step::CoveredBy(version) => Some(version),
                Step::Handle => None,
            };
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
                covered_by_version = covering,
                messaging.system = "aws_kinesis",
                messaging.operation.type = "process",
                messaging.destination.partition.id = %self.shard_id,
                otel.status_description = tracing::field::Empty,
            );
            quote_runtime::telemetry::set_parent(&span, &carrier(envelope));
            if covering.is_some() {
                continue;
            }
            let handled = self
                .handler
                .handle(envelope, &self.context)
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

/// What the processor does with one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Not an event the handler wants.
    Skip,
    /// Handle it.
    Handle,
    /// A later event of its stream in the same batch, handled instead, covers it (the handler
    /// [covers earlier events](EventHandler::covers_earlier_events)); the version of that event.
    CoveredBy(u64),
}

/// The step for each envelope of a batch, in order: every wanted event is handled, except that
/// for a handler that covers earlier events only the last wanted event of each stream is.
fn plan_batch(
    envelopes: &[EventEnvelope],
    wants: impl Fn(&str) -> bool,
    covers_earlier_events: bool,
) -> Vec<Step> {
    let wanted: Vec<bool> = envelopes.iter().map(|e| wants(&e.event_type)).collect();
    let mut last_of_stream: std::collections::HashMap<&str, (usize, u64)> =
        std::collections::HashMap::new();
    if covers_earlier_events {
        for (index, envelope) in envelopes.iter().enumerate() {
            if wanted[index] {
                last_of_stream.insert(envelope.stream_id.as_str(), (index, envelope.version));
            }
        }
    }
    envelopes
        .iter()
        .enumerate()
        .map(|(index, envelope)| {
            if !wanted[index] {
                return Step::Skip;
            }
            match last_of_stream.get(envelope.stream_id.as_str()) {
                Some(&(last, version)) if last != index => Step::CoveredBy(version),
                _ => Step::Handle,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(stream: &str, version: u64, event_type: &str) -> EventEnvelope {
        let at = time::OffsetDateTime::UNIX_EPOCH;
        EventEnvelope {
            event_id: uuid::Uuid::new_v4(),
            stream_id: stream.to_owned(),
            version,
            event_type: event_type.to_owned(),
            schema_version: 1,
            occurred_at: at,
            recorded_at: at,
            correlation_id: "c".into(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            actor: "test".into(),
            data: serde_json::Value::Null,
        }
    }

    fn wants(event_type: &str) -> bool {
        event_type != "Ignored"
    }

    #[test]
    fn every_wanted_event_is_handled_by_default() {
        let batch = [
            envelope("a", 1, "E"),
            envelope("a", 2, "Ignored"),
            envelope("a", 3, "E"),
            envelope("b", 1, "E"),
        ];
        assert_eq!(
            plan_batch(&batch, wants, false),
            [Step::Handle, Step::Skip, Step::Handle, Step::Handle]
        );
    }

    #[test]
    fn a_covering_handler_handles_the_last_wanted_event_of_each_stream_only() {
        let batch = [
            envelope("a", 1, "E"),
            envelope("b", 4, "E"),
            envelope("a", 2, "E"),
            envelope("b", 5, "E"),
            envelope("a", 3, "Ignored"),
            envelope("c", 1, "E"),
        ];
        assert_eq!(
            plan_batch(&batch, wants, true),
            [
                Step::CoveredBy(2),
                Step::CoveredBy(5),
                Step::Handle,
                Step::Handle,
                Step::Skip,
                Step::Handle,
            ]
        );
    }

    #[test]
    fn a_redelivered_older_copy_after_the_last_event_is_handled_again_harmlessly() {
        // Duplicate copies can follow the newest event on the stream; the last *position* of
        // a stream in the batch is handled, and its load sees the whole stream regardless.
        let batch = [envelope("a", 2, "E"), envelope("a", 1, "E")];
        assert_eq!(
            plan_batch(&batch, wants, true),
            [Step::CoveredBy(1), Step::Handle]
        );
    }
}
