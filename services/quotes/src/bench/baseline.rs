//! The baselines of `bench ingest`: the writes event-source makes for one accepted quote
//! request, done directly, at the same concurrency and for the same time as the HTTP side.
//!
//! - **aws**: raw SDK calls against the configured endpoints, tables and stream, in the order
//!   the service and its relay make them:
//!   1. `TransactWriteItems`: an `Update` of the new stream's head (`version = 0`, condition
//!      `attribute_not_exists(stream_id)`, setting `head_version`, `published_version`,
//!      `pending_bucket`, `pending_since`, `updated_at`) and a `Put` of the event item (the
//!      envelope's attributes, condition `attribute_not_exists(stream_id)`), as
//!      `DynamoEventStore::append` does;
//!   2. `PutRecords` of the envelope JSON with the stream id as partition key, as `KinesisSink`
//!      does;
//!   3. `UpdateItem` marking the head published and leaving the outbox index, as
//!      `DynamoEventStore::mark_published` does.
//! - **memory**: `InMemoryEventStore::append` of the same event, `InMemorySink::publish` of
//!   the committed envelope and `mark_published`, in process.
//!
//! Events are `QuoteRequested` payloads of generated requests (validated and encoded once,
//! before the clock starts), each appended to a fresh `quote#<uuid v7>` stream with its own
//! event id, as the service does. What the baseline leaves out is exactly the API's work:
//! HTTP, authentication, JSON parsing and validation, and the relay hand-off.

use std::sync::Arc;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use dynamodb_item::{n, s, Item};
use event_relay::{EventSink, InMemorySink};
use event_store::dynamodb::{TableNames, UNPUBLISHED_BUCKETS};
use event_store::{AppendRequest, EventEnvelope, EventStore, InMemoryEventStore, NewEvent};
use quote_domain::QuoteId;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::payload::{requested_event, PayloadGenerator, RequestedEvent};
use super::{warm_then_measure, BenchError, IngestOptions, Phase, Worker};
use quote_runtime::item_keys::sortable_timestamp;

/// Distinct pre-built events the baseline cycles through.
const EVENT_POOL: usize = 512;

/// The actor recorded in baseline events (the benchmark's agent).
const ACTOR: &str = super::ingest::BENCH_SUBJECT;

/// Builds the pool of events, validated and encoded as the service would.
fn event_pool() -> Result<Arc<Vec<RequestedEvent>>, BenchError> {
    let mut generator = PayloadGenerator::new(0xba5e_11e5);
    let now = OffsetDateTime::now_utc();
    let events = (0..EVENT_POOL)
        .map(|_| requested_event(&generator.next_input(now.date()), now))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(events))
}

/// A fresh stream and the new event for it, as the request handler builds them.
fn next_event(pool: &[RequestedEvent], cursor: &mut usize) -> (String, String, NewEvent) {
    let template = &pool[*cursor % pool.len()];
    *cursor += 1;
    let now = OffsetDateTime::now_utc();
    let quote_id = QuoteId::new_random();
    let mut data = template.data.clone();
    if let Some(object) = data.as_object_mut() {
        object.insert(
            "quote_id".to_owned(),
            serde_json::Value::String(quote_id.to_string()),
        );
    }
    let request_id = Uuid::new_v4().to_string();
    let event = NewEvent {
        event_id: Uuid::new_v4(),
        event_type: template.event_type.clone(),
        schema_version: template.schema_version,
        occurred_at: now,
        correlation_id: request_id.clone(),
        causation_id: Some(request_id),
        traceparent: Some(format!(
            "00-{}-{}-01",
            Uuid::new_v4().simple(),
            &Uuid::new_v4().simple().to_string()[..16]
        )),
        tracestate: None,
        actor: ACTOR.to_owned(),
        data,
    };
    (quote_id.stream_id(), template.customer_id.clone(), event)
}

// ---------------------------------------------------------------------------------------------
// Memory.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct MemoryWorker {
    store: Arc<InMemoryEventStore>,
    sink: Arc<InMemorySink>,
    pool: Arc<Vec<RequestedEvent>>,
    cursor: usize,
}

