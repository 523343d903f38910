//! The `quotes` binary: parses the command line and the settings (every invalid setting is
//! reported at once, exit status 2), runs the subcommand from the library and prints its result
//! (data on stdout; logs, notes and errors on stderr).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use quotes::cli::{
    ArchiveCommand, BenchCommand, BootstrapArgs, Cli, Command, DlqCommand, IngestArgs, LeasesArgs,
    OutboxCommand, OutputFormat, RelayDeadLettersArgs, RunArgs, SettingsArgs, SettingsFormat,
    TokenArgs,
};
use quotes::config::{Resources, TokenSettings};
use quotes::settings::api::ApiParts;
use quotes::settings::report::INVALID_SETTINGS_STATUS;
use quotes::settings::telemetry::TelemetrySettings;
use quotes::settings::InvalidSettings;

fn main() -> ExitCode {
    let cli: Cli = quotes::settings::report::parse_cli();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("quotes: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> ExitCode {
    let telemetry = cli.telemetry;
    let operation = !matches!(
        cli.command,
        Command::Run(_) | Command::Healthcheck(_) | Command::Settings(_)
    );
    if operation {
        // The operations commands log warnings (stderr) unless RUST_LOG says otherwise.
        quote_runtime::telemetry::init_logs(&telemetry.config("warn"));
    }
    let result = match cli.command {
        Command::Run(args) => return run(args, &telemetry).await,
        Command::Healthcheck(args) => return quotes::healthcheck::probe(&args.process).await,
        Command::Settings(args) => settings(&args),
        Command::Bootstrap(args) => bootstrap(&args).await,
        Command::Token(args) => token(&args),
        Command::Leases(args) => leases(&args).await,
        Command::RelayDeadLetters(args) => relay_dead_letters(&args).await,
        Command::Dlq(command) => dlq(command).await,
        Command::Archive(command) => archive(command).await,
        Command::Outbox(OutboxCommand::Status(args)) => outbox_status(&args).await,
        Command::Consumer(quotes::cli::ConsumerCommand::Rewind(args)) => rewind(&args).await,
        Command::Rebuild(quotes::cli::RebuildCommand::ReadModel(args)) => {
            rebuild_read_model(&args).await
        }
        Command::ReadModel(command) => read_model(command).await,
        Command::Bench(BenchCommand::Ingest(args)) => bench_ingest(&args).await,
        Command::Bench(BenchCommand::Pipeline(args)) => quotes::bench::pipeline::run(&args)
            .await
            .context("bench pipeline"),
        Command::Bench(BenchCommand::Snapshots(args)) => bench_snapshots(&args).await,
        Command::Bench(BenchCommand::Streams(args)) => quotes::bench::streams::run(&args)
            .await
            .context("bench streams")
            .and_then(|report| print_json(&report)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<InvalidSettings>() {
            Some(invalid) => {
                eprintln!("quotes: {invalid}");
                invalid_settings_status()
            }
            None => {
                eprintln!("quotes: error: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn invalid_settings_status() -> ExitCode {
    ExitCode::from(INVALID_SETTINGS_STATUS)
}

/// `quotes run`: the services until SIGTERM or Ctrl-C.
async fn run(args: Box<RunArgs>, telemetry: &TelemetrySettings) -> ExitCode {
    let plan = match quotes::platform::Plan::new(&args) {
        Ok(plan) => plan,
        Err(invalid) => {
            eprintln!("quotes: {invalid}");
            return invalid_settings_status();
        }
    };
    let name = quotes::platform::process_name(&args.services);
    let _telemetry = quote_runtime::telemetry::init(name, &telemetry.config(plan.log_default()));
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let shutdown = quote_runtime::shutdown::on_signal();
    match plan.run(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "quotes run failed");
            ExitCode::FAILURE
        }
    }
}

fn settings(args: &SettingsArgs) -> anyhow::Result<()> {
    use quotes::settings::report::{catalogue, for_services, markdown, text};
    let settings = for_services(catalogue(), &args.services);
    match args.output {
        SettingsFormat::Text => print!("{}", text(&settings)),
        SettingsFormat::Markdown => print!("{}", markdown(&settings)),
        SettingsFormat::Json => print_json(&settings)?,
    }
    Ok(())
}

async fn bootstrap(args: &BootstrapArgs) -> anyhow::Result<()> {
    let resources = Resources::of_bootstrap(args);
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let text = args.output == OutputFormat::Text;
    // Text: each resource as soon as it is done; JSON: the whole report at the end.
    let mut show = |status: &quotes::bootstrap::ResourceStatus| {
        if text {
            println!("{status}");
        }
    };
    let report = quotes::bootstrap::bootstrap(&sdk, &resources, &mut show)
        .await
        .context("bootstrap")?;
    if !text {
        print_json(&report)?;
    }
    Ok(())
}

/// The lease table of consumer application `app` (LEASE_TABLE, default `<app>-leases`): its
/// name and the table.
async fn lease_table(
    app: &str,
    settings: &quotes::settings::consumer::LeaseTableSettings,
) -> (String, kinesis_consumer::lease_table::DynamoLeaseTable) {
    let table = settings
        .lease_table
        .clone()
        .unwrap_or_else(|| quotes::config::lease_table_of(app));
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let leases = kinesis_consumer::lease_table::DynamoLeaseTable::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table.clone(),
    );
    (table, leases)
}

async fn leases(args: &LeasesArgs) -> anyhow::Result<()> {
    let (table, leases) = lease_table(&args.app, &args.lease).await;
    let sample = Duration::from_millis(args.sample_ms);
    let read = quotes::leases::read(&leases, sample)
        .await
        .with_context(|| format!("reading lease table {table}"))?;
    match args.output {
        OutputFormat::Text => print!("{read}"),
        OutputFormat::Json => print_json(&read)?,
    }
    Ok(())
}

async fn relay_dead_letters(args: &RelayDeadLettersArgs) -> anyhow::Result<()> {
    let table = args.relay_dead_letters.relay_dead_letter_table.clone();
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let letters = event_relay::DynamoRelayDeadLetters::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table.clone(),
    );
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let text = quotes::relay_dead_letters::show(&letters, limit)
        .await
        .with_context(|| format!("reading table {table}"))?;
    print!("{text}");
    Ok(())
}

/// Prints `value` as JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).context("encoding the output as JSON")?
    );
    Ok(())
}

