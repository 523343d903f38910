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
/// Warns about every `AWS_ENDPOINT_URL*` on the loopback address that does not accept
/// connections: in a container that is the container itself, not the host (a shell's emulator
/// settings passed through by compose, say).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    for (name, url) in loopback_endpoints(std::env::vars()) {
        if !accepts_connections(&url).await {
            tracing::warn!(
                variable = %name,
                %url,
                "nothing listens at this AWS endpoint; on the loopback address of a container it \
                 is the container itself, not the host: name the emulator's container instead \
                 (e.g. http://localstack:4566), or unset it"
            );
        }
    }
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

/// True when a TCP connection to `url`'s host and port opens within half a second.
async fn accepts_connections(url: &str) -> bool {
    let Some(authority) = url
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
    else {
        return true;
    };
    let port_default = if url.starts_with("https") { 443 } else { 80 };
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:{port_default}")
    };
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(address)
        )
        .await,
        Ok(Ok(_))
    )
}

/// The `AWS_ENDPOINT_URL*` variables among `vars` whose host is a loopback address.
fn loopback_endpoints(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.filter(|(name, _)| name.starts_with("AWS_ENDPOINT_URL"))
        .filter(|(_, url)| {
            let host = url
                .split_once("://")
                .map_or(url.as_str(), |(_, rest)| rest)
                .split(['/', ':'])
                .next()
                .unwrap_or_default();
            host == "localhost" || host.starts_with("127.") || url.contains("://[::1]")
        })
        .collect()
}

#[cfg(test)]
mod loopback_tests {
    use super::loopback_endpoints;

    #[test]
    fn loopback_endpoints_are_found() {
        let vars = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("AWS_ENDPOINT_URL_KINESIS", "http://localhost:4568"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://moto:5000"),
            ("AWS_ENDPOINT_URL_SESV2", "http://[::1]:5000"),
            ("OTHER", "http://127.0.0.1:1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let found: Vec<String> = loopback_endpoints(vars.into_iter())
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            found,
            [
                "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_KINESIS",
                "AWS_ENDPOINT_URL_SESV2"
            ]
        );
    }
}
