//! Whether a failed AWS call is worth retrying: the one classification every adapter uses.
//!
//! The SDK retries throttling and 5xx a few times on its own ([`crate::aws`]); what is left
//! after those attempts reaches our code as an [`SdkError`]. Adapters map it into their typed
//! errors through [`AwsFailure::of`] (or [`is_transient`]), so "transient" means the same thing
//! for the event store, the read model, the ledger, the dead-letter table and the senders:
//!
//! | failure | examples | transient |
//! | --- | --- | --- |
//! | [`AwsFailure::Throttled`] | `ThrottlingException`, `ProvisionedThroughputExceededException`, `TooManyRequestsException`, HTTP 429 | yes |
//! | [`AwsFailure::ServerError`] | HTTP 5xx, `InternalServerError`, `ServiceUnavailable` | yes |
//! | [`AwsFailure::Timeout`] | the SDK's attempt/operation timeout, `RequestTimeout` | yes |
//! | [`AwsFailure::Dispatch`] | connection refused or reset, DNS, an unreadable response | yes |
//! | [`AwsFailure::Rejected`] | any other 4xx (validation, missing resource, access denied), a request that cannot be built | no |
//!
//! Whether a transient failure is *safe* to retry is the caller's question: a write that may
//! have been applied (a 5xx or timeout of `SendEmail`) is ambiguous; see the notifier's ledger.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Error codes AWS services answer when a caller is throttled (the SDK's own list, plus SNS's
/// `Throttled` and KMS's).
pub const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "Throttled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "KMSThrottlingException",
];

/// Error codes of a request that timed out on the service's side.
const TIMEOUT_CODES: &[&str] = &["RequestTimeout", "RequestTimeoutException"];

/// What kind of failure an AWS call ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsFailure {
    /// The caller is throttled (a throttling error code or HTTP 429).
    Throttled,
    /// The service failed (HTTP 5xx): the request may or may not have been applied.
    ServerError,
    /// No answer in time (the SDK's timeouts or the service's `RequestTimeout`).
    Timeout,
    /// The request could not be sent or its answer not read (connection refused or reset,
    /// DNS, an unreadable response).
    Dispatch,
    /// The service refused the request (any other 4xx) or the request could not be built:
    /// retrying the same request cannot help.
    Rejected,
}

impl AwsFailure {
    /// Classifies a failed call.
    pub fn of<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Self {
        match err {
            SdkError::ConstructionFailure(_) => AwsFailure::Rejected,
            SdkError::TimeoutError(_) => AwsFailure::Timeout,
            SdkError::DispatchFailure(failure) if failure.is_timeout() => AwsFailure::Timeout,
            SdkError::DispatchFailure(failure) if failure.is_user() => AwsFailure::Rejected,
            SdkError::DispatchFailure(_) => AwsFailure::Dispatch,
            SdkError::ResponseError(response) => {
                Self::of_status(response.raw().status().as_u16()).unwrap_or(AwsFailure::Dispatch)
            }
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                match service.err().code() {
                    Some(code) if is_throttling_code(code) => AwsFailure::Throttled,
                    Some(code) if TIMEOUT_CODES.contains(&code) => AwsFailure::Timeout,
                    _ => Self::of_status(status).unwrap_or(AwsFailure::Rejected),
                }
            }
            // A kind of failure the SDK does not have today: waiting is safer than giving up.
            _ => AwsFailure::Dispatch,
        }
    }

    /// The failure an HTTP status alone says (`None` for a success or an ordinary 4xx).
    fn of_status(status: u16) -> Option<Self> {
        match status {
            429 => Some(AwsFailure::Throttled),
            500..=599 => Some(AwsFailure::ServerError),
            _ => None,
        }
    }

    /// Whether the same call may succeed later (everything but [`AwsFailure::Rejected`]).
    pub fn is_transient(self) -> bool {
        !matches!(self, AwsFailure::Rejected)
    }

    /// A short name for logs and metrics (`throttled`, `server_error`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AwsFailure::Throttled => "throttled",
            AwsFailure::ServerError => "server_error",
            AwsFailure::Timeout => "timeout",
            AwsFailure::Dispatch => "dispatch",
            AwsFailure::Rejected => "rejected",
        }
    }
}

/// Whether a failed AWS call may succeed if made again later: throttling, 5xx, timeouts and
/// dispatch failures.
pub fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    AwsFailure::of(err).is_transient()
}

/// Whether `code` is an AWS throttling error code.
pub fn is_throttling_code(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    fn service(status: u16, code: &str) -> SdkError<ErrorMetadata, HttpResponse> {
        SdkError::service_error(
            ErrorMetadata::builder().code(code).build(),
            response(status),
        )
    }

    #[test]
    fn throttling_5xx_timeouts_and_dispatch_failures_are_transient() {
        for (err, expected) in [
            (service(400, "ThrottlingException"), AwsFailure::Throttled),
            (
                service(400, "ProvisionedThroughputExceededException"),
                AwsFailure::Throttled,
            ),
            (
                service(429, "TooManyRequestsException"),
                AwsFailure::Throttled,
            ),
            (service(429, "SomethingNew"), AwsFailure::Throttled),
            (service(500, "InternalServerError"), AwsFailure::ServerError),
            (service(503, "ServiceUnavailable"), AwsFailure::ServerError),
            (service(400, "RequestTimeout"), AwsFailure::Timeout),
            (SdkError::timeout_error("slow"), AwsFailure::Timeout),
            (
                SdkError::dispatch_failure(ConnectorError::io("reset".into())),
                AwsFailure::Dispatch,
            ),
            (
                SdkError::dispatch_failure(ConnectorError::timeout("connect".into())),
                AwsFailure::Timeout,
            ),
            (
                SdkError::response_error("truncated", response(200)),
                AwsFailure::Dispatch,
            ),
        ] {
            assert_eq!(AwsFailure::of(&err), expected, "{err:?}");
            assert!(is_transient(&err), "{err:?}");
        }
    }

    #[test]
    fn other_client_errors_are_permanent() {
        for err in [
            service(400, "ValidationException"),
            service(400, "ResourceNotFoundException"),
            service(403, "AccessDeniedException"),
            service(400, "MessageRejected"),
            SdkError::construction_failure("no region"),
            SdkError::dispatch_failure(ConnectorError::user("bad uri".into())),
        ] {
            assert_eq!(AwsFailure::of(&err), AwsFailure::Rejected, "{err:?}");
            assert!(!is_transient(&err));
        }
    }
}
