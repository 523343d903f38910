//! Conversions between envelopes, heads, idempotency records and DynamoDB items.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::envelope::EventEnvelope;
use crate::error::StoreError;
use crate::store::{IdempotencyRecord, StreamHead};

use super::schema::UNPUBLISHED_BUCKETS;

pub(crate) use dynamodb_item::{n, s, Item};
use dynamodb_item::{AttributeError, ItemExt};

impl From<AttributeError> for StoreError {
    fn from(err: AttributeError) -> Self {
        StoreError::unreadable("a stored item", err)
    }
}

/// Microseconds since the Unix epoch.
pub(crate) fn epoch_micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_epoch_micros(micros: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|e| StoreError::unreadable(format!("timestamp {micros}"), e))
}

pub(crate) use quote_runtime::item_keys::sortable_timestamp;

/// The bucket of the `unpublished` index a stream's head goes to (FNV-1a, stable across builds).
pub(crate) fn pending_bucket(stream_id: &str) -> String {
    quote_runtime::item_keys::bucket(stream_id, UNPUBLISHED_BUCKETS)
}

pub(crate) fn event_to_item(
    envelope: &EventEnvelope,
    customer_id: Option<&str>,
) -> Result<Item, StoreError> {
    let data = serde_json::to_string(&envelope.data)
        .map_err(StoreError::corrupt_by("event data does not encode"))?;
    let occurred_at = envelope
        .occurred_at
        .format(&Rfc3339)
        .map_err(StoreError::corrupt_by("occurred_at does not format"))?;
    let mut item = Item::from([
        ("stream_id".to_owned(), s(&envelope.stream_id)),
        ("version".to_owned(), n(envelope.version)),
        ("event_id".to_owned(), s(envelope.event_id.to_string())),
        ("event_type".to_owned(), s(&envelope.event_type)),
        ("schema_version".to_owned(), n(envelope.schema_version)),
        ("occurred_at".to_owned(), s(occurred_at)),
        (
            "recorded_at".to_owned(),
            s(sortable_timestamp(envelope.recorded_at)),
        ),
        ("correlation_id".to_owned(), s(&envelope.correlation_id)),
        ("actor".to_owned(), s(&envelope.actor)),
        ("data".to_owned(), s(data)),
    ]);
    for (name, value) in [
        ("causation_id", &envelope.causation_id),
        ("traceparent", &envelope.traceparent),
        ("tracestate", &envelope.tracestate),
    ] {
        if let Some(value) = value {
            item.insert(name.to_owned(), s(value));
        }
    }
    if let Some(customer_id) = customer_id {
        item.insert("customer_id".to_owned(), s(customer_id));
    }
    Ok(item)
}

pub(crate) fn event_from_item(item: &Item) -> Result<EventEnvelope, StoreError> {
    let event_id = item.string("event_id")?;
    Ok(EventEnvelope {
        event_id: event_id
            .parse()
            .map_err(|e| StoreError::unreadable(format!("event_id {event_id}"), e))?,
        stream_id: item.string("stream_id")?.to_owned(),
        version: item.number("version")?,
        event_type: item.string("event_type")?.to_owned(),
        schema_version: item.number("schema_version")?,
        occurred_at: item.timestamp("occurred_at")?,
        recorded_at: item.timestamp("recorded_at")?,
        correlation_id: item.string("correlation_id")?.to_owned(),
        causation_id: item.optional_string("causation_id")?.map(str::to_owned),
        traceparent: item.optional_string("traceparent")?.map(str::to_owned),
        tracestate: item.optional_string("tracestate")?.map(str::to_owned),
        actor: item.string("actor")?.to_owned(),
        data: item.json("data")?,
    })
}

pub(crate) fn head_from_item(item: &Item) -> Result<StreamHead, StoreError> {
    Ok(StreamHead {
        stream_id: item.string("stream_id")?.to_owned(),
        version: item.number("head_version")?,
        published_version: item.optional_number("published_version")?.unwrap_or(0),
        pending_since: item
            .optional_number("pending_since")?
            .map(from_epoch_micros)
            .transpose()?,
        publish_failures: item
            .optional_number::<i64>("publish_failures")?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .unwrap_or(0),
    })
}

pub(crate) fn idempotency_to_item(record: &IdempotencyRecord) -> Result<Item, StoreError> {
    let response = serde_json::to_string(&record.response).map_err(StoreError::corrupt_by(
        "idempotent response does not encode",
    ))?;
    let created_at = record
        .created_at
        .format(&Rfc3339)
        .map_err(StoreError::corrupt_by("created_at does not format"))?;
    Ok(Item::from([
        ("idempotency_key".to_owned(), s(&record.key)),
        ("request_hash".to_owned(), s(&record.request_hash)),
        ("stream_id".to_owned(), s(&record.stream_id)),
        ("response".to_owned(), s(response)),
        ("created_at".to_owned(), s(created_at)),
        (
            "expires_at".to_owned(),
            n(record.expires_at.unix_timestamp()),
        ),
    ]))
}

pub(crate) fn idempotency_from_item(item: &Item) -> Result<IdempotencyRecord, StoreError> {
    let expires: i64 = item.number("expires_at")?;
    Ok(IdempotencyRecord {
        key: item.string("idempotency_key")?.to_owned(),
        request_hash: item.string("request_hash")?.to_owned(),
        stream_id: item.string("stream_id")?.to_owned(),
        response: item.json("response")?,
        created_at: item.timestamp("created_at")?,
        expires_at: OffsetDateTime::from_unix_timestamp(expires)
            .map_err(StoreError::corrupt_by("expires_at"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_timestamps_parse_back_and_sort() {
        let a = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let b = a + time::Duration::microseconds(1);
        let (sa, sb) = (sortable_timestamp(a), sortable_timestamp(b));
        assert!(sa < sb);
        assert_eq!(OffsetDateTime::parse(&sa, &Rfc3339).ok(), Some(a));
    }

    #[test]
    fn buckets_are_stable_and_in_range() {
        let bucket: u64 = pending_bucket("quote#1").parse().unwrap_or(u64::MAX);
        assert!(bucket < UNPUBLISHED_BUCKETS);
        assert_eq!(pending_bucket("quote#1"), pending_bucket("quote#1"));
    }
}
