//! The DynamoDB read model.
//!
//! Table `READ_MODEL_TABLE` (default `customer-quotes`): key `customer_id` (S) + `quote_id` (S),
//! attributes `version` (N, the guard), `status` (S) and `summary` (S, the JSON document); GSI
//! `by-quote` (`quote_id`) for lookups by quote id. Upserts are conditional:
//! `attribute_not_exists(quote_id) OR version < :version`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;

use crate::model::{
    decode_token, encode_token, Page, QuoteSummary, ReadModel, ReadModelError, Upsert,
};

/// The GSI for lookups by quote id.
pub const BY_QUOTE_INDEX: &str = "by-quote";

/// The read model on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoReadModel {
    client: Client,
    table: String,
}

fn backend(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ReadModelError {
    ReadModelError::Backend(err.into())
}

fn summary_of(item: &HashMap<String, AttributeValue>) -> Result<QuoteSummary, ReadModelError> {
    let json = item
        .get("summary")
        .and_then(|v| v.as_s().ok())
        .ok_or(ReadModelError::Corrupt {
            what: "missing summary",
            source: None,
        })?;
    serde_json::from_str(json).map_err(|source| ReadModelError::Corrupt {
        what: "summary",
        source: Some(source),
    })
}

impl DynamoReadModel {
    /// A read model on `table` (see [`create_read_model_table`]).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl ReadModel for DynamoReadModel {
    #[tracing::instrument(level = "debug", skip(self, summary), fields(quote_id = %summary.quote_id, version = summary.version))]
    async fn upsert(&self, summary: &QuoteSummary) -> Result<Upsert, ReadModelError> {
        let json = serde_json::to_string(summary).map_err(|source| ReadModelError::Corrupt {
            what: "summary does not encode",
            source: Some(source),
        })?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(
                "customer_id",
                AttributeValue::S(summary.customer_id.clone()),
            )
            .item("quote_id", AttributeValue::S(summary.quote_id.clone()))
            .item("version", AttributeValue::N(summary.version.to_string()))
            .item("status", AttributeValue::S(summary.status.clone()))
            .item("summary", AttributeValue::S(json))
            .condition_expression("attribute_not_exists(quote_id) OR version < :version")
            .expression_attribute_values(":version", AttributeValue::N(summary.version.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Upsert::Applied),
            Err(err) => {
                let err = err.into_service_error();
                if !err.is_conditional_check_failed_exception() {
                    return Err(backend(err));
                }
                let stored = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key(
                        "customer_id",
                        AttributeValue::S(summary.customer_id.clone()),
                    )
                    .key("quote_id", AttributeValue::S(summary.quote_id.clone()))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| backend(e.into_service_error()))?
                    .item
                    .and_then(|item| {
                        item.get("version")
                            .and_then(|v| v.as_n().ok())
                            .and_then(|n| n.parse().ok())
                    })
                    .unwrap_or(summary.version);
                Ok(Upsert::Stale { stored })
            }
        }
    }

    async fn get(&self, quote_id: &str) -> Result<Option<QuoteSummary>, ReadModelError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_QUOTE_INDEX)
            .key_condition_expression("quote_id = :q")
            .expression_attribute_values(":q", AttributeValue::S(quote_id.to_owned()))
            .send()
            .await
            .map_err(|e| backend(e.into_service_error()))?;
        output.items().first().map(summary_of).transpose()
    }

    async fn list_by_customer(
        &self,
        customer_id: &str,
        limit: usize,
        page_token: Option<&str>,
    ) -> Result<Page, ReadModelError> {
        let after = page_token
            .map(|t| decode_token(customer_id, t))
            .transpose()?;
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("customer_id = :c")
            .expression_attribute_values(":c", AttributeValue::S(customer_id.to_owned()))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(i32::try_from(limit.clamp(1, 100)).unwrap_or(100));
        if let Some(after) = after {
            request = request
                .exclusive_start_key("customer_id", AttributeValue::S(customer_id.to_owned()))
                .exclusive_start_key("quote_id", AttributeValue::S(after));
        }
        let output = request
            .send()
            .await
            .map_err(|e| backend(e.into_service_error()))?;
        let quotes = output
            .items()
            .iter()
            .map(summary_of)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = output
            .last_evaluated_key()
            .and_then(|key| key.get("quote_id"))
            .and_then(|v| v.as_s().ok())
            .map(|quote_id| encode_token(customer_id, quote_id));
        Ok(Page {
            quotes,
            next_page_token,
        })
    }

    async fn ping(&self) -> Result<(), ReadModelError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend(e.into_service_error()))
    }
}

fn attribute(name: &str) -> Result<AttributeDefinition, ReadModelError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(backend)
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, ReadModelError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(backend)
}

/// Creates the read-model table unless it exists (on-demand); true when created.
pub async fn create_read_model_table(client: &Client, table: &str) -> Result<bool, ReadModelError> {
    if client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .is_ok()
    {
        return Ok(false);
    }
    let index = GlobalSecondaryIndex::builder()
        .index_name(BY_QUOTE_INDEX)
        .key_schema(key("quote_id", KeyType::Hash)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(backend)?;
    let created = match client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("customer_id")?)
        .attribute_definitions(attribute("quote_id")?)
        .key_schema(key("customer_id", KeyType::Hash)?)
        .key_schema(key("quote_id", KeyType::Range)?)
        .global_secondary_indexes(index)
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
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    Err(backend(format!("table {table} did not become ACTIVE")))
}
