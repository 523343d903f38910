//! The quote aggregate as handlers see it: folded from a stream's envelopes.

use event_store::EventEnvelope;
use quote_domain::enrichment::Enrichment;
use quote_domain::quote::{record_enrichment, FoldError, Quote, QuoteEvent};

use crate::handler::{HandlerContext, HandlerError, UpdateOutcome};

/// Decodes one envelope into a domain event (upcasting old schema versions).
pub fn decode(envelope: &EventEnvelope) -> Result<QuoteEvent, HandlerError> {
    QuoteEvent::decode(
        &envelope.event_type,
        envelope.schema_version,
        &envelope.data,
    )
    .map_err(|e| {
        HandlerError::invalid_because(
            format!(
                "{} v{} ({})",
                envelope.stream_id, envelope.version, envelope.event_type
            ),
            e,
        )
    })
}

/// Folds a stream's envelopes into the quote's state (`None` for an empty stream).
pub fn fold(events: &[EventEnvelope]) -> Result<Option<Quote>, HandlerError> {
    let decoded = events
        .iter()
        .map(|e| decode(e).map(|event| (e.version, event)))
        .collect::<Result<Vec<_>, _>>()?;
    Quote::fold(decoded.iter().map(|(version, event)| (*version, event)))
        .map_err(|e| HandlerError::invalid_because("folding the quote", e))
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
            .map_err(|e| HandlerError::invalid_because("encoding a derived event", e))?,
    })
}

/// Records enrichment facts (vehicle decodes, driver histories) learned from `cause` on its
/// quote, each under its key: facts already recorded (a redelivery) and facts arriving after the
/// quote was decided are skipped; a fact that contradicts a recorded one keeps the first.
pub async fn record_enrichments(
    context: &HandlerContext,
    cause: &EventEnvelope,
    facts: &[(String, Enrichment)],
) -> Result<UpdateOutcome, HandlerError> {
    context
        .update_stream(&cause.stream_id, cause, |events| {
            let Some(mut state) = fold(events)? else {
                return Err(HandlerError::invalid(format!(
                    "{} is empty",
                    cause.stream_id
                )));
            };
            let mut derived_events = Vec::new();
            for (key, fact) in facts {
                match record_enrichment(&state, fact.clone()) {
                    Ok(Some(event)) => {
                        state
                            .apply(state.version + 1, &event)
                            .map_err(|e| HandlerError::invalid_because("recording a fact", e))?;
                        derived_events.push(derived(key.clone(), &event)?);
                    }
                    Ok(None) | Err(FoldError::InvalidTransition { .. }) => {}
                    Err(
                        FoldError::ConflictingVehicleOutcome { .. }
                        | FoldError::ConflictingDriverOutcome { .. },
                    ) => {
                        tracing::info!(
                            key,
                            "already recorded with another outcome; keeping the first"
                        );
                    }
                    Err(other) => {
                        return Err(HandlerError::invalid_because("recording a fact", other))
                    }
                }
            }
            Ok(derived_events)
        })
        .await
}
