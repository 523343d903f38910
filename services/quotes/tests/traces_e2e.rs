//! One quote request is one trace across every service, with the real binaries as separate
//! processes on the emulators and an OTLP/HTTP receiver in this test process.
//!
//! Every process exports to the receiver (`OTEL_EXPORTER_OTLP_ENDPOINT`, short
//! `OTEL_BSP_SCHEDULE_DELAY` and `OTEL_METRIC_EXPORT_INTERVAL`; the consumers log at `warn` only,
//! which must not matter to traces). One quote is posted with the client's own `traceparent`,
//! followed until the API shows it decided and the notifier has sent, and the processes are
//! stopped with SIGTERM (which flushes their exporters). Then, among the spans of that trace:
//!
//! - spans of event-source, vehicle-enricher, driver-history, fulfillment, projector and
//!   notifier are all there;
//! - the only span whose parent is not in the trace is event-source's server span
//!   `POST /v1/quotes`, and its parent is the client's span (no orphans);
//! - the append of `QuoteRequested` is under the server span;
//! - every consumer's per-record span (`handle <event type>`, kind consumer) is the child of a
//!   span of the service that appended that event (event-source for `QuoteRequested`,
//!   vehicle-enricher for `VehicleDecoded`, …), and the enrichers' and fulfillment's appends are
//!   under their record spans;
//! - the read-model update is under a projector record span, the notification send under a
//!   notifier record span;
//! - the relays' publication spans (kind producer, their own traces) link to the contexts of
//!   the events they sent.
//!
//! Also checked: event-source's JSON log lines carry the trace and span ids, and metrics came
//! over OTLP (`http.server.request.duration` from event-source, consumer lag and dead letters
//! from every consumer service).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::{requests, token, wait_healthy, Fleet, Platform, FINAL, SERVICES};
use serde_json::Value;
use testkit::otlp::{CollectedSpan, OtlpReceiver};

/// The service that appends events of this type.
fn producer_of(event_type: &str) -> &'static str {
    match event_type {
        "QuoteRequested" => "event-source",
        "VehicleDecoded" | "VehicleDecodeFailed" => "vehicle-enricher",
        "DriverHistoryRetrieved" | "DriverHistoryUnavailable" => "driver-history",
        "QuoteIssued" | "QuoteDeclined" | "QuoteReferred" => "fulfillment",
        other => panic!("no service appends {other}"),
    }
}

/// `n` random lower-case hex digits.
fn random_hex(n: usize) -> String {
    let mut hex = String::new();
    while hex.len() < n {
        // unique_name is "<prefix>-<12 hex digits of a v4 UUID>".
        hex.push_str(&testkit::unique_name("x")[2..]);
    }
    hex.truncate(n);
    hex
}

/// The spans of one trace, by id.
struct Trace<'a> {
    spans: Vec<&'a CollectedSpan>,
    by_id: HashMap<&'a str, &'a CollectedSpan>,
}

impl<'a> Trace<'a> {
    fn new(all: &'a [CollectedSpan], trace_id: &str) -> Self {
        let spans: Vec<&CollectedSpan> = all.iter().filter(|s| s.trace_id == trace_id).collect();
        let by_id = spans.iter().map(|s| (s.span_id.as_str(), *s)).collect();
        Self { spans, by_id }
    }

