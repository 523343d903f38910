//! The AWS resources a `quotes run` process needs, checked before its services start. A
//! missing table or stream is reported once, naming the commands that create it, and the
//! process answers `/readyz` with 503 until everything exists (checked again every few seconds,
//! quietly); then the services start.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;
use axum::http::StatusCode;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

/// How often missing resources are looked for again.
const RECHECK: Duration = Duration::from_secs(5);

/// A table or stream a service reads or writes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// A DynamoDB table.
    Table(String),
    /// A Kinesis data stream.
    Stream(String),
    /// An S3 bucket.
    Bucket(String),
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Table(name) => write!(f, "table {name}"),
            Resource::Stream(name) => write!(f, "stream {name}"),
            Resource::Bucket(name) => write!(f, "bucket {name}"),
        }
    }
}

/// The resources of `resources` that do not exist. A resource that cannot be checked (no
/// permission, a network error) counts as present: the services' own calls then report it.
pub async fn missing(sdk: &SdkConfig, resources: &BTreeSet<Resource>) -> Vec<Resource> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let kinesis = aws_sdk_kinesis::Client::new(sdk);
    let s3 = quote_archive::s3::S3Objects::client(sdk);
    let mut missing = Vec::new();
    for resource in resources {
        let absent = match resource {
            Resource::Table(name) => matches!(
                dynamodb.describe_table().table_name(name).send().await,
                Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception())
            ),
            Resource::Stream(name) => matches!(
                kinesis.describe_stream_summary().stream_name(name).send().await,
                Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception())
            ),
            Resource::Bucket(name) => matches!(
                s3.head_bucket().bucket(name).send().await,
                Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found())
            ),
        };
        if absent {
            missing.push(resource.clone());
        }
    }
    missing
}

/// Waits until every resource exists, answering health checks on `listen` meanwhile (ready:
/// no). Returns false when `shutdown` fired first.
pub async fn wait_until_present(
    sdk: &SdkConfig,
    resources: &BTreeSet<Resource>,
    listen: SocketAddr,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    let mut absent = missing(sdk, resources).await;
    if absent.is_empty() {
        return Ok(true);
    }
    let list = absent
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    tracing::error!(
        missing = %list,
        "missing AWS resources: create them with `quotes bootstrap` (with the same settings) or \
         `terraform apply`; not ready until they exist"
    );
    let waiting = CancellationToken::new();
    let reason = format!("missing {list}: run `quotes bootstrap` or `terraform apply`");
    let router = axum::Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok") }))
        .route(
            "/readyz",
            get(move || {
                let reason = reason.clone();
                async move { (StatusCode::SERVICE_UNAVAILABLE, reason) }
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let stop = waiting.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    while !absent.is_empty() {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(RECHECK) => absent = missing(sdk, resources).await,
        }
    }
    waiting.cancel();
    server
        .await
        .context("the waiting health server")?
        .context("serving health checks while waiting")?;
    if absent.is_empty() {
        tracing::info!("every AWS resource exists; starting");
    }
    Ok(absent.is_empty())
}
