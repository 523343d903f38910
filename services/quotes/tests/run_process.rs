//! `quotes` as a user meets it: `--help` and `--version`, every invalid setting reported at
//! once, secrets never printed, and `quotes run` printing a token and a first request that
//! works (`examples/quote.json`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn quotes() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quotes"));
    for (name, _) in std::env::vars() {
        let ours = !name.starts_with("CARGO") && !matches!(name.as_str(), "PATH" | "HOME");
        if ours {
            command.env_remove(name);
        }
    }
    command
}

#[test]
fn version_and_help_list_every_variable_without_secret_values() {
    let version = quotes().arg("--version").output().unwrap();
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("quotes {}", env!("CARGO_PKG_VERSION"))
    );

    let secret = "a-secret-that-must-never-be-printed";
    let help = quotes()
        .args(["run", "--help"])
        .env("AUTH_HS256_SECRET", secret)
        .env("DRIVER_HISTORY_TOKEN", secret)
        .env("EVENTS_TABLE", "shown-table")
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(!help.contains(secret), "a secret in --help:\n{help}");
    assert!(help.contains("EVENTS_TABLE=shown-table"), "{help}");

    let settings = quotes()
        .args(["settings", "--output", "json"])
        .output()
        .unwrap();
    let settings: serde_json::Value = serde_json::from_slice(&settings.stdout).unwrap();
    let run_settings: Vec<&str> = settings
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["commands"].as_array().unwrap().iter().any(|c| c == "run"))
        .map(|s| s["variable"].as_str().unwrap())
        .collect();
    assert!(run_settings.len() > 40, "{run_settings:?}");
    for variable in run_settings {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "{variable} is not in `quotes run --help`"
        );
    }
}

#[test]
fn every_invalid_setting_is_reported_at_once() {
    let output = quotes()
        .args(["run", "driver-history"])
        .env("LEASE_DURATION_MS", "soon")
        .env("RELAY_STORE_CONCURRENCY", "0")
        .env("CONSUMER_INITIAL_POSITION", "EARLIEST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for variable in [
        "LEASE_DURATION_MS",
        "RELAY_STORE_CONCURRENCY",
        "CONSUMER_INITIAL_POSITION",
        // Checked as if the invalid values had their defaults: the missing provider too.
        "DRIVER_HISTORY_PROVIDER",
    ] {
        assert!(
            stderr.contains(variable),
            "{variable} missing from:\n{stderr}"
        );
    }
    assert!(stderr.contains("4 invalid settings"), "{stderr}");
}

#[test]
fn a_secret_is_never_echoed_in_an_error() {
    let output = quotes()
        .args(["run", "event-source"])
        .env("AUTH_HS256_SECRET", "short-secret")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("AUTH_HS256_SECRET is too short"),
        "{stderr}"
    );
    assert!(!stderr.contains("short-secret"), "{stderr}");
}

#[tokio::test]
async fn quotes_run_prints_a_token_and_a_first_request_that_works() {
    let port = testkit::free_port();
    let mut child = quotes()
        .arg("run")
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.trim_start().starts_with("try");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(Duration::from_secs(60), lines)
        .await
        .expect("the banner within 60 s")
        .unwrap();
    let banner = lines.join("\n");
    assert!(
        banner.contains(&format!("http://127.0.0.1:{port}")),
        "{banner}"
    );
    let token = lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("token"))
        .map(str::trim)
        .expect("a token line")
        .to_owned();
    let try_line = lines.last().unwrap();
    assert!(try_line.contains(&token) && try_line.contains("@examples/quote.json"));

    // The request of the `try` line, as curl would send it from the repository root.
    let body =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/quote.json"))
            .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let reply = http
        .post(format!("{base}/v1/quotes"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 202);
    let quote: serde_json::Value = reply.json().await.unwrap();
    let id = quote["quote_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let reply = http
            .get(format!("{base}/v1/quotes/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if reply.status().is_success() {
            let quote: serde_json::Value = reply.json().await.unwrap();
            if quote["status"] != "pending" {
                break quote["status"].as_str().unwrap().to_owned();
            }
        }
        assert!(Instant::now() < deadline, "quote {id} still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, "quoted");
    let _ = child.kill();
    let _ = child.wait();
}
