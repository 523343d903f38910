//! The DynamoDB lease table on moto's DynamoDB behind the fault proxy (`testkit::fault_proxy`),
//! with the platform's SDK policy (`quote_runtime::aws::load_sdk_config`: 6 attempts, 10 s per
//! attempt): throttled, failing, hung and dropped-after-applying `UpdateItem`s never lose an
//! acknowledged checkpoint, never let a fenced owner overwrite its successor, and leases still
//! move between workers. What the table holds is checked with a direct (fault-free) client.

use std::time::Duration;

use kinesis_consumer::lease_table::{create_lease_table, DynamoLeaseTable};
use kinesis_consumer::{Checkpoint, Lease, LeaseTable, LeaseTableError};
use testkit::fault_proxy::{AwsError, Fault, FaultProxy, Rule};

const UPDATE_ITEM: &str = "DynamoDB_20120810.UpdateItem";

/// The same lease table seen through the proxy and directly.
struct Tables {
    proxy: FaultProxy,
    faulty: DynamoLeaseTable,
    direct: DynamoLeaseTable,
}

async fn tables() -> Tables {
    let direct_client = aws_sdk_dynamodb::Client::new(&testkit::aws_config().await);
    let name = testkit::unique_name("fault-leases");
    create_lease_table(&direct_client, &name)
        .await
        .expect("lease table");
    let proxy = FaultProxy::in_front_of("AWS_ENDPOINT_URL_DYNAMODB").await;
    let platform = quote_runtime::aws::load_sdk_config().await;
    let faulty_client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&platform)
            .endpoint_url(proxy.url())
            .build(),
    );
    Tables {
        proxy,
        faulty: DynamoLeaseTable::new(faulty_client, &name),
        direct: DynamoLeaseTable::new(direct_client, &name),
    }
}

fn error(error: AwsError) -> Fault {
    Fault::Error { error }
}

fn sequence(n: u64) -> Checkpoint {
    Checkpoint::Sequence(format!("{}", 49_000_000_000u64 + n))
}

async fn held_by(table: &DynamoLeaseTable, key: &str, worker: &str) -> Lease {
    let lease = Lease::new(key, Checkpoint::TrimHorizon);
    table.create_if_absent(&lease).await.expect("create");
    table.take(&lease, worker).await.expect("take")
}

/// Half the `UpdateItem`s throttled and a fifth failing with 500: renewals and checkpoints
/// either succeed (after the SDK's retries) or fail without effect; the table always holds the
/// last acknowledged checkpoint and the counter of the last acknowledged write, and a throttle
/// never makes the owner lose its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_updates_keep_every_acknowledged_checkpoint() {
    let t = tables().await;
    let mut held = held_by(&t.faulty, "shardId-000000000000", "w1").await;
    t.proxy.add(
        Rule::new(error(AwsError::ProvisionedThroughputExceeded))
            .operation(UPDATE_ITEM)
            .rate(0.5),
    );
    t.proxy.add(
        Rule::new(error(AwsError::InternalServerError))
            .operation(UPDATE_ITEM)
            .rate(0.2),
    );
    let mut acknowledged = Checkpoint::TrimHorizon;
    let mut failed = 0;
    for n in 1..=25 {
        match t.faulty.renew(&held).await {
            Ok(renewed) => held = renewed,
            Err(LeaseTableError::Backend(_)) => failed += 1,
            Err(other) => panic!("renewal {n}: a throttle must not lose the lease: {other}"),
        }
        match t.faulty.checkpoint(&held, &sequence(n), 0).await {
            Ok(checkpointed) => {
                held = checkpointed;
                acknowledged = sequence(n);
            }
            Err(LeaseTableError::Backend(_)) => failed += 1,
            Err(other) => panic!("checkpoint {n}: a throttle must not lose the lease: {other}"),
        }
        let stored = t
            .direct
            .get(&held.lease_key)
            .await
            .expect("get")
            .expect("lease");
        assert_eq!(stored.checkpoint, acknowledged, "after write {n}");
        assert_eq!(stored.lease_counter, held.lease_counter, "after write {n}");
        assert_eq!(stored.lease_owner.as_deref(), Some("w1"));
    }
    let injected = t.proxy.stats().injected_for(UPDATE_ITEM);
    eprintln!("50 lease writes, {injected} faults injected, {failed} failed after the retries");
    assert!(injected > 0);
}

