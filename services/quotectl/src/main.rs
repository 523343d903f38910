//! The `quotectl` binary: parses the command line, runs the subcommand from the library and
//! prints its result (data on stdout, notes and errors on stderr).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use quotectl::cli::{BenchCommand, Cli, Command, LeasesArgs, RelayDeadLettersArgs, TokenArgs};
use quotectl::config::{Resources, TokenSettings};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    quotectl::init_logging();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("quotectl: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Bootstrap => bootstrap().await,
        Command::Token(args) => token(&args),
        Command::Leases(args) => leases(&args).await,
        Command::RelayDeadLetters(args) => relay_dead_letters(&args).await,
        Command::Bench(BenchCommand::Ingest(args)) => {
            let report = quotectl::bench::run_ingest(&args.options())
                .await
                .context("bench ingest")?;
            for note in &report.notes {
                eprintln!("{note}");
            }
            let json = serde_json::to_string(&report).context("encoding the report")?;
            println!("{json}");
            Ok(())
        }
    }
}

async fn bootstrap() -> anyhow::Result<()> {
    let resources = Resources::from_env().context("reading the resource names")?;
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let report = quotectl::bootstrap::bootstrap(&sdk, &resources)
        .await
        .context("bootstrap")?;
    print!("{report}");
    Ok(())
}

async fn leases(args: &LeasesArgs) -> anyhow::Result<()> {
    let table =
        quote_runtime::env::string_or("LEASE_TABLE", &quotectl::config::lease_table_of(&args.app));
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let leases = kinesis_consumer::lease_table::DynamoLeaseTable::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table.clone(),
    );
    let text = quotectl::leases::show(&leases, Duration::from_millis(args.sample_ms))
        .await
        .with_context(|| format!("reading lease table {table}"))?;
    print!("{text}");
    Ok(())
}

async fn relay_dead_letters(args: &RelayDeadLettersArgs) -> anyhow::Result<()> {
    let resources = Resources::from_env().context("reading the resource names")?;
    let table = resources.relay_dead_letter_table;
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let letters = event_relay::DynamoRelayDeadLetters::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table.clone(),
    );
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let text = quotectl::relay_dead_letters::show(&letters, limit)
        .await
        .with_context(|| format!("reading table {table}"))?;
    print!("{text}");
    Ok(())
}

fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let settings = TokenSettings::from_env();
    if let Some(note) = settings.dev_secret_note() {
        eprintln!("{note}");
    }
    let token = quotectl::token::mint(
        &settings,
        &args.customer,
        args.agent,
        Duration::from_secs(args.ttl_secs),
    )
    .context("minting the token")?;
    println!("{token}");
    Ok(())
}
