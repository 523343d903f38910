//! The notification ledger: a notification is claimed before it is sent and its outcome is
//! recorded after, so a redelivered event never sends it twice.
//!
//! A notification is named by [`notification_id`]: `UUIDv5(namespace, "<outcome event
//! id>/<channel>")`, the same for every delivery of the same event. Its record goes through
//! these states:
//!
//! ```text
//!             claim                 record Sent
//! (absent) ──────────► sending ─────────────────────► sent         final: never sent again
//!                       │  ▲  │     record Failed
//!                       │  │  └─────────────────────► failed ──┐   the next claim sends again
//!                       │  └───────── claim ───────────────────┘   (attempt + 1)
//!                       │ claim, once the claim is older than the claim timeout
//!                       └───────────────────────────► unknown      final: assumed sent
//! ```
//!
//! # At most once
//!
//! We choose *never send twice* over *always deliver*. Between the claim and the record, a
//! sender may crash, lose its lease, or get no answer from the provider; the message may or may
//! not have gone out, and neither SES `SendEmail` nor SNS `Publish` to a phone number takes an
//! idempotency token that would let a second attempt find out. So:
//!
//! - `sent`: the provider accepted the message (its message id is kept). Final.
//! - `failed`: the provider *refused* it, or it could not be reached at all (connection refused,
//!   name resolution, connect timeout), so it was *not* sent. The next delivery of the event
//!   (the worker's retry) claims it again and sends.
//! - `unknown`: nobody knows, and it is assumed sent. Final. Reached two ways: a send that
//!   failed after the request may have reached the provider (a timeout waiting for the
//!   answer, a connection dropped mid-request, an unreadable answer), recorded by the sender
//!   itself; or a `sending` claim older than the claim timeout, whose sender must have died
//!   between claim and record: the next claimer resolves it. A sender still alive after its
//!   claim was resolved (a long pause) may still record its real outcome: `sent` or `failed`
//!   replaces `unknown`, as it is better knowledge (and a real `failed` means nothing went
//!   out, so sending again is still at most once).
//! - `sending` younger than the timeout: another delivery is sending right now
//!   ([`Claim::InProgress`]); the handler waits for it to finish or go stale.
//!
//! The claim timeout must be longer than any live send: the SES and SNS clients make a single
//! attempt bounded by the SDK's operation timeout (30 s), so the default of 2 minutes leaves a
//! wide margin while keeping short how long a crashed sender's shard waits.
//!
//! Nothing is ever re-sent from a `sending` or `unknown` record. The cost: a message whose
//! sender crashed (or timed out) at the wrong moment may never be delivered; the record says
//! `unknown` with its notification id, quote and channel, and the handler logs it at `error`.
//!
//! # Storage
//!
//! DynamoDB ([`DynamoNotificationLedger`]): table `NOTIFICATIONS_TABLE` (default
//! `quote-notifications`), hash key `notification_id` (S); attributes `status`, `attempt`
//! (N), `claimed_at`, `finished_at` (RFC 3339), `provider_message_id`, `error`, and what the
//! notification is about (`quote_id`, `event_id`, `event_type`, `channel`, and the *redacted*
//! `recipient`: no address or phone number is stored). A claim is a `PutItem` conditioned on
//! `attribute_not_exists(notification_id)`; re-claiming a failed record or resolving a stale
//! one is an `UpdateItem` conditioned on the status and attempt just read, so of two
//! concurrent claimers exactly one wins. [`InMemoryNotificationLedger`] does the same under a
//! mutex, for tests and the embedded mode.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use dynamodb_item::{n, s, AttributeError, ConditionalExt, Item, ItemExt};
use quote_domain::quote::QuoteId;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::rules::Channel;
use crate::Created;

/// Namespace of notification ids.
pub const NOTIFICATION_NAMESPACE: Uuid = Uuid::from_u128(0x3d5e_8b21_77c4_4f0a_b6e2_9c01_d4a7_b001);

/// Default claim timeout (see the module docs).
pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(120);

/// Default table name.
pub const DEFAULT_TABLE: &str = "quote-notifications";

