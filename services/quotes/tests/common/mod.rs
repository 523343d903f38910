//! What the multi-process end-to-end suites share: the real binaries started as separate
//! processes on the emulators, fresh resources per run, quote requests.
//!
//! The `quotes` binary is looked up next to the test's executable (`target/<profile>/`), so the
//! chaos and soak examples find it too: cargo builds it for the tests of its package, and
//! `cargo build --workspace --bins` (`scripts/test.sh`) for the examples.

// Each suite uses a part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quote_domain::driver_simulation::simulate;
use quote_domain::{LicenseNumber, LicenseStatus, UsState, Vin};
use serde_json::{json, Value};

pub const SECRET: &str = "e2e-test-secret-0123456789";
pub const QUOTES: usize = 50;
pub const CUSTOMERS: usize = 5;
pub const FINAL: [&str; 3] = ["quoted", "declined", "referred"];
pub const SERVICES: [&str; 5] = [
    "vehicle-enricher",
    "driver-history",
    "fulfillment",
    "projector",
    "notifier",
];

/// Every consumer service: [`SERVICES`] (which handle the quote's events) and the archiver
/// (which writes every record to the archive, and has no spans or read model of its own).
pub const CONSUMERS: [&str; 6] = [
    "vehicle-enricher",
    "driver-history",
    "fulfillment",
    "projector",
    "notifier",
    "archiver",
];

/// `target/<profile>/`, where cargo puts the workspace's binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<suite>-<hash>
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf()
}

