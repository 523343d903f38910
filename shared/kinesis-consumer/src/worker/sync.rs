//! Shard discovery: creates leases for shards that have none, with their lineage, so children of
//! a split or merge start only after their parents (see `coordination::plan`).
//!
//! Rules for a shard without a lease (lineage is read from the stream's shard list, which keeps
//! every shard for the retention period, so it remembers what the lease table has cleaned up):
//! - a closed shard with a **descendant of any generation** that has a lease was already
//!   processed (its lease, and maybe its children's, were cleaned up after they finished): skip
//!   it. Checking only direct children re-created a grandparent once its children's leases were
//!   cleaned up after a second reshard (issue 9 §2);
//! - with `LATEST`, other closed shards are skipped (their records are history);
//! - a shard with a *consumed* parent (one that has or gets a lease, or has a leased descendant)
//!   starts at `TRIM_HORIZON`, its own beginning, so no record written after the reshard is
//!   missed whatever the initial position; any other shard starts at the initial position.
//!
//! The Java KCL's `HierarchicalShardSyncer` decides the same way (a shard descending from a
//! leased shard starts at `TRIM_HORIZON`); its `LeaseCleanupManager` deletes a finished lease
//! only once its children's leases exist and have begun, which `coordination::cleanup` follows.

use std::collections::{HashMap, HashSet};

use crate::config::InitialPosition;
use crate::lease::{Checkpoint, Lease};
use crate::lease_table::{LeaseTable, LeaseTableError};
use crate::metrics::WorkerMetrics;
use crate::source::{RecordSource, ShardInfo, SourceError};

/// Why a shard sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Listing shards failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The lease table failed.
    #[error(transparent)]
    Table(#[from] LeaseTableError),
}

/// What one shard sync saw and did.
#[derive(Debug, Clone, Default)]
pub struct Synced {
    /// Every shard listed (open and closed, within retention).
    pub shards: Vec<ShardInfo>,
    /// Leases created.
    pub created: usize,
}

/// The stream's shards as a family tree.
struct Lineage<'a> {
    children: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> Lineage<'a> {
    fn new(shards: &'a [ShardInfo]) -> Self {
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for shard in shards {
            for parent in &shard.parent_shard_ids {
                children
                    .entry(parent.as_str())
                    .or_default()
                    .push(shard.shard_id.as_str());
            }
        }
        Self { children }
    }

    /// True when any descendant of `shard_id` (any generation) satisfies `leased`.
    fn has_descendant(&self, shard_id: &str, leased: &dyn Fn(&str) -> bool) -> bool {
        let mut stack: Vec<&str> = self.children.get(shard_id).cloned().unwrap_or_default();
        let mut visited: HashSet<&str> = HashSet::new();
        while let Some(next) = stack.pop() {
            if !visited.insert(next) {
                continue;
            }
            if leased(next) {
                return true;
            }
            if let Some(more) = self.children.get(next) {
                stack.extend(more.iter().copied());
            }
        }
        false
    }
}

/// The leases that should be created for `shards`, given the existing lease keys.
pub fn leases_to_create(
    shards: &[ShardInfo],
    existing: &HashSet<String>,
    initial: InitialPosition,
) -> Vec<Lease> {
    let lineage = Lineage::new(shards);
    let leased = |id: &str| existing.contains(id);
    let wanted: Vec<&ShardInfo> = shards
        .iter()
        .filter(|s| !existing.contains(&s.shard_id))
        .filter(|s| !(s.closed && lineage.has_descendant(&s.shard_id, &leased)))
        .filter(|s| !(s.closed && initial == InitialPosition::Latest))
        .collect();
    let consumed = |id: &String| {
        existing.contains(id)
            || wanted.iter().any(|w| &w.shard_id == id)
            || lineage.has_descendant(id, &leased)
    };
    wanted
        .iter()
        .map(|shard| {
            let checkpoint = if shard.parent_shard_ids.iter().any(consumed) {
                Checkpoint::TrimHorizon
            } else {
                initial.checkpoint()
            };
            Lease {
                parent_shard_ids: shard.parent_shard_ids.clone(),
                starting_hash_key: Some(shard.starting_hash_key.clone()),
                ending_hash_key: Some(shard.ending_hash_key.clone()),
                ..Lease::new(shard.shard_id.clone(), checkpoint)
            }
        })
        .collect()
}

