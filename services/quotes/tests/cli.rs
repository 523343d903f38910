//! End-to-end tests of the operations commands of the `quotes` binary: `token` (checked by event-source's own
//! authenticator), `bootstrap` against the AWS emulators (run twice: created, then exists) and
//! a short in-memory `bench ingest`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use event_source::auth::Authenticator;
use event_source::config::{AuthConfig, AuthKeys};

const SECRET: &str = "quotes-cli-test-secret-0123456789";

/// The binary with a clean auth environment.
fn quotes() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quotes"));
    for name in [
        "AUTH_HS256_SECRET",
        "AUTH_JWKS_URL",
        "AUTH_ISSUER",
        "AUTH_AUDIENCE",
        "BACKEND",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("run quotes");
    assert!(
        output.status.success(),
        "quotes failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

fn authenticator(secret: &str) -> Authenticator {
    Authenticator::new(&AuthConfig {
        keys: AuthKeys::Hs256Secret(secret.into()),
        issuer: None,
        audience: None,
    })
}

#[tokio::test]
async fn token_is_a_jwt_event_source_accepts() {
    let output = run(quotes()
        .args(["token", "--customer", "cust-1"])
        .env("AUTH_HS256_SECRET", SECRET));
    let token = stdout(&output).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
    assert!(
        output.stderr.is_empty(),
        "no note expected with a secret set"
    );
    let principal = authenticator(SECRET).verify(&token).await.unwrap();
    assert_eq!(principal.subject, "cust-1");
    assert!(!principal.agent);
    assert!(
        authenticator("another-secret-of-enough-length")
            .verify(&token)
            .await
            .is_err(),
        "a token signed with another secret must be refused"
    );

    let output = run(quotes()
        .args([
            "token",
            "--customer",
            "cust-1",
            "--agent",
            "--ttl-secs",
            "60",
        ])
        .env("AUTH_HS256_SECRET", SECRET));
    let principal = authenticator(SECRET)
        .verify(stdout(&output).trim())
        .await
        .unwrap();
    assert_eq!(principal.subject, "cust-1");
    assert!(principal.agent);
}

#[tokio::test]
async fn token_falls_back_to_the_dev_secret_with_a_note() {
    let output = run(quotes().args(["token", "--customer", "cust-2"]));
    assert!(String::from_utf8_lossy(&output.stderr).contains("dev secret"));
    let principal = authenticator(event_source::config::DEV_SECRET)
        .verify(stdout(&output).trim())
        .await
        .unwrap();
    assert_eq!(principal.subject, "cust-2");
}

#[tokio::test]
async fn bootstrap_creates_then_finds_the_resources() {
    let sdk = testkit::aws_config().await;
    let events = testkit::unique_name("qctl-events");
    let idempotency = testkit::unique_name("qctl-idem");
    let stream = testkit::unique_name("qctl-stream");
    let read_model = testkit::unique_name("qctl-quotes");
    let dead_letters = testkit::unique_name("qctl-dlq");
    let relay_dead_letters = testkit::unique_name("qctl-relay-dlq");
    let notifications = testkit::unique_name("qctl-notes");
    let sender = format!("{}@example.com", testkit::unique_name("quotes"));
    let app = testkit::unique_name("qctl-app");
    let leases = format!("{app}-leases");
    // A consumer service run with LEASE_TABLE uses that table: bootstrap creates it too.
    let custom_leases = testkit::unique_name("qctl-custom-leases");
    let manifest = testkit::unique_name("qctl-manifest");
    let bucket = testkit::unique_name("qctl-archive");
    let bootstrap = |output: &str| {
        let mut command = quotes();
        command
            .args(["bootstrap", "--output", output])
            .env("LEASE_TABLE", &custom_leases)
            .env("EVENTS_TABLE", &events)
            .env("IDEMPOTENCY_TABLE", &idempotency)
            .env("EVENT_STREAM", &stream)
            .env("EVENT_STREAM_SHARDS", "2")
            .env("READ_MODEL_TABLE", &read_model)
            .env("DEAD_LETTER_TABLE", &dead_letters)
            .env("RELAY_DEAD_LETTER_TABLE", &relay_dead_letters)
            .env("NOTIFICATIONS_TABLE", &notifications)
            .env("NOTIFY_FROM_EMAIL", &sender)
            .env("ARCHIVE_MANIFEST_TABLE", &manifest)
            .env("ARCHIVE_BUCKET", &bucket)
            .env("CONSUMER_APPLICATIONS", &app);
        stdout(&run(&mut command))
    };

    let first = bootstrap("text");
    assert_eq!(
        first.lines().collect::<Vec<_>>(),
        [
            format!("created table {events}"),
            format!("created table {idempotency}"),
            format!("created table {read_model}"),
            format!("created table {dead_letters}"),
            format!("created table {relay_dead_letters}"),
            format!("created table {notifications}"),
            format!("created table {manifest}"),
            format!("created table {leases}"),
            format!("created table {custom_leases}"),
            format!("created stream {stream} (2 shards)"),
            format!("created bucket {bucket}"),
            format!("created email identity {sender}"),
        ],
        "{first}"
    );
    let second = bootstrap("text");
    assert_eq!(
        second.lines().collect::<Vec<_>>(),
        [
            format!("exists  table {events}"),
            format!("exists  table {idempotency}"),
            format!("exists  table {read_model}"),
            format!("exists  table {dead_letters}"),
            format!("exists  table {relay_dead_letters}"),
            format!("exists  table {notifications}"),
            format!("exists  table {manifest}"),
            format!("exists  table {leases}"),
            format!("exists  table {custom_leases}"),
            format!("exists  stream {stream} (2 shards)"),
            format!("exists  bucket {bucket}"),
            format!("exists  email identity {sender}"),
        ],
        "{second}"
    );

    let third: serde_json::Value = serde_json::from_str(&bootstrap("json")).expect("JSON report");
    let resources = third["resources"].as_array().expect("resources");
    assert_eq!(resources.len(), 12, "{third}");
    assert!(
        resources.iter().all(|r| r["outcome"] == "exists"),
        "{third}"
    );
    assert!(resources
        .iter()
        .any(|r| r["kind"] == "table" && r["name"] == custom_leases.as_str()));

    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    for table in [
        &events,
        &idempotency,
        &read_model,
        &dead_letters,
        &relay_dead_letters,
        &notifications,
        &manifest,
        &leases,
        &custom_leases,
    ] {
        let description = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .table
            .unwrap();
        assert_eq!(
            description.table_status,
            Some(aws_sdk_dynamodb::types::TableStatus::Active)
        );
    }
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let summary = kinesis
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    assert_eq!(
        summary.stream_status,
        aws_sdk_kinesis::types::StreamStatus::Active
    );
    assert_eq!(summary.open_shard_count, 2);
}

#[test]
fn a_short_in_memory_benchmark_reports_both_sides() {
    let output = run(quotes()
        .args([
            "bench",
            "ingest",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--concurrency",
            "2",
            "--baseline",
            "memory",
        ])
        .env("BACKEND", "memory"));
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    for side in ["target", "baseline"] {
        let rps = report[side]["rps"].as_f64().unwrap();
        assert!(rps > 0.0, "{side}: {report}");
        assert_eq!(report[side]["errors"], 0, "{side}: {report}");
        for field in ["requests", "p50_ms", "p95_ms", "p99_ms", "max_ms"] {
            assert!(report[side][field].is_number(), "{side}.{field}: {report}");
        }
    }
    assert!(report["ratio_rps"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["ratio_p50"].is_number(), "{report}");
    assert_eq!(report["concurrency"], 2);
    assert_eq!(report["duration_s"], 1.0);
    assert_eq!(report["backend"], "memory");
}

#[tokio::test]
async fn leases_prints_the_lease_table() {
    use kinesis_consumer::{Checkpoint, Lease, LeaseTable};
    let sdk = testkit::aws_config().await;
    let app = testkit::unique_name("qctl-leases");
    let table_name = format!("{app}-leases");
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    kinesis_consumer::lease_table::create_lease_table(&dynamodb, &table_name)
        .await
        .expect("table");
    let table = kinesis_consumer::lease_table::DynamoLeaseTable::new(dynamodb, table_name);
    let lease = Lease::new("shardId-000000000000", Checkpoint::TrimHorizon);
    table.create_if_absent(&lease).await.expect("create");
    table.take(&lease, "worker-1").await.expect("take");
    table
        .create_if_absent(&Lease::new("shardId-000000000001", Checkpoint::Latest))
        .await
        .expect("create");
    let output = run(quotes().args(["leases", "--app", &app, "--sample-ms", "100"]));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("SHARD"), "{text}");
    assert!(
        lines[1].contains("shardId-000000000000")
            && lines[1].contains("worker-1")
            && lines[1].contains("stalled"),
        "{text}"
    );
    assert!(
        lines[2].contains("shardId-000000000001")
            && lines[2].contains("unowned")
            && lines[2].contains("LATEST"),
        "{text}"
    );
    let output = run(quotes().args([
        "leases",
        "--app",
        &app,
        "--sample-ms",
        "100",
        "--output",
        "json",
    ]));
    let leases: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let leases = leases.as_array().expect("one object per lease");
    assert_eq!(leases.len(), 2);
    assert_eq!(leases[0]["shard"], "shardId-000000000000");
    assert_eq!(leases[0]["owner"], "worker-1");
    assert!(leases[0]["state"].as_str().unwrap().starts_with("stalled"));
    assert_eq!(leases[1]["state"], "unowned");
}
