//! The command line of `quotes` (clap derive). Subcommand and flag names, and the environment
//! variables of the settings, are a fixed interface used by scripts, compose, the task
//! definitions and CI. Every setting is declared once, in [`crate::settings`].

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bench::pipeline::PipelineArgs;
use crate::bench::{BaselineKind, IngestOptions};
use crate::platform::Service;
use crate::settings::api::{ApiSettings, AuthSettings, ProcessSettings};
use crate::settings::consumer::{DeadLetterSettings, LeaseTableSettings};
use crate::settings::event_store::{EventStoreSettings, ReadModelSettings};
use crate::settings::handlers::NotifierSettings;
use crate::settings::relay::{RelayDeadLetterSettings, RelaySettings};
use crate::settings::telemetry::TelemetrySettings;
use crate::settings::{BootstrapSettings, RunSettings, SDK_VARIABLES};

/// The quote platform: its services and its operations commands.
#[derive(Debug, Parser)]
#[command(name = "quotes", version, about, long_about = None, after_help = SDK_VARIABLES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Logs and traces (every command).
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run services: all of them in this process on in-memory adapters (no arguments), all of
    /// them against AWS (`--aws`), or the named ones against AWS.
    #[command(after_help = SDK_VARIABLES)]
    Run(Box<RunArgs>),
    /// Exit 0 when GET /healthz on LISTEN_ADDR's port answers 200 (the container health check).
    Healthcheck(HealthcheckArgs),
    /// List every setting (variable, default, meaning, who reads it), of the named services or
    /// of every command.
    Settings(SettingsArgs),
    /// Create the tables, the stream, the lease tables and the SES sender identity the
    /// settings name, unless they exist; wait until they are ACTIVE.
    #[command(after_help = SDK_VARIABLES)]
    Bootstrap(BootstrapArgs),
    /// Print a bearer token signed with AUTH_HS256_SECRET (or the dev secret, with a note).
    Token(TokenArgs),
    /// Print a consumer application's lease table: owner, counter, checkpoint, liveness.
    Leases(LeasesArgs),
    /// Print the records the relays set aside because Kinesis can never accept them
    /// (RELAY_DEAD_LETTER_TABLE): stream, version, event, size and reason.
    RelayDeadLetters(RelayDeadLettersArgs),
    /// A consumer application's dead letters (DEAD_LETTER_TABLE): list, show one, replay them
    /// through the application's handler in order, or purge them.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The event archive (S3 segments and their DynamoDB manifest): how far each shard is
    /// archived, and the backfill of the events from before it began.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// The publication outbox: commits the relays have not published to EVENT_STREAM yet.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// A consumer application's position in the stream.
    #[command(subcommand)]
    Consumer(ConsumerCommand),
    /// Rebuild a projection from the event store.
    #[command(subcommand)]
    Rebuild(RebuildCommand),
    /// The customer-quotes read model's tables: which is live, how current each is; switch the
    /// API to a rebuilt one without a restart.
    #[command(subcommand)]
    ReadModel(ReadModelCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `quotes run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run against the configured AWS endpoints (AWS, LocalStack or the emulators) instead of
    /// the in-memory adapters (the same as BACKEND=aws). Implied when services are named.
    #[arg(long)]
    pub aws: bool,
    /// The services to run in this process; none means every service.
    #[arg(value_enum)]
    pub services: Vec<Service>,
    /// Every setting a service may read.
    #[command(flatten)]
    pub settings: RunSettings,
}

/// `quotes healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The process to probe (its LISTEN_ADDR's port on this host).
    #[command(flatten)]
    pub process: ProcessSettings,
}

/// What `quotes settings` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SettingsFormat {
    /// One block per setting, grouped.
    Text,
    /// A Markdown table (the README's).
    Markdown,
    /// A JSON array (for scripts and the deployment checks).
    Json,
}

/// `quotes settings`.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Only the settings these services read.
    #[arg(value_enum)]
    pub services: Vec<Service>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SettingsFormat::Text)]
    pub output: SettingsFormat,
}

/// Output of the operations commands that print a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for a terminal.
    Text,
    /// JSON for scripts.
    Json,
}

