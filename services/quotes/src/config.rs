//! What the operations commands work on, from their declared settings: the AWS resources
//! (`quotes bootstrap`, the AWS baseline of `quotes bench ingest`) and the token signing
//! settings (`quotes token`, `quotes bench ingest`). The names and defaults are those of the
//! services' settings (the same declarations), so the commands always work on the resources
//! the services use.

use event_store::dynamodb::TableNames;
use secrecy::{ExposeSecret, SecretString};

use crate::cli::BootstrapArgs;
use crate::settings::api::AuthSettings;

pub use crate::settings::consumer::lease_table_of;
pub use event_source::config::DEV_SECRET;

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
    /// Lease tables, one per consumer application (`CONSUMER_APPLICATIONS`), and the one
    /// `LEASE_TABLE` names.
    pub lease_tables: Vec<String>,
    /// The event store's tables (`EVENTS_TABLE`, `IDEMPOTENCY_TABLE`).
    pub tables: TableNames,
    /// The Kinesis stream (`EVENT_STREAM`).
    pub event_stream: String,
    /// The archive's bucket (`ARCHIVE_BUCKET`).
    pub archive_bucket: String,
    /// The archive's manifest (`ARCHIVE_MANIFEST_TABLE`).
    pub archive_manifest_table: String,
    /// Shards of the stream when it is created (`EVENT_STREAM_SHARDS`).
    pub stream_shards: i32,
}

impl Resources {
    /// What `quotes bootstrap` creates.
    pub fn of_bootstrap(args: &BootstrapArgs) -> Self {
        Self {
            read_model_table: args.read_model.read_model_table.clone(),
            dead_letter_table: args.dead_letters.dead_letter_table.clone(),
            relay_dead_letter_table: args.relay_dead_letters.relay_dead_letter_table.clone(),
            notifications_table: args.notifier.notifications_table.clone(),
            notify_from_email: args
                .notifier
                .notify_from_email
                .as_ref()
                .map(|email| email.as_str().to_owned()),
            lease_tables: lease_tables(args),
            tables: args.event_store.tables(),
            event_stream: args.event_store.event_stream.clone(),
            archive_bucket: args.archive.archive_bucket.clone(),
            archive_manifest_table: args.archive.archive_manifest_table.clone(),
            stream_shards: args.bootstrap.event_stream_shards,
        }
    }
}

/// One lease table per consumer application, and the one `LEASE_TABLE` names (a consumer
/// service run with it uses that table).
fn lease_tables(args: &BootstrapArgs) -> Vec<String> {
    let mut tables: Vec<String> = args
        .bootstrap
        .consumer_applications
        .iter()
        .map(|application| lease_table_of(application))
        .collect();
    if let Some(named) = &args.lease.lease_table {
        if !tables.contains(named) {
            tables.push(named.clone());
        }
    }
    tables
}

/// How tokens are minted.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// The HS256 secret (never printed).
    pub secret: SecretString,
    /// True when no `AUTH_HS256_SECRET` was set and the public dev secret is used.
    pub dev_secret: bool,
    /// `iss` of minted tokens.
    pub issuer: Option<String>,
    /// `aud` of minted tokens.
    pub audience: Option<String>,
}

impl TokenSettings {
    /// The signing settings. Without `AUTH_HS256_SECRET` the dev secret is used, as
    /// event-source does when it runs embedded.
    pub fn new(auth: &AuthSettings) -> Self {
        let (secret, dev_secret) = match &auth.auth_hs256_secret {
            Some(secret) => (secret.clone(), secret.expose_secret() == DEV_SECRET),
            None => (SecretString::from(DEV_SECRET), true),
        };
        Self {
            secret,
            dev_secret,
            issuer: auth.auth_issuer.clone(),
            audience: auth.auth_audience.clone(),
        }
    }

    /// The note to print on stderr when the dev secret is used.
    pub fn dev_secret_note(&self) -> Option<&'static str> {
        self.dev_secret.then_some(
            "note: AUTH_HS256_SECRET is not set; signing with the public dev secret \
             (accepted only by event-source running embedded with no auth configured)",
        )
    }
}
