//! `quotes bootstrap`: creates the platform's AWS resources (the event store's DynamoDB tables
//! and the Kinesis stream of published events) idempotently. Resources that exist are left as
//! they are, so the command is safe to run before every deployment or test run.
//!
//! The result is a [`BootstrapReport`] with one [`ResourceStatus`] per resource; each prints as
//! one line, e.g. `created table quote-events` or `exists  stream quote-events (4 shards)`.
//! Later resources (lease tables, …) add entries to the same report.

use std::fmt;
use std::time::Duration;

use aws_sdk_kinesis::types::StreamStatus;
use event_store::dynamodb::schema::Created;
use event_store::StoreError;

use crate::config::Resources;

/// How long a new stream may take to become ACTIVE.
pub const STREAM_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// How often the stream's status is polled while waiting.
const STREAM_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Kinds of resources bootstrap manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// A DynamoDB table.
    Table,
    /// A Kinesis data stream.
    Stream,
    /// An SES e-mail identity.
    EmailIdentity,
    /// An S3 bucket.
    Bucket,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            ResourceKind::Table => "table",
            ResourceKind::Stream => "stream",
            ResourceKind::EmailIdentity => "email identity",
            ResourceKind::Bucket => "bucket",
        })
    }
}

/// What bootstrap did to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was created.
    Created,
    /// It existed and was left as it is.
    Exists,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so width flags (`{:<7}`) apply.
        f.pad(match self {
            Outcome::Created => "created",
            Outcome::Exists => "exists",
        })
    }
}

/// One resource of the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResourceStatus {
    /// What it is.
    pub kind: ResourceKind,
    /// Its name.
    pub name: String,
    /// What bootstrap did.
    pub outcome: Outcome,
    /// Extra facts shown in parentheses, e.g. `4 shards`.
    pub detail: Option<String>,
}

impl fmt::Display for ResourceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `created` and `exists ` have the same width, so the names line up.
        write!(f, "{:<7} {} {}", self.outcome, self.kind, self.name)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

/// Everything bootstrap did, in the order it did it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BootstrapReport {
    /// One entry per resource.
    pub resources: Vec<ResourceStatus>,
}

impl BootstrapReport {
    /// True when at least one resource was created.
    pub fn created_any(&self) -> bool {
        self.resources.iter().any(|r| r.outcome == Outcome::Created)
    }
}

impl fmt::Display for BootstrapReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for resource in &self.resources {
            writeln!(f, "{resource}")?;
        }
        Ok(())
    }
}

/// Why bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Creating or describing a table failed.
    #[error("creating the event store tables failed")]
    Tables(#[from] StoreError),
    /// Creating another table (or the e-mail identity) failed.
    #[error("creating {table} failed")]
    Table {
        /// The table, or the identity.
        table: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A Kinesis call failed.
    #[error("Kinesis {operation} on stream {stream} failed")]
    Stream {
        /// The operation, e.g. `CreateStream`.
        operation: &'static str,
        /// The stream.
        stream: String,
        /// The SDK's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The stream did not become ACTIVE in time.
    #[error("stream {stream} is {status} and did not become ACTIVE within {waited:?}")]
    StreamNotActive {
        /// The stream.
        stream: String,
        /// Its last status.
        status: String,
        /// How long we waited.
        waited: Duration,
    },
}

/// The report being written, shown as it grows.
struct Progress<'a> {
    report: BootstrapReport,
    show: &'a mut dyn FnMut(&ResourceStatus),
}

impl Progress<'_> {
    fn record(&mut self, status: ResourceStatus) {
        (self.show)(&status);
        self.report.resources.push(status);
    }
}

