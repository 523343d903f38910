//! Where a quote's time goes, hop by hop, from its events' envelopes (`quotes bench pipeline`).
//!
//! Every event a consumer service derives names its cause (`causation_id` = the cause's
//! `event_id`) and carries two instants: `occurred_at`, when the handler built it, and
//! `recorded_at`, when the store stamped it for its append (just before the conditional
//! write). So for each derived event, per service (the event's `actor`):
//!
//! - **delivery** = the cause's `recorded_at` → the event's `occurred_at`: the cause's write,
//!   the relay's publication, Kinesis, the consumer's read and the handler's work before it
//!   built the event; with the stream read back after the run ([`read_arrivals`]: each event's
//!   first `ApproximateArrivalTimestamp`), split into **relay** (the cause's `recorded_at` → its
//!   arrival on Kinesis: the write, the relay's wake-up and `PutRecords`) and **consumer** (the
//!   arrival → the event's `occurred_at`: the consumer's read and the handler);
//! - **append** = `occurred_at` → `recorded_at`: the handler's work between building the event
//!   and handing it to the store (loading and folding the stream).
//!
//! The clocks are the processes' own; on one machine they agree, across machines they are as
//! good as their time sync.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Highest hop time tracked, in microseconds (10 minutes).
const MAX_MICROS: u64 = 600_000_000;

/// When each event (by `event_id`) first reached the stream.
pub type Arrivals = HashMap<String, OffsetDateTime>;

/// A run's stream, read back after the run.
#[derive(Debug, Default)]
pub struct ReadBack {
    /// Each event's first arrival.
    pub arrivals: Arrivals,
    /// Records on the stream (an event published twice counts twice).
    pub records: u64,
    /// Copies beyond the first, by event type (which publication step repeats).
    pub duplicates_by_type: BTreeMap<String, u64>,
    /// Records whose `ApproximateArrivalTimestamp` is earlier than their own `recorded_at`
    /// (stamped before the commit, so before any publication): a measure of how far the
    /// stream's arrival stamps can be trusted for the relay/consumer split.
    pub arrivals_before_commit: u64,
}

impl ReadBack {
    /// Records per distinct event: 1.0 when every event was published exactly once.
    pub fn records_per_event(&self) -> f64 {
        self.records as f64 / (self.arrivals.len().max(1) as f64)
    }
}

/// Reads the whole of `stream` (every shard from its trim horizon, with the SDK's endpoint
/// settings) and keeps each event's first arrival and the number of records: a benchmark's own
/// short stream.
pub async fn read_arrivals(stream: &str) -> anyhow::Result<ReadBack> {
    use aws_sdk_kinesis::types::ShardIteratorType;
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .context("ListShards")?;
    let mut arrivals = Arrivals::new();
    let mut records = 0u64;
    let mut duplicates_by_type = BTreeMap::new();
    let mut arrivals_before_commit = 0u64;
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .context("GetShardIterator")?
            .shard_iterator;
        while let Some(current) = iterator.take() {
            let page = kinesis
                .get_records()
                .shard_iterator(current)
                .limit(10_000)
                .send()
                .await
                .context("GetRecords")?;
            for record in page.records() {
                let Some(arrived) = record.approximate_arrival_timestamp().and_then(|t| {
                    OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(t.secs()) * 1_000_000_000 + i128::from(t.subsec_nanos()),
                    )
                    .ok()
                }) else {
                    continue;
                };
                let envelope: Value = match serde_json::from_slice(record.data().as_ref()) {
                    Ok(envelope) => envelope,
                    Err(_) => continue,
                };
                if let Some(id) = envelope["event_id"].as_str() {
                    records += 1;
                    let committed = envelope["recorded_at"]
                        .as_str()
                        .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok());
                    if committed.is_some_and(|committed| arrived < committed) {
                        arrivals_before_commit += 1;
                    }
                    if arrivals.contains_key(id) {
                        let event_type = envelope["event_type"].as_str().unwrap_or("?");
                        *duplicates_by_type.entry(event_type.to_owned()).or_insert(0) += 1;
                    }
                    arrivals
                        .entry(id.to_owned())
                        .and_modify(|at| *at = (*at).min(arrived))
                        .or_insert(arrived);
                }
            }
            // At the tip of the shard: the run is over, nothing more arrives.
            if page.records().is_empty() || page.millis_behind_latest() == Some(0) {
                break;
            }
            iterator = page.next_shard_iterator;
        }
    }
    Ok(ReadBack {
        arrivals,
        records,
        duplicates_by_type,
        arrivals_before_commit,
    })
}

