//! The `quotes` binary: parses the command line and the settings (every invalid setting is
//! reported at once, exit status 2), runs the subcommand from the library and prints its result
//! (data on stdout; logs, notes and errors on stderr).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use quotes::cli::{
    BenchCommand, BootstrapArgs, Cli, Command, IngestArgs, LeasesArgs, OutputFormat,
    RelayDeadLettersArgs, RunArgs, SettingsArgs, SettingsFormat, TokenArgs,
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
        Command::Bench(BenchCommand::Ingest(args)) => bench_ingest(&args).await,
        Command::Bench(BenchCommand::Pipeline(args)) => quotes::bench::pipeline::run(&args)
            .await
            .context("bench pipeline"),
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
        SettingsFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&settings).context("encoding the settings")?
        ),
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
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("encoding the report")?
        );
    }
    Ok(())
}

async fn leases(args: &LeasesArgs) -> anyhow::Result<()> {
    let table = args
        .lease
        .lease_table
        .clone()
        .unwrap_or_else(|| quotes::config::lease_table_of(&args.app));
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let leases = kinesis_consumer::lease_table::DynamoLeaseTable::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table.clone(),
    );
    let sample = Duration::from_millis(args.sample_ms);
    let read = quotes::leases::read(&leases, sample)
        .await
        .with_context(|| format!("reading lease table {table}"))?;
    match args.output {
        OutputFormat::Text => print!("{read}"),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&read).context("encoding the leases")?
        ),
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

async fn bench_ingest(args: &IngestArgs) -> anyhow::Result<()> {
    let backend = args.process.backend.into();
    let service = ApiParts {
        process: &args.process,
        event_store: &args.event_store,
        read_model: &args.read_model,
        relay: &args.relay,
        api: &args.api,
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
