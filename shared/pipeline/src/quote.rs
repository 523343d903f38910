//! The quote aggregate as handlers see it: folded from a stream's envelopes.

use event_store::EventEnvelope;
use quote_domain::quote::{Quote, QuoteEvent};

use crate::handler::HandlerError;

/// Decodes one envelope into a domain event (upcasting old schema versions).
pub fn decode(envelope: &EventEnvelope) -> Result<QuoteEvent, HandlerError> {
    QuoteEvent::decode(
        &envelope.event_type,
        envelope.schema_version,
        &envelope.data,
    )
    .map_err(|e| {
        HandlerError::Invalid(format!(
            "{} v{} ({}): {e}",
            envelope.stream_id, envelope.version, envelope.event_type
        ))
    })
}

/// Folds a stream's envelopes into the quote's state (`None` for an empty stream).
pub fn fold(events: &[EventEnvelope]) -> Result<Option<Quote>, HandlerError> {
    let decoded = events
        .iter()
        .map(|e| decode(e).map(|event| (e.version, event)))
        .collect::<Result<Vec<_>, _>>()?;
    Quote::fold(decoded.iter().map(|(version, event)| (*version, event)))
        .map_err(|e| HandlerError::Invalid(e.to_string()))
}

/// The `DerivedEvent` for a domain event, keyed so redelivery derives the same id.
pub fn derived(
    key: impl Into<String>,
    event: &QuoteEvent,
) -> Result<crate::DerivedEvent, HandlerError> {
    Ok(crate::DerivedEvent {
        key: key.into(),
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        data: event
            .to_data()
            .map_err(|e| HandlerError::Invalid(e.to_string()))?,
    })
}
