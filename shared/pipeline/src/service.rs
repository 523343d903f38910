//! Wiring a consumer service: against AWS (or the emulators) with [`AwsConsumer`], its own
//! consumer application scaled by adding processes, configured by an [`AwsConsumerConfig`]
//! (the `quotes` binary builds it from its settings); or in process on the embedded adapters
//! ([`embedded_worker`]). [`serve_health`] serves the health endpoints of a process's services.
//!
//! A consumer service is one of two kinds ([`Consumption`]): an [`EventHandler`] (the pipeline's
//! services: they read and append through the event store, the library checkpoints, poison
//! records are dead-lettered), or a [`RecordService`] whose processors own their checkpoints
//! (the archiver).

use std::net::SocketAddr;
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
use kinesis_consumer::config::SourceKind;
use kinesis_consumer::dead_letter::{DeadLetterStore, DynamoDeadLetters, InMemoryDeadLetters};
use kinesis_consumer::lease_table::{DynamoLeaseTable, InMemoryLeaseTable};
use kinesis_consumer::source::fanout::{FanOutConfig, KinesisFanOut};
use kinesis_consumer::source::memory::InMemoryStream;
use kinesis_consumer::source::polling::{KinesisPolling, PollingConfig};
use kinesis_consumer::source::RecordSource;
use kinesis_consumer::{
    CheckpointPolicy, FailurePolicy, LeaseTable, ProcessorFactory, RecordProcessor, Worker,
    WorkerConfig,
};
use tokio_util::sync::CancellationToken;

use crate::handler::{EventHandler, HandlerContext};
use crate::processor::HandlerProcessor;

/// A consumer service whose record processors own their checkpoints and their failures (the
/// archiver): the library never checkpoints for them, delivers the empty batches of idle
/// shards (so they can act on time), and retries their failures forever — they must not fail
/// for a record's own sake, since nothing is dead-lettered.
#[async_trait::async_trait]
pub trait RecordService: Send + Sync {
    /// The service's name: its consumer application.
    fn name(&self) -> &'static str;

    /// A processor per shard lease.
    fn factory(&self) -> Arc<dyn ProcessorFactory>;

    /// `Err` with the reason when its own dependencies cannot be used now (for readiness).
    async fn ready(&self) -> Result<(), String>;

    /// Least time between two `GetRecords` calls on one shard when polling. Every consumer
    /// application that polls a shard shares its 5 reads/s; a service that is not
    /// latency-sensitive (the archiver) reads less often and leaves them to those that are.
    fn min_read_interval(&self) -> Duration {
        PollingConfig::default().min_call_interval
    }
}

/// What a consumer service does with its application's records.
#[derive(Clone)]
pub enum Consumption {
    /// Events handled through the event store (its appends published by its own relay).
    Events(Arc<dyn EventHandler>),
    /// Records handed to processors that checkpoint on their own.
    Records(Arc<dyn RecordService>),
}

impl Consumption {
    /// The service's name.
    pub fn name(&self) -> &'static str {
        match self {
            Consumption::Events(handler) => handler.name(),
            Consumption::Records(service) => service.name(),
        }
    }

    /// `Err` with the reason when the service's own dependencies are not ready.
    async fn ready(&self) -> Result<(), String> {
        let name = self.name();
        match self {
            Consumption::Events(handler) => handler
                .ready()
                .await
                .map_err(|_| format!("{name}: a dependency is not ready")),
            Consumption::Records(service) => service
                .ready()
                .await
                .map_err(|reason| format!("{name}: {reason}")),
        }
    }
}

impl std::fmt::Debug for Consumption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Consumption").field(&self.name()).finish()
    }
}

/// The worker of `handler` on the given adapters.
pub fn worker(
    handler: Arc<dyn EventHandler>,
    config: WorkerConfig,
    table: Arc<dyn LeaseTable>,
    source: Arc<dyn RecordSource>,
    store: Arc<dyn EventStore>,
    relay: RelayHandle,
) -> Worker {
    Worker::new(
        config,
        table,
        source,
        handler_factory(handler, store, relay),
    )
}

/// Processors that hand each shard's events to `handler`.
fn handler_factory(
    handler: Arc<dyn EventHandler>,
    store: Arc<dyn EventStore>,
    relay: RelayHandle,
) -> Arc<dyn ProcessorFactory> {
    let context = HandlerContext::new(store, relay, handler.name());
    Arc::new(move |shard: &str| -> Box<dyn RecordProcessor> {
        Box::new(HandlerProcessor::new(
            handler.clone(),
            context.clone(),
            shard,
        ))
    })
}