/// Conditional-write races lost before giving up (the handler's retry takes over).
const MAX_CLAIM_ROUNDS: u32 = 8;

/// The id of the notification of `outcome_event_id` on `channel`.
pub fn notification_id(outcome_event_id: Uuid, channel: Channel) -> Uuid {
    Uuid::new_v5(
        &NOTIFICATION_NAMESPACE,
        format!("{outcome_event_id}/{}", channel.as_str()).as_bytes(),
    )
}

/// What a notification is about (stored with its record; nothing personal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimDetails {
    /// The quote.
    pub quote_id: QuoteId,
    /// The outcome event.
    pub event_id: Uuid,
    /// Its type (`QuoteIssued`, …).
    pub event_type: String,
    /// The channel.
    pub channel: Channel,
    /// The recipient, redacted ([`crate::rules::Recipient::redacted`]).
    pub recipient: String,
}

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Claimed; being sent (or its sender died).
    Sending,
    /// Sent. Final.
    Sent,
    /// Not sent; the next claim sends again.
    Failed,
    /// Unknown whether it went out; assumed sent. Final.
    Unknown,
}

impl Status {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Unknown => "unknown",
        }
    }

    fn parse(name: &str) -> Option<Status> {
        match name {
            "sending" => Some(Status::Sending),
            "sent" => Some(Status::Sent),
            "failed" => Some(Status::Failed),
            "unknown" => Some(Status::Unknown),
            _ => None,
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider accepted the message.
    Sent {
        /// The provider's message id.
        provider_message_id: String,
    },
    /// The message was not sent.
    Failed {
        /// Why.
        error: String,
    },
    /// The message may have been sent (assumed sent).
    Unknown {
        /// Why it is not known.
        reason: String,
    },
}

impl Outcome {
    /// The status this outcome leaves the record in.
    pub fn status(&self) -> Status {
        match self {
            Outcome::Sent { .. } => Status::Sent,
            Outcome::Failed { .. } => Status::Failed,
            Outcome::Unknown { .. } => Status::Unknown,
        }
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours to send: attempt number `attempt` (1 for the first). Record its outcome with the
    /// same attempt.
    Claimed {
        /// The attempt.
        attempt: u32,
    },
    /// Finished before: `Sent` or `Unknown` (never `Failed`, which is claimed again).
    AlreadyDone(Outcome),
    /// Another sender holds a live claim.
    InProgress {
        /// Its attempt.
        attempt: u32,
        /// When its claim goes stale (and the next claim resolves it as unknown).
        stale_at: OffsetDateTime,
    },
}

/// A record of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The notification.
    pub notification_id: Uuid,
    /// What it is about.
    pub details: ClaimDetails,
    /// Where it stands.
    pub status: Status,
    /// Attempts claimed so far.
    pub attempt: u32,
    /// When the current attempt was claimed.
    pub claimed_at: OffsetDateTime,
    /// When the current attempt finished (or was resolved as unknown).
    pub finished_at: Option<OffsetDateTime>,
    /// How it finished (`None` while sending).
    pub outcome: Option<Outcome>,
}

/// Why the ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The store is unavailable (throttling, 5xx, a timeout, no connection): transient.
    #[error("notification ledger unavailable: {0}")]
    Backend(String),
    /// The store refused the request (validation, a missing table, access denied): permanent.
    #[error("notification ledger refused the request: {0}")]
    Refused(String),
    /// A stored record cannot be read.
    #[error("notification ledger record {id} is unreadable: {reason}")]
    Corrupt {
        /// The notification.
        id: Uuid,
        /// What is wrong.
        reason: String,
        /// The parser's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Concurrent claimers kept winning.
    #[error("notification {0} kept changing under concurrent claims")]
    Contended(Uuid),
    /// A record for an attempt that is not the current claim (or was already recorded).
    #[error("notification {id} attempt {attempt} is not claimed")]
    NotClaimed {
        /// The notification.
        id: Uuid,
        /// The attempt recorded.
        attempt: u32,
    },
}

/// Claims notifications before sending and records how they went.
#[async_trait]
pub trait NotificationLedger: Send + Sync + std::fmt::Debug {
    /// Claims notification `id` at `now` (see the module docs for the answers).
    async fn claim(
        &self,
        id: Uuid,
        details: &ClaimDetails,
        now: OffsetDateTime,
    ) -> Result<Claim, LedgerError>;

    /// Records how attempt `attempt` of `id` ended, at `now`.
    async fn record(
        &self,
        id: Uuid,
        attempt: u32,
        outcome: &Outcome,
        now: OffsetDateTime,
    ) -> Result<(), LedgerError>;

    /// The record of `id`, if any.
    async fn get(&self, id: Uuid) -> Result<Option<LedgerEntry>, LedgerError>;

    /// How old a `sending` claim must be to be resolved as unknown.
    fn claim_timeout(&self) -> Duration;

    /// Whether the ledger's store is reachable (readiness).
    async fn ready(&self) -> Result<(), LedgerError> {
        Ok(())
    }
}

/// What to do with an existing record on a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Answer this.
    Answer(Claim),
    /// Claim it again (`failed` at `attempt`).
    Reclaim { attempt: u32 },
    /// Resolve a stale `sending` claim at `attempt` as unknown.
    ResolveStale { attempt: u32 },
}

