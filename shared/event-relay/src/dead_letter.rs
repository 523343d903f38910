//! Where the relay sets aside records that can never be published, so that an operator sees them
//! and the stream's later events still go out.
//!
//! A record is set aside when the target refuses it permanently: it is over Kinesis's record
//! limit (or its partition key is), or the target refused it as invalid when sent on its own,
//! `RelayConfig::max_invalid_attempts` times in a row. Outages and throttling never set a
//! record aside. The event itself stays in the event store (it is immutable and complete there);
//! the entry records which version of which stream was not published and why.
//!
//! The DynamoDB store keeps one item per record in `RELAY_DEAD_LETTER_TABLE` (default
//! `quote-relay-dead-letters`, created by `quotes bootstrap`): key `stream_id` (S) +
//! `version` (N), with `event_id`, `event_type`, `record_bytes`, `reason` and
//! `dead_lettered_at`. Writing the same record twice (two relays) overwrites the same item.
//! `quotes relay-dead-letters` lists them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use dynamodb_item::{AttributeError, Item, ItemExt};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The default name of the relay's dead-letter table.
pub const DEFAULT_RELAY_DEAD_LETTER_TABLE: &str = "quote-relay-dead-letters";

/// A record the relay could not publish and set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayDeadLetter {
    /// The event's stream (the record's partition key).
    pub stream_id: String,
    /// The event's version; the stream's head moved past it.
    pub version: u64,
    /// The event's id.
    pub event_id: uuid::Uuid,
    /// The event's type.
    pub event_type: String,
    /// The record's size (envelope JSON and partition key).
    pub record_bytes: usize,
    /// Why it can never be published.
    pub reason: String,
    /// When it was set aside.
    pub dead_lettered_at: OffsetDateTime,
}

/// Why a dead letter could not be stored or read.
#[derive(Debug, thiserror::Error)]
#[error("relay dead-letter store failed: {context}")]
pub struct DeadLetterError {
    /// What was being done.
    context: String,
    /// The backend's error.
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl DeadLetterError {
    fn new(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Stores the records the relay set aside.
#[async_trait]
pub trait RelayDeadLetters: Send + Sync + std::fmt::Debug {
    /// Stores one entry (idempotent per stream and version).
    async fn put(&self, letter: &RelayDeadLetter) -> Result<(), DeadLetterError>;

    /// Up to `limit` entries, by stream and version.
    async fn list(&self, limit: usize) -> Result<Vec<RelayDeadLetter>, DeadLetterError>;
}

/// Dead letters in memory (embedded mode, tests).
#[derive(Debug, Default)]
pub struct InMemoryRelayDeadLetters {
    letters: Mutex<BTreeMap<(String, u64), RelayDeadLetter>>,
}

impl InMemoryRelayDeadLetters {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RelayDeadLetters for InMemoryRelayDeadLetters {
    async fn put(&self, letter: &RelayDeadLetter) -> Result<(), DeadLetterError> {
        self.letters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((letter.stream_id.clone(), letter.version), letter.clone());
        Ok(())
    }

    async fn list(&self, limit: usize) -> Result<Vec<RelayDeadLetter>, DeadLetterError> {
        Ok(self
            .letters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .take(limit)
            .cloned()
            .collect())
    }
}

/// Dead letters in a DynamoDB table (see [`create_relay_dead_letter_table`]).
#[derive(Debug, Clone)]
pub struct DynamoRelayDeadLetters {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoRelayDeadLetters {
    /// A store on `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl From<AttributeError> for DeadLetterError {
    fn from(err: AttributeError) -> Self {
        DeadLetterError::new("a relay dead letter", err)
    }
}

fn from_item(item: &Item) -> Result<RelayDeadLetter, DeadLetterError> {
    let event_id = item.string("event_id")?;
    Ok(RelayDeadLetter {
        stream_id: item.string("stream_id")?.to_owned(),
        version: item.number("version")?,
        event_id: event_id
            .parse()
            .map_err(|e| DeadLetterError::new(format!("event_id {event_id}"), e))?,
        event_type: item.string("event_type")?.to_owned(),
        record_bytes: item.number("record_bytes")?,
        reason: item.string("reason")?.to_owned(),
        dead_lettered_at: item.timestamp("dead_lettered_at")?,
    })
}

#[async_trait]
impl RelayDeadLetters for DynamoRelayDeadLetters {
    async fn put(&self, letter: &RelayDeadLetter) -> Result<(), DeadLetterError> {
        let at = letter
            .dead_lettered_at
            .format(&Rfc3339)
            .map_err(|e| DeadLetterError::new("formatting the time", e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("stream_id", AttributeValue::S(letter.stream_id.clone()))
            .item("version", AttributeValue::N(letter.version.to_string()))
            .item("event_id", AttributeValue::S(letter.event_id.to_string()))
            .item("event_type", AttributeValue::S(letter.event_type.clone()))
            .item(
                "record_bytes",
                AttributeValue::N(letter.record_bytes.to_string()),
            )
            .item("reason", AttributeValue::S(letter.reason.clone()))
            .item("dead_lettered_at", AttributeValue::S(at))
            .send()
            .await
            .map_err(|e| {
                DeadLetterError::new(format!("PutItem on {}", self.table), e.into_service_error())
            })?;
        Ok(())
    }

    /// A scan: the table holds the rare records that could never be published, read by
    /// operators (`quotes relay-dead-letters`), never by the services.
    async fn list(&self, limit: usize) -> Result<Vec<RelayDeadLetter>, DeadLetterError> {
        let mut letters = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    DeadLetterError::new(format!("Scan on {}", self.table), e.into_service_error())
                })?;
            for item in output.items() {
                letters.push(from_item(item)?);
            }
            match output.last_evaluated_key {
                Some(key) if letters.len() < limit => start = Some(key),
                _ => break,
            }
        }
        letters.sort_by(|a, b| (&a.stream_id, a.version).cmp(&(&b.stream_id, b.version)));
        letters.truncate(limit);
        Ok(letters)
    }
}

/// Creates the relay's dead-letter table unless it exists (on-demand billing) and waits until it
/// is ACTIVE; true when it was created.
pub async fn create_relay_dead_letter_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<bool, DeadLetterError> {
    type Cause = Box<dyn std::error::Error + Send + Sync>;
    let failed = |source: Cause| DeadLetterError {
        context: format!("creating table {table}"),
        source: Some(source),
    };
    let exists = match client.describe_table().table_name(table).send().await {
        Ok(_) => true,
        Err(err) => {
            let err = err.into_service_error();
            if !err.is_resource_not_found_exception() {
                return Err(DeadLetterError::new(format!("DescribeTable {table}"), err));
            }
            false
        }
    };
    let mut created = false;
    if !exists {
        let attribute = |name: &str, kind| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let result = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                attribute("stream_id", ScalarAttributeType::S).map_err(|e| failed(e.into()))?,
            )
            .attribute_definitions(
                attribute("version", ScalarAttributeType::N).map_err(|e| failed(e.into()))?,
            )
            .key_schema(key("stream_id", KeyType::Hash).map_err(|e| failed(e.into()))?)
            .key_schema(key("version", KeyType::Range).map_err(|e| failed(e.into()))?)
            .send()
            .await;
        created = match result {
            Ok(_) => true,
            Err(err) => {
                let err = err.into_service_error();
                if !err.is_resource_in_use_exception() {
                    return Err(failed(err.into()));
                }
                false
            }
        };
    }
    event_store::dynamodb::schema::wait_active(client, table)
        .await
        .map_err(|e| failed(e.into()))?;
    Ok(created)
}
