//! The DynamoDB emulator must be linearizable per item, as DynamoDB is: the event store's
//! optimistic append, idempotency, the lease table's fenced writes, sweep claims and the
//! notification ledger's claims all rest on "of concurrent conditional writes to one item,
//! exactly one wins". moto's own threaded server does not hold it (two winners among 30
//! concurrent `attribute_not_exists` transactions in 1 trial of 20, measured), so the suite
//! serves moto one request at a time (`scripts/moto_server.py`), and these tests fail the run if
//! the emulator it is given lets two writers win, so a non-linearizable emulator can never pass
//! the other contract tests by luck.
//!
//! Each test runs many trials of many concurrent writers on one fresh key and counts the
//! winners; every trial must have exactly one (and a counter must lose no increment).

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use futures::future::join_all;

/// Trials per test; each races `WRITERS` requests on one key.
const TRIALS: usize = 20;
const WRITERS: usize = 30;
/// Attributes each write carries besides its key. An emulator that is not linearizable lets
/// a second writer in between its read of the item and its write; the time between the two
/// grows with the work on the item, so wide items make such an emulator fail reliably. Against
/// moto's own threaded server, with one attribute these tests passed three runs of 40 trials;
/// with 100, 2 of 20 transaction trials and 8 of 20 compare-and-set trials had more than one
/// winner (the chance that all 20 of the latter pass is about 0.6^20, 4 in 100,000).
const WIDTH: usize = 100;

/// `WIDTH` attributes `a0`, `a1`, … for an item written by `writer`.
fn padding(writer: usize) -> Vec<(String, AttributeValue)> {
    (0..WIDTH)
        .map(|i| (format!("a{i}"), s(format!("{writer}-{i}"))))
        .collect()
}

async fn client_and_table() -> (Client, String) {
    let config = testkit::aws_config().await;
    let client = Client::new(&config);
    let table = testkit::unique_name("linearizable");
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .send()
        .await
        .expect("create table");
    (client, table)
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// How many writers of one trial won; every loser must have lost on its condition
/// (`lost_by_condition`), not failed otherwise.
fn winners<T, E: std::fmt::Debug, R: std::fmt::Debug>(
    results: &[Result<T, SdkError<E, R>>],
    lost_by_condition: impl Fn(&E) -> bool,
) -> usize {
    for error in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            error.as_service_error().is_some_and(&lost_by_condition),
            "a losing writer must lose on its condition, not fail otherwise: {error:?}"
        );
    }
    results.iter().filter(|r| r.is_ok()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_conditional_transactions_on_one_key_have_one_winner() {
    let (client, table) = client_and_table().await;
    let mut bad_trials = Vec::new();
    for trial in 0..TRIALS {
        let key = format!("transact-{trial}");
        let writers = (0..WRITERS).map(|writer| {
            let put = padding(writer)
                .into_iter()
                .fold(Put::builder(), |put, (name, value)| put.item(name, value))
                .table_name(&table)
                .item("pk", s(&key))
                .item("writer", s(writer.to_string()))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .expect("put");
            client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put).build())
                .send()
        });
        let results = join_all(writers).await;
        let winners = winners(&results, |e| e.is_transaction_canceled_exception());
        if winners != 1 {
            bad_trials.push((trial, winners));
        }
    }
    assert!(
        bad_trials.is_empty(),
        "the DynamoDB emulator is not linearizable: (trial, winners) with other than one winner \
         among {WRITERS} concurrent conditional transactions: {bad_trials:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_compare_and_set_updates_have_one_winner_per_version() {
    let (client, table) = client_and_table().await;
    let sets: Vec<String> = (0..WIDTH).map(|i| format!("a{i} = :writer")).collect();
    let update = format!("SET version = :next, writer = :writer, {}", sets.join(", "));
    let mut bad_trials = Vec::new();
    for trial in 0..TRIALS {
        let key = format!("cas-{trial}");
        client
            .put_item()
            .table_name(&table)
            .item("pk", s(&key))
            .item("version", AttributeValue::N("0".into()))
            .send()
            .await
            .expect("seed item");
        // Every writer read version 0 and tries to move it to 1, as a lease renewal or an
        // optimistic append does.
        let writers = (0..WRITERS).map(|writer| {
            client
                .update_item()
                .table_name(&table)
                .key("pk", s(&key))
                .update_expression(&update)
                .condition_expression("version = :seen")
                .expression_attribute_values(":seen", AttributeValue::N("0".into()))
                .expression_attribute_values(":next", AttributeValue::N("1".into()))
                .expression_attribute_values(":writer", s(writer.to_string()))
                .send()
        });
        let results = join_all(writers).await;
        let winners = winners(&results, |e| e.is_conditional_check_failed_exception());
        if winners != 1 {
            bad_trials.push((trial, winners));
        }
    }
    assert!(
        bad_trials.is_empty(),
        "the DynamoDB emulator is not linearizable: (trial, winners) with other than one winner \
         among {WRITERS} concurrent compare-and-set updates: {bad_trials:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_lose_no_update() {
    let (client, table) = client_and_table().await;
    let key = "counter";
    let increments = TRIALS * WRITERS / 4;
    let writers = (0..increments).map(|_| {
        client
            .update_item()
            .table_name(&table)
            .key("pk", s(key))
            .update_expression("ADD hits :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
    });
    for result in join_all(writers).await {
        result.expect("increment");
    }
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", s(key))
        .consistent_read(true)
        .send()
        .await
        .expect("get counter")
        .item
        .expect("counter item");
    let hits = match item.get("hits") {
        Some(AttributeValue::N(n)) => n.parse::<usize>().expect("number"),
        other => panic!("hits is {other:?}"),
    };
    assert_eq!(
        hits,
        increments,
        "the DynamoDB emulator lost {} of {increments} concurrent increments of one item",
        increments - hits.min(increments)
    );
}