/// An in-process worker for the embedded mode, with the tables it owns.
#[derive(Debug)]
pub struct EmbeddedWorker {
    /// The worker (not yet running).
    pub worker: Worker,
    /// Its own in-memory lease table (what the operations view reads).
    pub leases: Arc<InMemoryLeaseTable>,
    /// Its own in-memory dead letters.
    pub dead_letters: Arc<InMemoryDeadLetters>,
}

/// An in-process worker for the embedded mode: its own in-memory lease table and dead
/// letters, reading the shared in-memory stream.
pub fn embedded_worker(
    handler: Arc<dyn EventHandler>,
    stream: InMemoryStream,
    store: Arc<dyn EventStore>,
    relay: RelayHandle,
) -> EmbeddedWorker {
    let mut config = WorkerConfig::new(handler.name());
    config.worker_id = format!("{}-embedded", handler.name());
    config.scan_interval = Duration::from_millis(200);
    let dead_letters = Arc::new(InMemoryDeadLetters::new());
    config.failure = FailurePolicy::DeadLetter {
        max_attempts: 5,
        store: dead_letters.clone(),
    };
    let leases = Arc::new(InMemoryLeaseTable::new());
    let worker = worker(
        handler,
        config,
        leases.clone(),
        Arc::new(stream),
        store,
        relay,
    );
    EmbeddedWorker {
        worker,
        leases,
        dead_letters,
    }
}

/// What a consumer service on AWS is configured from.
#[derive(Debug, Clone)]
pub struct AwsConsumerConfig {
    /// The worker: application, worker id, leases, checkpoints (its failure policy is set
    /// here, from `dead_letter_table` and `max_attempts`).
    pub worker: WorkerConfig,
    /// The application's lease table.
    pub lease_table: String,
    /// Where poison records go.
    pub dead_letter_table: String,
    /// Permanent failures of a record before it is dead-lettered.
    pub max_attempts: u32,
    /// How the stream is read.
    pub source: SourceKind,
    /// The stream.
    pub event_stream: String,
    /// The event store's tables.
    pub tables: TableNames,
    /// The relay publishing what the handler appends.
    pub relay: RelayConfig,
    /// Where to read the archive first (`CONSUMER_INITIAL_POSITION=ARCHIVE`), if at all.
    pub catch_up: Option<CatchUp>,
}

/// The archive a consumer application catches up from before it reads the stream
/// (`quote_archive::catch_up`).
#[derive(Debug, Clone)]
pub struct CatchUp {
    /// The archive's S3 bucket (`ARCHIVE_BUCKET`).
    pub bucket: String,
    /// Its manifest's DynamoDB table (`ARCHIVE_MANIFEST_TABLE`).
    pub manifest_table: String,
}

/// A consumer service connected to AWS (or the emulators), ready to run: its relay is
/// publishing, its record source is set up (enhanced fan-out registered), its worker built.
#[derive(Debug)]
pub struct AwsConsumer {
    worker: Worker,
    readiness: Readiness,
    /// The relay of an event handler's appends and its periodic work (none for a record
    /// service).
    handler_tasks: Option<HandlerTasks>,
}

/// What an event handler's service runs besides its worker.
#[derive(Debug)]
struct HandlerTasks {
    relay_shutdown: CancellationToken,
    relay_task: tokio::task::JoinHandle<()>,
    periodic_shutdown: CancellationToken,
    periodic: Option<tokio::task::JoinHandle<()>>,
}

