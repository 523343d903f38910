//! Helpers for tests that run against the AWS emulators.
//!
//! `scripts/test.sh` (the project's one test command) installs and starts moto (DynamoDB, SES, SNS;
//! served one request at a time, see `tests/emulator_linearizable.rs`) and kinesis-mock, and
//! exports the SDK's standard endpoint variables
//! (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_KINESIS`, `AWS_ENDPOINT_URL`). Tests that need
//! an emulator call [`aws_config`], which fails the test loudly when the variables are missing:
//! an AWS-adapter test never skips silently.

//!
//! [`otlp`] is an in-process OTLP/HTTP receiver for tests of the exported telemetry;
//! [`fixtures`] holds quote-domain fixtures (a valid request, its `QuoteRequested`);
//! [`fault_proxy`] is an HTTP proxy for DynamoDB and Kinesis that injects throttling, 5xx,
//! latency, hangs and dropped connections per operation (also as the `fault-proxy` binary).

use std::time::Duration;

use aws_sdk_kinesis::types::{ShardIteratorType, StreamStatus};

pub mod fault_proxy;
pub mod fixtures;
pub mod otlp;

/// The emulators a test may need, with the variable that points the SDK at each.
const REQUIRED: [&str; 2] = ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_KINESIS"];

/// Panics with instructions unless the emulator endpoints are configured.
pub fn require_emulators() {
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|name| std::env::var(name).map(|v| v.is_empty()).unwrap_or(true))
        .collect();
    assert!(
        missing.is_empty(),
        "this test talks to the AWS emulators but {missing:?} is not set; \
         run the suite with `scripts/test.sh`, which installs and starts them"
    );
}

/// Notes in `$EMULATOR_TEST_LOG` (set by `scripts/test.sh`) that this test binary used the
/// emulators, so the test command can prove the AWS-adapter suites really ran.
fn record_emulator_use() {
    let Ok(path) = std::env::var("EMULATOR_TEST_LOG") else {
        return;
    };
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    // Test binaries are named `<suite>-<hash>`.
    let suite = binary
        .rsplit_once('-')
        .map(|(s, _)| s.to_owned())
        .unwrap_or(binary);
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    // One `write` call per line: test processes append at the same time, and `writeln!` on a
    // file writes each formatted piece with a call of its own, so lines could interleave.
    let line = format!("{suite} {test}\n");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        use std::io::Write;
        let _ = file.write_all(line.as_bytes());
    }
}

/// SDK configuration for the emulators, from the standard environment variables.
pub async fn aws_config() -> aws_config::SdkConfig {
    require_emulators();
    record_emulator_use();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// A name no other test uses (tables and streams are shared by every test of a run).
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Creates a Kinesis stream with `shards` shards and waits until it is ACTIVE.
pub async fn create_stream(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("create stream");
    wait_stream_active(client, name).await;
}

/// Waits until a Kinesis stream is ACTIVE.
pub async fn wait_stream_active(client: &aws_sdk_kinesis::Client, name: &str) {
    for _ in 0..200 {
        let status = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .ok()
            .and_then(|o| o.stream_description_summary)
            .map(|s| s.stream_status);
        if status == Some(StreamStatus::Active) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stream {name} did not become ACTIVE");
}

/// One record read back from Kinesis.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    /// The shard it was read from.
    pub shard_id: String,
    /// Its partition key.
    pub partition_key: String,
    /// Its sequence number.
    pub sequence_number: String,
    /// Its payload.
    pub data: Vec<u8>,
}

/// Reads every record currently in the stream, shard by shard, in sequence order.
pub async fn read_all_records(client: &aws_sdk_kinesis::Client, stream: &str) -> Vec<ReadRecord> {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("list shards")
        .shards
        .unwrap_or_default();
    let mut out = Vec::new();
    for shard in shards {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard.shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("shard iterator")
            .shard_iterator;
        while let Some(it) = iterator {
            let page = client
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .expect("get records");
            let empty = page.records.is_empty();
            for record in page.records {
                out.push(ReadRecord {
                    shard_id: shard.shard_id.clone(),
                    partition_key: record.partition_key.unwrap_or_default(),
                    sequence_number: record.sequence_number,
                    data: record.data.into_inner(),
                });
            }
            if empty {
                break;
            }
            iterator = page.next_shard_iterator;
        }
    }
    out
}

/// A free port for a child's `LISTEN_ADDR`.
///
/// Not an OS-assigned one: that port is free only until the child binds it, and meanwhile the
/// kernel may hand it out again, to another suite's `bind(:0)` or as the local port of one of the
/// hundreds of connections to the emulators. The child then fails to bind while the health probe
/// reaches whoever has the port (a flake seen once in CI). So ports come from below the kernel's
/// ephemeral range (32768 and up on Linux), from a block of 24 of this test process's own
/// (nextest runs every test in its own process), and are checked free before use.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const BLOCK: u16 = 24;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let first = 20_000 + (std::process::id() % 500) as u16 * BLOCK;
    for _ in 0..BLOCK {
        let port = first + NEXT.fetch_add(1, Ordering::Relaxed) % BLOCK;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {first}..{}", first + BLOCK)
}
