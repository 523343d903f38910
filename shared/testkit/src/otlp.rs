//! An OTLP/HTTP receiver running inside the test process: point a process at it with
//! `OTEL_EXPORTER_OTLP_ENDPOINT=<endpoint>` and read back the spans and metrics it exported.
//!
//! It accepts `POST /v1/traces` and `POST /v1/metrics` with protobuf bodies
//! (`ExportTraceServiceRequest`, `ExportMetricsServiceRequest`: what the OpenTelemetry SDK's
//! `http/protobuf` exporter sends) and keeps them flattened: ids as lower-case hex, attributes
//! as strings, the resource's `service.name` on every item.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

/// One exported span.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectedSpan {
    /// `service.name` of the exporting process.
    pub service: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// The span's name (`otel.name` when the `tracing` span set one).
    pub name: String,
    /// `internal`, `server`, `client`, `producer`, `consumer` or `unspecified`.
    pub kind: &'static str,
    /// Attributes, values rendered as strings.
    pub attributes: BTreeMap<String, String>,
    /// Links as (trace id, span id).
    pub links: Vec<(String, String)>,
    /// Whether the span's status is an error.
    pub error: bool,
}

impl CollectedSpan {
    /// An attribute's value.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// One exported metric (all its data points of one export).
#[derive(Debug, Clone, PartialEq)]
pub struct CollectedMetric {
    /// `service.name` of the exporting process.
    pub service: String,
    /// Instrument name.
    pub name: String,
    /// Unit (`s`, `ms`, `By`, `{record}`, …).
    pub unit: String,
    /// `gauge`, `sum`, `histogram` or `other`.
    pub kind: &'static str,
    /// Per data point: its attributes and its value (the count for a histogram).
    pub points: Vec<(BTreeMap<String, String>, f64)>,
}

#[derive(Debug, Default)]
struct Collected {
    spans: Vec<CollectedSpan>,
    metrics: Vec<CollectedMetric>,
    rejected: Vec<String>,
}

type Shared = Arc<Mutex<Collected>>;

/// The receiver; stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    endpoint: String,
    collected: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    /// Starts a receiver on a free loopback port (inside a Tokio runtime).
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let collected = Shared::default();
        let app = axum::Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .with_state(collected.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            endpoint,
            collected,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`: the value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<CollectedSpan> {
        self.lock().spans.clone()
    }

    /// Every metric received so far (one entry per metric per export).
    pub fn metrics(&self) -> Vec<CollectedMetric> {
        self.lock().metrics.clone()
    }

    /// Bodies that did not decode (a test should expect none).
    pub fn rejected(&self) -> Vec<String> {
        self.lock().rejected.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Collected> {
        self.collected.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the OTLP/HTTP exporter expects back: 200 and an empty protobuf message.
fn accepted() -> (StatusCode, [(header::HeaderName, &'static str); 1]) {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
    )
}

async fn traces(
    State(collected): State<Shared>,
    body: Bytes,
) -> Result<impl axum::response::IntoResponse, StatusCode> {
    let mut collected = collected.lock().unwrap_or_else(|p| p.into_inner());
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(request) => request,
        Err(err) => {
            collected.rejected.push(format!("/v1/traces: {err}"));
            return Err(StatusCode::BAD_REQUEST);
        }
    };
    for resource_spans in request.resource_spans {
        let service = service_name(resource_spans.resource.as_ref());
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let error = span.status.as_ref().is_some_and(|s| s.code == 2);
                collected.spans.push(CollectedSpan {
                    service: service.clone(),
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex::encode(&span.parent_span_id)),
                    name: span.name,
                    kind: match span.kind {
                        1 => "internal",
                        2 => "server",
                        3 => "client",
                        4 => "producer",
                        5 => "consumer",
                        _ => "unspecified",
                    },
                    attributes: attributes(&span.attributes),
                    links: span
                        .links
                        .iter()
                        .map(|l| (hex::encode(&l.trace_id), hex::encode(&l.span_id)))
                        .collect(),
                    error,
                });
            }
        }
    }
    Ok(accepted())
}

async fn metrics(
    State(collected): State<Shared>,
    body: Bytes,
) -> Result<impl axum::response::IntoResponse, StatusCode> {
    let mut collected = collected.lock().unwrap_or_else(|p| p.into_inner());
    let request = match ExportMetricsServiceRequest::decode(body) {
        Ok(request) => request,
        Err(err) => {
            collected.rejected.push(format!("/v1/metrics: {err}"));
            return Err(StatusCode::BAD_REQUEST);
        }
    };
    for resource_metrics in request.resource_metrics {
        let service = service_name(resource_metrics.resource.as_ref());
        for scope in resource_metrics.scope_metrics {
            for metric in scope.metrics {
                let (kind, points) = match &metric.data {
                    Some(Data::Gauge(gauge)) => ("gauge", number_points(&gauge.data_points)),
                    Some(Data::Sum(sum)) => ("sum", number_points(&sum.data_points)),
                    Some(Data::Histogram(histogram)) => (
                        "histogram",
                        histogram
                            .data_points
                            .iter()
                            .map(|p| (attributes(&p.attributes), p.count as f64))
                            .collect(),
                    ),
                    _ => ("other", Vec::new()),
                };
                collected.metrics.push(CollectedMetric {
                    service: service.clone(),
                    name: metric.name,
                    unit: metric.unit,
                    kind,
                    points,
                });
            }
        }
    }
    Ok(accepted())
}

fn number_points(
    points: &[opentelemetry_proto::tonic::metrics::v1::NumberDataPoint],
) -> Vec<(BTreeMap<String, String>, f64)> {
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
    points
        .iter()
        .map(|p| {
            let value = match p.value {
                Some(Value::AsDouble(v)) => v,
                Some(Value::AsInt(v)) => v as f64,
                None => f64::NAN,
            };
            (attributes(&p.attributes), value)
        })
        .collect()
}

fn service_name(resource: Option<&Resource>) -> String {
    resource
        .map(|r| attributes(&r.attributes))
        .and_then(|mut a| a.remove("service.name"))
        .unwrap_or_default()
}

fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect()
}