/// The answer to a checkpoint is lost after DynamoDB applied it: the SDK retries, the retry's
/// condition (the old counter) fails, and the caller is told the lease is lost. The checkpoint
/// is in the table all the same, so whoever takes the lease next resumes after it: nothing is
/// processed twice for lack of it, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_whose_answer_is_lost_is_still_in_the_table() {
    let t = tables().await;
    let held = held_by(&t.faulty, "shardId-000000000001", "w1").await;
    t.proxy.add(
        Rule::new(Fault::DropResponse)
            .operation(UPDATE_ITEM)
            .limit(1),
    );
    let outcome = t.faulty.checkpoint(&held, &sequence(7), 0).await;
    assert!(
        matches!(outcome, Err(LeaseTableError::Lost(_)) | Ok(_)),
        "{outcome:?}"
    );
    let stored = t
        .direct
        .get(&held.lease_key)
        .await
        .expect("get")
        .expect("lease");
    assert_eq!(
        stored.checkpoint,
        sequence(7),
        "the applied checkpoint stays"
    );
    assert_eq!(stored.lease_owner.as_deref(), Some("w1"));
    assert_eq!(stored.lease_counter, held.lease_counter + 1);
    // A worker that re-reads the lease takes it and resumes after the checkpoint.
    let retaken = t.faulty.take(&stored, "w1").await.expect("take again");
    assert_eq!(retaken.checkpoint, sequence(7));
}

/// A hung `UpdateItem` (connection held, no answer) costs one SDK attempt (10 s); the retry
/// renews the lease and nothing else changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_renewal_is_retried_and_leaves_the_lease_consistent() {
    let t = tables().await;
    let held = held_by(&t.faulty, "shardId-000000000002", "w1").await;
    t.proxy.add(
        Rule::new(Fault::Hang { ms: 60_000 })
            .operation(UPDATE_ITEM)
            .limit(1),
    );
    let renewed = t.faulty.renew(&held).await.expect("renewed on the retry");
    assert_eq!(renewed.lease_counter, held.lease_counter + 1);
    let stored = t
        .direct
        .get(&held.lease_key)
        .await
        .expect("get")
        .expect("lease");
    assert_eq!(stored, renewed);
    assert_eq!(t.proxy.stats().injected_for(UPDATE_ITEM), 1);
}

/// Leases move between workers under throttling: w2 takes w1's leases (each take retried until
/// it lands), and w1's late checkpoints and renewals are fenced (lost) instead of overwriting
/// w2's progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_move_under_throttling_and_the_old_owner_is_fenced() {
    let t = tables().await;
    let mut old = Vec::new();
    for shard in 0..4 {
        let held = held_by(&t.faulty, &format!("shardId-00000000001{shard}"), "w1").await;
        old.push(
            t.faulty
                .checkpoint(&held, &sequence(shard), 0)
                .await
                .expect("checkpoint"),
        );
    }
    t.proxy.add(
        Rule::new(error(AwsError::ProvisionedThroughputExceeded))
            .operation(UPDATE_ITEM)
            .rate(0.5),
    );
    t.proxy.add(
        Rule::new(error(AwsError::Throttling))
            .operation("DynamoDB_20120810.")
            .rate(0.2),
    );
    for lease in &old {
        let mut attempts = 0;
        let taken = loop {
            attempts += 1;
            let seen = t
                .faulty
                .get(&lease.lease_key)
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| lease.clone());
            match t.faulty.take(&seen, "w2").await {
                Ok(taken) => break taken,
                Err(LeaseTableError::Backend(_) | LeaseTableError::Lost(_)) if attempts < 10 => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("take {} failed {attempts} times: {e}", lease.lease_key),
            }
        };
        let taken = t
            .faulty
            .checkpoint(&taken, &sequence(100), 0)
            .await
            .or_else(|e| match e {
                LeaseTableError::Backend(_) => Ok(taken.clone()),
                other => Err(other),
            })
            .expect("w2 checkpoints or is throttled");
        assert_eq!(taken.lease_owner.as_deref(), Some("w2"));
    }
    for lease in &old {
        let late = t.faulty.checkpoint(lease, &sequence(50), 0).await;
        assert!(
            matches!(
                late,
                Err(LeaseTableError::Lost(_) | LeaseTableError::Backend(_))
            ),
            "w1's late checkpoint must be fenced: {late:?}"
        );
        let renewed = t.faulty.renew(lease).await;
        assert!(
            matches!(
                renewed,
                Err(LeaseTableError::Lost(_) | LeaseTableError::Backend(_))
            ),
            "w1's late renewal must be fenced: {renewed:?}"
        );
    }
    t.proxy.clear();
    for lease in t.direct.list().await.expect("list") {
        assert_eq!(lease.lease_owner.as_deref(), Some("w2"), "{lease:?}");
        assert_ne!(lease.checkpoint, sequence(50), "{lease:?}");
    }
    assert!(t.proxy.stats().total_injected() > 0);
}
