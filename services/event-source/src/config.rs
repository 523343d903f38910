//! Configuration of the event-source service: a plain struct, built by the `quotes` binary from
//! its declared settings (`quotes run --help` lists the variables), or by tests and embedders.

use std::net::SocketAddr;
use std::time::Duration;

use event_relay::RelayConfig;
use secrecy::{ExposeSecret, SecretString};

/// The secret used when the in-memory backend runs with no auth configured (local try-outs
/// only; the AWS backend refuses to start without real auth configuration).
pub const DEV_SECRET: &str = "dev-secret-change-me";

/// Which adapters the service runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In-process store and stream: nothing to install, nothing durable.
    Memory,
    /// DynamoDB and Kinesis through the AWS SDK (real AWS, LocalStack or emulators).
    Aws,
}

/// Where bearer tokens' signing keys come from.
#[derive(Debug, Clone)]
pub enum AuthKeys {
    /// A shared HS256 secret (never printed).
    Hs256Secret(SecretString),
    /// A JWKS document URL (asymmetric keys).
    JwksUrl(String),
}

impl AuthKeys {
    /// The public dev secret, [`DEV_SECRET`].
    pub fn dev_secret() -> Self {
        Self::Hs256Secret(SecretString::from(DEV_SECRET))
    }

    /// True when tokens are checked with the public dev secret (anyone can mint them).
    pub fn is_dev_secret(&self) -> bool {
        matches!(self, Self::Hs256Secret(secret) if secret.expose_secret() == DEV_SECRET)
    }
}

/// Bearer-token verification settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Signing keys.
    pub keys: AuthKeys,
    /// Required issuer, if any.
    pub issuer: Option<String>,
    /// Required audience, if any.
    pub audience: Option<String>,
}

/// The whole service configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address.
    pub listen_addr: SocketAddr,
    /// Adapters to run on.
    pub backend: Backend,
    /// DynamoDB events table.
    pub events_table: String,
    /// DynamoDB idempotency table.
    pub idempotency_table: String,
    /// Kinesis stream.
    pub event_stream: String,
    /// DynamoDB read-model table (the home table, which holds the routing).
    pub read_model_table: String,
    /// How long the read model's routing is kept before it is read again.
    pub read_model_routing_ttl: Duration,
    /// Token verification.
    pub auth: AuthConfig,
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Requests in flight before shedding.
    pub max_concurrent_requests: usize,
    /// A quote's state is snapshotted once a load folds this many events past its last
    /// snapshot (`SNAPSHOT_EVERY`; 0: never).
    pub snapshot_every: u64,
    /// The publication relay's tuning.
    pub relay: RelayConfig,
    /// The consumer applications the operations view watches (`OPS_APPLICATIONS`).
    pub ops_applications: Vec<OpsApplication>,
    /// The consumer services' dead-letter table (`DEAD_LETTER_TABLE`), which the operations
    /// view reads.
    pub dead_letter_table: String,
}

/// A consumer application the operations view watches: its name (its dead letters are filed
/// under it) and its lease table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsApplication {
    /// The application's name.
    pub name: String,
    /// Its lease table.
    pub lease_table: String,
}

impl std::str::FromStr for OpsApplication {
    type Err = String;

    /// `name` (lease table `<name>-leases`) or `name=lease-table`.
    fn from_str(value: &str) -> Result<Self, String> {
        let (name, lease_table) = match value.split_once('=') {
            Some((name, table)) => (name.trim(), table.trim().to_owned()),
            None => (value.trim(), format!("{}-leases", value.trim())),
        };
        if name.is_empty() || lease_table.is_empty() {
            return Err(format!(
                "{value:?}: expected an application name, or name=lease-table"
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            lease_table,
        })
    }
}

impl Config {
    /// A configuration for tests and embedding: in-memory backend, HS256 with `secret`.
    pub fn for_memory(secret: &str) -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            backend: Backend::Memory,
            events_table: "quote-events".into(),
            idempotency_table: "quote-idempotency".into(),
            event_stream: "quote-events".into(),
            read_model_table: "customer-quotes".into(),
            read_model_routing_ttl: Duration::from_secs(5),
            auth: AuthConfig {
                keys: AuthKeys::Hs256Secret(SecretString::from(secret)),
                issuer: None,
                audience: None,
            },
            idempotency_ttl: Duration::from_secs(86_400),
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 1024,
            snapshot_every: crate::api::quotes::DEFAULT_SNAPSHOT_EVERY,
            relay: RelayConfig::default(),
            ops_applications: Vec::new(),
            dead_letter_table: "quote-dead-letters".into(),
        }
    }
}
