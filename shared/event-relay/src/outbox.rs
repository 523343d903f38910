//! The outbox as an operator sees it: how many commits are not yet published, in how many
//! streams, and how old the oldest one is (`quotes outbox status`, and the relay's
//! `event_relay.outbox_oldest_age` gauge, which Terraform alarms on).
//!
//! A head's `pending_since` is not the commit's age: sweeps move it forward when they claim a
//! stream or back a failing one off (ADR 0002). The age is read from the oldest unpublished
//! event itself (`recorded_at` of version `published_version + 1`), one read per stream with a
//! backlog; normally there is none.

use event_store::{EventStore, StoreError};
use serde::Serialize;
use time::OffsetDateTime;

/// How far ahead to look in the outbox index: deferred streams' marks lie in the future (at
/// most the relay's longest backoff); a year covers every one.
const FAR_FUTURE: time::Duration = time::Duration::days(366);

/// The oldest unpublished commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OldestCommit {
    /// Its stream.
    pub stream_id: String,
    /// Its version.
    pub version: u64,
    /// When it was committed.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// Seconds since then.
    pub age_secs: u64,
}

/// The outbox's backlog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxStatus {
    /// Streams with unpublished commits.
    pub streams: u64,
    /// Commits (events) not yet published.
    pub events: u64,
    /// Of the streams, those a failing sweep backed off (their next try is later).
    pub backed_off: u64,
    /// The most consecutive failed sweeps of one stream.
    pub max_publish_failures: u32,
    /// The oldest unpublished commit, if any.
    pub oldest: Option<OldestCommit>,
    /// More streams have a backlog than were examined (`limit`): the counts are lower bounds.
    pub truncated: bool,
}

impl OutboxStatus {
    /// Seconds the oldest unpublished commit has waited (0 when the outbox is empty).
    pub fn oldest_age_secs(&self) -> u64 {
        self.oldest.as_ref().map_or(0, |oldest| oldest.age_secs)
    }
}

/// The outbox's backlog at `now`, examining at most `limit` streams.
pub async fn outbox_status(
    store: &dyn EventStore,
    limit: usize,
    now: OffsetDateTime,
) -> Result<OutboxStatus, StoreError> {
    let limit = limit.max(1);
    let heads = store
        .unpublished_streams(now + FAR_FUTURE, limit + 1)
        .await?;
    let mut status = OutboxStatus {
        truncated: heads.len() > limit,
        ..OutboxStatus::default()
    };
    for head in heads.into_iter().take(limit) {
        if !head.has_unpublished() {
            continue;
        }
        status.streams += 1;
        status.events += head.version - head.published_version;
        if head.pending_since.is_some_and(|since| since > now) {
            status.backed_off += 1;
        }
        status.max_publish_failures = status.max_publish_failures.max(head.publish_failures);
        let page = store
            .read_page(&head.stream_id, head.published_version, None, 1)
            .await?;
        let Some(first) = page.events.into_iter().next() else {
            continue;
        };
        if status
            .oldest
            .as_ref()
            .is_none_or(|oldest| first.recorded_at < oldest.recorded_at)
        {
            status.oldest = Some(OldestCommit {
                stream_id: first.stream_id,
                version: first.version,
                recorded_at: first.recorded_at,
                age_secs: u64::try_from((now - first.recorded_at).whole_seconds()).unwrap_or(0),
            });
        }
    }
    Ok(status)
}
