//! The read-model contract on moto's DynamoDB.

use std::sync::Arc;

use quote_read_model::dynamodb::{create_read_model_table, DynamoReadModel};

async fn fresh() -> Arc<DynamoReadModel> {
    let client = aws_sdk_dynamodb::Client::new(&testkit::aws_config().await);
    let table = testkit::unique_name("customer-quotes");
    create_read_model_table(&client, &table)
        .await
        .expect("table");
    Arc::new(DynamoReadModel::new(client, table))
}

quote_read_model::read_model_contract!(fresh());

/// A table created before the `pending` index existed gets it from `create_read_model_table`
/// (`quotes bootstrap`), and the deadline's query then works on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_table_gets_the_pending_index() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    use quote_read_model::dynamodb::PENDING_INDEX;
    use quote_read_model::ReadModel;

    let client = aws_sdk_dynamodb::Client::new(&testkit::aws_config().await);
    let table = testkit::unique_name("customer-quotes-old");
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute")
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    };
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("customer_id"))
        .attribute_definitions(attribute("quote_id"))
        .key_schema(key("customer_id", KeyType::Hash))
        .key_schema(key("quote_id", KeyType::Range))
        .send()
        .await
        .expect("an older table");

    let created = create_read_model_table(&client, &table)
        .await
        .expect("bootstrap");
    assert!(!created, "the table existed");
    let described = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .expect("describe");
    let indexes: Vec<&str> = described
        .table()
        .map(|t| t.global_secondary_indexes())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    assert!(indexes.contains(&PENDING_INDEX), "{indexes:?}");

    let model = DynamoReadModel::new(client, table);
    let summary = quote_read_model::contract::summary("cust-old", 1, 1);
    model.upsert(&summary).await.expect("upsert");
    let pending = model
        .pending_before(summary.requested_at + time::Duration::seconds(1), 10)
        .await
        .expect("pending");
    assert_eq!(pending.len(), 1, "{pending:?}");
}
