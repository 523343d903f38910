//! `failover`: how long a shard goes without a consumer when a worker process dies or is
//! stopped, measured on the emulators with real `kinesis-consumer-probe` processes.
//!
//! Each run: a fresh 4-shard stream and DynamoDB lease table, two probes (`w1` started first,
//! then `w2`) with `LEASE_DURATION_MS` (default 6,000, so renewals every 2 s), wait until the
//! leases are spread 2/2 with no handoff pending, then either
//! - **kill -9** `w1`: time until `w2` owns all four leases (it must see w1's counters stand
//!   still for the lease duration), or
//! - **SIGTERM** `w1`: time until `w2` owns all four (w1 checkpoints and releases; w2 takes the
//!   released leases at its next scan).
//!
//! The lease table is polled every 50 ms. Before each kill -9, the steady-state write rate is
//! sampled: the growth of every lease's `leaseCounter` (each renewal, checkpoint or take
//! increments it) over a window, divided by the window and by the leases held.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kinesis_consumer::lease_table::{create_lease_table, DynamoLeaseTable};
use kinesis_consumer::{Lease, LeaseTable};
use serde_json::json;

use super::{median, round};

/// Shards of each run's stream.
const SHARDS: u32 = 4;
/// How often the lease table is read while waiting.
const POLL: Duration = Duration::from_millis(50);

/// Two probe processes on one stream and lease table.
struct Pair {
    leases: DynamoLeaseTable,
    children: BTreeMap<&'static str, Child>,
    output: std::path::PathBuf,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.output);
    }
}

impl Pair {
    async fn start(
        kinesis: &aws_sdk_kinesis::Client,
        dynamo: &aws_sdk_dynamodb::Client,
        probe: &Path,
        lease_duration_ms: u64,
    ) -> anyhow::Result<(Self, String)> {
        let stream = super::unique_name("bench-failover");
        super::create_stream(kinesis, &stream, SHARDS).await?;
        let table = super::unique_name("bench-failover-leases");
        create_lease_table(dynamo, &table).await?;
        let output = std::env::temp_dir().join(format!("{}.log", super::unique_name("probe")));
        let mut pair = Self {
            leases: DynamoLeaseTable::new(dynamo.clone(), table.clone()),
            children: BTreeMap::new(),
            output,
        };
        for worker in ["w1", "w2"] {
            let child = Command::new(probe)
                .env("STREAM_NAME", &stream)
                .env("LEASE_TABLE", &table)
                .env("WORKER_ID", worker)
                .env("PROBE_OUTPUT", &pair.output)
                .env("LEASE_DURATION_MS", lease_duration_ms.to_string())
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| anyhow::anyhow!("starting {}: {e}", probe.display()))?;
            pair.children.insert(worker, child);
            if worker == "w1" {
                // w1 takes every lease first; w2 then steals towards its share.
                pair.wait_for(Duration::from_secs(60), |leases| {
                    leases.len() == SHARDS as usize && owned_by(leases, "w1") == leases.len()
                })
                .await?;
            }
        }
        Ok((pair, stream))
    }

    async fn leases(&self) -> anyhow::Result<Vec<Lease>> {
        Ok(self.leases.list().await?)
    }

    /// Polls every 50 ms until `done`; returns the time it took.
    async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[Lease]) -> bool,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if let Ok(leases) = self.leases().await {
                if done(&leases) {
                    return Ok(started.elapsed());
                }
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "condition not reached within {timeout:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn spread(&self) -> anyhow::Result<Duration> {
        self.wait_for(Duration::from_secs(90), |leases| {
            owned_by(leases, "w1") == 2
                && owned_by(leases, "w2") == 2
                && leases.iter().all(|l| l.handoff_owner.is_none())
        })
        .await
    }

    fn kill_9(&mut self, worker: &str) -> anyhow::Result<()> {
        let mut child = self
            .children
            .remove(worker)
            .ok_or_else(|| anyhow::anyhow!("{worker} is not running"))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    fn sigterm(&mut self, worker: &str) -> anyhow::Result<Child> {
        let child = self
            .children
            .remove(worker)
            .ok_or_else(|| anyhow::anyhow!("{worker} is not running"))?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed: {status}");
        Ok(child)
    }
}

