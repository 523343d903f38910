//! `quotes bench pipeline`: time from `POST /v1/quotes` to the priced quote visible through
//! `GET /v1/quotes/{id}`, for the platform
//!
//! - `embedded`: all in this process ([`crate::platform::run_embedded`], in-memory adapters);
//! - `processes-polling`: each service a separate `quotes run SERVICE` process on the
//!   emulators, the consumer services reading the stream by polling (`CONSUMER_SOURCE=polling`);
//! - `processes-fanout`: the same with enhanced fan-out (`CONSUMER_SOURCE=fanout`).
//!
//! `--concurrency` loops each POST a quote, then GET it every `--get-interval-ms` until its
//! status is no longer `pending`, until `--quotes` quotes are final. One JSON object is printed
//! on stdout: `mode, quotes, concurrency, elapsed_s, quotes_per_s, p50_ms, p95_ms, p99_ms,
//! max_ms, statuses, hops`. `hops` breaks the time down per service from each final quote's
//! events ([`super::hops`]: delivery = the cause's append to the handler building the event,
//! split in the process modes at the cause's arrival on Kinesis into relay and consumer; append
//! = that to the event's own append), read once the quote is final, outside the timed part;
//! `projection` is the last hop: the outcome's commit → the GET that saw the quote final (the
//! projector's write, plus up to one GET interval).
//!
//! The process modes add, from the same run: `floor` ([`super::floor`]: put-to-get of a bare
//! record on the same Kinesis endpoint, polled at the consumers' `--poll-interval-ms` and
//! through a fan-out subscription, measured while the load runs), `against_floor` (the mode's
//! floor, each service's delivery p50 minus it, and POST → priced p50 beside 3 × floor + 150 ms,
//! the goals of issue 13) and `records_per_event` (records on the run's stream per distinct
//! event: 1.0 when every event was published once; `duplicates_by_type` names the copies).
//! The relay/consumer split trusts the stream's `ApproximateArrivalTimestamp`;
//! `arrivals_before_commit` counts the records stamped as arriving before their own commit's
//! stamp, which cannot happen on a true clock: kinesis-mock's stamps lag by up to ~150 ms under
//! load, so on it the split is indicative and `delivery` (our own clocks) is the figure.
//!
//! The process modes use the emulator variables of the shell (`scripts/emulators.sh start
//! FILE && . FILE`), create fresh resources with `quotes bootstrap` and start this same
//! binary (or `--binary`) once per service. Everything started is stopped at the end:
//! processes get SIGTERM, then SIGKILL after 10 s; the embedded platform is cancelled.
//!
//! ```sh
//! cargo run --profile dist -- bench pipeline --mode embedded --quotes 200 --concurrency 8
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use event_source::config::Config;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::floor::{Floor, FloorProbe};
use super::hops::{HopTimes, ReadBack};

/// HS256 secret of the tokens (embedded and processes alike).
const SECRET: &str = "pipeline-bench-secret-0123456789";
/// Consumer services started as processes.
const SERVICES: [&str; 5] = [
    "vehicle-enricher",
    "driver-history",
    "fulfillment",
    "projector",
    "notifier",
];
/// A quote still pending after this long counts as `timeout`.
const QUOTE_TIMEOUT: Duration = Duration::from_secs(120);
/// Highest latency the histogram tracks, in microseconds (10 minutes).
const MAX_MICROS: u64 = 600_000_000;

/// How the platform runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// In this process, on the in-memory adapters.
    Embedded,
    /// Separate processes on the emulators, consumers polling the stream.
    ProcessesPolling,
    /// Separate processes on the emulators, consumers on enhanced fan-out.
    ProcessesFanout,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::ProcessesPolling => "processes-polling",
            Self::ProcessesFanout => "processes-fanout",
        }
    }
}

/// `quotes bench pipeline`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// How the platform runs.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Quotes to carry to a final status.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub quotes: u64,
    /// Concurrent POST-then-poll loops.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: u64,
    /// The `quotes` binary the process modes start once per service; default: this one.
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Milliseconds between two GETs of a pending quote.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub get_interval_ms: u64,
    /// Also draw the hops' medians as an SVG chart into this file (`bench::plot`).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The consumers' POLL_INTERVAL_MS in `processes-polling`, and the cadence of the floor's
    /// polling reader (both modes).
    #[arg(long, default_value_t = kinesis_consumer::source::polling::DEFAULT_READ_INTERVAL_MS, value_parser = clap::value_parser!(u64).range(200..=60_000))]
    pub poll_interval_ms: u64,
}