impl Worker for MemoryWorker {
    async fn call(&mut self) -> Result<(), String> {
        let (stream_id, customer_id, event) = next_event(&self.pool, &mut self.cursor);
        let outcome = self
            .store
            .append(AppendRequest {
                stream_id: stream_id.clone(),
                expected_version: 0,
                events: vec![event],
                idempotency: None,
                customer_id: Some(customer_id),
            })
            .await
            .map_err(|e| format!("append: {e}"))?;
        let accepted = self
            .sink
            .publish(&outcome.events)
            .await
            .map_err(|e| format!("publish: {e}"))?;
        if !accepted.iter().all(|ok| *ok) {
            return Err("publish: record refused".into());
        }
        self.store
            .mark_published(&stream_id, outcome.last_version())
            .await
            .map_err(|e| format!("mark published: {e}"))
    }
}

/// Runs the in-memory baseline (fresh store and sink, shared by all loops like the service's).
pub async fn run_memory(options: &IngestOptions) -> Result<Phase, BenchError> {
    let pool = event_pool()?;
    let store = Arc::new(InMemoryEventStore::new());
    let sink = Arc::new(InMemorySink::new());
    warm_then_measure(
        options.concurrency,
        options.warmup,
        options.duration,
        |index| MemoryWorker {
            store: store.clone(),
            sink: sink.clone(),
            pool: pool.clone(),
            cursor: index * 31,
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// AWS.
// ---------------------------------------------------------------------------------------------

/// Microseconds since the Unix epoch (the head's `pending_since`).
fn epoch_micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// The `unpublished` index bucket of a stream, as the DynamoDB adapter computes it.
fn pending_bucket(stream_id: &str) -> String {
    quote_runtime::item_keys::bucket(stream_id, UNPUBLISHED_BUCKETS)
}

/// The event item, with the attributes the DynamoDB adapter writes.
fn event_item(envelope: &EventEnvelope, customer_id: &str) -> Result<Item, String> {
    let data = serde_json::to_string(&envelope.data).map_err(|e| e.to_string())?;
    let occurred_at = envelope
        .occurred_at
        .format(&Rfc3339)
        .map_err(|e| e.to_string())?;
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
        ("customer_id".to_owned(), s(customer_id)),
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
    Ok(item)
}

#[derive(Debug)]
struct AwsWorker {
    dynamodb: aws_sdk_dynamodb::Client,
    kinesis: aws_sdk_kinesis::Client,
    tables: Arc<TableNames>,
    stream: Arc<str>,
    pool: Arc<Vec<RequestedEvent>>,
    cursor: usize,
}

impl AwsWorker {
    /// `TransactWriteItems`: head update + event put, as an append with expected version 0.
    async fn append(&self, envelope: &EventEnvelope, customer_id: &str) -> Result<(), String> {
        let now = epoch_micros(envelope.recorded_at);
        let head = Update::builder()
            .table_name(&self.tables.events)
            .key("stream_id", s(&envelope.stream_id))
            .key("version", n(0))
            .update_expression(
                "SET head_version = :new, \
                 published_version = if_not_exists(published_version, :zero), \
                 pending_bucket = :bucket, \
                 pending_since = if_not_exists(pending_since, :now), \
                 updated_at = :now",
            )
            .condition_expression("attribute_not_exists(stream_id)")
            .expression_attribute_values(":new", n(envelope.version))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":bucket", s(pending_bucket(&envelope.stream_id)))
            .expression_attribute_values(":now", n(now))
            .build()
            .map_err(|e| e.to_string())?;
        let put = Put::builder()
            .table_name(&self.tables.events)
            .set_item(Some(event_item(envelope, customer_id)?))
            .condition_expression("attribute_not_exists(stream_id)")
            .build()
            .map_err(|e| e.to_string())?;
        self.dynamodb
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(head).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("TransactWriteItems: {}", DisplayErrorContext(&e)))
    }

    /// `PutRecords` of the envelope, keyed by its stream.
    async fn publish(&self, envelope: &EventEnvelope) -> Result<(), String> {
        let data = serde_json::to_vec(envelope).map_err(|e| e.to_string())?;
        let entry = PutRecordsRequestEntry::builder()
            .data(Blob::new(data))
            .partition_key(&envelope.stream_id)
            .build()
            .map_err(|e| e.to_string())?;
        let output = self
            .kinesis
            .put_records()
            .stream_name(self.stream.as_ref())
            .records(entry)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "PutRecords: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(&e)
                )
            })?;
        match output.records().first().and_then(|r| r.error_code()) {
            None if !output.records().is_empty() => Ok(()),
            None => Err("PutRecords: no result for the record".into()),
            Some(code) => Err(format!("PutRecords: record refused with {code}")),
        }
    }

    /// `UpdateItem`: the head is fully published and leaves the outbox index.
    async fn mark_published(&self, envelope: &EventEnvelope) -> Result<(), String> {
        self.dynamodb
            .update_item()
            .table_name(&self.tables.events)
            .key("stream_id", s(&envelope.stream_id))
            .key("version", n(0))
            .update_expression("SET published_version = :v REMOVE pending_bucket, pending_since")
            .condition_expression(
                "attribute_exists(stream_id) AND head_version = :v AND published_version < :v",
            )
            .expression_attribute_values(":v", n(envelope.version))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("UpdateItem: {}", DisplayErrorContext(&e)))
    }
}

