//! The manifest on DynamoDB: one table, partition key `stream`, sort key `entry`.
//!
//! | entry | attributes |
//! | --- | --- |
//! | `head#<shard>` | `shard_id`, `last_sequence`, `segments`, `records`, `fencing_token`, `parents` (list), `ended` |
//! | `segment#<shard>#<first, zero-padded>` | `key`, `first_sequence`, `last_sequence`, `records`, `bytes`, `committed_at` |
//!
//! A commit is one `TransactWriteItems`: the segment's item (`attribute_not_exists`) and the
//! head's update (`fencing_token = :token AND last_sequence = :previous`), so a segment is in
//! the manifest exactly when the head moved past it.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TableStatus, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use dynamodb_item::{n, s, AttributeError, ConditionalExt, Item, ItemExt};
use time::format_description::well_known::Rfc3339;

use crate::manifest::{Manifest, ManifestError, SegmentEntry, ShardHead};
use crate::segment::SEQUENCE_KEY_WIDTH;

/// The manifest in one DynamoDB table (see [`create_manifest_table`]).
#[derive(Debug, Clone)]
pub struct DynamoManifest {
    client: Client,
    table: String,
}

impl DynamoManifest {
    /// The manifest in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn head(&self, stream: &str, shard_id: &str) -> Result<Option<ShardHead>, ManifestError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("stream", s(stream))
            .key("entry", s(head_entry(shard_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(e.into_service_error()))?;
        output.item.as_ref().map(decode_head).transpose()
    }

    /// Why a conditional write on the shard failed, read from its head.
    async fn explain(
        &self,
        stream: &str,
        shard_id: &str,
        token: u64,
        previous_last: Option<&str>,
    ) -> ManifestError {
        match self.head(stream, shard_id).await {
            Err(err) => err,
            Ok(None) => ManifestError::Unclaimed(shard_id.to_owned()),
            Ok(Some(head)) if head.fencing_token != token => ManifestError::Fenced {
                shard_id: shard_id.to_owned(),
                current: head.fencing_token,
                ours: token,
            },
            Ok(Some(head)) if head.ended => ManifestError::Ended(shard_id.to_owned()),
            Ok(Some(head)) => ManifestError::Moved {
                shard_id: shard_id.to_owned(),
                expected: previous_last.map(str::to_owned),
                actual: head.last_sequence,
            },
        }
    }

    async fn query(&self, stream: &str, begins_with: &str) -> Result<Vec<Item>, ManifestError> {
        let mut items = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#s = :s AND begins_with(#e, :e)")
            .expression_attribute_names("#s", "stream")
            .expression_attribute_names("#e", "entry")
            .expression_attribute_values(":s", s(stream))
            .expression_attribute_values(":e", s(begins_with))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| backend(e.into_service_error()))?;
            items.extend(page.items.unwrap_or_default());
        }
        Ok(items)
    }
}

fn backend(err: impl std::error::Error + Send + Sync + 'static) -> ManifestError {
    ManifestError::Backend(Box::new(err))
}

/// `#<short>` → attribute name, for the names an expression uses (several are reserved words
/// in DynamoDB's expression language).
fn names(shorts: &[&str]) -> HashMap<String, String> {
    shorts
        .iter()
        .map(|short| {
            let attribute = match *short {
                "token" => "fencing_token",
                "shard" => "shard_id",
                "last" => "last_sequence",
                other => other,
            };
            (format!("#{short}"), attribute.to_owned())
        })
        .collect()
}

fn head_entry(shard_id: &str) -> String {
    format!("head#{shard_id}")
}

fn segment_entry(shard_id: &str, first: &str) -> String {
    format!("segment#{shard_id}#{first:0>SEQUENCE_KEY_WIDTH$}")
}

fn corrupt(what: impl Into<String>) -> ManifestError {
    ManifestError::Corrupt { what: what.into() }
}

impl From<AttributeError> for ManifestError {
    fn from(err: AttributeError) -> Self {
        corrupt(err.to_string())
    }
}

