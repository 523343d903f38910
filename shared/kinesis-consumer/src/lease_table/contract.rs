//! The contract every lease table adapter must honour, as reusable async test cases.
//!
//! Adapters run the whole suite with
//! [`lease_table_contract!`](crate::lease_table_contract), passing an async expression that
//! builds a fresh, empty table. Beyond the trait's documentation the contract fixes what the
//! adapters share: string sets come back sorted and without duplicates, `list` is sorted by
//! key, and `add_children` does not touch the owner or the counter.

use std::sync::Arc;

use crate::lease::{Checkpoint, Lease, ShardProgress};
use crate::lease_table::{LeaseTable, LeaseTableError};

/// Generates one `#[tokio::test]` per contract case for the table built by `$make` (an async
/// expression returning `Arc<dyn LeaseTable>` or an `Arc` of an adapter).
#[macro_export]
macro_rules! lease_table_contract {
    ($make:expr) => {
        $crate::lease_table_contract!(@cases $make;
            create_if_absent_creates_once_and_keeps_the_first,
            list_returns_every_lease,
            every_attribute_round_trips,
            take_of_an_unowned_lease_sets_the_owner_and_counts_a_switch,
            take_requires_the_seen_owner_and_counter,
            racing_takes_exactly_one_wins,
            renew_increments_the_counter_and_fences,
            release_clears_the_owner_and_fences,
            checkpoint_advances_and_never_moves_backwards,
            a_lost_lease_cannot_checkpoint,
            add_children_is_an_idempotent_union,
            delete_finished_deletes_only_finished_leases,
            graceful_handoff_keeps_the_owner_working_until_it_hands_over,
            the_recipient_adopts_a_handed_over_lease_by_get_and_take,
            rewind_moves_the_checkpoint_back_and_fences_the_owner,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let table: std::sync::Arc<dyn $crate::LeaseTable> = $make.await;
                $crate::lease_table::contract::$case(table).await;
            }
        )*
    };
}

/// A shard id in the Kinesis format.
pub fn shard(number: u32) -> String {
    format!("shardId-{number:012}")
}

fn sequence(number: &str) -> Checkpoint {
    Checkpoint::Sequence(number.to_owned())
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

async fn create(table: &dyn LeaseTable, lease: &Lease) {
    assert!(
        table.create_if_absent(lease).await.expect("create"),
        "lease {} should be new",
        lease.lease_key
    );
}

async fn stored(table: &dyn LeaseTable, lease_key: &str) -> Lease {
    table
        .get(lease_key)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("lease {lease_key} should exist"))
}

/// Creates an unowned lease at `TRIM_HORIZON` and takes it for `worker`.
async fn create_and_take(table: &dyn LeaseTable, lease_key: &str, worker: &str) -> Lease {
    let lease = Lease::new(lease_key, Checkpoint::TrimHorizon);
    create(table, &lease).await;
    table.take(&lease, worker).await.expect("take")
}

fn assert_lost<T: std::fmt::Debug>(
    result: Result<T, LeaseTableError>,
    lease_key: &str,
    what: &str,
) {
    match result {
        Err(LeaseTableError::Lost(key)) => assert_eq!(key, lease_key, "{what}"),
        other => panic!("{what}: expected Lost({lease_key}), got {other:?}"),
    }
}

/// `create_if_absent` creates a lease once; a second create with other values changes nothing.
pub async fn create_if_absent_creates_once_and_keeps_the_first(table: Arc<dyn LeaseTable>) {
    let key = shard(0);
    assert!(table.get(&key).await.expect("get").is_none());
    let first = Lease::new(&key, Checkpoint::TrimHorizon);
    assert!(table.create_if_absent(&first).await.expect("create"));
    assert_eq!(stored(table.as_ref(), &key).await, first);

    let mut second = Lease::new(&key, Checkpoint::Latest);
    second.lease_owner = Some("worker-b".to_owned());
    second.lease_counter = 9;
    assert!(!table
        .create_if_absent(&second)
        .await
        .expect("second create"));
    assert_eq!(stored(table.as_ref(), &key).await, first);
    assert_eq!(table.list().await.expect("list"), vec![first]);
}