/// Lists shards and creates the missing leases; returns the listing and how many were created.
pub async fn sync_shards(
    table: &dyn LeaseTable,
    source: &dyn RecordSource,
    initial: InitialPosition,
    metrics: &WorkerMetrics,
) -> Result<Synced, SyncError> {
    let shards = source.list_shards().await?;
    let existing: HashSet<String> = table
        .list()
        .await?
        .into_iter()
        .map(|l| l.lease_key)
        .collect();
    WorkerMetrics::add(&metrics.lease_table_scans, 1);
    let mut created = 0;
    for lease in leases_to_create(&shards, &existing, initial) {
        if table.create_if_absent(&lease).await? {
            created += 1;
            WorkerMetrics::add(&metrics.lease_table_writes, 1);
            tracing::info!(shard_id = %lease.lease_key, parents = ?lease.parent_shard_ids, checkpoint = %lease.checkpoint, "created lease for shard");
            for parent in &lease.parent_shard_ids {
                if existing.contains(parent) {
                    // Recorded for tooling; a missing parent lease is fine.
                    let _ = table
                        .add_children(parent, std::slice::from_ref(&lease.lease_key))
                        .await;
                }
            }
        }
    }
    Ok(Synced { shards, created })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: &[&str], closed: bool) -> ShardInfo {
        ShardInfo {
            shard_id: id.into(),
            parent_shard_ids: parents.iter().map(|p| (*p).to_owned()).collect(),
            starting_hash_key: "0".into(),
            ending_hash_key: "1".into(),
            closed,
        }
    }

    fn keys(leases: &[Lease]) -> Vec<(String, Checkpoint)> {
        leases
            .iter()
            .map(|l| (l.lease_key.clone(), l.checkpoint.clone()))
            .collect()
    }

    #[test]
    fn lineage_is_created_with_children_at_trim_horizon() {
        let shards = [
            shard("p", &[], true),
            shard("c1", &["p"], false),
            shard("c2", &["p"], false),
        ];
        let created = leases_to_create(
            &shards,
            &HashSet::new(),
            InitialPosition::AtTimestamp(time::OffsetDateTime::UNIX_EPOCH),
        );
        assert_eq!(
            keys(&created),
            vec![
                ("p".into(), Checkpoint::AtTimestamp),
                ("c1".into(), Checkpoint::TrimHorizon),
                ("c2".into(), Checkpoint::TrimHorizon)
            ]
        );
        assert_eq!(created[1].parent_shard_ids, vec!["p".to_owned()]);
    }

    #[test]
    fn processed_parents_are_not_recreated_and_latest_skips_closed_shards() {
        let shards = [shard("p", &[], true), shard("c1", &["p"], false)];
        let existing: HashSet<String> = ["c1".to_owned()].into();
        assert!(leases_to_create(&shards, &existing, InitialPosition::TrimHorizon).is_empty());
        let latest = leases_to_create(&shards, &HashSet::new(), InitialPosition::Latest);
        assert_eq!(keys(&latest), vec![("c1".into(), Checkpoint::Latest)]);
        // A child created when its parent finished (parent lease still present) starts at TRIM_HORIZON.
        let existing: HashSet<String> = ["p".to_owned()].into();
        let child = leases_to_create(&shards, &existing, InitialPosition::Latest);
        assert_eq!(keys(&child), vec![("c1".into(), Checkpoint::TrimHorizon)]);
    }

    /// Issue 9 §2: P split into C1 and C2, merged into G. Once the leases of P, C1 and C2 are
    /// cleaned up, only G has a lease; P must still count as processed.
    #[test]
    fn a_grandparent_with_a_leased_grandchild_is_never_recreated() {
        let shards = [
            shard("p", &[], true),
            shard("c1", &["p"], true),
            shard("c2", &["p"], true),
            shard("g", &["c1", "c2"], false),
        ];
        let existing: HashSet<String> = ["g".to_owned()].into();
        for initial in [InitialPosition::TrimHorizon, InitialPosition::Latest] {
            assert!(
                leases_to_create(&shards, &existing, initial).is_empty(),
                "{initial:?}"
            );
        }
    }

    /// Issue 9 §3: a child of a consumed parent starts at its own beginning, even with `LATEST`
    /// and even when the parent's lease is gone (a sibling's lease proves it was consumed).
    #[test]
    fn children_of_a_consumed_parent_start_at_trim_horizon_even_with_latest() {
        let shards = [
            shard("p", &[], true),
            shard("c1", &["p"], false),
            shard("c2", &["p"], false),
        ];
        let existing: HashSet<String> = ["c1".to_owned()].into();
        let created = leases_to_create(&shards, &existing, InitialPosition::Latest);
        assert_eq!(keys(&created), vec![("c2".into(), Checkpoint::TrimHorizon)]);
    }
}
