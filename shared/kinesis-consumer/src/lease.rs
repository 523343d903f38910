//! A shard lease as stored in the lease table, with the Java KCL's attribute names so existing
//! KCL tooling can read our tables.
//!
//! | attribute | type | meaning |
//! | --- | --- | --- |
//! | `leaseKey` | S | the shard id (table key) |
//! | `leaseOwner` | S | worker holding the lease; absent when unowned |
//! | `leaseCounter` | N | incremented by every write; expiry is judged by it not moving |
//! | `checkpoint` | S | sequence number, or `TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`, `SHARD_END`; `AT_TIMESTAMP:<RFC 3339>` after an operator's rewind (extension) |
//! | `checkpointSubSequenceNumber` | N | sub-sequence within an aggregated record (0) |
//! | `ownerSwitchesSinceCheckpoint` | N | owner changes since the last checkpoint |
//! | `parentShardId` | SS | parent shards (after a split or merge) |
//! | `childShardIds` | SS | child shards, recorded when known |
//! | `startingHashKey`, `endingHashKey` | S | the shard's hash key range |
//! | `handoffOwner` | S | extension: a worker asked for the lease; the owner checkpoints and hands it over |

use std::cmp::Ordering;
use std::fmt;

/// Where a lease's consumer resumes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Checkpoint {
    /// Start at the oldest record (initial position).
    TrimHorizon,
    /// Start at the newest record (initial position).
    Latest,
    /// Start at the configured timestamp (initial position).
    AtTimestamp,
    /// Start at this instant (an operator's rewind, `AT_TIMESTAMP:<RFC 3339>`; an extension
    /// of the KCL's sentinels, which take the instant from the configuration).
    AtTime(time::OffsetDateTime),
    /// Resume after this sequence number.
    Sequence(String),
    /// The shard was processed to its end; its children may start.
    ShardEnd,
}

impl Checkpoint {
    /// The stored string (KCL sentinels, `AT_TIMESTAMP:<RFC 3339>`, or the sequence number).
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Checkpoint::TrimHorizon => "TRIM_HORIZON".into(),
            Checkpoint::Latest => "LATEST".into(),
            Checkpoint::AtTimestamp => "AT_TIMESTAMP".into(),
            Checkpoint::AtTime(at) => format!(
                "{AT_TIME_PREFIX}{}",
                at.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| at.unix_timestamp().to_string())
            )
            .into(),
            Checkpoint::ShardEnd => "SHARD_END".into(),
            Checkpoint::Sequence(sequence) => sequence.as_str().into(),
        }
    }

    /// Parses the stored string.
    pub fn parse(value: &str) -> Self {
        match value {
            "TRIM_HORIZON" => Checkpoint::TrimHorizon,
            "LATEST" => Checkpoint::Latest,
            "AT_TIMESTAMP" => Checkpoint::AtTimestamp,
            "SHARD_END" => Checkpoint::ShardEnd,
            other => match other.strip_prefix(AT_TIME_PREFIX).and_then(|at| {
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
            }) {
                Some(at) => Checkpoint::AtTime(at),
                None => Checkpoint::Sequence(other.to_owned()),
            },
        }
    }

    /// True for the initial-position sentinels (nothing processed yet).
    pub fn is_initial(&self) -> bool {
        matches!(
            self,
            Checkpoint::TrimHorizon
                | Checkpoint::Latest
                | Checkpoint::AtTimestamp
                | Checkpoint::AtTime(_)
        )
    }

    /// Whether moving from `self` to `next` goes forwards (or stays). Initial sentinels come
    /// before every sequence number, `SHARD_END` after all of them; sequence numbers compare
    /// numerically (they are decimal strings of up to 128 bits).
    pub fn may_advance_to(&self, next: &Checkpoint) -> bool {
        fn rank(c: &Checkpoint) -> u8 {
            match c {
                Checkpoint::TrimHorizon
                | Checkpoint::Latest
                | Checkpoint::AtTimestamp
                | Checkpoint::AtTime(_) => 0,
                Checkpoint::Sequence(_) => 1,
                Checkpoint::ShardEnd => 2,
            }
        }
        match (self, next) {
            (Checkpoint::Sequence(a), Checkpoint::Sequence(b)) => {
                compare_sequence_numbers(a, b) != Ordering::Greater
            }
            (a, b) => rank(a) <= rank(b),
        }
    }
}