fn decode_head(item: &Item) -> Result<ShardHead, ManifestError> {
    Ok(ShardHead {
        shard_id: item.string("shard_id")?.to_owned(),
        last_sequence: item.optional_string("last_sequence")?.map(str::to_owned),
        segments: item.number("segments")?,
        records: item.number("records")?,
        fencing_token: item.number("fencing_token")?,
        parents: item
            .get("parents")
            .and_then(|v| v.as_l().ok())
            .map(|list| list.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
        ended: item
            .get("ended")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
    })
}

fn decode_segment(item: &Item) -> Result<SegmentEntry, ManifestError> {
    Ok(SegmentEntry {
        key: item.string("key")?.to_owned(),
        first_sequence: item.string("first_sequence")?.to_owned(),
        last_sequence: item.string("last_sequence")?.to_owned(),
        records: item.number("records")?,
        bytes: item.number("bytes")?,
        committed_at: item.timestamp("committed_at")?,
    })
}

#[async_trait]
impl Manifest for DynamoManifest {
    async fn claim(
        &self,
        stream: &str,
        shard_id: &str,
        fencing_token: u64,
        parents: &[String],
    ) -> Result<ShardHead, ManifestError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("stream", s(stream))
            .key("entry", s(head_entry(shard_id)))
            .update_expression(
                "SET #token = :t, #shard = :shard, #parents = if_not_exists(#parents, :parents), \
                 #segments = if_not_exists(#segments, :zero), #records = if_not_exists(#records, :zero), \
                 #ended = if_not_exists(#ended, :false)",
            )
            .condition_expression("attribute_not_exists(#token) OR #token <= :t")
            .set_expression_attribute_names(Some(names(&[
                "token", "shard", "parents", "segments", "records", "ended",
            ])))
            .expression_attribute_values(":t", n(fencing_token))
            .expression_attribute_values(":shard", s(shard_id))
            .expression_attribute_values(
                ":parents",
                AttributeValue::L(parents.iter().map(|p| s(p.as_str())).collect()),
            )
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result.condition_checked() {
            Ok(Some(output)) => decode_head(&output.attributes.unwrap_or_default()),
            Ok(None) => Err(self.explain(stream, shard_id, fencing_token, None).await),
            Err(err) => Err(backend(err.into_service_error())),
        }
    }

    async fn commit(
        &self,
        stream: &str,
        shard_id: &str,
        segment: &SegmentEntry,
        previous_last: Option<&str>,
        fencing_token: u64,
    ) -> Result<(), ManifestError> {
        let committed_at = segment.committed_at.format(&Rfc3339).map_err(backend)?;
        let put = Put::builder()
            .table_name(&self.table)
            .item("stream", s(stream))
            .item("entry", s(segment_entry(shard_id, &segment.first_sequence)))
            .item("key", s(&segment.key))
            .item("first_sequence", s(&segment.first_sequence))
            .item("last_sequence", s(&segment.last_sequence))
            .item("records", n(segment.records))
            .item("bytes", n(segment.bytes))
            .item("committed_at", s(committed_at))
            .condition_expression("attribute_not_exists(#e)")
            .expression_attribute_names("#e", "entry")
            .build()
            .map_err(backend)?;
        let position = match previous_last {
            Some(_) => "#last = :previous",
            None => "attribute_not_exists(#last)",
        };
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("stream", s(stream))
            .key("entry", s(head_entry(shard_id)))
            .update_expression("SET #last = :last ADD #segments :one, #records :records")
            .condition_expression(format!("#token = :t AND #ended = :false AND {position}"))
            .set_expression_attribute_names(Some(names(&[
                "last", "segments", "records", "token", "ended",
            ])))
            .expression_attribute_values(":last", s(&segment.last_sequence))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":records", n(segment.records))
            .expression_attribute_values(":t", n(fencing_token))
            .expression_attribute_values(":false", AttributeValue::Bool(false));
        if let Some(previous) = previous_last {
            update = update.expression_attribute_values(":previous", s(previous));
        }
        let update = update.build().map_err(backend)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if dynamodb_item::transaction_condition_failed(&err) => Err(self
                .explain(stream, shard_id, fencing_token, previous_last)
                .await),
            Err(err) => Err(backend(err.into_service_error())),
        }
    }

    async fn end_shard(
        &self,
        stream: &str,
        shard_id: &str,
        fencing_token: u64,
    ) -> Result<(), ManifestError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("stream", s(stream))
            .key("entry", s(head_entry(shard_id)))
            .update_expression("SET #ended = :true")
            .condition_expression("#token = :t")
            .set_expression_attribute_names(Some(names(&["ended", "token"])))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":t", n(fencing_token))
            .send()
            .await;
        match result.condition_checked() {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(self.explain(stream, shard_id, fencing_token, None).await),
            Err(err) => Err(backend(err.into_service_error())),
        }
    }

    async fn shards(&self, stream: &str) -> Result<Vec<ShardHead>, ManifestError> {
        self.query(stream, "head#")
            .await?
            .iter()
            .map(decode_head)
            .collect()
    }

    async fn segments(
        &self,
        stream: &str,
        shard_id: &str,
    ) -> Result<Vec<SegmentEntry>, ManifestError> {
        self.query(stream, &format!("segment#{shard_id}#"))
            .await?
            .iter()
            .map(decode_segment)
            .collect()
    }
}

/// Creates the manifest table unless it exists (on-demand billing); true when created.
pub async fn create_manifest_table(client: &Client, table: &str) -> Result<bool, ManifestError> {
    if client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .is_ok()
    {
        return Ok(false);
    }
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(backend)
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(backend)
    };
    let created = match client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("stream")?)
        .attribute_definitions(attribute("entry")?)
        .key_schema(key("stream", KeyType::Hash)?)
        .key_schema(key("entry", KeyType::Range)?)
        .send()
        .await
    {
        Ok(_) => true,
        Err(err) => {
            let err = err.into_service_error();
            if err.is_resource_in_use_exception() {
                false
            } else {
                return Err(backend(err));
            }
        }
    };
    for _ in 0..120 {
        let status = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .ok()
            .and_then(|o| o.table)
            .and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(created);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(ManifestError::Backend(
        format!("table {table} did not become ACTIVE").into(),
    ))
}
