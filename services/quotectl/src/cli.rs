//! The command line of quotectl (clap derive). Subcommand and flag names are a fixed interface
//! used by scripts and CI; resource names and secrets come from the environment ([`crate::config`]).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::bench::{BaselineKind, IngestOptions};

/// Operations CLI of the quote platform.
#[derive(Debug, Parser)]
#[command(name = "quotectl", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the event store tables (EVENTS_TABLE, IDEMPOTENCY_TABLE) and the Kinesis stream
    /// (EVENT_STREAM, EVENT_STREAM_SHARDS shards) unless they exist; wait until they are ACTIVE.
    Bootstrap,
    /// Print a bearer token signed with AUTH_HS256_SECRET (or the dev secret, with a note).
    Token(TokenArgs),
    /// Print a consumer application's lease table: owner, counter, checkpoint, liveness.
    Leases(LeasesArgs),
    /// Print the records the relays set aside because Kinesis can never accept them
    /// (RELAY_DEAD_LETTER_TABLE): stream, version, event, size and reason.
    RelayDeadLetters(RelayDeadLettersArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `quotectl token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The token's subject: the customer id.
    #[arg(long)]
    pub customer: String,
    /// Add the agent scope (may act for any customer).
    #[arg(long)]
    pub agent: bool,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub ttl_secs: u64,
}

/// `quotectl relay-dead-letters`.
#[derive(Debug, Args)]
pub struct RelayDeadLettersArgs {
    /// Print at most this many entries.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub limit: u64,
}

/// `quotectl leases`.
#[derive(Debug, Args)]
pub struct LeasesArgs {
    /// The consumer application (its lease table is LEASE_TABLE, default `<app>-leases`).
    #[arg(long)]
    pub app: String,
    /// Milliseconds between the two reads that show which leases are being renewed.
    #[arg(long, default_value_t = 2500)]
    pub sample_ms: u64,
}

/// `quotectl bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load-test POST /v1/quotes and compare with the same writes made directly; prints one
    /// JSON object.
    Ingest(IngestArgs),
}

/// `quotectl bench ingest`.
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
        let cli = Cli::try_parse_from(["quotectl", "bench", "ingest"]);
        let Ok(Cli {
            command: Command::Bench(BenchCommand::Ingest(args)),
        }) = cli
        else {
            panic!("bench ingest did not parse: {cli:?}");
        };
        let options = args.options();
        assert_eq!(options.concurrency, 16);
        assert_eq!(options.duration, Duration::from_secs(10));
        assert_eq!(options.warmup, Duration::from_secs(2));
        assert_eq!(options.baseline, None);
        assert!(Cli::try_parse_from(["quotectl", "bench", "ingest", "--baseline", "aws"]).is_ok());
        assert!(
            Cli::try_parse_from(["quotectl", "bench", "ingest", "--concurrency", "0"]).is_err()
        );
    }
}
