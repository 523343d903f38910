//! `quotes outbox status`: the commits the relays have not published yet, and how long the
//! oldest has waited (`event_relay::outbox`; the relays export the same age as the gauge
//! `event_relay.outbox_oldest_age`, which Terraform alarms on).

use std::fmt::Write;

use anyhow::Context;
use aws_config::SdkConfig;
use event_relay::outbox::{outbox_status, OutboxStatus};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::settings::event_store::EventStoreSettings;

/// The outbox of the event store `settings` name, examining at most `limit` streams.
pub async fn status(
    settings: &EventStoreSettings,
    limit: usize,
    sdk: &SdkConfig,
) -> anyhow::Result<OutboxStatus> {
    let store = event_store::dynamodb::DynamoEventStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        settings.tables(),
    );
    outbox_status(&store, limit, OffsetDateTime::now_utc())
        .await
        .with_context(|| format!("reading the outbox of table {}", settings.events_table))
}

/// The status as a few lines for a terminal.
pub fn render(status: &OutboxStatus) -> String {
    let at_least = if status.truncated { "at least " } else { "" };
    let mut out = format!(
        "unpublished: {at_least}{} events in {at_least}{} streams ({} backed off after failed sweeps, at most {} consecutive failures)\n",
        status.events, status.streams, status.backed_off, status.max_publish_failures
    );
    match &status.oldest {
        None => out.push_str("oldest: none (every commit is published)\n"),
        Some(oldest) => {
            let _ = writeln!(
                out,
                "oldest: {} v{} committed {} ({} s ago)",
                oldest.stream_id,
                oldest.version,
                oldest
                    .recorded_at
                    .format(&Rfc3339)
                    .unwrap_or_else(|_| oldest.recorded_at.to_string()),
                oldest.age_secs
            );
        }
    }
    out
}
