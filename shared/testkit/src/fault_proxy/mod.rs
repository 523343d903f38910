//! A fault-injecting HTTP/1.1 proxy for the AWS JSON protocols (DynamoDB, Kinesis): put it
//! between the SDK and an emulator, and it injects, per operation (the `X-Amz-Target` header)
//! and by rate or time window, the faults a real AWS endpoint produces: throttling errors with
//! the real status codes and bodies, 500/503, added latency, hangs, dropped connections (before
//! or after the backend applied the call) and partially refused `PutRecords` batches.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use testkit::fault_proxy::{AwsError, Fault, FaultProxy, Rule};
//! let proxy = FaultProxy::start("http://127.0.0.1:8000").await?;
//! // Point the SDK (or a child process) at it: AWS_ENDPOINT_URL_DYNAMODB = proxy.url().
//! proxy.add(
//!     Rule::new(Fault::Error { error: AwsError::ProvisionedThroughputExceeded })
//!         .operation("DynamoDB_20120810.UpdateItem")
//!         .rate(0.5)
//!         .window(Duration::ZERO, Duration::from_secs(5)),
//! );
//! # Ok(()) }
//! ```
//!
//! Scripts drive it over HTTP on the same port (`control`): `GET /__faults` (rules and counts),
//! `POST /__faults/rules` (a rule or a list of rules, as JSON), `DELETE /__faults/rules` (all)
//! and `DELETE /__faults/rules/<id>`; the `fault-proxy` binary starts one from the command line.
//!
//! Out of scope: HTTP/2, so enhanced fan-out's `SubscribeToShard` event streams (HTTP/2) cannot
//! pass through it; point fan-out consumers at the emulator directly.
//!
//! Layout: `rules` (what to inject, and the decision per request: pure), `aws_errors` (the
//! answers), `control` (the HTTP control endpoint), this module (sockets and forwarding).

mod aws_errors;
mod control;
mod rules;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

pub use aws_errors::{AwsError, Service};
pub use rules::{Fault, ProxyStats, Rule};

use rules::RuleBook;

/// The header naming an AWS JSON operation.
const TARGET: &str = "x-amz-target";

/// A running fault proxy; it stops (and drops every open connection) when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    /// Where it listens.
    address: SocketAddr,
    /// The rules and counters, shared with the connection tasks.
    shared: Arc<Shared>,
    /// The accept loop; its connection tasks end with it.
    task: JoinHandle<()>,
}