/// Hop times of many quotes, per service.
#[derive(Debug, Default)]
pub struct HopTimes {
    services: BTreeMap<String, ServiceHops>,
    /// The outcome's commit → the GET that saw the quote final: the projector's hop (plus up
    /// to one GET interval).
    seen: Option<Histogram<u64>>,
}

/// One service's hops.
#[derive(Debug)]
struct ServiceHops {
    delivery: Histogram<u64>,
    relay: Histogram<u64>,
    consumer: Histogram<u64>,
    append: Histogram<u64>,
}

impl ServiceHops {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            delivery: Histogram::new_with_bounds(1, MAX_MICROS, 3)?,
            relay: Histogram::new_with_bounds(1, MAX_MICROS, 3)?,
            consumer: Histogram::new_with_bounds(1, MAX_MICROS, 3)?,
            append: Histogram::new_with_bounds(1, MAX_MICROS, 3)?,
        })
    }
}

/// One event as the hop times read it.
struct Stamped<'a> {
    event_id: &'a str,
    causation_id: Option<&'a str>,
    actor: &'a str,
    occurred_at: OffsetDateTime,
    recorded_at: OffsetDateTime,
}

fn stamped(event: &Value) -> anyhow::Result<Stamped<'_>> {
    let text = |name: &str| {
        event[name]
            .as_str()
            .with_context(|| format!("event without {name}: {event}"))
    };
    let instant = |name: &str| -> anyhow::Result<OffsetDateTime> {
        OffsetDateTime::parse(text(name)?, &Rfc3339).with_context(|| format!("{name} of {event}"))
    };
    Ok(Stamped {
        event_id: text("event_id")?,
        causation_id: event["causation_id"].as_str(),
        actor: text("actor")?,
        occurred_at: instant("occurred_at")?,
        recorded_at: instant("recorded_at")?,
    })
}

/// Microseconds as milliseconds, to two decimals (the benchmarks' reports).
pub(super) fn ms(micros: u64) -> f64 {
    (micros as f64 / 10.0).round() / 100.0
}

/// `p50_ms`, `p95_ms`, `max_ms` of a histogram of microseconds.
pub(super) fn summary(h: &Histogram<u64>) -> Value {
    json!({
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p95_ms": ms(h.value_at_quantile(0.95)),
        "max_ms": ms(h.max()),
    })
}

fn micros(from: OffsetDateTime, to: OffsetDateTime) -> u64 {
    u64::try_from((to - from).whole_microseconds())
        .unwrap_or(0)
        .max(1)
}

impl HopTimes {
    /// Adds the hops of one quote's events (as `GET /v1/quotes/{id}/events` lists them);
    /// with `arrivals`, delivery is also split at the cause's arrival on the stream; with
    /// `seen_at` (when a GET saw the quote final), the last event recorded before it → then.
    pub fn add_quote(
        &mut self,
        events: &[Value],
        arrivals: Option<&Arrivals>,
        seen_at: Option<OffsetDateTime>,
    ) -> anyhow::Result<()> {
        let events: Vec<Stamped<'_>> = events.iter().map(stamped).collect::<Result<_, _>>()?;
        if let Some(seen_at) = seen_at {
            let outcome = events
                .iter()
                .map(|e| e.recorded_at)
                .filter(|at| *at <= seen_at)
                .max();
            if let Some(outcome) = outcome {
                if self.seen.is_none() {
                    self.seen = Some(Histogram::new_with_bounds(1, MAX_MICROS, 3)?);
                }
                if let Some(seen) = self.seen.as_mut() {
                    seen.saturating_record(micros(outcome, seen_at));
                }
            }
        }
        for event in &events {
            let Some(cause) = event
                .causation_id
                .and_then(|id| events.iter().find(|e| e.event_id == id))
            else {
                continue;
            };
            if !self.services.contains_key(event.actor) {
                self.services
                    .insert(event.actor.to_owned(), ServiceHops::new()?);
            }
            if let Some(hops) = self.services.get_mut(event.actor) {
                hops.delivery
                    .saturating_record(micros(cause.recorded_at, event.occurred_at));
                hops.append
                    .saturating_record(micros(event.occurred_at, event.recorded_at));
                if let Some(arrived) = arrivals.and_then(|a| a.get(cause.event_id)) {
                    hops.relay
                        .saturating_record(micros(cause.recorded_at, *arrived));
                    hops.consumer
                        .saturating_record(micros(*arrived, event.occurred_at));
                }
            }
        }
        Ok(())
    }

