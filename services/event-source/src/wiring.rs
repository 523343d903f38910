//! Builds the service from its configuration (in-memory or AWS adapters, relay, router) and
//! runs it until shutdown.

use std::sync::Arc;

use anyhow::Context;
use event_relay::{
    DynamoRelayDeadLetters, EventSink, InMemoryRelayDeadLetters, InMemorySink, KinesisSink, Relay,
    RelayDeadLetters, RelayHandle,
};
use event_store::dynamodb::{DynamoEventStore, TableNames};
use event_store::{EventStore, InMemoryEventStore};
use kinesis_consumer::dead_letter::{DeadLetterStore, DynamoDeadLetters};
use kinesis_consumer::lease_table::DynamoLeaseTable;
use quote_read_model::dynamodb::DynamoReadModel;
use quote_read_model::{InMemoryReadModel, ReadModel};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::dev_sign_in::DevSignIn;
use crate::api::health::ReadinessCache;
use crate::api::{self, ApiSettings, AppState};
use crate::auth::Authenticator;
use crate::config::{AuthKeys, Backend, Config};
use crate::ops::{OpsMonitor, OpsSources, WatchedApplication};

/// The adapters a service runs on: event store, publication sink, read model, relay dead
/// letters.
type Adapters = (
    Arc<dyn EventStore>,
    Arc<dyn EventSink>,
    Arc<dyn ReadModel>,
    Arc<dyn RelayDeadLetters>,
);

/// A wired service: its router state and the relay task.
#[derive(Debug)]
pub struct Service {
    /// Shared state of the handlers (store, sink, relay handle, auth).
    pub state: AppState,
    /// The relay task; it ends after the shutdown token fires.
    pub relay_task: JoinHandle<()>,
}

impl Service {
    /// Wires the service on the given adapters, with an in-memory read model (queries then
    /// fall back to folding the store until a projector fills it).
    pub fn new(
        config: &Config,
        store: Arc<dyn EventStore>,
        sink: Arc<dyn EventSink>,
        shutdown: CancellationToken,
    ) -> Self {
        Self::with_read_model(
            config,
            store,
            sink,
            Arc::new(InMemoryReadModel::new()),
            shutdown,
        )
    }

    /// Wires the service on the given adapters and read model (the relay sets records that
    /// can never be published aside in memory).
    pub fn with_read_model(
        config: &Config,
        store: Arc<dyn EventStore>,
        sink: Arc<dyn EventSink>,
        read_model: Arc<dyn ReadModel>,
        shutdown: CancellationToken,
    ) -> Self {
        let dead_letters = Arc::new(InMemoryRelayDeadLetters::new());
        Self::with_adapters(config, store, sink, read_model, dead_letters, shutdown)
    }

    /// Wires the service on the given adapters, read model and relay dead letters.
    pub fn with_adapters(
        config: &Config,
        store: Arc<dyn EventStore>,
        sink: Arc<dyn EventSink>,
        read_model: Arc<dyn ReadModel>,
        dead_letters: Arc<dyn RelayDeadLetters>,
        shutdown: CancellationToken,
    ) -> Self {
        let relay = Relay::new(store.clone(), sink.clone(), config.relay.clone())
            .with_dead_letters(dead_letters.clone());
        let ops = OpsMonitor::new(OpsSources {
            applications: Vec::new(),
            store: store.clone(),
            relay_dead_letters: dead_letters,
        });
        relay.stats().export_to_opentelemetry("event-source");
        let (relay, relay_task): (RelayHandle, _) = relay.spawn(shutdown);
        let state = AppState {
            store,
            sink,
            relay,
            read_model,
            auth: Authenticator::new(&config.auth),
            readiness: Arc::new(ReadinessCache::default()),
            open_streams: crate::api::stream::OpenStreams::default(),
            ops,
            config: ApiSettings {
                idempotency_ttl: config.idempotency_ttl,
                request_timeout: config.request_timeout,
                max_concurrent_requests: config.max_concurrent_requests,
                snapshot_every: config.snapshot_every,
                dev_sign_in: dev_sign_in(config),
            },
        };
        Self { state, relay_task }
    }

