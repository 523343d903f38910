//! Logs, traces and metrics.
//!
//! - Logs: `tracing` events on stderr (stdout is left to a command's output), filtered by
//!   [`LogConfig::filter`] (`RUST_LOG`), human-readable text (coloured only when stderr is a
//!   terminal) or JSON lines ([`LogFormat::Json`], `LOG_FORMAT=json`, for containers). A JSON
//!   line emitted inside a span carries that span's OpenTelemetry ids as `trace_id` and
//!   `span_id` (lower-case hex), so a log search by trace id finds every line of one quote
//!   request in every service.
//! - Traces: every `tracing` span the traces filter lets through ([`LogConfig::traces_filter`],
//!   `TRACES_FILTER`, same syntax, `info` by default) is also an OpenTelemetry span, whatever the
//!   log filter says: the log level never breaks a trace. Exported over OTLP/HTTP (protobuf) in batches when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//! - Metrics: instruments on the global meter provider (HTTP server latency, the consumer
//!   library's lag, dead letters, leases) are exported over OTLP/HTTP every
//!   `OTEL_METRIC_EXPORT_INTERVAL` ms (default 60 000) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`) is set.
//! - Context: W3C trace context (`traceparent`/`tracestate`) is read from incoming requests and
//!   events ([`set_parent`], [`add_link`]) and written into outgoing events
//!   ([`current_trace_context`]).
//!
//! The standard variables are honoured: by the OpenTelemetry SDK and OTLP exporter themselves
//! (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}`
//! `ENDPOINT`/`HEADERS`/`TIMEOUT`, `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`,
//! `OTEL_BSP_*`, `OTEL_SPAN_*_COUNT_LIMIT`, `OTEL_METRIC_EXPORT_INTERVAL`,
//! `OTEL_METRIC_EXPORT_TIMEOUT`), and here (`OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER` and
//! `OTEL_METRICS_EXPORTER` = `none`|`otlp`). The only protocol is `http/protobuf`.

use std::collections::HashMap;

pub use opentelemetry::propagation::Extractor;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the active span's trace and span ids.
    Json,
}

/// What is logged, and how (the `quotes` binary's `LOG_FORMAT`, `RUST_LOG`, `TRACES_FILTER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Text or JSON lines.
    pub format: LogFormat,
    /// Which events are logged (`RUST_LOG` syntax).
    pub filter: String,
    /// Which spans become OpenTelemetry spans (`RUST_LOG` syntax).
    pub traces_filter: String,
}

impl Default for LogConfig {
    /// Text lines at `info`, spans at `info`.
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
            traces_filter: "info".to_owned(),
        }
    }
}

impl LogConfig {
    /// The defaults, with the filter `RUST_LOG` names when set (tools outside the `quotes`
    /// binary: the consumer library's probe and examples, tests).
    pub fn from_rust_log() -> Self {
        Self {
            filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            ..Self::default()
        }
    }

    /// The filter, or `default` when it does not parse (the binary validates it first).
    fn env_filter(filter: &str, default: &str) -> EnvFilter {
        EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(default))
    }
}

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

/// What to export, decided from the standard `OTEL_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExportPlan {
    traces: bool,
    metrics: bool,
    /// Variables set to values this build does not support (logged at start-up).
    unsupported: Vec<String>,
}

impl ExportPlan {
    fn from_env(var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let mut unsupported = Vec::new();
        let mut wanted = |exporter_var: &str, endpoint_var: &str| {
            let exporter = var(exporter_var).unwrap_or_else(|| "otlp".to_owned());
            let exporter_ok = match exporter.to_ascii_lowercase().as_str() {
                "otlp" => true,
                "none" => false,
                other => {
                    unsupported.push(format!("{exporter_var}={other} (only otlp or none)"));
                    false
                }
            };
            let endpoint =
                var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || var(endpoint_var).is_some();
            !disabled && exporter_ok && endpoint
        };
        let traces = wanted("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let metrics = wanted(
            "OTEL_METRICS_EXPORTER",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        );
        for name in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        ] {
            if let Some(protocol) = var(name).filter(|p| p != "http/protobuf") {
                unsupported.push(format!("{name}={protocol} (only http/protobuf)"));
            }
        }
        Self {
            traces,
            metrics,
            unsupported,
        }
    }
}

/// Whether the resource needs `service` as its name: neither `OTEL_SERVICE_NAME` nor a
/// `service.name` in `OTEL_RESOURCE_ATTRIBUTES` names the service.
fn needs_service_name(var: impl Fn(&str) -> Option<String>) -> bool {
    let named = var("OTEL_SERVICE_NAME").is_some_and(|v| !v.trim().is_empty());
    let in_attributes = var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attributes| {
        attributes
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .any(|(key, value)| key.trim() == "service.name" && !value.trim().is_empty())
    });
    !named && !in_attributes
}