/// `list` returns every lease, sorted by key, however many there are.
pub async fn list_returns_every_lease(table: Arc<dyn LeaseTable>) {
    assert!(table.list().await.expect("list").is_empty());
    let count = 150;
    let mut expected: Vec<Lease> = (0..count)
        .map(|n| {
            let mut lease = Lease::new(shard(n), Checkpoint::Sequence(format!("{}", 1000 + n)));
            lease.lease_counter = u64::from(n);
            lease.starting_hash_key = Some(format!("{}", u64::from(n) * 1_000_000));
            lease
        })
        .collect();
    let creates = expected.chunks(25).map(|chunk| {
        let table = table.clone();
        let chunk = chunk.to_vec();
        async move {
            for lease in &chunk {
                create(table.as_ref(), lease).await;
            }
        }
    });
    futures::future::join_all(creates).await;
    expected.sort_by(|a, b| a.lease_key.cmp(&b.lease_key));
    let listed = table.list().await.expect("list");
    assert_eq!(listed.len(), count as usize);
    assert_eq!(listed, expected);
}

/// Every attribute reads back as written, including sets (sorted, deduplicated), absent sets,
/// absent owners and hash keys, large numbers, and every checkpoint sentinel.
pub async fn every_attribute_round_trips(table: Arc<dyn LeaseTable>) {
    let full = Lease {
        lease_key: shard(7),
        lease_owner: Some("worker-a".to_owned()),
        lease_counter: 4_000_000_000_123,
        checkpoint: sequence("49590338271490256608559692538361571095921575989136588898"),
        checkpoint_sub_sequence_number: 17,
        owner_switches_since_checkpoint: 3,
        parent_shard_ids: strings(&["shardId-000000000002", "shardId-000000000001"]),
        child_shard_ids: strings(&[
            "shardId-000000000009",
            "shardId-000000000008",
            "shardId-000000000009",
        ]),
        starting_hash_key: Some("0".to_owned()),
        ending_hash_key: Some("340282366920938463463374607431768211455".to_owned()),
        handoff_owner: Some("worker-b".to_owned()),
        progress: Some(ShardProgress {
            millis_behind_latest: 86_400_000,
            records_since_checkpoint: 999,
        }),
    };
    create(table.as_ref(), &full).await;
    let expected_full = Lease {
        parent_shard_ids: strings(&["shardId-000000000001", "shardId-000000000002"]),
        child_shard_ids: strings(&["shardId-000000000008", "shardId-000000000009"]),
        ..full.clone()
    };
    assert_eq!(stored(table.as_ref(), &full.lease_key).await, expected_full);

    let minimal = Lease::new(shard(8), Checkpoint::Latest);
    create(table.as_ref(), &minimal).await;
    let read = stored(table.as_ref(), &minimal.lease_key).await;
    assert_eq!(read, minimal);
    assert!(read.parent_shard_ids.is_empty() && read.child_shard_ids.is_empty());
    assert_eq!(
        (
            read.lease_owner,
            read.starting_hash_key,
            read.ending_hash_key
        ),
        (None, None, None)
    );

    let checkpoints = [
        Checkpoint::TrimHorizon,
        Checkpoint::Latest,
        Checkpoint::AtTimestamp,
        Checkpoint::ShardEnd,
        sequence("0"),
    ];
    let mut expected_list = vec![expected_full, minimal];
    for (n, checkpoint) in (100..).zip(checkpoints) {
        let mut lease = Lease::new(shard(n), checkpoint);
        lease.parent_shard_ids = strings(&["only-parent"]);
        create(table.as_ref(), &lease).await;
        assert_eq!(stored(table.as_ref(), &lease.lease_key).await, lease);
        expected_list.push(lease);
    }
    assert_eq!(table.list().await.expect("list"), expected_list);
}

