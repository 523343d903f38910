//! `kinesis-consumer-bench`: benchmarks of the consumer library, each printing one JSON document.
//!
//! - `throughput`: records/s of a raw `GetRecords` reader and of a `Worker` on kinesis-mock;
//! - `overhead`: records/s and records per CPU-second of a `Worker` on the in-memory stream;
//! - `failover`: kill -9 and SIGTERM failover of `kinesis-consumer-probe` processes on the
//!   emulators, and lease-table writes per held lease in steady state;
//! - `simulate`: a deterministic simulation of the coordination code (1,000 shards, up to 100
//!   workers) next to a model of the Java KCL 2.x's defaults.
//!
//! The AWS subcommands read the SDK's variables (`scripts/emulators.sh start ENVFILE` writes
//! them). See `docs/benchmarks-consumer.md` for the figures and how they were taken.

mod bench;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Benchmarks of the kinesis-consumer library (JSON on stdout).
#[derive(Debug, Parser)]
#[command(name = "kinesis-consumer-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which lease table the throughput worker coordinates through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LeaseTableKind {
    /// `InMemoryLeaseTable`: measures the read path alone.
    Memory,
    /// `DynamoLeaseTable` on moto's DynamoDB (renewals and checkpoints go over HTTP).
    Dynamodb,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Raw GetRecords readers vs one Worker on kinesis-mock (fresh stream per run).
    Throughput {
        /// Records put in each run's stream.
        #[arg(long, default_value_t = 20_000)]
        records: u64,
        /// Shards of each run's stream.
        #[arg(long, default_value_t = 4)]
        shards: u32,
        /// Runs (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Payload bytes per record.
        #[arg(long, default_value_t = 300)]
        record_bytes: usize,
        /// The worker's lease table.
        #[arg(long, value_enum, default_value_t = LeaseTableKind::Memory)]
        lease_table: LeaseTableKind,
    },
    /// One Worker on the in-memory stream and lease table: records/s and per CPU-second.
    Overhead {
        /// Records put in the stream.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Shards of the stream.
        #[arg(long, default_value_t = 4)]
        shards: u64,
        /// Runs (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Payload bytes per record.
        #[arg(long, default_value_t = 300)]
        record_bytes: usize,
    },
    /// kill -9 and SIGTERM failover between two probe processes on the emulators.
    Failover {
        /// Runs of each kind (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The probe binary.
        #[arg(long, default_value = "target/release/kinesis-consumer-probe")]
        probe: PathBuf,
        /// `LEASE_DURATION_MS` given to the probes (the library's default is 6,000).
        #[arg(long, default_value_t = 6_000)]
        lease_duration_ms: u64,
        /// Length of the steady-state window in which lease counters are sampled.
        #[arg(long, default_value_t = 10)]
        window_secs: u64,
    },
    /// Deterministic simulation of the coordination code vs a KCL 2.x model.
    Simulate {
        /// Shards (one lease each).
        #[arg(long, default_value_t = 1_000)]
        shards: usize,
        /// Workers joining one at a time.
        #[arg(long, default_value_t = 100)]
        max_workers: usize,
        /// Seconds between two joins.
        #[arg(long, default_value_t = 5)]
        join_every_secs: u64,
        /// Workers leaving gracefully (all at once) once the fleet is balanced.
        #[arg(long, default_value_t = 50)]
        leave: usize,
        /// Workers crashing (all at once) once the fleet is balanced again.
        #[arg(long, default_value_t = 20)]
        crash: usize,
        /// Steady-state window measured after each phase balanced, in seconds.
        #[arg(long, default_value_t = 60)]
        steady_secs: u64,
        /// Longest a phase may take to balance, in simulated seconds.
        #[arg(long, default_value_t = 3_600)]
        phase_cap_secs: u64,
        /// First seed of the scan jitter and of the choice of leaving and crashing workers.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seeds to run (seed, seed + 1, ...); medians are reported.
        #[arg(long, default_value_t = 1)]
        seeds: u64,
    },
}

fn print(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Simulate {
            shards,
            max_workers,
            join_every_secs,
            leave,
            crash,
            steady_secs,
            phase_cap_secs,
            seed,
            seeds,
        } => {
            let scenario = bench::simulate::Scenario {
                shards,
                max_workers,
                join_every_ms: join_every_secs * 1_000,
                leave,
                crash,
                steady_ms: steady_secs * 1_000,
                phase_cap_ms: phase_cap_secs * 1_000,
                seed,
            };
            print(&bench::simulate::compare(&scenario, seeds)?)
        }
        command => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(run_async(command))?;
            print(&report)
        }
    }
}

async fn run_async(command: Command) -> anyhow::Result<serde_json::Value> {
    match command {
        Command::Throughput {
            records,
            shards,
            runs,
            record_bytes,
            lease_table,
        } => {
            bench::throughput::run(bench::throughput::Options {
                records,
                shards,
                runs,
                record_bytes,
                dynamodb_leases: lease_table == LeaseTableKind::Dynamodb,
            })
            .await
        }
        Command::Overhead {
            records,
            shards,
            runs,
            record_bytes,
        } => bench::overhead::run(records, shards, runs, record_bytes).await,
        Command::Failover {
            runs,
            probe,
            lease_duration_ms,
            window_secs,
        } => bench::failover::run(runs, &probe, lease_duration_ms, window_secs).await,
        Command::Simulate { .. } => Err(anyhow::anyhow!("simulate runs without a runtime")),
    }
}
