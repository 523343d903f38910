//! End to end, with the real binaries as separate processes on the emulators: `quotectl
//! bootstrap` creates fresh resources, event-source takes 50 quote requests, and the five
//! consumer services (vehicle-enricher, driver-history, fulfillment, projector, notifier) carry
//! every quote to a final status. Checked: every quote is `quoted`, `declined` or `referred` in
//! the read model; the read model equals a fold of the event store; each requested notification
//! was sent exactly once; a customer cannot read another's quotes. The second test runs two
//! workers of each consumer service and kills one of each with SIGKILL mid-run.
//!
//! The binaries are looked up next to this test's executable (`target/<profile>/`): build them
//! first with `cargo build --workspace --bins` (`scripts/test.sh` does).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use event_store::dynamodb::{DynamoEventStore, TableNames};
use event_store::{EventStore, LoadBound};
use quote_domain::driver_simulation::simulate;
use quote_domain::{LicenseNumber, LicenseStatus, Quote, QuoteEvent, UsState, Vin};
use quote_read_model::dynamodb::DynamoReadModel;
use quote_read_model::{QuoteSummary, ReadModel};
use serde_json::{json, Value};

const SECRET: &str = "e2e-test-secret-0123456789";
const QUOTES: usize = 50;
const CUSTOMERS: usize = 5;
const FINAL: [&str; 3] = ["quoted", "declined", "referred"];
const SERVICES: [&str; 5] = [
    "vehicle-enricher",
    "driver-history",
    "fulfillment",
    "projector",
    "notifier",
];

/// `target/<profile>/`, where cargo puts the workspace's binaries.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/e2e_processes-<hash>
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf()
}

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "binary {} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The resources of one run, as environment variables.
struct Platform {
    env: Vec<(String, String)>,
    /// Per service: its application's lease table.
    lease_tables: HashMap<&'static str, String>,
    events_table: String,
    idempotency_table: String,
    read_model_table: String,
}