/// `quotes dlq …`.
async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    use kinesis_consumer::dead_letter::{DeadLetterStore, DynamoDeadLetters};
    use quotes::dlq::{self, LetterView};
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let store = |table: &str| DynamoDeadLetters::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    match command {
        DlqCommand::List(args) => {
            let table = &args.dead_letters.dead_letter_table;
            let letters = dlq::select(&store(table), args.filter.app.name(), &args.filter.filter())
                .await
                .with_context(|| format!("reading table {table}"))?;
            let views: Vec<LetterView> = letters.iter().map(|l| LetterView::of(l, false)).collect();
            match args.output {
                OutputFormat::Text => print!("{}", dlq::render(&views)),
                OutputFormat::Json => print_json(&views)?,
            }
        }
        DlqCommand::Show(args) => {
            let table = &args.dead_letters.dead_letter_table;
            let letters = store(table)
                .letters(args.app.name())
                .await
                .with_context(|| format!("reading table {table}"))?;
            let found: Vec<_> = letters
                .iter()
                .filter(|l| l.record.sequence_number.ends_with(&args.sequence))
                .collect();
            match found.as_slice() {
                [letter] => print_json(&LetterView::of(letter, true))?,
                [] => anyhow::bail!(
                    "{} has no dead letter with sequence number …{}",
                    args.app,
                    args.sequence
                ),
                many => anyhow::bail!(
                    "{} letters end in {}: give more digits",
                    many.len(),
                    args.sequence
                ),
            }
        }
        DlqCommand::Purge(args) => {
            let table = &args.dead_letters.dead_letter_table;
            let letters = store(table);
            let filter = args.filter.filter();
            if !args.yes {
                let chosen = dlq::select(&letters, args.filter.app.name(), &filter).await?;
                let views: Vec<LetterView> =
                    chosen.iter().map(|l| LetterView::of(l, false)).collect();
                print!("{}", dlq::render(&views));
                anyhow::bail!(
                    "nothing removed: add --yes to remove these {} letters",
                    views.len()
                );
            }
            let removed = dlq::purge(&letters, args.filter.app.name(), &filter)
                .await
                .with_context(|| format!("purging table {table}"))?;
            println!("removed {} dead letters", removed.len());
        }
        DlqCommand::Redrive(args) => {
            let table = args
                .settings
                .consumer
                .dead_letters
                .dead_letter_table
                .clone();
            let replayer =
                quotes::platform::aws::Replayer::connect(&args.settings, args.filter.app, &sdk)?;
            let text = args.output == OutputFormat::Text;
            let mut show = |outcome: &dlq::Redriven| {
                if text {
                    let letter = &outcome.letter;
                    println!(
                        "{:<8} {} v{} {} (…{}){}",
                        outcome.outcome,
                        letter.stream_id,
                        letter
                            .version
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "?".into()),
                        letter.event_type.as_deref().unwrap_or("?"),
                        &letter.sequence_number[letter.sequence_number.len().saturating_sub(12)..],
                        outcome
                            .error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    );
                }
            };
            let report = dlq::redrive(
                &store(&table),
                replayer.handler.clone(),
                &replayer.context,
                &args.filter.filter(),
                &mut show,
            )
            .await
            .with_context(|| format!("redriving from table {table}"));
            replayer.finish().await?;
            let report = report?;
            if !text {
                print_json(&report)?;
            }
            let failed = report.iter().filter(|r| r.outcome == "failed").count();
            if failed > 0 {
                anyhow::bail!(
                    "{failed} letters failed again; they and their quotes' later letters stay"
                );
            }
        }
    }
    Ok(())
}

