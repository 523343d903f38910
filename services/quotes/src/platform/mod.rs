//! Which services a `quotes run` process runs, on which adapters, with which settings.
//!
//! - **Embedded** (`quotes run`, [`embedded`]): the REST API, the relay and every consumer
//!   service in this process on the in-memory adapters; nothing outside the process is needed.
//! - **AWS** (`quotes run --aws`, or naming services: `quotes run projector notifier`,
//!   [`aws`]): the chosen services (all by default) against the configured AWS endpoints (real
//!   AWS, LocalStack or the emulators), each consumer service its own consumer application with
//!   its own lease table, exactly as when each runs in a process of its own.
//!
//! [`Plan::new`] checks every setting the chosen services need and reports every problem at
//! once; [`Plan::run`] then starts them.

pub mod aws;
pub mod embedded;
pub mod resources;

use std::fmt;

use event_source::config::{Backend, Config};
use quote_pipeline::service::AwsConsumerConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::settings::api::{ApiParts, BackendName};
use crate::settings::consumer::ConsumerParts;
use crate::settings::handlers::{NotifierConfig, ProviderConfig};
use crate::settings::{heading, InvalidSettings, RunSettings};

pub use embedded::{embedded_handlers, run_embedded, EMBEDDED_SHARDS};

/// The customer of the dev token `quotes run` prints when it runs embedded.
pub const DEV_CUSTOMER: &str = "cust-42";

/// Lifetime of that token.
const DEV_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The URL a local client uses for `addr` (the loopback address for an unspecified one).
pub fn base_url(addr: std::net::SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", addr.port())
}

/// A service of the platform, as `quotes run` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Service {
    /// The REST API, the event store's writer and its relay to Kinesis.
    EventSource,
    /// Decodes each quote's VINs (vPIC, or offline from the VIN itself).
    VehicleEnricher,
    /// Asks the driver-record provider for each driver's history.
    DriverHistory,
    /// Rates a quote once it has every input; issues, declines or refers it.
    Fulfillment,
    /// Keeps the customer-quotes read model.
    Projector,
    /// Sends the e-mail and SMS notifications.
    Notifier,
    /// Writes every record of the stream to the archive in S3 (on AWS only: the embedded
    /// platform keeps nothing, so it has nothing to archive).
    Archiver,
}

impl Service {
    /// Every service, in pipeline order.
    pub const ALL: [Service; 7] = [
        Service::EventSource,
        Service::VehicleEnricher,
        Service::DriverHistory,
        Service::Fulfillment,
        Service::Projector,
        Service::Notifier,
        Service::Archiver,
    ];

