//! Which leases a worker acquires in one round.
//!
//! From one scan of the lease table:
//! - the fair share is ⌈leases ÷ workers⌉, where leases exclude finished shards and the workers
//!   are the owners of live (unexpired) leases plus this worker;
//! - **take** every unowned or expired lease it may, up to its fair share and *always at least
//!   one* when any is available, so leases never stay orphaned once the fleet looks balanced;
//! - **steal** (ask the owner to hand the lease over gracefully) only when nothing is available
//!   to take: one lease at a time from the most loaded
//!   worker, and only while that worker holds at least two more than this one would after the
//!   steal. Each steal strictly narrows the spread, so the fleet cannot oscillate. Up to half the
//!   remaining need (at least one) is stolen per round: fast when far from balance, damped when
//!   several new workers join at once and see the same snapshot.
//!
//! Leases whose parent shards are not finished are neither taken nor stolen: their records must
//! wait until the parents have been processed to their end.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use crate::lease::Lease;

/// A lease as seen in one scan.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The lease as read.
    pub lease: &'a Lease,
    /// Its owner stopped renewing (see `ExpiryTracker`).
    pub expired: bool,
}

/// What to acquire this round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcquirePlan {
    /// Unowned or expired leases to take (conditional on what was seen).
    pub take: Vec<Lease>,
    /// Leases to steal from overloaded workers.
    pub steal: Vec<Lease>,
    /// The fair share computed for this worker.
    pub target: usize,
}

/// True when a parent shard of `lease` still has a lease that is not finished.
pub fn blocked_by_parents(lease: &Lease, all: &[Lease]) -> bool {
    lease.parent_shard_ids.iter().any(|parent| {
        all.iter()
            .any(|other| &other.lease_key == parent && !other.is_finished())
    })
}

/// A stable, worker-specific order, so workers racing for the same leases prefer different ones.
fn preference(me: &str, lease: &Lease) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    me.hash(&mut hasher);
    lease.lease_key.hash(&mut hasher);
    hasher.finish()
}