/// `quotes consumer rewind`.
async fn rewind(args: &quotes::cli::ConsumerRewindArgs) -> anyhow::Result<()> {
    let (table, leases) = lease_table(&args.app, &args.lease).await;
    let steps =
        kinesis_consumer::rewind::rewind(&leases, &args.to, args.shard.as_deref(), args.dry_run)
            .await
            .with_context(|| format!("rewinding lease table {table}"))?;
    match args.output {
        OutputFormat::Text => print!("{}", quotes::leases::render_rewind(&steps, args.dry_run)),
        OutputFormat::Json => print_json(&steps)?,
    }
    Ok(())
}

/// `quotes outbox status`.
async fn outbox_status(args: &quotes::cli::OutboxStatusArgs) -> anyhow::Result<()> {
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let status = quotes::outbox::status(&args.event_store, limit, &sdk).await?;
    match args.output {
        OutputFormat::Text => print!("{}", quotes::outbox::render(&status)),
        OutputFormat::Json => print_json(&status)?,
    }
    Ok(())
}

/// `quotes archive …`.
async fn archive(command: ArchiveCommand) -> anyhow::Result<()> {
    let sdk = quote_runtime::aws::load_sdk_config().await;
    match command {
        ArchiveCommand::Status(args) => {
            let shards =
                quotes::archive::status(&args.archive, &args.event_store.event_stream, &sdk)
                    .await?;
            match args.output {
                OutputFormat::Text => print!("{}", quotes::archive::render_status(&shards)),
                OutputFormat::Json => print_json(&shards)?,
            }
        }
        ArchiveCommand::Backfill(args) => {
            let report = quotes::archive::backfill(&args, &sdk).await?;
            match args.output {
                OutputFormat::Json => print_json(&report)?,
                OutputFormat::Text if report.already_finished => println!(
                    "{} finished earlier: {} records in {} segments; nothing to do",
                    report.shard_id, report.records_total, report.segments_total
                ),
                OutputFormat::Text => println!(
                    "{}: {} events recorded before the cut-off, {} written now ({} by an earlier run), {} segments",
                    report.shard_id,
                    report.events_before_cutoff,
                    report.records_written,
                    report.records_resumed,
                    report.segments_total
                ),
            }
        }
    }
    Ok(())
}

