//! The HTTP side of `bench ingest`: request loops that `POST /v1/quotes` with generated bodies
//! and an agent token through one shared `reqwest` client, and the event-source started in
//! process (on `127.0.0.1:0`, configured from the environment like the real service) when no
//! `--url` is given.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use event_relay::RelayHandle;
use event_source::config::{AuthKeys, Config};
use event_source::{api, Service};
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::payload::PayloadGenerator;
use super::{warm_then_measure, BenchError, IngestOptions, Phase, Worker};

/// Subject of the benchmark's agent token.
pub const BENCH_SUBJECT: &str = "quotes-bench";

/// How long the target may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Per-request timeout of the load generator.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long stopping the in-process service may take (in-flight requests, queued hints).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// What every request loop shares.
#[derive(Debug)]
struct Shared {
    client: reqwest::Client,
    endpoint: String,
    authorization: String,
}

/// One request loop.
#[derive(Debug)]
struct HttpWorker {
    shared: Arc<Shared>,
    bodies: PayloadGenerator,
}

impl Worker for HttpWorker {
    async fn call(&mut self) -> Result<(), String> {
        let body = self.bodies.next_body().map_err(|e| e.to_string())?;
        let response = self
            .shared
            .client
            .post(&self.shared.endpoint)
            .header(reqwest::header::AUTHORIZATION, &self.shared.authorization)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST /v1/quotes: {e}"))?;
        let status = response.status();
        // Read the body so the connection goes back to the pool.
        let text = response.text().await.unwrap_or_default();
        if status == StatusCode::ACCEPTED {
            Ok(())
        } else {
            Err(format!(
                "POST /v1/quotes answered {status}: {}",
                text.chars().take(300).collect::<String>()
            ))
        }
    }
}

/// Waits until `base_url` is ready, then warms up and measures `POST /v1/quotes`.
pub async fn measure(
    base_url: &str,
    token: &str,
    options: &IngestOptions,
) -> Result<Phase, BenchError> {
    let base = base_url.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    wait_ready(&client, &format!("{base}/readyz")).await?;
    let shared = Arc::new(Shared {
        client,
        endpoint: format!("{base}/v1/quotes"),
        authorization: format!("Bearer {token}"),
    });
    warm_then_measure(
        options.concurrency,
        options.warmup,
        options.duration,
        |index| HttpWorker {
            shared: shared.clone(),
            bodies: PayloadGenerator::new(index as u64),
        },
    )
    .await
}

/// Polls `url` until it answers 200.
async fn wait_ready(client: &reqwest::Client, url: &str) -> Result<(), BenchError> {
    let started = tokio::time::Instant::now();
    loop {
        let reason = match client.get(url).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                format!("{status}: {}", body.chars().take(300).collect::<String>())
            }
            Err(err) => err.to_string(),
        };
        if started.elapsed() >= READY_TIMEOUT {
            return Err(BenchError::NotReady {
                url: url.to_owned(),
                reason: format!(
                    "{reason} (with BACKEND=aws, run `quotes bootstrap` against the same endpoints first)"
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An event-source serving on a loopback port of this process.
#[derive(Debug)]
pub struct InProcessService {
    addr: SocketAddr,
    token: String,
    shutdown: CancellationToken,
    relay_shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    relay: JoinHandle<()>,
    relay_handle: RelayHandle,
}

/// What stopping the in-process service found: how far publication had got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopReport {
    /// Records the relay had published when the load stopped (warm-up included).
    pub published_before_stop: u64,
    /// Records published in total, after the relay drained its queue.
    pub published_total: u64,
    /// Hints the relay dropped (their commits wait for the outbox sweep).
    pub hints_dropped: u64,
    /// How long stopping took (finishing requests, draining the relay's queue).
    pub took: Duration,
}

impl std::fmt::Display for StopReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "in-process relay: {} records published when the load stopped, {} after draining its \
             queue on shutdown ({:.1} s); {} hints dropped",
            self.published_before_stop,
            self.published_total,
            self.took.as_secs_f64(),
            self.hints_dropped
        )
    }
}

impl InProcessService {
    /// Starts the service `config` describes (backend, tables, stream, auth) on
    /// `127.0.0.1:0`, and mints an agent token valid for `token_ttl` that it accepts.
    pub async fn start(mut config: Config, token_ttl: Duration) -> Result<Self, BenchError> {
        config.listen_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let AuthKeys::Hs256Secret(secret) = &config.auth.keys else {
            return Err(BenchError::CannotMintForJwks);
        };
        let settings = crate::config::TokenSettings {
            secret: secret.clone(),
            dev_secret: config.auth.keys.is_dev_secret(),
            issuer: config.auth.issuer.clone(),
            audience: config.auth.audience.clone(),
        };
        let token = crate::token::mint(&settings, BENCH_SUBJECT, true, token_ttl)?;

        let listener = tokio::net::TcpListener::bind(config.listen_addr)
            .await
            .map_err(|e| BenchError::Service(format!("binding 127.0.0.1:0: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BenchError::Service(format!("local address: {e}")))?;
        let relay_shutdown = CancellationToken::new();
        let service = Service::from_config(&config, relay_shutdown.clone()).await;
        let relay_handle = service.state.relay.clone();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(
            axum::serve(listener, api::router(service.state))
                .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                .into_future(),
        );
        tracing::info!(%addr, backend = ?config.backend, "in-process event-source listening");
        Ok(Self {
            addr,
            token,
            shutdown,
            relay_shutdown,
            server,
            relay: service.relay_task,
            relay_handle,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The agent token the service accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Stops serving (finishing in-flight requests), then stops the relay (publishing queued
    /// commits; the rest stays in the outbox).
    pub async fn stop(self) -> Result<StopReport, BenchError> {
        let started = tokio::time::Instant::now();
        let stats = self.relay_handle.stats();
        let published_before_stop = stats.published.load(Ordering::Relaxed);
        self.shutdown.cancel();
        match tokio::time::timeout(STOP_TIMEOUT, self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => return Err(BenchError::Service(format!("serving: {err}"))),
            Ok(Err(err)) => return Err(BenchError::Service(format!("server task: {err}"))),
            Err(_) => {
                return Err(BenchError::Service(
                    "server did not stop within 60 s".into(),
                ))
            }
        }
        self.relay_shutdown.cancel();
        match tokio::time::timeout(STOP_TIMEOUT, self.relay).await {
            Ok(Ok(())) => Ok(StopReport {
                published_before_stop,
                published_total: stats.published.load(Ordering::Relaxed),
                hints_dropped: stats.hints_dropped.load(Ordering::Relaxed),
                took: started.elapsed(),
            }),
            Ok(Err(err)) => Err(BenchError::Service(format!("relay task: {err}"))),
            Err(_) => Err(BenchError::Service("relay did not stop within 60 s".into())),
        }
    }
}
