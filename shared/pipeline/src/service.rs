//! Wiring a consumer service: from the environment on AWS (one process per service, scaled by
//! adding tasks), or in process on the embedded adapters (the all-in-one).
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `LISTEN_ADDR` | `0.0.0.0:8080` | health endpoints (`/healthz`, `/readyz`) |
//! | `EVENTS_TABLE` | `quote-events` | event store table |
//! | `IDEMPOTENCY_TABLE` | `quote-idempotency` | event store idempotency table |
//! | `EVENT_STREAM` | `quote-events` | Kinesis stream read and published to |
//! | `DEAD_LETTER_TABLE` | `quote-dead-letters` | where poison records go |
//! | `RELAY_SWEEP_INTERVAL_MS`, `RELAY_SWEEP_GRACE_MS`, `RELAY_SWEEP_CLAIM_MS`, `RELAY_STORE_CONCURRENCY`, `RELAY_DEAD_LETTER_TABLE` | `1000`, `2000`, `10000`, `16`, `quote-relay-dead-letters` | the relay that publishes the events the handler appends (`event_relay::RelayConfig::from_env`) |
//! | `LEASE_TABLE`, `WORKER_ID`, `CONSUMER_*`, `LEASE_*`, `CHECKPOINT_*`, `EFO_CONSUMER_NAME`, `MAX_PROCESSING_ATTEMPTS` | see `kinesis_consumer::config::ConsumerSettings` | consumer settings |

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::StatusCode;
use axum::routing::get;
use event_relay::{
    DynamoRelayDeadLetters, EventSink, KinesisSink, Relay, RelayConfig, RelayHandle,
};
use event_store::dynamodb::{DynamoEventStore, TableNames};
use event_store::EventStore;
use kinesis_consumer::config::{ConsumerSettings, SourceKind};
use kinesis_consumer::dead_letter::{DeadLetterStore, DynamoDeadLetters, InMemoryDeadLetters};
use kinesis_consumer::lease_table::{DynamoLeaseTable, InMemoryLeaseTable};
use kinesis_consumer::source::fanout::{FanOutConfig, KinesisFanOut};
use kinesis_consumer::source::memory::InMemoryStream;
use kinesis_consumer::source::polling::{KinesisPolling, PollingConfig};
use kinesis_consumer::source::RecordSource;
use kinesis_consumer::{FailurePolicy, LeaseTable, RecordProcessor, Worker, WorkerConfig};
use quote_runtime::env::{parse_or, string_or};
use tokio_util::sync::CancellationToken;

use crate::handler::{EventHandler, HandlerContext};
use crate::processor::HandlerProcessor;

/// The worker of `handler` on the given adapters.
pub fn worker(
    handler: Arc<dyn EventHandler>,
    config: WorkerConfig,
    table: Arc<dyn LeaseTable>,
    source: Arc<dyn RecordSource>,
    store: Arc<dyn EventStore>,
    relay: RelayHandle,
) -> Worker {
    let context = HandlerContext::new(store, relay, handler.name());
    let factory = move |shard: &str| -> Box<dyn RecordProcessor> {
        Box::new(HandlerProcessor::new(
            handler.clone(),
            context.clone(),
            shard,
        ))
    };
    Worker::new(config, table, source, Arc::new(factory))
}

/// An in-process worker for the embedded mode: its own in-memory lease table and dead
/// letters, reading the shared in-memory stream.
pub fn embedded_worker(
    handler: Arc<dyn EventHandler>,
    stream: InMemoryStream,
    store: Arc<dyn EventStore>,
    relay: RelayHandle,
) -> (Worker, Arc<InMemoryDeadLetters>) {
    let mut config = WorkerConfig::new(handler.name());
    config.worker_id = format!("{}-embedded", handler.name());
    config.scan_interval = Duration::from_millis(200);
    let dead_letters = Arc::new(InMemoryDeadLetters::new());
    config.failure = FailurePolicy::DeadLetter {
        max_attempts: 5,
        store: dead_letters.clone(),
    };
    let worker = worker(
        handler,
        config,
        Arc::new(InMemoryLeaseTable::new()),
        Arc::new(stream),
        store,
        relay,
    );
    (worker, dead_letters)
}

/// Runs `handler` as its own consumer application on AWS (or emulators) until `shutdown`.
pub async fn run_from_env(
    handler: Arc<dyn EventHandler>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_on_aws(handler, shutdown, true).await
}

