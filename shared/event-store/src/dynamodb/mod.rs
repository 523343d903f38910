//! The DynamoDB adapter of the event store.
//!
//! # Items
//! Events table (`EVENTS_TABLE`), key `stream_id` (S) + `version` (N):
//! - one item per event at versions 1, 2, 3…, holding the envelope's fields (`data` as a JSON
//!   string) and, when known, `customer_id` for the sparse `by-customer` index;
//! - the stream *head* at version 0: `head_version` (last committed), `published_version`
//!   (acknowledged by Kinesis, or set aside by the relay) and, while events await publication,
//!   `pending_bucket` and `pending_since`, the keys of the sparse `unpublished` index that the
//!   relay sweeps, and `publish_failures` once a sweep failed to publish the stream.
//!
//! Before writing, an append checks every envelope (payload and metadata) against the Kinesis
//! record limit and the size of the item written here against DynamoDB's item limit
//! ([`crate::limits`]).
//!
//! An append is one `TransactWriteItems`: the head update conditioned on the expected version,
//! one conditional put per event, and the idempotency record (in its own table) when given.
//!
//! Idempotency table (`IDEMPOTENCY_TABLE`), key `idempotency_key` (S), TTL on `expires_at`.
//!
//! Throttling and 5xx are retried by the SDK's standard retry strategy (exponential backoff with
//! full jitter), configured once where the client is built; this module retries nothing itself.

mod codec;
pub mod schema;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;

use crate::envelope::EventEnvelope;
use crate::error::StoreError;
use crate::store::{
    AppendOutcome, AppendRequest, EventPage, EventStore, IdempotencyRecord, ScanCursor, ScanPage,
    ScanPart, StreamHead,
};
use codec::{n, s};
use dynamodb_item::{ConditionalExt, ItemExt};
use quote_runtime::backoff::Backoff;

/// Retries of a transaction cancelled by a conflicting transaction or throttling.
const MAX_CANCELLED_RETRIES: u32 = 8;
pub use schema::{create_tables, TableNames, UNPUBLISHED_BUCKETS};

/// The event store on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoEventStore {
    client: Client,
    tables: TableNames,
}

impl DynamoEventStore {
    /// A store on the given tables (see [`create_tables`]).
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self { client, tables }
    }

    fn head_update(
        &self,
        request: &AppendRequest,
        now: OffsetDateTime,
    ) -> Result<Update, StoreError> {
        let new_version = request.expected_version + request.events.len() as u64;
        let mut values = HashMap::from([
            (":new".to_owned(), n(new_version)),
            (":zero".to_owned(), n(0)),
            (
                ":bucket".to_owned(),
                s(codec::pending_bucket(&request.stream_id)),
            ),
            (":now".to_owned(), n(codec::epoch_micros(now))),
        ]);
        let condition = if request.expected_version == 0 {
            "attribute_not_exists(stream_id)".to_owned()
        } else {
            values.insert(":expected".to_owned(), n(request.expected_version));
            "head_version = :expected".to_owned()
        };
        Update::builder()
            .table_name(&self.tables.events)
            .key("stream_id", s(&request.stream_id))
            .key("version", n(0))
            .update_expression(
                "SET head_version = :new, \
                 published_version = if_not_exists(published_version, :zero), \
                 pending_bucket = :bucket, \
                 pending_since = if_not_exists(pending_since, :now), \
                 updated_at = :now",
            )
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(StoreError::backend)
    }

    async fn read_head(&self, stream_id: &str) -> Result<Option<StreamHead>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.tables.events)
            .key("stream_id", s(stream_id))
            .key("version", n(0))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::backend(e.into_service_error()))?
            .item;
        item.map(|item| codec::head_from_item(&item)).transpose()
    }

    async fn explain_cancellation(
        &self,
        request: &AppendRequest,
        codes: Vec<Option<String>>,
    ) -> StoreError {
        let failed = |index: usize| {
            codes
                .get(index)
                .and_then(|c| c.as_deref())
                .is_some_and(|c| c == dynamodb_item::CONDITION_REASON)
        };
        let idempotency_index = 1 + request.events.len();
        if request.idempotency.is_some() && failed(idempotency_index) {
            if let Some(record) = &request.idempotency {
                match self.idempotency_record(&record.key).await {
                    Ok(Some(existing)) => {
                        return StoreError::IdempotencyKeyUsed(Box::new(existing))
                    }
                    Ok(None) => {}
                    Err(err) => return err,
                }
            }
        }
        if (0..=request.events.len()).any(failed) {
            return match self.read_head(&request.stream_id).await {
                Ok(head) => StoreError::WrongExpectedVersion {
                    stream_id: request.stream_id.clone(),
                    expected: request.expected_version,
                    actual: head.map(|h| h.version).unwrap_or(0),
                },
                Err(err) => err,
            };
        }
        StoreError::Backend(format!("transaction cancelled: {codes:?}").into())
    }
}