/// Taking an unowned lease sets the owner, increments the counter and counts an owner switch;
/// the returned lease is what is stored.
pub async fn take_of_an_unowned_lease_sets_the_owner_and_counts_a_switch(
    table: Arc<dyn LeaseTable>,
) {
    let key = shard(1);
    let mut lease = Lease::new(&key, sequence("500"));
    lease.lease_counter = 5;
    lease.checkpoint_sub_sequence_number = 2;
    lease.parent_shard_ids = strings(&["shardId-000000000000"]);
    create(table.as_ref(), &lease).await;

    let taken = table.take(&lease, "worker-a").await.expect("take");
    assert_eq!(
        taken,
        Lease {
            lease_owner: Some("worker-a".to_owned()),
            lease_counter: 6,
            owner_switches_since_checkpoint: 1,
            ..lease.clone()
        }
    );
    assert_eq!(stored(table.as_ref(), &key).await, taken);

    // Stolen by another worker: another switch.
    let stolen = table.take(&taken, "worker-b").await.expect("steal");
    assert_eq!(stolen.lease_owner.as_deref(), Some("worker-b"));
    assert_eq!(
        (stolen.lease_counter, stolen.owner_switches_since_checkpoint),
        (7, 2)
    );
    assert_eq!(stolen.checkpoint, sequence("500"));

    // Taken again by its own owner (e.g. after a restart): no switch.
    let retaken = table.take(&stolen, "worker-b").await.expect("retake");
    assert_eq!(retaken.lease_owner.as_deref(), Some("worker-b"));
    assert_eq!(
        (
            retaken.lease_counter,
            retaken.owner_switches_since_checkpoint
        ),
        (8, 2)
    );
    assert_eq!(stored(table.as_ref(), &key).await, retaken);
}

/// `take` fails with `Lost` unless the stored owner (or its absence) and counter are the ones
/// seen; a failed take changes nothing.
pub async fn take_requires_the_seen_owner_and_counter(table: Arc<dyn LeaseTable>) {
    let key = shard(2);
    let unowned = Lease::new(&key, Checkpoint::TrimHorizon);
    create(table.as_ref(), &unowned).await;
    let held = table.take(&unowned, "worker-a").await.expect("take");

    // The unowned lease seen before worker-a took it is stale (owner and counter differ).
    assert_lost(
        table.take(&unowned, "worker-b").await,
        &key,
        "take of a stale unowned lease",
    );
    // The right owner with a stale counter.
    let stale_counter = Lease {
        lease_counter: held.lease_counter - 1,
        ..held.clone()
    };
    assert_lost(
        table.take(&stale_counter, "worker-b").await,
        &key,
        "take with a stale counter",
    );
    // The right counter with the wrong owner, or believed unowned.
    let wrong_owner = Lease {
        lease_owner: Some("worker-z".to_owned()),
        ..held.clone()
    };
    assert_lost(
        table.take(&wrong_owner, "worker-b").await,
        &key,
        "take with the wrong owner",
    );
    let believed_unowned = Lease {
        lease_owner: None,
        ..held.clone()
    };
    assert_lost(
        table.take(&believed_unowned, "worker-b").await,
        &key,
        "take of an owned lease seen as unowned",
    );
    assert_eq!(stored(table.as_ref(), &key).await, held);

    // A lease that does not exist cannot be taken.
    let absent = Lease::new(shard(99), Checkpoint::TrimHorizon);
    assert_lost(
        table.take(&absent, "worker-b").await,
        &absent.lease_key,
        "take of an absent lease",
    );
    assert!(table.get(&absent.lease_key).await.expect("get").is_none());

    // With what is stored, the take succeeds.
    let taken = table
        .take(&held, "worker-b")
        .await
        .expect("take with the current lease");
    assert_eq!(taken.lease_counter, held.lease_counter + 1);
}

/// Eight workers race to take the same lease: exactly one wins per round, the others get `Lost`,
/// and the stored lease is the winner's.
pub async fn racing_takes_exactly_one_wins(table: Arc<dyn LeaseTable>) {
    let key = shard(3);
    create(table.as_ref(), &Lease::new(&key, Checkpoint::TrimHorizon)).await;
    for round in 0..3u64 {
        let seen = stored(table.as_ref(), &key).await;
        let tasks = (0..8).map(|worker| {
            let table = table.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let owner = format!("worker-{round}-{worker}");
                (owner.clone(), table.take(&seen, &owner).await)
            })
        });
        let mut winners = Vec::new();
        for joined in futures::future::join_all(tasks).await {
            match joined.expect("task") {
                (owner, Ok(lease)) => {
                    assert_eq!(lease.lease_owner.as_deref(), Some(owner.as_str()));
                    winners.push(lease);
                }
                (_, Err(LeaseTableError::Lost(lost))) => assert_eq!(lost, key),
                (_, Err(other)) => panic!("unexpected error {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one take must win");
        let winner = &winners[0];
        assert_eq!(winner.lease_counter, round + 1);
        assert_eq!(winner.owner_switches_since_checkpoint, round + 1);
        assert_eq!(&stored(table.as_ref(), &key).await, winner);
    }
}

