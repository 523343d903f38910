//! The consumer applications' settings: leases, checkpoints, dead letters, the record source.

use std::time::Duration;

use clap::{Args, ValueEnum};
use kinesis_consumer::config::{CheckpointPolicy, InitialPosition, SourceKind};
use kinesis_consumer::WorkerConfig;
use quote_pipeline::service::{AwsConsumerConfig, CatchUp};

use super::event_store::EventStoreSettings;
use super::heading;
use super::parse::resource_name;
use super::relay::RelaySettings;

/// A consumer application's lease table (the consumer services, `quotes leases`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::CONSUMER)]
pub struct LeaseTableSettings {
    /// DynamoDB lease table of the consumer application [default: `<service>-leases`]. Only
    /// for a process that runs one consumer service.
    #[arg(long, env = "LEASE_TABLE", value_parser = resource_name)]
    pub lease_table: Option<String>,
}

/// Where poison records go.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::DEAD_LETTERS)]
pub struct DeadLetterSettings {
    /// DynamoDB table of the records a consumer service set aside after
    /// MAX_PROCESSING_ATTEMPTS permanent failures, and of the later records of the same quote
    /// set aside behind them (index `by-key`).
    #[arg(long, env = "DEAD_LETTER_TABLE", default_value = "quote-dead-letters", value_parser = resource_name)]
    pub dead_letter_table: String,
}

/// How a consumer application reads the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceName {
    /// `GetRecords` polling (5 reads/s per shard shared by every application).
    Polling,
    /// Enhanced fan-out (`SubscribeToShard`): 2 MB/s per shard for each application.
    Fanout,
}

/// Every consumer service's settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::CONSUMER)]
pub struct ConsumerSettings {
    /// The lease table.
    #[command(flatten)]
    pub lease: LeaseTableSettings,
    /// This worker's id in the lease table [default: host name and process id].
    #[arg(long, env = "WORKER_ID", value_parser = worker_id)]
    pub worker_id: Option<String>,
    /// Where a shard with no checkpoint starts: TRIM_HORIZON, LATEST, AT_TIMESTAMP:<RFC 3339>,
    /// or ARCHIVE (the shard's archived records first, from ARCHIVE_BUCKET and
    /// ARCHIVE_MANIFEST_TABLE, then the stream after the last of them: a new application
    /// starting from before the stream's retention).
    #[arg(long, env = "CONSUMER_INITIAL_POSITION", default_value = "TRIM_HORIZON", value_parser = start_from)]
    pub consumer_initial_position: StartFrom,
    /// Milliseconds a lease whose counter stands still takes to expire: the kill -9 failover
    /// time (see shared/kinesis-consumer/README.md).
    #[arg(long, env = "LEASE_DURATION_MS", default_value_t = 6000, value_parser = clap::value_parser!(u64).range(1000..=600_000))]
    pub lease_duration_ms: u64,
    /// Milliseconds between two renewals of a held lease [default: LEASE_DURATION_MS / 3].
    #[arg(long, env = "LEASE_RENEW_INTERVAL_MS", value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub lease_renew_interval_ms: Option<u64>,
    /// Records after which the library checkpoints (or CHECKPOINT_EVERY_MS, whichever comes
    /// first).
    #[arg(long, env = "CHECKPOINT_EVERY_RECORDS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub checkpoint_every_records: u64,
    /// Milliseconds after which the library checkpoints, idle shards too (or
    /// CHECKPOINT_EVERY_RECORDS, whichever comes first).
    #[arg(long, env = "CHECKPOINT_EVERY_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub checkpoint_every_ms: u64,
    /// Attempts of a record failing permanently (undecodable, invalid) before it is
    /// dead-lettered; transient failures (throttling, 5xx, timeouts, a dependency or the event
    /// store unavailable) are retried with backoff until they pass and never dead-lettered (ADR
    /// 0008).
    #[arg(long, env = "MAX_PROCESSING_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_processing_attempts: u32,
    /// How the stream is read: `GetRecords` polling, or enhanced fan-out (its consumer is
    /// EFO_CONSUMER_NAME).
    #[arg(long, env = "CONSUMER_SOURCE", value_enum, default_value_t = SourceName::Polling)]
    pub consumer_source: SourceName,
    /// Milliseconds between two `GetRecords` calls on one shard once the reader is at the
    /// stream's tip (polling): a record waits half of it on average. Every application polling
    /// a shard shares its 5 calls/s: keep the sum of 1000 / POLL_INTERVAL_MS over them at or
    /// below 5 (ADR 0013; the archiver, too, never more than once a second).
    #[arg(long, env = "POLL_INTERVAL_MS", default_value_t = kinesis_consumer::source::polling::DEFAULT_READ_INTERVAL_MS, value_parser = clap::value_parser!(u64).range(200..=60_000))]
    pub poll_interval_ms: u64,
    /// Enhanced fan-out consumer name [default: the service's name].
    #[arg(long, env = "EFO_CONSUMER_NAME", value_parser = efo_consumer_name)]
    pub efo_consumer_name: Option<String>,
    /// Where poison records go (last: its group has a heading of its own).
    #[command(flatten)]
    pub dead_letters: DeadLetterSettings,
}

