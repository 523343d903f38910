//! quotectl's configuration from the environment: the same variables, with the same defaults,
//! as the event-source service, so the CLI always works on the resources the service uses.
//!
//! | variable | default | used by | meaning |
//! | --- | --- | --- | --- |
//! | `EVENTS_TABLE` | `quote-events` | bootstrap, bench | DynamoDB events table |
//! | `IDEMPOTENCY_TABLE` | `quote-idempotency` | bootstrap, bench | DynamoDB idempotency table |
//! | `EVENT_STREAM` | `quote-events` | bootstrap, bench | Kinesis stream of published events |
//! | `EVENT_STREAM_SHARDS` | `4` | bootstrap | shards of a newly created stream |
//! | `READ_MODEL_TABLE` | `customer-quotes` | bootstrap | DynamoDB read model |
//! | `DEAD_LETTER_TABLE` | `quote-dead-letters` | bootstrap | where consumers put poison records |
//! | `RELAY_DEAD_LETTER_TABLE` | `quote-relay-dead-letters` | bootstrap, relay-dead-letters | where relays set aside records that can never be published |
//! | `NOTIFICATIONS_TABLE` | `quote-notifications` | bootstrap | the notifier's ledger of sent notifications |
//! | `NOTIFY_FROM_EMAIL` | — | bootstrap | when set, the SES identity to create (emulators; Terraform does it in AWS) |
//! | `CONSUMER_APPLICATIONS` | `vehicle-enricher,driver-history,fulfillment,projector,notifier` | bootstrap | consumer applications; each gets the lease table `<application>-leases` |
//! | `AUTH_HS256_SECRET` | the public dev secret ([`DEV_SECRET`], with a note on stderr) | token, bench | HS256 secret tokens are signed with |
//! | `AUTH_ISSUER` | — | token, bench | `iss` claim of minted tokens |
//! | `AUTH_AUDIENCE` | — | token, bench | `aud` claim of minted tokens |
//! | `BACKEND` | `memory` | bench | backend of the in-process service and default baseline |
//! | `AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_KINESIS`, … | SDK defaults | bootstrap, bench | read by the AWS SDK itself |
//! | `RUST_LOG` | `warn` | all | diagnostics, written to stderr |

use event_relay::dead_letter::DEFAULT_RELAY_DEAD_LETTER_TABLE;
use event_source::config::Backend;
use event_store::dynamodb::TableNames;
use quote_runtime::env::{optional, parse_or, string_or, EnvError};

pub use event_source::config::DEV_SECRET;

/// Default number of shards of a stream created by `quotectl bootstrap`.
pub const DEFAULT_STREAM_SHARDS: i32 = 4;

/// The platform's consumer applications (each has its own lease table).
pub const CONSUMER_APPLICATIONS: [&str; 5] = [
    "vehicle-enricher",
    "driver-history",
    "fulfillment",
    "projector",
    "notifier",
];

/// The lease table of a consumer application (the services' `LEASE_TABLE` default).
pub fn lease_table_of(application: &str) -> String {
    format!("{application}-leases")
}

/// The AWS resources the platform runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// The read model (`READ_MODEL_TABLE`).
    pub read_model_table: String,
    /// The dead-letter table (`DEAD_LETTER_TABLE`).
    pub dead_letter_table: String,
    /// The relays' dead-letter table (`RELAY_DEAD_LETTER_TABLE`).
    pub relay_dead_letter_table: String,
    /// The notifier's ledger (`NOTIFICATIONS_TABLE`).
    pub notifications_table: String,
    /// The SES sender identity to create (`NOTIFY_FROM_EMAIL`), if any.
    pub notify_from_email: Option<String>,
    /// Lease tables, one per consumer application (`CONSUMER_APPLICATIONS`).
    pub lease_tables: Vec<String>,
    /// The event store's tables (`EVENTS_TABLE`, `IDEMPOTENCY_TABLE`).
    pub tables: TableNames,
    /// The Kinesis stream (`EVENT_STREAM`).
    pub event_stream: String,
    /// Shards of the stream when it is created (`EVENT_STREAM_SHARDS`).
    pub stream_shards: i32,
}

impl Resources {
    /// Reads the resource names from the environment.
    pub fn from_env() -> Result<Self, EnvError> {
        let stream_shards = parse_or("EVENT_STREAM_SHARDS", DEFAULT_STREAM_SHARDS)?;
        if stream_shards < 1 {
            return Err(EnvError {
                name: "EVENT_STREAM_SHARDS".into(),
                value: stream_shards.to_string(),
                reason: "a stream needs at least one shard".into(),
            });
        }
        let applications = string_or("CONSUMER_APPLICATIONS", &CONSUMER_APPLICATIONS.join(","));
        Ok(Self {
            read_model_table: string_or("READ_MODEL_TABLE", "customer-quotes"),
            dead_letter_table: string_or("DEAD_LETTER_TABLE", "quote-dead-letters"),
            relay_dead_letter_table: string_or(
                "RELAY_DEAD_LETTER_TABLE",
                DEFAULT_RELAY_DEAD_LETTER_TABLE,
            ),
            notifications_table: string_or("NOTIFICATIONS_TABLE", "quote-notifications"),
            notify_from_email: optional("NOTIFY_FROM_EMAIL"),
            lease_tables: applications
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(lease_table_of)
                .collect(),
            tables: TableNames {
                events: string_or("EVENTS_TABLE", "quote-events"),
                idempotency: string_or("IDEMPOTENCY_TABLE", "quote-idempotency"),
            },
            event_stream: string_or("EVENT_STREAM", "quote-events"),
            stream_shards,
        })
    }
}

/// How tokens are minted.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// The HS256 secret.
    pub secret: String,
    /// True when no `AUTH_HS256_SECRET` was set and the public dev secret is used.
    pub dev_secret: bool,
    /// `iss` of minted tokens.
    pub issuer: Option<String>,
    /// `aud` of minted tokens.
    pub audience: Option<String>,
}

impl std::fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSettings")
            .field("secret", &"<hidden>")
            .field("dev_secret", &self.dev_secret)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl TokenSettings {
    /// Reads the signing settings from the environment. Without `AUTH_HS256_SECRET` the dev
    /// secret is used, as event-source does with `BACKEND=memory`.
    pub fn from_env() -> Self {
        let (secret, dev_secret) = match optional("AUTH_HS256_SECRET") {
            Some(secret) => (secret, false),
            None => (DEV_SECRET.to_owned(), true),
        };
        Self {
            secret,
            dev_secret,
            issuer: optional("AUTH_ISSUER"),
            audience: optional("AUTH_AUDIENCE"),
        }
    }

    /// The note to print on stderr when the dev secret is used.
    pub fn dev_secret_note(&self) -> Option<&'static str> {
        self.dev_secret.then_some(
            "note: AUTH_HS256_SECRET is not set; signing with the public dev secret \
             (accepted only by event-source with BACKEND=memory and no auth configured)",
        )
    }
}

/// The backend named by `BACKEND` (default `memory`), as event-source reads it.
pub fn backend_from_env() -> Result<Backend, EnvError> {
    let value = string_or("BACKEND", "memory");
    match value.to_ascii_lowercase().as_str() {
        "memory" => Ok(Backend::Memory),
        "aws" => Ok(Backend::Aws),
        _ => Err(EnvError {
            name: "BACKEND".into(),
            value,
            reason: "expected `memory` or `aws`".into(),
        }),
    }
}