/// Prefix of a stored [`Checkpoint::AtTime`].
const AT_TIME_PREFIX: &str = "AT_TIMESTAMP:";

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// Compares two Kinesis sequence numbers (decimal strings) numerically.
pub fn compare_sequence_numbers(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// One shard lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The shard id (`leaseKey`).
    pub lease_key: String,
    /// The worker holding it (`leaseOwner`), if any.
    pub lease_owner: Option<String>,
    /// Incremented by every write (`leaseCounter`); the fencing token.
    pub lease_counter: u64,
    /// Where processing resumes (`checkpoint`).
    pub checkpoint: Checkpoint,
    /// `checkpointSubSequenceNumber`.
    pub checkpoint_sub_sequence_number: u64,
    /// `ownerSwitchesSinceCheckpoint`.
    pub owner_switches_since_checkpoint: u64,
    /// `parentShardId` (a string set).
    pub parent_shard_ids: Vec<String>,
    /// `childShardIds` (a string set).
    pub child_shard_ids: Vec<String>,
    /// `startingHashKey`.
    pub starting_hash_key: Option<String>,
    /// `endingHashKey`.
    pub ending_hash_key: Option<String>,
    /// `handoffOwner` (our extension): the worker that asked for this lease to balance the
    /// fleet. The owner finishes its batch, checkpoints and hands the lease over, so a steal
    /// re-delivers nothing.
    pub handoff_owner: Option<String>,
    /// How the owner's processing of the shard stood at its last renewal (our extension,
    /// `millisBehindLatest` and `recordsSinceCheckpoint`): what the operations view shows for
    /// every process, read from the table instead of each worker's own metrics.
    pub progress: Option<ShardProgress>,
}

/// How far an owner's processing of a shard stood when it last renewed the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ShardProgress {
    /// `MillisBehindLatest` of the owner's last read: how far its reads trail the shard's tip.
    pub millis_behind_latest: u64,
    /// Records processed since the last checkpoint (re-delivered if the owner crashed now).
    pub records_since_checkpoint: u64,
}

impl Lease {
    /// A new, unowned lease for a shard, starting at `initial`.
    pub fn new(shard_id: impl Into<String>, initial: Checkpoint) -> Self {
        Self {
            lease_key: shard_id.into(),
            lease_owner: None,
            lease_counter: 0,
            checkpoint: initial,
            checkpoint_sub_sequence_number: 0,
            owner_switches_since_checkpoint: 0,
            parent_shard_ids: Vec::new(),
            child_shard_ids: Vec::new(),
            starting_hash_key: None,
            ending_hash_key: None,
            handoff_owner: None,
            progress: None,
        }
    }

    /// True when `worker` holds the lease.
    pub fn is_owned_by(&self, worker: &str) -> bool {
        self.lease_owner.as_deref() == Some(worker)
    }

    /// True when the shard has been processed to its end.
    pub fn is_finished(&self) -> bool {
        self.checkpoint == Checkpoint::ShardEnd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_numerically() {
        assert_eq!(compare_sequence_numbers("9", "10"), Ordering::Less);
        assert_eq!(
            compare_sequence_numbers(
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692538361571095921575989136588899"
            ),
            Ordering::Less
        );
        assert_eq!(compare_sequence_numbers("007", "7"), Ordering::Equal);
    }

    #[test]
    fn checkpoints_only_move_forwards() {
        let seq = |s: &str| Checkpoint::Sequence(s.into());
        assert!(Checkpoint::TrimHorizon.may_advance_to(&seq("1")));
        assert!(seq("1").may_advance_to(&seq("2")));
        assert!(seq("2").may_advance_to(&seq("2")));
        assert!(!seq("10").may_advance_to(&seq("9")));
        assert!(seq("10").may_advance_to(&Checkpoint::ShardEnd));
        assert!(!Checkpoint::ShardEnd.may_advance_to(&seq("1")));
        assert!(!seq("1").may_advance_to(&Checkpoint::TrimHorizon));
        for c in [
            Checkpoint::TrimHorizon,
            Checkpoint::Latest,
            Checkpoint::AtTimestamp,
            Checkpoint::ShardEnd,
            Checkpoint::AtTime(
                time::OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("instant"),
            ),
            seq("42"),
        ] {
            assert_eq!(Checkpoint::parse(&c.as_str()), c);
        }
    }
}