/// The decision both adapters make about an existing record.
fn next_step(entry: &LedgerEntry, now: OffsetDateTime, timeout: Duration) -> Step {
    match entry.status {
        Status::Sent | Status::Unknown => Step::Answer(Claim::AlreadyDone(
            entry.outcome.clone().unwrap_or_else(|| Outcome::Unknown {
                reason: "no outcome stored".to_owned(),
            }),
        )),
        Status::Failed => Step::Reclaim {
            attempt: entry.attempt,
        },
        Status::Sending => {
            let stale_at = entry.claimed_at + timeout;
            if now >= stale_at {
                Step::ResolveStale {
                    attempt: entry.attempt,
                }
            } else {
                Step::Answer(Claim::InProgress {
                    attempt: entry.attempt,
                    stale_at,
                })
            }
        }
    }
}

/// Why a stale claim is resolved as unknown.
fn stale_reason(entry: &LedgerEntry, timeout: Duration) -> String {
    format!(
        "attempt {} claimed at {} recorded no outcome within {} s; assumed sent",
        entry.attempt,
        entry.claimed_at.format(&Rfc3339).unwrap_or_default(),
        timeout.as_secs()
    )
}

// ---------------------------------------------------------------------------------------------
// In memory.
// ---------------------------------------------------------------------------------------------

/// The ledger in memory (tests, embedded mode).
#[derive(Debug)]
pub struct InMemoryNotificationLedger {
    entries: Mutex<HashMap<Uuid, LedgerEntry>>,
    claim_timeout: Duration,
}

impl Default for InMemoryNotificationLedger {
    fn default() -> Self {
        Self::new(DEFAULT_CLAIM_TIMEOUT)
    }
}

