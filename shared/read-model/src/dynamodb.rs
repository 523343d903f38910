//! The DynamoDB read model.
//!
//! Table `READ_MODEL_TABLE` (default `customer-quotes`): key `customer_id` (S) + `quote_id` (S),
//! attributes `version` (N, the guard), `status` (S) and `summary` (S, the JSON document); GSI
//! `by-quote` (`quote_id`) for lookups by quote id. Upserts are conditional:
//! `attribute_not_exists(quote_id) OR version < :version`.
//!
//! While a quote is pending its item also has `pending_bucket` (S, one of
//! [`PENDING_BUCKETS`] by a hash of the quote id, so the index's writes spread) and
//! `pending_since` (S, the request time, fixed-width UTC so it sorts): the sparse GSI
//! `pending` (keys only) lists exactly the pending quotes by request time, for the quote
//! deadline. A decided quote's item is written without them and leaves the index.
//!
//! Control documents ([`ReadModel::read_control`]) are items under the reserved partition
//! `#control` (no customer id contains `#`), sort key the document's name, with `body` (S) and
//! `revision` (N); they have no `pending_*` attributes and no quote id is a UUID-shaped name,
//! so no query for quotes ever returns one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;

use dynamodb_item::{AttributeError, ConditionalExt, Item, ItemExt};
use quote_runtime::item_keys::sortable_timestamp;
use time::OffsetDateTime;

use crate::model::{
    decode_token, encode_token, ControlDocument, Page, PendingQuote, QuoteSummary, ReadModel,
    ReadModelError, Upsert, PENDING,
};
use crate::routing::{OpenTable, RoutedReadModel};

/// The GSI for lookups by quote id.
pub const BY_QUOTE_INDEX: &str = "by-quote";

/// The sparse GSI of the pending quotes by request time.
pub const PENDING_INDEX: &str = "pending";

/// Partitions of the `pending` index.
pub const PENDING_BUCKETS: u64 = 8;

/// The bucket of the `pending` index a quote goes to (stable across builds).
fn pending_bucket(quote_id: &str) -> String {
    quote_runtime::item_keys::bucket(quote_id, PENDING_BUCKETS)
}

/// The read model on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoReadModel {
    client: Client,
    table: String,
}

/// The partition of the control documents.
const CONTROL_PARTITION: &str = "#control";

fn backend(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ReadModelError {
    ReadModelError::Backend(err.into())
}

/// A service error as a read-model error: a missing table is told apart (a standby table
/// deleted before it was retired is skipped, not retried forever).
fn failed<E>(table: &str, err: E) -> ReadModelError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if dynamodb_item::is_table_missing(&err) {
        ReadModelError::TableMissing {
            table: table.to_owned(),
        }
    } else {
        backend(err)
    }
}

fn corrupt(err: AttributeError) -> ReadModelError {
    ReadModelError::Corrupt {
        what: "an attribute",
        source: Some(Box::new(err)),
    }
}

fn summary_of(item: &Item) -> Result<QuoteSummary, ReadModelError> {
    item.json("summary").map_err(corrupt)
}

