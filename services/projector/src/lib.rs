//! projector: keeps the `customer-quotes` read model (`READ_MODEL_TABLE`, default
//! `customer-quotes`) in step with the event store.
//!
//! For every quote event it loads the quote's whole stream from the store (so a record that
//! arrives after a gap, or out of order across a reshard, is applied with everything before it),
//! folds it, and upserts the summary guarded by version: a duplicate or late record can never
//! move a quote backwards. Because the summary depends on the stream and not on the record,
//! only the last record of each quote in a batch is handled (`covers_earlier_events`).
//!
//! [`rebuild`] rebuilds the read model into another table from the event store, for a
//! blue/green switch (`quotes rebuild read-model`).

pub mod rebuild;

use std::sync::Arc;

use async_trait::async_trait;
use event_store::EventEnvelope;
use quote_domain::quote::QuoteEvent;
use quote_pipeline::{quote, EventHandler, HandlerContext, HandlerError};
use quote_read_model::projection::summarize;
use quote_read_model::{ReadModel, ReadModelError, Upsert};
use tracing::Instrument;

/// The projector's handler.
#[derive(Debug, Clone)]
pub struct Projector {
    model: Arc<dyn ReadModel>,
}

impl Projector {
    /// A projector writing to `model`.
    pub fn new(model: Arc<dyn ReadModel>) -> Self {
        Self { model }
    }
}

#[async_trait]
impl EventHandler for Projector {
    fn name(&self) -> &'static str {
        "projector"
    }

    fn handles(&self, event_type: &str) -> bool {
        QuoteEvent::EVENT_TYPES.contains(&event_type)
    }

    /// The summary is a fold of the whole stream as stored, so the last event of a quote in a
    /// batch covers the earlier ones: a shard catching up writes each quote once per batch.
    fn covers_earlier_events(&self) -> bool {
        true
    }

    async fn handle(
        &self,
        event: &EventEnvelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError> {
        let events = context.load(&event.stream_id).await?;
        let Some(state) = quote::fold(&events)? else {
            return Err(HandlerError::invalid(format!(
                "{} v{} was published but the stream is empty",
                event.stream_id, event.version
            )));
        };
        let updated_at = events
            .last()
            .map(|e| e.recorded_at)
            .unwrap_or(event.recorded_at);
        let summary = summarize(&state, updated_at);
        let span = tracing::info_span!(
            "read_model.upsert",
            otel.name = "update read model",
            quote_id = %summary.quote_id,
            version = summary.version,
            status = %summary.status,
            outcome = tracing::field::Empty,
        );
        let upserted = self
            .model
            .upsert(&summary)
            .instrument(span.clone())
            .await
            .map_err(read_model_failure)?;
        span.record(
            "outcome",
            match upserted {
                Upsert::Applied => "applied",
                Upsert::Stale { .. } => "stale",
            },
        );
        match upserted {
            Upsert::Applied => {
                tracing::debug!(quote_id = %state.quote_id, version = state.version, status = %state.status, "read model updated")
            }
            Upsert::Stale { stored } => {
                tracing::debug!(quote_id = %state.quote_id, stored, "read model already newer")
            }
        }
        Ok(())
    }

    async fn ready(&self) -> Result<(), HandlerError> {
        self.model.ping().await.map_err(read_model_failure)
    }
}

/// A read-model failure as the worker sees it: the backend unavailable is transient (the shard
/// waits, so a quote's last event is never given up on while the table is throttled or down),
/// and so is a missing live table (until the operator restores it or switches) or a routing
/// document changed under a write; a corrupt item or a refused request is permanent.
pub fn read_model_failure(err: ReadModelError) -> HandlerError {
    match err {
        ReadModelError::Backend(_)
        | ReadModelError::TableMissing { .. }
        | ReadModelError::Conflict { .. } => HandlerError::unavailable("the read model", err),
        ReadModelError::Corrupt { .. } | ReadModelError::InvalidPageToken => {
            HandlerError::refused("the read model", err)
        }
    }
}