/// `renew` increments the counter, stores the owner's progress when it reports one, and returns
/// the stored lease; a renewal by a non-owner, with
/// a stale counter, of an unowned or of an absent lease is `Lost` and changes nothing.
pub async fn renew_increments_the_counter_and_fences(table: Arc<dyn LeaseTable>) {
    let key = shard(4);
    let held = create_and_take(table.as_ref(), &key, "worker-a").await;
    let renewed = table.renew(&held).await.expect("renew");
    assert_eq!(
        renewed,
        Lease {
            lease_counter: held.lease_counter + 1,
            ..held.clone()
        }
    );
    let renewed_again = table.renew(&renewed).await.expect("renew again");
    assert_eq!(renewed_again.lease_counter, held.lease_counter + 2);
    assert_eq!(stored(table.as_ref(), &key).await, renewed_again);

    // A renewal carries the owner's progress; one without progress keeps the last reported.
    let progress = ShardProgress {
        millis_behind_latest: 2_500,
        records_since_checkpoint: 40,
    };
    let reported = table
        .renew(&Lease {
            progress: Some(progress),
            ..renewed_again.clone()
        })
        .await
        .expect("renew with progress");
    assert_eq!(reported.progress, Some(progress));
    let renewed_again = table
        .renew(&Lease {
            progress: None,
            ..reported
        })
        .await
        .expect("renew without progress");
    assert_eq!(renewed_again.progress, Some(progress));
    assert_eq!(stored(table.as_ref(), &key).await, renewed_again);

    assert_lost(table.renew(&held).await, &key, "renew with a stale counter");
    let other_owner = Lease {
        lease_owner: Some("worker-b".to_owned()),
        ..renewed_again.clone()
    };
    assert_lost(
        table.renew(&other_owner).await,
        &key,
        "renew by a non-owner",
    );
    let unowned = Lease {
        lease_owner: None,
        ..renewed_again.clone()
    };
    assert_lost(
        table.renew(&unowned).await,
        &key,
        "renew of a lease held by nobody",
    );
    let absent = Lease {
        lease_key: shard(98),
        ..renewed_again.clone()
    };
    assert_lost(
        table.renew(&absent).await,
        &absent.lease_key,
        "renew of an absent lease",
    );
    assert!(table.get(&absent.lease_key).await.expect("get").is_none());
    assert_eq!(stored(table.as_ref(), &key).await, renewed_again);
}

/// `release` removes the owner and increments the counter; another worker can then take the
/// lease at once. A stale or foreign release is `Lost`.
pub async fn release_clears_the_owner_and_fences(table: Arc<dyn LeaseTable>) {
    let key = shard(5);
    let held = create_and_take(table.as_ref(), &key, "worker-a").await;
    let held = table
        .checkpoint(&held, &sequence("42"), 0)
        .await
        .expect("checkpoint");
    let other_owner = Lease {
        lease_owner: Some("worker-b".to_owned()),
        ..held.clone()
    };
    assert_lost(
        table.release(&other_owner).await,
        &key,
        "release by a non-owner",
    );
    let stale = Lease {
        lease_counter: held.lease_counter - 1,
        ..held.clone()
    };
    assert_lost(
        table.release(&stale).await,
        &key,
        "release with a stale counter",
    );
    assert_eq!(stored(table.as_ref(), &key).await, held);

    table.release(&held).await.expect("release");
    let released = stored(table.as_ref(), &key).await;
    assert_eq!(
        released,
        Lease {
            lease_owner: None,
            lease_counter: held.lease_counter + 1,
            ..held.clone()
        }
    );
    assert_lost(
        table.release(&held).await,
        &key,
        "second release of the same lease",
    );
    assert_lost(
        table.release(&released).await,
        &key,
        "release of an unowned lease",
    );
    assert_eq!(stored(table.as_ref(), &key).await, released);

    let taken = table
        .take(&released, "worker-b")
        .await
        .expect("take after release");
    assert_eq!(taken.lease_owner.as_deref(), Some("worker-b"));
    assert_eq!(taken.lease_counter, released.lease_counter + 1);
    assert_eq!(taken.owner_switches_since_checkpoint, 1);
    assert_eq!(taken.checkpoint, sequence("42"));
}