    fn parent(&self, span: &CollectedSpan) -> Option<&'a CollectedSpan> {
        span.parent_span_id
            .as_deref()
            .and_then(|id| self.by_id.get(id).copied())
    }

    /// Whether `ancestor` is above `span`.
    fn is_under(&self, span: &CollectedSpan, ancestor: &CollectedSpan) -> bool {
        let mut current = self.parent(span);
        while let Some(parent) = current {
            if parent.span_id == ancestor.span_id {
                return true;
            }
            current = self.parent(parent);
        }
        false
    }

    fn find(&self, what: &str, pred: impl Fn(&CollectedSpan) -> bool) -> Vec<&'a CollectedSpan> {
        let found: Vec<_> = self.spans.iter().copied().filter(|s| pred(s)).collect();
        assert!(!found.is_empty(), "no {what} span in the trace");
        found
    }

    fn describe(&self) -> String {
        let mut lines: Vec<String> = self
            .spans
            .iter()
            .map(|s| {
                format!(
                    "{:<16} {:<32} {} <- {}",
                    s.service,
                    s.name,
                    s.span_id,
                    s.parent_span_id.as_deref().unwrap_or("-")
                )
            })
            .collect();
        lines.sort();
        lines.join("\n")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_quote_is_one_trace_across_every_service() {
    let started = Instant::now();
    let _sdk = testkit::aws_config().await;
    let receiver = OtlpReceiver::start().await;
    let mut platform = Platform::new();
    for (name, value) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
    ] {
        platform.env.push((name.to_owned(), value.to_owned()));
    }
    platform.bootstrap();
    let command = |name: &str| {
        let mut command = platform.command(name);
        // Each process names itself (`service.name` = its binary).
        command
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("OTEL_RESOURCE_ATTRIBUTES");
        command
    };

    let logs_dir = std::env::temp_dir().join(testkit::unique_name("traces-e2e"));
    std::fs::create_dir_all(&logs_dir).expect("log folder");
    let source_log = logs_dir.join("event-source.jsonl");
    let mut fleet = Fleet::default();
    let source_port = fleet.spawn("event-source".to_owned(), {
        let mut c = command("event-source");
        c.env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .env("RELAY_SWEEP_INTERVAL_MS", "500")
            .env("RELAY_SWEEP_GRACE_MS", "1000")
            .stderr(std::fs::File::create(&source_log).expect("log file"));
        c
    });
    let mut ports = vec![("event-source".to_owned(), source_port)];
    for service in SERVICES {
        let mut c = command(service);
        c.env("LEASE_TABLE", &platform.lease_tables[service])
            .env("WORKER_ID", format!("{service}-0"))
            .env("LEASE_DURATION_MS", "3000")
            .env("VPIC_BASE_URL", "off")
            .env("DRIVER_HISTORY_PROVIDER", "simulated");
        ports.push((service.to_owned(), fleet.spawn(service.to_owned(), c)));
    }
    for (label, port) in &ports {
        wait_healthy(label, *port).await;
    }
    eprintln!("processes healthy after {:?}", started.elapsed());

    // One quote, sent with our own trace context: every span of the request belongs to it.
    let trace_id = random_hex(32);
    let client_span_id = random_hex(16);
    let base = format!("http://127.0.0.1:{source_port}");
    let http = reqwest::Client::new();
    let request = requests(&random_hex(12)).remove(0);
    let reply = http
        .post(format!("{base}/v1/quotes"))
        .bearer_auth(token("agent-e2e", true))
        .header("traceparent", format!("00-{trace_id}-{client_span_id}-01"))
        .json(&request.body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("post");
    assert_eq!(reply.status(), 202);
    let traceresponse = reply
        .headers()
        .get("traceresponse")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        traceresponse.starts_with(&format!("00-{trace_id}-")),
        "traceresponse {traceresponse:?} does not continue our trace"
    );
    let server_span_id = traceresponse[36..52].to_owned();
    let body: Value = reply.json().await.expect("json");
    let quote_id = body["quote_id"].as_str().expect("quote_id").to_owned();

    // Decided, as the API shows it (the projector wrote the read model)...
    let posted = Instant::now();
    let status = loop {
        let quote: Value = http
            .get(format!("{base}/v1/quotes/{quote_id}"))
            .bearer_auth(token("agent-e2e", true))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let status = quote["status"].as_str().unwrap_or_default().to_owned();
        if FINAL.contains(&status.as_str()) {
            break status;
        }
        fleet.assert_running(&[]);
        assert!(
            posted.elapsed() < Duration::from_secs(60),
            "quote {quote_id} not decided: {quote}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("quote {status} {:?} after the request", posted.elapsed());
    let decision = match status.as_str() {
        "quoted" => "QuoteIssued",
        "declined" => "QuoteDeclined",
        _ => "QuoteReferred",
    };
    // ... and every service has handled the events it consumes (its record spans were
    // exported): the projector may still be behind the read model when it folded the decision
    // while handling an earlier event.
    let expected: BTreeSet<(&str, &str)> = [
        ("vehicle-enricher", "QuoteRequested"),
        ("driver-history", "QuoteRequested"),
        ("fulfillment", "VehicleDecoded"),
        ("fulfillment", "DriverHistoryRetrieved"),
        ("projector", "QuoteRequested"),
        ("projector", decision),
        ("notifier", decision),
    ]
    .into_iter()
    .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = receiver.spans();
        let handled: BTreeSet<(&str, &str)> = spans
            .iter()
            .filter(|s| s.trace_id == trace_id && s.kind == "consumer")
            .filter_map(|s| Some((s.service.as_str(), s.attribute("event_type")?)))
            .collect();
        let missing: Vec<_> = expected.difference(&handled).collect();
        if missing.is_empty() {
            break;
        }
        fleet.assert_running(&[]);
        assert!(
            Instant::now() < deadline,
            "record spans never exported: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // ... and every consumer has exported its per-shard lag at least once while running (a
    // periodic export, every OTEL_METRIC_EXPORT_INTERVAL): the last flush on SIGTERM comes after
    // the shards were released, when there is no shard left to report on.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = receiver.metrics();
        let missing: Vec<&str> = SERVICES
            .iter()
            .copied()
            .filter(|service| {
                !metrics.iter().any(|m| {
                    m.service == *service && m.name == "kinesis_consumer.millis_behind_latest"
                })
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        fleet.assert_running(&[]);
        assert!(
            Instant::now() < deadline,
            "no consumer lag exported by {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGTERM: every process flushes its spans and metrics on the way out.
    let ended = tokio::task::spawn_blocking(move || fleet.stop())
        .await
        .expect("stop");
    for (label, status) in &ended {
        assert!(
            status.is_some_and(|s| s.success()),
            "{label} did not stop cleanly on SIGTERM: {status:?}"
        );
    }
    assert!(receiver.rejected().is_empty(), "{:?}", receiver.rejected());
    let all = receiver.spans();
    let trace = Trace::new(&all, &trace_id);
    eprintln!(
        "{} spans received, {} in the quote's trace:\n{}",
        all.len(),
        trace.spans.len(),
        trace.describe()
    );

    // Every service took part.
    let services: BTreeSet<&str> = trace.spans.iter().map(|s| s.service.as_str()).collect();
    for service in ["event-source"].into_iter().chain(SERVICES) {
        assert!(
            services.contains(service),
            "no span of {service} in the trace"
        );
    }

    // One root: the server span, child of the client's span. No other parent is missing.
    let roots: Vec<&CollectedSpan> = trace
        .spans
        .iter()
        .copied()
        .filter(|s| trace.parent(s).is_none())
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "spans whose parent is not in the trace: {roots:#?}"
    );
    let server = roots[0];
    assert_eq!(server.span_id, server_span_id, "{server:#?}");
    assert_eq!(server.service, "event-source");
    assert_eq!(server.name, "POST /v1/quotes");
    assert_eq!(server.kind, "server");
    assert_eq!(
        server.parent_span_id.as_deref(),
        Some(client_span_id.as_str())
    );
    assert_eq!(server.attribute("http.response.status_code"), Some("202"));

    // The append of QuoteRequested is part of the request.
    let appends = trace.find("event-source append", |s| {
        s.service == "event-source" && s.name == "append"
    });
    assert!(appends.iter().all(|a| trace.is_under(a, server)));

    // Each record span is a child of a span of the service that appended its event.
    let records = trace.find("record", |s| s.kind == "consumer");
    let mut handled: BTreeSet<(String, String)> = BTreeSet::new();
    for record in &records {
        let event_type = record
            .attribute("event_type")
            .unwrap_or_else(|| panic!("record span without event_type: {record:#?}"));
        assert_eq!(record.name, format!("handle {event_type}"));
        let parent = trace.parent(record).expect("checked: no orphans");
        assert_eq!(
            parent.service,
            producer_of(event_type),
            "{}'s span for {event_type} is the child of {parent:#?}",
            record.service
        );
        handled.insert((record.service.clone(), event_type.to_owned()));
    }
    for (service, event_type) in &expected {
        assert!(
            handled.contains(&(service.to_string(), event_type.to_string())),
            "no {service} span for {event_type}; handled: {handled:?}"
        );
    }
    // The events handlers append are appended inside their record spans.
    for service in ["vehicle-enricher", "driver-history", "fulfillment"] {
        let appends = trace.find(&format!("{service} append"), |s| {
            s.service == service && s.name == "append"
        });
        for append in appends {
            assert!(
                records
                    .iter()
                    .any(|r| r.service == service && trace.is_under(append, r)),
                "{service}'s append is outside its record spans"
            );
        }
    }
    // The read-model update and the notification, under their record spans.
    for (service, name) in [
        ("projector", "update read model"),
        ("notifier", "deliver"),
        ("notifier", "ses.send_email"),
    ] {
        for span in trace.find(&format!("{service} {name}"), |s| {
            s.service == service && s.name == name
        }) {
            assert!(
                records
                    .iter()
                    .any(|r| r.service == service && trace.is_under(span, r)),
                "{service}'s {name} span is outside its record spans"
            );
        }
    }

    // The publications: producer spans of their own traces, linked to the events' contexts
    // (the spans that appended them). Usually the appending service's relay sends the event,
    // but any relay that publishes a stream sends its whole unpublished range (ADR 0002), so
    // the event may go out in another process's call: any producer span may carry the link.
    for (appended_in, event_type) in [
        ("event-source", "QuoteRequested"),
        ("vehicle-enricher", "VehicleDecoded"),
        ("fulfillment", decision),
    ] {
        let appended_by = records
            .iter()
            .find(|r| r.attribute("event_type") == Some(event_type))
            .and_then(|r| trace.parent(r))
            .expect("checked above");
        let link = (trace_id.clone(), appended_by.span_id.clone());
        let publication = all
            .iter()
            .find(|s| s.kind == "producer" && s.links.contains(&link))
            .unwrap_or_else(|| {
                panic!("no publication span links to {event_type} (appended in {appended_in}): {link:?}")
            });
        assert_ne!(publication.trace_id, trace_id, "a link, not a parent");
        assert!(publication.name.starts_with("send "), "{publication:#?}");
    }

    // JSON logs carry the ids: the request's log line names the server span.
    let logs = std::fs::read_to_string(&source_log).expect("event-source log");
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["trace_id"] == trace_id.as_str() && l["span_id"] == server.span_id.as_str()),
        "no JSON log line of event-source carries trace {trace_id} and span {}:\n{logs}",
        server.span_id
    );
    let _ = std::fs::remove_dir_all(&logs_dir);

    // Metrics came over OTLP too.
    let metrics = receiver.metrics();
    let duration = metrics
        .iter()
        .filter(|m| m.service == "event-source" && m.name == "http.server.request.duration")
        .collect::<Vec<_>>();
    assert!(
        duration.iter().any(|m| {
            m.unit == "s"
                && m.kind == "histogram"
                && m.points.iter().any(|(a, count)| {
                    *count >= 1.0
                        && a.get("http.request.method").map(String::as_str) == Some("POST")
                        && a.get("http.route").map(String::as_str) == Some("/v1/quotes")
                        && a.get("http.response.status_code").map(String::as_str) == Some("202")
                })
        }),
        "no http.server.request.duration for POST /v1/quotes 202: {duration:#?}"
    );
    for service in SERVICES {
        for (name, unit) in [
            ("kinesis_consumer.millis_behind_latest", "ms"),
            ("kinesis_consumer.dead_lettered", "{record}"),
        ] {
            assert!(
                metrics
                    .iter()
                    .any(|m| m.service == service && m.name == name && m.unit == unit),
                "{service} exported no {name} ({unit})"
            );
        }
    }
    eprintln!("done in {:?}", started.elapsed());
}
