//! Table definitions of the event store, created idempotently by `quotes bootstrap` and tests.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use crate::error::StoreError;

/// Sparse index of heads with unpublished events, swept by the relay.
pub const UNPUBLISHED_INDEX: &str = "unpublished";
/// Sparse index of events by customer.
pub const BY_CUSTOMER_INDEX: &str = "by-customer";
/// Partitions of the `unpublished` index, so its writes spread over several keys.
pub const UNPUBLISHED_BUCKETS: u64 = 8;

/// Names of the event store's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Events and stream heads (`EVENTS_TABLE`, default `quote-events`).
    pub events: String,
    /// Idempotency records (`IDEMPOTENCY_TABLE`, default `quote-idempotency`).
    pub idempotency: String,
}

impl Default for TableNames {
    fn default() -> Self {
        Self {
            events: "quote-events".to_owned(),
            idempotency: "quote-idempotency".to_owned(),
        }
    }
}

/// Whether `create_tables` made a table or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The table was created.
    Created,
    /// The table existed and was left as it is.
    Existed,
}

fn attribute(name: &str, kind: ScalarAttributeType) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .map_err(StoreError::backend)
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(StoreError::backend)
}

fn index(name: &str, hash: &str, range: &str) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(range, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(StoreError::backend)
}

async fn table_exists(client: &Client, name: &str) -> Result<bool, StoreError> {
    match client.describe_table().table_name(name).send().await {
        Ok(_) => Ok(true),
        Err(err) => {
            let err = err.into_service_error();
            if err.is_resource_not_found_exception() {
                Ok(false)
            } else {
                Err(StoreError::backend(err))
            }
        }
    }
}

/// Waits until a table is ACTIVE (DynamoDB creates tables asynchronously).
pub async fn wait_active(client: &Client, name: &str) -> Result<(), StoreError> {
    for _ in 0..120 {
        let status = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| StoreError::backend(e.into_service_error()))?
            .table
            .and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(StoreError::Backend(
        format!("table {name} did not become ACTIVE within 60 s").into(),
    ))
}

/// Creates the events and idempotency tables unless they exist (on-demand billing).
pub async fn create_tables(
    client: &Client,
    names: &TableNames,
) -> Result<Vec<(String, Created)>, StoreError> {
    let mut report = Vec::new();
    if table_exists(client, &names.events).await? {
        report.push((names.events.clone(), Created::Existed));
    } else {
        let result = client
            .create_table()
            .table_name(&names.events)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("stream_id", ScalarAttributeType::S)?)
            .attribute_definitions(attribute("version", ScalarAttributeType::N)?)
            .attribute_definitions(attribute("customer_id", ScalarAttributeType::S)?)
            .attribute_definitions(attribute("recorded_at", ScalarAttributeType::S)?)
            .attribute_definitions(attribute("pending_bucket", ScalarAttributeType::S)?)
            .attribute_definitions(attribute("pending_since", ScalarAttributeType::N)?)
            .key_schema(key("stream_id", KeyType::Hash)?)
            .key_schema(key("version", KeyType::Range)?)
            .global_secondary_indexes(index(BY_CUSTOMER_INDEX, "customer_id", "recorded_at")?)
            .global_secondary_indexes(index(UNPUBLISHED_INDEX, "pending_bucket", "pending_since")?)
            .send()
            .await;
        report.push((names.events.clone(), created_or_raced(result)?));
    }
    wait_active(client, &names.events).await?;

    if table_exists(client, &names.idempotency).await? {
        report.push((names.idempotency.clone(), Created::Existed));
    } else {
        let result = client
            .create_table()
            .table_name(&names.idempotency)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("idempotency_key", ScalarAttributeType::S)?)
            .key_schema(key("idempotency_key", KeyType::Hash)?)
            .send()
            .await;
        let created = created_or_raced(result)?;
        wait_active(client, &names.idempotency).await?;
        if created == Created::Created {
            client
                .update_time_to_live()
                .table_name(&names.idempotency)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name("expires_at")
                        .enabled(true)
                        .build()
                        .map_err(StoreError::backend)?,
                )
                .send()
                .await
                .map_err(|e| StoreError::backend(e.into_service_error()))?;
        }
        report.push((names.idempotency.clone(), created));
    }
    wait_active(client, &names.idempotency).await?;
    Ok(report)
}

fn created_or_raced<T>(
    result: Result<
        T,
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::create_table::CreateTableError,
        >,
    >,
) -> Result<Created, StoreError> {
    match result {
        Ok(_) => Ok(Created::Created),
        Err(err) => {
            let err = err.into_service_error();
            if err.is_resource_in_use_exception() {
                Ok(Created::Existed)
            } else {
                Err(StoreError::backend(err))
            }
        }
    }
}
