//! Logs and traces.
//!
//! - Logs: `tracing` with `RUST_LOG` filtering (default `info`), human-readable on a terminal
//!   and JSON lines when `LOG_FORMAT=json` (containers).
//! - Traces: every `tracing` span is also an OpenTelemetry span. When
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set they are exported over OTLP/HTTP (protobuf) in batches;
//!   the exporter honours the standard `OTEL_*` variables (`OTEL_SERVICE_NAME`,
//!   `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_RESOURCE_ATTRIBUTES`, …).
//! - Metrics: with the same endpoint, instruments registered on the global meter provider
//!   (e.g. the consumer library's lease and lag gauges) are exported every
//!   `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s).
//! - Context: W3C trace context (`traceparent`/`tracestate`) is read from incoming requests and
//!   events ([`set_parent`]) and written into outgoing events ([`current_trace_context`]).

use std::collections::HashMap;

pub use opentelemetry::propagation::Extractor;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Flushes buffered spans and metrics when dropped (keep it alive for the life of `main`).
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
    meters: Option<SdkMeterProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown() {
            eprintln!("telemetry: flushing spans failed: {err}");
        }
        if let Some(meters) = &self.meters {
            if let Err(err) = meters.shutdown() {
                eprintln!("telemetry: flushing metrics failed: {err}");
            }
        }
    }
}

/// Installs logging and tracing for the process `service`.
pub fn init(service: &str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service.to_owned());
    }
    let resource = resource.build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource.clone());
    let endpoint = crate::env::optional("OTEL_EXPORTER_OTLP_ENDPOINT");
    let mut exporter_error = None;
    let mut meters = None;
    if endpoint.is_some() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(err) => exporter_error = Some(err.to_string()),
        }
        match opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => {
                let provider = SdkMeterProvider::builder()
                    .with_reader(PeriodicReader::builder(exporter).build())
                    .with_resource(resource)
                    .build();
                opentelemetry::global::set_meter_provider(provider.clone());
                meters = Some(provider);
            }
            Err(err) => exporter_error = Some(err.to_string()),
        }
    }
    let provider = builder.build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service.to_owned()));
    let logs = if json {
        fmt::layer().json().with_current_span(true).boxed()
    } else {
        fmt::layer().boxed()
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(otel)
        .try_init()
        .is_ok();
    if installed {
        match (&endpoint, exporter_error) {
            (Some(endpoint), None) => {
                tracing::info!(service, %endpoint, "exporting traces over OTLP")
            }
            (Some(_), Some(err)) => {
                tracing::warn!(service, error = %err, "OTLP exporter not started")
            }
            (None, _) => tracing::debug!(
                service,
                "OTEL_EXPORTER_OTLP_ENDPOINT unset: traces not exported"
            ),
        }
    }
    TelemetryGuard { provider, meters }
}

/// The current span's W3C trace context as (`traceparent`, `tracestate`), when tracing is on.
pub fn current_trace_context() -> Option<(String, Option<String>)> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    let traceparent = carrier.remove("traceparent")?;
    let tracestate = carrier.remove("tracestate").filter(|s| !s.is_empty());
    Some((traceparent, tracestate))
}

/// Makes `span` a child of the trace context found in `carrier` (HTTP headers, an event).
pub fn set_parent(span: &tracing::Span, carrier: &dyn Extractor) {
    let parent = TraceContextPropagator::new().extract(carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Reads trace context from HTTP headers.
#[derive(Debug)]
pub struct HeaderCarrier<'a>(pub &'a http_headers::HeaderMap);

/// The `http` crate's header map, re-exported for [`HeaderCarrier`].
pub mod http_headers {
    pub use http::HeaderMap;
}

impl Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
