//! `quotes bench streams`: what open live streams cost an event-source process.
//!
//! It starts `quotes run` (embedded) as a child process, requests one quote for each of
//! `--customers` customers, and reads the child's resident memory (`VmRSS` of
//! `/proc/<pid>/status`, Linux only) with no stream open: the baseline. It then opens
//! `--streams` Server-Sent-Event streams of those customers' quotes (`GET
//! /v1/customers/{id}/quotes/stream`, spread evenly, each on its own connection) and reads the
//! memory again once every stream has sent its first event: the difference divided by the
//! streams is the memory one open stream costs. Last, it requests one new quote per customer
//! and times how long each stream takes to show it (the fan-out latency: read-model poll
//! included).
//!
//! A benchmark, not a test: it prints one JSON object and judges nothing.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::time::Instant;

use super::payload::PayloadGenerator;
use super::stats::{Recorder, Summary};

/// `quotes bench streams`.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamsArgs {
    /// Streams to open at once.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub streams: u32,
    /// Customers the streams watch (spread evenly).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub customers: u32,
}

/// What the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct StreamsReport {
    /// Streams open at once.
    pub streams: u32,
    /// Customers they watched.
    pub customers: u32,
    /// Resident memory of the process with no stream open (KiB): the baseline.
    pub rss_idle_kib: u64,
    /// Resident memory with every stream open and past its first event (KiB).
    pub rss_open_kib: u64,
    /// `rss_open / rss_idle`.
    pub rss_ratio: f64,
    /// `(rss_open - rss_idle) / streams`, in bytes.
    pub bytes_per_stream: u64,
    /// Seconds to open every stream and receive its first event.
    pub open_secs: f64,
    /// From a new quote's `202 Accepted` to its summary on each stream of its customer.
    pub fan_out: Summary,
}

/// Runs the benchmark.
pub async fn run(args: &StreamsArgs) -> anyhow::Result<StreamsReport> {
    let port = super::pipeline::free_port().context("finding a free port")?;
    let exe = std::env::current_exe().context("locating the quotes binary")?;
    let mut child = tokio::process::Command::new(exe)
        .arg("run")
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("BACKEND", "memory")
        .env("RUST_LOG", "warn")
        .env_remove("AUTH_HS256_SECRET")
        .env_remove("AUTH_JWKS_URL")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting `quotes run`")?;
    let pid = child.id().context("the child's pid")?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .context("HTTP client")?;
    wait_ready(&http, &base).await?;
    let token = event_source::auth::mint_hs256(
        event_source::config::DEV_SECRET,
        "bench-streams",
        true,
        Duration::from_secs(3600),
        None,
        None,
    )?;
    let customers: Vec<String> = (0..args.customers)
        .map(|n| format!("bench-{n:05}"))
        .collect();
    let mut payloads = PayloadGenerator::new(7);
    for customer in &customers {
        request_quote(&http, &base, &token, customer, &mut payloads).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle_kib = resident_kib(pid)?;

    let opened = Instant::now();
    let mut streams = Vec::with_capacity(args.streams as usize);
    for n in 0..args.streams as usize {
        let customer = &customers[n % customers.len()];
        let mut stream = Stream::open(&http, &base, &token, customer).await?;
        stream.next_event().await?;
        streams.push(stream);
    }
    let open_secs = opened.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_open_kib = resident_kib(pid)?;

    // One new quote per customer; every stream of that customer must show it.
    let mut recorder = Recorder::new()?;
    let started = Instant::now();
    let mut new_quotes = Vec::with_capacity(customers.len());
    for customer in &customers {
        let id = request_quote(&http, &base, &token, customer, &mut payloads).await?;
        new_quotes.push((id, Instant::now()));
    }
    let waits = streams.iter_mut().enumerate().map(|(n, stream)| {
        let (quote_id, accepted) = new_quotes[n % new_quotes.len()].clone();
        async move {
            let outcome = stream.until_quote(&quote_id).await;
            (accepted.elapsed(), outcome)
        }
    });
    for (latency, outcome) in futures::future::join_all(waits).await {
        recorder.record(latency, outcome.map_err(|err| format!("{err:#}")));
    }
    let fan_out = recorder.summary(started.elapsed());
    drop(streams);
    child.kill().await.ok();
    Ok(StreamsReport {
        streams: args.streams,
        customers: args.customers,
        rss_idle_kib,
        rss_open_kib,
        rss_ratio: rss_open_kib as f64 / rss_idle_kib.max(1) as f64,
        bytes_per_stream: rss_open_kib.saturating_sub(rss_idle_kib) * 1024
            / u64::from(args.streams),
        open_secs,
        fan_out,
    })
}

async fn wait_ready(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(reply) = http.get(format!("{base}/readyz")).send().await {
            if reply.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("`quotes run` did not become ready on {base}")
}

async fn request_quote(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    customer: &str,
    payloads: &mut PayloadGenerator,
) -> anyhow::Result<String> {
    let mut input = payloads.next_input(time::OffsetDateTime::now_utc().date());
    input.customer_id = customer.to_owned();
    let reply = http
        .post(format!("{base}/v1/quotes"))
        .bearer_auth(token)
        .json(&input)
        .send()
        .await
        .context("POST /v1/quotes")?;
    let status = reply.status();
    let body: serde_json::Value = reply.json().await.context("the 202's body")?;
    if status != reqwest::StatusCode::ACCEPTED {
        bail!("POST /v1/quotes answered {status}: {body}");
    }
    body["quote_id"]
        .as_str()
        .map(str::to_owned)
        .context("quote_id in the 202")
}

/// The resident memory of process `pid`, in KiB.
fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading /proc/<pid>/status (this benchmark needs Linux)")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS in /proc/<pid>/status")
}

/// One open stream, read event by event.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(
        http: &reqwest::Client,
        base: &str,
        token: &str,
        customer: &str,
    ) -> anyhow::Result<Self> {
        let response = http
            .get(format!("{base}/v1/customers/{customer}/quotes/stream"))
            .bearer_auth(token)
            .send()
            .await
            .context("opening a stream (is the open-files limit high enough? `ulimit -n`)")?;
        if !response.status().is_success() {
            bail!("the stream answered {}", response.status());
        }
        Ok(Self {
            response,
            buffer: String::new(),
        })
    }

    /// The next event's `data`.
    async fn next_event(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
                    return Ok(data.trim().to_owned());
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .context("no event for 30 s")?
                .context("reading the stream")?
                .context("the stream ended")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads until an event about `quote_id` arrives.
    async fn until_quote(&mut self, quote_id: &str) -> anyhow::Result<()> {
        loop {
            if self.next_event().await?.contains(quote_id) {
                return Ok(());
            }
        }
    }
}