impl InMemoryNotificationLedger {
    /// An empty ledger with this claim timeout.
    pub fn new(claim_timeout: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            claim_timeout,
        }
    }

    /// Every record.
    pub fn entries(&self) -> Vec<LedgerEntry> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, LedgerEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl NotificationLedger for InMemoryNotificationLedger {
    async fn claim(
        &self,
        id: Uuid,
        details: &ClaimDetails,
        now: OffsetDateTime,
    ) -> Result<Claim, LedgerError> {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(&id) else {
            entries.insert(
                id,
                LedgerEntry {
                    notification_id: id,
                    details: details.clone(),
                    status: Status::Sending,
                    attempt: 1,
                    claimed_at: now,
                    finished_at: None,
                    outcome: None,
                },
            );
            return Ok(Claim::Claimed { attempt: 1 });
        };
        match next_step(entry, now, self.claim_timeout) {
            Step::Answer(answer) => Ok(answer),
            Step::Reclaim { attempt } => {
                entry.status = Status::Sending;
                entry.attempt = attempt + 1;
                entry.claimed_at = now;
                entry.finished_at = None;
                entry.outcome = None;
                Ok(Claim::Claimed {
                    attempt: entry.attempt,
                })
            }
            Step::ResolveStale { .. } => {
                let outcome = Outcome::Unknown {
                    reason: stale_reason(entry, self.claim_timeout),
                };
                entry.status = Status::Unknown;
                entry.finished_at = Some(now);
                entry.outcome = Some(outcome.clone());
                Ok(Claim::AlreadyDone(outcome))
            }
        }
    }

    async fn record(
        &self,
        id: Uuid,
        attempt: u32,
        outcome: &Outcome,
        now: OffsetDateTime,
    ) -> Result<(), LedgerError> {
        let mut entries = self.lock();
        match entries.get_mut(&id) {
            Some(entry)
                if entry.attempt == attempt
                    && matches!(entry.status, Status::Sending | Status::Unknown) =>
            {
                entry.status = outcome.status();
                entry.finished_at = Some(now);
                entry.outcome = Some(outcome.clone());
                Ok(())
            }
            _ => Err(LedgerError::NotClaimed { id, attempt }),
        }
    }

    async fn get(&self, id: Uuid) -> Result<Option<LedgerEntry>, LedgerError> {
        Ok(self.lock().get(&id).cloned())
    }

    fn claim_timeout(&self) -> Duration {
        self.claim_timeout
    }
}

// ---------------------------------------------------------------------------------------------
// DynamoDB.
// ---------------------------------------------------------------------------------------------

/// The ledger in a DynamoDB table (see [`create_notifications_table`]).
#[derive(Debug, Clone)]
pub struct DynamoNotificationLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
    claim_timeout: Duration,
}

fn timestamp(at: OffsetDateTime) -> Result<AttributeValue, LedgerError> {
    at.format(&Rfc3339)
        .map(AttributeValue::S)
        .map_err(|e| LedgerError::Backend(format!("cannot format {at}: {e}")))
}

fn backend<E: std::error::Error>(err: E) -> LedgerError {
    LedgerError::Backend(
        aws_sdk_dynamodb::error::DisplayErrorContext(err)
            .to_string()
            .replace('\n', " "),
    )
}

/// A failed DynamoDB call: unavailable when it is transient (`quote_runtime::aws_error`),
/// else refused.
fn sdk_failure<E>(err: SdkError<E>) -> LedgerError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let transient = quote_runtime::aws_error::is_transient(&err);
    let message = aws_sdk_dynamodb::error::DisplayErrorContext(err)
        .to_string()
        .replace('\n', " ");
    if transient {
        LedgerError::Backend(message)
    } else {
        LedgerError::Refused(message)
    }
}

impl LedgerError {
    /// Whether the same call may succeed later: the store unavailable, or a race that the
    /// next claim settles.
    pub fn is_transient(&self) -> bool {
        match self {
            LedgerError::Backend(_)
            | LedgerError::Contended(_)
            | LedgerError::NotClaimed { .. } => true,
            LedgerError::Refused(_) | LedgerError::Corrupt { .. } => false,
        }
    }
}