/// `quotes bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Tables and stream.
    #[command(flatten)]
    pub event_store: EventStoreSettings,
    /// The read model.
    #[command(flatten)]
    pub read_model: ReadModelSettings,
    /// The consumers' dead letters.
    #[command(flatten)]
    pub dead_letters: DeadLetterSettings,
    /// The relays' dead letters.
    #[command(flatten)]
    pub relay_dead_letters: RelayDeadLetterSettings,
    /// The notifier's ledger and sender identity.
    #[command(flatten)]
    pub notifier: NotifierSettings,
    /// The archive's bucket and manifest.
    #[command(flatten)]
    pub archive: crate::settings::archive::ArchiveStorageSettings,
    /// The lease tables and the stream's shards.
    #[command(flatten)]
    pub bootstrap: BootstrapSettings,
    /// A lease table named by LEASE_TABLE (a consumer service run with it) is created too.
    #[command(flatten)]
    pub lease: LeaseTableSettings,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// `quotes token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The token's subject: the customer id.
    #[arg(long)]
    pub customer: String,
    /// Add the agent scope (may act for any customer).
    #[arg(long)]
    pub agent: bool,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub ttl_secs: u64,
    /// The signing settings.
    #[command(flatten)]
    pub auth: AuthSettings,
}

/// `quotes relay-dead-letters`.
#[derive(Debug, Args)]
pub struct RelayDeadLettersArgs {
    /// Print at most this many entries.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub limit: u64,
    /// The table.
    #[command(flatten)]
    pub relay_dead_letters: RelayDeadLetterSettings,
}

/// `quotes dlq`.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the letters, oldest quote first, each quote's in its order.
    List(DlqListArgs),
    /// Show one letter with its payload.
    Show(DlqShowArgs),
    /// Replay the letters through the application's handler (built from the same settings as
    /// `quotes run APP`, so a fix applies), quote by quote in order; each handled letter is
    /// removed, the first failure stops its quote.
    #[command(after_help = SDK_VARIABLES)]
    Redrive(Box<DlqRedriveArgs>),
    /// Remove letters for good (their events stay in the event store).
    Purge(DlqPurgeArgs),
}

/// Which consumer application, and which of its letters.
#[derive(Debug, Clone, Args)]
pub struct DlqFilterArgs {
    /// The consumer application (a service that handles events).
    #[arg(long, value_enum)]
    pub app: Service,
    /// Only this quote's letters (its id, or `quote#<id>`).
    #[arg(long, value_parser = quote_stream_id)]
    pub quote: Option<String>,
    /// Only letters that failed themselves, or only those set aside behind another.
    #[arg(long, value_enum)]
    pub kind: Option<crate::dlq::Kind>,
    /// Only letters set aside at or after this time (RFC 3339).
    #[arg(long, value_parser = crate::settings::parse::rfc3339)]
    pub since: Option<time::OffsetDateTime>,
    /// Only letters set aside before this time (RFC 3339).
    #[arg(long, value_parser = crate::settings::parse::rfc3339)]
    pub until: Option<time::OffsetDateTime>,
}

impl DlqFilterArgs {
    /// The filter these options describe.
    pub fn filter(&self) -> crate::dlq::Filter {
        crate::dlq::Filter {
            stream_id: self.quote.clone(),
            kind: self.kind,
            since: self.since,
            until: self.until,
        }
    }
}

/// `quotes dlq list`.
#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// Which letters.
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// The table.
    #[command(flatten)]
    pub dead_letters: DeadLetterSettings,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// `quotes dlq show`.
#[derive(Debug, Args)]
pub struct DlqShowArgs {
    /// The consumer application.
    #[arg(long, value_enum)]
    pub app: Service,
    /// The letter's sequence number (as `list` prints it, or its last digits).
    #[arg(long)]
    pub sequence: String,
    /// The table.
    #[command(flatten)]
    pub dead_letters: DeadLetterSettings,
}

/// `quotes dlq redrive`.
#[derive(Debug, Args)]
pub struct DlqRedriveArgs {
    /// Which letters.
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// Output format (the outcome of each letter).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// The settings of the application's service (its handler, the event store, the relay,
    /// DEAD_LETTER_TABLE).
    #[command(flatten)]
    pub settings: RunSettings,
}

