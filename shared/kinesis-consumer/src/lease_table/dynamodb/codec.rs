//! Conversions between [`Lease`]s and DynamoDB items with the Java KCL's attribute names and
//! types (see [`crate::lease`]).
//!
//! String sets are written sorted and without duplicates (DynamoDB rejects both empty sets and
//! duplicates in a set) and read back sorted, so a lease reads back exactly as the in-memory
//! adapter keeps it.

use dynamodb_item::ItemExt;

use crate::lease::{Checkpoint, Lease};
use crate::lease_table::LeaseTableError;

pub(super) use dynamodb_item::{n, s, string_set, Item};

/// The KCL attribute names.
pub(super) mod attribute {
    /// `leaseKey` (S): the shard id, the table's hash key.
    pub(crate) const LEASE_KEY: &str = "leaseKey";
    /// `leaseOwner` (S): the worker holding the lease; absent when unowned.
    pub(crate) const LEASE_OWNER: &str = "leaseOwner";
    /// `leaseCounter` (N): the fencing token.
    pub(crate) const LEASE_COUNTER: &str = "leaseCounter";
    /// `checkpoint` (S).
    pub(crate) const CHECKPOINT: &str = "checkpoint";
    /// `checkpointSubSequenceNumber` (N).
    pub(crate) const CHECKPOINT_SUB_SEQUENCE_NUMBER: &str = "checkpointSubSequenceNumber";
    /// `ownerSwitchesSinceCheckpoint` (N).
    pub(crate) const OWNER_SWITCHES_SINCE_CHECKPOINT: &str = "ownerSwitchesSinceCheckpoint";
    /// `parentShardId` (SS).
    pub(crate) const PARENT_SHARD_IDS: &str = "parentShardId";
    /// `childShardIds` (SS).
    pub(crate) const CHILD_SHARD_IDS: &str = "childShardIds";
    /// `startingHashKey` (S).
    pub(crate) const STARTING_HASH_KEY: &str = "startingHashKey";
    /// `endingHashKey` (S).
    pub(crate) const ENDING_HASH_KEY: &str = "endingHashKey";
    /// `handoffOwner` (S, our extension): the worker a graceful handoff goes to.
    pub(crate) const HANDOFF_OWNER: &str = "handoffOwner";
    /// `millisBehindLatest` (N, our extension): the owner's last `MillisBehindLatest`, written
    /// with each renewal.
    pub(crate) const MILLIS_BEHIND_LATEST: &str = "millisBehindLatest";
    /// `recordsSinceCheckpoint` (N, our extension): records the owner processed since its last
    /// checkpoint, written with each renewal.
    pub(crate) const RECORDS_SINCE_CHECKPOINT: &str = "recordsSinceCheckpoint";
}

use attribute::*;

/// The item storing `lease`.
pub(super) fn lease_to_item(lease: &Lease) -> Item {
    let mut item = Item::from([
        (LEASE_KEY.to_owned(), s(&lease.lease_key)),
        (LEASE_COUNTER.to_owned(), n(lease.lease_counter)),
        (CHECKPOINT.to_owned(), s(lease.checkpoint.as_str())),
        (
            CHECKPOINT_SUB_SEQUENCE_NUMBER.to_owned(),
            n(lease.checkpoint_sub_sequence_number),
        ),
        (
            OWNER_SWITCHES_SINCE_CHECKPOINT.to_owned(),
            n(lease.owner_switches_since_checkpoint),
        ),
    ]);
    let optional_strings = [
        (LEASE_OWNER, &lease.lease_owner),
        (STARTING_HASH_KEY, &lease.starting_hash_key),
        (ENDING_HASH_KEY, &lease.ending_hash_key),
        (HANDOFF_OWNER, &lease.handoff_owner),
    ];
    for (name, value) in optional_strings {
        if let Some(value) = value {
            item.insert(name.to_owned(), s(value));
        }
    }
    if let Some(progress) = &lease.progress {
        item.insert(
            MILLIS_BEHIND_LATEST.to_owned(),
            n(progress.millis_behind_latest),
        );
        item.insert(
            RECORDS_SINCE_CHECKPOINT.to_owned(),
            n(progress.records_since_checkpoint),
        );
    }
    let sets = [
        (PARENT_SHARD_IDS, &lease.parent_shard_ids),
        (CHILD_SHARD_IDS, &lease.child_shard_ids),
    ];
    for (name, values) in sets {
        if let Some(set) = string_set(values) {
            item.insert(name.to_owned(), set);
        }
    }
    item
}

