//! Where poison records go after bounded retries, so a shard never stalls on one record.
//!
//! The DynamoDB store keeps one item per record: key `source` (`<application>#<shard id>`) +
//! `sequence_number`, with the partition key, the payload, the last error, the attempt count
//! and when it failed. Writing the same record twice overwrites the same item (idempotent).

use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use time::OffsetDateTime;

use crate::record::Record;

/// A record that could not be processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The consumer application.
    pub application: String,
    /// The shard it came from.
    pub shard_id: String,
    /// The record.
    pub record: Record,
    /// The last error.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was given up on.
    pub failed_at: OffsetDateTime,
}

/// Why a dead letter could not be stored.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter store failed: {0}")]
pub struct DeadLetterError(pub String);

/// Stores dead letters.
#[async_trait]
pub trait DeadLetterStore: Send + Sync + std::fmt::Debug {
    /// Stores one dead letter (idempotent per record).
    async fn put(&self, letter: &DeadLetter) -> Result<(), DeadLetterError>;
}

/// Dead letters in memory (embedded mode, tests).
#[derive(Debug, Default)]
pub struct InMemoryDeadLetters {
    letters: Mutex<Vec<DeadLetter>>,
}

impl InMemoryDeadLetters {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every letter stored.
    pub fn letters(&self) -> Vec<DeadLetter> {
        self.letters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl DeadLetterStore for InMemoryDeadLetters {
    async fn put(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let mut letters = self.letters.lock().unwrap_or_else(|p| p.into_inner());
        letters.retain(|l| {
            !(l.application == letter.application
                && l.shard_id == letter.shard_id
                && l.record.sequence_number == letter.record.sequence_number)
        });
        letters.push(letter.clone());
        Ok(())
    }
}

/// Dead letters in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDeadLetters {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDeadLetters {
    /// A store on `table` (see [`create_dead_letter_table`]).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Every dead letter of an application's shard (for tests and tooling).
    pub async fn list(
        &self,
        application: &str,
        shard_id: &str,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#s = :s")
            .expression_attribute_names("#s", "source")
            .expression_attribute_values(
                ":s",
                AttributeValue::S(format!("{application}#{shard_id}")),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DeadLetterError(e.into_service_error().to_string()))?;
        let get = |item: &std::collections::HashMap<String, AttributeValue>, name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        Ok(output
            .items()
            .iter()
            .map(|item| DeadLetter {
                application: application.to_owned(),
                shard_id: shard_id.to_owned(),
                record: Record {
                    sequence_number: get(item, "sequence_number"),
                    sub_sequence_number: 0,
                    partition_key: get(item, "partition_key"),
                    data: item
                        .get("data")
                        .and_then(|v| v.as_b().ok())
                        .map(|b| b.as_ref().to_vec())
                        .unwrap_or_default(),
                    approximate_arrival: None,
                },
                error: get(item, "error"),
                attempts: get(item, "attempts").parse().unwrap_or(0),
                failed_at: OffsetDateTime::parse(
                    &get(item, "failed_at"),
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            })
            .collect())
    }
}

#[async_trait]
impl DeadLetterStore for DynamoDeadLetters {
    async fn put(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let failed_at = letter
            .failed_at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| DeadLetterError(e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(
                "source",
                AttributeValue::S(format!("{}#{}", letter.application, letter.shard_id)),
            )
            .item(
                "sequence_number",
                AttributeValue::S(letter.record.sequence_number.clone()),
            )
            .item(
                "partition_key",
                AttributeValue::S(letter.record.partition_key.clone()),
            )
            .item(
                "data",
                AttributeValue::B(Blob::new(letter.record.data.clone())),
            )
            .item("error", AttributeValue::S(letter.error.clone()))
            .item("attempts", AttributeValue::S(letter.attempts.to_string()))
            .item("failed_at", AttributeValue::S(failed_at))
            .send()
            .await
            .map_err(|e| DeadLetterError(e.into_service_error().to_string()))?;
        Ok(())
    }
}

/// Creates the dead-letter table unless it exists (on-demand billing); true when created.
pub async fn create_dead_letter_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<bool, DeadLetterError> {
    let err = |e: &dyn std::fmt::Display| DeadLetterError(e.to_string());
    if client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .is_ok()
    {
        return Ok(false);
    }
    let result = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("source")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| err(&e))?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sequence_number")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| err(&e))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("source")
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| err(&e))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sequence_number")
                .key_type(KeyType::Range)
                .build()
                .map_err(|e| err(&e))?,
        )
        .send()
        .await;
    let created = match result {
        Ok(_) => true,
        Err(e) => {
            let e = e.into_service_error();
            if e.is_resource_in_use_exception() {
                false
            } else {
                return Err(err(&e));
            }
        }
    };
    for _ in 0..120 {
        let active = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .ok()
            .and_then(|o| o.table)
            .and_then(|t| t.table_status)
            == Some(aws_sdk_dynamodb::types::TableStatus::Active);
        if active {
            return Ok(created);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    Err(DeadLetterError(format!(
        "table {table} did not become ACTIVE"
    )))
}