/// `quotes dlq purge`.
#[derive(Debug, Args)]
pub struct DlqPurgeArgs {
    /// Which letters.
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// Really remove them (without it, purge only lists what it would remove).
    #[arg(long)]
    pub yes: bool,
    /// The table.
    #[command(flatten)]
    pub dead_letters: DeadLetterSettings,
}

/// `quotes outbox`.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Streams and events not yet published, streams backed off after failed sweeps, and the
    /// oldest unpublished commit with its age.
    Status(OutboxStatusArgs),
}

/// `quotes outbox status`.
#[derive(Debug, Args)]
pub struct OutboxStatusArgs {
    /// Examine at most this many streams with a backlog (the counts are then lower bounds).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub limit: u64,
    /// The event store.
    #[command(flatten)]
    pub event_store: EventStoreSettings,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// `quotes archive`.
#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Per shard of EVENT_STREAM: segments, records, the last archived sequence number, its
    /// parents, whether it ended.
    Status(ArchiveStatusArgs),
    /// Write the events the store holds from before the archive began (every event recorded
    /// before the cut-off) to the archive, in the archiver's format, as the pseudo-shard
    /// `backfill-<cut-off>`; an interrupted run resumes, a finished one is reported.
    #[command(after_help = SDK_VARIABLES)]
    Backfill(Box<ArchiveBackfillArgs>),
}

