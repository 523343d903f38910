//! The relay every process with an event store writer runs: it publishes committed events to
//! the stream (ADR 0002).

use std::time::Duration;

use clap::Args;
use event_relay::RelayConfig;

use super::heading;
use super::parse::resource_name;

/// Where relays set aside records Kinesis can never accept.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::RELAY)]
pub struct RelayDeadLetterSettings {
    /// DynamoDB table where relays set aside records Kinesis can never accept (`quotes
    /// relay-dead-letters` lists them).
    #[arg(long, env = "RELAY_DEAD_LETTER_TABLE", default_value = event_relay::dead_letter::DEFAULT_RELAY_DEAD_LETTER_TABLE, value_parser = resource_name)]
    pub relay_dead_letter_table: String,
}

/// The relay's tuning.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::RELAY)]
pub struct RelaySettings {
    /// Milliseconds between two sweeps of the publication outbox while sweeps find work; each
    /// sweep that finds none doubles the wait, up to 8 times this.
    #[arg(long, env = "RELAY_SWEEP_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub relay_sweep_interval_ms: u64,
    /// Age in milliseconds of an unpublished commit before a sweep takes it from the relay that
    /// committed it.
    #[arg(long, env = "RELAY_SWEEP_GRACE_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub relay_sweep_grace_ms: u64,
    /// Milliseconds a sweep's claim on a stranded stream keeps other processes' sweeps off it
    /// (one process publishes it; a sweep that runs longer renews it; a claimant that died is
    /// replaced once it ends, plus the grace period and up to a sweep interval).
    #[arg(long, env = "RELAY_SWEEP_CLAIM_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub relay_sweep_claim_ms: u64,
    /// Store calls in flight at once (heads marked published, swept streams read).
    #[arg(long, env = "RELAY_STORE_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub relay_store_concurrency: u64,
    /// Where records that can never be published go.
    #[command(flatten)]
    pub dead_letters: RelayDeadLetterSettings,
}

impl RelaySettings {
    /// The relay's configuration: these settings over the library's defaults.
    pub fn config(&self) -> RelayConfig {
        RelayConfig {
            sweep_interval: Duration::from_millis(self.relay_sweep_interval_ms),
            sweep_grace: Duration::from_millis(self.relay_sweep_grace_ms),
            sweep_claim: Duration::from_millis(self.relay_sweep_claim_ms),
            store_concurrency: usize::try_from(self.relay_store_concurrency).unwrap_or(1024),
            dead_letter_table: self.dead_letters.relay_dead_letter_table.clone(),
            ..RelayConfig::default()
        }
    }
}