    /// The service's name (as on the command line).
    pub fn name(self) -> &'static str {
        match self {
            Service::EventSource => "event-source",
            Service::VehicleEnricher => "vehicle-enricher",
            Service::DriverHistory => "driver-history",
            Service::Fulfillment => "fulfillment",
            Service::Projector => "projector",
            Service::Notifier => "notifier",
            Service::Archiver => archiver::NAME,
        }
    }

    /// The setting groups the service reads, by help heading.
    pub fn headings(self) -> &'static [&'static str] {
        use heading::*;
        match self {
            Service::EventSource => &[
                PROCESS,
                TELEMETRY,
                EVENT_STORE,
                READ_MODEL,
                RELAY,
                API,
                DEAD_LETTERS,
            ],
            Service::VehicleEnricher => &[
                PROCESS,
                TELEMETRY,
                EVENT_STORE,
                RELAY,
                CONSUMER,
                DEAD_LETTERS,
                VEHICLE_ENRICHER,
            ],
            Service::DriverHistory => &[
                PROCESS,
                TELEMETRY,
                EVENT_STORE,
                RELAY,
                CONSUMER,
                DEAD_LETTERS,
                DRIVER_HISTORY,
            ],
            Service::Fulfillment => &[
                PROCESS,
                TELEMETRY,
                EVENT_STORE,
                RELAY,
                CONSUMER,
                DEAD_LETTERS,
                READ_MODEL,
                FULFILLMENT,
            ],
            Service::Projector => &[
                PROCESS,
                TELEMETRY,
                EVENT_STORE,
                RELAY,
                CONSUMER,
                DEAD_LETTERS,
                READ_MODEL,
            ],
            Service::Notifier => &[
                PROCESS,
                TELEMETRY,
                EVENT_STORE,
                RELAY,
                CONSUMER,
                DEAD_LETTERS,
                NOTIFIER,
            ],
            Service::Archiver => &[
                PROCESS,
                TELEMETRY,
                EVENT_STORE,
                CONSUMER,
                DEAD_LETTERS,
                ARCHIVER,
            ],
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name a `quotes run` process gives itself in logs and traces (`service.name`): the
/// service's when it runs one, `quotes` otherwise.
pub fn process_name(services: &[Service]) -> &'static str {
    match services {
        [service] => service.name(),
        _ => "quotes",
    }
}

/// A consumer service's own configuration, checked.
#[derive(Debug)]
pub enum Handler {
    /// vPIC's settings, or offline decoding.
    VehicleEnricher(Option<vehicle_enricher::vpic::VpicConfig>),
    /// The driving-record provider.
    DriverHistory(ProviderConfig),
    /// The rating tables, loaded and validated, and the quote deadline.
    Fulfillment(Box<FulfillmentPlan>),
    /// The read model's tables.
    Projector(ReadModelTables),
    /// The sender, the ledger.
    Notifier(NotifierConfig),
    /// The archive's bucket, manifest and segments.
    Archiver(ArchivePlan),
}

/// What fulfillment rates with, and when it refers a quote still pending.
#[derive(Debug)]
pub struct FulfillmentPlan {
    /// The rating tables, loaded and validated.
    pub tables: quote_rating::RatingTables,
    /// Where they came from.
    pub source: fulfillment::tables::TablesSource,
    /// The read model whose `pending` index lists the quotes still pending.
    pub read_model: ReadModelTables,
    /// How long a quote may stay pending (`QUOTE_DEADLINE_SECS`).
    pub deadline: std::time::Duration,
}

/// The read model's home table (`READ_MODEL_TABLE`, which holds the routing) and how long a
/// service keeps the routing before reading it again.
#[derive(Debug, Clone)]
pub struct ReadModelTables {
    /// The home table.
    pub home: String,
    /// `READ_MODEL_ROUTING_SECS`.
    pub routing_ttl: std::time::Duration,
}

/// Where the archiver writes.
#[derive(Debug, Clone)]
pub struct ArchivePlan {
    /// Segments, stream, closing.
    pub config: archiver::ArchiverConfig,
    /// The S3 bucket.
    pub bucket: String,
    /// The manifest's DynamoDB table.
    pub manifest_table: String,
}

/// A consumer service ready to start: its handler's configuration and its application's.
#[derive(Debug)]
pub struct Consumer {
    /// The service.
    pub service: Service,
    /// What its handler needs.
    pub handler: Handler,
    /// Its consumer application.
    pub application: AwsConsumerConfig,
}

/// What `quotes run` runs.
#[derive(Debug)]
pub enum Plan {
    /// Every service in this process on the in-memory adapters.
    Embedded(Config),
    /// Services against AWS.
    Aws(aws::AwsPlan),
}

impl Plan {
    /// The plan for `quotes run [--aws] [SERVICE…]`: every service embedded when nothing is
    /// named and neither `--aws` nor `BACKEND=aws` asks for AWS; otherwise the named services
    /// (all when none is named) against AWS. Every setting the chosen services need is
    /// checked; the error lists every problem.
    pub fn new(args: &RunArgs) -> Result<Self, InvalidSettings> {
        let settings = &args.settings;
        let embedded = args.services.is_empty()
            && !args.aws
            && settings.process.backend == BackendName::Memory;
        if embedded {
            return api_parts(settings)
                .config(Backend::Memory)
                .map(Plan::Embedded)
                .map_err(InvalidSettings);
        }
        let mut services = if args.services.is_empty() {
            Service::ALL.to_vec()
        } else {
            args.services.clone()
        };
        services.sort();
        services.dedup();
        let mut problems = Vec::new();
        let event_source = if services.contains(&Service::EventSource) {
            api_parts(settings)
                .config(Backend::Aws)
                .map_err(|found| problems.extend(found))
                .ok()
        } else {
            None
        };
        let consumers: Vec<Service> = services
            .iter()
            .copied()
            .filter(|s| *s != Service::EventSource)
            .collect();
        if consumers.len() > 1 && settings.consumer.lease.lease_table.is_some() {
            problems.push(format!(
                "LEASE_TABLE is set, but this process runs {} consumer services, each its own \
                 consumer application with its own lease table (<service>-leases): unset it, or \
                 run one consumer service per process",
                consumers.len()
            ));
        }
        let mut checked = Vec::new();
        for service in consumers {
            match consumer(settings, service) {
                Ok(consumer) => checked.push(consumer),
                Err(found) => problems.extend(found),
            }
        }
        if !problems.is_empty() {
            return Err(InvalidSettings(problems));
        }
        Ok(Plan::Aws(aws::AwsPlan {
            services,
            event_source,
            consumers: checked,
            listen: settings.process.listen_addr,
        }))
    }

    /// The log filter when `RUST_LOG` is unset: warnings only for the embedded platform (its
    /// start-up is a few printed lines, not one per lease), `info` on AWS.
    pub fn log_default(&self) -> &'static str {
        match self {
            Plan::Embedded(_) => "warn",
            Plan::Aws(_) => "info",
        }
    }

    /// What runs and where it listens (printed on stdout once it listens); embedded, with a
    /// dev token and the curl line of a first request.
    pub fn banner(&self) -> String {
        match self {
            Plan::Embedded(config) => embedded_banner(config, config.listen_addr),
            Plan::Aws(plan) => plan.banner(),
        }
    }

    /// Runs the plan until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        match self {
            Plan::Embedded(config) => {
                let listener = TcpListener::bind(config.listen_addr)
                    .await
                    .map_err(|err| anyhow::anyhow!("binding {}: {err}", config.listen_addr))?;
                let bound = listener.local_addr().unwrap_or(config.listen_addr);
                print!("{}", embedded_banner(&config, bound));
                run_embedded(listener, config, shutdown).await
            }
            Plan::Aws(plan) => plan.run(shutdown).await,
        }
    }
}

