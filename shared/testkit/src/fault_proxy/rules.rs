//! What the fault proxy injects, and when: rules that match an operation (the `X-Amz-Target`
//! header), optionally a substring of the request body, by rate and time window, and the one
//! decision per request that picks the fault (the pure part of the proxy).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::aws_errors::AwsError;

/// What happens to a matching request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer at once with an AWS error (status and body as the real service sends them);
    /// nothing reaches the backend.
    Error {
        /// Which error.
        error: AwsError,
    },
    /// Wait, then forward.
    Latency {
        /// Added delay in milliseconds.
        ms: u64,
    },
    /// Hold the request without answering for `ms`, then close the connection (nothing
    /// reaches the backend): what a stuck load balancer or a dead node looks like.
    Hang {
        /// How long the connection is held, in milliseconds.
        ms: u64,
    },
    /// Close the connection without answering; nothing reaches the backend.
    Drop,
    /// Forward (the backend applies the call), then close the connection without answering:
    /// the caller cannot tell whether its write happened.
    DropResponse,
    /// `PutRecords` only: answer 200 with this share of the records failed with
    /// `ProvisionedThroughputExceededException` (only the others reach the backend), which is
    /// how Kinesis throttles a batch. Other operations are forwarded unchanged.
    PartialFailure {
        /// Share of the records refused, 0 to 1 (at least one record when above 0).
        fraction: f64,
    },
}

impl Fault {
    /// A short name for counters and tables.
    pub fn label(&self) -> String {
        match self {
            Fault::Error { error } => error.code().to_owned(),
            Fault::Latency { .. } => "latency".to_owned(),
            Fault::Hang { .. } => "hang".to_owned(),
            Fault::Drop => "drop".to_owned(),
            Fault::DropResponse => "drop_response".to_owned(),
            Fault::PartialFailure { .. } => "partial_failure".to_owned(),
        }
    }
}

/// When and to what a fault applies. Built with [`Rule::new`] and the builder methods, or
/// read as JSON (the `fault-proxy` binary's rule file and control endpoint):
///
/// ```json
/// {"operations": ["DynamoDB_20120810.UpdateItem"], "fault": {"kind": "error",
///  "error": "provisioned_throughput_exceeded"}, "rate": 0.5, "after_ms": 0, "for_ms": 5000}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// `X-Amz-Target` values it applies to: an exact target (`Kinesis_20131202.PutRecords`),
    /// a service prefix ending in `.` (`DynamoDB_20120810.`), or empty for every request.
    #[serde(default)]
    pub operations: Vec<String>,
    /// Only requests whose body contains this text (a table, stream or lease key).
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The fault.
    pub fault: Fault,
    /// Probability that a matching request gets the fault, 0 to 1.
    #[serde(default = "always")]
    pub rate: f64,
    /// The rule starts this long after it was added.
    #[serde(default)]
    pub after_ms: u64,
    /// The rule ends this long after it started (`None`: until removed).
    #[serde(default)]
    pub for_ms: Option<u64>,
    /// At most this many injections (`None`: no limit).
    #[serde(default)]
    pub limit: Option<u64>,
}

fn always() -> f64 {
    1.0
}

impl Rule {
    /// `fault` on every request, at once, until removed.
    pub fn new(fault: Fault) -> Self {
        Self {
            operations: Vec::new(),
            body_contains: None,
            fault,
            rate: 1.0,
            after_ms: 0,
            for_ms: None,
            limit: None,
        }
    }

    /// Only for this operation (`X-Amz-Target`, or a service prefix ending in `.`); may be
    /// called several times.
    pub fn operation(mut self, target: &str) -> Self {
        self.operations.push(target.to_owned());
        self
    }

    /// Only for requests whose body contains `text`.
    pub fn body_contains(mut self, text: &str) -> Self {
        self.body_contains = Some(text.to_owned());
        self
    }