/// Reads a stored record.
fn decode_entry(id: Uuid, item: &Item) -> Result<LedgerEntry, LedgerError> {
    let corrupt = |reason: String| LedgerError::Corrupt {
        id,
        reason,
        source: None,
    };
    let unreadable = |source: AttributeError| LedgerError::Corrupt {
        id,
        reason: source.name.clone(),
        source: Some(Box::new(source)),
    };
    let unparsable =
        |reason: &str, source: Box<dyn std::error::Error + Send + Sync>| LedgerError::Corrupt {
            id,
            reason: reason.to_owned(),
            source: Some(source),
        };
    let text = |name: &str| item.string(name).map(str::to_owned).map_err(unreadable);
    let optional = |name: &str| -> Result<String, LedgerError> {
        Ok(item
            .optional_string(name)
            .map_err(unreadable)?
            .unwrap_or_default()
            .to_owned())
    };
    let status_name = text("status")?;
    let status =
        Status::parse(&status_name).ok_or_else(|| corrupt(format!("status {status_name}")))?;
    let channel_name = text("channel")?;
    let channel =
        Channel::parse(&channel_name).ok_or_else(|| corrupt(format!("channel {channel_name}")))?;
    let quote_id = text("quote_id")?
        .parse::<QuoteId>()
        .map_err(|e| unparsable("quote_id", e.into()))?;
    let event_id =
        Uuid::parse_str(&text("event_id")?).map_err(|e| unparsable("event_id", e.into()))?;
    let outcome = match status {
        Status::Sending => None,
        Status::Sent => Some(Outcome::Sent {
            provider_message_id: optional("provider_message_id")?,
        }),
        Status::Failed => Some(Outcome::Failed {
            error: optional("error")?,
        }),
        Status::Unknown => Some(Outcome::Unknown {
            reason: optional("error")?,
        }),
    };
    let finished_at = match item.optional_string("finished_at").map_err(unreadable)? {
        Some(_) => Some(item.timestamp("finished_at").map_err(unreadable)?),
        None => None,
    };
    Ok(LedgerEntry {
        notification_id: id,
        details: ClaimDetails {
            quote_id,
            event_id,
            event_type: text("event_type")?,
            channel,
            recipient: text("recipient")?,
        },
        status,
        attempt: item.number("attempt").map_err(unreadable)?,
        claimed_at: item.timestamp("claimed_at").map_err(unreadable)?,
        finished_at,
        outcome,
    })
}

impl DynamoNotificationLedger {
    /// A ledger on `table` with this claim timeout.
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        claim_timeout: Duration,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            claim_timeout,
        }
    }

    /// Writes a fresh `sending` claim unless a record exists; `false` when one does.
    async fn put_claim(
        &self,
        id: Uuid,
        details: &ClaimDetails,
        now: OffsetDateTime,
    ) -> Result<bool, LedgerError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("notification_id", s(id.to_string()))
            .item("status", s(Status::Sending.as_str()))
            .item("attempt", n(1))
            .item("claimed_at", timestamp(now)?)
            .item("quote_id", s(details.quote_id.to_string()))
            .item("event_id", s(details.event_id.to_string()))
            .item("event_type", s(&details.event_type))
            .item("channel", s(details.channel.as_str()))
            .item("recipient", s(&details.recipient))
            .condition_expression("attribute_not_exists(notification_id)")
            .send()
            .await;
        match result.condition_checked() {
            Ok(written) => Ok(written.is_some()),
            Err(err) => Err(sdk_failure(err)),
        }
    }

    /// Moves the record from `(from, attempt)` with `update` (which may use `#status` and
    /// `#error`); `false` when it was no longer there (another claimer won).
    async fn transition(
        &self,
        id: Uuid,
        from: Status,
        attempt: u32,
        update: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, LedgerError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("notification_id", s(id.to_string()))
            .update_expression(update)
            .condition_expression("#status = :from AND attempt = :attempt")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":attempt", n(attempt));
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await.condition_checked() {
            Ok(moved) => Ok(moved.is_some()),
            Err(err) => Err(sdk_failure(err)),
        }
    }
}

#[async_trait]
impl NotificationLedger for DynamoNotificationLedger {
    #[tracing::instrument(skip(self, details), fields(table = %self.table, channel = %details.channel, recipient = %details.recipient))]
    async fn claim(
        &self,
        id: Uuid,
        details: &ClaimDetails,
        now: OffsetDateTime,
    ) -> Result<Claim, LedgerError> {
        for _ in 0..MAX_CLAIM_ROUNDS {
            if self.put_claim(id, details, now).await? {
                return Ok(Claim::Claimed { attempt: 1 });
            }
            let Some(entry) = self.get(id).await? else {
                continue;
            };
            match next_step(&entry, now, self.claim_timeout) {
                Step::Answer(answer) => return Ok(answer),
                Step::Reclaim { attempt } => {
                    if self
                        .transition(
                            id,
                            Status::Failed,
                            attempt,
                            "SET #status = :sending, attempt = :next, claimed_at = :now \
                             REMOVE finished_at, #error, provider_message_id",
                            vec![
                                (":sending", s(Status::Sending.as_str())),
                                (":next", n(attempt + 1)),
                                (":now", timestamp(now)?),
                            ],
                        )
                        .await?
                    {
                        return Ok(Claim::Claimed {
                            attempt: attempt + 1,
                        });
                    }
                }
                Step::ResolveStale { attempt } => {
                    let reason = stale_reason(&entry, self.claim_timeout);
                    if self
                        .transition(
                            id,
                            Status::Sending,
                            attempt,
                            "SET #status = :unknown, finished_at = :now, #error = :reason",
                            vec![
                                (":unknown", s(Status::Unknown.as_str())),
                                (":now", timestamp(now)?),
                                (":reason", s(&reason)),
                            ],
                        )
                        .await?
                    {
                        return Ok(Claim::AlreadyDone(Outcome::Unknown { reason }));
                    }
                }
            }
        }
        Err(LedgerError::Contended(id))
    }

