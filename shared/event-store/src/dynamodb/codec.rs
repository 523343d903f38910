//! Conversions between envelopes, heads, idempotency records and DynamoDB items.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::envelope::EventEnvelope;
use crate::error::StoreError;
use crate::store::{IdempotencyRecord, StreamHead};

use super::schema::UNPUBLISHED_BUCKETS;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
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

fn parse_timestamp(value: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map_err(|e| StoreError::unreadable(format!("timestamp {value:?}"), e))
}

/// The bucket of the `unpublished` index a stream's head goes to (FNV-1a, stable across builds).
pub(crate) fn pending_bucket(stream_id: &str) -> String {
    quote_runtime::item_keys::bucket(stream_id, UNPUBLISHED_BUCKETS)
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(StoreError::corrupt(format!(
            "missing string attribute {name}"
        ))),
    }
}

fn get_opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    }
}

pub(crate) fn get_u64(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map_err(|e| StoreError::unreadable(format!("attribute {name}={value}"), e)),
        _ => Err(StoreError::corrupt(format!(
            "missing number attribute {name}"
        ))),
    }
}

pub(crate) fn get_i64(item: &Item, name: &str) -> Result<Option<i64>, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|e| StoreError::unreadable(format!("attribute {name}={value}"), e)),
        _ => Ok(None),
    }
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
    let event_id = get_s(item, "event_id")?;
    let data = get_s(item, "data")?;
    Ok(EventEnvelope {
        event_id: event_id
            .parse()
            .map_err(|e| StoreError::unreadable(format!("event_id {event_id}"), e))?,
        stream_id: get_s(item, "stream_id")?.to_owned(),
        version: get_u64(item, "version")?,
        event_type: get_s(item, "event_type")?.to_owned(),
        schema_version: u32::try_from(get_u64(item, "schema_version")?)
            .map_err(StoreError::corrupt_by("schema_version"))?,
        occurred_at: parse_timestamp(get_s(item, "occurred_at")?)?,
        recorded_at: parse_timestamp(get_s(item, "recorded_at")?)?,
        correlation_id: get_s(item, "correlation_id")?.to_owned(),
        causation_id: get_opt_s(item, "causation_id"),
        traceparent: get_opt_s(item, "traceparent"),
        tracestate: get_opt_s(item, "tracestate"),
        actor: get_s(item, "actor")?.to_owned(),
        data: serde_json::from_str(data).map_err(StoreError::corrupt_by("event data"))?,
    })
}

pub(crate) fn head_from_item(item: &Item) -> Result<StreamHead, StoreError> {
    Ok(StreamHead {
        stream_id: get_s(item, "stream_id")?.to_owned(),
        version: get_u64(item, "head_version")?,
        published_version: get_u64(item, "published_version").unwrap_or(0),
        pending_since: get_i64(item, "pending_since")?
            .map(from_epoch_micros)
            .transpose()?,
        publish_failures: get_i64(item, "publish_failures")?
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
    let expires =
        get_i64(item, "expires_at")?.ok_or_else(|| StoreError::corrupt("missing expires_at"))?;
    Ok(IdempotencyRecord {
        key: get_s(item, "idempotency_key")?.to_owned(),
        request_hash: get_s(item, "request_hash")?.to_owned(),
        stream_id: get_s(item, "stream_id")?.to_owned(),
        response: serde_json::from_str(get_s(item, "response")?)
            .map_err(StoreError::corrupt_by("idempotent response"))?,
        created_at: parse_timestamp(get_s(item, "created_at")?)?,
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
        assert_eq!(parse_timestamp(&sa).ok(), Some(a));
    }

    #[test]
    fn buckets_are_stable_and_in_range() {
        let bucket: u64 = pending_bucket("quote#1").parse().unwrap_or(u64::MAX);
        assert!(bucket < UNPUBLISHED_BUCKETS);
        assert_eq!(pending_bucket("quote#1"), pending_bucket("quote#1"));
    }
}
