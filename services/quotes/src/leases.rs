//! `quotes leases --app NAME`: the lease table of a consumer application as a readable table;
//! and the table `quotes consumer rewind` prints ([`render_rewind`]).
//!
//! The table is read twice, `sample` apart (default 2.5 s, longer than the default renew
//! interval), so each lease shows whether its owner is renewing it: counters that moved are
//! `renewing`; ones that did not are `stalled` (a dead owner's lease, before it expires).
//! Leases have no timestamps in the KCL schema, so this is how their liveness is judged.

use std::fmt::Write;
use std::time::Duration;

use kinesis_consumer::{Lease, LeaseTable, LeaseTableError};

/// One row of the printed table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseRow {
    /// Shard id.
    pub shard: String,
    /// Owner, or `-`.
    pub owner: String,
    /// Lease counter at the second read.
    pub counter: u64,
    /// Checkpoint.
    pub checkpoint: String,
    /// Parent shards.
    pub parents: String,
    /// `renewing`, `stalled`, `unowned`, `finished`, or a pending handoff.
    pub state: String,
}

/// Classifies leases from two reads taken `sample` apart.
pub fn rows(first: &[Lease], second: &[Lease], sample: Duration) -> Vec<LeaseRow> {
    second
        .iter()
        .map(|lease| {
            let before = first.iter().find(|l| l.lease_key == lease.lease_key);
            let state = if lease.is_finished() {
                "finished".to_owned()
            } else if let Some(to) = &lease.handoff_owner {
                format!("handing off to {to}")
            } else if lease.lease_owner.is_none() {
                "unowned".to_owned()
            } else if before.is_some_and(|b| b.lease_counter == lease.lease_counter) {
                format!("stalled ≥{:.1}s", sample.as_secs_f64())
            } else {
                "renewing".to_owned()
            };
            LeaseRow {
                shard: lease.lease_key.clone(),
                owner: lease.lease_owner.clone().unwrap_or_else(|| "-".to_owned()),
                counter: lease.lease_counter,
                checkpoint: lease.checkpoint.to_string(),
                parents: if lease.parent_shard_ids.is_empty() {
                    "-".to_owned()
                } else {
                    lease.parent_shard_ids.join(",")
                },
                state,
            }
        })
        .collect()
}

/// Renders rows as an aligned text table.
pub fn render(rows: &[LeaseRow]) -> String {
    let headers = [
        "SHARD",
        "OWNER",
        "COUNTER",
        "CHECKPOINT",
        "PARENTS",
        "STATE",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.shard.clone(),
                r.owner.clone(),
                r.counter.to_string(),
                r.checkpoint.clone(),
                r.parents.clone(),
                r.state.clone(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |values: &[&str]| {
        let text: Vec<String> = values
            .iter()
            .zip(widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&headers);
    for row in &cells {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

/// The lease table, read twice `sample` apart: printed as a table (`Display`) or as JSON
/// (`Serialize`, one object per lease).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Leases(pub Vec<LeaseRow>);

impl std::fmt::Display for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&render(&self.0))
    }
}

/// Reads the table twice, `sample` apart.
pub async fn read(table: &dyn LeaseTable, sample: Duration) -> Result<Leases, LeaseTableError> {
    let first = table.list().await?;
    tokio::time::sleep(sample).await;
    let second = table.list().await?;
    Ok(Leases(rows(&first, &second, sample)))
}

/// A rewind's steps as an aligned table (`quotes consumer rewind`).
pub fn render_rewind(steps: &[kinesis_consumer::rewind::RewindStep], dry_run: bool) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "{:<24} {:<20} {:<10} {:<34} {}\n",
        "SHARD", "OWNER (FENCED)", "REPLAYS", "FROM", "TO"
    );
    for step in steps {
        let tail = |s: &str| s[s.len().saturating_sub(32)..].to_owned();
        let _ = writeln!(
            out,
            "{:<24} {:<20} {:<10} {:<34} {}",
            step.shard_id,
            step.owner.as_deref().unwrap_or("-"),
            if step.replays { "yes" } else { "no" },
            tail(&step.from),
            tail(&step.to)
        );
    }
    out.push_str(if dry_run {
        "(dry run: nothing changed)\n"
    } else {
        "rewound: each owner stops at its next renewal; the next worker to take a lease starts from its new checkpoint\n"
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinesis_consumer::Checkpoint;

    fn lease(key: &str, owner: Option<&str>, counter: u64) -> Lease {
        Lease {
            lease_owner: owner.map(str::to_owned),
            lease_counter: counter,
            ..Lease::new(key, Checkpoint::Sequence("4959".into()))
        }
    }

    #[test]
    fn leases_are_classified_and_aligned() {
        let first = vec![
            lease("shardId-1", Some("w1"), 5),
            lease("shardId-2", Some("w2"), 9),
            lease("shardId-3", None, 2),
        ];
        let mut finished = lease("shardId-4", Some("w1"), 3);
        finished.checkpoint = Checkpoint::ShardEnd;
        let second = vec![
            lease("shardId-1", Some("w1"), 6),
            lease("shardId-2", Some("w2"), 9),
            lease("shardId-3", None, 2),
            finished,
        ];
        let rows = rows(&first, &second, Duration::from_millis(2500));
        let states: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
        assert_eq!(
            states,
            vec!["renewing", "stalled ≥2.5s", "unowned", "finished"]
        );
        let text = render(&rows);
        assert!(
            text.starts_with("SHARD      OWNER  COUNTER  CHECKPOINT  PARENTS  STATE"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 5);
    }
}
