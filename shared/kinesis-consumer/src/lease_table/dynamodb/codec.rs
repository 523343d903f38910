//! Conversions between [`Lease`]s and DynamoDB items with the Java KCL's attribute names and
//! types (see [`crate::lease`]).
//!
//! String sets are written sorted and without duplicates (DynamoDB rejects both empty sets and
//! duplicates in a set) and read back sorted, so a lease reads back exactly as the in-memory
//! adapter keeps it.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::lease::{Checkpoint, Lease};
use crate::lease_table::LeaseTableError;

/// A DynamoDB item.
pub(super) type Item = HashMap<String, AttributeValue>;

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
}

use attribute::*;

/// A string attribute value.
pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
pub(super) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string-set attribute value, sorted and deduplicated; `None` for an empty set, which
/// DynamoDB cannot store.
pub(super) fn string_set(values: &[String]) -> Option<AttributeValue> {
    let unique: BTreeSet<&String> = values.iter().collect();
    if unique.is_empty() {
        None
    } else {
        Some(AttributeValue::Ss(unique.into_iter().cloned().collect()))
    }
}

/// Sorts and deduplicates a set held in a `Vec`, the form every adapter returns sets in.
fn normalize_set(values: &mut Vec<String>) {
    values.sort();
    values.dedup();
}

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
    let lease_key = required_string(item, LEASE_KEY)?;
    let corrupt =
        |problem: String| LeaseTableError::Corrupt(format!("lease {lease_key}: {problem}"));
    let checkpoint = optional_string(item, CHECKPOINT)
        .map_err(&corrupt)?
        .ok_or_else(|| corrupt(format!("missing string attribute {CHECKPOINT}")))?;
    let lease_counter = optional_number(item, LEASE_COUNTER)
        .map_err(&corrupt)?
        .ok_or_else(|| corrupt(format!("missing number attribute {LEASE_COUNTER}")))?;
    Ok(Lease {
        lease_owner: optional_string(item, LEASE_OWNER).map_err(&corrupt)?,
        lease_counter,
        checkpoint: Checkpoint::parse(&checkpoint),
        // Tables written by other KCL versions may lack these two; both default to zero there.
        checkpoint_sub_sequence_number: optional_number(item, CHECKPOINT_SUB_SEQUENCE_NUMBER)
            .map_err(&corrupt)?
            .unwrap_or(0),
        owner_switches_since_checkpoint: optional_number(item, OWNER_SWITCHES_SINCE_CHECKPOINT)
            .map_err(&corrupt)?
            .unwrap_or(0),
        parent_shard_ids: optional_string_set(item, PARENT_SHARD_IDS).map_err(&corrupt)?,
        child_shard_ids: optional_string_set(item, CHILD_SHARD_IDS).map_err(&corrupt)?,
        starting_hash_key: optional_string(item, STARTING_HASH_KEY).map_err(&corrupt)?,
        ending_hash_key: optional_string(item, ENDING_HASH_KEY).map_err(&corrupt)?,
        handoff_owner: optional_string(item, HANDOFF_OWNER).map_err(&corrupt)?,
        lease_key,
    })
}

fn required_string(item: &Item, name: &str) -> Result<String, LeaseTableError> {
    optional_string(item, name)
        .map_err(LeaseTableError::Corrupt)?
        .ok_or_else(|| LeaseTableError::Corrupt(format!("missing string attribute {name}")))
}

fn optional_string(item: &Item, name: &str) -> Result<Option<String>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
        Some(other) => Err(format!("attribute {name} is not a string: {other:?}")),
    }
}

fn optional_number(item: &Item, name: &str) -> Result<Option<u64>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|e| format!("attribute {name}={value} is not a counter: {e}")),
        Some(other) => Err(format!("attribute {name} is not a number: {other:?}")),
    }
}

fn optional_string_set(item: &Item, name: &str) -> Result<Vec<String>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
        Some(AttributeValue::Ss(values)) => {
            let mut values = values.clone();
            normalize_set(&mut values);
            Ok(values)
        }
        Some(other) => Err(format!("attribute {name} is not a string set: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(item.len(), 11);
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