/// Installs logs only (no traces, no metrics): for the operations commands.
pub fn init_logs(config: &LogConfig) {
    let filter = LogConfig::env_filter(&config.filter, "warn");
    // A subscriber may already be installed (tests); keep it then.
    let _ = match config.format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(json_layer(std::io::stderr).with_filter(filter))
            .try_init(),
        LogFormat::Text => tracing_subscriber::registry()
            .with(text_layer().with_filter(filter))
            .try_init(),
    };
}

/// Human-readable lines on stderr, coloured only when stderr is a terminal.
fn text_layer<S>() -> fmt::Layer<S, fmt::format::DefaultFields, Format, fn() -> std::io::Stderr>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use std::io::IsTerminal;
    fmt::layer()
        .with_writer(std::io::stderr as fn() -> std::io::Stderr)
        .with_ansi(std::io::stderr().is_terminal())
}

/// Installs logging, tracing and metrics for the process `service`. What is exported is
/// decided by the OpenTelemetry SDK's standard variables (see the module documentation).
pub fn init(service: &str, config: &LogConfig) -> TelemetryGuard {
    let env = |name: &str| std::env::var(name).ok();
    let plan = ExportPlan::from_env(env);
    let json = config.format == LogFormat::Json;
    let mut resource = Resource::builder();
    if needs_service_name(env) {
        resource = resource.with_service_name(service.to_owned());
    }
    let resource = resource.build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource.clone());
    let mut exporter_errors = Vec::new();
    let mut meters = None;
    if plan.traces {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(err) => exporter_errors.push(format!("spans: {err}")),
        }
    }
    if plan.metrics {
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
            Err(err) => exporter_errors.push(format!("metrics: {err}")),
        }
    }
    let provider = builder.build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let log_filter = LogConfig::env_filter(&config.filter, "info");
    let trace_filter = LogConfig::env_filter(&config.traces_filter, "info");
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service.to_owned()))
        .with_filter(trace_filter);
    let logs = if json {
        json_layer(std::io::stderr).with_filter(log_filter).boxed()
    } else {
        text_layer().with_filter(log_filter).boxed()
    };
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .try_init()
        .is_ok();
    if installed {
        for problem in &plan.unsupported {
            tracing::warn!(service, %problem, "unsupported OpenTelemetry setting ignored");
        }
        for error in &exporter_errors {
            tracing::warn!(service, %error, "OTLP exporter not started");
        }
        if plan.traces || plan.metrics {
            tracing::info!(
                service,
                traces = plan.traces,
                metrics = plan.metrics,
                "exporting over OTLP/HTTP"
            );
        } else {
            tracing::debug!(service, "OTLP export off (no OTEL_EXPORTER_OTLP_ENDPOINT)");
        }
    }
    TelemetryGuard { provider, meters }
}

/// JSON lines (with the current span and the span list) carrying `trace_id` and `span_id`.
pub fn json_layer<S, W>(writer: W) -> fmt::Layer<S, JsonFields, WithTraceIds<Format<Json>>, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fmt::layer()
        .json()
        .with_current_span(true)
        .with_writer(writer)
        .map_event_format(WithTraceIds)
}

/// Wraps a JSON event format: lines emitted while an OpenTelemetry span is active start with
/// its `"trace_id"` and `"span_id"` (hex, as in `traceparent`).
///
/// The active span is the innermost entered span the trace filter let through (the OpenTelemetry
/// layer makes it the current OpenTelemetry context when entered).
#[derive(Debug, Clone)]
pub struct WithTraceIds<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let context = opentelemetry::Context::current();
        let span = context.span();
        let ids = span.span_context();
        if !ids.is_valid() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => {
                let separator = if rest.starts_with('}') { "" } else { "," };
                write!(
                    writer,
                    "{{\"trace_id\":\"{}\",\"span_id\":\"{}\"{separator}{rest}",
                    ids.trace_id(),
                    ids.span_id()
                )
            }
            None => writer.write_str(&line),
        }
    }
}

/// The OpenTelemetry context of the current span: the `tracing` span's own, or (when that span
/// was filtered out of tracing) the innermost active one.
fn current_context() -> opentelemetry::Context {
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        context
    } else {
        opentelemetry::Context::current()
    }
}

/// The current span's W3C trace context as (`traceparent`, `tracestate`), when tracing is on.
pub fn current_trace_context() -> Option<(String, Option<String>)> {
    let context = current_context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    let traceparent = carrier.remove("traceparent")?;
    let tracestate = carrier.remove("tracestate").filter(|s| !s.is_empty());
    Some((traceparent, tracestate))
}