#[async_trait]
impl EventStore for DynamoEventStore {
    #[tracing::instrument(name = "append", skip(self, request), fields(otel.kind = "client", db.system.name = "aws.dynamodb", db.operation.name = "TransactWriteItems", stream_id = %request.stream_id, expected = request.expected_version, events = request.events.len()))]
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let now = OffsetDateTime::now_utc();
        let committed = request.commit_envelopes(now)?;

        let mut actions = Vec::with_capacity(committed.len() + 2);
        actions.push(
            TransactWriteItem::builder()
                .update(self.head_update(&request, now)?)
                .build(),
        );
        for envelope in &committed {
            let item = codec::event_to_item(envelope, request.customer_id.as_deref())?;
            let put = Put::builder()
                .table_name(&self.tables.events)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(stream_id)")
                .build()
                .map_err(StoreError::backend)?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        if let Some(record) = &request.idempotency {
            let put = Put::builder()
                .table_name(&self.tables.idempotency)
                .set_item(Some(codec::idempotency_to_item(record)?))
                .condition_expression("attribute_not_exists(idempotency_key) OR expires_at < :now")
                .expression_attribute_values(":now", n(now.unix_timestamp()))
                .build()
                .map_err(StoreError::backend)?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }

        // A transaction cancelled only because another one held an item, or by throttling,
        // is retried here (the SDK does not retry cancellations). Retrying is safe: every
        // action is conditional, so if the other writer committed, the retry fails on its
        // condition and is explained below.
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(500));
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .send()
                .await;
            let codes = match result {
                Ok(_) => return Ok(AppendOutcome { events: committed }),
                Err(err) => match dynamodb_item::cancellation_reasons(&err) {
                    Some(codes) => codes,
                    None => return Err(StoreError::backend(err.into_service_error())),
                },
            };
            let condition_failed = codes
                .iter()
                .any(|c| c.as_deref() == Some(dynamodb_item::CONDITION_REASON));
            let transient = codes.iter().any(|c| {
                matches!(
                    c.as_deref(),
                    Some("TransactionConflict")
                        | Some("ThrottlingError")
                        | Some("ProvisionedThroughputExceeded")
                        | Some("RequestLimitExceeded")
                )
            });
            if transient && !condition_failed && backoff.attempts() < MAX_CANCELLED_RETRIES {
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            return Err(self.explain_cancellation(&request, codes).await);
        }
    }

    async fn read_page(
        &self,
        stream_id: &str,
        after_version: u64,
        up_to_version: Option<u64>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let upper = up_to_version.unwrap_or(i64::MAX as u64);
        if upper <= after_version {
            return Ok(EventPage {
                events: Vec::new(),
                next_after: None,
            });
        }
        let output = self
            .client
            .query()
            .table_name(&self.tables.events)
            .key_condition_expression("stream_id = :s AND version BETWEEN :lo AND :hi")
            .expression_attribute_values(":s", s(stream_id))
            .expression_attribute_values(":lo", n(after_version + 1))
            .expression_attribute_values(":hi", n(upper))
            .consistent_read(true)
            .limit(i32::try_from(limit.clamp(1, 10_000)).unwrap_or(10_000))
            .send()
            .await
            .map_err(|e| StoreError::backend(e.into_service_error()))?;
        let events = output
            .items()
            .iter()
            .map(codec::event_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next_after = match output.last_evaluated_key() {
            Some(key) => Some(key.number("version")?),
            None => None,
        };
        Ok(EventPage { events, next_after })
    }

    async fn stream_head(&self, stream_id: &str) -> Result<Option<StreamHead>, StoreError> {
        self.read_head(stream_id).await
    }

    fn snapshots(&self) -> Option<&dyn crate::snapshot::SnapshotStore> {
        Some(self)
    }

    async fn scan_events(
        &self,
        part: ScanPart,
        after: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let mut scan = self
            .client
            .scan()
            .table_name(&self.tables.events)
            // Heads are version 0; only events are returned.
            .filter_expression("version > :zero")
            .expression_attribute_values(":zero", n(0))
            .consistent_read(true)
            .limit(i32::try_from(limit.clamp(1, 10_000)).unwrap_or(10_000));
        if part.total > 1 {
            let segment = i32::try_from(part.segment).map_err(StoreError::backend)?;
            let total = i32::try_from(part.total).map_err(StoreError::backend)?;
            scan = scan.segment(segment).total_segments(total);
        }
        if let Some(cursor) = after {
            scan = scan
                .exclusive_start_key("stream_id", s(&cursor.stream_id))
                .exclusive_start_key("version", n(cursor.version));
        }
        let output = scan
            .send()
            .await
            .map_err(|e| StoreError::backend(e.into_service_error()))?;
        let events = output
            .items()
            .iter()
            .map(codec::event_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match output.last_evaluated_key() {
            Some(key) => Some(ScanCursor {
                stream_id: key.string("stream_id")?.to_owned(),
                version: key.number("version")?,
            }),
            None => None,
        };
        Ok(ScanPage { events, next })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        for table in [&self.tables.events, &self.tables.idempotency] {
            self.client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| StoreError::backend(e.into_service_error()))?;
        }
        Ok(())
    }

    async fn idempotency_record(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.tables.idempotency)
            .key("idempotency_key", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::backend(e.into_service_error()))?
            .item;
        let now = OffsetDateTime::now_utc();
        Ok(item
            .map(|item| codec::idempotency_from_item(&item))
            .transpose()?
            .filter(|record| record.expires_at > now))
    }

    async fn unpublished_streams(
        &self,
        pending_before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<StreamHead>, StoreError> {
        let mut heads = Vec::new();
        for bucket in 0..UNPUBLISHED_BUCKETS {
            let output = self
                .client
                .query()
                .table_name(&self.tables.events)
                .index_name(schema::UNPUBLISHED_INDEX)
                .key_condition_expression("pending_bucket = :b AND pending_since < :before")
                .expression_attribute_values(":b", s(bucket.to_string()))
                .expression_attribute_values(":before", n(codec::epoch_micros(pending_before)))
                .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
                .send()
                .await
                .map_err(|e| StoreError::backend(e.into_service_error()))?;
            for item in output.items() {
                heads.push(codec::head_from_item(item)?);
            }
        }
        heads.sort_by_key(|h| h.pending_since);
        heads.truncate(limit);
        Ok(heads)
    }

    async fn mark_published(&self, stream_id: &str, version: u64) -> Result<(), StoreError> {
        let now = codec::epoch_micros(OffsetDateTime::now_utc());
        // Fully published: clear the pending mark so the head leaves the sparse index.
        let complete = self
            .client
            .update_item()
            .table_name(&self.tables.events)
            .key("stream_id", s(stream_id))
            .key("version", n(0))
            .update_expression(
                "SET published_version = :v \
                 REMOVE pending_bucket, pending_since, publish_failures",
            )
            .condition_expression(
                "attribute_exists(stream_id) AND head_version = :v AND published_version < :v",
            )
            .expression_attribute_values(":v", n(version))
            .send()
            .await;
        match complete.condition_checked() {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(err) => return Err(StoreError::backend(err.into_service_error())),
        }
        // Partly published (newer commits exist): advance, and restart the pending clock so the
        // sweeper gives the newer commits' own relay its grace period.
        let partial = self
            .client
            .update_item()
            .table_name(&self.tables.events)
            .key("stream_id", s(stream_id))
            .key("version", n(0))
            .update_expression(
                "SET published_version = :v, pending_since = :now REMOVE publish_failures",
            )
            .condition_expression(
                "attribute_exists(stream_id) AND head_version > :v AND published_version < :v",
            )
            .expression_attribute_values(":v", n(version))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match partial.condition_checked() {
            // Applied, or someone already published at least this far.
            Ok(_) => Ok(()),
            Err(err) => Err(StoreError::backend(err.into_service_error())),
        }
    }

    async fn claim_publication(
        &self,
        stream_id: &str,
        seen: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let claimed = self
            .client
            .update_item()
            .table_name(&self.tables.events)
            .key("stream_id", s(stream_id))
            .key("version", n(0))
            .update_expression("SET pending_since = :until")
            .condition_expression("pending_since = :seen AND published_version < head_version")
            .expression_attribute_values(":seen", n(codec::epoch_micros(seen)))
            .expression_attribute_values(":until", n(codec::epoch_micros(until)))
            .send()
            .await;
        match claimed.condition_checked() {
            // `None`: claimed by another process, or published or moved meanwhile.
            Ok(claimed) => Ok(claimed.is_some()),
            Err(err) => Err(StoreError::backend(err.into_service_error())),
        }
    }

    async fn defer_publication(
        &self,
        stream_id: &str,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let deferred = self
            .client
            .update_item()
            .table_name(&self.tables.events)
            .key("stream_id", s(stream_id))
            .key("version", n(0))
            .update_expression("SET pending_since = :until ADD publish_failures :one")
            .condition_expression(
                "attribute_exists(pending_since) AND published_version < head_version",
            )
            .expression_attribute_values(":until", n(codec::epoch_micros(until)))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match deferred.condition_checked() {
            // Deferred, or published meanwhile: nothing to defer.
            Ok(_) => Ok(()),
            Err(err) => Err(StoreError::backend(err.into_service_error())),
        }
    }
}

