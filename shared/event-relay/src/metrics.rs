//! Counters of a relay: readable by tests and the benchmarks, and exported as OpenTelemetry
//! metrics (observable instruments on the global meter provider, exported over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set; the collector writes them to CloudWatch).
//!
//! | instrument | kind | unit | meaning |
//! | --- | --- | --- | --- |
//! | `event_relay.published` | counter | `{record}` | records acknowledged by the target |
//! | `event_relay.retried` | counter | `{record}` | records refused or in a failed call, retried |
//! | `event_relay.dead_lettered` | counter | `{record}` | records set aside as never publishable (alarmed) |
//! | `event_relay.sweeps_failed` | counter | `{sweep}` | sweeps that left streams unpublished or could not read the outbox (alarmed) |
//! | `event_relay.streams_deferred` | counter | `{stream}` | streams backed off after a failed sweep |
//! | `event_relay.sweep_claims_lost` | counter | `{stream}` | swept streams left to the process that claimed them first |
//! | `event_relay.hints_dropped` | counter | `{hint}` | hints dropped on a full queue (the sweep covers them) |
//! | `event_relay.handoffs_waited` | counter | `{stream}` | hinted streams parked while an earlier commit's relay published it ([`crate::handoff`]) |
//! | `event_relay.handoffs_taken_over` | counter | `{stream}` | hinted streams whose earlier unpublished commits this relay published itself (their relay gone or slow) |
//! | `event_relay.outbox_oldest_age` | gauge | `s` | age of the oldest commit not yet published, measured every 30 s (alarmed) |
//! | `event_relay.outbox_streams` | gauge | `{stream}` | streams with commits not yet published |
//!
//! Every instrument carries the attribute `application` (the service running the relay).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry::KeyValue;

/// Counters of the relay's work.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Records acknowledged by the sink.
    pub published: AtomicU64,
    /// Records the sink refused or calls that failed, retried.
    pub retried: AtomicU64,
    /// Hints dropped because the queue was full (the sweep publishes their events).
    pub hints_dropped: AtomicU64,
    /// Batches left to the sweep after `max_failed_rounds`.
    pub deferred: AtomicU64,
    /// Sweeps that found work.
    pub sweeps_with_work: AtomicU64,
    /// Records set aside because the target can never accept them.
    pub dead_lettered: AtomicU64,
    /// Sweeps that failed: the outbox could not be read, or streams stayed unpublished.
    pub sweeps_failed: AtomicU64,
    /// Streams whose publication was deferred (backed off) after a failed sweep.
    pub streams_deferred: AtomicU64,
    /// Swept streams another process claimed first (it publishes them; this one skips them).
    pub sweep_claims_lost: AtomicU64,
    /// Hinted streams parked while an earlier commit's relay published it.
    pub handoffs_waited: AtomicU64,
    /// Hinted streams whose earlier unpublished commits this relay published itself.
    pub handoffs_taken_over: AtomicU64,
    /// Seconds the oldest unpublished commit had waited at the last outbox probe.
    pub outbox_oldest_age_secs: AtomicU64,
    /// Streams with unpublished commits at the last outbox probe.
    pub outbox_streams: AtomicU64,
}

impl RelayStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Keeps the outbox probe's measure for the gauges.
    pub(crate) fn record_outbox(&self, status: &crate::outbox::OutboxStatus) {
        self.outbox_oldest_age_secs
            .store(status.oldest_age_secs(), Ordering::Relaxed);
        self.outbox_streams.store(status.streams, Ordering::Relaxed);
    }

    /// The current value of a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Registers the counters as OpenTelemetry observable counters on the global meter provider
    /// (a no-op provider unless telemetry installed one), with `application` as attribute.
    pub fn export_to_opentelemetry(self: &Arc<Self>, application: &str) {
        let meter = opentelemetry::global::meter("event-relay");
        let attributes = vec![KeyValue::new("application", application.to_owned())];
        let counters: [quote_runtime::telemetry::ObservedCounter<Self>; 9] = [
            (
                "event_relay.published",
                "Records acknowledged by the publication target",
                "{record}",
                |s| &s.published,
            ),
            (
                "event_relay.retried",
                "Records refused or in a failed call, retried",
                "{record}",
                |s| &s.retried,
            ),
            (
                "event_relay.dead_lettered",
                "Records set aside because the target can never accept them",
                "{record}",
                |s| &s.dead_lettered,
            ),
            (
                "event_relay.sweeps_failed",
                "Outbox sweeps that left streams unpublished or could not read the outbox",
                "{sweep}",
                |s| &s.sweeps_failed,
            ),
            (
                "event_relay.streams_deferred",
                "Streams backed off after a failed sweep",
                "{stream}",
                |s| &s.streams_deferred,
            ),
            (
                "event_relay.sweep_claims_lost",
                "Swept streams left to the process that claimed them first",
                "{stream}",
                |s| &s.sweep_claims_lost,
            ),
            (
                "event_relay.hints_dropped",
                "Commit hints dropped on a full queue",
                "{hint}",
                |s| &s.hints_dropped,
            ),
            (
                "event_relay.handoffs_waited",
                "Hinted streams parked while an earlier commit's relay published it",
                "{stream}",
                |s| &s.handoffs_waited,
            ),
            (
                "event_relay.handoffs_taken_over",
                "Hinted streams whose earlier unpublished commits this relay published itself",
                "{stream}",
                |s| &s.handoffs_taken_over,
            ),
        ];
        quote_runtime::telemetry::observe_counters(&meter, self, &attributes, &counters);
        let gauges: [quote_runtime::telemetry::ObservedCounter<Self>; 2] = [
            (
                "event_relay.outbox_oldest_age",
                "Age of the oldest commit not yet published",
                "s",
                |s| &s.outbox_oldest_age_secs,
            ),
            (
                "event_relay.outbox_streams",
                "Streams with commits not yet published",
                "{stream}",
                |s| &s.outbox_streams,
            ),
        ];
        quote_runtime::telemetry::observe_gauges(&meter, self, &attributes, &gauges);
    }
}
