//! Services against AWS (or LocalStack, or the emulators): event-source and any consumer
//! services, each consumer service its own consumer application.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use aws_config::SdkConfig;
use event_source::config::Config;
use quote_pipeline::service::{serve_health, AwsConsumer, Consumption};
use quote_pipeline::EventHandler;
use tokio_util::sync::CancellationToken;

use super::resources::{self, Resource};
use super::{Consumer, Handler, Service};
use crate::settings::handlers::ProviderConfig;

/// The services of a `quotes run` process on AWS, their settings checked.
#[derive(Debug)]
pub struct AwsPlan {
    /// Every service of the process, sorted, each once.
    pub services: Vec<Service>,
    /// event-source's configuration, when it runs here.
    pub event_source: Option<Config>,
    /// The consumer services that run here.
    pub consumers: Vec<Consumer>,
    /// Where the process listens (`LISTEN_ADDR`): event-source's API and health checks, or the
    /// consumer services' health checks.
    pub listen: SocketAddr,
}

impl AwsPlan {
    /// Runs the services until `shutdown`. With event-source among them, its listener also
    /// answers the health checks; otherwise the consumer services share one health server on
    /// `listen`, ready when all of them are.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let banner = self.banner();
        let sdk = quote_runtime::aws::load_sdk_config().await;
        if !resources::wait_until_present(&sdk, &self.resources(), self.listen, &shutdown).await? {
            return Ok(());
        }
        let mut connected = Vec::new();
        for consumer in self.consumers {
            let name = consumer.service.name();
            let consumption =
                consumption(consumer.handler, &sdk).with_context(|| format!("starting {name}"))?;
            connected.push(
                AwsConsumer::connect(consumption, consumer.application, &sdk)
                    .await
                    .with_context(|| format!("starting {name}"))?,
            );
        }
        let health = if self.event_source.is_some() {
            None
        } else {
            let readiness = connected.iter().map(AwsConsumer::readiness).collect();
            Some(tokio::spawn(serve_health(
                self.listen,
                readiness,
                shutdown.clone(),
            )))
        };
        print!("{banner}");
        let mut tasks = Vec::new();
        for consumer in connected {
            tasks.push(tokio::spawn(consumer.run(shutdown.clone())));
        }
        if let Some(config) = self.event_source {
            event_source::run(config, shutdown.clone()).await?;
        }
        if let Some(health) = health {
            // The health server stops with `shutdown`; an early end (the port is taken) is fatal.
            health.await.context("health server")??;
        }
        for task in tasks {
            task.await.context("consumer service")??;
        }
        Ok(())
    }
}

impl AwsPlan {
    /// The tables and streams the services of this process need.
    pub fn resources(&self) -> BTreeSet<Resource> {
        let mut needed = BTreeSet::new();
        if let Some(config) = &self.event_source {
            needed.extend([
                Resource::Table(config.events_table.clone()),
                Resource::Table(config.idempotency_table.clone()),
                Resource::Table(config.read_model_table.clone()),
                Resource::Table(config.relay.dead_letter_table.clone()),
                Resource::Stream(config.event_stream.clone()),
            ]);
        }
        for consumer in &self.consumers {
            let application = &consumer.application;
            needed.extend([
                Resource::Table(application.lease_table.clone()),
                Resource::Stream(application.event_stream.clone()),
            ]);
            if let Handler::Archiver(archive) = &consumer.handler {
                // A record service: no event store, relay or dead letters.
                needed.extend([
                    Resource::Table(archive.manifest_table.clone()),
                    Resource::Bucket(archive.bucket.clone()),
                ]);
                continue;
            }
            needed.extend([
                Resource::Table(application.tables.events.clone()),
                Resource::Table(application.tables.idempotency.clone()),
                Resource::Table(application.dead_letter_table.clone()),
                Resource::Table(application.relay.dead_letter_table.clone()),
            ]);
            match &consumer.handler {
                Handler::Projector(tables) => {
                    needed.insert(Resource::Table(tables.home.clone()));
                }
                Handler::Fulfillment(plan) => {
                    needed.insert(Resource::Table(plan.read_model.home.clone()));
                }
                Handler::Notifier(config) => {
                    needed.insert(Resource::Table(config.table.clone()));
                }
                _ => {}
            }
        }
        needed
    }

    /// What runs and where it listens.
    pub fn banner(&self) -> String {
        let names: Vec<&str> = self.services.iter().map(|s| s.name()).collect();
        format!(
            "quotes: running {} against AWS\n  listening {}\n",
            names.join(", "),
            super::base_url(self.listen)
        )
    }
}

/// An event-handling consumer service's handler outside its worker (for `quotes dlq
/// redrive`): the handler its settings give, appending through the event store and publishing
/// through a relay of its own.
pub struct Replayer {
    /// The handler.
    pub handler: Arc<dyn EventHandler>,
    /// What it appends and publishes through.
    pub context: quote_pipeline::HandlerContext,
    relay_stop: CancellationToken,
    relay_task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Replayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayer")
            .field("handler", &self.handler.name())
            .finish()
    }
}

