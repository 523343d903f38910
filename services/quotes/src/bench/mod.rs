//! The benchmarks of `quotes bench`: [`pipeline`] (POST → priced quote, see its module),
//! [`streams`] (what open live streams cost), [`snapshots`] and `ingest`, below.
//!
//! `quotes bench ingest`: a closed-loop load generator for `POST /v1/quotes`, compared with a
//! baseline that makes the same writes without the API.
//!
//! A benchmark, not a test: it reports numbers and judges nothing. The run has two sides, each
//! with `--warmup` seconds whose requests are discarded, then `--duration` measured seconds,
//! at `--concurrency` tasks that each issue one request at a time:
//!
//! 1. **target**: the HTTP API ([`ingest`]), either an already running event-source
//!    (`--url`) or one started in this process on `127.0.0.1:0` with the backend named by
//!    `BACKEND`;
//! 2. **baseline** ([`baseline`]): the writes the service makes for one request, done
//!    directly: raw SDK calls against the same tables and stream (`aws`), or the in-memory
//!    adapters (`memory`).
//!
//! Every loop yields to the scheduler between requests, so all `--concurrency` loops take turns
//! even when an operation never waits (the in-memory baseline on few cores).
//!
//! The in-process service is stopped before the baseline starts, so the two sides never
//! compete for the machine. Loops stop at the deadline (a request in flight then completes
//! and is counted). The result is one [`IngestReport`], printed as one JSON object.

pub mod baseline;
pub mod floor;
pub mod hops;
pub mod ingest;
pub mod payload;
pub mod pipeline;
pub mod plot;
pub mod snapshots;
pub mod stats;
pub mod streams;

use std::future::Future;
use std::time::Duration;

use event_source::config::{Backend, Config};
use serde::Serialize;
use tokio::time::Instant;

use crate::config::TokenSettings;
use crate::settings::event_store::EventStoreSettings;
use stats::{ratio, Recorder, StatsError, Summary};

/// What the baseline side does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BaselineKind {
    /// `InMemoryEventStore::append` + `InMemorySink::publish` + `mark_published`, in process.
    Memory,
    /// Raw SDK calls: `TransactWriteItems`, `PutRecords`, `UpdateItem`.
    Aws,
    /// No baseline.
    None,
}

impl BaselineKind {
    /// The default for a backend: the baseline that makes the same writes.
    pub fn for_backend(backend: Backend) -> Self {
        match backend {
            Backend::Memory => BaselineKind::Memory,
            Backend::Aws => BaselineKind::Aws,
        }
    }

    fn name(self) -> &'static str {
        match self {
            BaselineKind::Memory => "memory",
            BaselineKind::Aws => "aws",
            BaselineKind::None => "none",
        }
    }
}

/// Options of `bench ingest`.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Base URL of a running event-source; `None` starts one in process.
    pub url: Option<String>,
    /// Concurrent request loops.
    pub concurrency: usize,
    /// Measured time per side.
    pub duration: Duration,
    /// Discarded time before each side's measurement.
    pub warmup: Duration,
    /// Baseline; `None` picks [`BaselineKind::for_backend`].
    pub baseline: Option<BaselineKind>,
}

/// What the benchmark runs against, from the settings.
#[derive(Debug, Clone)]
pub struct IngestTarget {
    /// The backend (`BACKEND`) of the in-process service and the default baseline.
    pub backend: Backend,
    /// How the benchmark's token is signed.
    pub token: TokenSettings,
    /// The in-process service's configuration (unused with `--url`).
    pub service: Config,
    /// The event store's tables and stream (the AWS baseline's).
    pub event_store: EventStoreSettings,
}

