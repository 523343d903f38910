//! Rewinding a consumer application: its shards' checkpoints moved to an earlier (or later)
//! position through the lease table, while its workers run (`quotes consumer rewind`).
//!
//! Each lease is rewound with one conditional write ([`LeaseTable::rewind`]): the checkpoint
//! becomes the target, the owner is removed and the lease counter grows. The owner's next
//! renewal (within a third of the lease duration) or checkpoint fails on the counter, so it
//! stops processing the shard and can no longer move the checkpoint; the next worker to take
//! the lease (the same one, or another, at its next scan) starts from the target. A renewal
//! that lands between the read and the write makes the write fail; the lease is read again and
//! the rewind retried.
//!
//! Handlers see the rewound records again: they must be idempotent (every service of the
//! platform is: derived event ids, version-guarded upserts, the notifier's ledger).

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::lease::{compare_sequence_numbers, Checkpoint, Lease};
use crate::lease_table::{LeaseTable, LeaseTableError};

/// Attempts at one lease's rewind while renewals keep moving its counter.
const ATTEMPTS: u32 = 20;

/// Where to rewind to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewindTarget {
    /// The oldest record still in each shard.
    TrimHorizon,
    /// Only records added from now on (skips what is unread).
    Latest,
    /// Records added at or after an instant.
    AtTimestamp(OffsetDateTime),
    /// Records after this sequence number, as if it had just been checkpointed (one shard).
    AfterSequence(String),
}

impl RewindTarget {
    /// Parses `TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP:<RFC 3339>` or a sequence number.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "TRIM_HORIZON" => Ok(Self::TrimHorizon),
            "LATEST" => Ok(Self::Latest),
            other => match other.strip_prefix("AT_TIMESTAMP:") {
                Some(at) => {
                    OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                        .map(Self::AtTimestamp)
                        .map_err(|err| format!("AT_TIMESTAMP:{at}: {err} (use RFC 3339)"))
                }
                None if !other.is_empty()
                    && other.len() <= 128
                    && other.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    Ok(Self::AfterSequence(other.to_owned()))
                }
                None => Err(
                    "expected TRIM_HORIZON, LATEST, AT_TIMESTAMP:<RFC 3339> or a sequence number"
                        .to_owned(),
                ),
            },
        }
    }

    /// The checkpoint a rewound lease gets.
    pub fn checkpoint(&self) -> Checkpoint {
        match self {
            Self::TrimHorizon => Checkpoint::TrimHorizon,
            Self::Latest => Checkpoint::Latest,
            Self::AtTimestamp(at) => Checkpoint::AtTime(*at),
            Self::AfterSequence(sequence) => Checkpoint::Sequence(sequence.clone()),
        }
    }
}

/// Why a rewind could not be done.
#[derive(Debug, thiserror::Error)]
pub enum RewindError {
    /// A sequence number names a position in one shard: say which.
    #[error("a sequence number is a position in one shard: give --shard")]
    SequenceNeedsShard,
    /// The shard has no lease.
    #[error("shard {0} has no lease in this application's lease table")]
    UnknownShard(String),
    /// The lease table failed, or renewals kept winning.
    #[error("rewinding the lease of {shard_id} failed")]
    LeaseTable {
        /// The shard.
        shard_id: String,
        /// What the lease table said.
        #[source]
        source: LeaseTableError,
    },
    /// Listing the leases failed.
    #[error("reading the lease table failed")]
    List(#[source] LeaseTableError),
}

/// One lease's rewind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RewindStep {
    /// The shard.
    pub shard_id: String,
    /// Its owner before the rewind (who stops at its next renewal).
    pub owner: Option<String>,
    /// Its checkpoint before.
    pub from: String,
    /// Its checkpoint after.
    pub to: String,
    /// Whether this step moves the checkpoint back (records are processed again).
    pub replays: bool,
}

fn step(lease: &Lease, to: &Checkpoint) -> RewindStep {
    let replays = match (&lease.checkpoint, to) {
        (Checkpoint::Sequence(from), Checkpoint::Sequence(to)) => {
            compare_sequence_numbers(to, from) == std::cmp::Ordering::Less
        }
        (from, to) => !from.is_initial() && to.is_initial(),
    };
    RewindStep {
        shard_id: lease.lease_key.clone(),
        owner: lease.lease_owner.clone(),
        from: lease.checkpoint.as_str().into_owned(),
        to: to.as_str().into_owned(),
        replays,
    }
}

/// Rewinds every lease of `table` (or only `shard`'s) to `target`; with `dry_run` only says
/// what it would do. Returns the steps, in shard order.
pub async fn rewind(
    table: &dyn LeaseTable,
    target: &RewindTarget,
    shard: Option<&str>,
    dry_run: bool,
) -> Result<Vec<RewindStep>, RewindError> {
    if matches!(target, RewindTarget::AfterSequence(_)) && shard.is_none() {
        return Err(RewindError::SequenceNeedsShard);
    }
    let mut leases = table.list().await.map_err(RewindError::List)?;
    leases.sort_by(|a, b| a.lease_key.cmp(&b.lease_key));
    if let Some(shard) = shard {
        leases.retain(|lease| lease.lease_key == shard);
        if leases.is_empty() {
            return Err(RewindError::UnknownShard(shard.to_owned()));
        }
    }
    let to = target.checkpoint();
    let mut steps = Vec::with_capacity(leases.len());
    for lease in leases {
        steps.push(step(&lease, &to));
        if !dry_run {
            rewind_one(table, lease, &to).await?;
        }
    }
    Ok(steps)
}

async fn rewind_one(
    table: &dyn LeaseTable,
    mut seen: Lease,
    to: &Checkpoint,
) -> Result<(), RewindError> {
    let failed = |shard_id: &str, source| RewindError::LeaseTable {
        shard_id: shard_id.to_owned(),
        source,
    };
    for attempt in 1..=ATTEMPTS {
        match table.rewind(&seen, to).await {
            Ok(_) => {
                tracing::info!(shard_id = %seen.lease_key, previous_owner = ?seen.lease_owner, to = %to, "lease rewound");
                return Ok(());
            }
            Err(LeaseTableError::Lost(_)) if attempt < ATTEMPTS => {
                // A renewal or checkpoint moved the counter: read it again.
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                seen = match table.get(&seen.lease_key).await {
                    Ok(Some(lease)) => lease,
                    Ok(None) => {
                        return Err(RewindError::UnknownShard(seen.lease_key.clone()));
                    }
                    Err(err) => return Err(failed(&seen.lease_key, err)),
                };
            }
            Err(err) => return Err(failed(&seen.lease_key, err)),
        }
    }
    Err(failed(
        &seen.lease_key,
        LeaseTableError::Lost(seen.lease_key.clone()),
    ))
}