    /// Each service's median delivery, in milliseconds.
    pub fn delivery_p50_ms(&self) -> BTreeMap<String, f64> {
        self.services
            .iter()
            .map(|(service, hops)| (service.clone(), ms(hops.delivery.value_at_quantile(0.50))))
            .collect()
    }

    /// The outcome's commit → seen final by a GET, as `p50_ms`, `p95_ms`, `max_ms`, when
    /// known.
    pub fn seen_report(&self) -> Option<Value> {
        self.seen.as_ref().map(summary)
    }

    /// Per service: `events`, and `delivery`, `append` (and with arrivals `relay` and
    /// `consumer`) as `p50_ms`, `p95_ms`, `max_ms`.
    pub fn report(&self) -> Value {
        self.services
            .iter()
            .map(|(service, hops)| {
                (service.clone(), {
                    let mut hop = json!({
                        "events": hops.delivery.len(),
                        "delivery": summary(&hops.delivery),
                        "append": summary(&hops.append),
                    });
                    if !hops.relay.is_empty() {
                        hop["relay"] = summary(&hops.relay);
                        hop["consumer"] = summary(&hops.consumer);
                    }
                    hop
                })
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn event(id: &str, cause: Option<&str>, actor: &str, occurred: &str, recorded: &str) -> Value {
        json!({"event_id": id, "causation_id": cause, "actor": actor,
               "occurred_at": occurred, "recorded_at": recorded})
    }

    #[test]
    fn each_derived_event_is_timed_from_its_causes_append() {
        let events = vec![
            event(
                "r",
                Some("req-1"),
                "cust-42",
                "2026-12-07T10:00:00.000Z",
                "2026-12-07T10:00:00.010Z",
            ),
            event(
                "v",
                Some("r"),
                "vehicle-enricher",
                "2026-12-07T10:00:00.510Z",
                "2026-12-07T10:00:00.530Z",
            ),
            event(
                "d",
                Some("r"),
                "driver-history",
                "2026-12-07T10:00:01.010Z",
                "2026-12-07T10:00:01.015Z",
            ),
            event(
                "q",
                Some("d"),
                "fulfillment",
                "2026-12-07T10:00:01.215Z",
                "2026-12-07T10:00:01.255Z",
            ),
        ];
        let mut hops = HopTimes::default();
        let arrivals = Arrivals::from([
            (
                "r".to_owned(),
                OffsetDateTime::parse("2026-12-07T10:00:00.110Z", &Rfc3339).unwrap(),
            ),
            (
                "d".to_owned(),
                OffsetDateTime::parse("2026-12-07T10:00:01.065Z", &Rfc3339).unwrap(),
            ),
        ]);
        let seen = OffsetDateTime::parse("2026-12-07T10:00:01.300Z", &Rfc3339).unwrap();
        hops.add_quote(&events, Some(&arrivals), Some(seen))
            .unwrap();
        let report = hops.report();
        let near = |value: &Value, expected: f64| {
            let got = value.as_f64().unwrap();
            assert!(
                (got - expected).abs() <= expected * 0.002,
                "{got} vs {expected}"
            );
        };
        near(&report["vehicle-enricher"]["delivery"]["p50_ms"], 500.0);
        near(&report["vehicle-enricher"]["append"]["p50_ms"], 20.0);
        near(&report["driver-history"]["delivery"]["p50_ms"], 1000.0);
        near(&report["fulfillment"]["delivery"]["p50_ms"], 200.0);
        near(&report["fulfillment"]["append"]["p50_ms"], 40.0);
        // Split at the cause's arrival: 100 ms of relay, then 400 ms to the enricher.
        near(&report["vehicle-enricher"]["relay"]["p50_ms"], 100.0);
        near(&report["vehicle-enricher"]["consumer"]["p50_ms"], 400.0);
        near(&report["fulfillment"]["relay"]["p50_ms"], 50.0);
        near(&report["fulfillment"]["consumer"]["p50_ms"], 150.0);
        assert!(
            report.get("cust-42").is_none(),
            "the request has no cause among the events"
        );
        // Seen final 45 ms after the outcome's commit (10:00:01.255).
        near(&hops.seen_report().unwrap()["p50_ms"], 45.0);
        hops.add_quote(&events, None, None).unwrap();
        assert_eq!(hops.report()["fulfillment"]["events"], 2);
    }
}