/// The result of `bench ingest`, printed as one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    /// The HTTP API.
    pub target: Summary,
    /// The baseline (`null` with `--baseline none`).
    pub baseline: Option<Summary>,
    /// `target.rps / baseline.rps`.
    pub ratio_rps: Option<f64>,
    /// `target.p50_ms / baseline.p50_ms`.
    pub ratio_p50: Option<f64>,
    /// Concurrent request loops per side.
    pub concurrency: usize,
    /// Measured seconds per side.
    pub duration_s: f64,
    /// `BACKEND` (`memory` or `aws`).
    pub backend: String,
    /// Which baseline ran (`memory`, `aws` or `none`).
    pub baseline_kind: String,
    /// Diagnostics for stderr (first error of each side, dev-secret note, …).
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The in-process service authenticates with a JWKS, for which no token can be minted.
    #[error("the in-process service verifies tokens with AUTH_JWKS_URL; set AUTH_HS256_SECRET instead so the benchmark can mint a token")]
    CannotMintForJwks,
    /// Minting the bearer token failed.
    #[error(transparent)]
    Token(#[from] crate::token::TokenError),
    /// The in-process service could not start or stop.
    #[error("in-process event-source: {0}")]
    Service(String),
    /// The target did not become ready.
    #[error("{url} is not ready: {reason}")]
    NotReady {
        /// The readiness URL.
        url: String,
        /// The last answer or error.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// A request body or baseline event could not be generated.
    #[error(transparent)]
    Payload(#[from] payload::PayloadError),
    /// Latency recording failed.
    #[error(transparent)]
    Stats(#[from] StatsError),
    /// A load-generating task panicked or was cancelled.
    #[error("load task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// One request loop's work: a request to make repeatedly until the deadline.
pub trait Worker: Send + 'static {
    /// Makes one request; `Err` carries a short reason and counts as an error.
    fn call(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// The requests of one measured phase.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Latencies and counts.
    pub recorder: Recorder,
    /// From start until the last loop stopped.
    pub elapsed: Duration,
}

impl Phase {
    /// The phase's summary.
    pub fn summary(&self) -> Summary {
        self.recorder.summary(self.elapsed)
    }
}

/// Runs `concurrency` loops of workers made by `make` (given the loop index) for `duration`.
pub async fn drive<W, F>(
    concurrency: usize,
    duration: Duration,
    make: F,
) -> Result<Phase, BenchError>
where
    W: Worker,
    F: Fn(usize) -> W,
{
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|index| {
            let mut worker = make(index);
            tokio::spawn(async move {
                let mut recorder = Recorder::new()?;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let outcome = worker.call().await;
                    recorder.record(sent.elapsed(), outcome);
                    // An operation that never waits (the in-memory baseline) would otherwise
                    // keep its worker thread until the deadline and starve the other loops.
                    tokio::task::yield_now().await;
                }
                Ok::<_, StatsError>(recorder)
            })
        })
        .collect();
    let mut total = Recorder::new()?;
    for result in futures::future::join_all(tasks).await {
        total.merge(&result??)?;
    }
    Ok(Phase {
        recorder: total,
        elapsed: start.elapsed(),
    })
}

/// Runs a warm-up (discarded) and then the measured phase.
pub async fn warm_then_measure<W, F>(
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    make: F,
) -> Result<Phase, BenchError>
where
    W: Worker,
    F: Fn(usize) -> W,
{
    if !warmup.is_zero() {
        // Different loop indices, so warm-up requests do not repeat the measured ones.
        drive(concurrency, warmup, |i| make(i + concurrency)).await?;
    }
    drive(concurrency, duration, make).await
}

/// Runs `bench ingest`: the target, then the baseline, and compares them.
pub async fn run_ingest(
    options: &IngestOptions,
    target: &IngestTarget,
) -> Result<IngestReport, BenchError> {
    if options.concurrency == 0 {
        return Err(BenchError::InvalidOption(
            "--concurrency must be at least 1".into(),
        ));
    }
    if options.duration.is_zero() {
        return Err(BenchError::InvalidOption(
            "--duration must be at least 1 second".into(),
        ));
    }
    let backend = target.backend;
    let baseline_kind = options
        .baseline
        .unwrap_or_else(|| BaselineKind::for_backend(backend));
    let mut notes = Vec::new();
    // Long enough for the whole run.
    let token_ttl = options.warmup + options.duration + Duration::from_secs(600);

    let event_store = &target.event_store;
    let target = match &options.url {
        Some(url) => {
            let settings = &target.token;
            if let Some(note) = settings.dev_secret_note() {
                notes.push(note.to_owned());
            }
            let token = crate::token::mint(settings, ingest::BENCH_SUBJECT, true, token_ttl)?;
            ingest::measure(url, &token, options).await?
        }
        None => {
            let service =
                ingest::InProcessService::start(target.service.clone(), token_ttl).await?;
            let measured = ingest::measure(&service.base_url(), service.token(), options).await;
            // Stop before the baseline (and before reporting an error) either way.
            let stopped = service.stop().await?;
            notes.push(stopped.to_string());
            measured?
        }
    };
    if let Some(reason) = target.recorder.first_error() {
        notes.push(format!(
            "target: {} of {} requests failed; first: {reason}",
            target.recorder.errors(),
            target.recorder.requests()
        ));
    }

    let baseline = match baseline_kind {
        BaselineKind::None => None,
        BaselineKind::Memory => Some(baseline::run_memory(options).await?),
        BaselineKind::Aws => {
            let sdk = quote_runtime::aws::load_sdk_config().await;
            Some(
                baseline::run_aws(
                    &sdk,
                    &event_store.tables(),
                    &event_store.event_stream,
                    options,
                )
                .await?,
            )
        }
    };
    if let Some(reason) = baseline.as_ref().and_then(|b| b.recorder.first_error()) {
        let b = baseline.as_ref().map(|b| &b.recorder);
        notes.push(format!(
            "baseline: {} of {} operations failed; first: {reason}",
            b.map(Recorder::errors).unwrap_or(0),
            b.map(Recorder::requests).unwrap_or(0)
        ));
    }

    let target = target.summary();
    let baseline = baseline.map(|b| b.summary());
    Ok(IngestReport {
        ratio_rps: baseline.as_ref().and_then(|b| ratio(target.rps, b.rps)),
        ratio_p50: baseline
            .as_ref()
            .and_then(|b| ratio(target.p50_ms, b.p50_ms)),
        target,
        baseline,
        concurrency: options.concurrency,
        duration_s: options.duration.as_secs_f64(),
        backend: match backend {
            Backend::Memory => "memory".into(),
            Backend::Aws => "aws".into(),
        },
        baseline_kind: baseline_kind.name().into(),
        notes,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Sleeper(u64);

    impl Worker for Sleeper {
        async fn call(&mut self) -> Result<(), String> {
            self.0 += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
            if self.0.is_multiple_of(4) {
                Err("every fourth".into())
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn drive_stops_at_the_deadline_and_counts_errors() {
        let phase = drive(3, Duration::from_millis(200), |_| Sleeper(0))
            .await
            .unwrap();
        let s = phase.summary();
        assert!(phase.elapsed < Duration::from_millis(400), "{phase:?}");
        assert!(s.requests >= 30 && s.requests <= 150, "{s:?}");
        assert!(
            s.errors >= s.requests / 4 - 3 && s.errors <= s.requests / 4,
            "{s:?}"
        );
        assert!(s.p50_ms >= 5.0, "{s:?}");
    }
}