/// What `quotes run` prints when every service runs embedded, listening on `addr`.
fn embedded_banner(config: &Config, addr: std::net::SocketAddr) -> String {
    let base = base_url(addr);
    let mut out = format!(
        "quotes: every service running in this process, in memory (nothing is kept when it \
         stops)\n  API       {base}  (reference: {base}/openapi.json)\n"
    );
    if !config.auth.keys.is_dev_secret() {
        return out;
    }
    let settings = crate::config::TokenSettings {
        secret: secrecy::SecretString::from(event_source::config::DEV_SECRET),
        dev_secret: true,
        issuer: config.auth.issuer.clone(),
        audience: config.auth.audience.clone(),
    };
    match crate::token::mint(&settings, DEV_CUSTOMER, false, DEV_TOKEN_TTL) {
        Ok(token) => out.push_str(&format!(
            "  token     {token}\n            (customer {DEV_CUSTOMER}, signed with the public dev \
             secret, valid 24 h; `quotes token --customer ID` mints others)\n  try       curl \
             -si {base}/v1/quotes -H \"Authorization: Bearer {token}\" -H 'Content-Type: \
             application/json' -d @examples/quote.json\n"
        )),
        Err(err) => out.push_str(&format!("  token     not minted: {err}\n")),
    }
    out
}

fn api_parts(settings: &RunSettings) -> ApiParts<'_> {
    ApiParts {
        process: &settings.process,
        event_store: &settings.event_store,
        read_model: &settings.read_model,
        relay: &settings.relay,
        api: &settings.api,
        dead_letters: &settings.consumer.dead_letters,
    }
}

/// The checked configuration of consumer service `service`, or every problem with it.
pub(crate) fn consumer(settings: &RunSettings, service: Service) -> Result<Consumer, Vec<String>> {
    let parts = ConsumerParts {
        event_store: &settings.event_store,
        relay: &settings.relay,
        consumer: &settings.consumer,
        archive: &settings.archive.storage,
    };
    let application = parts.config(service.name());
    let handler = match service {
        Service::VehicleEnricher => Ok(Handler::VehicleEnricher(settings.vehicle_enricher.vpic())),
        Service::DriverHistory => settings
            .driver_history
            .provider()
            .map(Handler::DriverHistory),
        Service::Fulfillment => settings.fulfillment.tables().map(|(tables, source)| {
            Handler::Fulfillment(Box::new(FulfillmentPlan {
                tables,
                source,
                read_model: settings.read_model.tables(),
                deadline: std::time::Duration::from_secs(settings.fulfillment.quote_deadline_secs),
            }))
        }),
        Service::Projector => Ok(Handler::Projector(settings.read_model.tables())),
        Service::Notifier => settings.notifier.config().map(Handler::Notifier),
        Service::Archiver => Ok(Handler::Archiver(ArchivePlan {
            config: settings.archive.config(&settings.event_store.event_stream),
            bucket: settings.archive.storage.archive_bucket.clone(),
            manifest_table: settings.archive.storage.archive_manifest_table.clone(),
        })),
        Service::EventSource => Err(vec!["event-source is not a consumer service".to_owned()]),
    };
    match (handler, application) {
        (Ok(handler), Ok(application)) => Ok(Consumer {
            service,
            handler,
            application,
        }),
        (handler, application) => Err(handler
            .err()
            .into_iter()
            .chain(application.err())
            .flatten()
            .collect()),
    }
}