    #[tracing::instrument(skip(self, outcome), fields(table = %self.table, status = outcome.status().as_str()))]
    async fn record(
        &self,
        id: Uuid,
        attempt: u32,
        outcome: &Outcome,
        now: OffsetDateTime,
    ) -> Result<(), LedgerError> {
        let (update, detail) = match outcome {
            Outcome::Sent {
                provider_message_id,
            } => (
                "SET #status = :status, finished_at = :now, provider_message_id = :detail REMOVE #error",
                provider_message_id,
            ),
            Outcome::Failed { error: detail } | Outcome::Unknown { reason: detail } => (
                "SET #status = :status, finished_at = :now, #error = :detail REMOVE provider_message_id",
                detail,
            ),
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("notification_id", s(id.to_string()))
            .update_expression(update)
            .condition_expression(
                "attempt = :attempt AND (#status = :sending OR #status = :unknown)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":status", s(outcome.status().as_str()))
            .expression_attribute_values(":now", timestamp(now)?)
            .expression_attribute_values(":detail", s(detail))
            .expression_attribute_values(":attempt", n(attempt))
            .expression_attribute_values(":sending", s(Status::Sending.as_str()))
            .expression_attribute_values(":unknown", s(Status::Unknown.as_str()))
            .send()
            .await;
        match result.condition_checked() {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(LedgerError::NotClaimed { id, attempt }),
            Err(err) => Err(sdk_failure(err)),
        }
    }

    async fn get(&self, id: Uuid) -> Result<Option<LedgerEntry>, LedgerError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("notification_id", s(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_failure)?;
        output.item().map(|item| decode_entry(id, item)).transpose()
    }

    fn claim_timeout(&self) -> Duration {
        self.claim_timeout
    }

    async fn ready(&self) -> Result<(), LedgerError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_failure)
    }
}

