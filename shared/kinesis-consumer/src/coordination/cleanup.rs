//! When a finished lease (`SHARD_END`) may be deleted.
//!
//! A finished lease is the lease table's memory that its shard was processed. Deleting it too
//! early made a parent look new (issue 9 §3: children never created, the parent deleted anyway,
//! its children later created at `LATEST`). The rules, the Java KCL's `LeaseCleanupManager`'s:
//!
//! - **completed**: every child shard (recorded on the lease, or listed by the stream) has a
//!   lease in a consistent scan of the table, and each child has begun (its checkpoint is past
//!   `TRIM_HORIZON` / `LATEST` / `AT_TIMESTAMP`), and none of the shard's own parents still has a
//!   lease (lineage is cleaned from the top, so the leases left always form the newest
//!   generations of each family);
//! - **garbage**: the shard has no known child and a successful listing of the stream no longer
//!   holds it (it left the stream's retention).
//!
//! Whatever is deleted, `worker::sync` never re-creates it: a closed shard with a leased
//! descendant of any generation counts as processed.

use std::collections::HashMap;

use crate::lease::Lease;
use crate::source::ShardInfo;

/// Why a finished lease may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Its children's leases exist and have begun.
    Completed,
    /// Its shard left the stream's retention.
    Garbage,
}

/// The finished leases among `leases` (one consistent scan) that may be deleted, given the last
/// successful listing of the stream's shards (`None` when none succeeded yet).
pub fn finished_leases_to_delete<'a>(
    leases: &'a [Lease],
    shards: Option<&[ShardInfo]>,
) -> Vec<(&'a Lease, Cleanup)> {
    let by_key: HashMap<&str, &Lease> = leases.iter().map(|l| (l.lease_key.as_str(), l)).collect();
    leases
        .iter()
        .filter(|lease| lease.is_finished())
        .filter(|lease| {
            !lease
                .parent_shard_ids
                .iter()
                .any(|parent| by_key.contains_key(parent.as_str()))
        })
        .filter_map(|lease| {
            let mut children: Vec<&str> =
                lease.child_shard_ids.iter().map(String::as_str).collect();
            if let Some(shards) = shards {
                children.extend(
                    shards
                        .iter()
                        .filter(|s| s.parent_shard_ids.contains(&lease.lease_key))
                        .map(|s| s.shard_id.as_str()),
                );
            }
            if children.is_empty() {
                let listed = shards?.iter().any(|s| s.shard_id == lease.lease_key);
                return (!listed).then_some((lease, Cleanup::Garbage));
            }
            let begun = |child: &&str| {
                by_key
                    .get(child)
                    .is_some_and(|c| !c.checkpoint.is_initial())
            };
            children
                .iter()
                .all(begun)
                .then_some((lease, Cleanup::Completed))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::Checkpoint;

    fn lease(key: &str, parents: &[&str], children: &[&str], checkpoint: Checkpoint) -> Lease {
        Lease {
            parent_shard_ids: parents.iter().map(|p| (*p).to_owned()).collect(),
            child_shard_ids: children.iter().map(|c| (*c).to_owned()).collect(),
            ..Lease::new(key, checkpoint)
        }
    }

    fn shard(id: &str, parents: &[&str]) -> ShardInfo {
        ShardInfo {
            shard_id: id.into(),
            parent_shard_ids: parents.iter().map(|p| (*p).to_owned()).collect(),
            starting_hash_key: "0".into(),
            ending_hash_key: "1".into(),
            closed: false,
        }
    }

    fn deleted(leases: &[Lease], shards: Option<&[ShardInfo]>) -> Vec<(String, Cleanup)> {
        finished_leases_to_delete(leases, shards)
            .into_iter()
            .map(|(l, why)| (l.lease_key.clone(), why))
            .collect()
    }

    #[test]
    fn decisions() {
        let end = || Checkpoint::ShardEnd;
        let seq = || Checkpoint::Sequence("7".into());
        let listed = [shard("p", &[]), shard("c1", &["p"]), shard("c2", &["p"])];
        let only_p = [shard("p", &[])];
        /// A name, the scan, the listing, what is deleted.
        type Case<'a> = (
            &'a str,
            Vec<Lease>,
            Option<&'a [ShardInfo]>,
            Vec<(String, Cleanup)>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "children leased and begun",
                vec![
                    lease("p", &[], &[], end()),
                    lease("c1", &["p"], &[], seq()),
                    lease("c2", &["p"], &[], end()),
                ],
                Some(&listed),
                vec![("p".into(), Cleanup::Completed)],
            ),
            (
                "a child not begun yet",
                vec![
                    lease("p", &[], &[], end()),
                    lease("c1", &["p"], &[], seq()),
                    lease("c2", &["p"], &[], Checkpoint::TrimHorizon),
                ],
                Some(&listed),
                vec![],
            ),
            (
                "a child without a lease (creating it failed)",
                vec![lease("p", &[], &[], end()), lease("c1", &["p"], &[], seq())],
                Some(&listed),
                vec![],
            ),
            (
                "listing failed around the end: children known from the lease only",
                vec![lease("p", &[], &["c1", "c2"], end())],
                None,
                vec![],
            ),
            (
                "listing from before the reshard, children recorded on the lease",
                vec![lease("p", &[], &["c1", "c2"], end())],
                Some(&only_p),
                vec![],
            ),
            (
                "no known child and no listing yet",
                vec![lease("p", &[], &[], end())],
                None,
                vec![],
            ),
            (
                "no known child, still listed",
                vec![lease("p", &[], &[], end())],
                Some(&only_p),
                vec![],
            ),
            (
                "no known child, left the retention",
                vec![lease("p", &[], &[], end())],
                Some(&[]),
                vec![("p".into(), Cleanup::Garbage)],
            ),
            (
                "parent still leased: lineage goes from the top",
                vec![
                    lease("p", &[], &["c1"], end()),
                    lease("c1", &["p"], &["g"], end()),
                    lease("g", &["c1"], &[], seq()),
                ],
                None,
                vec![("p".into(), Cleanup::Completed)],
            ),
            (
                "unfinished leases are never deleted",
                vec![lease("c1", &[], &[], seq())],
                Some(&[]),
                vec![],
            ),
        ];
        for (name, leases, shards, expected) in cases {
            assert_eq!(deleted(&leases, shards), expected, "{name}");
        }
    }
}