async fn rebuild_read_model(args: &quotes::cli::RebuildReadModelArgs) -> anyhow::Result<()> {
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let progress = quotes::read_model::rebuild(args, &sdk).await?;
    match args.output {
        OutputFormat::Json => print_json(&progress)?,
        OutputFormat::Text => println!(
            "{}\nnext: `quotes read-model switch {}`",
            quotes::read_model::render_progress(&progress),
            progress.table
        ),
    }
    Ok(())
}

async fn read_model(command: quotes::cli::ReadModelCommand) -> anyhow::Result<()> {
    use quotes::cli::ReadModelCommand;
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let (change, output) = match command {
        ReadModelCommand::Status(args) => {
            let view = quotes::read_model::status(&args, &sdk).await?;
            match args.output {
                OutputFormat::Text => print!("{}", quotes::read_model::render_status(&view)),
                OutputFormat::Json => print_json(&view)?,
            }
            return Ok(());
        }
        ReadModelCommand::Switch(args) => {
            (quotes::read_model::switch(&args, &sdk).await?, args.output)
        }
        ReadModelCommand::Retire(args) => {
            (quotes::read_model::retire(&args, &sdk).await?, args.output)
        }
    };
    match output {
        OutputFormat::Json => print_json(&change)?,
        OutputFormat::Text => println!(
            "{}active {}, standby [{}]; services follow within {} s",
            if change.changed { "" } else { "unchanged: " },
            change.routing.active,
            change.routing.standby.join(", "),
            change.routing_secs
        ),
    }
    Ok(())
}

fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let settings = TokenSettings::new(&args.auth);
    if let Some(note) = settings.dev_secret_note() {
        eprintln!("{note}");
    }
    let token = quotes::token::mint(
        &settings,
        &args.customer,
        args.agent,
        Duration::from_secs(args.ttl_secs),
    )
    .context("minting the token")?;
    println!("{token}");
    Ok(())
}

async fn bench_snapshots(args: &quotes::cli::SnapshotBenchArgs) -> anyhow::Result<()> {
    let runs = usize::try_from(args.runs).unwrap_or(usize::MAX);
    let report = if args.aws {
        let sdk = quote_runtime::aws::load_sdk_config().await;
        let store = event_store::dynamodb::DynamoEventStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            args.event_store.tables(),
        );
        quotes::bench::snapshots::run(&store, "dynamodb", args.events, args.every, runs).await
    } else {
        let store = event_store::InMemoryEventStore::new();
        quotes::bench::snapshots::run(&store, "memory", args.events, args.every, runs).await
    }
    .context("bench snapshots")?;
    print_json(&report)
}

async fn bench_ingest(args: &IngestArgs) -> anyhow::Result<()> {
    let backend = args.process.backend.into();
    let service = ApiParts {
        process: &args.process,
        event_store: &args.event_store,
        read_model: &args.read_model,
        relay: &args.relay,
        api: &args.api,
        dead_letters: &args.dead_letters,
    }
    .config(backend)
    .map_err(InvalidSettings)?;
    let target = quotes::bench::IngestTarget {
        backend,
        token: TokenSettings::new(&args.api.auth),
        service,
        event_store: args.event_store.clone(),
    };
    let report = quotes::bench::run_ingest(&args.options(), &target)
        .await
        .context("bench ingest")?;
    for note in &report.notes {
        eprintln!("{note}");
    }
    let json = serde_json::to_string(&report).context("encoding the report")?;
    println!("{json}");
    Ok(())
}
