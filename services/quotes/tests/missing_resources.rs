//! A service whose table is missing says so once, naming the command that creates it, reports
//! not ready, and starts by itself once `quotes bootstrap` has created what it needs (on the
//! emulators).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

async fn status(http: &reqwest::Client, url: &str) -> Option<(u16, String)> {
    let reply = http.get(url).send().await.ok()?;
    let code = reply.status().as_u16();
    Some((code, reply.text().await.unwrap_or_default()))
}

#[tokio::test]
async fn a_missing_lease_table_is_reported_once_and_the_service_starts_once_it_exists() {
    let _sdk = testkit::aws_config().await;
    let names = [
        ("EVENTS_TABLE", testkit::unique_name("mr-events")),
        ("IDEMPOTENCY_TABLE", testkit::unique_name("mr-idempotency")),
        ("EVENT_STREAM", testkit::unique_name("mr-stream")),
        ("READ_MODEL_TABLE", testkit::unique_name("mr-read-model")),
        ("DEAD_LETTER_TABLE", testkit::unique_name("mr-dead-letters")),
        (
            "RELAY_DEAD_LETTER_TABLE",
            testkit::unique_name("mr-relay-dl"),
        ),
        (
            "NOTIFICATIONS_TABLE",
            testkit::unique_name("mr-notifications"),
        ),
        ("LEASE_TABLE", testkit::unique_name("mr-projector-leases")),
        ("EVENT_STREAM_SHARDS", "1".to_owned()),
        ("CONSUMER_APPLICATIONS", testkit::unique_name("mr-app")),
        ("RUST_LOG", "warn,quotes=info".to_owned()),
    ];
    let port = testkit::free_port();
    let mut projector = Command::new(env!("CARGO_BIN_EXE_quotes"))
        .args(["run", "projector"])
        .envs(names.iter().map(|(k, v)| (*k, v.as_str())))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");

    // Not ready, saying why, while the resources are missing; alive all the same.
    let deadline = Instant::now() + Duration::from_secs(30);
    let reason = loop {
        if let Some((503, reason)) = status(&http, &format!("{base}/readyz")).await {
            break reason;
        }
        assert!(Instant::now() < deadline, "no 503 from /readyz");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(reason.contains("quotes bootstrap"), "{reason}");
    assert!(reason.contains(&names[7].1), "{reason}");
    assert_eq!(
        status(&http, &format!("{base}/healthz")).await.map(|s| s.0),
        Some(200)
    );
    // Two rechecks later, still one message.
    tokio::time::sleep(Duration::from_secs(11)).await;

    let bootstrap = Command::new(env!("CARGO_BIN_EXE_quotes"))
        .arg("bootstrap")
        .envs(names.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(bootstrap.success());

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, _)) = status(&http, &format!("{base}/readyz")).await {
            break;
        }
        assert!(Instant::now() < deadline, "not ready 60 s after bootstrap");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &projector.id().to_string()])
        .status();
    let _ = projector.wait();
    let mut stderr = String::new();
    projector
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        stderr.matches("missing AWS resources").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("lease table scan failed").count(),
        0,
        "{stderr}"
    );
}
