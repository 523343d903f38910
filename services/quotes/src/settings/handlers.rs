//! The settings of each consumer service's own work: VIN decoding, driving records, rating
//! tables, notifications.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use driver_history::provider::HttpProviderConfig;
use quote_domain::types::Email;
use quote_rating::RatingTables;
use secrecy::SecretString;
use vehicle_enricher::vpic::VpicConfig;

use super::heading;
use super::parse::{http_url, resource_name, secret};

/// vehicle-enricher: the NHTSA vPIC VIN decoder.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::VEHICLE_ENRICHER)]
pub struct VehicleEnricherSettings {
    /// Base URL of the vPIC API, or `off` to decode make and model year from the VIN alone.
    #[arg(long, env = "VPIC_BASE_URL", default_value = "https://vpic.nhtsa.dot.gov/api", value_parser = vpic_base_url)]
    pub vpic_base_url: String,
    /// Per-attempt timeout of a vPIC call, in milliseconds.
    #[arg(long, env = "VPIC_TIMEOUT_MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub vpic_timeout_ms: u64,
    /// Attempts per VIN (retries with jitter, behind a circuit breaker) before decoding it from
    /// the VIN alone.
    #[arg(long, env = "VPIC_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub vpic_attempts: u32,
}

impl VehicleEnricherSettings {
    /// vPIC's client settings, or `None` for offline decoding (`off`).
    pub fn vpic(&self) -> Option<VpicConfig> {
        (self.vpic_base_url != "off").then(|| VpicConfig {
            base_url: self.vpic_base_url.clone(),
            timeout: Duration::from_millis(self.vpic_timeout_ms),
            attempts: self.vpic_attempts,
            ..VpicConfig::default()
        })
    }
}

fn vpic_base_url(value: &str) -> Result<String, String> {
    if value == "off" {
        return Ok(value.to_owned());
    }
    http_url(value).map_err(|reason| format!("{reason}, or `off`"))
}

/// Where driver-history gets driving records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderName {
    /// An HTTP driving-record provider (DRIVER_HISTORY_URL).
    Http,
    /// Deterministic simulated records per licence number (never for real quotes).
    Simulated,
}

/// driver-history: the driving-record provider.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::DRIVER_HISTORY)]
pub struct DriverHistorySettings {
    /// The driving-record provider; required to run driver-history (no default, so that
    /// simulated records are never used by accident).
    #[arg(long, env = "DRIVER_HISTORY_PROVIDER", value_enum)]
    pub driver_history_provider: Option<ProviderName>,
    /// Base URL of the HTTP provider (DRIVER_HISTORY_PROVIDER=http; its contract is in
    /// services/driver-history/src/provider.rs).
    #[arg(long, env = "DRIVER_HISTORY_URL", value_parser = http_url)]
    pub driver_history_url: Option<String>,
    /// Bearer token for the HTTP provider.
    #[arg(long, env = "DRIVER_HISTORY_TOKEN", hide_env_values = true, value_parser = secret)]
    pub driver_history_token: Option<SecretString>,
    /// Per-attempt timeout of a provider call, in milliseconds.
    #[arg(long, env = "DRIVER_HISTORY_TIMEOUT_MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub driver_history_timeout_ms: u64,
    /// Attempts per driver before the history is recorded as unavailable.
    #[arg(long, env = "DRIVER_HISTORY_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub driver_history_attempts: u32,
}

/// The provider driver-history asks.
#[derive(Debug, Clone)]
pub enum ProviderConfig {
    /// The simulated provider.
    Simulated,
    /// An HTTP provider.
    Http(HttpProviderConfig),
}

