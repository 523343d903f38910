//! Quote deadlines: a quote still pending `QUOTE_DEADLINE_SECS` after its request (an
//! enrichment dead-lettered, a provider down for long) is referred with the reason
//! [`TIMED_OUT_REASON`], so every customer gets an answer.
//!
//! Every period the fulfillment service asks the read model for quotes pending since before
//! `now - deadline` (its sparse `pending` index), loads each from the event store (the source
//! of truth: the read model may lag) and, if it is still pending and overdue, appends
//! `QuoteReferred` at the version it read, under the derived key [`DEADLINE_KEY`] of its
//! `QuoteRequested`. Every fulfillment process sweeps: two that refer the same quote derive the
//! same event id and append at the same version, so one append wins and the other finds it
//! there. An enrichment arriving after the referral finds the quote no longer pending and
//! changes nothing; an underwriter decides.

use std::sync::Arc;
use std::time::Duration;

use quote_domain::{Quote, QuoteEvent, QuoteId, QuoteReferred, QuoteStatus};
use quote_pipeline::{quote, HandlerContext, HandlerError, UpdateOutcome};
use quote_read_model::ReadModel;
use quote_runtime::error_chain::chain;
use time::OffsetDateTime;

/// The derived-event key of a deadline's referral.
pub const DEADLINE_KEY: &str = "deadline";

/// The reason a quote referred at its deadline carries.
pub const TIMED_OUT_REASON: &str = "enrichment timed out";

/// `QUOTE_DEADLINE_SECS`'s default.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);

/// Quotes examined per sweep at most (the oldest first; the next sweep takes the rest).
const SWEEP_BATCH: usize = 100;

/// The deadline and where the pending quotes are listed.
#[derive(Debug, Clone)]
pub struct Deadlines {
    /// Lists the quotes still pending (the read model's `pending` index).
    pub pending: Arc<dyn ReadModel>,
    /// How long a quote may stay pending after its request (`QUOTE_DEADLINE_SECS`).
    pub deadline: Duration,
}

impl Deadlines {
    /// How often to sweep: a tenth of the deadline, between 1 s and 30 s, so a quote is
    /// referred at most about that long after its deadline.
    pub fn period(&self) -> Duration {
        (self.deadline / 10).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// Refers the quotes overdue at `now`; returns how many this call referred.
    pub async fn sweep(
        &self,
        context: &HandlerContext,
        now: OffsetDateTime,
    ) -> Result<usize, HandlerError> {
        let before = now - self.deadline;
        let candidates = self
            .pending
            .pending_before(before, SWEEP_BATCH)
            .await
            .map_err(|e| HandlerError::unavailable("the read model's pending quotes", e))?;
        let mut referred = 0;
        for candidate in candidates {
            let Ok(quote_id) = candidate.quote_id.parse::<QuoteId>() else {
                tracing::warn!(quote_id = %candidate.quote_id, "the read model lists a pending quote whose id is not a quote id");
                continue;
            };
            let stream_id = quote_id.stream_id();
            // One quote failing (unreadable, the store throttling) must not hold up the others.
            match self.refer_if_overdue(context, &stream_id, now).await {
                Ok(UpdateOutcome::Appended(_)) => {
                    tracing::info!(%stream_id, requested_at = %candidate.requested_at, reason = TIMED_OUT_REASON, "quote referred at its deadline");
                    referred += 1;
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(%stream_id, error = %chain(&err), "referring an overdue quote failed; the next sweep tries again");
                }
            }
        }
        Ok(referred)
    }

    async fn refer_if_overdue(
        &self,
        context: &HandlerContext,
        stream_id: &str,
        now: OffsetDateTime,
    ) -> Result<UpdateOutcome, HandlerError> {
        // The request names the referral's cause (its derived id); `update_stream` loads the
        // whole stream to decide.
        let first = context.store.read_page(stream_id, 0, Some(1), 1).await?;
        let Some(requested) = first.events.first() else {
            // The read model knows a quote this store does not have.
            return Ok(UpdateOutcome::NothingToDo);
        };
        context
            .update_stream(stream_id, requested, |events| {
                let Some(state) = quote::fold(events)? else {
                    return Ok(Vec::new());
                };
                match overdue_referral(&state, self.deadline, now) {
                    Some(referral) => Ok(vec![quote::derived(DEADLINE_KEY, &referral)?]),
                    None => Ok(Vec::new()),
                }
            })
            .await
    }
}

/// The referral of a quote still pending `deadline` after its request, at `now`.
pub fn overdue_referral(
    state: &Quote,
    deadline: Duration,
    now: OffsetDateTime,
) -> Option<QuoteEvent> {
    let overdue = state.status == QuoteStatus::Pending && state.requested_at + deadline <= now;
    overdue.then(|| {
        QuoteEvent::QuoteReferred(QuoteReferred {
            reasons: vec![TIMED_OUT_REASON.to_owned()],
        })
    })
}