/// Runs the benchmark and prints its report (one JSON object) on stdout.
pub async fn run(cli: &PipelineArgs) -> anyhow::Result<()> {
    match cli.mode {
        Mode::Embedded => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("binding 127.0.0.1:0")?;
            let base = format!("http://{}", listener.local_addr()?);
            let shutdown = CancellationToken::new();
            let server = tokio::spawn(crate::platform::run_embedded(
                listener,
                Config::for_memory(SECRET),
                shutdown.clone(),
            ));
            let result = bench(cli, &base).await;
            shutdown.cancel();
            server
                .await
                .context("embedded platform task")?
                .context("embedded platform")?;
            print(cli, result?, None)
        }
        Mode::ProcessesPolling | Mode::ProcessesFanout => {
            if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_none() {
                bail!(
                    "AWS_ENDPOINT_URL_DYNAMODB is unset: start the emulators first \
                     (scripts/emulators.sh start /tmp/pb-emu.env && . /tmp/pb-emu.env)"
                );
            }
            let binary = match &cli.binary {
                Some(path) => path.clone(),
                None => std::env::current_exe().context("locating this binary")?,
            };
            let mut fleet = Fleet::default();
            let result = async {
                let run = unique("pb");
                let base = start_processes(&mut fleet, &binary, cli, &run).await?;
                let kinesis =
                    aws_sdk_kinesis::Client::new(&quote_runtime::aws::load_sdk_config().await);
                let probe =
                    FloorProbe::start(kinesis, &run, Duration::from_millis(cli.poll_interval_ms))
                        .await?;
                let outcome = bench(cli, &base).await?;
                let floor = probe.stop().await?;
                // When each event reached Kinesis, read back from the run's own stream.
                let read_back = super::hops::read_arrivals(&format!("{run}-stream"))
                    .await
                    .context("reading the run's stream back")?;
                anyhow::Ok((outcome, read_back, floor))
            }
            .await;
            fleet.stop();
            let (outcome, read_back, floor) = result?;
            print(cli, outcome, Some((&read_back, &floor)))
        }
    }
}

/// What the load loops measured.
struct Outcome {
    elapsed: Duration,
    latencies: Histogram<u64>,
    statuses: BTreeMap<String, u64>,
    /// Every final quote's events, for the hop times.
    finals: Vec<FinalQuote>,
}

/// A quote seen final.
struct FinalQuote {
    /// Its events, read afterwards.
    events: Vec<Value>,
    /// When the GET that saw it final answered (wall clock, as the events' stamps).
    seen_at: time::OffsetDateTime,
}

