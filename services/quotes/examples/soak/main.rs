//! The soak run (`scripts/soak.sh` runs it): steady quote load for a given time, embedded (one
//! `quotes run` process, in memory) or on the emulators (event-source and the five consumer
//! services as separate processes), sampling every process's resident memory and CPU from
//! `/proc` into a CSV; at the end a summary per process (memory at the start and the end of the
//! steady state, its trend) and a check that the last quotes were still decided.
//!
//! Needs the workspace's binaries next to it (`cargo build --workspace --bins --examples`) and,
//! on the emulators, their variables (`scripts/emulators.sh`). Flags: `--help`.

#[path = "../../tests/common/mod.rs"]
mod common;

// Shared with the chaos run, which uses other parts of it.
#[allow(dead_code)]
#[path = "../chaos/processes.rs"]
mod processes;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use common::{binary, free_port, requests, token, wait_healthy, Platform, Request, FINAL};

/// Where the services run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// `quotes run`, in memory.
    Embedded,
    /// One process per service on the emulators.
    Emulators,
}

#[derive(Debug, Parser)]
#[command(about = "Steady quote load; samples every process's memory and CPU.")]
struct Args {
    /// Where the services run.
    #[arg(long, value_enum)]
    mode: Mode,
    /// How long to send, in minutes.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Requests per second.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 5.0)]
    sample_every: f64,
    /// The CSV to write (`elapsed_s,mode,process,rss_kib,cpu_percent,quotes_sent`).
    #[arg(long)]
    csv: PathBuf,
}

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Resident memory (KiB) and CPU time (ticks) of a process, from `/proc`.
fn sample(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at the state, field 3.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((rss, utime + stime))
}

/// The processes under test, and how to stop them.
enum Running {
    Embedded(Child),
    Emulators(processes::Processes),
}

impl Running {
    fn pids(&self) -> Vec<(String, u32)> {
        match self {
            Running::Embedded(child) => vec![("quotes".to_owned(), child.id())],
            Running::Emulators(processes) => processes.pids(),
        }
    }

    fn stop(&mut self) {
        match self {
            Running::Embedded(child) => {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .status();
                let _ = child.wait();
            }
            Running::Emulators(processes) => processes.stop(),
        }
    }
}

async fn start(mode: Mode) -> (Running, String) {
    match mode {
        Mode::Embedded => {
            let port = free_port();
            let child = Command::new(binary())
                .arg("run")
                .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
                .env("AUTH_HS256_SECRET", common::SECRET)
                .env("VPIC_BASE_URL", "off")
                .env("DRIVER_HISTORY_PROVIDER", "simulated")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start quotes run");
            wait_healthy("quotes run", port).await;
            (Running::Embedded(child), format!("http://127.0.0.1:{port}"))
        }
        Mode::Emulators => {
            let _sdk = testkit::aws_config().await;
            let platform = Platform::new();
            platform.bootstrap();
            let logs = std::env::temp_dir().join(testkit::unique_name("soak-logs"));
            std::fs::create_dir_all(&logs).expect("log folder");
            eprintln!("soak: process logs in {}", logs.display());
            let processes = processes::Processes::start(platform, 1, logs).await;
            let url = processes
                .api_urls()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .first()
                .cloned()
                .expect("an event-source");
            (Running::Emulators(processes), url)
        }
    }
}

