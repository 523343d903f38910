//! The lease table contract on the DynamoDB adapter, against moto's DynamoDB over HTTP (each case
//! gets a fresh table, scanned in small pages so `list` crosses many pages), plus the wire
//! format: the Java KCL's attribute names and types, both ways.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use kinesis_consumer::lease_table::{create_lease_table, DynamoLeaseTable};
use kinesis_consumer::{Checkpoint, Lease, LeaseTable};

/// Items per scan page in the contract run: 150 leases take ten pages.
const SCAN_PAGE_SIZE: u32 = 16;

async fn fresh_table_named() -> (Client, String) {
    let client = Client::new(&testkit::aws_config().await);
    let name = testkit::unique_name("leases");
    let created = create_lease_table(&client, &name)
        .await
        .expect("create lease table");
    assert!(created, "a fresh table name must create a table");
    assert!(
        !create_lease_table(&client, &name)
            .await
            .expect("create an existing lease table"),
        "an existing table is left as it is"
    );
    (client, name)
}

async fn fresh_table() -> Arc<DynamoLeaseTable> {
    let (client, name) = fresh_table_named().await;
    Arc::new(DynamoLeaseTable::new(client, name).with_scan_page_size(SCAN_PAGE_SIZE))
}

kinesis_consumer::lease_table_contract!(fresh_table());

async fn raw_item(
    client: &Client,
    table: &str,
    lease_key: &str,
) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .key("leaseKey", AttributeValue::S(lease_key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
        .expect("item exists")
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: &str) -> AttributeValue {
    AttributeValue::N(value.to_owned())
}

fn ss(values: &[&str]) -> AttributeValue {
    AttributeValue::Ss(values.iter().map(|v| (*v).to_owned()).collect())
}

fn sorted_names(item: &HashMap<String, AttributeValue>) -> Vec<&str> {
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_use_the_kcl_attribute_names_and_types() {
    let (client, name) = fresh_table_named().await;
    let table = DynamoLeaseTable::new(client.clone(), &name);
    let key = "shardId-000000000001";

    let mut lease = Lease::new(key, Checkpoint::TrimHorizon);
    assert!(table.create_if_absent(&lease).await.expect("create"));
    assert_eq!(
        sorted_names(&raw_item(&client, &name, key).await),
        [
            "checkpoint",
            "checkpointSubSequenceNumber",
            "leaseCounter",
            "leaseKey",
            "ownerSwitchesSinceCheckpoint"
        ],
        "no owner, no empty sets, no absent hash keys"
    );

    let key = "shardId-000000000002";
    lease.lease_key = key.to_owned();
    lease.parent_shard_ids = vec!["shardId-000000000000".to_owned()];
    lease.starting_hash_key = Some("0".to_owned());
    lease.ending_hash_key = Some("170141183460469231731687303715884105727".to_owned());
    assert!(table.create_if_absent(&lease).await.expect("create"));
    let held = table.take(&lease, "worker-a").await.expect("take");
    let held = table
        .checkpoint(&held, &Checkpoint::Sequence("123".to_owned()), 4)
        .await
        .expect("checkpoint");
    table
        .add_children(
            key,
            &[
                "shardId-000000000004".to_owned(),
                "shardId-000000000003".to_owned(),
            ],
        )
        .await
        .expect("add children");

    let item = raw_item(&client, &name, key).await;
    let expected = HashMap::from([
        ("leaseKey".to_owned(), s(key)),
        ("leaseOwner".to_owned(), s("worker-a")),
        ("leaseCounter".to_owned(), n("2")),
        ("checkpoint".to_owned(), s("123")),
        ("checkpointSubSequenceNumber".to_owned(), n("4")),
        ("ownerSwitchesSinceCheckpoint".to_owned(), n("0")),
        ("parentShardId".to_owned(), ss(&["shardId-000000000000"])),
        ("startingHashKey".to_owned(), s("0")),
        (
            "endingHashKey".to_owned(),
            s("170141183460469231731687303715884105727"),
        ),
    ]);
    for (name, value) in &expected {
        assert_eq!(item.get(name), Some(value), "attribute {name}");
    }
    match item.get("childShardIds") {
        Some(AttributeValue::Ss(children)) => {
            let mut children = children.clone();
            children.sort();
            assert_eq!(children, ["shardId-000000000003", "shardId-000000000004"]);
        }
        other => panic!("childShardIds must be a string set, got {other:?}"),
    }
    assert_eq!(item.len(), expected.len() + 1);

    table.release(&held).await.expect("release");
    let item = raw_item(&client, &name, key).await;
    assert!(
        !item.contains_key("leaseOwner"),
        "a released lease has no owner attribute"
    );
    assert_eq!(item.get("leaseCounter"), Some(&n("3")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_written_by_the_java_kcl_are_read_and_taken() {
    let (client, name) = fresh_table_named().await;
    let table = DynamoLeaseTable::new(client.clone(), &name);
    let key = "shardId-000000000005";
    // A lease as an older KCL writes it: no sub-sequence number, no switch count.
    client
        .put_item()
        .table_name(&name)
        .item("leaseKey", s(key))
        .item("leaseOwner", s("java-worker"))
        .item("leaseCounter", n("7"))
        .item(
            "checkpoint",
            s("49590338271490256608559692538361571095921575989136588898"),
        )
        .item(
            "parentShardId",
            ss(&["shardId-000000000001", "shardId-000000000000"]),
        )
        .send()
        .await
        .expect("put a KCL item");

    let seen = table.get(key).await.expect("get").expect("exists");
    assert_eq!(
        seen,
        Lease {
            lease_owner: Some("java-worker".to_owned()),
            lease_counter: 7,
            parent_shard_ids: vec![
                "shardId-000000000000".to_owned(),
                "shardId-000000000001".to_owned()
            ],
            ..Lease::new(
                key,
                Checkpoint::Sequence(
                    "49590338271490256608559692538361571095921575989136588898".to_owned()
                )
            )
        }
    );
    let taken = table.take(&seen, "rust-worker").await.expect("take");
    assert_eq!(taken.lease_owner.as_deref(), Some("rust-worker"));
    assert_eq!(
        (taken.lease_counter, taken.owner_switches_since_checkpoint),
        (8, 1)
    );
    assert_eq!(table.list().await.expect("list"), vec![taken]);
}