/// `checkpoint` records the position and sub-sequence, resets the owner switches and increments
/// the counter; it never moves backwards (sequence numbers compare numerically), accepts the
/// same position again, and accepts `SHARD_END` after any sequence number.
pub async fn checkpoint_advances_and_never_moves_backwards(table: Arc<dyn LeaseTable>) {
    let key = shard(6);
    let held = create_and_take(table.as_ref(), &key, "worker-a").await;
    assert_eq!(held.owner_switches_since_checkpoint, 1);

    let at_10 = table
        .checkpoint(&held, &sequence("10"), 0)
        .await
        .expect("checkpoint 10");
    assert_eq!(
        at_10,
        Lease {
            checkpoint: sequence("10"),
            checkpoint_sub_sequence_number: 0,
            owner_switches_since_checkpoint: 0,
            lease_counter: held.lease_counter + 1,
            ..held.clone()
        }
    );
    assert_eq!(stored(table.as_ref(), &key).await, at_10);

    match table.checkpoint(&at_10, &sequence("9"), 0).await {
        Err(LeaseTableError::Corrupt(message)) => {
            assert!(message.contains("backwards"), "{message}");
            assert!(message.contains("10") && message.contains('9'), "{message}");
        }
        other => panic!("a backwards checkpoint must be refused, got {other:?}"),
    }
    assert_eq!(
        stored(table.as_ref(), &key).await,
        at_10,
        "a refused checkpoint writes nothing"
    );
    assert!(matches!(
        table.checkpoint(&at_10, &Checkpoint::TrimHorizon, 0).await,
        Err(LeaseTableError::Corrupt(_))
    ));

    let again = table
        .checkpoint(&at_10, &sequence("10"), 3)
        .await
        .expect("same position");
    assert_eq!(
        (
            again.checkpoint.clone(),
            again.checkpoint_sub_sequence_number
        ),
        (sequence("10"), 3)
    );
    assert_eq!(again.lease_counter, at_10.lease_counter + 1);

    // "100" > "99" > "10" numerically, although "99" > "100" as strings.
    let at_99 = table
        .checkpoint(&again, &sequence("99"), 0)
        .await
        .expect("checkpoint 99");
    let at_100 = table
        .checkpoint(&at_99, &sequence("100"), 0)
        .await
        .expect("checkpoint 100");
    assert_eq!(at_100.checkpoint, sequence("100"));

    let ended = table
        .checkpoint(&at_100, &Checkpoint::ShardEnd, 0)
        .await
        .expect("shard end");
    assert!(ended.is_finished());
    assert_eq!(ended.lease_counter, at_100.lease_counter + 1);
    assert_eq!(stored(table.as_ref(), &key).await, ended);
    assert!(matches!(
        table.checkpoint(&ended, &sequence("101"), 0).await,
        Err(LeaseTableError::Corrupt(_))
    ));

    // A stolen lease's switch count is reset by the new owner's first checkpoint.
    let stolen = table.take(&ended, "worker-b").await.expect("steal");
    assert_eq!(stolen.owner_switches_since_checkpoint, 1);
    let reset = table
        .checkpoint(&stolen, &Checkpoint::ShardEnd, 0)
        .await
        .expect("checkpoint");
    assert_eq!(reset.owner_switches_since_checkpoint, 0);

    // An unowned lease cannot be checkpointed.
    let unowned = Lease::new(shard(60), Checkpoint::TrimHorizon);
    create(table.as_ref(), &unowned).await;
    assert_lost(
        table.checkpoint(&unowned, &sequence("1"), 0).await,
        &unowned.lease_key,
        "checkpoint of an unowned lease",
    );
    assert_eq!(stored(table.as_ref(), &unowned.lease_key).await, unowned);
}

