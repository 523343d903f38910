//! Where poison records go after bounded retries, so a shard never stalls on one record, and
//! the records of the same partition key that must wait behind them.
//!
//! A record is dead-lettered when it failed permanently (see [`crate::ProcessorError`]); every
//! later record of the same partition key (the same quote) is set aside too, as "blocked
//! behind" the first, so the key's records never overtake each other and a redrive can replay
//! them in order. Which keys are blocked is read from the store itself
//! ([`DeadLetterStore::first_for_key`]), so it holds across restarts and lease moves.
//!
//! The DynamoDB store keeps one item per record: key `source` (`<application>#<shard id>`) +
//! `sequence_number`, with the partition key, the payload, the last error, the attempt count,
//! when it failed and, for a record set aside, the sequence number it waits behind. The
//! attribute `application_key` (`<application>#<partition key>`) is the hash key of the index
//! `by-key` (range key `sequence_number`) that answers "is this key blocked?".
//! Writing the same record twice overwrites the same item (idempotent).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use dynamodb_item::{Item, ItemExt};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::record::Record;

/// The index of the dead-letter table by `application_key`.
pub const KEY_INDEX: &str = "by-key";

/// How long a looked-up answer to "is this key blocked?" is reused before asking the table
/// again (a key this process dead-letters is known at once).
const KEY_ANSWER_TTL: Duration = Duration::from_secs(10);

/// Most answers remembered (expired ones are dropped when this is reached).
const MAX_KEY_ANSWERS: usize = 50_000;

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
    /// Attempts made (0 for a record set aside behind another without being tried).
    pub attempts: u32,
    /// When it was given up on.
    pub failed_at: OffsetDateTime,
    /// For a record set aside because an earlier record of its partition key was
    /// dead-lettered: that record's sequence number.
    pub blocked_behind: Option<String>,
}

/// Why a dead letter could not be stored or looked up.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter store failed")]
pub struct DeadLetterError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl DeadLetterError {
    /// Wraps the backend's error.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(err))
    }
}

/// Stores dead letters.
#[async_trait]
pub trait DeadLetterStore: Send + Sync + std::fmt::Debug {
    /// Stores one dead letter (idempotent per record).
    async fn put(&self, letter: &DeadLetter) -> Result<(), DeadLetterError>;

    /// The sequence number of the earliest dead letter of `partition_key` in `application`
    /// (any shard), if there is one: later records of that key must be set aside behind it.
    async fn first_for_key(
        &self,
        application: &str,
        partition_key: &str,
    ) -> Result<Option<String>, DeadLetterError>;

    /// Every letter of `application`, by partition key, then in sequence order (the order a
    /// redrive replays them in).
    async fn letters(&self, application: &str) -> Result<Vec<DeadLetter>, DeadLetterError>;

    /// Deletes one letter (no error when it is already gone). Workers of the application stop
    /// setting its key's records aside once the key has no letter left and their cached answer
    /// expires (10 s).
    async fn remove(&self, letter: &DeadLetter) -> Result<(), DeadLetterError>;
}

/// Sorts letters by partition key, then sequence number.
fn in_replay_order(mut letters: Vec<DeadLetter>) -> Vec<DeadLetter> {
    letters.sort_by(|a, b| {
        a.record
            .partition_key
            .cmp(&b.record.partition_key)
            .then_with(|| {
                crate::lease::compare_sequence_numbers(
                    &a.record.sequence_number,
                    &b.record.sequence_number,
                )
            })
    });
    letters
}

/// The `application_key` attribute of a letter: `<application>#<partition key>` (application
/// names hold no `#`, so the split is unambiguous).
fn application_key(application: &str, partition_key: &str) -> String {
    format!("{application}#{partition_key}")
}