/// Like [`run_from_env`]; `serve_health` false skips the health server (several services in
/// one process, e.g. the all-in-one on AWS, share that process's endpoints).
pub async fn run_on_aws(
    handler: Arc<dyn EventHandler>,
    shutdown: CancellationToken,
    serve_health: bool,
) -> anyhow::Result<()> {
    let mut config = WorkerConfig::new(handler.name());
    let settings = ConsumerSettings::from_env(&mut config)?;
    let listen: SocketAddr = parse_or("LISTEN_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080)))?;
    let stream_name = string_or("EVENT_STREAM", "quote-events");
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);

    let store: Arc<dyn EventStore> = Arc::new(DynamoEventStore::new(
        dynamo.clone(),
        TableNames {
            events: string_or("EVENTS_TABLE", "quote-events"),
            idempotency: string_or("IDEMPOTENCY_TABLE", "quote-idempotency"),
        },
    ));
    let sink: Arc<dyn EventSink> = Arc::new(KinesisSink::new(kinesis.clone(), stream_name.clone()));
    let relay_config = RelayConfig::from_env()?;
    let relay_dead_letters = Arc::new(DynamoRelayDeadLetters::new(
        dynamo.clone(),
        relay_config.dead_letter_table.clone(),
    ));
    let relay = Relay::new(store.clone(), sink, relay_config).with_dead_letters(relay_dead_letters);
    relay.stats().export_to_opentelemetry(handler.name());
    let relay_shutdown = CancellationToken::new();
    let (relay, relay_task) = relay.spawn(relay_shutdown.clone());

    let table: Arc<dyn LeaseTable> = Arc::new(DynamoLeaseTable::new(
        dynamo.clone(),
        settings.lease_table.clone(),
    ));
    let dead_letter_table = settings
        .dead_letter_table
        .clone()
        .unwrap_or_else(|| "quote-dead-letters".to_owned());
    let dead_letters: Arc<dyn DeadLetterStore> =
        Arc::new(DynamoDeadLetters::new(dynamo, dead_letter_table));
    config.failure = FailurePolicy::DeadLetter {
        max_attempts: settings.max_attempts,
        store: dead_letters,
    };
    let source: Arc<dyn RecordSource> = match &settings.source {
        SourceKind::Polling => Arc::new(KinesisPolling::new(
            kinesis,
            stream_name,
            PollingConfig::default(),
        )),
        SourceKind::FanOut { consumer_name } => {
            let fanout = KinesisFanOut::new(
                kinesis,
                stream_name,
                consumer_name.clone(),
                FanOutConfig::default(),
            );
            fanout
                .register()
                .await
                .context("registering the enhanced fan-out consumer")?;
            Arc::new(fanout)
        }
    };
    tracing::info!(
        service = handler.name(),
        lease_table = %settings.lease_table,
        worker_id = %config.worker_id,
        source = ?settings.source,
        "consumer service starting"
    );

    let health_task = if serve_health {
        let health = health_router(handler.clone(), table.clone());
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let health_shutdown = shutdown.clone();
        Some(tokio::spawn(async move {
            axum::serve(listener, health)
                .with_graceful_shutdown(health_shutdown.cancelled_owned())
                .await
        }))
    } else {
        None
    };

    worker(handler, config, table, source, store, relay)
        .run(shutdown)
        .await;
    relay_shutdown.cancel();
    relay_task.await.context("relay task")?;
    if let Some(task) = health_task {
        let _ = task.await;
    }
    Ok(())
}

fn health_router(handler: Arc<dyn EventHandler>, table: Arc<dyn LeaseTable>) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok") }))
        .route(
            "/readyz",
            get(move || {
                let handler = handler.clone();
                let table = table.clone();
                async move {
                    let leases = tokio::time::timeout(Duration::from_secs(2), table.list()).await;
                    if !matches!(leases, Ok(Ok(_))) {
                        return (StatusCode::SERVICE_UNAVAILABLE, "lease table not reachable");
                    }
                    match handler.ready().await {
                        Ok(()) => (StatusCode::OK, "ready"),
                        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "a dependency is not ready"),
                    }
                }
            }),
        )
}

/// The whole `main` of a consumer service binary: `<binary> healthcheck` probes a running
/// instance; otherwise telemetry, the handler and [`run_from_env`] until SIGTERM.
pub async fn service_main<F>(name: &'static str, make_handler: F) -> ExitCode
where
    F: FnOnce() -> anyhow::Result<Arc<dyn EventHandler>>,
{
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return healthcheck().await;
    }
    let _telemetry = quote_runtime::telemetry::init(name);
    let handler = match make_handler() {
        Ok(handler) => handler,
        Err(err) => {
            eprintln!("{name}: configuration error: {err:#}");
            return ExitCode::from(2);
        }
    };
    match run_from_env(handler, quote_runtime::shutdown::on_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "{name} failed");
            ExitCode::FAILURE
        }
    }
}

/// Exits 0 when `/healthz` on `LISTEN_ADDR`'s port answers 200.
pub async fn healthcheck() -> ExitCode {
    let port = parse_or("LISTEN_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080)))
        .map(|a| a.port())
        .unwrap_or(8080);
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    {
        Ok(client) => client,
        Err(_) => return ExitCode::FAILURE,
    };
    match client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