/// The span context found in `carrier`, if valid.
fn extract(carrier: &dyn Extractor) -> Option<SpanContext> {
    let context = TraceContextPropagator::new().extract(carrier);
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// Makes `span` a child of the trace context found in `carrier` (HTTP headers, an event).
/// Call it before the span is first entered.
pub fn set_parent(span: &tracing::Span, carrier: &dyn Extractor) {
    let parent = TraceContextPropagator::new().extract(carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Links `span` to the trace context found in `carrier`: for a span that works on behalf of
/// several traces at once (a batch), which cannot be the child of each. Returns whether the
/// carrier held a valid context.
pub fn add_link(span: &tracing::Span, carrier: &dyn Extractor) -> bool {
    match extract(carrier) {
        Some(context) => {
            span.add_link(context);
            true
        }
        None => false,
    }
}

/// The trace id of the current span (32 hex digits), when tracing is on.
pub fn current_trace_id() -> Option<String> {
    let context = current_context();
    let span = context.span();
    let ids = span.span_context();
    ids.is_valid().then(|| ids.trace_id().to_string())
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

/// Trace context stored as two strings (e.g. the `traceparent` and `tracestate` of an event).
#[derive(Debug, Clone, Copy)]
pub struct TraceContextCarrier<'a> {
    /// `00-<trace id>-<span id>-<flags>`.
    pub traceparent: Option<&'a str>,
    /// Vendor trace state.
    pub tracestate: Option<&'a str>,
}

impl Extractor for TraceContextCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent,
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// One observable counter read from an atomic field of a shared stats struct: name, description,
/// unit, and the field.
pub type ObservedCounter<T> = (
    &'static str,
    &'static str,
    &'static str,
    fn(&T) -> &std::sync::atomic::AtomicU64,
);

/// Registers each counter as an OpenTelemetry observable counter on `meter`, read from `stats`
/// with `attributes` at every export.
pub fn observe_counters<T: Send + Sync + 'static>(
    meter: &opentelemetry::metrics::Meter,
    stats: &std::sync::Arc<T>,
    attributes: &[opentelemetry::KeyValue],
    counters: &[ObservedCounter<T>],
) {
    observe(meter, stats, attributes, counters, Instrument::Counter);
}

/// Registers each field as an OpenTelemetry observable gauge on `meter` (a level, not a
/// count: the value read at every export), read from `stats` with `attributes`.
pub fn observe_gauges<T: Send + Sync + 'static>(
    meter: &opentelemetry::metrics::Meter,
    stats: &std::sync::Arc<T>,
    attributes: &[opentelemetry::KeyValue],
    gauges: &[ObservedCounter<T>],
) {
    observe(meter, stats, attributes, gauges, Instrument::Gauge);
}

/// Which observable instrument a field is exported as.
#[derive(Debug, Clone, Copy)]
enum Instrument {
    Counter,
    Gauge,
}

fn observe<T: Send + Sync + 'static>(
    meter: &opentelemetry::metrics::Meter,
    stats: &std::sync::Arc<T>,
    attributes: &[opentelemetry::KeyValue],
    fields: &[ObservedCounter<T>],
    instrument: Instrument,
) {
    for &(name, description, unit, field) in fields {
        let stats = std::sync::Arc::clone(stats);
        let attributes = attributes.to_vec();
        let read = move |observer: &dyn opentelemetry::metrics::AsyncInstrument<u64>| {
            observer.observe(
                field(&stats).load(std::sync::atomic::Ordering::Relaxed),
                &attributes,
            )
        };
        match instrument {
            Instrument::Counter => {
                meter
                    .u64_observable_counter(name)
                    .with_description(description)
                    .with_unit(unit)
                    .with_callback(read)
                    .build();
            }
            Instrument::Gauge => {
                meter
                    .u64_observable_gauge(name)
                    .with_description(description)
                    .with_unit(unit)
                    .with_callback(read)
                    .build();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what a layer writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
            String::from_utf8(bytes)
                .expect("utf-8")
                .lines()
                .map(|line| serde_json::from_str(line).expect("a JSON line"))
                .collect()
        }
    }

    /// The subscriber `init` installs, with the given filters, JSON logs into `buffer` and no
    /// exporter.
    fn subscriber(
        log_filter: &str,
        trace_filter: &str,
        buffer: Buffer,
    ) -> (impl Subscriber + Send + Sync, SdkTracerProvider) {
        let provider = SdkTracerProvider::builder().build();
        let otel = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_filter(EnvFilter::new(trace_filter));
        let logs = json_layer(buffer).with_filter(EnvFilter::new(log_filter));
        (
            tracing_subscriber::registry().with(logs).with(otel),
            provider,
        )
    }

    #[test]
    fn json_lines_inside_a_span_carry_its_trace_and_span_ids() {
        let buffer = Buffer::default();
        let (subscriber, _provider) = subscriber("info", "info", buffer.clone());
        let (expected, child_expected) = tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside any span");
            let span = tracing::info_span!("outer", quote_id = "q-1");
            let _entered = span.enter();
            let context = span.context();
            let ids = context.span().span_context().clone();
            tracing::info!(answer = 42, "inside");
            let child = tracing::info_span!("inner");
            let child_ids = child.context().span().span_context().clone();
            child.in_scope(|| tracing::warn!("deeper"));
            (ids, child_ids)
        });
        let lines = buffer.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].get("trace_id").is_none(), "{}", lines[0]);
        assert!(lines[0].get("span_id").is_none(), "{}", lines[0]);
        assert_eq!(lines[1]["trace_id"], expected.trace_id().to_string());
        assert_eq!(lines[1]["span_id"], expected.span_id().to_string());
        assert_eq!(lines[1]["fields"]["answer"], 42);
        assert_eq!(lines[1]["span"]["quote_id"], "q-1");
        assert_eq!(lines[2]["trace_id"], expected.trace_id().to_string());
        assert_eq!(lines[2]["span_id"], child_expected.span_id().to_string());
        let hex = |v: &serde_json::Value, n: usize| {
            v.as_str().is_some_and(|s| {
                s.len() == n
                    && s.bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
            })
        };
        assert!(hex(&lines[1]["trace_id"], 32) && hex(&lines[1]["span_id"], 16));
    }

    #[test]
    fn spans_are_traced_whatever_the_log_level() {
        let buffer = Buffer::default();
        let (subscriber, _provider) = subscriber("warn,chatty=debug", "info", buffer.clone());
        let (traced, debug_span_context) = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request");
            let traced = span.in_scope(current_trace_context);
            // A span logs see but traces do not: the context is the enclosing span's.
            let inner = span.in_scope(|| {
                tracing::debug_span!(target: "chatty", "detail").in_scope(|| {
                    tracing::warn!("logged");
                    current_trace_context()
                })
            });
            (traced, inner)
        });
        let (traceparent, _) = traced.expect("a trace context although RUST_LOG=warn");
        assert_eq!(
            debug_span_context.map(|(p, _)| p),
            Some(traceparent.clone())
        );
        let lines = buffer.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["trace_id"], traceparent[3..35]);
        assert_eq!(lines[0]["span_id"], traceparent[36..52]);
        assert_eq!(lines[0]["span"]["name"], "detail");
    }

    #[test]
    fn set_parent_and_add_link_read_w3c_context() {
        let (subscriber, _provider) = subscriber("off", "info", Buffer::default());
        tracing::subscriber::with_default(subscriber, || {
            let parent = TraceContextCarrier {
                traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                tracestate: Some("vendor=1"),
            };
            let span = tracing::info_span!("child");
            set_parent(&span, &parent);
            let (traceparent, tracestate) =
                span.in_scope(current_trace_context).expect("trace context");
            assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
            assert!(!traceparent.contains("00f067aa0ba902b7"));
            assert_eq!(tracestate.as_deref(), Some("vendor=1"));
            assert_eq!(
                span.in_scope(current_trace_id).as_deref(),
                Some("4bf92f3577b34da6a3ce929d0e0e4736")
            );

            let batch = tracing::info_span!("batch");
            assert!(add_link(&batch, &parent));
            assert!(!add_link(
                &batch,
                &TraceContextCarrier {
                    traceparent: Some("garbage"),
                    tracestate: None
                }
            ));
            let own = batch.in_scope(current_trace_id).expect("trace id");
            assert_ne!(
                own, "4bf92f3577b34da6a3ce929d0e0e4736",
                "a link, not a parent"
            );
        });
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn export_follows_the_standard_variables() {
        let plan = |pairs: &[(&str, &str)]| ExportPlan::from_env(vars(pairs));
        assert_eq!(
            plan(&[]),
            ExportPlan {
                traces: false,
                metrics: false,
                unsupported: vec![]
            }
        );
        let both = plan(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]);
        assert!(both.traces && both.metrics && both.unsupported.is_empty());
        let traces_only = plan(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces")]);
        assert!(traces_only.traces && !traces_only.metrics);
        let no_metrics = plan(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ]);
        assert!(no_metrics.traces && !no_metrics.metrics);
        let disabled = plan(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert!(!disabled.traces && !disabled.metrics);
        let grpc = plan(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
        ]);
        assert!(!grpc.traces && grpc.metrics);
        assert_eq!(grpc.unsupported.len(), 2, "{:?}", grpc.unsupported);
    }

    #[test]
    fn the_service_name_defaults_to_the_binary_unless_configured() {
        assert!(needs_service_name(vars(&[])));
        assert!(!needs_service_name(vars(&[("OTEL_SERVICE_NAME", "api")])));
        assert!(!needs_service_name(vars(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=dev, service.name=api"
        )])));
        assert!(needs_service_name(vars(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.namespace=quotes"
        )])));
    }
}