impl AwsConsumer {
    /// Connects `consumption` as its own consumer application on the SDK configuration `sdk`.
    pub async fn connect(
        consumption: Consumption,
        settings: AwsConsumerConfig,
        sdk: &aws_config::SdkConfig,
    ) -> anyhow::Result<Self> {
        let mut config = settings.worker;
        let stream_name = settings.event_stream;
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let kinesis = aws_sdk_kinesis::Client::new(sdk);
        let table: Arc<dyn LeaseTable> = Arc::new(DynamoLeaseTable::new(
            dynamo.clone(),
            settings.lease_table.clone(),
        ));

        let (factory, handler_tasks): (Arc<dyn ProcessorFactory>, _) = match &consumption {
            Consumption::Events(handler) => {
                let store: Arc<dyn EventStore> =
                    Arc::new(DynamoEventStore::new(dynamo.clone(), settings.tables));
                let sink: Arc<dyn EventSink> =
                    Arc::new(KinesisSink::new(kinesis.clone(), stream_name.clone()));
                let relay_config = settings.relay;
                let relay_dead_letters = Arc::new(DynamoRelayDeadLetters::new(
                    dynamo.clone(),
                    relay_config.dead_letter_table.clone(),
                ));
                let relay = Relay::new(store.clone(), sink, relay_config)
                    .with_dead_letters(relay_dead_letters);
                relay.stats().export_to_opentelemetry(handler.name());
                let relay_shutdown = CancellationToken::new();
                let (relay, relay_task) = relay.spawn(relay_shutdown.clone());
                let dead_letters: Arc<dyn DeadLetterStore> = Arc::new(DynamoDeadLetters::new(
                    dynamo.clone(),
                    settings.dead_letter_table,
                ));
                config.failure = FailurePolicy::DeadLetter {
                    max_attempts: settings.max_attempts,
                    store: dead_letters,
                };
                let periodic_shutdown = CancellationToken::new();
                let periodic = crate::handler::spawn_periodic(
                    handler.clone(),
                    HandlerContext::new(store.clone(), relay.clone(), handler.name()),
                    periodic_shutdown.clone(),
                );
                (
                    handler_factory(handler.clone(), store, relay),
                    Some(HandlerTasks {
                        relay_shutdown,
                        relay_task,
                        periodic_shutdown,
                        periodic,
                    }),
                )
            }
            Consumption::Records(service) => {
                config.checkpoint = CheckpointPolicy::MANUAL;
                config.deliver_empty_batches = true;
                config.failure = FailurePolicy::RetryForever;
                (service.factory(), None)
            }
        };
        let source: Arc<dyn RecordSource> = match &settings.source {
            SourceKind::Polling { read_interval } => {
                let mut polling = PollingConfig {
                    read_interval: *read_interval,
                    ..PollingConfig::default()
                };
                if let Consumption::Records(service) = &consumption {
                    polling.min_call_interval = service.min_read_interval();
                    polling.read_interval = polling.read_interval.max(polling.min_call_interval);
                }
                Arc::new(KinesisPolling::new(kinesis, stream_name.clone(), polling))
            }
            SourceKind::FanOut { consumer_name } => {
                let fanout = KinesisFanOut::new(
                    kinesis,
                    stream_name.clone(),
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
        let source: Arc<dyn RecordSource> = match &settings.catch_up {
            None => source,
            Some(catch_up) => Arc::new(quote_archive::catch_up::ArchiveSource::new(
                source,
                Arc::new(quote_archive::s3::S3Objects::new(
                    quote_archive::s3::S3Objects::client(sdk),
                    catch_up.bucket.clone(),
                )),
                Arc::new(quote_archive::dynamodb::DynamoManifest::new(
                    dynamo.clone(),
                    catch_up.manifest_table.clone(),
                )),
                stream_name.clone(),
            )),
        };
        tracing::info!(
            service = consumption.name(),
            lease_table = %settings.lease_table,
            catch_up = settings.catch_up.is_some(),
            worker_id = %config.worker_id,
            source = ?settings.source,
            "consumer service starting"
        );
        let readiness = Readiness {
            service: consumption,
            table: table.clone(),
        };
        Ok(Self {
            worker: Worker::new(config, table, source, factory),
            readiness,
            handler_tasks,
        })
    }

    /// What tells whether this service can work (for a `/readyz`).
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Runs the worker until `shutdown` (leases handed off), then stops the relay.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.worker.run(shutdown).await;
        if let Some(tasks) = self.handler_tasks {
            tasks.periodic_shutdown.cancel();
            if let Some(periodic) = tasks.periodic {
                periodic.await.context("periodic work")?;
            }
            tasks.relay_shutdown.cancel();
            tasks.relay_task.await.context("relay task")?;
        }
        Ok(())
    }
}

/// Whether a consumer service can work: its lease table answers and its handler's own
/// dependencies are ready.
#[derive(Clone)]
pub struct Readiness {
    service: Consumption,
    table: Arc<dyn LeaseTable>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("service", &self.service.name())
            .finish()
    }
}

impl Readiness {
    /// `Err` with the reason when the service cannot work now.
    pub async fn check(&self) -> Result<(), String> {
        let service = self.service.name();
        let leases = tokio::time::timeout(Duration::from_secs(2), self.table.list()).await;
        if !matches!(leases, Ok(Ok(_))) {
            return Err(format!("{service}: lease table not reachable"));
        }
        self.service.ready().await
    }
}

/// Serves `/healthz` (the process is up) and `/readyz` (every service in `services` is ready)
/// on `listen` until `shutdown`.
pub async fn serve_health(
    listen: SocketAddr,
    services: Vec<Readiness>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    axum::serve(listener, health_router(services))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("serving the health endpoints")
}

fn health_router(services: Vec<Readiness>) -> axum::Router {
    let services = Arc::new(services);
    axum::Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok") }))
        .route(
            "/readyz",
            get(move || {
                let services = services.clone();
                async move {
                    for service in services.iter() {
                        if let Err(reason) = service.check().await {
                            return (StatusCode::SERVICE_UNAVAILABLE, reason);
                        }
                    }
                    (StatusCode::OK, "ready".to_owned())
                }
            }),
        )
}