/// Fencing: once another worker has taken the lease, nothing the previous owner does with its
/// copy (checkpoint, renew, release) changes the stored lease.
pub async fn a_lost_lease_cannot_checkpoint(table: Arc<dyn LeaseTable>) {
    let key = shard(7);
    let held = create_and_take(table.as_ref(), &key, "worker-a").await;
    let held = table
        .checkpoint(&held, &sequence("100"), 0)
        .await
        .expect("checkpoint");

    // worker-b sees the lease (e.g. expired) and takes it.
    let seen = stored(table.as_ref(), &key).await;
    let taken = table.take(&seen, "worker-b").await.expect("take");
    assert_eq!(taken.owner_switches_since_checkpoint, 1);

    assert_lost(
        table.checkpoint(&held, &sequence("200"), 0).await,
        &key,
        "checkpoint of a lost lease",
    );
    assert_lost(table.renew(&held).await, &key, "renew of a lost lease");
    assert_lost(table.release(&held).await, &key, "release of a lost lease");
    let after = stored(table.as_ref(), &key).await;
    assert_eq!(after, taken, "the new owner's lease is untouched");
    assert_eq!(after.checkpoint, sequence("100"));

    let by_new_owner = table
        .checkpoint(&taken, &sequence("150"), 1)
        .await
        .expect("new owner checkpoints");
    assert_eq!(by_new_owner.lease_owner.as_deref(), Some("worker-b"));
    assert_eq!(
        stored(table.as_ref(), &key).await.checkpoint,
        sequence("150")
    );
}

/// `add_children` is a set union: idempotent, order-insensitive, leaving the owner and counter
/// alone (the holder keeps its lease); adding to an absent lease is `Lost`.
pub async fn add_children_is_an_idempotent_union(table: Arc<dyn LeaseTable>) {
    let key = shard(8);
    let held = create_and_take(table.as_ref(), &key, "worker-a").await;

    table
        .add_children(&key, &strings(&["shard-b", "shard-a"]))
        .await
        .expect("add");
    let read = stored(table.as_ref(), &key).await;
    assert_eq!(read.child_shard_ids, strings(&["shard-a", "shard-b"]));
    assert_eq!(
        (read.lease_owner.clone(), read.lease_counter),
        (held.lease_owner.clone(), held.lease_counter)
    );

    table
        .add_children(&key, &strings(&["shard-c", "shard-b", "shard-c"]))
        .await
        .expect("add more");
    table
        .add_children(&key, &strings(&["shard-a"]))
        .await
        .expect("add again");
    table.add_children(&key, &[]).await.expect("add nothing");
    let read = stored(table.as_ref(), &key).await;
    assert_eq!(
        read.child_shard_ids,
        strings(&["shard-a", "shard-b", "shard-c"])
    );
    assert_eq!(
        read,
        Lease {
            child_shard_ids: read.child_shard_ids.clone(),
            ..held.clone()
        }
    );

    // The holder's copy is still current: it can checkpoint, and the children survive.
    let ended = table
        .checkpoint(&held, &Checkpoint::ShardEnd, 0)
        .await
        .expect("checkpoint");
    assert_eq!(
        ended.child_shard_ids,
        strings(&["shard-a", "shard-b", "shard-c"])
    );

    let absent = shard(97);
    assert_lost(
        table.add_children(&absent, &strings(&["shard-x"])).await,
        &absent,
        "add to an absent lease",
    );
    assert!(table.get(&absent).await.expect("get").is_none());
}

