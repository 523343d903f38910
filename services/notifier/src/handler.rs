//! The notifier's event handler: for each outcome event, the notifications its rules call
//! for, each claimed in the ledger, sent, and recorded.
//!
//! - The quote is folded up to the outcome event's own version, so a later event (an
//!   underwriter issuing a referred quote) does not change what the referral says.
//! - Every notification of the event is attempted, then a failure (if any; a transient one
//!   first) is returned so the worker retries the event: notifications already `sent` are
//!   skipped by their claims, `failed` ones are claimed again and resent. Throttling, an
//!   unreachable provider or ledger are transient (the worker retries until they pass, never
//!   dead-letters); a refusal is permanent (dead-lettered after the worker's bounded attempts).
//! - A notification another delivery is sending ([`Claim::InProgress`]) is waited for, up to
//!   the ledger's claim timeout: it ends `sent`/`unknown` (nothing to do), `failed` (claimed
//!   and sent here), or goes stale and is resolved as unknown.
//! - A send that may have reached the provider is recorded `unknown` and not retried (at most
//!   once; see [`crate::ledger`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_store::{EventEnvelope, LoadBound};
use quote_domain::quote::{QuoteDeclined, QuoteIssued, QuoteReferred};
use quote_pipeline::{quote, EventHandler, HandlerContext, HandlerError};
use time::OffsetDateTime;

use crate::ledger::{
    notification_id, Claim, ClaimDetails, LedgerError, NotificationLedger, Outcome,
};
use crate::rules::{self, Notification, Recipient};
use crate::senders::{EmailSender, SendError, SmsSender};
use quote_runtime::error_chain::chain;

/// Longest pause between two looks at a notification another delivery is sending.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Sends the notifications of quote outcomes.
#[derive(Debug, Clone)]
pub struct Notifier {
    ledger: Arc<dyn NotificationLedger>,
    email: Arc<dyn EmailSender>,
    sms: Arc<dyn SmsSender>,
}

/// Why one notification was not (known to be) delivered.
#[derive(Debug, thiserror::Error)]
enum NotifyError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Send(SendError),
    #[error("notification {0} is still being sent by another delivery")]
    StillInProgress(uuid::Uuid),
}

impl NotifyError {
    /// Whether a retry of the event may get the notification through: the ledger or the
    /// provider unavailable, throttling, another delivery still sending.
    fn is_transient(&self) -> bool {
        match self {
            NotifyError::Ledger(err) => err.is_transient(),
            NotifyError::Send(err) => err.is_transient(),
            NotifyError::StillInProgress(_) => true,
        }
    }
}

impl From<NotifyError> for HandlerError {
    fn from(err: NotifyError) -> Self {
        if err.is_transient() {
            HandlerError::unavailable("notification delivery", err)
        } else {
            HandlerError::refused("notification delivery", err)
        }
    }
}

impl Notifier {
    /// A notifier on these adapters.
    pub fn new(
        ledger: Arc<dyn NotificationLedger>,
        email: Arc<dyn EmailSender>,
        sms: Arc<dyn SmsSender>,
    ) -> Self {
        Self { ledger, email, sms }
    }

    /// Claims, sends and records one notification.
    #[tracing::instrument(skip_all, fields(channel = %notification.channel, to = %notification.to.redacted(), notification_id = tracing::field::Empty))]
    async fn deliver(
        &self,
        event: &EventEnvelope,
        quote_id: quote_domain::quote::QuoteId,
        notification: &Notification,
    ) -> Result<(), NotifyError> {
        let id = notification_id(event.event_id, notification.channel);
        tracing::Span::current().record("notification_id", tracing::field::display(id));
        let details = ClaimDetails {
            quote_id,
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            channel: notification.channel,
            recipient: notification.to.redacted(),
        };
        let Some(attempt) = self.claim(id, &details).await? else {
            return Ok(());
        };
        let sent = match &notification.to {
            Recipient::Email(to) => {
                let subject = notification.subject.as_deref().unwrap_or_default();
                self.email.send_email(to, subject, &notification.body).await
            }
            Recipient::Phone(to) => self.sms.send_sms(to, &notification.body).await,
        };
        let outcome = match &sent {
            Ok(provider_message_id) => Outcome::Sent {
                provider_message_id: provider_message_id.clone(),
            },
            Err(err) if err.may_have_been_sent() => Outcome::Unknown {
                reason: err.to_string(),
            },
            Err(err) => Outcome::Failed {
                error: err.to_string(),
            },
        };
        if let Err(err) = self
            .ledger
            .record(id, attempt, &outcome, OffsetDateTime::now_utc())
            .await
        {
            tracing::error!(
                attempt,
                status = outcome.status().as_str(),
                error = %chain(&err),
                "outcome not recorded; the claim will go stale and be resolved as unknown"
            );
            return Err(err.into());
        }
        match sent {
            Ok(provider_message_id) => {
                tracing::info!(attempt, provider_message_id, "notification sent");
                Ok(())
            }
            Err(err) if err.may_have_been_sent() => {
                tracing::error!(attempt, error = %chain(&err), "notification outcome unknown; assumed sent, not retried");
                Ok(())
            }
            Err(err) => {
                tracing::warn!(attempt, error = %chain(&err), "notification not sent; the retry sends it again");
                Err(NotifyError::Send(err))
            }
        }
    }