impl DriverHistorySettings {
    /// The provider, or every reason it cannot be used.
    pub fn provider(&self) -> Result<ProviderConfig, Vec<String>> {
        match self.driver_history_provider {
            Some(ProviderName::Simulated) => Ok(ProviderConfig::Simulated),
            Some(ProviderName::Http) => match &self.driver_history_url {
                Some(base_url) => Ok(ProviderConfig::Http(HttpProviderConfig {
                    base_url: base_url.clone(),
                    token: self.driver_history_token.clone(),
                    timeout: Duration::from_millis(self.driver_history_timeout_ms),
                    attempts: self.driver_history_attempts,
                    breaker_threshold: 5,
                    breaker_cool_down: Duration::from_secs(30),
                })),
                None => Err(vec![
                    "DRIVER_HISTORY_PROVIDER=http needs DRIVER_HISTORY_URL".to_owned(),
                ]),
            },
            None => Err(vec![
                "DRIVER_HISTORY_PROVIDER is not set: choose `http` (with DRIVER_HISTORY_URL) or \
                 `simulated`"
                    .to_owned(),
            ]),
        }
    }
}

/// fulfillment: the rating tables.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::FULFILLMENT)]
pub struct FulfillmentSettings {
    /// Rating table file (JSON, see shared/rating/README.md), read and validated at start
    /// [default: the tables embedded in the binary].
    #[arg(long, env = "RATING_TABLES_PATH")]
    pub rating_tables_path: Option<PathBuf>,
    /// Seconds a quote may stay pending after its request (an enrichment dead-lettered, a
    /// provider down for long) before fulfillment refers it with the reason `enrichment timed
    /// out`; it finds such quotes in the read model's `pending` index (READ_MODEL_TABLE).
    #[arg(long, env = "QUOTE_DEADLINE_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=2_592_000))]
    pub quote_deadline_secs: u64,
}

impl FulfillmentSettings {
    /// The tables, read and validated now, and where they came from; or why they cannot be
    /// used (naming the file and every problem in it).
    pub fn tables(&self) -> Result<(RatingTables, fulfillment::tables::TablesSource), Vec<String>> {
        fulfillment::tables::load(self.rating_tables_path.as_deref())
            .map_err(|err| vec![format!("RATING_TABLES_PATH: {err}")])
    }
}

/// notifier: e-mail and SMS.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::NOTIFIER)]
pub struct NotifierSettings {
    /// Sender of the e-mails, an SES identity; required to run the notifier (`quotes
    /// bootstrap` creates the identity on the emulators, Terraform in AWS).
    #[arg(long, env = "NOTIFY_FROM_EMAIL", value_parser = email)]
    pub notify_from_email: Option<Email>,
    /// DynamoDB table of the notifier's ledger (each notification sent at most once).
    #[arg(long, env = "NOTIFICATIONS_TABLE", default_value = notifier::ledger::DEFAULT_TABLE, value_parser = resource_name)]
    pub notifications_table: String,
    /// Seconds a claim on a notification keeps other workers from sending it (a worker killed
    /// mid-send delays that notification by this long).
    #[arg(long, env = "NOTIFY_CLAIM_TIMEOUT_SECS", default_value_t = notifier::ledger::DEFAULT_CLAIM_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(5..=86_400))]
    pub notify_claim_timeout_secs: u64,
}

/// What the notifier is configured from.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// The sender.
    pub from: Email,
    /// The ledger's table.
    pub table: String,
    /// How long a claim holds.
    pub claim_timeout: Duration,
}

impl NotifierSettings {
    /// The notifier's configuration, or why it cannot run.
    pub fn config(&self) -> Result<NotifierConfig, Vec<String>> {
        let from = self.notify_from_email.clone().ok_or_else(|| {
            vec![
                "NOTIFY_FROM_EMAIL is not set: the sender address of the e-mails (an SES \
                 identity)"
                    .to_owned(),
            ]
        })?;
        Ok(NotifierConfig {
            from,
            table: self.notifications_table.clone(),
            claim_timeout: Duration::from_secs(self.notify_claim_timeout_secs),
        })
    }
}

fn email(value: &str) -> Result<Email, String> {
    Email::parse(value).map_err(|err| err.to_string())
}
