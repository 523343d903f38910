//! The fulfillment event handler.
//!
//! Every event that can complete a quote (its request, and each of the four enrichment facts)
//! makes the handler load the quote's stream, fold it, and, when every vehicle and driver has
//! an outcome, append the decision of [`crate::outcome::decide`] under the derived key
//! [`OUTCOME_KEY`].
//!
//! Duplicates and races:
//! - a redelivered event derives the same event id, and finds the quote already decided;
//! - an event arriving after the quote was decided (late, or replayed) finds it no longer
//!   pending, and appends nothing;
//! - two events completing the quote at the same time (the last vehicle and the last driver)
//!   derive *different* ids, since ids come from the cause; both decide on the same version,
//!   the store accepts one append and rejects the other for its expected version, and the
//!   loser reloads, finds the quote decided, and appends nothing.

use std::sync::Arc;

use async_trait::async_trait;
use event_store::EventEnvelope;
use quote_domain::{
    DriverHistoryRetrieved, DriverHistoryUnavailable, QuoteEvent, QuoteRequested,
    VehicleDecodeFailed, VehicleDecoded,
};
use quote_pipeline::{quote, EventHandler, HandlerContext, HandlerError, UpdateOutcome};
use quote_rating::RatingTables;

use crate::deadline::Deadlines;
use crate::outcome::decide;
use crate::tables::TablesSource;

/// The derived-event key of the outcome.
pub const OUTCOME_KEY: &str = "outcome";

/// The event types after which a quote may have become complete.
pub const HANDLED_EVENT_TYPES: [&str; 5] = [
    QuoteRequested::EVENT_TYPE,
    VehicleDecoded::EVENT_TYPE,
    VehicleDecodeFailed::EVENT_TYPE,
    DriverHistoryRetrieved::EVENT_TYPE,
    DriverHistoryUnavailable::EVENT_TYPE,
];

/// Rates complete quotes and records their outcome.
#[derive(Debug, Clone)]
pub struct Fulfillment {
    tables: Arc<RatingTables>,
    /// Refers quotes still pending past their deadline (none: no deadline).
    deadlines: Option<Deadlines>,
}

impl Fulfillment {
    /// A handler rating with `tables`.
    pub fn new(tables: Arc<RatingTables>) -> Self {
        Self {
            tables,
            deadlines: None,
        }
    }

    /// The same handler, also referring the quotes still pending past `deadlines.deadline`.
    pub fn with_deadlines(mut self, deadlines: Deadlines) -> Self {
        tracing::info!(
            deadline_secs = deadlines.deadline.as_secs(),
            "quotes pending longer than the deadline are referred"
        );
        self.deadlines = Some(deadlines);
        self
    }

    /// A handler rating with the tables embedded in the binary.
    pub fn with_default_tables() -> Self {
        Self::new(Arc::new(RatingTables::default_tables().clone()))
    }

    /// A handler rating with `tables` loaded from `source` (see [`crate::tables::load`]);
    /// logs which tables, and warns when they are not effective yet.
    pub fn loaded(tables: RatingTables, source: TablesSource) -> Self {
        let source = match source {
            TablesSource::Embedded => "embedded".to_owned(),
            TablesSource::File(path) => path.display().to_string(),
        };
        tracing::info!(
            version = tables.version(),
            effective_date = %tables.effective_date(),
            source,
            "rating tables loaded"
        );
        let today = time::OffsetDateTime::now_utc().date();
        if !tables.is_effective_on(today) {
            tracing::warn!(
                version = tables.version(),
                effective_date = %tables.effective_date(),
                "the rating tables are not effective yet: quotes completed before that date are referred"
            );
        }
        Self::new(Arc::new(tables))
    }

    /// The tables in use.
    pub fn tables(&self) -> &RatingTables {
        &self.tables
    }
}

#[async_trait]
impl EventHandler for Fulfillment {
    fn name(&self) -> &'static str {
        "fulfillment"
    }

    fn handles(&self, event_type: &str) -> bool {
        HANDLED_EVENT_TYPES.contains(&event_type)
    }

    async fn handle(
        &self,
        event: &EventEnvelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError> {
        // Tests stand in for a bug of a deployed version here (FAILPOINTS=
        // "fulfillment::handle=return"): every record fails permanently, as a record the code
        // cannot read does, until a fixed deployment redrives it.
        fail::fail_point!("fulfillment::handle", |_| Err(HandlerError::invalid(
            "failpoint fulfillment::handle: a bug of this deployment"
        )));
        let outcome = context
            .update_stream(&event.stream_id, event, |events| {
                let Some(state) = quote::fold(events)? else {
                    return Err(HandlerError::invalid(format!(
                        "{} is empty",
                        event.stream_id
                    )));
                };
                match decide(&self.tables, &state, event.recorded_at)
                    .map_err(|e| HandlerError::invalid(format!("{}: {e}", event.stream_id)))?
                {
                    Some(decided) => Ok(vec![quote::derived(OUTCOME_KEY, &decided)?]),
                    None => Ok(Vec::new()),
                }
            })
            .await?;
        if let UpdateOutcome::Appended(appended) = outcome {
            for envelope in &appended {
                log_outcome(envelope);
            }
        }
        Ok(())
    }

    fn period(&self) -> Option<std::time::Duration> {
        self.deadlines.as_ref().map(Deadlines::period)
    }

    /// Refers the quotes still pending past their deadline.
    async fn on_period(&self, context: &HandlerContext) -> Result<(), HandlerError> {
        if let Some(deadlines) = &self.deadlines {
            deadlines
                .sweep(context, time::OffsetDateTime::now_utc())
                .await?;
        }
        Ok(())
    }
}

fn log_outcome(envelope: &EventEnvelope) {
    match quote::decode(envelope) {
        Ok(QuoteEvent::QuoteIssued(issued)) => tracing::info!(
            stream_id = %envelope.stream_id,
            annual_premium_cents = issued.annual_premium.cents(),
            rating_table_version = %issued.rating_table_version,
            "quote issued"
        ),
        Ok(QuoteEvent::QuoteDeclined(declined)) => tracing::info!(
            stream_id = %envelope.stream_id,
            reasons = ?declined.reasons,
            "quote declined"
        ),
        Ok(QuoteEvent::QuoteReferred(referred)) => tracing::info!(
            stream_id = %envelope.stream_id,
            reasons = ?referred.reasons,
            "quote referred"
        ),
        _ => {}
    }
}