/// Everything a consumer service is configured from.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerParts<'a> {
    /// Tables and stream.
    pub event_store: &'a EventStoreSettings,
    /// Its relay.
    pub relay: &'a RelaySettings,
    /// The consumer settings.
    pub consumer: &'a ConsumerSettings,
    /// The archive (read first with `CONSUMER_INITIAL_POSITION=ARCHIVE`).
    pub archive: &'a super::archive::ArchiveStorageSettings,
}

impl ConsumerParts<'_> {
    /// The configuration of consumer application `application`, or every reason it cannot run.
    pub fn config(&self, application: &str) -> Result<AwsConsumerConfig, Vec<String>> {
        let settings = self.consumer;
        let mut worker = WorkerConfig::new(application);
        if let Some(id) = &settings.worker_id {
            worker.worker_id = id.clone();
        }
        let catch_up = match settings.consumer_initial_position {
            StartFrom::Stream(position) => {
                worker.initial_position = position;
                None
            }
            StartFrom::Archive => {
                worker.initial_position = InitialPosition::TrimHorizon;
                Some(CatchUp {
                    bucket: self.archive.archive_bucket.clone(),
                    manifest_table: self.archive.archive_manifest_table.clone(),
                })
            }
        };
        worker.lease_duration = Duration::from_millis(settings.lease_duration_ms);
        worker.renew_interval = Duration::from_millis(
            settings
                .lease_renew_interval_ms
                .unwrap_or(settings.lease_duration_ms / 3),
        );
        if worker.renew_interval >= worker.lease_duration {
            return Err(vec![format!(
                "LEASE_RENEW_INTERVAL_MS ({} ms) must be shorter than LEASE_DURATION_MS ({} ms)",
                worker.renew_interval.as_millis(),
                worker.lease_duration.as_millis()
            )]);
        }
        worker.checkpoint = CheckpointPolicy {
            every_records: Some(settings.checkpoint_every_records),
            every: Some(Duration::from_millis(settings.checkpoint_every_ms)),
        };
        let source = match settings.consumer_source {
            SourceName::Polling => SourceKind::Polling {
                read_interval: Duration::from_millis(settings.poll_interval_ms),
            },
            SourceName::Fanout => SourceKind::FanOut {
                consumer_name: settings
                    .efo_consumer_name
                    .clone()
                    .unwrap_or_else(|| application.to_owned()),
            },
        };
        Ok(AwsConsumerConfig {
            worker,
            lease_table: settings
                .lease
                .lease_table
                .clone()
                .unwrap_or_else(|| lease_table_of(application)),
            dead_letter_table: settings.dead_letters.dead_letter_table.clone(),
            max_attempts: settings.max_processing_attempts,
            source,
            event_stream: self.event_store.event_stream.clone(),
            tables: self.event_store.tables(),
            relay: self.relay.config(),
            catch_up,
        })
    }
}

/// The lease table of a consumer application when LEASE_TABLE does not name one.
pub fn lease_table_of(application: &str) -> String {
    format!("{application}-leases")
}

/// Where a consumer application's shards start without a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// A position in the stream.
    Stream(InitialPosition),
    /// The archive's records of each shard, then the stream after them.
    Archive,
}

/// `ARCHIVE`, or a position in the stream ([`initial_position`]).
pub fn start_from(value: &str) -> Result<StartFrom, String> {
    match value {
        "ARCHIVE" => Ok(StartFrom::Archive),
        other => initial_position(other).map(StartFrom::Stream).map_err(|_| {
            "expected TRIM_HORIZON, LATEST, AT_TIMESTAMP:<RFC 3339> or ARCHIVE".to_owned()
        }),
    }
}

/// `TRIM_HORIZON`, `LATEST` or `AT_TIMESTAMP:<RFC 3339>`.
pub fn initial_position(value: &str) -> Result<InitialPosition, String> {
    match value {
        "TRIM_HORIZON" => Ok(InitialPosition::TrimHorizon),
        "LATEST" => Ok(InitialPosition::Latest),
        other => match other.strip_prefix("AT_TIMESTAMP:") {
            Some(at) => super::parse::rfc3339(at).map(InitialPosition::AtTimestamp),
            None => Err("expected TRIM_HORIZON, LATEST or AT_TIMESTAMP:<RFC 3339>".to_owned()),
        },
    }
}

/// A worker id: 1–256 printable characters (it is stored in every lease it holds).
fn worker_id(value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
        return Err("use 1 to 256 printable characters".to_owned());
    }
    Ok(value.to_owned())
}

/// An enhanced fan-out consumer name: 1–128 characters of `a-z A-Z 0-9 _ . -` (Kinesis's rule).
fn efo_consumer_name(value: &str) -> Result<String, String> {
    super::parse::aws_name(value, 1..=128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_positions() {
        assert_eq!(
            initial_position("TRIM_HORIZON"),
            Ok(InitialPosition::TrimHorizon)
        );
        assert_eq!(initial_position("LATEST"), Ok(InitialPosition::Latest));
        assert!(matches!(
            initial_position("AT_TIMESTAMP:2026-01-15T10:00:00Z"),
            Ok(InitialPosition::AtTimestamp(_))
        ));
        assert!(initial_position("AT_TIMESTAMP:yesterday").is_err());
        assert!(initial_position("EARLIEST").is_err());
        assert_eq!(start_from("ARCHIVE"), Ok(StartFrom::Archive));
        assert_eq!(
            start_from("LATEST"),
            Ok(StartFrom::Stream(InitialPosition::Latest))
        );
        assert!(start_from("archive").is_err());
    }
}
