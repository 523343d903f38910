//! notifier: tells the customer about a quote's outcome. On `QuoteIssued`, `QuoteDeclined` and
//! `QuoteReferred` it sends an e-mail through SES v2 and/or an SMS through SNS, as the request's
//! `notify` preferences say ([`rules`]), rendered from plain-text [`templates`].
//!
//! A redelivered event never sends twice: before each send, the notification's id
//! (`UUIDv5(namespace, "<outcome event id>/<channel>")`) is claimed with a conditional write in
//! the notification ledger, and the outcome is recorded after the send ([`ledger`], which
//! documents the at-most-once design and what happens after a crash).
//!
//! # Configuration
//!
//! Its settings (`NOTIFY_FROM_EMAIL`, `NOTIFICATIONS_TABLE`, `NOTIFY_CLAIM_TIMEOUT_SECS`, and
//! those of every consumer service) are declared in the `quotes` binary
//! (`services/quotes/src/settings/handlers.rs`); `quotes settings notifier` lists them. SES v2
//! and SNS are reached through the AWS SDK's standard configuration.
//!
//! # Layout
//! - [`rules`]: which notifications an outcome calls for (pure).
//! - [`templates`]: the subject and body of each e-mail, the text of each SMS (pure).
//! - [`ledger`]: the notification ledger (claim before sending, record after), DynamoDB and
//!   in memory.
//! - [`senders`]: e-mail (SES v2) and SMS (SNS) senders, and in-memory fakes.
//! - [`handler`]: the event handler tying them together.

pub mod handler;
pub mod ledger;
pub mod rules;
pub mod senders;
pub mod templates;

pub use handler::Notifier;
pub use ledger::create_notifications_table;
pub use senders::create_ses_identity;

/// Whether a bootstrap step made a resource or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The resource was created.
    Created,
    /// The resource existed and was left as it is.
    Existed,
}