impl Platform {
    fn new() -> Self {
        let applications: Vec<(&'static str, String)> = SERVICES
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
            ("RUST_LOG", "warn".to_owned()),
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

    fn command(&self, name: &str) -> Command {
        let mut command = Command::new(binary(name));
        command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("FAILPOINTS")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command
    }

    fn bootstrap(&self) {
        let status = self
            .command("quotectl")
            .arg("bootstrap")
            .status()
            .expect("run quotectl bootstrap");
        assert!(status.success(), "quotectl bootstrap failed: {status:?}");
    }
}

/// The processes of a run; stopped (SIGTERM, then SIGKILL) when dropped, also on panic.
#[derive(Default)]
struct Fleet {
    processes: Vec<(String, Child)>,
}

impl Fleet {
    fn spawn(&mut self, label: String, mut command: Command) -> u16 {
        let port = free_port();
        command.env("LISTEN_ADDR", format!("127.0.0.1:{port}"));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {label}: {e}"));
        self.processes.push((label, child));
        port
    }

    /// SIGKILL of the process labelled `label`.
    fn kill_9(&mut self, label: &str) {
        let (_, child) = self
            .processes
            .iter_mut()
            .find(|(l, _)| l == label)
            .unwrap_or_else(|| panic!("no process {label}"));
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
    }

    /// Fails when a process exited on its own.
    fn assert_running(&mut self, killed: &[String]) {
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

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.processes {
            if let Ok(None) = child.try_wait() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .status();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (label, child) in &mut self.processes {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        eprintln!("{label} ignored SIGTERM; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

async fn wait_healthy(label: &str, port: u16) {
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

fn token(sub: &str, agent: bool) -> String {
    event_source::auth::mint_hs256(SECRET, sub, agent, Duration::from_secs(900), None, None)
        .expect("token")
}

/// A valid VIN: one of five makes, serial `n`.
fn vin(n: usize) -> String {
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
fn license(n: usize) -> String {
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
struct Request {
    customer: String,
    email: String,
    phone: Option<String>,
    sms: bool,
    max_premium_dollars: u64,
    body: Value,
}

fn requests(run: &str) -> Vec<Request> {
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

async fn post(http: &reqwest::Client, base: &str, request: &Request) -> String {
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

/// The summary a fold of the quote's stream in the event store gives.
async fn folded(store: &DynamoEventStore, quote_id: &str) -> QuoteSummary {
    let events = store
        .load(&format!("quote#{quote_id}"), LoadBound::Latest)
        .await
        .expect("load");
    let decoded: Vec<(u64, QuoteEvent)> = events
        .iter()
        .map(|e| {
            (
                e.version,
                QuoteEvent::decode(&e.event_type, e.schema_version, &e.data).expect("decode"),
            )
        })
        .collect();
    let quote = Quote::fold(decoded.iter().map(|(v, e)| (*v, e)))
        .expect("fold")
        .expect("the stream exists");
    let last = events.last().expect("an event").recorded_at;
    quote_read_model::projection::summarize(&quote, last)
}

/// E-mails and SMS moto's SES and SNS have recorded, by recipient.
async fn sent() -> (HashMap<String, usize>, HashMap<String, usize>) {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL (moto)");
    let data: Value = reqwest::get(format!(
        "{}/moto-api/data.json",
        endpoint.trim_end_matches('/')
    ))
    .await
    .expect("moto data")
    .json()
    .await
    .expect("moto data json");
    let mut emails = HashMap::new();
    for message in data["ses"]["Message"].as_array().into_iter().flatten() {
        for to in message["destinations"]["ToAddresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            *emails.entry(to.to_owned()).or_insert(0) += 1;
        }
    }
    let mut sms = HashMap::new();
    for message in data["sns"]["SMS"].as_array().into_iter().flatten() {
        if let Some(phone) = message["phone_number"].as_str() {
            *sms.entry(phone.to_owned()).or_insert(0) += 1;
        }
    }
    (emails, sms)
}

/// How many e-mails and SMS the notifier's rules call for (services/notifier/src/rules.rs).
fn expected_notifications(request: &Request, summary: &QuoteSummary) -> (usize, usize) {
    let within_ceiling = summary.status != "quoted"
        || summary
            .annual_premium_cents
            .is_some_and(|cents| cents <= request.max_premium_dollars * 100);
    let email = usize::from(within_ceiling);
    let sms = usize::from(within_ceiling && request.sms && request.phone.is_some());
    (email, sms)
}

/// The scenario; `kill_one_of_each` runs two workers per service and SIGKILLs one of each
/// after half the requests.
async fn scenario(kill_one_of_each: bool) {
    let started = Instant::now();
    let sdk = testkit::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let platform = Platform::new();
    platform.bootstrap();
    eprintln!("bootstrap done after {:?}", started.elapsed());

    let mut fleet = Fleet::default();
    let source_port = fleet.spawn("event-source".to_owned(), {
        let mut c = platform.command("event-source");
        c.env("BACKEND", "aws")
            .env("RELAY_SWEEP_INTERVAL_MS", "500")
            .env("RELAY_SWEEP_GRACE_MS", "1000");
        c
    });
    let workers = if kill_one_of_each { 2 } else { 1 };
    let mut ports = vec![("event-source".to_owned(), source_port)];
    for service in SERVICES {
        for w in 0..workers {
            let label = format!("{service}-{w}");
            let mut c = platform.command(service);
            c.env("LEASE_TABLE", &platform.lease_tables[service])
                .env("WORKER_ID", &label)
                .env("LEASE_DURATION_MS", "3000")
                .env("VPIC_BASE_URL", "off")
                .env("DRIVER_HISTORY_PROVIDER", "simulated");
            let port = fleet.spawn(label.clone(), c);
            ports.push((label, port));
        }
    }
    for (label, port) in &ports {
        wait_healthy(label, *port).await;
    }
    eprintln!(
        "{} processes healthy after {:?}",
        ports.len(),
        started.elapsed()
    );

    let base = format!("http://127.0.0.1:{source_port}");
    let http = reqwest::Client::new();
    let run = testkit::unique_name("r")[2..].to_owned();
    let requests = requests(&run);
    let mut ids = Vec::with_capacity(QUOTES);
    let mut killed = Vec::new();
    for (n, request) in requests.iter().enumerate() {
        if kill_one_of_each && n == QUOTES / 2 {
            for service in SERVICES {
                let label = format!("{service}-0");
                fleet.kill_9(&label);
                killed.push(label);
            }
            eprintln!("killed {killed:?} after {n} requests");
        }
        ids.push(post(&http, &base, request).await);
    }
    let posted = Instant::now();
    eprintln!("{QUOTES} requests accepted after {:?}", started.elapsed());

    // Every quote reaches a final status in the read model.
    let read_model = DynamoReadModel::new(dynamo.clone(), platform.read_model_table.clone());
    let mut summaries: HashMap<String, QuoteSummary> = HashMap::new();
    loop {
        for id in &ids {
            if summaries.contains_key(id) {
                continue;
            }
            if let Some(summary) = read_model.get(id).await.expect("read model") {
                if FINAL.contains(&summary.status.as_str()) {
                    summaries.insert(id.clone(), summary);
                }
            }
        }
        if summaries.len() == ids.len() {
            break;
        }
        fleet.assert_running(&killed);
        assert!(
            posted.elapsed() < Duration::from_secs(120),
            "{} of {} quotes still not final after 120 s",
            ids.len() - summaries.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut by_status: HashMap<&str, usize> = HashMap::new();
    for summary in summaries.values() {
        *by_status.entry(summary.status.as_str()).or_insert(0) += 1;
    }
    eprintln!(
        "all quotes final {:?} after the last request: {by_status:?}",
        posted.elapsed()
    );

    // The read model equals a fold of the event store (the projector may still be applying
    // the last events of a stream: retry for a little while).
    let store = DynamoEventStore::new(
        dynamo.clone(),
        TableNames {
            events: platform.events_table.clone(),
            idempotency: platform.idempotency_table.clone(),
        },
    );
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let expected = folded(&store, id).await;
            let actual = read_model.get(id).await.expect("read model");
            if actual.as_ref() == Some(&expected) {
                assert!(FINAL.contains(&expected.status.as_str()), "{expected:?}");
                summaries.insert(id.clone(), expected);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "read model differs from the fold of the store for {id}:\n\
                 read model: {actual:?}\nfold:       {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // Each requested notification was sent exactly once.
    let expectations: Vec<(&Request, (usize, usize))> = requests
        .iter()
        .zip(&ids)
        .map(|(request, id)| (request, expected_notifications(request, &summaries[id])))
        .collect();
    let wanted: usize = expectations.iter().map(|(_, (e, s))| e + s).sum();
    let deadline = Instant::now() + Duration::from_secs(30);
    let check = |emails: &HashMap<String, usize>, sms: &HashMap<String, usize>| {
        let mut missing = Vec::new();
        for (request, (email, text)) in &expectations {
            let got_email = emails.get(&request.email).copied().unwrap_or(0);
            assert!(
                got_email <= *email,
                "{} e-mails to {} (expected {email})",
                got_email,
                request.email
            );
            if got_email < *email {
                missing.push(request.email.clone());
            }
            if let Some(phone) = &request.phone {
                let got_sms = sms.get(phone).copied().unwrap_or(0);
                assert!(
                    got_sms <= *text,
                    "{got_sms} SMS to {phone} (expected {text})"
                );
                if got_sms < *text {
                    missing.push(phone.clone());
                }
            }
        }
        missing
    };
    loop {
        let (emails, sms) = sent().await;
        let missing = check(&emails, &sms);
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "notifications never sent: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // No late duplicate either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (emails, sms) = sent().await;
    assert!(check(&emails, &sms).is_empty());
    eprintln!("{wanted} notifications sent exactly once");

    // A customer reads their own quotes, not another's.
    let mine = &ids[0];
    let owner = &requests[0].customer;
    let other = &requests[1].customer;
    assert_ne!(owner, other);
    let own = http
        .get(format!("{base}/v1/quotes/{mine}"))
        .bearer_auth(token(owner, false))
        .send()
        .await
        .expect("get");
    assert_eq!(own.status(), 200);
    for (request, id) in requests.iter().zip(&ids) {
        if &request.customer == other {
            continue;
        }
        let reply = http
            .get(format!("{base}/v1/quotes/{id}"))
            .bearer_auth(token(other, false))
            .send()
            .await
            .expect("get");
        assert_eq!(
            reply.status(),
            404,
            "{other} must not read {id} of {}",
            request.customer
        );
    }

    fleet.assert_running(&killed);
    drop(fleet);
    eprintln!("scenario done in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_quotes_end_to_end_on_the_emulators() {
    scenario(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_quotes_with_one_worker_of_each_service_killed() {
    scenario(true).await;
}

/// `all-in-one --aws`: every service in one process against the emulators, each with its own
/// (default-named) lease table; a quote is decided and visible through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_all_in_one_runs_against_the_emulators() {
    let _sdk = testkit::aws_config().await;
    let mut platform = Platform::new();
    // The all-in-one names its lease tables after its services (`<service>-leases`).
    platform
        .env
        .retain(|(name, _)| name != "CONSUMER_APPLICATIONS");
    platform.bootstrap();
    let mut fleet = Fleet::default();
    let port = fleet.spawn("all-in-one".to_owned(), {
        let mut command = platform.command("all-in-one");
        command
            .arg("--aws")
            .env("VPIC_BASE_URL", "off")
            .env("DRIVER_HISTORY_PROVIDER", "simulated")
            .env("LEASE_DURATION_MS", "3000");
        command
    });
    wait_healthy("all-in-one", port).await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let request = requests(&testkit::unique_name("r")[2..]).remove(0);
    let quote_id = post(&http, &base, &request).await;
    let started = std::time::Instant::now();
    loop {
        let quote: Value = http
            .get(format!("{base}/v1/quotes/{quote_id}"))
            .bearer_auth(token("agent-e2e", true))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let status = quote["status"].as_str().unwrap_or_default().to_owned();
        if ["quoted", "declined", "referred"].contains(&status.as_str()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "quote {quote_id} not decided: {quote}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fleet.assert_running(&[]);
}