/// `delete_finished` deletes a lease only when its checkpoint is `SHARD_END`.
pub async fn delete_finished_deletes_only_finished_leases(table: Arc<dyn LeaseTable>) {
    let unfinished = [
        Lease::new(shard(10), Checkpoint::TrimHorizon),
        Lease::new(shard(11), Checkpoint::Latest),
        Lease::new(shard(12), Checkpoint::AtTimestamp),
        Lease::new(shard(13), sequence("12345")),
    ];
    for lease in &unfinished {
        create(table.as_ref(), lease).await;
        assert!(!table
            .delete_finished(&lease.lease_key)
            .await
            .expect("delete"));
        assert_eq!(&stored(table.as_ref(), &lease.lease_key).await, lease);
    }
    assert!(!table
        .delete_finished(&shard(96))
        .await
        .expect("delete absent"));

    let finished = Lease::new(shard(14), Checkpoint::ShardEnd);
    create(table.as_ref(), &finished).await;
    assert!(table
        .delete_finished(&finished.lease_key)
        .await
        .expect("delete"));
    assert!(table.get(&finished.lease_key).await.expect("get").is_none());
    assert!(!table
        .delete_finished(&finished.lease_key)
        .await
        .expect("delete again"));

    // A lease processed to its end by its owner is deletable while still owned.
    let held = create_and_take(table.as_ref(), &shard(15), "worker-a").await;
    let ended = table
        .checkpoint(&held, &Checkpoint::ShardEnd, 0)
        .await
        .expect("shard end");
    assert!(ended.is_finished());
    assert!(table
        .delete_finished(&ended.lease_key)
        .await
        .expect("delete owned finished"));

    assert_eq!(table.list().await.expect("list"), unfinished.to_vec());
}

/// A handoff request leaves the owner's writes valid; the owner checkpoints, then hands over;
/// only one request may be pending; take and release clear a pending request.
pub async fn graceful_handoff_keeps_the_owner_working_until_it_hands_over(
    table: Arc<dyn LeaseTable>,
) {
    let key = shard(7);
    let held = create_and_take(table.as_ref(), &key, "worker-a").await;
    let seen = stored(table.as_ref(), &key).await;

    table
        .request_handoff(&seen, "worker-b")
        .await
        .expect("request");
    let requested = stored(table.as_ref(), &key).await;
    assert_eq!(requested.handoff_owner.as_deref(), Some("worker-b"));
    assert_eq!(
        requested.lease_counter, held.lease_counter,
        "a request does not move the counter"
    );
    assert!(
        matches!(
            table.request_handoff(&seen, "worker-c").await,
            Err(LeaseTableError::Lost(_))
        ),
        "only one pending request"
    );

    // The owner keeps renewing and checkpointing, and sees the request.
    let renewed = table.renew(&held).await.expect("renew");
    assert_eq!(renewed.handoff_owner.as_deref(), Some("worker-b"));
    let checkpointed = table
        .checkpoint(&renewed, &sequence("100"), 0)
        .await
        .expect("checkpoint");
    assert_eq!(checkpointed.handoff_owner.as_deref(), Some("worker-b"));

    // A stale copy cannot hand over; the current one can.
    assert!(matches!(
        table.hand_off(&renewed).await,
        Err(LeaseTableError::Lost(_))
    ));
    table.hand_off(&checkpointed).await.expect("hand off");
    let moved = stored(table.as_ref(), &key).await;
    assert_eq!(moved.lease_owner.as_deref(), Some("worker-b"));
    assert_eq!(moved.handoff_owner, None);
    assert_eq!(moved.lease_counter, checkpointed.lease_counter + 1);
    assert_eq!(moved.checkpoint, sequence("100"));
    assert_eq!(moved.owner_switches_since_checkpoint, 1);
    assert!(matches!(
        table.renew(&checkpointed).await,
        Err(LeaseTableError::Lost(_))
    ));

    // Without a pending request there is nothing to hand over.
    assert!(matches!(
        table.hand_off(&moved).await,
        Err(LeaseTableError::Lost(_))
    ));

    // Release and take clear a pending request.
    table
        .request_handoff(&moved, "worker-c")
        .await
        .expect("request");
    let with_request = stored(table.as_ref(), &key).await;
    table.release(&with_request).await.expect("release");
    let released = stored(table.as_ref(), &key).await;
    assert_eq!(
        (released.lease_owner.clone(), released.handoff_owner.clone()),
        (None, None)
    );
    let taken = table.take(&released, "worker-d").await.expect("take");
    table
        .request_handoff(&taken, "worker-e")
        .await
        .expect("request");
    let again = stored(table.as_ref(), &key).await;
    let retaken = table.take(&again, "worker-f").await.expect("take");
    assert_eq!(retaken.handoff_owner, None);
}