    /// Lets the operations view watch `applications` (their leases and dead letters).
    #[must_use]
    pub fn with_operations(mut self, applications: Vec<WatchedApplication>) -> Self {
        let sources = OpsSources {
            applications,
            ..self.state.ops.sources().clone()
        };
        self.state.ops = OpsMonitor::new(sources);
        self
    }

    /// Wires the service on the adapters the configuration names.
    pub async fn from_config(config: &Config, shutdown: CancellationToken) -> Self {
        let mut watched = Vec::new();
        let (store, sink, read_model, dead_letters): Adapters = match config.backend {
            Backend::Memory => (
                Arc::new(InMemoryEventStore::new()),
                Arc::new(InMemorySink::new()),
                Arc::new(InMemoryReadModel::new()),
                Arc::new(InMemoryRelayDeadLetters::new()),
            ),
            Backend::Aws => {
                let sdk = quote_runtime::aws::load_sdk_config().await;
                let tables = TableNames {
                    events: config.events_table.clone(),
                    idempotency: config.idempotency_table.clone(),
                };
                let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
                let consumer_dead_letters: Arc<dyn DeadLetterStore> = Arc::new(
                    DynamoDeadLetters::new(dynamo.clone(), config.dead_letter_table.clone()),
                );
                watched = config
                    .ops_applications
                    .iter()
                    .map(|app| WatchedApplication {
                        name: app.name.clone(),
                        leases: Arc::new(DynamoLeaseTable::new(
                            dynamo.clone(),
                            app.lease_table.clone(),
                        )),
                        dead_letters: consumer_dead_letters.clone(),
                    })
                    .collect();
                (
                    Arc::new(DynamoEventStore::new(dynamo.clone(), tables)),
                    Arc::new(KinesisSink::new(
                        aws_sdk_kinesis::Client::new(&sdk),
                        config.event_stream.clone(),
                    )),
                    Arc::new(DynamoReadModel::routed(
                        dynamo.clone(),
                        &config.read_model_table,
                        config.read_model_routing_ttl,
                    )),
                    Arc::new(DynamoRelayDeadLetters::new(
                        dynamo,
                        config.relay.dead_letter_table.clone(),
                    )),
                )
            }
        };
        Self::with_adapters(config, store, sink, read_model, dead_letters, shutdown)
            .with_operations(watched)
    }
}

/// The development sign-in's key: only on the in-memory backend with the public dev secret.
fn dev_sign_in(config: &Config) -> Option<DevSignIn> {
    match (&config.backend, &config.auth.keys) {
        // Only with the public dev secret: a secret of the operator's own means tokens are
        // meant to be scarce, and nobody should mint one over the network.
        (Backend::Memory, keys @ AuthKeys::Hs256Secret(secret)) if keys.is_dev_secret() => {
            Some(DevSignIn {
                secret: secret.clone(),
                issuer: config.auth.issuer.clone(),
                audience: config.auth.audience.clone(),
            })
        }
        _ => None,
    }
}

/// Runs the service until `shutdown` fires: stops accepting, finishes in-flight requests, then
/// lets the relay publish what was queued.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    if config.backend == Backend::Memory {
        tracing::warn!(
            "BACKEND=memory: events live in this process only and are lost when it stops"
        );
    }
    if config.auth.keys.is_dev_secret() {
        tracing::warn!(
            "accepting tokens signed with the public dev secret (AUTH_HS256_SECRET unset or set to it): anyone can mint tokens"
        );
    }
    let relay_shutdown = CancellationToken::new();
    let service = Service::from_config(&config, relay_shutdown.clone()).await;
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("binding {}", config.listen_addr))?;
    tracing::info!(addr = %listener.local_addr()?, backend = ?config.backend, "event-source listening");
    let streams = service.state.open_streams.clone();
    axum::serve(listener, api::router(service.state))
        .with_graceful_shutdown(async move {
            shutdown.cancelled().await;
            streams.close_all();
        })
        .await
        .context("serving HTTP")?;
    relay_shutdown.cancel();
    service.relay_task.await.context("relay task")?;
    tracing::info!("event-source stopped");
    Ok(())
}