    /// Claims `id`: `Some(attempt)` when it is ours to send, `None` when it is done, waiting
    /// while another delivery holds a live claim.
    async fn claim(
        &self,
        id: uuid::Uuid,
        details: &ClaimDetails,
    ) -> Result<Option<u32>, NotifyError> {
        let deadline =
            tokio::time::Instant::now() + self.ledger.claim_timeout() + MAX_POLL_INTERVAL;
        let mut pause = Duration::from_millis(100);
        loop {
            let now = OffsetDateTime::now_utc();
            match self.ledger.claim(id, details, now).await? {
                Claim::Claimed { attempt } => return Ok(Some(attempt)),
                Claim::AlreadyDone(outcome) => {
                    match &outcome {
                        Outcome::Unknown { reason } => {
                            tracing::warn!(reason, "notification outcome unknown; assumed sent")
                        }
                        Outcome::Sent { .. } | Outcome::Failed { .. } => {
                            tracing::debug!(?outcome, "notification already sent")
                        }
                    }
                    return Ok(None);
                }
                Claim::InProgress { attempt, stale_at } => {
                    let until_stale = Duration::try_from(stale_at - now).unwrap_or_default();
                    let wait = pause.min(until_stale).max(Duration::from_millis(10));
                    if tokio::time::Instant::now() + wait > deadline {
                        return Err(NotifyError::StillInProgress(id));
                    }
                    tracing::debug!(attempt, ?wait, "another delivery is sending; waiting");
                    tokio::time::sleep(wait).await;
                    pause = (pause * 2).min(MAX_POLL_INTERVAL);
                }
            }
        }
    }
}

#[async_trait]
impl EventHandler for Notifier {
    fn name(&self) -> &'static str {
        "notifier"
    }

    fn handles(&self, event_type: &str) -> bool {
        [
            QuoteIssued::EVENT_TYPE,
            QuoteDeclined::EVENT_TYPE,
            QuoteReferred::EVENT_TYPE,
        ]
        .contains(&event_type)
    }

    async fn handle(
        &self,
        event: &EventEnvelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError> {
        let outcome_event = quote::decode(event)?;
        if rules::outcome_of(&outcome_event).is_none() {
            return Ok(());
        }
        let events = context
            .store
            .load(&event.stream_id, LoadBound::UpToVersion(event.version))
            .await?;
        if events.last().map(|e| e.event_id) != Some(event.event_id) {
            return Err(HandlerError::invalid(format!(
                "{} has no event {} at version {}",
                event.stream_id, event.event_id, event.version
            )));
        }
        let Some(state) = quote::fold(&events)? else {
            return Err(HandlerError::invalid(format!(
                "{} is empty",
                event.stream_id
            )));
        };
        let notifications = rules::notifications(&state, &outcome_event);
        if notifications.is_empty() {
            tracing::debug!(quote_id = %state.quote_id, "no notification requested for this outcome");
        }
        // A transient failure wins over a permanent one: the retry then resends only what was
        // not sent, and a refusal left alone is dead-lettered once the rest went through.
        let mut first_error: Option<NotifyError> = None;
        for notification in &notifications {
            if let Err(err) = self.deliver(event, state.quote_id, notification).await {
                match &first_error {
                    Some(first) if first.is_transient() || !err.is_transient() => {}
                    _ => first_error = Some(err),
                }
            }
        }
        match first_error {
            Some(err) => Err(err.into()),
            None => Ok(()),
        }
    }

    async fn ready(&self) -> Result<(), HandlerError> {
        self.ledger
            .ready()
            .await
            .map_err(|e| HandlerError::unavailable("the notification ledger", e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ledger::InMemoryNotificationLedger;
    use crate::senders::{InMemoryEmailSender, InMemorySmsSender};

    #[test]
    fn handles_the_three_outcomes_only() {
        let notifier = Notifier::new(
            Arc::new(InMemoryNotificationLedger::default()),
            Arc::new(InMemoryEmailSender::new()),
            Arc::new(InMemorySmsSender::new()),
        );
        assert_eq!(notifier.name(), "notifier");
        for event_type in ["QuoteIssued", "QuoteDeclined", "QuoteReferred"] {
            assert!(notifier.handles(event_type));
        }
        for event_type in ["QuoteRequested", "VehicleDecoded", "DriverHistoryRetrieved"] {
            assert!(!notifier.handles(event_type));
        }
    }
}