fn print(
    cli: &PipelineArgs,
    outcome: Outcome,
    stream: Option<(&ReadBack, &Floor)>,
) -> anyhow::Result<()> {
    let mut hops = HopTimes::default();
    for quote in &outcome.finals {
        hops.add_quote(
            &quote.events,
            stream.map(|(read_back, _)| &read_back.arrivals),
            Some(quote.seen_at),
        )?;
    }
    let ms = super::hops::ms;
    let h = &outcome.latencies;
    let done: u64 = outcome.statuses.values().sum();
    let secs = outcome.elapsed.as_secs_f64();
    let mut report = json!({
        "mode": cli.mode.name(),
        "quotes": cli.quotes,
        "concurrency": cli.concurrency,
        "elapsed_s": (secs * 1000.0).round() / 1000.0,
        "quotes_per_s": ((done as f64 / secs.max(1e-9)) * 10.0).round() / 10.0,
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p95_ms": ms(h.value_at_quantile(0.95)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
        "statuses": outcome.statuses,
        "hops": hops.report(),
    });
    if let Some(seen) = hops.seen_report() {
        report["projection"] = seen;
    }
    let floor_ms = stream.map(|(_, floor)| match cli.mode {
        Mode::ProcessesFanout => floor.fanout_p50_ms(),
        _ => floor.polling_p50_ms(),
    });
    if let (Some((read_back, floor)), Some(floor_ms)) = (stream, floor_ms) {
        let excess: serde_json::Map<String, Value> = hops
            .delivery_p50_ms()
            .into_iter()
            .map(|(service, p50)| (service, json!(((p50 - floor_ms) * 100.0).round() / 100.0)))
            .collect();
        report["floor"] = floor.report();
        report["against_floor"] = json!({
            "floor_p50_ms": floor_ms,
            "delivery_minus_floor_p50_ms": excess,
            "priced_p50_ms": ms(h.value_at_quantile(0.50)),
            "priced_goal_ms": ((3.0 * floor_ms + 150.0) * 100.0).round() / 100.0,
        });
        report["records_per_event"] =
            json!((read_back.records_per_event() * 1000.0).round() / 1000.0);
        report["records"] = json!(read_back.records);
        report["duplicates_by_type"] = json!(read_back.duplicates_by_type);
        report["arrivals_before_commit"] = json!(read_back.arrivals_before_commit);
        report["events"] = json!(read_back.arrivals.len());
    }
    if let Some(path) = &cli.plot {
        let svg = hop_plot(cli, &report, floor_ms);
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The critical path's hops as a chart: each enrichment, fulfillment, then the projection, with
/// the mode's floor.
fn hop_plot(cli: &PipelineArgs, report: &Value, floor_ms: Option<f64>) -> String {
    let p50 = |value: &Value| value["p50_ms"].as_f64();
    let mut bars = Vec::new();
    for service in ["vehicle-enricher", "driver-history", "fulfillment"] {
        let hop = &report["hops"][service];
        let parts: Vec<(String, f64)> = match (p50(&hop["relay"]), p50(&hop["consumer"])) {
            (Some(relay), Some(consumer)) => {
                vec![
                    ("relay".to_owned(), relay),
                    ("consumer".to_owned(), consumer),
                ]
            }
            _ => p50(&hop["delivery"])
                .map(|delivery| vec![("delivery".to_owned(), delivery)])
                .unwrap_or_default(),
        };
        if !parts.is_empty() {
            bars.push(super::plot::Bar {
                label: service.to_owned(),
                parts,
                floor: floor_ms,
            });
        }
    }
    if let Some(projection) = p50(&report["projection"]) {
        bars.push(super::plot::Bar {
            label: "projection".to_owned(),
            parts: vec![("projection".to_owned(), projection)],
            floor: floor_ms,
        });
    }
    let title = format!(
        "POST → priced quote, per hop: {}, {} quotes, concurrency {}",
        cli.mode.name(),
        cli.quotes,
        cli.concurrency
    );
    let priced = report["p50_ms"].as_f64().unwrap_or_default();
    let date = time::OffsetDateTime::now_utc().date();
    let subtitle = match floor_ms {
        Some(floor) => format!(
            "{date}: POST → priced p50 {priced:.0} ms, goal 3 × floor + 150 = {:.0} ms (floor {floor:.0} ms)",
            3.0 * floor + 150.0
        ),
        None => format!("{date}: POST → priced p50 {priced:.1} ms"),
    };
    super::plot::hop_chart(&title, &subtitle, &bars)
}

/// Runs the load loops against the API at `base`.
async fn bench(cli: &PipelineArgs, base: &str) -> anyhow::Result<Outcome> {
    let token = event_source::auth::mint_hs256(
        SECRET,
        "agent-pipeline-bench",
        true,
        Duration::from_secs(3600),
        None,
        None,
    )
    .context("minting a token")?;
    let concurrency = usize::try_from(cli.concurrency).context("--concurrency")?;
    let quotes = usize::try_from(cli.quotes).context("--quotes")?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let get_interval = Duration::from_millis(cli.get_interval_ms);
    let started = Instant::now();
    let mut loops = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (http, token, next, base) =
            (http.clone(), token.clone(), next.clone(), base.to_owned());
        loops.push(tokio::spawn(async move {
            let mut latencies = Histogram::<u64>::new_with_bounds(1, MAX_MICROS, 3)?;
            let mut statuses = BTreeMap::<String, u64>::new();
            let mut finals = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= quotes {
                    break;
                }
                let (latency, status, id) =
                    one_quote(&http, &base, &token, n, get_interval).await?;
                let seen_at = time::OffsetDateTime::now_utc();
                latencies.saturating_record(latency.as_micros().try_into().unwrap_or(u64::MAX));
                if status != "timeout" {
                    finals.push(FinalQuote {
                        events: events_of(&http, &base, &token, &id).await?,
                        seen_at,
                    });
                }
                *statuses.entry(status).or_insert(0) += 1;
            }
            anyhow::Ok((latencies, statuses, finals))
        }));
    }
    let mut latencies = Histogram::<u64>::new_with_bounds(1, MAX_MICROS, 3)?;
    let mut statuses = BTreeMap::<String, u64>::new();
    let mut finals = Vec::new();
    for handle in loops {
        let (h, s, loop_finals) = handle.await.context("load loop")??;
        latencies.add(&h)?;
        finals.extend(loop_finals);
        for (status, count) in s {
            *statuses.entry(status).or_insert(0) += count;
        }
    }
    Ok(Outcome {
        elapsed: started.elapsed(),
        latencies,
        statuses,
        finals,
    })
}

