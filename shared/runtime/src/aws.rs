//! AWS SDK configuration shared by every service.
//!
//! The SDK reads its own variables (`AWS_REGION`, `AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_KINESIS`, credentials, ECS task role), so
//! LocalStack and the emulators need no special code. Retries of throttling and 5xx happen here
//! and only here: the SDK's standard retry mode with exponential backoff and full jitter.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;

/// Attempts per AWS call (first try included) for throttling, 5xx and transient I/O errors.
pub const MAX_ATTEMPTS: u32 = 6;

/// Loads the SDK configuration from the environment with the platform's retry and timeout policy.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_secs(5)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .load()
        .await
}