/// Plans one acquisition round for worker `me`.
pub fn plan_acquisitions(me: &str, candidates: &[Candidate<'_>], all: &[Lease]) -> AcquirePlan {
    let active: Vec<&Candidate<'_>> = candidates
        .iter()
        .filter(|c| !c.lease.is_finished())
        .collect();
    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    load.insert(me, 0);
    for c in &active {
        if let Some(owner) = c.lease.lease_owner.as_deref() {
            if owner == me || !c.expired {
                // A lease promised to another worker counts as that worker's.
                let holder = c.lease.handoff_owner.as_deref().unwrap_or(owner);
                *load.entry(holder).or_insert(0) += 1;
            }
        }
    }
    let workers = load.len().max(1);
    let target = active.len().div_ceil(workers);
    let mine = load.get(me).copied().unwrap_or(0);

    let mut available: Vec<&Lease> = active
        .iter()
        .filter(|c| !c.lease.is_owned_by(me))
        .filter(|c| c.lease.lease_owner.is_none() || c.expired)
        .map(|c| c.lease)
        .filter(|lease| !blocked_by_parents(lease, all))
        .collect();
    available.sort_by_key(|lease| preference(me, lease));

    if !available.is_empty() {
        let want = target.saturating_sub(mine).max(1);
        return AcquirePlan {
            take: available.into_iter().take(want).cloned().collect(),
            steal: Vec::new(),
            target,
        };
    }

    let need = target.saturating_sub(mine);
    let budget = need.div_ceil(2);
    let mut steal = Vec::new();
    if budget > 0 {
        let mut by_owner: HashMap<&str, Vec<&Lease>> = HashMap::new();
        for c in &active {
            if let Some(owner) = c.lease.lease_owner.as_deref() {
                let movable = c.lease.handoff_owner.is_none() && !blocked_by_parents(c.lease, all);
                if owner != me && !c.expired && movable {
                    by_owner.entry(owner).or_default().push(c.lease);
                }
            }
        }
        for leases in by_owner.values_mut() {
            leases.sort_by_key(|lease| preference(me, lease));
        }
        let mut projected = mine;
        while steal.len() < budget {
            let donor = load
                .iter()
                .filter(|(owner, _)| **owner != me)
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(owner, count)| (*owner, *count));
            let Some((donor, count)) = donor else { break };
            if count < projected + 2 {
                break;
            }
            let Some(lease) = by_owner.get_mut(donor).and_then(|l| l.pop()) else {
                // Only leases that must not move remain with this donor.
                load.remove(donor);
                continue;
            };
            steal.push(lease.clone());
            projected += 1;
            if let Some(c) = load.get_mut(donor) {
                *c -= 1;
            }
        }
    }
    AcquirePlan {
        take: Vec::new(),
        steal,
        target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::Checkpoint;

    /// Builds leases from (key, owner) pairs; owners prefixed with `!` are expired.
    fn scene(spec: &[(&str, &str)]) -> (Vec<Lease>, Vec<bool>) {
        let mut leases = Vec::new();
        let mut expired = Vec::new();
        for (key, owner) in spec {
            let (owner, is_expired) = match owner.strip_prefix('!') {
                Some(o) => (Some(o.to_owned()), true),
                None if owner.is_empty() => (None, false),
                None => (Some((*owner).to_owned()), false),
            };
            leases.push(Lease {
                lease_owner: owner,
                lease_counter: 1,
                ..Lease::new(*key, Checkpoint::TrimHorizon)
            });
            expired.push(is_expired);
        }
        (leases, expired)
    }

    /// One row: (case, worker, leases as (key, owner), takes, steals, target).
    type Row<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        usize,
        usize,
        usize,
    );

    /// Table-driven acquisition decisions.
    #[test]
    fn acquisition_table() {
        let cases: &[Row<'_>] = &[
            (
                "fresh table, one worker takes all",
                "a",
                &[("s1", ""), ("s2", ""), ("s3", "")],
                3,
                0,
                3,
            ),
            (
                "balanced two workers: nothing",
                "a",
                &[("s1", "a"), ("s2", "b")],
                0,
                0,
                1,
            ),
            (
                "new worker steals from a loaded one",
                "c",
                &[("s1", "a"), ("s2", "a"), ("s3", "b"), ("s4", "b")],
                0,
                1,
                2,
            ),
            (
                "far from balance: several per round",
                "b",
                &[
                    ("s1", "a"),
                    ("s2", "a"),
                    ("s3", "a"),
                    ("s4", "a"),
                    ("s5", "a"),
                    ("s6", "a"),
                    ("s7", "a"),
                    ("s8", "a"),
                ],
                0,
                2,
                4,
            ),
            (
                "spread of one is balanced: no steal",
                "b",
                &[("s1", "a"), ("s2", "a"), ("s3", "b")],
                0,
                0,
                2,
            ),
            (
                "dead worker's leases are taken",
                "a",
                &[("s1", "a"), ("s2", "!b"), ("s3", "!b"), ("s4", "c")],
                1,
                0,
                2,
            ),
            (
                "expired leases taken even when at target",
                "a",
                &[
                    ("s1", "a"),
                    ("s2", "a"),
                    ("s3", "!b"),
                    ("s4", "c"),
                    ("s5", "c"),
                ],
                1,
                0,
                3,
            ),
            (
                "unowned lease taken when fleet looks balanced",
                "a",
                &[("s1", "a"), ("s2", "b"), ("s3", "")],
                1,
                0,
                2,
            ),
            (
                "finished shards are ignored",
                "b",
                &[("s1", "a"), ("s2", "a")],
                0,
                1,
                1,
            ),
        ];
        for (name, me, spec, takes, steals, target) in cases {
            let mut spec: Vec<(&str, &str)> = spec.to_vec();
            let finished = *name == "finished shards are ignored";
            if finished {
                spec.push(("s0", ""));
            }
            let (mut leases, expired) = scene(&spec);
            if finished {
                if let Some(last) = leases.last_mut() {
                    last.checkpoint = Checkpoint::ShardEnd;
                }
            }
            let candidates: Vec<Candidate<'_>> = leases
                .iter()
                .zip(&expired)
                .map(|(lease, expired)| Candidate {
                    lease,
                    expired: *expired,
                })
                .collect();
            let plan = plan_acquisitions(me, &candidates, &leases);
            assert_eq!(
                (plan.take.len(), plan.steal.len(), plan.target),
                (*takes, *steals, *target),
                "case: {name}"
            );
            assert!(
                plan.take
                    .iter()
                    .chain(&plan.steal)
                    .all(|l| !l.is_owned_by(me)),
                "case: {name}"
            );
        }
    }

    #[test]
    fn children_wait_for_their_parents() {
        let mut parent = Lease::new("parent", Checkpoint::Sequence("5".into()));
        parent.lease_owner = Some("a".into());
        let mut child = Lease::new("child", Checkpoint::TrimHorizon);
        child.parent_shard_ids = vec!["parent".into()];
        let all = vec![parent.clone(), child.clone()];
        assert!(blocked_by_parents(&child, &all));
        let candidates = [
            Candidate {
                lease: &all[0],
                expired: false,
            },
            Candidate {
                lease: &all[1],
                expired: false,
            },
        ];
        assert!(plan_acquisitions("b", &candidates, &all).take.is_empty());

        parent.checkpoint = Checkpoint::ShardEnd;
        let all = vec![parent, child];
        assert!(!blocked_by_parents(&all[1], &all));
        // A parent whose lease is gone (cleaned after it finished) does not block.
        assert!(!blocked_by_parents(&all[1], &all[1..]));
        let candidates = [
            Candidate {
                lease: &all[0],
                expired: false,
            },
            Candidate {
                lease: &all[1],
                expired: false,
            },
        ];
        assert_eq!(plan_acquisitions("b", &candidates, &all).take.len(), 1);
    }

    /// Workers planning in turn, each on the table as the previous one left it, converge to a
    /// spread of at most one within a few rounds, and once balanced no lease moves again.
    #[test]
    fn repeated_rounds_converge_without_oscillation() {
        for (shards, workers) in [(10, 3), (64, 7), (100, 100), (7, 10), (1000, 37)] {
            let mut leases: Vec<Lease> = (0..shards)
                .map(|i| Lease {
                    lease_owner: Some("w0".into()),
                    ..Lease::new(format!("s{i:04}"), Checkpoint::TrimHorizon)
                })
                .collect();
            let names: Vec<String> = (0..workers).map(|i| format!("w{i}")).collect();
            let mut was_balanced = false;
            let mut rounds = 0;
            loop {
                rounds += 1;
                assert!(
                    rounds < 60,
                    "{shards} shards / {workers} workers did not converge"
                );
                let mut moved = 0;
                for me in &names {
                    let snapshot = leases.clone();
                    let candidates: Vec<Candidate<'_>> = snapshot
                        .iter()
                        .map(|lease| Candidate {
                            lease,
                            expired: false,
                        })
                        .collect();
                    let plan = plan_acquisitions(me, &candidates, &snapshot);
                    for stolen in plan.steal.iter().chain(&plan.take) {
                        if let Some(l) = leases.iter_mut().find(|l| l.lease_key == stolen.lease_key)
                        {
                            l.lease_owner = Some(me.clone());
                            moved += 1;
                        }
                    }
                }
                assert!(
                    !(was_balanced && moved > 0),
                    "{shards}/{workers}: leases moved after balance"
                );
                let mut counts: HashMap<String, usize> =
                    names.iter().map(|n| (n.clone(), 0)).collect();
                for l in &leases {
                    if let Some(o) = &l.lease_owner {
                        *counts.entry(o.clone()).or_insert(0) += 1;
                    }
                }
                let max = counts.values().copied().max().unwrap_or(0);
                let min = counts.values().copied().min().unwrap_or(0);
                was_balanced = max - min <= 1;
                if was_balanced && moved == 0 {
                    break;
                }
            }
        }
    }
}
