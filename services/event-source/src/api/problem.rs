//! The one error type of the HTTP edge, rendered as RFC 9457 `application/problem+json`.
//!
//! Every failure of a handler or extractor becomes an [`ApiError`]; its `IntoResponse` picks the
//! status, names the offending field where there is one, and never sends internal details to
//! the client (5xx causes are logged instead).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use quote_domain::request::FieldError;
use quote_runtime::error_chain::chain;
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The offending fields, each with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

/// One offending field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemField {
    /// Path of the field in the request, e.g. `vehicles[0].vin`.
    pub field: String,
    /// Why it was refused.
    pub reason: String,
}

/// Everything the API can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no or invalid bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 400: the body is not valid JSON.
    #[error("malformed JSON: {detail}")]
    MalformedJson {
        /// Parser message (line and column).
        detail: String,
    },
    /// 415: the body is not JSON.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 413: the body is larger than allowed.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 413: the request would make an event larger than the store and the stream accept.
    #[error("the request makes an event of {bytes} bytes; {what} holds at most {limit} bytes")]
    EventTooLarge {
        /// The event's encoded size.
        bytes: usize,
        /// The limit it exceeds.
        limit: usize,
        /// What the limit is of (a Kinesis record, a DynamoDB item, one append).
        what: String,
    },
    /// 422: the request is well-formed JSON but some fields are invalid.
    #[error("{} invalid field(s)", .0.len())]
    Validation(Vec<FieldError>),
    /// 422: an `Idempotency-Key` was reused with a different request.
    #[error("Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// 400: a malformed header.
    #[error("invalid header {header}: {reason}")]
    InvalidHeader {
        /// Header name.
        header: &'static str,
        /// Why.
        reason: String,
    },
    /// 409: a concurrent write won.
    #[error("{0}")]
    Conflict(String),
    /// 503: overloaded or a dependency is down.
    #[error("{0}")]
    Unavailable(String),
    /// 408: the request took too long.
    #[error("request timed out")]
    Timeout,
    /// 500: a bug or an unexpected failure (details are logged, not sent).
    #[error("internal error: {what}")]
    Internal {
        /// What failed.
        what: String,
        /// Its cause, when there is one (logged with the whole chain, never sent).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl ApiError {
    /// A 500 for `what`, with no further cause.
    pub fn internal(what: impl Into<String>) -> Self {
        ApiError::Internal {
            what: what.into(),
            source: None,
        }
    }

    /// A 500 for `what`, caused by `source`.
    pub fn internal_because(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ApiError::Internal {
            what: what.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A `map_err` adapter for [`ApiError::internal_because`] with a fixed description.
    pub fn internal_by<E>(what: &'static str) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |source| Self::internal_because(what, source)
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
            ),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            MalformedJson { .. } => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            EventTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "event-too-large",
                "Request makes too large an event",
            ),
            Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "The request has invalid fields",
            ),
            IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
            ),
            InvalidHeader { .. } => (StatusCode::BAD_REQUEST, "invalid-header", "Invalid header"),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Concurrent modification"),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Timeout => (StatusCode::REQUEST_TIMEOUT, "timeout", "Request timed out"),
            Internal { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        let errors: Vec<ProblemField> = match self {
            ApiError::Validation(fields) => fields
                .iter()
                .map(|f| ProblemField {
                    field: f.field.clone(),
                    reason: f.reason.clone(),
                })
                .collect(),
            ApiError::IdempotencyKeyReused => vec![ProblemField {
                field: "Idempotency-Key".into(),
                reason: "this key was used for a request with a different body".into(),
            }],
            ApiError::InvalidHeader { header, reason } => vec![ProblemField {
                field: (*header).into(),
                reason: reason.clone(),
            }],
            _ => Vec::new(),
        };
        let detail = match self {
            ApiError::Internal { .. } => {
                "an unexpected error occurred; it has been logged".to_owned()
            }
            ApiError::Validation(fields) => match fields.first() {
                Some(first) if fields.len() == 1 => format!("{}: {}", first.field, first.reason),
                Some(first) => format!(
                    "{}: {} (and {} more)",
                    first.field,
                    first.reason,
                    fields.len() - 1
                ),
                None => "the request has invalid fields".to_owned(),
            },
            other => other.to_string(),
        };
        Problem {
            kind: format!("urn:quote-platform:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal { .. } = &self {
            tracing::error!(error = %chain(&self), "request failed");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<event_store::StoreError> for ApiError {
    /// Never copies a backend's message into the answer: the cause is logged, the client gets
    /// a fixed sentence.
    fn from(err: event_store::StoreError) -> Self {
        use event_store::StoreError;
        match &err {
            StoreError::WrongExpectedVersion { .. } => ApiError::Conflict(
                "another request changed this quote at the same time; retry".into(),
            ),
            StoreError::EventTooLarge { bytes, limit, .. } => ApiError::EventTooLarge {
                bytes: *bytes,
                limit: limit.bytes(),
                what: limit.to_string(),
            },
            StoreError::AppendTooLarge { bytes, limit } => ApiError::EventTooLarge {
                bytes: *bytes,
                limit: *limit,
                what: "one append (all its items together)".into(),
            },
            StoreError::Backend(_) => {
                tracing::warn!(error = %chain(&err), "event store unavailable");
                ApiError::Unavailable("the event store is unavailable; retry later".into())
            }
            _ => ApiError::Internal {
                what: "the event store".into(),
                source: Some(Box::new(err)),
            },
        }
    }
}

impl From<quote_read_model::ReadModelError> for ApiError {
    /// An invalid page token is the caller's (422); anything else is logged and answered with a
    /// fixed sentence.
    fn from(err: quote_read_model::ReadModelError) -> Self {
        match err {
            quote_read_model::ReadModelError::InvalidPageToken => {
                ApiError::Validation(vec![FieldError {
                    field: "page_token".into(),
                    reason: "not a page token of this listing".into(),
                }])
            }
            other => {
                tracing::warn!(error = %chain(&other), "read model unavailable");
                ApiError::Unavailable("the read model is unavailable; retry later".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_too_large_for_the_store_is_a_413_problem() {
        let err: ApiError = event_store::StoreError::EventTooLarge {
            event_id: uuid::Uuid::nil(),
            bytes: 500_000,
            limit: event_store::SizeLimit::DynamoDbItem,
        }
        .into();
        let problem = err.problem();
        assert_eq!(problem.status, 413);
        let limit = event_store::SizeLimit::DynamoDbItem.bytes().to_string();
        assert!(problem.detail.contains(&limit), "{}", problem.detail);
        assert!(
            problem.detail.contains("DynamoDB item"),
            "{}",
            problem.detail
        );
    }

    #[test]
    fn backend_messages_are_not_sent() {
        let backend = std::io::Error::other("ResourceNotFoundException: arn:aws:dynamodb:secret");
        let problems = [
            ApiError::from(event_store::StoreError::backend(backend)).problem(),
            ApiError::from(quote_read_model::ReadModelError::Backend(
                "arn:aws:secret".into(),
            ))
            .problem(),
            ApiError::from(event_store::StoreError::WrongExpectedVersion {
                stream_id: "quote#secret".into(),
                expected: 0,
                actual: 1,
            })
            .problem(),
        ];
        for problem in problems {
            assert!(!problem.detail.contains("secret"), "{}", problem.detail);
        }
    }
}