/// What every connection task needs.
#[derive(Debug)]
struct Shared {
    /// The rules in force and what was injected.
    book: Mutex<RuleBook>,
    /// Scheme and authority of the backend.
    upstream: Uri,
    /// The connection pool to the backend.
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, RuleBook> {
        // A panicking test thread cannot leave the book half-updated: every update is one call.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a request's connection is closed without an answer (a dropped connection, a hang's
/// end, or an unreadable request); hyper closes the connection on it.
#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("connection dropped by a fault rule")]
    ByRule,
    #[error("reading the request failed")]
    Read(#[source] hyper::Error),
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The backend URL is not an absolute `http://host:port` URL.
    #[error("upstream {0:?} is not an http://host:port URL")]
    Upstream(String),
    /// The listening socket could not be opened.
    #[error("cannot listen")]
    Listen(#[from] std::io::Error),
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Result<Self, StartError> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await
    }

    /// Starts a proxy in front of the endpoint the SDK variable `variable` names (for instance
    /// `AWS_ENDPOINT_URL_DYNAMODB`); panics when it is not set, like [`crate::aws_config`].
    pub async fn in_front_of(variable: &str) -> Self {
        crate::require_emulators();
        let upstream = std::env::var(variable)
            .unwrap_or_else(|_| panic!("{variable} must point at an emulator"));
        Self::start(&upstream)
            .await
            .unwrap_or_else(|e| panic!("fault proxy in front of {upstream}: {e}"))
    }

    /// Starts a proxy listening on `address` in front of `upstream`.
    pub async fn bind(address: SocketAddr, upstream: &str) -> Result<Self, StartError> {
        let upstream_uri: Uri = upstream
            .trim_end_matches('/')
            .parse()
            .map_err(|_| StartError::Upstream(upstream.to_owned()))?;
        if upstream_uri.scheme_str() != Some("http") || upstream_uri.authority().is_none() {
            return Err(StartError::Upstream(upstream.to_owned()));
        }
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let shared = Arc::new(Shared {
            book: Mutex::new(RuleBook::default()),
            upstream: upstream_uri,
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            address,
            shared,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`: the endpoint to give the SDK.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Adds a rule (its window starts now); returns its id.
    pub fn add(&self, rule: Rule) -> u64 {
        self.shared.book().add(rule, Instant::now())
    }

    /// Removes a rule; false when there was none with that id.
    pub fn remove(&self, id: u64) -> bool {
        self.shared.book().remove(id)
    }

    /// Removes every rule: from now on every request is forwarded as it is.
    pub fn clear(&self) {
        self.shared.book().clear();
    }

    /// The rules in force, with their ids.
    pub fn rules(&self) -> Vec<(u64, Rule)> {
        self.shared.book().rules()
    }

    /// What was forwarded and injected so far.
    pub fn stats(&self) -> ProxyStats {
        self.shared.book().stats()
    }

    /// Runs until the accept loop ends (never, unless the task panics): for the binary.
    pub async fn run(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections and serves each on its own task; the tasks are owned here, so they end
/// when this loop is aborted.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(shared.clone(), request)
                    });
                    // Errors here are closed connections: by a rule, or by the client.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One request: a control call, or an AWS call to forward or to fail.
async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Closed> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(Closed::Read)?.to_bytes();
    if parts.uri.path().starts_with(control::PREFIX) {
        return Ok(control::handle(&shared, &parts, &body));
    }
    let target = parts
        .headers
        .get(TARGET)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let fault = shared
        .book()
        .decide(&target, &body, Instant::now(), rand::random::<f64>);
    let service = Service::of_target(&target);
    match fault {
        None => Ok(forward(&shared, parts, body).await),
        Some(Fault::Error { error }) => Ok(error_response(error, service)),
        Some(Fault::Latency { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(forward(&shared, parts, body).await)
        }
        Some(Fault::Hang { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Err(Closed::ByRule)
        }
        Some(Fault::Drop) => Err(Closed::ByRule),
        Some(Fault::DropResponse) => {
            let _applied = forward(&shared, parts, body).await;
            Err(Closed::ByRule)
        }
        Some(Fault::PartialFailure { fraction }) if target.ends_with(".PutRecords") => {
            Ok(partial_put_records(&shared, parts, body, fraction).await)
        }
        Some(Fault::PartialFailure { .. }) => Ok(forward(&shared, parts, body).await),
    }
}

/// A JSON answer with the service's content type.
fn json_response(
    status: StatusCode,
    service: Option<Service>,
    body: String,
) -> Response<Full<Bytes>> {
    let content_type = service.map_or("application/json", Service::content_type);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    response
}

fn error_response(error: AwsError, service: Option<Service>) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(
        status,
        service,
        error.body(service.unwrap_or(Service::DynamoDb)),
    )
}

/// Sends the request to the backend and returns its answer (502 when the backend cannot be
/// reached: a real load balancer's answer, which the SDK retries).
async fn forward(
    shared: &Shared,
    mut parts: hyper::http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut uri = shared.upstream.clone().into_parts();
    uri.path_and_query = path.parse().ok();
    let Ok(uri) = Uri::from_parts(uri) else {
        return json_response(
            StatusCode::BAD_GATEWAY,
            None,
            r#"{"message":"bad path"}"#.into(),
        );
    };
    parts.uri = uri;
    // The body may have been rewritten; hyper sets the length of the one sent.
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(TRANSFER_ENCODING);
    let request = Request::from_parts(parts, Full::new(body));
    let target = request
        .headers()
        .get(TARGET)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let answer = match shared.client.request(request).await {
        Ok(answer) => answer,
        Err(_) => {
            shared.book().upstream_failed(&target);
            return json_response(
                StatusCode::BAD_GATEWAY,
                None,
                r#"{"message":"backend unreachable"}"#.into(),
            );
        }
    };
    let (mut parts, body) = answer.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        shared.book().upstream_failed(&target);
        return json_response(
            StatusCode::BAD_GATEWAY,
            None,
            r#"{"message":"backend answer cut"}"#.into(),
        );
    };
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(TRANSFER_ENCODING);
    Response::from_parts(parts, Full::new(body))
}

/// `PutRecords` with a share of the records refused the way Kinesis refuses them: only the
/// others are forwarded; the answer lists every record in the request's order.
async fn partial_put_records(
    shared: &Shared,
    parts: hyper::http::request::Parts,
    body: Bytes,
    fraction: f64,
) -> Response<Full<Bytes>> {
    let Ok(mut request) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return forward(shared, parts, body).await;
    };
    let Some(records) = request
        .get_mut("Records")
        .and_then(|r| r.as_array_mut())
        .map(std::mem::take)
    else {
        return forward(shared, parts, body).await;
    };
    let refused = refused_indices(records.len(), fraction);
    let (kept, _): (Vec<_>, Vec<_>) = records
        .into_iter()
        .enumerate()
        .partition(|(i, _)| !refused.contains(i));
    let mut results: Vec<serde_json::Value> = Vec::new();
    let mut upstream_failed = 0;
    if !kept.is_empty() {
        request["Records"] = serde_json::Value::Array(kept.into_iter().map(|(_, r)| r).collect());
        let answer = forward(shared, parts, Bytes::from(request.to_string())).await;
        if answer.status() != StatusCode::OK {
            return answer;
        }
        let body = match answer.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return json_response(
                StatusCode::BAD_GATEWAY,
                Some(Service::Kinesis),
                r#"{"message":"backend answer unreadable"}"#.into(),
            );
        };
        upstream_failed = parsed["FailedRecordCount"].as_u64().unwrap_or(0);
        results = parsed["Records"].as_array().cloned().unwrap_or_default();
    }
    let mut upstream = results.into_iter();
    let total = refused.len() + upstream.len();
    let merged: Vec<serde_json::Value> = (0..total)
        .map(|i| {
            if refused.contains(&i) {
                serde_json::json!({
                    "ErrorCode": aws_errors::RECORD_THROTTLED,
                    "ErrorMessage": aws_errors::RECORD_THROTTLED_MESSAGE,
                })
            } else {
                upstream.next().unwrap_or(serde_json::Value::Null)
            }
        })
        .collect();
    let answer = serde_json::json!({
        "FailedRecordCount": upstream_failed + refused.len() as u64,
        "Records": merged,
    });
    json_response(StatusCode::OK, Some(Service::Kinesis), answer.to_string())
}

/// A random choice of `round(fraction × n)` of `n` records (at least one when `fraction` > 0).
fn refused_indices(n: usize, fraction: f64) -> Vec<usize> {
    use rand::seq::index::sample;
    if n == 0 || fraction <= 0.0 {
        return Vec::new();
    }
    let k = ((fraction.min(1.0) * n as f64).round() as usize).clamp(1, n);
    let mut chosen = sample(&mut rand::thread_rng(), n, k).into_vec();
    chosen.sort_unstable();
    chosen
}
