//! `quotes bench snapshots`: loading one long stream (10,000 events by default) by folding
//! every event, against loading it from its latest snapshot (`event_store::snapshot`), in the
//! same run and on the same store: medians of each and their ratio. In memory by default;
//! `--aws` on the configured DynamoDB (the emulators, or AWS), in the EVENTS_TABLE.
//!
//! The stream is the benchmark's own (`bench#<uuid>`, numbered events); its aggregate counts
//! and sums them, so the figures measure reading and folding events and snapshots, not the
//! quote domain. Steady state for the snapshot load: the latest snapshot is `every / 2` events
//! behind the stream's end (on average a stream is half a snapshot interval past its last one).

use std::time::{Duration, Instant};

use anyhow::Context;
use event_store::{
    load_aggregate, Aggregate, AppendRequest, EventEnvelope, EventStore, LoadBound, NewEvent,
    StoreError, MAX_EVENTS_PER_APPEND,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What `quotes bench snapshots` prints (one JSON object).
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotReport {
    /// `memory` or `dynamodb`.
    pub store: &'static str,
    /// Events in the stream.
    pub events: u64,
    /// The snapshot interval.
    pub every: u64,
    /// Loads of each kind.
    pub runs: usize,
    /// Median milliseconds to fold every event.
    pub full_fold_ms_p50: f64,
    /// Median milliseconds to load from the latest snapshot and fold the rest.
    pub from_snapshot_ms_p50: f64,
    /// Events the snapshot load read and folded.
    pub events_after_snapshot: u64,
    /// `full_fold_ms_p50 / from_snapshot_ms_p50`.
    pub speedup: f64,
}

/// The benchmark's aggregate: how many numbered events, and the sum of their numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Tally {
    count: u64,
    sum: u64,
}

impl Aggregate for Tally {
    type Error = StoreError;
    const STATE_SCHEMA_VERSION: u32 = 1;

    fn fold(state: Option<Self>, events: &[EventEnvelope]) -> Result<Option<Self>, StoreError> {
        if state.is_none() && events.is_empty() {
            return Ok(None);
        }
        let mut tally = state.unwrap_or(Tally { count: 0, sum: 0 });
        for event in events {
            tally.count += 1;
            tally.sum += event.data["n"].as_u64().unwrap_or(0);
        }
        Ok(Some(tally))
    }
}

fn numbered(n: u64) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: "Numbered".to_owned(),
        schema_version: 1,
        occurred_at: OffsetDateTime::now_utc(),
        correlation_id: "bench-snapshots".to_owned(),
        causation_id: None,
        traceparent: None,
        tracestate: None,
        actor: "quotes bench snapshots".to_owned(),
        data: serde_json::json!({ "n": n, "text": "a payload of a realistic size for an event of the platform" }),
    }
}

async fn append(store: &dyn EventStore, stream_id: &str, from: u64, to: u64) -> anyhow::Result<()> {
    let mut version = from;
    while version < to {
        let batch = (to - version).min(MAX_EVENTS_PER_APPEND as u64);
        store
            .append(AppendRequest {
                stream_id: stream_id.to_owned(),
                expected_version: version,
                events: (version + 1..=version + batch).map(numbered).collect(),
                idempotency: None,
                customer_id: None,
            })
            .await
            .with_context(|| format!("appending events {}..{}", version + 1, version + batch))?;
        version += batch;
    }
    Ok(())
}

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples
        .get(samples.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1_000.0)
}

/// Runs the benchmark on `store` (named `kind` in the report).
pub async fn run(
    store: &dyn EventStore,
    kind: &'static str,
    events: u64,
    every: u64,
    runs: usize,
) -> anyhow::Result<SnapshotReport> {
    anyhow::ensure!(store.snapshots().is_some(), "this store keeps no snapshots");
    let stream_id = format!("bench#{}", uuid::Uuid::new_v4());
    let behind = (every / 2).min(events.saturating_sub(1));
    append(store, &stream_id, 0, events - behind).await?;
    // One load folds everything and saves the snapshot; the rest of the stream follows it.
    load_aggregate::<Tally>(store, &stream_id, None, every)
        .await
        .context("the first load")?;
    append(store, &stream_id, events - behind, events).await?;

    let expected = Tally {
        count: events,
        sum: events * (events + 1) / 2,
    };
    let mut full = Vec::with_capacity(runs);
    let mut from_snapshot = Vec::with_capacity(runs);
    let mut after = 0;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let all = store
            .load(&stream_id, LoadBound::Latest)
            .await
            .context("a full load")?;
        let folded = Tally::fold(None, &all)?;
        full.push(started.elapsed());
        anyhow::ensure!(folded.as_ref() == Some(&expected), "the full fold is wrong");

        let started = Instant::now();
        // `every = 0`: measuring must not save snapshots that move the starting point.
        let loaded = load_aggregate::<Tally>(store, &stream_id, None, 0)
            .await
            .context("a load from the snapshot")?
            .context("the stream is empty")?;
        from_snapshot.push(started.elapsed());
        anyhow::ensure!(
            loaded.state == expected,
            "the load from the snapshot is wrong"
        );
        after = loaded.stats.events_folded;
    }
    let full_ms = median(full);
    let snapshot_ms = median(from_snapshot);
    Ok(SnapshotReport {
        store: kind,
        events,
        every,
        runs: runs.max(1),
        full_fold_ms_p50: full_ms,
        from_snapshot_ms_p50: snapshot_ms,
        events_after_snapshot: after,
        speedup: if snapshot_ms > 0.0 {
            full_ms / snapshot_ms
        } else {
            f64::INFINITY
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_snapshot_load_reads_only_the_events_after_the_snapshot() {
        let store = event_store::InMemoryEventStore::new();
        let report = run(&store, "memory", 300, 100, 3).await.expect("bench");
        assert_eq!(report.events_after_snapshot, 50, "{report:?}");
        assert_eq!((report.events, report.every, report.runs), (300, 100, 3));
        assert!(report.full_fold_ms_p50 > 0.0 && report.from_snapshot_ms_p50 > 0.0);
    }
}
