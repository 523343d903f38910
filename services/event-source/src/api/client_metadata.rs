//! Bounds and validates the metadata a client sends with a request, before anything reads it.
//!
//! Three headers end up inside every event of a quote (and every event derived from it): the
//! request id becomes `correlation_id`/`causation_id`, and `traceparent`/`tracestate` the
//! event's trace context. A client must not be able to make those arbitrarily large or fill them
//! with junk, so [`sanitize`] runs first in the tower stack and rewrites the request's headers:
//!
//! - `X-Request-Id`: kept only when it is one value of 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII
//!   characters; otherwise removed, so that the request-id layer generates one (the client's
//!   value is neither stored nor echoed).
//! - `traceparent`: kept only when it is one valid version-00 value
//!   (<https://www.w3.org/TR/trace-context/#traceparent-header>); otherwise removed together with
//!   `tracestate` (a new trace is started).
//! - `tracestate`: kept only when every list member is valid, keys are unique, there are at most
//!   [`MAX_TRACESTATE_MEMBERS`] members and the combined value has at most
//!   [`MAX_TRACESTATE_LEN`] characters (<https://www.w3.org/TR/trace-context/#tracestate-header>);
//!   otherwise dropped whole.

use std::collections::HashSet;

use axum::http::{HeaderMap, HeaderValue, Request};

use crate::trace_context::parse_traceparent;

/// Longest request id kept from a client.
pub const MAX_REQUEST_ID_LEN: usize = 128;
/// Most `tracestate` list members (W3C Trace Context).
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// Longest `tracestate` kept (W3C Trace Context: 512 characters must be propagated).
pub const MAX_TRACESTATE_LEN: usize = 512;

const REQUEST_ID: &str = "x-request-id";
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// Rewrites the client-supplied metadata headers of `request` (see the module doc); used as the
/// first `map_request` of the router's stack.
pub fn sanitize<B>(mut request: Request<B>) -> Request<B> {
    sanitize_headers(request.headers_mut());
    request
}

/// [`sanitize`] on a header map.
pub fn sanitize_headers(headers: &mut HeaderMap) {
    if single(headers, REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|id| !is_valid_request_id(id))
    {
        headers.remove(REQUEST_ID);
    }
    let traceparent_ok = single(headers, TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| parse_traceparent(v).is_some());
    if !traceparent_ok {
        headers.remove(TRACEPARENT);
        headers.remove(TRACESTATE);
        return;
    }
    match combined_tracestate(headers) {
        Some(state) if is_valid_tracestate(&state) => {
            if let Ok(value) = HeaderValue::from_str(&state) {
                headers.insert(TRACESTATE, value);
            } else {
                headers.remove(TRACESTATE);
            }
        }
        _ => {
            headers.remove(TRACESTATE);
        }
    }
}

/// The header's value when it is present exactly once.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// Several `tracestate` headers form one list (joined with commas); `None` when absent or not
/// text.
fn combined_tracestate(headers: &HeaderMap) -> Option<String> {
    let mut parts = Vec::new();
    for value in headers.get_all(TRACESTATE) {
        parts.push(value.to_str().ok()?);
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters.
pub fn is_valid_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A `tracestate` list within the W3C limits, every member valid, no key twice.
pub fn is_valid_tracestate(state: &str) -> bool {
    if state.len() > MAX_TRACESTATE_LEN {
        return false;
    }
    let mut keys = HashSet::new();
    for member in state.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue; // empty list members are allowed and ignored
        }
        let Some((key, value)) = member.split_once('=') else {
            return false;
        };
        if !is_valid_key(key) || !is_valid_value(value) || !keys.insert(key) {
            return false;
        }
        if keys.len() > MAX_TRACESTATE_MEMBERS {
            return false;
        }
    }
    true
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

/// `simple-key` or `tenant-id@system-id`.
fn is_valid_key(key: &str) -> bool {
    match key.split_once('@') {
        None => {
            let bytes = key.as_bytes();
            (1..=256).contains(&bytes.len())
                && bytes[0].is_ascii_lowercase()
                && bytes.iter().all(|b| is_key_char(*b))
        }
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            (1..=241).contains(&t.len())
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t.iter().all(|b| is_key_char(*b))
                && (1..=14).contains(&s.len())
                && s[0].is_ascii_lowercase()
                && s.iter().all(|b| is_key_char(*b))
        }
    }
}