impl Replayer {
    /// The handler of `service` with `settings`, on the SDK configuration `sdk`.
    pub fn connect(
        settings: &crate::settings::RunSettings,
        service: Service,
        sdk: &SdkConfig,
    ) -> anyhow::Result<Self> {
        let consumer =
            super::consumer(settings, service).map_err(crate::settings::InvalidSettings)?;
        if let Handler::Archiver(_) = consumer.handler {
            anyhow::bail!("the archiver handles no events: it has no dead letters");
        }
        let handler = event_handler(consumer.handler, sdk)?;
        let application = consumer.application;
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let store: Arc<dyn event_store::EventStore> = Arc::new(
            event_store::dynamodb::DynamoEventStore::new(dynamo.clone(), application.tables),
        );
        let sink: Arc<dyn event_relay::EventSink> = Arc::new(event_relay::KinesisSink::new(
            aws_sdk_kinesis::Client::new(sdk),
            application.event_stream,
        ));
        let dead_letters = Arc::new(event_relay::DynamoRelayDeadLetters::new(
            dynamo,
            application.relay.dead_letter_table.clone(),
        ));
        let relay_stop = CancellationToken::new();
        let (relay, relay_task) = event_relay::Relay::new(store.clone(), sink, application.relay)
            .with_dead_letters(dead_letters)
            .spawn(relay_stop.clone());
        let context = quote_pipeline::HandlerContext::new(store, relay, handler.name());
        Ok(Self {
            handler,
            context,
            relay_stop,
            relay_task,
        })
    }

    /// Publishes what the handler appended and stops the relay.
    pub async fn finish(self) -> anyhow::Result<()> {
        self.relay_stop.cancel();
        self.relay_task.await.context("relay task")
    }
}

/// What a consumer service does on AWS.
fn consumption(handler: Handler, sdk: &SdkConfig) -> anyhow::Result<Consumption> {
    if let Handler::Archiver(archive) = handler {
        let objects = quote_archive::s3::S3Objects::new(
            quote_archive::s3::S3Objects::client(sdk),
            archive.bucket,
        );
        let manifest = quote_archive::dynamodb::DynamoManifest::new(
            aws_sdk_dynamodb::Client::new(sdk),
            archive.manifest_table,
        );
        return Ok(Consumption::Records(Arc::new(archiver::Archiver::new(
            Arc::new(objects),
            Arc::new(manifest),
            archive.config,
        ))));
    }
    event_handler(handler, sdk).map(Consumption::Events)
}

/// The event handler of a consumer service on AWS.
fn event_handler(handler: Handler, sdk: &SdkConfig) -> anyhow::Result<Arc<dyn EventHandler>> {
    Ok(match handler {
        Handler::VehicleEnricher(None) => Arc::new(vehicle_enricher::VehicleEnricher::offline()),
        Handler::VehicleEnricher(Some(vpic)) => Arc::new(vehicle_enricher::VehicleEnricher::new(
            vehicle_enricher::vpic::VpicClient::new(vpic).context("the vPIC client")?,
        )),
        Handler::DriverHistory(ProviderConfig::Simulated) => {
            tracing::warn!(
                "DRIVER_HISTORY_PROVIDER=simulated: driving histories are SIMULATED, not real records"
            );
            Arc::new(driver_history::DriverHistory::new(Arc::new(
                driver_history::provider::SimulatedProvider,
            )))
        }
        Handler::DriverHistory(ProviderConfig::Http(config)) => {
            Arc::new(driver_history::DriverHistory::new(Arc::new(
                driver_history::provider::HttpProvider::new(config)
                    .context("the driving-record provider's client")?,
            )))
        }
        Handler::Fulfillment(plan) => {
            let plan = *plan;
            let pending = quote_read_model::dynamodb::DynamoReadModel::routed(
                aws_sdk_dynamodb::Client::new(sdk),
                &plan.read_model.home,
                plan.read_model.routing_ttl,
            );
            Arc::new(
                fulfillment::Fulfillment::loaded(plan.tables, plan.source).with_deadlines(
                    fulfillment::deadline::Deadlines {
                        pending: Arc::new(pending),
                        deadline: plan.deadline,
                    },
                ),
            )
        }
        Handler::Projector(tables) => Arc::new(projector::Projector::new(Arc::new(
            quote_read_model::dynamodb::DynamoReadModel::routed(
                aws_sdk_dynamodb::Client::new(sdk),
                &tables.home,
                tables.routing_ttl,
            ),
        ))),
        Handler::Notifier(config) => {
            tracing::info!(
                table = %config.table,
                claim_timeout_secs = config.claim_timeout.as_secs(),
                "notifier configured"
            );
            Arc::new(notifier::Notifier::new(
                Arc::new(notifier::ledger::DynamoNotificationLedger::new(
                    aws_sdk_dynamodb::Client::new(sdk),
                    config.table,
                    config.claim_timeout,
                )),
                Arc::new(notifier::senders::SesEmailSender::from_sdk_config(
                    sdk,
                    config.from,
                )),
                Arc::new(notifier::senders::SnsSmsSender::from_sdk_config(sdk)),
            ))
        }
        Handler::Archiver(_) => {
            anyhow::bail!("the archiver is a record service, not an event handler")
        }
    })
}