async fn post(http: &reqwest::Client, base: &str, request: &Request) -> Option<String> {
    let reply = http
        .post(format!("{base}/v1/quotes"))
        .bearer_auth(token("agent-soak", true))
        .json(&request.body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .ok()?;
    if !reply.status().is_success() {
        return None;
    }
    let body: serde_json::Value = reply.json().await.ok()?;
    body["quote_id"].as_str().map(str::to_owned)
}

async fn status(http: &reqwest::Client, base: &str, quote_id: &str) -> Option<String> {
    let body: serde_json::Value = http
        .get(format!("{base}/v1/quotes/{quote_id}"))
        .bearer_auth(token("agent-soak", true))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["status"].as_str().map(str::to_owned)
}

/// One sample row.
#[derive(Debug, Clone)]
struct Row {
    elapsed: f64,
    process: String,
    rss_kib: u64,
    cpu_percent: f64,
}

/// Memory at the start and the end of the steady state (the median of the samples of the
/// second and the last tenth of the run) and the least-squares trend over the last 90 %.
fn summarize(rows: &[Row], process: &str) -> (f64, f64, f64) {
    let mine: Vec<&Row> = rows.iter().filter(|r| r.process == process).collect();
    let n = mine.len();
    if n < 10 {
        return (0.0, 0.0, 0.0);
    }
    let mib = |r: &&Row| r.rss_kib as f64 / 1024.0;
    let median = |slice: &[&Row]| {
        let mut values: Vec<f64> = slice.iter().map(mib).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let tenth = n / 10;
    let start = median(&mine[tenth..2 * tenth]);
    let end = median(&mine[n - tenth..]);
    let steady = &mine[tenth..];
    let mean_t = steady.iter().map(|r| r.elapsed).sum::<f64>() / steady.len() as f64;
    let mean_m = steady.iter().map(mib).sum::<f64>() / steady.len() as f64;
    let (num, den) = steady.iter().fold((0.0, 0.0), |(num, den), r| {
        let dt = r.elapsed - mean_t;
        (num + dt * (mib(r) - mean_m), den + dt * dt)
    });
    let slope_per_hour = if den > 0.0 { num / den * 3600.0 } else { 0.0 };
    (start, end, slope_per_hour)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mode = match args.mode {
        Mode::Embedded => "embedded",
        Mode::Emulators => "emulators",
    };
    let (mut running, base) = start(args.mode).await;
    let pids = running.pids();
    eprintln!("soak: {mode}, {} processes, {base}", pids.len());

    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let sent = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let last_ids = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let load = {
        let (sent, refused, last_ids, base) = (
            sent.clone(),
            refused.clone(),
            last_ids.clone(),
            base.clone(),
        );
        let rate = args.rate;
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut batch = Vec::new();
            let started = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            let mut n: u64 = 0;
            while started.elapsed() < duration {
                if batch.is_empty() {
                    batch = requests(&testkit::unique_name("s")[2..]);
                }
                let request = batch.pop().expect("a request");
                let (http, base, sent, refused, last_ids) = (
                    http.clone(),
                    base.clone(),
                    sent.clone(),
                    refused.clone(),
                    last_ids.clone(),
                );
                tasks.spawn(async move {
                    match post(&http, &base, &request).await {
                        Some(id) => {
                            sent.fetch_add(1, Ordering::Relaxed);
                            let mut ids = last_ids.lock().unwrap_or_else(|e| e.into_inner());
                            ids.push(id);
                            if ids.len() > 20 {
                                ids.remove(0);
                            }
                        }
                        None => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
                while tasks.try_join_next().is_some() {}
                n += 1;
                let next = started + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(next.into()).await;
            }
            while tasks.join_next().await.is_some() {}
        })
    };

    let mut csv = std::fs::File::create(&args.csv).expect("create the CSV");
    writeln!(
        csv,
        "elapsed_s,mode,process,rss_kib,cpu_percent,quotes_sent"
    )
    .expect("write");
    let mut rows = Vec::new();
    let started = Instant::now();
    let every = Duration::from_secs_f64(args.sample_every);
    let mut previous: Vec<Option<(Instant, u64)>> = vec![None; pids.len()];
    while !load.is_finished() {
        let now = Instant::now();
        for (i, (process, pid)) in pids.iter().enumerate() {
            let Some((rss_kib, ticks)) = sample(*pid) else {
                eprintln!("soak: {process} ({pid}) is gone");
                continue;
            };
            let cpu_percent = match previous[i] {
                Some((at, before)) => {
                    let seconds = now.duration_since(at).as_secs_f64();
                    (ticks - before) as f64 / TICKS_PER_SECOND / seconds * 100.0
                }
                None => 0.0,
            };
            previous[i] = Some((now, ticks));
            let elapsed = started.elapsed().as_secs_f64();
            let quotes = sent.load(Ordering::Relaxed);
            writeln!(
                csv,
                "{elapsed:.1},{mode},{process},{rss_kib},{cpu_percent:.1},{quotes}"
            )
            .expect("write");
            rows.push(Row {
                elapsed,
                process: process.clone(),
                rss_kib,
                cpu_percent,
            });
        }
        tokio::time::sleep(every).await;
    }
    let _ = load.await;
    let sending = started.elapsed();

    // The last quotes are still decided: the pipeline kept up to the end.
    let http = reqwest::Client::new();
    let last: Vec<String> = last_ids.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut undecided = last.clone();
    while !undecided.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for id in undecided {
            let done = status(&http, &base, &id)
                .await
                .is_some_and(|s| FINAL.contains(&s.as_str()));
            if !done {
                still.push(id);
            }
        }
        undecided = still;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    running.stop();

    let sent = sent.load(Ordering::Relaxed);
    let refused = refused.load(Ordering::Relaxed);
    println!(
        "soak {mode}: {:.1} min, {sent} quotes accepted ({:.1}/s), {refused} not accepted, \
         {} of the last {} undecided after 60 s",
        sending.as_secs_f64() / 60.0,
        sent as f64 / sending.as_secs_f64(),
        undecided.len(),
        last.len()
    );
    println!("| process | RSS start of steady state (MiB) | RSS end (MiB) | trend (MiB/h) | mean CPU (%) |");
    println!("| --- | --- | --- | --- | --- |");
    for (process, _) in &pids {
        let (start, end, slope) = summarize(&rows, process);
        let cpu: Vec<f64> = rows
            .iter()
            .filter(|r| &r.process == process)
            .map(|r| r.cpu_percent)
            .collect();
        let mean_cpu = cpu.iter().sum::<f64>() / cpu.len().max(1) as f64;
        println!("| {process} | {start:.1} | {end:.1} | {slope:+.1} | {mean_cpu:.1} |");
    }
    if refused == 0 && undecided.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