/// 1 to 256 printable ASCII characters except `,` and `=`, not ending in a space.
fn is_valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    (1..=256).contains(&bytes.len())
        && bytes.last().is_some_and(|b| *b != b' ')
        && bytes
            .iter()
            .all(|b| (0x20..=0x7e).contains(b) && *b != b',' && *b != b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                *name,
                HeaderValue::from_str(value).unwrap_or_else(|_| unreachable!()),
            );
        }
        map
    }

    #[test]
    fn request_ids_are_kept_only_when_short_and_visible_ascii() {
        let mut ok = headers(&[(REQUEST_ID, "req-1")]);
        sanitize_headers(&mut ok);
        assert_eq!(
            ok.get(REQUEST_ID).map(|v| v.as_bytes()),
            Some(&b"req-1"[..])
        );
        for bad in ["x".repeat(129), "a b".into(), String::new()] {
            let mut map = headers(&[(REQUEST_ID, &bad)]);
            sanitize_headers(&mut map);
            assert!(map.get(REQUEST_ID).is_none(), "{bad:?} kept");
        }
        let mut twice = headers(&[(REQUEST_ID, "a"), (REQUEST_ID, "b")]);
        sanitize_headers(&mut twice);
        assert!(twice.get(REQUEST_ID).is_none());
        let mut latin = HeaderMap::new();
        latin.insert(
            REQUEST_ID,
            HeaderValue::from_bytes(b"caf\xe9").unwrap_or_else(|_| unreachable!()),
        );
        sanitize_headers(&mut latin);
        assert!(latin.get(REQUEST_ID).is_none());
    }

    #[test]
    fn tracestate_follows_the_w3c_limits() {
        assert!(is_valid_tracestate(
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
        ));
        assert!(is_valid_tracestate("tenant@vendor=x, ,b=1"));
        assert!(!is_valid_tracestate("Upper=1"));
        assert!(!is_valid_tracestate("a=1,a=2"));
        assert!(!is_valid_tracestate("a=x,y"));
        assert!(!is_valid_tracestate("a="));
        assert!(!is_valid_tracestate("a=\u{1}x"));
        assert!(is_valid_tracestate("a=inner space"));
        assert!(!is_valid_tracestate(&format!("a={}", "v".repeat(257))));
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(!is_valid_tracestate(&many.join(",")));
        assert!(is_valid_tracestate(&many[..32].join(",")));
        let long: Vec<String> = (0..8).map(|i| format!("k{i}={}", "v".repeat(70))).collect();
        assert!(!is_valid_tracestate(&long.join(",")), "over 512 characters");
    }

    #[test]
    fn tracestate_is_dropped_with_an_invalid_traceparent_or_when_invalid() {
        let mut kept = headers(&[
            (TRACEPARENT, PARENT),
            (TRACESTATE, "a=1"),
            (TRACESTATE, "b=2"),
        ]);
        sanitize_headers(&mut kept);
        assert_eq!(
            kept.get(TRACESTATE).map(|v| v.as_bytes()),
            Some(&b"a=1,b=2"[..])
        );

        let mut bad_state = headers(&[(TRACEPARENT, PARENT), (TRACESTATE, &"a=1,".repeat(40))]);
        sanitize_headers(&mut bad_state);
        assert!(bad_state.get(TRACESTATE).is_none());
        assert!(bad_state.get(TRACEPARENT).is_some());

        let mut bad_parent = headers(&[(TRACEPARENT, "00-zz-00-01"), (TRACESTATE, "a=1")]);
        sanitize_headers(&mut bad_parent);
        assert!(bad_parent.get(TRACEPARENT).is_none());
        assert!(bad_parent.get(TRACESTATE).is_none());
    }
}