/// Creates the tables and the stream named by `resources` unless they exist, and waits until
/// they are ACTIVE. `show` sees each resource as soon as it is done (a long bootstrap shows its
/// progress); the report lists them all.
pub async fn bootstrap(
    sdk: &aws_config::SdkConfig,
    resources: &Resources,
    show: &mut dyn FnMut(&ResourceStatus),
) -> Result<BootstrapReport, BootstrapError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let kinesis = aws_sdk_kinesis::Client::new(sdk);
    let mut report = Progress {
        report: BootstrapReport::default(),
        show,
    };

    for (name, created) in
        event_store::dynamodb::create_tables(&dynamodb, &resources.tables).await?
    {
        report.record(ResourceStatus {
            kind: ResourceKind::Table,
            name,
            outcome: match created {
                Created::Created => Outcome::Created,
                Created::Existed => Outcome::Exists,
            },
            detail: None,
        });
    }

    let table_status = |name: &str, created: bool| ResourceStatus {
        kind: ResourceKind::Table,
        name: name.to_owned(),
        outcome: if created {
            Outcome::Created
        } else {
            Outcome::Exists
        },
        detail: None,
    };
    fn failed<E: std::error::Error + Send + Sync + 'static>(
        table: &str,
    ) -> impl FnOnce(E) -> BootstrapError + '_ {
        move |source| BootstrapError::Table {
            table: table.to_owned(),
            source: Box::new(source),
        }
    }
    let created =
        quote_read_model::dynamodb::create_read_model_table(&dynamodb, &resources.read_model_table)
            .await
            .map_err(failed(&resources.read_model_table))?;
    report.record(table_status(&resources.read_model_table, created));
    let created = kinesis_consumer::dead_letter::create_dead_letter_table(
        &dynamodb,
        &resources.dead_letter_table,
    )
    .await
    .map_err(failed(&resources.dead_letter_table))?;
    report.record(table_status(&resources.dead_letter_table, created));
    let created = event_relay::dead_letter::create_relay_dead_letter_table(
        &dynamodb,
        &resources.relay_dead_letter_table,
    )
    .await
    .map_err(failed(&resources.relay_dead_letter_table))?;
    report.record(table_status(&resources.relay_dead_letter_table, created));
    let created = notifier::create_notifications_table(&dynamodb, &resources.notifications_table)
        .await
        .map_err(failed(&resources.notifications_table))?;
    report.record(table_status(
        &resources.notifications_table,
        created == notifier::Created::Created,
    ));
    let created = quote_archive::dynamodb::create_manifest_table(
        &dynamodb,
        &resources.archive_manifest_table,
    )
    .await
    .map_err(failed(&resources.archive_manifest_table))?;
    report.record(table_status(&resources.archive_manifest_table, created));
    for lease_table in &resources.lease_tables {
        let created = kinesis_consumer::lease_table::create_lease_table(&dynamodb, lease_table)
            .await
            .map_err(failed(lease_table))?;
        report.record(table_status(lease_table, created));
    }

    report.record(ensure_stream(&kinesis, &resources.event_stream, resources.stream_shards).await?);
    let s3 = quote_archive::s3::S3Objects::client(sdk);
    let created = quote_archive::s3::create_bucket(&s3, &resources.archive_bucket)
        .await
        .map_err(failed(&resources.archive_bucket))?;
    report.record(ResourceStatus {
        kind: ResourceKind::Bucket,
        ..table_status(&resources.archive_bucket, created)
    });
    if let Some(identity) = &resources.notify_from_email {
        let ses = aws_sdk_sesv2::Client::new(sdk);
        let created = notifier::create_ses_identity(&ses, identity)
            .await
            .map_err(failed(identity))?;
        report.record(ResourceStatus {
            kind: ResourceKind::EmailIdentity,
            name: identity.clone(),
            outcome: if created == notifier::Created::Created {
                Outcome::Created
            } else {
                Outcome::Exists
            },
            detail: None,
        });
    }
    Ok(report.report)
}

/// Creates a stream with `shards` shards unless it exists, then waits until it is ACTIVE.
/// The detail reports the stream's actual open shards (an existing stream keeps its own).
pub async fn ensure_stream(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shards: i32,
) -> Result<ResourceStatus, BootstrapError> {
    let created = client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await;
    let outcome = match created {
        Ok(_) => Outcome::Created,
        Err(err) => {
            let err = err.into_service_error();
            if err.is_resource_in_use_exception() {
                Outcome::Exists
            } else {
                return Err(stream_error("CreateStream", name, err));
            }
        }
    };
    let open_shards = wait_stream_active(client, name).await?;
    let detail = match open_shards {
        1 => "1 shard".to_owned(),
        n => format!("{n} shards"),
    };
    Ok(ResourceStatus {
        kind: ResourceKind::Stream,
        name: name.to_owned(),
        outcome,
        detail: Some(detail),
    })
}

/// Waits until the stream is ACTIVE; returns its number of open shards.
async fn wait_stream_active(
    client: &aws_sdk_kinesis::Client,
    name: &str,
) -> Result<i32, BootstrapError> {
    let started = tokio::time::Instant::now();
    loop {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| stream_error("DescribeStreamSummary", name, e.into_service_error()))?
            .stream_description_summary;
        let status = summary.as_ref().map(|s| s.stream_status.clone());
        if let (Some(StreamStatus::Active), Some(summary)) = (&status, &summary) {
            return Ok(summary.open_shard_count);
        }
        if started.elapsed() >= STREAM_ACTIVE_TIMEOUT {
            return Err(BootstrapError::StreamNotActive {
                stream: name.to_owned(),
                status: status
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_else(|| "unknown".to_owned()),
                waited: STREAM_ACTIVE_TIMEOUT,
            });
        }
        tokio::time::sleep(STREAM_POLL_INTERVAL).await;
    }
}

fn stream_error(
    operation: &'static str,
    stream: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> BootstrapError {
    BootstrapError::Stream {
        operation,
        stream: stream.to_owned(),
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_line_up() {
        let report = BootstrapReport {
            resources: vec![
                ResourceStatus {
                    kind: ResourceKind::Table,
                    name: "quote-events".into(),
                    outcome: Outcome::Created,
                    detail: None,
                },
                ResourceStatus {
                    kind: ResourceKind::Stream,
                    name: "quote-events".into(),
                    outcome: Outcome::Exists,
                    detail: Some("4 shards".into()),
                },
            ],
        };
        assert_eq!(
            report.to_string(),
            "created table quote-events\nexists  stream quote-events (4 shards)\n"
        );
        assert!(report.created_any());
    }
}
