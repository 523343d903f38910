//! The process (where it listens, which backend) and the REST API's own settings.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use event_source::config::{AuthConfig, AuthKeys, Backend, Config};
use secrecy::{ExposeSecret, SecretString};

use super::event_store::{EventStoreSettings, ReadModelSettings};
use super::heading;
use super::parse::{http_url, secret};
use super::relay::RelaySettings;

/// Shortest HS256 secret accepted (RFC 7518 asks for at least the hash's size; 16 bytes is the
/// floor below which a secret is refused outright).
pub const MIN_SECRET_BYTES: usize = 16;

/// Where a `quotes run` process listens and on which adapters it runs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::PROCESS)]
pub struct ProcessSettings {
    /// Address of the HTTP listener: the API (event-source) and every process's /healthz and
    /// /readyz.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,
    /// Adapters of `quotes run` without named services: `memory` (every service in this
    /// process, nothing durable) or `aws` (DynamoDB and Kinesis; the same as `--aws`). Named
    /// services always run on AWS.
    #[arg(long, env = "BACKEND", value_enum, default_value_t = BackendName::Memory)]
    pub backend: BackendName,
}

/// The values of `BACKEND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendName {
    /// In-process adapters.
    Memory,
    /// DynamoDB and Kinesis.
    Aws,
}

impl From<BackendName> for Backend {
    fn from(name: BackendName) -> Self {
        match name {
            BackendName::Memory => Backend::Memory,
            BackendName::Aws => Backend::Aws,
        }
    }
}

/// How bearer tokens are signed and checked (event-source checks them, `quotes token` mints them).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::API)]
pub struct AuthSettings {
    /// HS256 secret of bearer tokens (at least 16 bytes; local use and tests). Unset with
    /// BACKEND=memory: the public dev secret `dev-secret-change-me`.
    #[arg(long, env = "AUTH_HS256_SECRET", hide_env_values = true, value_parser = secret)]
    pub auth_hs256_secret: Option<SecretString>,
    /// URL of the JWKS document of an identity provider (RS/ES/PS-signed tokens; production).
    /// Needs AUTH_ISSUER and AUTH_AUDIENCE.
    #[arg(long, env = "AUTH_JWKS_URL", value_parser = http_url)]
    pub auth_jwks_url: Option<String>,
    /// Required `iss` of tokens (and the `iss` of minted ones).
    #[arg(long, env = "AUTH_ISSUER")]
    pub auth_issuer: Option<String>,
    /// Required `aud` of tokens, a string or one entry of an array (and the `aud` of minted
    /// ones).
    #[arg(long, env = "AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,
}

impl AuthSettings {
    /// The verification settings on `backend`, or every reason they cannot run.
    pub fn config(&self, backend: Backend) -> Result<AuthConfig, Vec<String>> {
        let mut problems = Vec::new();
        let keys = match (&self.auth_hs256_secret, &self.auth_jwks_url) {
            (Some(_), Some(_)) => {
                problems.push("set only one of AUTH_HS256_SECRET and AUTH_JWKS_URL".to_owned());
                None
            }
            (Some(secret), None) => {
                if secret.expose_secret().len() < MIN_SECRET_BYTES {
                    problems.push(format!(
                        "AUTH_HS256_SECRET is too short: use at least {MIN_SECRET_BYTES} bytes"
                    ));
                }
                Some(AuthKeys::Hs256Secret(secret.clone()))
            }
            (None, Some(url)) => {
                if self.auth_issuer.is_none() || self.auth_audience.is_none() {
                    // An identity provider signs the tokens of all its clients with the same
                    // keys: only `iss` and `aud` tell ours from another application's.
                    problems.push(
                        "AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE (otherwise tokens \
                         minted by the same identity provider for any other client would be \
                         accepted)"
                            .to_owned(),
                    );
                }
                Some(AuthKeys::JwksUrl(url.clone()))
            }
            (None, None) if backend == Backend::Memory => Some(AuthKeys::dev_secret()),
            (None, None) => {
                problems.push(
                    "event-source on AWS needs AUTH_HS256_SECRET or AUTH_JWKS_URL".to_owned(),
                );
                None
            }
        };
        match keys {
            Some(keys) if problems.is_empty() => Ok(AuthConfig {
                keys,
                issuer: self.auth_issuer.clone(),
                audience: self.auth_audience.clone(),
            }),
            _ => Err(problems),
        }
    }
}

/// The REST API's limits and its token checks.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::API)]
pub struct ApiSettings {
    /// Token verification.
    #[command(flatten)]
    pub auth: AuthSettings,
    /// Seconds an `Idempotency-Key` is remembered.
    #[arg(long, env = "IDEMPOTENCY_TTL_SECS", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub idempotency_ttl_secs: u64,
    /// Per-request timeout in milliseconds (a 408 problem after it).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=300_000))]
    pub request_timeout_ms: u64,
    /// Requests in flight before new ones are shed with 503.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_concurrent_requests: u64,
    /// A quote's state is snapshotted once a load folds this many events past its last
    /// snapshot, so later loads fold only the events after it (0: never).
    #[arg(long, env = "SNAPSHOT_EVERY", default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub snapshot_every: u64,
    /// The consumer applications the operations view (`GET /v1/ops`, the operations page)
    /// watches, comma-separated: `name` (lease table `<name>-leases`) or `name=lease-table`.
    #[arg(long, env = "OPS_APPLICATIONS", value_delimiter = ',', default_value = "vehicle-enricher,driver-history,fulfillment,projector,notifier,archiver", value_parser = super::parse::ops_application)]
    pub ops_applications: Vec<event_source::config::OpsApplication>,
}

/// Everything event-source is configured from.
#[derive(Debug, Clone, Copy)]
pub struct ApiParts<'a> {
    /// The process.
    pub process: &'a ProcessSettings,
    /// Tables and stream.
    pub event_store: &'a EventStoreSettings,
    /// The read model it answers queries from.
    pub read_model: &'a ReadModelSettings,
    /// Its relay.
    pub relay: &'a RelaySettings,
    /// Its own settings.
    pub api: &'a ApiSettings,
    /// The consumer services' dead-letter table (the operations view reads it).
    pub dead_letters: &'a super::consumer::DeadLetterSettings,
}

impl ApiParts<'_> {
    /// event-source's configuration on `backend`, or every reason it cannot run.
    pub fn config(&self, backend: Backend) -> Result<Config, Vec<String>> {
        let auth = self.api.auth.config(backend)?;
        Ok(Config {
            listen_addr: self.process.listen_addr,
            backend,
            events_table: self.event_store.events_table.clone(),
            idempotency_table: self.event_store.idempotency_table.clone(),
            event_stream: self.event_store.event_stream.clone(),
            read_model_table: self.read_model.read_model_table.clone(),
            read_model_routing_ttl: Duration::from_secs(self.read_model.read_model_routing_secs),
            auth,
            idempotency_ttl: Duration::from_secs(self.api.idempotency_ttl_secs),
            request_timeout: Duration::from_millis(self.api.request_timeout_ms),
            max_concurrent_requests: usize::try_from(self.api.max_concurrent_requests)
                .unwrap_or(usize::MAX),
            snapshot_every: self.api.snapshot_every,
            relay: self.relay.config(),
            ops_applications: self.api.ops_applications.clone(),
            dead_letter_table: self.dead_letters.dead_letter_table.clone(),
        })
    }
}