/// A quote's events, as `GET /v1/quotes/{id}/events` lists them.
async fn events_of(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
) -> anyhow::Result<Vec<Value>> {
    let reply = http
        .get(format!("{base}/v1/quotes/{id}/events"))
        .bearer_auth(token)
        .send()
        .await
        .context("GET /v1/quotes/{id}/events")?;
    if !reply.status().is_success() {
        bail!("GET /v1/quotes/{id}/events answered {}", reply.status());
    }
    let body: Value = reply.json().await.context("events reply")?;
    match body["events"].as_array() {
        Some(events) => Ok(events.clone()),
        None => bail!("no events in {body}"),
    }
}

/// POSTs quote request `n` and GETs it every `get_interval` until it is no longer `pending`:
/// the latency, the final status (`timeout` after [`QUOTE_TIMEOUT`]) and the quote's id.
async fn one_quote(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    n: usize,
    get_interval: Duration,
) -> anyhow::Result<(Duration, String, String)> {
    let started = Instant::now();
    let reply = http
        .post(format!("{base}/v1/quotes"))
        .bearer_auth(token)
        .json(&request_body(n))
        .send()
        .await
        .context("POST /v1/quotes")?;
    let code = reply.status();
    let body: Value = reply.json().await.context("POST reply")?;
    if code.as_u16() != 202 {
        bail!("POST /v1/quotes answered {code}: {body}");
    }
    let id = body["quote_id"]
        .as_str()
        .with_context(|| format!("no quote_id in {body}"))?
        .to_owned();
    loop {
        let reply = http
            .get(format!("{base}/v1/quotes/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .context("GET /v1/quotes/{id}")?;
        // 404 until the projector has written the quote.
        if reply.status().is_success() {
            let quote: Value = reply.json().await.context("GET reply")?;
            match quote["status"].as_str() {
                Some("pending") | None => {}
                Some(status) => return Ok((started.elapsed(), status.to_owned(), id)),
            }
        } else if reply.status().as_u16() != 404 {
            bail!("GET /v1/quotes/{id} answered {}", reply.status());
        }
        if started.elapsed() > QUOTE_TIMEOUT {
            return Ok((started.elapsed(), "timeout".to_owned(), id));
        }
        tokio::time::sleep(get_interval).await;
    }
}

/// A valid quote request; one in three has a driver with an accident on record (simulated
/// provider), so the statuses are mixed.
fn request_body(n: usize) -> Value {
    const VINS: [&str; 3] = [
        "1HGCM82633A004352",
        "5YJ3E1EA2KF317000",
        "1FAFP40492F172825",
    ];
    json!({
        "customer_id": format!("bench-{}", n % 16),
        "contact": {"email": format!("bench-{n}@example.com")},
        "vehicles": [{"vin": VINS[n % VINS.len()], "annual_mileage": 8_000 + 100 * (n % 50),
                      "garaging_zip": "23220", "use": "commute"}],
        "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14",
                     "license_number": if n % 3 == 2 { "D0000001" } else { "T12345678" },
                     "license_state": "VA", "first_licensed": "2006-05-01"}],
        "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500,
                     "comprehensive_deductible": 500},
        "notify": {"email": false, "sms": false, "max_premium": 5000}
    })
}

/// A name unique to this run.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{:x}{:x}", std::process::id(), nanos % 0xffff_ffff)
}