    /// On this share of the matching requests.
    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    /// Active from `after` (after it is added) for `length`.
    pub fn window(mut self, after: Duration, length: Duration) -> Self {
        self.after_ms = after.as_millis() as u64;
        self.for_ms = Some(length.as_millis() as u64);
        self
    }

    /// At most `n` injections.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    fn matches(&self, target: &str, body: &[u8]) -> bool {
        let operation = self.operations.is_empty()
            || self.operations.iter().any(|o| {
                o == "*" || o == target || (o.ends_with('.') && target.starts_with(o.as_str()))
            });
        let body = match &self.body_contains {
            None => true,
            Some(text) => body
                .windows(text.len().max(1))
                .any(|w| w == text.as_bytes()),
        };
        operation && body
    }
}

/// A rule as the proxy holds it: when it was added and how often it fired.
#[derive(Debug, Clone)]
struct ActiveRule {
    id: u64,
    rule: Rule,
    added: Instant,
    injected: u64,
}

impl ActiveRule {
    fn in_window(&self, now: Instant) -> bool {
        let start = self.added + Duration::from_millis(self.rule.after_ms);
        let before_end = match self.rule.for_ms {
            Some(ms) => now < start + Duration::from_millis(ms),
            None => true,
        };
        now >= start && before_end && self.rule.limit.is_none_or(|n| self.injected < n)
    }
}

/// Counts of what the proxy did, per operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyStats {
    /// Requests forwarded to the backend (including delayed, partially failed and
    /// response-dropped ones), by `X-Amz-Target`.
    pub forwarded: BTreeMap<String, u64>,
    /// Faults injected, by `X-Amz-Target` and then fault label.
    pub injected: BTreeMap<String, BTreeMap<String, u64>>,
    /// Forwarded requests the backend did not answer (the proxy answered 502), by
    /// `X-Amz-Target`: not injected faults, but an emulator that refused or dropped the
    /// connection.
    #[serde(default)]
    pub upstream_failures: BTreeMap<String, u64>,
}

impl ProxyStats {
    /// Faults injected in all.
    pub fn total_injected(&self) -> u64 {
        self.injected.values().flat_map(|m| m.values()).sum()
    }

    /// Faults injected for one operation (any fault).
    pub fn injected_for(&self, target: &str) -> u64 {
        self.injected
            .get(target)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }
}

/// The rules in force and the counters: the state behind the proxy's lock.
#[derive(Debug, Default)]
pub(crate) struct RuleBook {
    next_id: u64,
    rules: Vec<ActiveRule>,
    stats: ProxyStats,
}

impl RuleBook {
    pub(crate) fn add(&mut self, rule: Rule, now: Instant) -> u64 {
        self.next_id += 1;
        self.rules.push(ActiveRule {
            id: self.next_id,
            rule,
            added: now,
            injected: 0,
        });
        self.next_id
    }

    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        self.rules.len() != before
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn rules(&self) -> Vec<(u64, Rule)> {
        self.rules.iter().map(|r| (r.id, r.rule.clone())).collect()
    }

    pub(crate) fn upstream_failed(&mut self, target: &str) {
        *self
            .stats
            .upstream_failures
            .entry(target.to_owned())
            .or_insert(0) += 1;
    }

    pub(crate) fn stats(&self) -> ProxyStats {
        self.stats.clone()
    }

