//! The event store contract on the DynamoDB adapter, against moto's DynamoDB over HTTP.

use std::sync::Arc;

use event_store::dynamodb::{create_tables, DynamoEventStore, TableNames};

async fn fresh_store() -> Arc<DynamoEventStore> {
    let client = aws_sdk_dynamodb::Client::new(&testkit::aws_config().await);
    let tables = TableNames {
        events: testkit::unique_name("events"),
        idempotency: testkit::unique_name("idempotency"),
    };
    create_tables(&client, &tables)
        .await
        .expect("create tables");
    Arc::new(DynamoEventStore::new(client, tables))
}

event_store::event_store_contract!(fresh_store());
event_store::snapshot_store_contract!(fresh_store());