/// The lease stored in `item`.
pub(super) fn lease_from_item(item: &Item) -> Result<Lease, LeaseTableError> {
    let lease_key = item
        .string(LEASE_KEY)
        .map_err(|e| LeaseTableError::Corrupt(e.to_string()))?
        .to_owned();
    let corrupt = |e: dynamodb_item::AttributeError| {
        LeaseTableError::Corrupt(format!("lease {lease_key}: {e}"))
    };
    let text = |name| -> Result<Option<String>, LeaseTableError> {
        Ok(item
            .optional_string(name)
            .map_err(corrupt)?
            .map(str::to_owned))
    };
    Ok(Lease {
        lease_owner: text(LEASE_OWNER)?,
        lease_counter: item.number(LEASE_COUNTER).map_err(corrupt)?,
        checkpoint: Checkpoint::parse(item.string(CHECKPOINT).map_err(corrupt)?),
        // Tables written by other KCL versions may lack these two; both default to zero there.
        checkpoint_sub_sequence_number: item
            .optional_number(CHECKPOINT_SUB_SEQUENCE_NUMBER)
            .map_err(corrupt)?
            .unwrap_or(0),
        owner_switches_since_checkpoint: item
            .optional_number(OWNER_SWITCHES_SINCE_CHECKPOINT)
            .map_err(corrupt)?
            .unwrap_or(0),
        parent_shard_ids: item.string_set(PARENT_SHARD_IDS).map_err(corrupt)?,
        child_shard_ids: item.string_set(CHILD_SHARD_IDS).map_err(corrupt)?,
        starting_hash_key: text(STARTING_HASH_KEY)?,
        ending_hash_key: text(ENDING_HASH_KEY)?,
        handoff_owner: text(HANDOFF_OWNER)?,
        progress: match (
            item.optional_number(MILLIS_BEHIND_LATEST)
                .map_err(corrupt)?,
            item.optional_number(RECORDS_SINCE_CHECKPOINT)
                .map_err(corrupt)?,
        ) {
            (None, None) => None,
            (millis, records) => Some(crate::lease::ShardProgress {
                millis_behind_latest: millis.unwrap_or(0),
                records_since_checkpoint: records.unwrap_or(0),
            }),
        },
        lease_key: lease_key.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn full_lease() -> Lease {
        Lease {
            lease_key: "shardId-000000000002".to_owned(),
            lease_owner: Some("worker-a".to_owned()),
            lease_counter: 42,
            checkpoint: Checkpoint::Sequence(
                "49590338271490256608559692538361571095921575989136588898".to_owned(),
            ),
            checkpoint_sub_sequence_number: 7,
            owner_switches_since_checkpoint: 3,
            parent_shard_ids: vec![
                "shardId-000000000000".to_owned(),
                "shardId-000000000001".to_owned(),
            ],
            child_shard_ids: vec!["shardId-000000000003".to_owned()],
            starting_hash_key: Some("0".to_owned()),
            ending_hash_key: Some("340282366920938463463374607431768211455".to_owned()),
            handoff_owner: Some("worker-b".to_owned()),
            progress: Some(crate::lease::ShardProgress {
                millis_behind_latest: 1500,
                records_since_checkpoint: 12,
            }),
        }
    }

    #[test]
    fn a_full_lease_uses_the_kcl_names_and_types() {
        let item = lease_to_item(&full_lease());
        assert_eq!(item.get("leaseKey"), Some(&s("shardId-000000000002")));
        assert_eq!(item.get("leaseOwner"), Some(&s("worker-a")));
        assert_eq!(item.get("leaseCounter"), Some(&n(42)));
        assert_eq!(item.get("checkpointSubSequenceNumber"), Some(&n(7)));
        assert_eq!(item.get("ownerSwitchesSinceCheckpoint"), Some(&n(3)));
        assert_eq!(
            item.get("parentShardId"),
            Some(&AttributeValue::Ss(vec![
                "shardId-000000000000".to_owned(),
                "shardId-000000000001".to_owned()
            ]))
        );
        assert_eq!(
            item.get("childShardIds"),
            Some(&AttributeValue::Ss(vec!["shardId-000000000003".to_owned()]))
        );
        assert_eq!(item.get("startingHashKey"), Some(&s("0")));
        assert_eq!(item.get("handoffOwner"), Some(&s("worker-b")));
        assert_eq!(item.get("millisBehindLatest"), Some(&n(1500)));
        assert_eq!(item.get("recordsSinceCheckpoint"), Some(&n(12)));
        assert_eq!(item.len(), 13);
        assert_eq!(lease_from_item(&item).ok(), Some(full_lease()));
    }

    #[test]
    fn empty_sets_and_absent_options_are_omitted() {
        let lease = Lease::new("shardId-000000000000", Checkpoint::TrimHorizon);
        let item = lease_to_item(&lease);
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "checkpoint",
                "checkpointSubSequenceNumber",
                "leaseCounter",
                "leaseKey",
                "ownerSwitchesSinceCheckpoint"
            ]
        );
        assert_eq!(item.get("checkpoint"), Some(&s("TRIM_HORIZON")));
        assert_eq!(lease_from_item(&item).ok(), Some(lease));
    }

    #[test]
    fn sets_are_written_deduplicated_and_read_sorted() {
        let mut lease = Lease::new("shardId-000000000000", Checkpoint::Latest);
        lease.parent_shard_ids = vec!["b".to_owned(), "a".to_owned(), "b".to_owned()];
        let item = lease_to_item(&lease);
        assert_eq!(
            item.get("parentShardId"),
            Some(&AttributeValue::Ss(vec!["a".to_owned(), "b".to_owned()]))
        );
        let mut reversed = item.clone();
        reversed.insert(
            "parentShardId".to_owned(),
            AttributeValue::Ss(vec!["b".to_owned(), "a".to_owned()]),
        );
        let read = lease_from_item(&reversed).map(|l| l.parent_shard_ids).ok();
        assert_eq!(read, Some(vec!["a".to_owned(), "b".to_owned()]));
    }

    #[test]
    fn kcl_items_without_optional_counters_default_to_zero() {
        let item = Item::from([
            ("leaseKey".to_owned(), s("shardId-000000000000")),
            ("leaseCounter".to_owned(), n(5)),
            ("checkpoint".to_owned(), s("SHARD_END")),
        ]);
        let lease = lease_from_item(&item).ok();
        assert_eq!(
            lease.map(|l| (
                l.lease_counter,
                l.checkpoint,
                l.checkpoint_sub_sequence_number
            )),
            Some((5, Checkpoint::ShardEnd, 0))
        );
    }

    #[test]
    fn malformed_items_are_corrupt() {
        let missing_counter = Item::from([
            ("leaseKey".to_owned(), s("shardId-000000000000")),
            ("checkpoint".to_owned(), s("LATEST")),
        ]);
        let wrong_type = Item::from([
            ("leaseKey".to_owned(), s("shardId-000000000000")),
            ("leaseCounter".to_owned(), s("5")),
            ("checkpoint".to_owned(), s("LATEST")),
        ]);
        let negative = Item::from([
            ("leaseKey".to_owned(), s("shardId-000000000000")),
            (
                "leaseCounter".to_owned(),
                AttributeValue::N("-1".to_owned()),
            ),
            ("checkpoint".to_owned(), s("LATEST")),
        ]);
        for item in [missing_counter, wrong_type, negative, Item::new()] {
            assert!(
                matches!(lease_from_item(&item), Err(LeaseTableError::Corrupt(_))),
                "{item:?}"
            );
        }
    }
}
