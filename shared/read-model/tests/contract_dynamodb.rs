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
