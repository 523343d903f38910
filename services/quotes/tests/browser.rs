//! The web pages in a real browser (issue 12): the platform runs as separate processes on the
//! emulators, and `tests/browser/pages.mjs` drives Debian's Chromium (headless) through them
//! with Playwright: sign-in, the request form and its inline errors, a quote priced live without
//! a reload, time travel, a dropped stream resumed by `Last-Event-ID`, a customer's quotes
//! updating live, the operations page showing lag and a dead letter, the API reference, a phone's
//! width, and the pages' weight. It prints what it measured (commit-to-page latency, bytes) and
//! saves screenshots in `target/browser-screenshots/`.
//!
//! What it needs (`scripts/test.sh` installs them): Node.js, `tests/browser/node_modules`
//! (`npm ci --prefix tests/browser`) and Chromium (`/usr/bin/chromium`, or `CHROMIUM`). It
//! fails, never skips, when one is missing.
//!
//! The operations page's lag comes from a staged application: a lease table as a worker left
//! it, reporting 4200 ms behind the tip (a live pipeline on the emulators is rarely behind for
//! long enough to be seen). Its dead letter is real: fulfillment first runs with a bug
//! (failpoint `fulfillment::handle`, `MAX_PROCESSING_ATTEMPTS=2`) until it sets the first
//! quote's request aside, then the fixed fulfillment replaces it.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{
    deploy_fixed_fulfillment, post, requests, start_with_buggy_fulfillment, token, Fleet, Platform,
    POISON_SERVICES,
};
use kinesis_consumer::dead_letter::{DeadLetterStore, DynamoDeadLetters};
use kinesis_consumer::lease_table::{create_lease_table, DynamoLeaseTable};
use kinesis_consumer::{Checkpoint, Lease, LeaseTable, ShardProgress};

/// The repository's root.
fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The staged application's lease table: one shard, owned, 4200 ms behind the tip.
async fn stage_lagging_application(dynamo: &aws_sdk_dynamodb::Client, table: &str) {
    create_lease_table(dynamo, table)
        .await
        .expect("create lease table");
    let leases = DynamoLeaseTable::new(dynamo.clone(), table.to_owned());
    let lease = Lease::new("shardId-000000000000", Checkpoint::TrimHorizon);
    leases.create_if_absent(&lease).await.expect("create lease");
    let held = leases.take(&lease, "report-worker-1").await.expect("take");
    leases
        .renew(&Lease {
            progress: Some(ShardProgress {
                millis_behind_latest: 4_200,
                records_since_checkpoint: 12,
            }),
            ..held
        })
        .await
        .expect("renew with progress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_in_a_real_browser() {
    let repository = repository();
    let script = repository.join("tests/browser/pages.mjs");
    assert!(
        repository
            .join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "Playwright is missing: run `npm ci --prefix tests/browser` (scripts/test.sh does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).is_file(),
        "Chromium is missing at {chromium}: `apt-get install chromium` (scripts/test.sh does), or set CHROMIUM"
    );

    let sdk = testkit::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let platform = Platform::new();
    platform.bootstrap();
    let staged_table = format!("{}-leases", testkit::unique_name("browser-reporting"));
    stage_lagging_application(&dynamo, &staged_table).await;

    let mut watched: Vec<String> = POISON_SERVICES
        .iter()
        .map(|s| format!("{s}={}", platform.lease_tables[s]))
        .collect();
    watched.push(format!("reporting={staged_table}"));
    let mut fleet = Fleet::default();
    let mut source = platform.command("event-source");
    source.env("OPS_APPLICATIONS", watched.join(","));
    let source_port = start_with_buggy_fulfillment(&platform, &mut fleet, source).await;
    let base = format!("http://127.0.0.1:{source_port}");

    // The poisoned quote: requested first, so its request is the record fulfillment fails on.
    let http = reqwest::Client::new();
    let run = testkit::unique_name("b")[2..].to_owned();
    let poison = post(&http, &base, &requests(&run)[0]).await;
    let letters = DynamoDeadLetters::new(dynamo.clone(), platform.var("DEAD_LETTER_TABLE"));
    let started = Instant::now();
    while letters
        .letters("fulfillment")
        .await
        .expect("dead letters")
        .is_empty()
    {
        fleet.assert_running(&[]);
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "fulfillment set nothing aside in 90 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The fix is deployed: the poisoned quote's records stay set aside, every later quote is
    // priced.
    deploy_fixed_fulfillment(&platform, &mut fleet).await;

    let customer = format!("browser-{}", &run[..8]);
    let screenshots = common::bin_dir()
        .parent()
        .expect("target/")
        .join("browser-screenshots");
    let node = tokio::process::Command::new("node")
        .arg(&script)
        .current_dir(repository.join("tests/browser"))
        .env("BASE_URL", &base)
        .env("CUSTOMER", &customer)
        .env("CUSTOMER_TOKEN", token(&customer, false))
        .env("AGENT_TOKEN", token("agent-browser", true))
        .env("POISON_QUOTE", &poison)
        .env("STAGED_APP", "reporting")
        .env("SCREENSHOTS", &screenshots)
        .env("CHROMIUM", &chromium)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node (Node.js 18+ is needed)");
    let output = tokio::time::timeout(Duration::from_secs(600), node.wait_with_output())
        .await
        .expect("the browser test finishes within 10 minutes")
        .expect("the browser test's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    fleet.assert_running(&["fulfillment".to_owned()]);
    assert!(
        output.status.success(),
        "the browser test failed ({:?}); screenshots in {}",
        output.status,
        screenshots.display()
    );
    let result = stdout
        .lines()
        .find_map(|line| line.strip_prefix("RESULT "))
        .expect("the browser test's RESULT line");
    let result: serde_json::Value = serde_json::from_str(result).expect("RESULT is JSON");
    println!(
        "browser: commit to page p50 {} ms over {} events (max {} ms); pages {} bytes; screenshots in {}",
        result["commit_to_page_ms"]["p50"],
        result["commit_to_page_ms"]["samples"],
        result["commit_to_page_ms"]["max"],
        result["page_bytes"],
        screenshots.display()
    );
}