/// The recipient of a graceful steal reads the lease it asked for (`get`, consistent) until it
/// shows as handed to it, then adopts it with a take conditional on the counter read, which moves
/// the counter at once (third workers see it alive) without counting another owner switch.
pub async fn the_recipient_adopts_a_handed_over_lease_by_get_and_take(table: Arc<dyn LeaseTable>) {
    let key = shard(8);
    let held = create_and_take(table.as_ref(), &key, "worker-a").await;
    let seen = table.get(&key).await.expect("get").expect("present");
    table
        .request_handoff(&seen, "worker-b")
        .await
        .expect("request");

    // Before the owner hands over, the read shows the request pending.
    let waiting = table.get(&key).await.expect("get").expect("present");
    assert_eq!(waiting.lease_owner.as_deref(), Some("worker-a"));
    assert_eq!(waiting.handoff_owner.as_deref(), Some("worker-b"));

    let renewed = table.renew(&held).await.expect("renew");
    table.hand_off(&renewed).await.expect("hand off");
    let handed = table.get(&key).await.expect("get").expect("present");
    assert_eq!(handed.lease_owner.as_deref(), Some("worker-b"));
    assert_eq!(handed.handoff_owner, None);
    assert_eq!(handed.lease_counter, renewed.lease_counter + 1);

    // A take on a stale read fails; on the current one it moves the counter, same owner.
    assert_lost(
        table.take(&waiting, "worker-b").await.map(|_| ()),
        &key,
        "stale adopt",
    );
    let adopted = table.take(&handed, "worker-b").await.expect("adopt");
    assert_eq!(adopted.lease_owner.as_deref(), Some("worker-b"));
    assert_eq!(adopted.lease_counter, handed.lease_counter + 1);
    assert_eq!(
        adopted.owner_switches_since_checkpoint, handed.owner_switches_since_checkpoint,
        "adopting its own lease is not another owner switch"
    );
    assert_eq!(stored(table.as_ref(), &key).await, adopted);
    // The old owner is fenced out.
    assert!(matches!(
        table.renew(&renewed).await,
        Err(LeaseTableError::Lost(_))
    ));
}

/// `rewind` moves the checkpoint backwards (to a sentinel, a timestamp or an earlier sequence
/// number), removes the owner and any pending handoff and increments the counter: the owner
/// can neither renew nor checkpoint after it; it requires the counter it was given.
pub async fn rewind_moves_the_checkpoint_back_and_fences_the_owner(table: Arc<dyn LeaseTable>) {
    let key = shard(31);
    let held = create_and_take(table.as_ref(), &key, "worker-a").await;
    let held = table
        .checkpoint(&held, &sequence("900"), 3)
        .await
        .expect("checkpoint");
    table
        .request_handoff(&held, "worker-b")
        .await
        .expect("handoff request");
    let seen = stored(table.as_ref(), &key).await;
    let stale = Lease {
        lease_counter: seen.lease_counter - 1,
        ..seen.clone()
    };
    assert_lost(
        table.rewind(&stale, &Checkpoint::TrimHorizon).await,
        &key,
        "rewind with a stale counter",
    );

    let at = time::OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("instant");
    for to in [
        Checkpoint::AtTime(at),
        sequence("12"),
        Checkpoint::TrimHorizon,
    ] {
        let seen = stored(table.as_ref(), &key).await;
        let rewound = table.rewind(&seen, &to).await.expect("rewind");
        assert_eq!(
            rewound,
            Lease {
                lease_owner: None,
                handoff_owner: None,
                checkpoint: to.clone(),
                checkpoint_sub_sequence_number: 0,
                lease_counter: seen.lease_counter + 1,
                ..seen.clone()
            }
        );
        assert_eq!(
            stored(table.as_ref(), &key).await,
            rewound,
            "stored as returned"
        );
    }
    // The owner from before the rewind is fenced.
    assert_lost(table.renew(&held).await, &key, "renewal after a rewind");
    assert_lost(
        table.checkpoint(&held, &sequence("901"), 0).await,
        &key,
        "checkpoint after a rewind",
    );
    // The next owner starts from the rewound position.
    let rewound = stored(table.as_ref(), &key).await;
    let taken = table.take(&rewound, "worker-c").await.expect("take");
    assert_eq!(taken.checkpoint, Checkpoint::TrimHorizon);
}