/// Size of the item [`DynamoEventStore`] writes for `envelope` (see [`crate::limits`]).
pub(crate) fn event_item_bytes(
    envelope: &EventEnvelope,
    customer_id: Option<&str>,
) -> Result<usize, StoreError> {
    Ok(crate::limits::item_bytes(&codec::event_to_item(
        envelope,
        customer_id,
    )?))
}

/// Size of the item [`DynamoEventStore`] writes for an idempotency record.
pub(crate) fn idempotency_item_bytes(record: &IdempotencyRecord) -> Result<usize, StoreError> {
    Ok(crate::limits::item_bytes(&codec::idempotency_to_item(
        record,
    )?))
}

/// The largest the head item of `stream_id` can be (every attribute at its widest).
pub(crate) fn head_item_bytes(stream_id: &str) -> usize {
    let widest = n(u64::MAX);
    let mut head = codec::Item::from([
        ("stream_id".to_owned(), s(stream_id)),
        ("version".to_owned(), n(0)),
        (
            "pending_bucket".to_owned(),
            s(UNPUBLISHED_BUCKETS.to_string()),
        ),
    ]);
    for name in [
        "head_version",
        "published_version",
        "pending_since",
        "updated_at",
        "publish_failures",
    ] {
        head.insert(name.to_owned(), widest.clone());
    }
    crate::limits::item_bytes(&head)
}

