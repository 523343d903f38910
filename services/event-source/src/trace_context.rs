//! W3C trace context carried into every event, when no tracing subscriber is installed.
//!
//! With telemetry on, events carry the request span's own context
//! (`quote_runtime::telemetry::current_trace_context`). Without it (embedding, tests) the
//! caller's `traceparent` is still continued here with a span id of our own (or a new trace is
//! started), so every event has a trace context consumers can continue.
//! See <https://www.w3.org/TR/trace-context/>.

use axum::http::HeaderMap;
use rand::Rng;

use crate::api::client_metadata::is_valid_tracestate;

/// The trace context to record in appended events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// `00-<trace id>-<span id>-<flags>`.
    pub traceparent: String,
    /// Vendor state, passed through unchanged when valid (W3C limits).
    pub tracestate: Option<String>,
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Splits a valid version-00 `traceparent` into trace id and flags.
pub fn parse_traceparent(traceparent: &str) -> Option<(&str, &str)> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace_id, span_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let valid = parts.next().is_none()
        && version == "00"
        && is_lower_hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && is_lower_hex(span_id, 16)
        && span_id.bytes().any(|b| b != b'0')
        && is_lower_hex(flags, 2);
    valid.then_some((trace_id, flags))
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    loop {
        let value: Vec<u8> = (0..bytes).map(|_| rng.gen()).collect();
        if value.iter().any(|b| *b != 0) {
            return hex::encode(value);
        }
    }
}

impl TraceContext {
    /// Continues the caller's trace (or starts one) with a new span id for this request.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let incoming = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent);
        let traceparent = match incoming {
            Some((trace_id, flags)) => format!("00-{trace_id}-{}-{flags}", random_hex(8)),
            None => format!("00-{}-{}-01", random_hex(16), random_hex(8)),
        };
        let tracestate = incoming
            .and(headers.get("tracestate"))
            .and_then(|v| v.to_str().ok())
            .filter(|state| is_valid_tracestate(state))
            .map(str::to_owned);
        Self {
            traceparent,
            tracestate,
        }
    }

    /// The trace id shared by every span of the trace.
    pub fn trace_id(&self) -> &str {
        self.traceparent.get(3..35).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_valid_trace_and_replaces_an_invalid_one() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        let ctx = TraceContext::from_headers(&headers);
        assert_eq!(ctx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(!ctx.traceparent.contains("00f067aa0ba902b7"));

        headers.insert(
            "traceparent",
            "garbage".parse().unwrap_or_else(|_| unreachable!()),
        );
        let fresh = TraceContext::from_headers(&headers);
        assert!(parse_traceparent(&fresh.traceparent).is_some());
        assert_ne!(fresh.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
