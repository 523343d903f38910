//! Configuration of the event-source service, read from the environment once at start-up and
//! validated there (a bad value stops the process with a message naming the variable).
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `LISTEN_ADDR` | `0.0.0.0:8080` | HTTP listen address |
//! | `BACKEND` | `memory` | `memory` (in-process adapters, no AWS) or `aws` |
//! | `EVENTS_TABLE` | `quote-events` | DynamoDB events table |
//! | `IDEMPOTENCY_TABLE` | `quote-idempotency` | DynamoDB idempotency table |
//! | `EVENT_STREAM` | `quote-events` | Kinesis stream events are published to |
//! | `READ_MODEL_TABLE` | `customer-quotes` | DynamoDB read model the query routes answer from |
//! | `AUTH_HS256_SECRET` | — | HS256 secret for bearer tokens (local, tests) |
//! | `AUTH_JWKS_URL` | — | JWKS URL for RS/ES/PS-signed tokens (production, e.g. Cognito) |
//! | `AUTH_ISSUER` | — | required `iss` when set; must be set with `AUTH_JWKS_URL` |
//! | `AUTH_AUDIENCE` | — | required `aud` (string or array) when set; must be set with `AUTH_JWKS_URL` |
//! | `IDEMPOTENCY_TTL_SECS` | `86400` | how long an `Idempotency-Key` is remembered |
//! | `REQUEST_TIMEOUT_MS` | `10000` | per-request timeout |
//! | `MAX_CONCURRENT_REQUESTS` | `1024` | requests in flight before new ones are shed with 503 |
//! | `RELAY_SWEEP_INTERVAL_MS` | `1000` | how often the publication outbox is swept |
//! | `RELAY_SWEEP_GRACE_MS` | `2000` | age of an unpublished commit before the sweep takes it |
//! | `RELAY_SWEEP_CLAIM_MS` | `10000` | how long a sweep's claim on a stranded stream keeps other processes' sweeps off it |
//! | `RELAY_STORE_CONCURRENCY` | `16` | heads marked published (and swept streams read) at once |
//! | `RELAY_DEAD_LETTER_TABLE` | `quote-relay-dead-letters` | DynamoDB table where the relay sets aside records that can never be published |

use std::net::SocketAddr;
use std::time::Duration;

use event_relay::RelayConfig;
use quote_runtime::env::{optional, parse_or, string_or, EnvError};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthKeys {
    /// A shared HS256 secret.
    Hs256Secret(String),
    /// A JWKS document URL (asymmetric keys).
    JwksUrl(String),
}

/// Bearer-token verification settings.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// DynamoDB read-model table.
    pub read_model_table: String,
    /// Token verification.
    pub auth: AuthConfig,
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Requests in flight before shedding.
    pub max_concurrent_requests: usize,
    /// The publication relay's tuning (`RELAY_*`, see [`RelayConfig::from_env`]).
    pub relay: RelayConfig,
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable has an unusable value.
    #[error(transparent)]
    Invalid(#[from] EnvError),
    /// Something required is missing.
    #[error("{0}")]
    Missing(String),
}

impl Config {
    /// Reads and validates the configuration from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let backend = match string_or("BACKEND", "memory").to_ascii_lowercase().as_str() {
            "memory" => Backend::Memory,
            "aws" => Backend::Aws,
            other => {
                return Err(EnvError {
                    name: "BACKEND".into(),
                    value: other.into(),
                    reason: "expected `memory` or `aws`".into(),
                }
                .into())
            }
        };
        let keys = match (optional("AUTH_HS256_SECRET"), optional("AUTH_JWKS_URL")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Missing(
                    "set only one of AUTH_HS256_SECRET and AUTH_JWKS_URL".into(),
                ))
            }
            (Some(secret), None) => {
                if secret.len() < 16 {
                    return Err(EnvError {
                        name: "AUTH_HS256_SECRET".into(),
                        value: "<hidden>".into(),
                        reason: "use at least 16 bytes".into(),
                    }
                    .into());
                }
                AuthKeys::Hs256Secret(secret)
            }
            (None, Some(url)) => AuthKeys::JwksUrl(url),
            (None, None) if backend == Backend::Memory => AuthKeys::Hs256Secret(DEV_SECRET.into()),
            (None, None) => {
                return Err(ConfigError::Missing(
                    "BACKEND=aws needs AUTH_HS256_SECRET or AUTH_JWKS_URL".into(),
                ))
            }
        };
        let issuer = optional("AUTH_ISSUER");
        let audience = optional("AUTH_AUDIENCE");
        if matches!(keys, AuthKeys::JwksUrl(_)) && (issuer.is_none() || audience.is_none()) {
            // An identity provider signs the tokens of all its clients with the same keys: only
            // `iss` and `aud` tell ours from another application's.
            return Err(ConfigError::Missing(
                "AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE (otherwise tokens minted by the same identity provider for any other client would be accepted)".into(),
            ));
        }
        Ok(Self {
            listen_addr: parse_or("LISTEN_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080)))?,
            backend,
            events_table: string_or("EVENTS_TABLE", "quote-events"),
            idempotency_table: string_or("IDEMPOTENCY_TABLE", "quote-idempotency"),
            event_stream: string_or("EVENT_STREAM", "quote-events"),
            read_model_table: string_or("READ_MODEL_TABLE", "customer-quotes"),
            auth: AuthConfig {
                keys,
                issuer,
                audience,
            },
            idempotency_ttl: Duration::from_secs(parse_or("IDEMPOTENCY_TTL_SECS", 86_400)?),
            request_timeout: Duration::from_millis(parse_or("REQUEST_TIMEOUT_MS", 10_000)?),
            max_concurrent_requests: parse_or("MAX_CONCURRENT_REQUESTS", 1024)?,
            relay: RelayConfig::from_env()?,
        })
    }

    /// A configuration for tests and embedding: in-memory backend, HS256 with `secret`.
    pub fn for_memory(secret: &str) -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            backend: Backend::Memory,
            events_table: "quote-events".into(),
            idempotency_table: "quote-idempotency".into(),
            event_stream: "quote-events".into(),
            read_model_table: "customer-quotes".into(),
            auth: AuthConfig {
                keys: AuthKeys::Hs256Secret(secret.into()),
                issuer: None,
                audience: None,
            },
            idempotency_ttl: Duration::from_secs(86_400),
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 1024,
            relay: RelayConfig::default(),
        }
    }
}