/// Snapshots live in the events table under the stream's partition key, at the negative of
/// their version (`version = -v`): no event query (versions above 0), scan (filtered on
/// `version > 0`) or index (snapshot items have none of their attributes) ever sees them, and
/// the latest at or below `v` is the first item of `version BETWEEN -v AND -1`.
#[async_trait]
impl crate::snapshot::SnapshotStore for DynamoEventStore {
    async fn save_snapshot(&self, snapshot: &crate::snapshot::Snapshot) -> Result<(), StoreError> {
        let key = -i64::try_from(snapshot.version).map_err(StoreError::backend)?;
        let format = |at: OffsetDateTime| {
            at.format(&time::format_description::well_known::Rfc3339)
                .map_err(StoreError::corrupt_by("a snapshot time does not format"))
        };
        let state = serde_json::to_string(&snapshot.state)
            .map_err(StoreError::corrupt_by("a snapshot state does not encode"))?;
        self.client
            .put_item()
            .table_name(&self.tables.events)
            .item("stream_id", s(&snapshot.stream_id))
            .item("version", n(key))
            .item("snapshot_of", n(snapshot.version))
            .item("recorded_at", s(format(snapshot.recorded_at)?))
            .item("schema_version", n(snapshot.schema_version))
            .item("state", s(state))
            .item("taken_at", s(format(snapshot.taken_at)?))
            .send()
            .await
            .map_err(|e| StoreError::backend(e.into_service_error()))?;
        Ok(())
    }

    async fn latest_snapshot(
        &self,
        stream_id: &str,
        at_or_below: u64,
    ) -> Result<Option<crate::snapshot::Snapshot>, StoreError> {
        if at_or_below == 0 {
            return Ok(None);
        }
        let lowest = -i64::try_from(at_or_below).unwrap_or(i64::MAX);
        let output = self
            .client
            .query()
            .table_name(&self.tables.events)
            .key_condition_expression("stream_id = :s AND version BETWEEN :lo AND :hi")
            .expression_attribute_values(":s", s(stream_id))
            .expression_attribute_values(":lo", n(lowest))
            .expression_attribute_values(":hi", n(-1))
            .scan_index_forward(true)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::backend(e.into_service_error()))?;
        let Some(item) = output.items().first() else {
            return Ok(None);
        };
        Ok(Some(crate::snapshot::Snapshot {
            stream_id: stream_id.to_owned(),
            version: item.number("snapshot_of")?,
            recorded_at: item.timestamp("recorded_at")?,
            schema_version: item.number("schema_version")?,
            state: item.json("state")?,
            taken_at: item.timestamp("taken_at")?,
        }))
    }
}
