//! The README as a user follows it: its configuration table is what `quotes settings --output
//! markdown` prints (every setting with the default and meaning the code declares;
//! `UPDATE_README=1 cargo test -p quotes --test readme` rewrites it), and its block of one
//! process per service runs as written.

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

const BEGIN: &str = "<!-- settings:begin";
const END: &str = "<!-- settings:end -->";

#[test]
fn the_readme_lists_every_setting_as_declared() {
    let output = Command::new(env!("CARGO_BIN_EXE_quotes"))
        .args(["settings", "--output", "markdown"])
        .output()
        .expect("run quotes settings");
    assert!(output.status.success(), "{output:?}");
    let table = String::from_utf8(output.stdout).expect("UTF-8");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let begin = readme
        .find(BEGIN)
        .expect("the README has the settings:begin marker");
    let begin = begin + readme[begin..].find('\n').expect("marker line") + 1;
    let end = readme
        .find(END)
        .expect("the README has the settings:end marker");
    if readme[begin..end] == table {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{table}{}", &readme[..begin], &readme[end..]);
        std::fs::write(&path, updated).expect("write README.md");
        return;
    }
    panic!(
        "README.md's configuration table differs from the declared settings; run \
         `UPDATE_README=1 cargo test -p quotes --test readme`. Expected:\n{table}"
    );
}

/// The README's block of one process per service, run by a shell as written, on the emulators
/// (after `quotes bootstrap`, like the README's block before it): every process answers its
/// health checks on its own port, a quote is priced through the API on 8080, and the archiver
/// puts every record of the stream into the archive.
#[tokio::test]
async fn the_readme_multi_process_instructions_work_as_written() {
    let sdk = testkit::aws_config().await;
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let marker = readme
        .find("<!-- readme:multi-process -->")
        .expect("the README marks its multi-process block");
    let block = &readme[marker..];
    let start = block.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = start + block[start..].find("```").expect("the block's end");
    let block = &block[start..end];
    let ports: Vec<u16> = block
        .lines()
        .filter_map(|line| line.split("LISTEN_ADDR=127.0.0.1:").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(ports.len(), 7, "{block}");

    // The README's defaults, except the event store's names (unique per run); the consumers
    // use the default lease tables, which start empty (see `.config/nextest.toml`).
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let lease_tables = [
        "vehicle-enricher-leases",
        "driver-history-leases",
        "fulfillment-leases",
        "projector-leases",
        "notifier-leases",
        "archiver-leases",
    ];
    for table in lease_tables {
        let _ = dynamodb.delete_table().table_name(table).send().await;
    }
    let secret = "readme-test-secret-0123456789";
    let env = [
        ("EVENTS_TABLE", testkit::unique_name("readme-events")),
        (
            "IDEMPOTENCY_TABLE",
            testkit::unique_name("readme-idempotency"),
        ),
        ("EVENT_STREAM", testkit::unique_name("readme-stream")),
        (
            "READ_MODEL_TABLE",
            testkit::unique_name("readme-read-model"),
        ),
        (
            "DEAD_LETTER_TABLE",
            testkit::unique_name("readme-dead-letters"),
        ),
        (
            "RELAY_DEAD_LETTER_TABLE",
            testkit::unique_name("readme-relay-dl"),
        ),
        (
            "NOTIFICATIONS_TABLE",
            testkit::unique_name("readme-notifications"),
        ),
        ("EVENT_STREAM_SHARDS", "2".to_owned()),
        ("ARCHIVE_BUCKET", testkit::unique_name("readme-archive")),
        (
            "ARCHIVE_MANIFEST_TABLE",
            testkit::unique_name("readme-manifest"),
        ),
        ("ARCHIVE_SEGMENT_SECS", "1".to_owned()),
        ("AUTH_HS256_SECRET", secret.to_owned()),
        ("DRIVER_HISTORY_PROVIDER", "simulated".to_owned()),
        ("VPIC_BASE_URL", "off".to_owned()),
        (
            "NOTIFY_FROM_EMAIL",
            format!("{}@quotes.example.com", testkit::unique_name("readme")),
        ),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_quotes"));
    let path = format!(
        "{}:{}",
        binary.parent().expect("the binary's folder").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let bootstrap = Command::new(&binary)
        .arg("bootstrap")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("quotes bootstrap");
    assert!(bootstrap.success());

    // The block as written, then `wait`: the shell stays the processes' parent, and killing its
    // process group stops them all.
    let mut shell = Command::new("bash")
        .args(["-c", &format!("set -e\n{block}\nwait")])
        .env("PATH", &path)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .process_group(0)
        .spawn()
        .expect("bash");
    let group = shell.id();
    let stop = Stopper(group);

    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    for port in &ports {
        loop {
            let ready = http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(
                shell.try_wait().expect("the shell").is_none(),
                "the block's shell exited"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "port {port} not ready in 90 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let token = event_source::auth::mint_hs256(
        secret,
        "cust-42",
        false,
        std::time::Duration::from_secs(600),
        None,
        None,
    )
    .expect("token");
    let body =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/quote.json"))
            .expect("examples/quote.json");
    let reply = http
        .post("http://127.0.0.1:8080/v1/quotes")
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(reply.status().as_u16(), 202);
    let id = reply.json::<serde_json::Value>().await.expect("JSON")["quote_id"]
        .as_str()
        .expect("quote_id")
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let reply = http
            .get(format!("http://127.0.0.1:8080/v1/quotes/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("GET");
        if reply.status().is_success() {
            let quote: serde_json::Value = reply.json().await.expect("JSON");
            if quote["status"] != "pending" {
                assert_eq!(quote["status"], "quoted", "{quote}");
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "quote {id} still pending"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let setting = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .expect("set")
    };
    let archive = common::ArchiveNames {
        stream: setting("EVENT_STREAM"),
        bucket: setting("ARCHIVE_BUCKET"),
        manifest: setting("ARCHIVE_MANIFEST_TABLE"),
    };
    let check = common::check_archive(&sdk, &archive, std::time::Duration::from_secs(60)).await;
    assert!(
        check.exact() && check.archived > 0,
        "the archiver archived {check:?}"
    );
    drop(stop);
    let _ = shell.wait();
    for table in lease_tables {
        let _ = dynamodb.delete_table().table_name(table).send().await;
    }
}

/// SIGTERM to a process group when dropped (also when the test fails).
struct Stopper(u32);

impl Drop for Stopper {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0)])
            .status();
    }
}
