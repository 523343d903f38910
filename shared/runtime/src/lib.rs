//! What every service process of the platform shares.
//!
//! # Layout
//! - [`aws`]: the AWS SDK configuration, from the SDK's own environment variables, with the
//!   one retry policy for throttling and 5xx (standard mode: exponential backoff, full jitter).
//! - [`aws_error`]: whether a failed AWS call is transient (throttling, 5xx, timeouts, dispatch
//!   failures) or permanent; the one classification every adapter uses.
//! - [`error_chain`]: an error and its causes on one line, for logs and dead letters.
//! - [`backoff`]: exponential backoff with full jitter for our own retry loops.
//! - [`telemetry`]: structured logs (`tracing`), JSON when `LOG_FORMAT=json`.
//! - [`shutdown`]: SIGTERM / Ctrl-C as a cancellation token.
//! - [`env`]: typed reading of configuration variables with defaults.
//! - [`resilience`]: retries with jitter and a circuit breaker for calls to outside services.

pub mod aws;
pub mod aws_error;
pub mod backoff;
pub mod env;
pub mod error_chain;
pub mod item_keys;
pub mod resilience;
pub mod shutdown;
pub mod telemetry;