/// Creates the ledger table unless it exists (on-demand billing), and waits until it is
/// active. Idempotent; used by `quotes bootstrap` and the tests.
pub async fn create_notifications_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<Created, LedgerError> {
    let exists = match client.describe_table().table_name(name).send().await {
        Ok(_) => true,
        Err(err) => {
            let err = err.into_service_error();
            if err.is_resource_not_found_exception() {
                false
            } else {
                return Err(backend(err));
            }
        }
    };
    let created = if exists {
        Created::Existed
    } else {
        let result = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("notification_id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(backend)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("notification_id")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(backend)?,
            )
            .send()
            .await;
        match result {
            Ok(_) => Created::Created,
            Err(err) => {
                let err = err.into_service_error();
                if err.is_resource_in_use_exception() {
                    Created::Existed
                } else {
                    return Err(backend(err));
                }
            }
        }
    };
    for _ in 0..120 {
        let status = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| backend(e.into_service_error()))?
            .table
            .and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(created);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(LedgerError::Backend(format!(
        "table {name} did not become ACTIVE within 60 s"
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn entry(status: Status, claimed_at: OffsetDateTime) -> LedgerEntry {
        LedgerEntry {
            notification_id: Uuid::nil(),
            details: ClaimDetails {
                quote_id: QuoteId::from_uuid(Uuid::nil()),
                event_id: Uuid::nil(),
                event_type: "QuoteIssued".into(),
                channel: Channel::Email,
                recipient: "a***@example.com".into(),
            },
            status,
            attempt: 2,
            claimed_at,
            finished_at: None,
            outcome: match status {
                Status::Sent => Some(Outcome::Sent {
                    provider_message_id: "m-1".into(),
                }),
                Status::Failed => Some(Outcome::Failed {
                    error: "rejected".into(),
                }),
                Status::Unknown => Some(Outcome::Unknown {
                    reason: "timeout".into(),
                }),
                Status::Sending => None,
            },
        }
    }

    #[test]
    fn notification_ids_are_stable_per_event_and_channel() {
        let event = Uuid::parse_str("0190f5a2-7b1c-7d3e-8f00-123456789abc").unwrap();
        let email = notification_id(event, Channel::Email);
        assert_eq!(email, notification_id(event, Channel::Email));
        assert_ne!(email, notification_id(event, Channel::Sms));
        assert_ne!(email, notification_id(Uuid::nil(), Channel::Email));
        assert_eq!(email.get_version_num(), 5);
        assert_eq!(
            email,
            Uuid::new_v5(
                &NOTIFICATION_NAMESPACE,
                b"0190f5a2-7b1c-7d3e-8f00-123456789abc/email"
            )
        );
    }

    #[test]
    fn next_step_follows_the_state_machine() {
        let t0 = datetime!(2026-11-27 10:00 UTC);
        let timeout = Duration::from_secs(120);
        assert_eq!(
            next_step(&entry(Status::Sent, t0), t0, timeout),
            Step::Answer(Claim::AlreadyDone(Outcome::Sent {
                provider_message_id: "m-1".into()
            }))
        );
        assert!(matches!(
            next_step(&entry(Status::Unknown, t0), t0, timeout),
            Step::Answer(Claim::AlreadyDone(Outcome::Unknown { .. }))
        ));
        assert_eq!(
            next_step(&entry(Status::Failed, t0), t0, timeout),
            Step::Reclaim { attempt: 2 }
        );
        assert_eq!(
            next_step(
                &entry(Status::Sending, t0),
                t0 + time::Duration::seconds(119),
                timeout
            ),
            Step::Answer(Claim::InProgress {
                attempt: 2,
                stale_at: t0 + time::Duration::seconds(120)
            })
        );
        assert_eq!(
            next_step(
                &entry(Status::Sending, t0),
                t0 + time::Duration::seconds(120),
                timeout
            ),
            Step::ResolveStale { attempt: 2 }
        );
    }

    #[test]
    fn stored_records_decode() {
        let id = Uuid::new_v4();
        let mut item: Item = HashMap::from([
            ("notification_id".to_owned(), s(id.to_string())),
            ("status".to_owned(), s("sent")),
            ("attempt".to_owned(), n(3)),
            ("claimed_at".to_owned(), s("2026-11-27T10:00:00Z")),
            ("finished_at".to_owned(), s("2026-11-27T10:00:01Z")),
            ("provider_message_id".to_owned(), s("m-9")),
            (
                "quote_id".to_owned(),
                s("0190f5a2-7b1c-7d3e-8f00-123456789abc"),
            ),
            ("event_id".to_owned(), s(Uuid::nil().to_string())),
            ("event_type".to_owned(), s("QuoteIssued")),
            ("channel".to_owned(), s("sms")),
            ("recipient".to_owned(), s("+*******0142")),
        ]);
        let entry = decode_entry(id, &item).unwrap();
        assert_eq!(entry.status, Status::Sent);
        assert_eq!(entry.attempt, 3);
        assert_eq!(entry.details.channel, Channel::Sms);
        assert_eq!(
            entry.outcome,
            Some(Outcome::Sent {
                provider_message_id: "m-9".into()
            })
        );
        assert_eq!(entry.finished_at, Some(datetime!(2026-11-27 10:00:01 UTC)));
        item.insert("status".to_owned(), s("lost"));
        assert!(matches!(
            decode_entry(id, &item),
            Err(LedgerError::Corrupt { .. })
        ));
    }
}
