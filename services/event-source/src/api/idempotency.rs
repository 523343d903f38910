//! Idempotent quote requests: the `Idempotency-Key` header, the key stored per caller, and the
//! replay of the first response (after zero-to-production's `idempotency` module).
//!
//! A key is scoped to the caller that sent it: the stored key is the token's subject, `#`, and
//! the client's key. The subject is escaped (`%` → `%25`, `#` → `%23`) so that the first `#` is
//! always the separator: subject `a#b` with key `c` and subject `a` with key `b#c` are different
//! stored keys (unescaped, both were `a#b#c` and the second caller got the first one's quote).
//! A subject without `%` or `#` is stored as before, so keys stored before this escaping still
//! replay. Every part is bounded (the subject by
//! [`MAX_SUBJECT_BYTES`](crate::auth::MAX_SUBJECT_BYTES), the key by [`MAX_IDEMPOTENCY_KEY`]), so
//! the stored key (at most 1,021 bytes) fits DynamoDB's 2,048-byte partition key.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use event_store::IdempotencyRecord;
use serde::{Deserialize, Serialize};

use super::problem::ApiError;
use super::quotes::QuoteAccepted;
use crate::auth::Principal;

/// Idempotency keys are at most this long.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The client's `Idempotency-Key`: 1 to [`MAX_IDEMPOTENCY_KEY`] visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a header value.
    pub fn parse(value: &HeaderValue) -> Result<Self, ApiError> {
        value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| {
                !k.is_empty()
                    && k.len() <= MAX_IDEMPOTENCY_KEY
                    && k.bytes().all(|b| b.is_ascii_graphic())
            })
            .map(|k| Self(k.to_owned()))
            .ok_or(ApiError::InvalidHeader {
                header: "Idempotency-Key",
                reason: format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
            })
    }

    /// The key as stored: unique per caller, unambiguous (see the module doc).
    pub fn scoped_to(&self, principal: &Principal) -> String {
        let subject = principal.subject.replace('%', "%25").replace('#', "%23");
        format!("{subject}#{}", self.0)
    }
}

/// The optional `Idempotency-Key` header (400 problem when present but invalid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyHeader(pub Option<IdempotencyKey>);

impl<S> FromRequestParts<S> for IdempotencyHeader
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all("idempotency-key").iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(Self(None)),
            (Some(value), None) => IdempotencyKey::parse(value).map(|k| Self(Some(k))),
            (Some(_), Some(_)) => Err(ApiError::InvalidHeader {
                header: "Idempotency-Key",
                reason: "must be sent once".into(),
            }),
        }
    }
}

/// What is stored with an idempotency key, to replay the response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The status answered.
    pub status: u16,
    /// The `Location` answered.
    pub location: String,
    /// The body answered.
    pub body: QuoteAccepted,
}

impl StoredResponse {
    /// The response, marked `Idempotent-Replayed: true` when `replayed`.
    pub fn to_response(&self, replayed: bool) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::ACCEPTED);
        let mut response = (status, Json(&self.body)).into_response();
        if let Ok(location) = HeaderValue::from_str(&self.location) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        if replayed {
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

/// The first response again when `record` was stored for the same request; 422 when the key
/// was used for another body.
pub fn replay(record: &IdempotencyRecord, fingerprint: &str) -> Result<Response, ApiError> {
    if record.request_hash != fingerprint {
        return Err(ApiError::IdempotencyKeyReused);
    }
    let stored: StoredResponse = serde_json::from_value(record.response.clone()).map_err(
        ApiError::internal_by("decoding the stored idempotent response"),
    )?;
    Ok(stored.to_response(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey::parse(&HeaderValue::from_str(text).unwrap_or_else(|_| unreachable!()))
            .unwrap_or_else(|_| unreachable!())
    }

    fn agent(subject: &str) -> Principal {
        Principal {
            subject: subject.into(),
            agent: true,
            ops_reader: false,
        }
    }

    #[test]
    fn scoped_keys_are_unambiguous_and_unchanged_for_plain_subjects() {
        assert_eq!(key("k-1").scoped_to(&agent("cust-42")), "cust-42#k-1");
        assert_ne!(
            key("c").scoped_to(&agent("a#b")),
            key("b#c").scoped_to(&agent("a"))
        );
        assert_ne!(
            key("c").scoped_to(&agent("a%23b")),
            key("c").scoped_to(&agent("a#b"))
        );
        let longest = key(&"k".repeat(MAX_IDEMPOTENCY_KEY))
            .scoped_to(&agent(&"#".repeat(crate::auth::MAX_SUBJECT_BYTES)));
        assert!(longest.len() <= 2048, "{}", longest.len());
    }
}