/// The earlier of two sequence numbers.
fn earliest(a: Option<String>, b: &str) -> String {
    match a {
        Some(a) if crate::lease::compare_sequence_numbers(&a, b).is_le() => a,
        _ => b.to_owned(),
    }
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

    async fn first_for_key(
        &self,
        application: &str,
        partition_key: &str,
    ) -> Result<Option<String>, DeadLetterError> {
        let letters = self.letters.lock().unwrap_or_else(|p| p.into_inner());
        Ok(letters
            .iter()
            .filter(|l| l.application == application && l.record.partition_key == partition_key)
            .fold(None, |first, l| {
                Some(earliest(first, &l.record.sequence_number))
            }))
    }

    async fn letters(&self, application: &str) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let letters = self.letters.lock().unwrap_or_else(|p| p.into_inner());
        Ok(in_replay_order(
            letters
                .iter()
                .filter(|l| l.application == application)
                .cloned()
                .collect(),
        ))
    }

    async fn remove(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let mut letters = self.letters.lock().unwrap_or_else(|p| p.into_inner());
        letters.retain(|l| {
            !(l.application == letter.application
                && l.shard_id == letter.shard_id
                && l.record.sequence_number == letter.record.sequence_number)
        });
        Ok(())
    }
}

/// Answers to "is this key blocked?" remembered for [`KEY_ANSWER_TTL`]: a shard asks for each
/// key it meets, and most keys are never blocked.
#[derive(Debug, Default)]
struct KeyAnswers {
    answers: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

impl KeyAnswers {
    fn get(&self, key: &str) -> Option<Option<String>> {
        let answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        answers
            .get(key)
            .filter(|(_, at)| at.elapsed() < KEY_ANSWER_TTL)
            .map(|(first, _)| first.clone())
    }

    fn remember(&self, key: String, first: Option<String>) {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        if answers.len() >= MAX_KEY_ANSWERS {
            answers.retain(|_, (_, at)| at.elapsed() < KEY_ANSWER_TTL);
            if answers.len() >= MAX_KEY_ANSWERS {
                answers.clear();
            }
        }
        answers.insert(key, (first, Instant::now()));
    }

    /// The answer for `key` is stale (a letter of it was removed).
    fn forget(&self, key: &str) {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        answers.remove(key);
    }

    /// A letter of `key` was just written: the key is blocked behind the earliest one.
    fn blocked(&self, key: String, sequence_number: &str) {
        let known = self.get(&key).flatten();
        self.remember(key, Some(earliest(known, sequence_number)));
    }
}

/// Dead letters in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDeadLetters {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Recent answers of [`DeadLetterStore::first_for_key`] (shared by clones).
    key_answers: std::sync::Arc<KeyAnswers>,
}

impl DynamoDeadLetters {
    /// A store on `table` (see [`create_dead_letter_table`]).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            key_answers: std::sync::Arc::default(),
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
            .map_err(|e| DeadLetterError::backend(e.into_service_error()))?;
        output
            .items()
            .iter()
            .map(|item| letter_from_item(application, shard_id, item))
            .collect()
    }

    /// Every item of the table whose `source` starts with `<application>#`, page by page.
    async fn scan_application(
        &self,
        application: &str,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let prefix = format!("{application}#");
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(#s, :prefix)")
            .expression_attribute_names("#s", "source")
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.clone()))
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut letters = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| DeadLetterError::backend(e.into_service_error()))?;
            for item in page.items() {
                let source = item
                    .get("source")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    .unwrap_or_default();
                if let Some(shard_id) = source.strip_prefix(&prefix) {
                    letters.push(letter_from_item(application, shard_id, item)?);
                }
            }
        }
        Ok(letters)
    }
}

