//! The event envelope: one immutable event with its metadata.
//!
//! The same JSON document is stored in the event store and published as the Kinesis record, so
//! every consumer sees exactly what was committed, including the trace context of the request
//! that caused it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A committed event, as stored and as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Unique id of the event; deterministic when derived from another event.
    pub event_id: Uuid,
    /// The stream (aggregate instance) the event belongs to, e.g. `quote#<uuid>`.
    pub stream_id: String,
    /// Position in the stream: 1 for the first event, contiguous.
    pub version: u64,
    /// Name of the event, e.g. `QuoteRequested`.
    pub event_type: String,
    /// Version of the payload schema, for upcasting.
    pub schema_version: u32,
    /// When the fact happened in the domain (the caller's clock).
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// When the store committed the event.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// Id shared by everything caused by one original request.
    pub correlation_id: String,
    /// Id of the request or event that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// W3C trace context of the operation that appended the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// W3C trace state that goes with `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    /// Who caused the event: a customer id, an agent, or a service name.
    pub actor: String,
    /// The event payload, shaped by `event_type` and `schema_version`.
    pub data: serde_json::Value,
}

/// An event to append; the store assigns `stream_id`, `version` and `recorded_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// See [`EventEnvelope::event_id`].
    pub event_id: Uuid,
    /// See [`EventEnvelope::event_type`].
    pub event_type: String,
    /// See [`EventEnvelope::schema_version`].
    pub schema_version: u32,
    /// See [`EventEnvelope::occurred_at`].
    pub occurred_at: OffsetDateTime,
    /// See [`EventEnvelope::correlation_id`].
    pub correlation_id: String,
    /// See [`EventEnvelope::causation_id`].
    pub causation_id: Option<String>,
    /// See [`EventEnvelope::traceparent`].
    pub traceparent: Option<String>,
    /// See [`EventEnvelope::tracestate`].
    pub tracestate: Option<String>,
    /// See [`EventEnvelope::actor`].
    pub actor: String,
    /// See [`EventEnvelope::data`].
    pub data: serde_json::Value,
}

impl NewEvent {
    /// Turns the new event into the envelope committed at `version`.
    pub fn into_envelope(
        self,
        stream_id: &str,
        version: u64,
        recorded_at: OffsetDateTime,
    ) -> EventEnvelope {
        EventEnvelope {
            event_id: self.event_id,
            stream_id: stream_id.to_owned(),
            version,
            event_type: self.event_type,
            schema_version: self.schema_version,
            occurred_at: truncate_to_micros(self.occurred_at),
            recorded_at: truncate_to_micros(recorded_at),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            traceparent: self.traceparent,
            tracestate: self.tracestate,
            actor: self.actor,
            data: self.data,
        }
    }
}

/// Timestamps are kept to the microsecond so that every adapter round-trips them exactly.
pub fn truncate_to_micros(at: OffsetDateTime) -> OffsetDateTime {
    let micros = at.microsecond();
    at.replace_microsecond(micros).unwrap_or(at)
}