/// `quotes archive status`.
#[derive(Debug, Args)]
pub struct ArchiveStatusArgs {
    /// The stream.
    #[command(flatten)]
    pub event_store: EventStoreSettings,
    /// The bucket and the manifest.
    #[command(flatten)]
    pub archive: crate::settings::archive::ArchiveStorageSettings,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// `quotes archive backfill`.
#[derive(Debug, Args)]
pub struct ArchiveBackfillArgs {
    /// Backfill the events recorded before this instant (RFC 3339, in the past). Default:
    /// where the archive begins (the latest first arrival among its root shards) plus
    /// --clock-margin-secs.
    #[arg(long, value_parser = crate::settings::parse::rfc3339)]
    pub until: Option<time::OffsetDateTime>,
    /// Added to where the archive begins for the default cut-off: the most the clocks of the
    /// hosts that record events and of Kinesis may differ (events near the cut may be in both
    /// the backfill and the archive; consumers are idempotent).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub clock_margin_secs: u64,
    /// The event store (scanned) and the stream (named in the archive).
    #[command(flatten)]
    pub event_store: EventStoreSettings,
    /// The archive: bucket, manifest, prefix and segment size.
    #[command(flatten)]
    pub archive: crate::settings::archive::ArchiveSettings,
    /// Output format (the report).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// A quote id (`<uuid>` or `quote#<uuid>`) as its stream id.
fn quote_stream_id(value: &str) -> Result<String, String> {
    let id = value.strip_prefix("quote#").unwrap_or(value);
    id.parse::<quote_domain::QuoteId>()
        .map(|id| id.stream_id())
        .map_err(|err| err.to_string())
}

/// `quotes leases`.
#[derive(Debug, Args)]
pub struct LeasesArgs {
    /// The consumer application (its lease table is LEASE_TABLE, default `<app>-leases`).
    #[arg(long)]
    pub app: String,
    /// Milliseconds between the two reads that show which leases are being renewed.
    #[arg(long, default_value_t = 2500, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub sample_ms: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// The lease table.
    #[command(flatten)]
    pub lease: LeaseTableSettings,
}

/// `quotes rebuild`.
#[derive(Debug, Subcommand)]
pub enum RebuildCommand {
    /// Rebuild the customer-quotes read model into a new table (`<READ_MODEL_TABLE>-<suffix>`)
    /// from the event store: the table becomes standby (the projectors write it too), the
    /// store is scanned in parallel segments and each quote folded, then the stream is followed
    /// from before the rebuild began until caught up. Resumable; prints its progress. Then
    /// `quotes read-model switch TABLE`.
    #[command(after_help = SDK_VARIABLES)]
    ReadModel(Box<RebuildReadModelArgs>),
}

/// `quotes rebuild read-model`.
#[derive(Debug, Args)]
pub struct RebuildReadModelArgs {
    /// The table to rebuild into (created when missing): `<READ_MODEL_TABLE>-<suffix>`.
    #[arg(long, value_parser = crate::settings::parse::resource_name)]
    pub into: String,
    /// Parallel Scan segments (a resumed rebuild keeps the number it began with).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub segments: u32,
    /// Events per Scan page.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub page_size: u64,
    /// Read capacity units per second the rebuild may consume (estimated from item sizes: one
    /// per 4 KB read); unlimited when absent.
    #[arg(long, value_parser = parse_rcu)]
    pub max_rcu: Option<f64>,
    /// The stream is followed from this long before the rebuild began (the most the clocks of
    /// this host and of Kinesis may differ).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub clock_margin_secs: u64,
    /// The event store (scanned) and the stream (followed).
    #[command(flatten)]
    pub event_store: EventStoreSettings,
    /// The home table (routing) and its cache time.
    #[command(flatten)]
    pub read_model: ReadModelSettings,
    /// Output format (the final report; progress goes to stderr).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

fn parse_rcu(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() && (1.0..=1_000_000.0).contains(&n) => Ok(n),
        _ => Err("read capacity units per second: a number from 1 to 1000000".to_owned()),
    }
}

/// `quotes read-model`.
#[derive(Debug, Subcommand)]
pub enum ReadModelCommand {
    /// The routing (active and standby tables), each table's rebuild progress, and how far
    /// each is behind the event store on a sample of quotes.
    Status(ReadModelStatusArgs),
    /// Make TABLE the active read model (services follow within READ_MODEL_ROUTING_SECS,
    /// without a restart); the previous one stays standby, so switching back is immediate.
    /// Refused unless TABLE is standby and its rebuild caught up (--force overrides).
    Switch(ReadModelTableArgs),
    /// Stop writing the standby TABLE (do this before deleting it).
    Retire(ReadModelTableArgs),
}

/// `quotes read-model status`.
#[derive(Debug, Args)]
pub struct ReadModelStatusArgs {
    /// Quotes sampled from the event store to measure each table's lag.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub sample: u64,
    /// The event store (sampled).
    #[command(flatten)]
    pub event_store: EventStoreSettings,
    /// The home table.
    #[command(flatten)]
    pub read_model: ReadModelSettings,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// `quotes read-model switch|retire TABLE`.
#[derive(Debug, Args)]
pub struct ReadModelTableArgs {
    /// The table.
    #[arg(value_parser = crate::settings::parse::resource_name)]
    pub table: String,
    /// Switch even to a table that is not standby or whose rebuild has not caught up.
    #[arg(long)]
    pub force: bool,
    /// The home table.
    #[command(flatten)]
    pub read_model: ReadModelSettings,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// `quotes consumer`.
#[derive(Debug, Subcommand)]
pub enum ConsumerCommand {
    /// Move the application's checkpoints (every shard's, or one's) to an earlier or later
    /// position while its workers run: each lease's owner is fenced at its next renewal and the
    /// shard is processed again from there (handlers are idempotent; the notifier sends
    /// nothing twice).
    Rewind(ConsumerRewindArgs),
}

/// `quotes consumer rewind`.
#[derive(Debug, Args)]
pub struct ConsumerRewindArgs {
    /// The consumer application (its lease table is LEASE_TABLE, default `<app>-leases`).
    #[arg(long)]
    pub app: String,
    /// Where to: TRIM_HORIZON (the oldest record still in the stream), LATEST (skip what is
    /// unread), AT_TIMESTAMP:<RFC 3339> (records that arrived at or after it), or a sequence
    /// number (the records after it, as if it had just been checkpointed; needs --shard).
    #[arg(long, value_parser = kinesis_consumer::rewind::RewindTarget::parse)]
    pub to: kinesis_consumer::rewind::RewindTarget,
    /// Only this shard's lease.
    #[arg(long)]
    pub shard: Option<String>,
    /// Only print what would change.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// The lease table.
    #[command(flatten)]
    pub lease: LeaseTableSettings,
}

/// `quotes bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load-test POST /v1/quotes and compare with the same writes made directly; prints one
    /// JSON object.
    Ingest(Box<IngestArgs>),
    /// Time from POST /v1/quotes to the priced quote visible through GET, embedded or as
    /// separate processes on the emulators; prints one JSON object.
    Pipeline(PipelineArgs),
    /// Load one long stream by folding every event and from its latest snapshot, in the same
    /// run; prints one JSON object (medians and their ratio).
    Snapshots(SnapshotBenchArgs),
    /// Open many live streams on one `quotes run` and report the memory each costs and how fast
    /// a new quote reaches them; prints one JSON object.
    Streams(crate::bench::streams::StreamsArgs),
}

/// `quotes bench snapshots`.
#[derive(Debug, Args)]
pub struct SnapshotBenchArgs {
    /// Events in the stream.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    pub events: u64,
    /// The snapshot interval (SNAPSHOT_EVERY).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub every: u64,
    /// Loads of each kind (the report gives medians).
    #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub runs: u64,
    /// On the configured DynamoDB (EVENTS_TABLE; `quotes bootstrap` creates it) instead of
    /// in memory.
    #[arg(long)]
    pub aws: bool,
    /// The event store's tables.
    #[command(flatten)]
    pub event_store: EventStoreSettings,
}

/// `quotes bench ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Base URL of a running event-source (e.g. http://127.0.0.1:8080); without it one is
    /// started in this process on 127.0.0.1 with the backend named by BACKEND.
    #[arg(long)]
    pub url: Option<String>,
    /// Concurrent request loops.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// Measured seconds per side.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Discarded warm-up seconds before each side's measurement.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub warmup: u64,
    /// Baseline to compare with [default: aws when BACKEND=aws, else memory].
    #[arg(long, value_enum)]
    pub baseline: Option<BaselineKind>,
    /// The backend of the in-process service.
    #[command(flatten)]
    pub process: ProcessSettings,
    /// Tables and stream (the service's and the baseline's).
    #[command(flatten)]
    pub event_store: EventStoreSettings,
    /// The read model of the in-process service.
    #[command(flatten)]
    pub read_model: ReadModelSettings,
    /// The in-process service's relay.
    #[command(flatten)]
    pub relay: RelaySettings,
    /// The in-process service's API settings (and the token's).
    #[command(flatten)]
    pub api: ApiSettings,
    /// The dead letters the in-process service's operations view reads.
    #[command(flatten)]
    pub dead_letters: DeadLetterSettings,
}

impl IngestArgs {
    /// The benchmark options these arguments describe.
    pub fn options(&self) -> IngestOptions {
        IngestOptions {
            url: self.url.clone(),
            concurrency: self.concurrency as usize,
            duration: Duration::from_secs(self.duration),
            warmup: Duration::from_secs(self.warmup),
            baseline: self.baseline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ingest_defaults() {
        let cli = Cli::try_parse_from(["quotes", "bench", "ingest"]);
        let Ok(Cli {
            command: Command::Bench(BenchCommand::Ingest(args)),
            ..
        }) = cli
        else {
            panic!("bench ingest did not parse: {cli:?}");
        };
        let options = args.options();
        assert_eq!(options.concurrency, 16);
        assert_eq!(options.duration, Duration::from_secs(10));
        assert_eq!(options.warmup, Duration::from_secs(2));
        assert_eq!(options.baseline, None);
        assert!(Cli::try_parse_from(["quotes", "bench", "ingest", "--baseline", "aws"]).is_ok());
        assert!(Cli::try_parse_from(["quotes", "bench", "ingest", "--concurrency", "0"]).is_err());
    }

    #[test]
    fn run_takes_any_set_of_services() {
        let services = |args: &[&str]| match Cli::try_parse_from(args) {
            Ok(Cli {
                command: Command::Run(run),
                ..
            }) => Some((run.aws, run.services)),
            _ => None,
        };
        assert_eq!(services(&["quotes", "run"]), Some((false, vec![])));
        assert_eq!(services(&["quotes", "run", "--aws"]), Some((true, vec![])));
        assert_eq!(
            services(&["quotes", "run", "projector", "notifier"]),
            Some((false, vec![Service::Projector, Service::Notifier]))
        );
        assert_eq!(services(&["quotes", "run", "nonsense"]), None);
    }
}