/// The `quotes` binary.
pub fn binary() -> PathBuf {
    let path = bin_dir().join(format!("quotes{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "binary {} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

pub use testkit::free_port;

/// The resources of one run, as environment variables.
pub struct Platform {
    /// Variables every process gets.
    pub env: Vec<(String, String)>,
    /// Per service: its application's lease table.
    pub lease_tables: HashMap<&'static str, String>,
    /// The events table.
    pub events_table: String,
    /// The idempotency table.
    pub idempotency_table: String,
    /// The read model table.
    pub read_model_table: String,
}

impl Platform {
    pub fn new() -> Self {
        let applications: Vec<(&'static str, String)> = CONSUMERS
            .iter()
            .map(|s| (*s, testkit::unique_name(&format!("e2e-{s}"))))
            .collect();
        let events_table = testkit::unique_name("e2e-events");
        let idempotency_table = testkit::unique_name("e2e-idempotency");
        let read_model_table = testkit::unique_name("e2e-read-model");
        let env = vec![
            ("EVENTS_TABLE", events_table.clone()),
            ("IDEMPOTENCY_TABLE", idempotency_table.clone()),
            ("EVENT_STREAM", testkit::unique_name("e2e-stream")),
            ("EVENT_STREAM_SHARDS", "4".to_owned()),
            ("READ_MODEL_TABLE", read_model_table.clone()),
            (
                "DEAD_LETTER_TABLE",
                testkit::unique_name("e2e-dead-letters"),
            ),
            (
                "NOTIFICATIONS_TABLE",
                testkit::unique_name("e2e-notifications"),
            ),
            (
                "NOTIFY_FROM_EMAIL",
                format!("{}@quotes.example.com", testkit::unique_name("noreply")),
            ),
            (
                "CONSUMER_APPLICATIONS",
                applications
                    .iter()
                    .map(|(_, a)| a.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("AUTH_HS256_SECRET", SECRET.to_owned()),
            ("ARCHIVE_BUCKET", testkit::unique_name("e2e-archive")),
            (
                "ARCHIVE_MANIFEST_TABLE",
                testkit::unique_name("e2e-archive-manifest"),
            ),
            // Segments close within 5 s, so the archive catches up soon after the drain (the
            // checks wait up to 60 s) without adding much to what moto serves one at a time.
            ("ARCHIVE_SEGMENT_SECS", "5".to_owned()),
            // `warn` unless the run asks for more (`RUST_LOG=info,kinesis_consumer=debug
            // scripts/chaos.sh …` to follow leases and shards).
            (
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            env,
            lease_tables: applications
                .into_iter()
                .map(|(s, a)| (s, format!("{a}-leases")))
                .collect(),
            events_table,
            idempotency_table,
            read_model_table,
        }
    }

    /// The value of one of the platform's variables.
    pub fn var(&self, name: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} is not a platform variable"))
    }

    /// Where the archive of this run is: stream, bucket, manifest table.
    pub fn archive(&self) -> ArchiveNames {
        ArchiveNames {
            stream: self.var("EVENT_STREAM"),
            bucket: self.var("ARCHIVE_BUCKET"),
            manifest: self.var("ARCHIVE_MANIFEST_TABLE"),
        }
    }

    /// `quotes run SERVICE` with the platform's environment.
    pub fn command(&self, service: &str) -> Command {
        self.quotes(&["run", service])
    }

    /// `quotes run SERVICE` for a consumer service of the poison tests: its own lease table,
    /// VINs decoded offline, the simulated driver-record provider, and a record set aside after
    /// two failed attempts.
    pub fn consumer(&self, service: &str) -> Command {
        let mut command = self.command(service);
        command
            .env("LEASE_TABLE", &self.lease_tables[service])
            .env("VPIC_BASE_URL", "off")
            .env("DRIVER_HISTORY_PROVIDER", "simulated")
            .env("MAX_PROCESSING_ATTEMPTS", "2");
        command
    }

    /// `quotes ARGS…` with the platform's environment. Its stdout and stderr (logs, at
    /// `RUST_LOG=warn` unless set) go to the test's output, which the test runner shows when
    /// the test fails.
    pub fn quotes(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("FAILPOINTS")
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        command
    }

    /// `quotes bootstrap`: the tables, the stream, the lease tables, the SES identity.
    pub fn bootstrap(&self) {
        let status = self
            .quotes(&["bootstrap"])
            .status()
            .expect("run quotes bootstrap");
        assert!(status.success(), "quotes bootstrap failed: {status:?}");
    }
}

/// The processes of a run; stopped (SIGTERM, then SIGKILL) when dropped, also on panic.
#[derive(Default)]
pub struct Fleet {
    processes: Vec<(String, Child)>,
}

impl Fleet {
    /// Starts `command` with a free `LISTEN_ADDR`; returns the port.
    pub fn spawn(&mut self, label: String, mut command: Command) -> u16 {
        let port = free_port();
        command.env("LISTEN_ADDR", format!("127.0.0.1:{port}"));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {label}: {e}"));
        self.processes.push((label, child));
        port
    }

    /// SIGKILL of the process labelled `label`.
    pub fn kill_9(&mut self, label: &str) {
        let (_, child) = self
            .processes
            .iter_mut()
            .find(|(l, _)| l == label)
            .unwrap_or_else(|| panic!("no process {label}"));
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
    }

    /// Fails when a process exited on its own.
    pub fn assert_running(&mut self, killed: &[String]) {
        for (label, child) in &mut self.processes {
            if killed.contains(label) {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{label} exited unexpectedly: {status:?}");
            }
        }
    }
}

impl Fleet {
    /// Stops every process still running with SIGTERM (SIGKILL after 10 s) and waits for it;
    /// returns how each process ended (`None`: it ignored SIGTERM and was killed, or was
    /// already reaped).
    pub fn stop(&mut self) -> Vec<(String, Option<std::process::ExitStatus>)> {
        for (_, child) in &mut self.processes {
            if let Ok(None) = child.try_wait() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .status();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ended = Vec::new();
        for (label, mut child) in self.processes.drain(..) {
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    Err(_) => break None,
                    Ok(None) if Instant::now() >= deadline => {
                        eprintln!("{label} ignored SIGTERM; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break None;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            };
            ended.push((label, status));
        }
        ended
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The consumer services of the poison tests (no notifier or archiver).
pub const POISON_SERVICES: [&str; 4] = [
    "vehicle-enricher",
    "driver-history",
    "fulfillment",
    "projector",
];

/// Starts `source` (event-source) and [`POISON_SERVICES`], fulfillment deployed with a bug
/// (every record fails: failpoint `fulfillment::handle`); event-source's port once every
/// process is healthy.
pub async fn start_with_buggy_fulfillment(
    platform: &Platform,
    fleet: &mut Fleet,
    source: Command,
) -> u16 {
    let source_port = fleet.spawn("event-source".to_owned(), source);
    let mut ports = vec![("event-source".to_owned(), source_port)];
    for service in POISON_SERVICES {
        let mut c = platform.consumer(service);
        if service == "fulfillment" {
            c.env("FAILPOINTS", "fulfillment::handle=return");
        }
        ports.push((service.to_owned(), fleet.spawn(service.to_owned(), c)));
    }
    for (label, port) in &ports {
        wait_healthy(label, *port).await;
    }
    source_port
}

/// The fix is deployed: fulfillment is killed and the same service without the bug started
/// (`fulfillment-fixed`); returns once it is healthy.
pub async fn deploy_fixed_fulfillment(platform: &Platform, fleet: &mut Fleet) {
    fleet.kill_9("fulfillment");
    let fixed_port = fleet.spawn(
        "fulfillment-fixed".to_owned(),
        platform.consumer("fulfillment"),
    );
    wait_healthy("fulfillment-fixed", fixed_port).await;
}

pub async fn wait_healthy(label: &str, port: u16) {
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{label} did not become healthy on port {port}");
}

pub fn token(sub: &str, agent: bool) -> String {
    event_source::auth::mint_hs256(SECRET, sub, agent, Duration::from_secs(900), None, None)
        .expect("token")
}

/// A valid VIN: one of five makes, serial `n`.
pub fn vin(n: usize) -> String {
    // (WMI + VDS, model-year and plant): Honda, Tesla, Ford, Toyota, BMW.
    const TEMPLATES: [(&str, &str); 5] = [
        ("1HGCM826", "3A"),
        ("5YJ3E1EA", "KF"),
        ("1FAFP404", "2F"),
        ("JT2BG22K", "1W"),
        ("WBA3A5C5", "CF"),
    ];
    let (head, tail) = TEMPLATES[n % TEMPLATES.len()];
    let draft = format!("{head}0{tail}{:06}", 100_000 + n * 37);
    let check = Vin::compute_check_digit(&draft).expect("17 characters");
    let vin = format!("{head}{check}{tail}{:06}", 100_000 + n * 37);
    Vin::parse(&vin).unwrap_or_else(|e| panic!("{vin} invalid: {e:?}"));
    vin
}

/// A licence number whose simulated history (the driver-history service runs with
/// `DRIVER_HISTORY_PROVIDER=simulated`) has no accident (most requests), one or more accidents
/// (every fifth), or a licence that is not valid (every tenth).
pub fn license(n: usize) -> String {
    let today = time::OffsetDateTime::now_utc().date();
    let state = UsState::parse("VA").expect("state");
    (0..100_000usize)
        .map(|c| format!("T{:08}", 10_000_000 + n * 100_000 + c))
        .find(|number| {
            let history = simulate(
                state,
                &LicenseNumber::parse(number).expect("licence"),
                today,
            );
            let valid = history.license_status == LicenseStatus::Valid;
            match n % 10 {
                3 => !valid,
                1 | 6 => valid && !history.accidents.is_empty(),
                _ => valid && history.accidents.is_empty() && history.violations.is_empty(),
            }
        })
        .expect("a licence with the wanted history")
}

/// One quote request of the scenario and what it asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub customer: String,
    pub email: String,
    pub phone: Option<String>,
    pub sms: bool,
    pub max_premium_dollars: u64,
    pub body: Value,
}

pub fn requests(run: &str) -> Vec<Request> {
    (0..QUOTES)
        .map(|n| {
            let customer = format!("cust-{}", n % CUSTOMERS);
            let email = format!("c{n}-{run}@example.com");
            // Unique per request: +1 999 and ten digits.
            let phone = (n % 3 != 2).then(|| {
                let digits = u64::from_str_radix(&run[..8], 16).expect("hex") % 100_000;
                format!("+1999{digits:05}{n:05}")
            });
            let sms = n % 3 == 0;
            let max_premium_dollars = if n % 10 == 7 { 100 } else { 1_000_000 };
            // The simulated provider derives a history from the licence: some drivers have
            // accidents, a few have a suspended licence.
            let license = license(n);
            let mut contact = json!({ "email": email });
            if let Some(phone) = &phone {
                contact["phone"] = json!(phone);
            }
            let body = json!({
                "customer_id": customer,
                "contact": contact,
                "vehicles": [{"vin": vin(n), "annual_mileage": 8_000 + 500 * n,
                              "garaging_zip": "23220", "use": "commute"}],
                "drivers": [{"first_name": "Ana", "last_name": "Diaz",
                             "date_of_birth": format!("19{}-03-14", 60 + n % 25),
                             "license_number": license, "license_state": "VA",
                             "first_licensed": "2006-05-01"}],
                "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500,
                             "comprehensive_deductible": 500},
                "notify": {"email": true, "sms": sms, "max_premium": max_premium_dollars}
            });
            Request {
                customer,
                email,
                phone,
                sms,
                max_premium_dollars,
                body,
            }
        })
        .collect()
}

pub async fn post(http: &reqwest::Client, base: &str, request: &Request) -> String {
    let reply = http
        .post(format!("{base}/v1/quotes"))
        .bearer_auth(token("agent-e2e", true))
        .json(&request.body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("post");
    let status = reply.status();
    let body: Value = reply.json().await.expect("json");
    assert_eq!(status, 202, "{body}");
    body["quote_id"].as_str().expect("quote_id").to_owned()
}

/// The notification ledger's `unknown` entries as `(channel, quote id)`: sends whose outcome
/// nobody knows (a notifier killed between sending and recording), assumed sent, never resent.
pub async fn ledger_unknown(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
) -> std::collections::BTreeSet<(String, String)> {
    let text = |item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let mut unknown = std::collections::BTreeSet::new();
    let mut start = None;
    loop {
        let page = dynamo
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan the notification ledger");
        for item in page.items() {
            if text(item, "status") == "unknown" {
                unknown.insert((text(item, "channel"), text(item, "quote_id")));
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return unknown;
        }
    }
}

/// Where an archive is: the stream it archives, its bucket and its manifest table.
#[derive(Debug, Clone)]
pub struct ArchiveNames {
    pub stream: String,
    pub bucket: String,
    pub manifest: String,
}

/// How the archive compares with the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveCheck {
    /// Records in committed segments.
    pub archived: usize,
    /// Records on the stream.
    pub on_stream: usize,
    /// Records of the stream the archive does not hold.
    pub missing: usize,
    /// Records the archive holds more than once, or that are not on the stream.
    pub extra: usize,
}

impl ArchiveCheck {
    /// Every record of the stream archived, each exactly once.
    pub fn exact(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.archived == self.on_stream
    }
}

/// Compares the archive with the stream until they match or `wait` has passed (the archiver
/// closes a segment within ARCHIVE_SEGMENT_SECS of its first record).
pub async fn check_archive(
    sdk: &aws_config::SdkConfig,
    names: &ArchiveNames,
    wait: Duration,
) -> ArchiveCheck {
    let objects = quote_archive::s3::S3Objects::new(
        quote_archive::s3::S3Objects::client(sdk),
        names.bucket.clone(),
    );
    let manifest = quote_archive::dynamodb::DynamoManifest::new(
        aws_sdk_dynamodb::Client::new(sdk),
        names.manifest.clone(),
    );
    let kinesis = aws_sdk_kinesis::Client::new(sdk);
    let deadline = Instant::now() + wait;
    loop {
        let mut on_stream: Vec<(String, String)> =
            testkit::read_all_records(&kinesis, &names.stream)
                .await
                .into_iter()
                .map(|r| (r.shard_id, r.sequence_number))
                .collect();
        on_stream.sort();
        let mut archived = Vec::new();
        let heads = quote_archive::Manifest::shards(&manifest, &names.stream)
            .await
            .unwrap_or_default();
        for head in heads {
            let records = quote_archive::reader::read_shard(
                &objects,
                &manifest,
                &names.stream,
                &head.shard_id,
            )
            .await
            .unwrap_or_default();
            archived.extend(
                records
                    .into_iter()
                    .map(|r| (head.shard_id.clone(), r.sequence_number)),
            );
        }
        archived.sort();
        let on_stream_set: std::collections::BTreeSet<&(String, String)> =
            on_stream.iter().collect();
        let archived_set: std::collections::BTreeSet<&(String, String)> = archived.iter().collect();
        let check = ArchiveCheck {
            archived: archived.len(),
            on_stream: on_stream.len(),
            missing: on_stream_set.difference(&archived_set).count(),
            extra: archived.len() - archived_set.intersection(&on_stream_set).count(),
        };
        if check.exact() || Instant::now() >= deadline {
            return check;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
