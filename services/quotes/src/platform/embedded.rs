//! Every service in one process on the in-memory adapters: one in-memory stream with four
//! shards, each consumer service its own consumer application with its own in-memory lease
//! table. The driver-record provider is the simulated one, VINs are decoded offline and
//! notifications are recorded in memory (not sent), so nothing outside the process is needed.
//! Fulfillment refers quotes pending longer than the default deadline (300 s).

use std::sync::Arc;

use anyhow::Context;
use event_source::config::Config;
use event_source::ops::WatchedApplication;
use event_store::{EventStore, InMemoryEventStore};
use kinesis_consumer::source::memory::InMemoryStream;
use quote_pipeline::service::embedded_worker;
use quote_pipeline::stream_sink::InMemoryStreamSink;
use quote_pipeline::EventHandler;
use quote_read_model::{InMemoryReadModel, ReadModel};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Shards of the embedded stream.
pub const EMBEDDED_SHARDS: u64 = 4;

/// The consumer services on the embedded adapters, writing the read model `read_model`.
pub fn embedded_handlers(read_model: Arc<dyn ReadModel>) -> Vec<Arc<dyn EventHandler>> {
    vec![
        Arc::new(vehicle_enricher::VehicleEnricher::offline()),
        Arc::new(driver_history::DriverHistory::new(Arc::new(
            driver_history::provider::SimulatedProvider,
        ))),
        Arc::new(
            fulfillment::Fulfillment::with_default_tables().with_deadlines(
                fulfillment::deadline::Deadlines {
                    pending: read_model.clone(),
                    deadline: fulfillment::deadline::DEFAULT_DEADLINE,
                },
            ),
        ),
        Arc::new(projector::Projector::new(read_model)),
        Arc::new(notifier::Notifier::new(
            Arc::new(notifier::ledger::InMemoryNotificationLedger::new(
                std::time::Duration::from_secs(120),
            )),
            Arc::new(notifier::senders::InMemoryEmailSender::new()),
            Arc::new(notifier::senders::InMemorySmsSender::new()),
        )),
    ]
}

/// Runs everything embedded, serving the API on `listener`, until `shutdown`.
pub async fn run_embedded(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stream = InMemoryStream::new(EMBEDDED_SHARDS);
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let read_model: Arc<dyn ReadModel> = Arc::new(InMemoryReadModel::new());
    let relay_shutdown = CancellationToken::new();
    let mut service = event_source::Service::with_read_model(
        &config,
        store.clone(),
        Arc::new(InMemoryStreamSink::new(stream.clone())),
        read_model.clone(),
        relay_shutdown.clone(),
    );
    let relay = service.state.relay.clone();
    let workers_shutdown = CancellationToken::new();
    let mut workers = Vec::new();
    let mut periodic_tasks = Vec::new();
    let mut watched = Vec::new();
    for handler in embedded_handlers(read_model) {
        tracing::debug!(
            service = handler.name(),
            "starting embedded consumer service"
        );
        if let Some(periodic) = quote_pipeline::spawn_periodic(
            handler.clone(),
            quote_pipeline::HandlerContext::new(store.clone(), relay.clone(), handler.name()),
            workers_shutdown.clone(),
        ) {
            periodic_tasks.push(periodic);
        }
        let name = handler.name();
        let embedded = embedded_worker(handler, stream.clone(), store.clone(), relay.clone());
        watched.push(WatchedApplication {
            name: name.to_owned(),
            leases: embedded.leases,
            dead_letters: embedded.dead_letters,
        });
        workers.push(tokio::spawn(embedded.worker.run(workers_shutdown.clone())));
    }
    service = service.with_operations(watched);
    tracing::info!(addr = %listener.local_addr()?, "every service running, embedded");
    let streams = service.state.open_streams.clone();
    axum::serve(listener, event_source::api::router(service.state))
        .with_graceful_shutdown(async move {
            shutdown.cancelled().await;
            streams.close_all();
        })
        .await
        .context("serving HTTP")?;
    workers_shutdown.cancel();
    for worker in workers {
        worker.await.context("consumer worker")?;
    }
    for periodic in periodic_tasks {
        periodic.await.context("periodic work")?;
    }
    relay_shutdown.cancel();
    service.relay_task.await.context("relay")?;
    Ok(())
}