    /// The fault for one request: the first rule (in the order added) that is in its window,
    /// matches, and wins its draw (`draw` returns a number in 0..1). Counts the outcome.
    pub(crate) fn decide(
        &mut self,
        target: &str,
        body: &[u8],
        now: Instant,
        mut draw: impl FnMut() -> f64,
    ) -> Option<Fault> {
        let chosen = self
            .rules
            .iter_mut()
            .find(|r| r.in_window(now) && r.rule.matches(target, body) && draw() < r.rule.rate);
        let fault = chosen.map(|r| {
            r.injected += 1;
            r.rule.fault.clone()
        });
        let forwarded = match &fault {
            None => true,
            Some(f) => {
                *self
                    .stats
                    .injected
                    .entry(target.to_owned())
                    .or_default()
                    .entry(f.label())
                    .or_insert(0) += 1;
                matches!(
                    f,
                    Fault::Latency { .. } | Fault::DropResponse | Fault::PartialFailure { .. }
                )
            }
        };
        if forwarded {
            *self.stats.forwarded.entry(target.to_owned()).or_insert(0) += 1;
        }
        fault
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATE: &str = "DynamoDB_20120810.UpdateItem";

    fn throttle() -> Fault {
        Fault::Error {
            error: AwsError::ProvisionedThroughputExceeded,
        }
    }

    #[test]
    fn a_rule_matches_its_operation_a_service_prefix_or_everything() {
        let exact = Rule::new(Fault::Drop).operation(UPDATE);
        assert!(exact.matches(UPDATE, b""));
        assert!(!exact.matches("DynamoDB_20120810.GetItem", b""));
        let prefix = Rule::new(Fault::Drop).operation("DynamoDB_20120810.");
        assert!(prefix.matches("DynamoDB_20120810.GetItem", b""));
        assert!(!prefix.matches("Kinesis_20131202.GetRecords", b""));
        assert!(Rule::new(Fault::Drop).matches("anything", b""));
    }

    #[test]
    fn a_body_filter_picks_requests_by_their_content() {
        let rule = Rule::new(Fault::Drop).body_contains("shardId-000000000001");
        assert!(rule.matches(
            UPDATE,
            br#"{"Key":{"leaseKey":{"S":"shardId-000000000001"}}}"#
        ));
        assert!(!rule.matches(
            UPDATE,
            br#"{"Key":{"leaseKey":{"S":"shardId-000000000002"}}}"#
        ));
    }

    #[test]
    fn a_window_opens_after_its_delay_and_closes_after_its_length() {
        let mut book = RuleBook::default();
        let t0 = Instant::now();
        book.add(
            Rule::new(throttle()).window(Duration::from_secs(1), Duration::from_secs(2)),
            t0,
        );
        let at = |s: u64| t0 + Duration::from_millis(s);
        assert_eq!(book.decide(UPDATE, b"", at(500), || 0.0), None);
        assert_eq!(book.decide(UPDATE, b"", at(1000), || 0.0), Some(throttle()));
        assert_eq!(book.decide(UPDATE, b"", at(2999), || 0.0), Some(throttle()));
        assert_eq!(book.decide(UPDATE, b"", at(3000), || 0.0), None);
        let stats = book.stats();
        assert_eq!(stats.injected_for(UPDATE), 2);
        assert_eq!(stats.forwarded[UPDATE], 2);
    }

    #[test]
    fn the_rate_and_the_limit_bound_the_injections() {
        let mut book = RuleBook::default();
        let now = Instant::now();
        book.add(Rule::new(Fault::Drop).rate(0.25).limit(2), now);
        // Draws at or above the rate do not inject.
        assert_eq!(book.decide(UPDATE, b"", now, || 0.25), None);
        assert_eq!(book.decide(UPDATE, b"", now, || 0.1), Some(Fault::Drop));
        assert_eq!(book.decide(UPDATE, b"", now, || 0.1), Some(Fault::Drop));
        assert_eq!(book.decide(UPDATE, b"", now, || 0.1), None, "limit reached");
        assert_eq!(book.stats().total_injected(), 2);
    }

    #[test]
    fn rules_read_from_json_take_defaults() {
        let rule: Rule = serde_json::from_str(
            r#"{"operations": ["Kinesis_20131202.PutRecords"],
                "fault": {"kind": "error", "error": "limit_exceeded"}, "for_ms": 5000}"#,
        )
        .expect("rule json");
        assert_eq!(
            rule,
            Rule {
                for_ms: Some(5000),
                ..Rule::new(Fault::Error {
                    error: AwsError::LimitExceeded
                })
                .operation("Kinesis_20131202.PutRecords")
            }
        );
    }
}