fn owned_by(leases: &[Lease], worker: &str) -> usize {
    leases.iter().filter(|l| l.is_owned_by(worker)).count()
}

/// Lease-counter growth per second per held lease over `window`, or None when ownership
/// changed during the window.
async fn writes_per_lease(pair: &Pair, window: Duration) -> anyhow::Result<Option<f64>> {
    let before = pair.leases().await?;
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let after = pair.leases().await?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut delta = 0u64;
    for (a, b) in before.iter().zip(&after) {
        if a.lease_key != b.lease_key || a.lease_owner != b.lease_owner {
            return Ok(None);
        }
        delta += b.lease_counter.saturating_sub(a.lease_counter);
    }
    Ok(Some(delta as f64 / elapsed / after.len().max(1) as f64))
}

/// Runs the benchmark; returns the report.
pub async fn run(
    runs: usize,
    probe: &Path,
    lease_duration_ms: u64,
    window_secs: u64,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        probe.exists(),
        "{} not found: build it with `cargo build -p kinesis-consumer --release --bins`",
        probe.display()
    );
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let (mut kills, mut terms, mut writes, mut spreads) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut per_run = Vec::new();
    for run in 0..runs {
        for kind in ["kill-9", "sigterm"] {
            let (mut pair, stream) =
                Pair::start(&kinesis, &dynamo, probe, lease_duration_ms).await?;
            let spread = pair.spread().await?;
            spreads.push(spread.as_secs_f64());
            let mut steady = None;
            let mut exit = None;
            let failover = if kind == "kill-9" {
                // Let a few renewal rounds pass after the last handoff, then sample.
                tokio::time::sleep(Duration::from_secs(2)).await;
                steady = writes_per_lease(&pair, Duration::from_secs(window_secs)).await?;
                if let Some(rate) = steady {
                    writes.push(rate);
                }
                pair.kill_9("w1")?;
                pair.wait_for(Duration::from_secs(60), |l| owned_by(l, "w2") == l.len())
                    .await?
            } else {
                let mut child = pair.sigterm("w1")?;
                let took = pair
                    .wait_for(Duration::from_secs(60), |l| owned_by(l, "w2") == l.len())
                    .await?;
                exit = Some(child.wait()?.success());
                took
            };
            let seconds = failover.as_secs_f64();
            if kind == "kill-9" {
                kills.push(seconds);
            } else {
                terms.push(seconds);
            }
            eprintln!(
                "run {} {kind}: w2 owned every lease after {seconds:.2} s",
                run + 1
            );
            per_run.push(json!({
                "run": run + 1,
                "kind": kind,
                "spread_2_2_after_s": round(spread.as_secs_f64(), 2),
                "failover_s": round(seconds, 3),
                "steady_writes_per_lease_per_s": steady.map(|r| round(r, 3)),
                "graceful_exit": exit,
            }));
            drop(pair);
            super::delete_stream(&kinesis, &stream).await;
        }
    }
    let renew_s = lease_duration_ms as f64 / 3.0 / 1000.0;
    Ok(json!({
        "benchmark": "failover",
        "shards": SHARDS,
        "workers": 2,
        "lease_duration_ms": lease_duration_ms,
        "renew_interval_ms": lease_duration_ms / 3,
        "lease_table": "dynamodb",
        "poll_ms": POLL.as_millis() as u64,
        "runs": per_run,
        "median": {
            "kill_9_failover_s": round(median(&kills), 3),
            "sigterm_handoff_s": round(median(&terms), 3),
            "time_to_spread_2_2_s": round(median(&spreads), 2),
            "steady_writes_per_lease_per_s": round(median(&writes), 3),
            "expected_writes_per_lease_per_s": round(1.0 / renew_s, 3),
            "kcl2_writes_per_lease_per_s": round(1000.0 / 3_308.0, 3),
        },
        "min_max": {
            "kill_9_failover_s": [round(kills.iter().copied().fold(f64::INFINITY, f64::min), 3), round(kills.iter().copied().fold(0.0, f64::max), 3)],
            "sigterm_handoff_s": [round(terms.iter().copied().fold(f64::INFINITY, f64::min), 3), round(terms.iter().copied().fold(0.0, f64::max), 3)],
        },
    }))
}