impl DynamoReadModel {
    /// A read model on `table` (see [`create_read_model_table`]).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The read model the routing document in `home_table` names (re-read every
    /// `routing_ttl`): what the services use, so that `quotes read-model switch` moves them
    /// without a restart.
    pub fn routed(client: Client, home_table: &str, routing_ttl: Duration) -> RoutedReadModel {
        let open: OpenTable = Arc::new(move |table: &str| -> Arc<dyn ReadModel> {
            Arc::new(DynamoReadModel::new(client.clone(), table))
        });
        RoutedReadModel::new(home_table, open, routing_ttl)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

#[async_trait]
impl ReadModel for DynamoReadModel {
    #[tracing::instrument(level = "debug", skip(self, summary), fields(quote_id = %summary.quote_id, version = summary.version))]
    async fn upsert(&self, summary: &QuoteSummary) -> Result<Upsert, ReadModelError> {
        let json = serde_json::to_string(summary).map_err(|source| ReadModelError::Corrupt {
            what: "summary does not encode",
            source: Some(Box::new(source)),
        })?;
        let mut put = self
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
            .item("summary", AttributeValue::S(json));
        if summary.status == PENDING {
            put = put
                .item(
                    "pending_bucket",
                    AttributeValue::S(pending_bucket(&summary.quote_id)),
                )
                .item(
                    "pending_since",
                    AttributeValue::S(sortable_timestamp(summary.requested_at)),
                );
        }
        let result = put
            .condition_expression("attribute_not_exists(quote_id) OR version < :version")
            .expression_attribute_values(":version", AttributeValue::N(summary.version.to_string()))
            .send()
            .await;
        match result.condition_checked() {
            Ok(Some(_)) => Ok(Upsert::Applied),
            Err(err) => Err(failed(&self.table, err.into_service_error())),
            Ok(None) => {
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
                    .and_then(|item| item.optional_number("version").ok().flatten())
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
            .map_err(|e| failed(&self.table, e.into_service_error()))?;
        output
            .items()
            .iter()
            .find(|item| {
                item.optional_string("customer_id").ok().flatten() != Some(CONTROL_PARTITION)
            })
            .map(summary_of)
            .transpose()
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

    async fn pending_before(
        &self,
        before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<PendingQuote>, ReadModelError> {
        let limit = limit.clamp(1, 1_000);
        let mut pending = Vec::new();
        for bucket in 0..PENDING_BUCKETS {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PENDING_INDEX)
                .key_condition_expression("pending_bucket = :b AND pending_since < :before")
                .expression_attribute_values(":b", AttributeValue::S(bucket.to_string()))
                .expression_attribute_values(
                    ":before",
                    AttributeValue::S(sortable_timestamp(before)),
                )
                .limit(i32::try_from(limit).unwrap_or(1_000))
                .send()
                .await
                .map_err(|e| backend(e.into_service_error()))?;
            for item in output.items() {
                let text = |name: &str| item.string(name).map(str::to_owned).map_err(corrupt);
                let requested_at = item.timestamp("pending_since").map_err(corrupt)?;
                pending.push(PendingQuote {
                    customer_id: text("customer_id")?,
                    quote_id: text("quote_id")?,
                    requested_at,
                });
            }
        }
        pending.sort_by(|a, b| (a.requested_at, &a.quote_id).cmp(&(b.requested_at, &b.quote_id)));
        pending.truncate(limit);
        Ok(pending)
    }

    async fn read_control(&self, name: &str) -> Result<Option<ControlDocument>, ReadModelError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(
                "customer_id",
                AttributeValue::S(CONTROL_PARTITION.to_owned()),
            )
            .key("quote_id", AttributeValue::S(name.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed(&self.table, e.into_service_error()))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        Ok(Some(ControlDocument {
            body: item.string("body").map_err(corrupt)?.to_owned(),
            revision: item.number("revision").map_err(corrupt)?,
        }))
    }

    async fn write_control(
        &self,
        name: &str,
        body: &str,
        expected: Option<u64>,
    ) -> Result<u64, ReadModelError> {
        let revision = expected.unwrap_or(0) + 1;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(
                "customer_id",
                AttributeValue::S(CONTROL_PARTITION.to_owned()),
            )
            .item("quote_id", AttributeValue::S(name.to_owned()))
            .item("body", AttributeValue::S(body.to_owned()))
            .item("revision", AttributeValue::N(revision.to_string()));
        let put = match expected {
            None => put.condition_expression("attribute_not_exists(quote_id)"),
            Some(expected) => put
                .condition_expression("revision = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(expected.to_string())),
        };
        match put.send().await.condition_checked() {
            Ok(Some(_)) => Ok(revision),
            Ok(None) => Err(ReadModelError::Conflict {
                name: name.to_owned(),
            }),
            Err(err) => Err(failed(&self.table, err.into_service_error())),
        }
    }

    async fn ping(&self) -> Result<(), ReadModelError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed(&self.table, e.into_service_error()))
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

fn keys_only() -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::KeysOnly)
        .build()
}

/// Creates the read-model table unless it exists (on-demand); true when created. A table
/// created before the `pending` index existed gets it added (and waited for).
pub async fn create_read_model_table(client: &Client, table: &str) -> Result<bool, ReadModelError> {
    if let Ok(described) = client.describe_table().table_name(table).send().await {
        let has_pending = described
            .table
            .iter()
            .flat_map(|t| t.global_secondary_indexes())
            .any(|index| index.index_name() == Some(PENDING_INDEX));
        if !has_pending {
            // Building it over a large table takes a while on AWS; the deadline sweep reports
            // the index missing until it is ACTIVE, and nothing else uses it.
            add_pending_index(client, table).await?;
        }
        return Ok(false);
    }
    let by_quote = GlobalSecondaryIndex::builder()
        .index_name(BY_QUOTE_INDEX)
        .key_schema(key("quote_id", KeyType::Hash)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(backend)?;
    let pending = GlobalSecondaryIndex::builder()
        .index_name(PENDING_INDEX)
        .key_schema(key("pending_bucket", KeyType::Hash)?)
        .key_schema(key("pending_since", KeyType::Range)?)
        .projection(keys_only())
        .build()
        .map_err(backend)?;
    let created = match client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("customer_id")?)
        .attribute_definitions(attribute("quote_id")?)
        .attribute_definitions(attribute("pending_bucket")?)
        .attribute_definitions(attribute("pending_since")?)
        .key_schema(key("customer_id", KeyType::Hash)?)
        .key_schema(key("quote_id", KeyType::Range)?)
        .global_secondary_indexes(by_quote)
        .global_secondary_indexes(pending)
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
    wait_active(client, table).await?;
    Ok(created)
}

/// Adds the `pending` index to a table created without it.
async fn add_pending_index(client: &Client, table: &str) -> Result<(), ReadModelError> {
    use aws_sdk_dynamodb::types::{CreateGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate};
    tracing::info!(table, "adding the read model's `pending` index");
    let action = CreateGlobalSecondaryIndexAction::builder()
        .index_name(PENDING_INDEX)
        .key_schema(key("pending_bucket", KeyType::Hash)?)
        .key_schema(key("pending_since", KeyType::Range)?)
        .projection(keys_only())
        .build()
        .map_err(backend)?;
    client
        .update_table()
        .table_name(table)
        .attribute_definitions(attribute("pending_bucket")?)
        .attribute_definitions(attribute("pending_since")?)
        .global_secondary_index_updates(
            GlobalSecondaryIndexUpdate::builder().create(action).build(),
        )
        .send()
        .await
        .map_err(|e| backend(e.into_service_error()))?;
    Ok(())
}

/// Waits until the table and its indexes are ACTIVE (about 30 s at most).
async fn wait_active(client: &Client, table: &str) -> Result<(), ReadModelError> {
    use aws_sdk_dynamodb::types::IndexStatus;
    for _ in 0..120 {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .ok()
            .and_then(|o| o.table);
        let active = described.as_ref().is_some_and(|t| {
            t.table_status() == Some(&TableStatus::Active)
                && t.global_secondary_indexes()
                    .iter()
                    .all(|i| i.index_status().is_none_or(|s| s == &IndexStatus::Active))
        });
        if active {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    Err(backend(format!("table {table} did not become ACTIVE")))
}