/// A letter from its DynamoDB item.
fn letter_from_item(
    application: &str,
    shard_id: &str,
    item: &Item,
) -> Result<DeadLetter, DeadLetterError> {
    let data = match item.get("data") {
        Some(AttributeValue::B(blob)) => blob.as_ref().to_vec(),
        _ => Vec::new(),
    };
    Ok(DeadLetter {
        application: application.to_owned(),
        shard_id: shard_id.to_owned(),
        record: Record {
            sequence_number: item
                .string("sequence_number")
                .map_err(DeadLetterError::backend)?
                .to_owned(),
            sub_sequence_number: 0,
            partition_key: item
                .string("partition_key")
                .map_err(DeadLetterError::backend)?
                .to_owned(),
            data,
            approximate_arrival: None,
        },
        error: item
            .string("error")
            .map_err(DeadLetterError::backend)?
            .to_owned(),
        // Written as a string (S) by every version.
        attempts: item
            .string("attempts")
            .map_err(DeadLetterError::backend)?
            .parse()
            .unwrap_or(0),
        failed_at: item
            .timestamp("failed_at")
            .map_err(DeadLetterError::backend)?,
        blocked_behind: item
            .optional_string("blocked_behind")
            .map_err(DeadLetterError::backend)?
            .map(str::to_owned),
    })
}

#[async_trait]
impl DeadLetterStore for DynamoDeadLetters {
    async fn put(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let failed_at = letter
            .failed_at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(DeadLetterError::backend)?;
        let request = self
            .client
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
            .item(
                "application_key",
                AttributeValue::S(application_key(
                    &letter.application,
                    &letter.record.partition_key,
                )),
            );
        let request = match &letter.blocked_behind {
            Some(behind) => request.item("blocked_behind", AttributeValue::S(behind.clone())),
            None => request,
        };
        request
            .send()
            .await
            .map_err(|e| DeadLetterError::backend(e.into_service_error()))?;
        self.key_answers.blocked(
            application_key(&letter.application, &letter.record.partition_key),
            &letter.record.sequence_number,
        );
        Ok(())
    }

    async fn first_for_key(
        &self,
        application: &str,
        partition_key: &str,
    ) -> Result<Option<String>, DeadLetterError> {
        let key = application_key(application, partition_key);
        if let Some(known) = self.key_answers.get(&key) {
            return Ok(known);
        }
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(KEY_INDEX)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", "application_key")
            .expression_attribute_values(":k", AttributeValue::S(key.clone()))
            .scan_index_forward(true)
            .limit(1)
            .send()
            .await
            .map_err(|e| DeadLetterError::backend(e.into_service_error()))?;
        let first = output
            .items()
            .first()
            .and_then(|item| item.get("sequence_number"))
            .and_then(|v| v.as_s().ok())
            .cloned();
        self.key_answers.remember(key, first.clone());
        Ok(first)
    }

    async fn letters(&self, application: &str) -> Result<Vec<DeadLetter>, DeadLetterError> {
        Ok(in_replay_order(self.scan_application(application).await?))
    }

    async fn remove(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(
                "source",
                AttributeValue::S(format!("{}#{}", letter.application, letter.shard_id)),
            )
            .key(
                "sequence_number",
                AttributeValue::S(letter.record.sequence_number.clone()),
            )
            .send()
            .await
            .map_err(|e| DeadLetterError::backend(e.into_service_error()))?;
        self.key_answers.forget(&application_key(
            &letter.application,
            &letter.record.partition_key,
        ));
        Ok(())
    }
}

/// Creates the dead-letter table with its [`KEY_INDEX`] unless it exists (on-demand billing);
/// true when created. (A table created before the index existed needs it added: Terraform
/// declares it.)
pub async fn create_dead_letter_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<bool, DeadLetterError> {
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
                .map_err(DeadLetterError::backend)?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sequence_number")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(DeadLetterError::backend)?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("application_key")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(DeadLetterError::backend)?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(KEY_INDEX)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("application_key")
                        .key_type(KeyType::Hash)
                        .build()
                        .map_err(DeadLetterError::backend)?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("sequence_number")
                        .key_type(KeyType::Range)
                        .build()
                        .map_err(DeadLetterError::backend)?,
                )
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(DeadLetterError::backend)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("source")
                .key_type(KeyType::Hash)
                .build()
                .map_err(DeadLetterError::backend)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sequence_number")
                .key_type(KeyType::Range)
                .build()
                .map_err(DeadLetterError::backend)?,
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
                return Err(DeadLetterError::backend(e));
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
    Err(DeadLetterError(
        format!("table {table} did not become ACTIVE").into(),
    ))
}
