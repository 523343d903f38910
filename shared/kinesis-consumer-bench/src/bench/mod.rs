//! The benchmarks of `kinesis-consumer-bench` and what they share: medians, process CPU time,
//! a no-op processor, and stream helpers for kinesis-mock.

pub mod failover;
pub mod overhead;
pub mod simulate;
pub mod throughput;

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use kinesis_consumer::{Checkpointer, ProcessorError, Record, RecordProcessor};

/// The median of `values` (the mean of the two middle ones for an even count; 0 when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Rounds to `digits` decimals (for readable JSON).
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// CPU time (user + system, every thread) this process has used, from `/proc/self/stat`.
#[derive(Debug, Clone, Copy)]
pub struct CpuClock {
    ticks_per_second: f64,
}

impl CpuClock {
    /// Reads the clock-tick rate once (`getconf CLK_TCK`, 100 when unavailable).
    pub fn new() -> Self {
        let ticks = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0);
        Self {
            ticks_per_second: ticks,
        }
    }

    /// CPU seconds used so far (resolution: one clock tick, usually 10 ms).
    pub fn seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        // Fields after the command name (which may contain spaces) start at field 3 (state);
        // utime and stime are fields 14 and 15.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .ok_or_else(|| anyhow::anyhow!("unexpected /proc/self/stat: {stat}"))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| -> anyhow::Result<f64> {
            fields
                .get(i)
                .ok_or_else(|| anyhow::anyhow!("/proc/self/stat has no field {}", i + 3))?
                .parse::<f64>()
                .map_err(|e| anyhow::anyhow!("/proc/self/stat field {}: {e}", i + 3))
        };
        Ok((field(11)? + field(12)?) / self.ticks_per_second)
    }
}

/// A processor that does nothing: the library's own cost per record.
#[derive(Debug, Default)]
pub struct NoOp;

#[async_trait]
impl RecordProcessor for NoOp {
    async fn process_records(
        &mut self,
        _records: &[Record],
        _checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        Ok(())
    }
}

/// A name unique to this process and call.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A payload of exactly `bytes` bytes carrying `n`.
pub fn payload(n: u64, bytes: usize) -> Vec<u8> {
    let mut data = format!("record-{n:010}-").into_bytes();
    data.resize(bytes.max(data.len()), b'x');
    data
}

/// Creates a Kinesis stream and waits until it is ACTIVE.
pub async fn create_stream(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shards: u32,
) -> anyhow::Result<()> {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(i32::try_from(shards)?)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("CreateStream {name}: {}", DisplayErrorContext(e)))?;
    for _ in 0..600 {
        let status = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .ok()
            .and_then(|o| o.stream_description_summary)
            .map(|s| s.stream_status);
        if status == Some(StreamStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("stream {name} did not become ACTIVE within 60 s")
}

/// Deletes a stream (best effort: kinesis-mock keeps everything in memory).
pub async fn delete_stream(client: &aws_sdk_kinesis::Client, name: &str) {
    let _ = client
        .delete_stream()
        .stream_name(name)
        .enforce_consumer_deletion(true)
        .send()
        .await;
}

/// Puts `records` records of `bytes` bytes with distinct partition keys, 500 per call, retrying
/// failed entries.
pub async fn put_records(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    records: u64,
    bytes: usize,
) -> anyhow::Result<()> {
    let mut next = 0u64;
    while next < records {
        let end = (next + 500).min(records);
        let mut pending: Vec<PutRecordsRequestEntry> = (next..end)
            .map(|n| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("pk-{n}"))
                    .data(Blob::new(payload(n, bytes)))
                    .build()
                    .map_err(|e| anyhow::anyhow!("record entry: {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut attempts = 0;
        while !pending.is_empty() {
            attempts += 1;
            anyhow::ensure!(attempts <= 20, "PutRecords kept failing entries");
            let output = client
                .put_records()
                .stream_name(stream)
                .set_records(Some(pending.clone()))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("PutRecords: {}", DisplayErrorContext(e)))?;
            pending = pending
                .into_iter()
                .zip(output.records())
                .filter(|(_, result)| result.error_code().is_some())
                .map(|(entry, _)| entry)
                .collect();
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(100 * attempts)).await;
            }
        }
        next = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_payloads() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(payload(7, 300).len(), 300);
        assert!(payload(7, 300).starts_with(b"record-0000000007-"));
    }

    #[test]
    fn cpu_time_is_readable_and_grows() {
        let clock = CpuClock::new();
        let before = clock.seconds().expect("cpu time");
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(clock.seconds().expect("cpu time") >= before);
    }
}