/// A free loopback port (the process modes' listeners; `quotes bench streams`'s child).
pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Bootstraps fresh resources named after `run` and starts event-source and the five consumer
/// services, each `binary run SERVICE`; returns the API's base URL once every process is
/// healthy. The event stream is `<run>-stream`.
async fn start_processes(
    fleet: &mut Fleet,
    binary: &std::path::Path,
    cli: &PipelineArgs,
    run: &str,
) -> anyhow::Result<String> {
    let applications: Vec<(&str, String)> = SERVICES
        .iter()
        .map(|s| (*s, format!("{run}-{s}")))
        .collect();
    let env: Vec<(String, String)> = vec![
        ("EVENTS_TABLE".to_owned(), format!("{run}-events")),
        ("IDEMPOTENCY_TABLE".to_owned(), format!("{run}-idempotency")),
        ("EVENT_STREAM".to_owned(), format!("{run}-stream")),
        ("EVENT_STREAM_SHARDS".to_owned(), "4".to_owned()),
        ("READ_MODEL_TABLE".to_owned(), format!("{run}-read-model")),
        (
            "DEAD_LETTER_TABLE".to_owned(),
            format!("{run}-dead-letters"),
        ),
        (
            "NOTIFICATIONS_TABLE".to_owned(),
            format!("{run}-notifications"),
        ),
        (
            "NOTIFY_FROM_EMAIL".to_owned(),
            format!("{run}@quotes.example.com"),
        ),
        (
            "CONSUMER_APPLICATIONS".to_owned(),
            applications
                .iter()
                .map(|(_, a)| a.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("AUTH_HS256_SECRET".to_owned(), SECRET.to_owned()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ];
    if !binary.is_file() {
        bail!("{} is not a file (--binary)", binary.display());
    }
    let command = |args: &[&str]| -> Command {
        let mut command = Command::new(binary);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("FAILPOINTS")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command
    };
    let status = command(&["bootstrap"])
        .status()
        .context("running quotes bootstrap")?;
    if !status.success() {
        bail!("quotes bootstrap failed: {status}");
    }
    let source_port = fleet.spawn("event-source", command(&["run", "event-source"]))?;
    let mut ports = vec![("event-source".to_owned(), source_port)];
    for (service, application) in &applications {
        let mut c = command(&["run", service]);
        c.env("LEASE_TABLE", format!("{application}-leases"))
            .env("WORKER_ID", format!("{service}-0"))
            .env("VPIC_BASE_URL", "off")
            .env("DRIVER_HISTORY_PROVIDER", "simulated");
        if cli.mode == Mode::ProcessesFanout {
            c.env("CONSUMER_SOURCE", "fanout")
                .env("EFO_CONSUMER_NAME", application);
        } else {
            c.env("CONSUMER_SOURCE", "polling")
                .env("POLL_INTERVAL_MS", cli.poll_interval_ms.to_string());
        }
        let port = fleet.spawn(service, c)?;
        ports.push(((*service).to_owned(), port));
    }
    let http = reqwest::Client::new();
    for (label, port) in &ports {
        wait_healthy(&http, fleet, label, *port).await?;
    }
    Ok(format!("http://127.0.0.1:{source_port}"))
}

async fn wait_healthy(
    http: &reqwest::Client,
    fleet: &mut Fleet,
    label: &str,
    port: u16,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(reply) = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            if reply.status().is_success() {
                return Ok(());
            }
        }
        fleet.check_running()?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{label} did not become healthy on port {port} within 60 s")
}

/// The processes started; [`Fleet::stop`] (also on drop) sends SIGTERM, then SIGKILL.
#[derive(Default)]
struct Fleet {
    processes: Vec<(String, Child)>,
}

impl Fleet {
    /// Starts `command` listening on a free port; returns the port.
    fn spawn(&mut self, label: &str, mut command: Command) -> anyhow::Result<u16> {
        let port = free_port()?;
        command.env("LISTEN_ADDR", format!("127.0.0.1:{port}"));
        let child = command
            .spawn()
            .with_context(|| format!("starting {label}"))?;
        self.processes.push((label.to_owned(), child));
        Ok(port)
    }

    /// Fails when a process has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        for (label, child) in &mut self.processes {
            if let Ok(Some(status)) = child.try_wait() {
                bail!("{label} exited: {status}");
            }
        }
        Ok(())
    }

    fn stop(&mut self) {
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
                        eprintln!("quotes bench pipeline: {label} ignored SIGTERM; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        self.processes.clear();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}
