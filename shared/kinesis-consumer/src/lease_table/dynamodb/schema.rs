//! The lease table's definition, created idempotently by [`create_lease_table`].

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;

use super::codec::attribute::LEASE_KEY;
use crate::lease_table::LeaseTableError;

/// How often [`create_lease_table`] polls the table's status while it is being created.
const ACTIVE_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long [`create_lease_table`] waits for the table to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// Creates the lease table `table_name` unless it exists (hash key `leaseKey` (S), on-demand
/// billing) and waits until it is ACTIVE. True when this call created it; an existing table is
/// left as it is.
#[tracing::instrument(skip(client))]
pub async fn create_lease_table(
    client: &Client,
    table_name: &str,
) -> Result<bool, LeaseTableError> {
    let key_attribute = AttributeDefinition::builder()
        .attribute_name(LEASE_KEY)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(LeaseTableError::backend)?;
    let hash_key = KeySchemaElement::builder()
        .attribute_name(LEASE_KEY)
        .key_type(KeyType::Hash)
        .build()
        .map_err(LeaseTableError::backend)?;
    let result = client
        .create_table()
        .table_name(table_name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(key_attribute)
        .key_schema(hash_key)
        .send()
        .await;
    let created = match result {
        Ok(_) => true,
        Err(err) => {
            let err = err.into_service_error();
            if err.is_resource_in_use_exception() {
                false
            } else {
                return Err(LeaseTableError::backend(err));
            }
        }
    };
    wait_until_active(client, table_name).await?;
    tracing::info!(created, "lease table is ready");
    Ok(created)
}

/// Waits until the table is ACTIVE (DynamoDB creates tables asynchronously).
async fn wait_until_active(client: &Client, table_name: &str) -> Result<(), LeaseTableError> {
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let status = client
            .describe_table()
            .table_name(table_name)
            .send()
            .await
            .map_err(|e| LeaseTableError::backend(e.into_service_error()))?
            .table
            .and_then(|table| table.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(LeaseTableError::Backend(
                format!(
                    "lease table {table_name} did not become ACTIVE within {} s (status {status:?})",
                    ACTIVE_TIMEOUT.as_secs()
                )
                .into(),
            ));
        }
        tokio::time::sleep(ACTIVE_POLL_INTERVAL).await;
    }
}
