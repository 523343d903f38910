//! Every setting of `quotes`, declared once: a clap argument with its environment variable, its
//! default and its meaning. `quotes run --help` (and each command's help) lists them, `quotes
//! settings` prints them per service (a table, Markdown for the README, or JSON for the
//! deployment checks), and [`report::parse`] and [`crate::platform::Plan::new`] report every
//! invalid setting of a start at once.
//!
//! The groups are clap `Args` structs, flattened into the commands that need them, each under a
//! help heading ([`heading`]). Which service reads which group is [`Service::headings`]. The
//! libraries take plain configuration structs built from these groups; none of them reads the
//! environment.
//!
//! The AWS SDK's variables (`AWS_REGION`, `AWS_ENDPOINT_URL_*`, credentials, …) and the
//! OpenTelemetry SDK's (`OTEL_*`) are read by those SDKs themselves and documented by them.
//!
//! [`Service::headings`]: crate::platform::Service::headings

pub mod api;
pub mod archive;
pub mod consumer;
pub mod event_store;
pub mod handlers;
pub mod parse;
pub mod relay;
pub mod report;
pub mod telemetry;

pub use report::InvalidSettings;

/// The help headings of the groups, which tell the services a setting belongs to.
pub mod heading {
    /// Every `quotes run` process.
    pub const PROCESS: &str = "Process";
    /// Logs and traces, every process.
    pub const TELEMETRY: &str = "Logs and traces";
    /// The event store and the stream, every service.
    pub const EVENT_STORE: &str = "Event store";
    /// The customer-quotes read model: event-source and projector.
    pub const READ_MODEL: &str = "Read model";
    /// The relay that publishes appended events: every service.
    pub const RELAY: &str = "Relay";
    /// The REST API: event-source.
    pub const API: &str = "API (event-source)";
    /// The consumer applications: every consumer service.
    pub const CONSUMER: &str = "Consumer services";
    /// The consumer services' dead letters: every consumer service sets records aside there,
    /// event-source's operations view reads them.
    pub const DEAD_LETTERS: &str = "Dead letters";
    /// vehicle-enricher.
    pub const VEHICLE_ENRICHER: &str = "vehicle-enricher";
    /// driver-history.
    pub const DRIVER_HISTORY: &str = "driver-history";
    /// fulfillment.
    pub const FULFILLMENT: &str = "fulfillment";
    /// notifier.
    pub const NOTIFIER: &str = "notifier";
    /// archiver.
    pub const ARCHIVER: &str = "archiver";
    /// `quotes bootstrap` only.
    pub const BOOTSTRAP: &str = "Bootstrap";
}

/// What the help of every command says after its settings.
pub const SDK_VARIABLES: &str = "The AWS SDK reads its own variables (AWS_REGION, AWS_PROFILE, \
credentials, AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> for emulators or LocalStack), and \
the OpenTelemetry SDK its own (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, \
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, …).";

/// Every setting of `quotes run`: each service reads the groups of its
/// [`crate::platform::Service::headings`].
#[derive(Debug, Clone, clap::Args)]
pub struct RunSettings {
    /// Where the process listens, which backend.
    #[command(flatten)]
    pub process: api::ProcessSettings,
    /// Tables and stream.
    #[command(flatten)]
    pub event_store: event_store::EventStoreSettings,
    /// The read model.
    #[command(flatten)]
    pub read_model: event_store::ReadModelSettings,
    /// The relays.
    #[command(flatten)]
    pub relay: relay::RelaySettings,
    /// The REST API.
    #[command(flatten)]
    pub api: api::ApiSettings,
    /// The consumer applications.
    #[command(flatten)]
    pub consumer: consumer::ConsumerSettings,
    /// vehicle-enricher.
    #[command(flatten)]
    pub vehicle_enricher: handlers::VehicleEnricherSettings,
    /// driver-history.
    #[command(flatten)]
    pub driver_history: handlers::DriverHistorySettings,
    /// fulfillment.
    #[command(flatten)]
    pub fulfillment: handlers::FulfillmentSettings,
    /// notifier.
    #[command(flatten)]
    pub notifier: handlers::NotifierSettings,
    /// archiver.
    #[command(flatten)]
    pub archive: archive::ArchiveSettings,
}

/// What `quotes bootstrap` alone reads.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = heading::BOOTSTRAP)]
pub struct BootstrapSettings {
    /// Consumer applications, comma-separated; each gets the lease table `<application>-leases`.
    #[arg(long, env = "CONSUMER_APPLICATIONS", value_delimiter = ',', default_value = "vehicle-enricher,driver-history,fulfillment,projector,notifier,archiver", value_parser = parse::resource_name)]
    pub consumer_applications: Vec<String>,
    /// Shards of the stream when bootstrap creates it.
    #[arg(long, env = "EVENT_STREAM_SHARDS", default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub event_stream_shards: i32,
}