impl Worker for AwsWorker {
    async fn call(&mut self) -> Result<(), String> {
        let (stream_id, customer_id, event) = next_event(&self.pool, &mut self.cursor);
        let envelope = event.into_envelope(&stream_id, 1, OffsetDateTime::now_utc());
        self.append(&envelope, &customer_id).await?;
        self.publish(&envelope).await?;
        self.mark_published(&envelope).await
    }
}

/// Runs the raw-SDK baseline against the configured endpoints, the event store's `tables` and
/// `stream`.
pub async fn run_aws(
    sdk: &aws_config::SdkConfig,
    tables: &TableNames,
    stream: &str,
    options: &IngestOptions,
) -> Result<Phase, BenchError> {
    let pool = event_pool()?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let kinesis = aws_sdk_kinesis::Client::new(sdk);
    let tables = Arc::new(tables.clone());
    let stream: Arc<str> = Arc::from(stream);
    warm_then_measure(
        options.concurrency,
        options.warmup,
        options.duration,
        |index| AwsWorker {
            dynamodb: dynamodb.clone(),
            kinesis: kinesis.clone(),
            tables: tables.clone(),
            stream: stream.clone(),
            pool: pool.clone(),
            cursor: index * 31,
        },
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn event_items_carry_the_adapter_attributes() {
        let pool = event_pool().unwrap();
        let mut cursor = 0;
        let (stream_id, customer_id, event) = next_event(&pool, &mut cursor);
        assert!(stream_id.starts_with("quote#"));
        let envelope = event.into_envelope(&stream_id, 1, OffsetDateTime::now_utc());
        let item = event_item(&envelope, &customer_id).unwrap();
        for name in [
            "stream_id",
            "version",
            "event_id",
            "event_type",
            "schema_version",
            "occurred_at",
            "recorded_at",
            "correlation_id",
            "causation_id",
            "traceparent",
            "actor",
            "data",
            "customer_id",
        ] {
            assert!(item.contains_key(name), "{name} missing");
        }
        assert_eq!(item["event_type"], s("QuoteRequested"));
        let bucket: u64 = pending_bucket(&stream_id).parse().unwrap();
        assert!(bucket < UNPUBLISHED_BUCKETS);
    }

    #[tokio::test]
    async fn the_memory_baseline_publishes_every_append() {
        let pool = event_pool().unwrap();
        let mut worker = MemoryWorker {
            store: Arc::new(InMemoryEventStore::new()),
            sink: Arc::new(InMemorySink::new()),
            pool,
            cursor: 0,
        };
        for _ in 0..3 {
            worker.call().await.unwrap();
        }
        let records = worker.sink.records();
        assert_eq!(records.len(), 3);
        let head = worker
            .store
            .stream_head(&records[0].stream_id)
            .await
            .unwrap()
            .unwrap();
        assert!(!head.has_unpublished());
    }
}
