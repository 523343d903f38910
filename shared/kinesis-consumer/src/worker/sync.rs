//! Shard discovery: creates leases for shards that have none, with their lineage, so children of
//! a split or merge start only after their parents (see `coordination::plan`).
//!
//! Rules for a shard without a lease:
//! - a closed shard with a child that has a lease was already processed (its lease was cleaned
//!   up after it finished): skip it;
//! - with `LATEST`, closed shards are skipped (their records are history);
//! - a shard whose parent has (or gets) a lease starts at `TRIM_HORIZON`, so no record written
//!   after the reshard is missed; any other shard starts at the initial position.

use std::collections::HashSet;

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

/// The leases that should be created for `shards`, given the existing lease keys.
pub fn leases_to_create(
    shards: &[ShardInfo],
    existing: &HashSet<String>,
    initial: InitialPosition,
) -> Vec<Lease> {
    let has_child_lease = |shard: &ShardInfo| {
        shards
            .iter()
            .any(|s| s.parent_shard_ids.contains(&shard.shard_id) && existing.contains(&s.shard_id))
    };
    let wanted: Vec<&ShardInfo> = shards
        .iter()
        .filter(|s| !existing.contains(&s.shard_id))
        .filter(|s| !(s.closed && has_child_lease(s)))
        .filter(|s| !(s.closed && initial == InitialPosition::Latest))
        .collect();
    let will_have_lease =
        |id: &String| existing.contains(id) || wanted.iter().any(|w| &w.shard_id == id);
    wanted
        .iter()
        .map(|shard| {
            let checkpoint = if shard.parent_shard_ids.iter().any(will_have_lease) {
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

/// Lists shards and creates the missing leases; returns how many were created.
pub async fn sync_shards(
    table: &dyn LeaseTable,
    source: &dyn RecordSource,
    initial: InitialPosition,
    metrics: &WorkerMetrics,
) -> Result<usize, SyncError> {
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
    Ok(created)
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
}
