//! Driver-record providers.
//!
//! # HTTP contract (`DRIVER_HISTORY_PROVIDER=http`)
//!
//! `GET {DRIVER_HISTORY_URL}/v1/driver-records/{license_state}/{license_number}` answers:
//!
//! - `200` with
//!   ```json
//!   {"license_status": "valid",
//!    "accidents": [{"date": "2024-02-10", "at_fault": true}],
//!    "violations": [{"kind": "speeding", "date": "2023-07-01"}]}
//!   ```
//!   (`license_status`: `valid`, `suspended`, `revoked`, `expired`; violation `kind`:
//!   `speeding`, `dui`, `reckless_driving`, `distracted_driving`, `other`; dates ISO 8601);
//! - `404` when the provider has no record of the licence (recorded as unavailable);
//! - `429`/`5xx`/timeouts are retried with jitter, behind a circuit breaker; when the provider
//!   stays down the history is recorded as unavailable (the quote is then referred).
//!
//! Requests carry `Accept: application/json`; an optional bearer token comes from
//! `DRIVER_HISTORY_TOKEN`.
//!
//! # Simulated (`DRIVER_HISTORY_PROVIDER=simulated`)
//!
//! A built-in, deterministic provider for local runs: the same licence always has the same
//! history (see `quote_domain::driver_simulation`). It says so in every log line and event
//! (`source: simulated`).

use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use quote_domain::enrichment::{
    Accident, DriverHistoryRetrieved, HistorySource, LicenseStatus, Violation,
};
use quote_domain::{LicenseNumber, UsState};
use quote_runtime::backoff::Backoff;
use quote_runtime::resilience::{call_with_retries, CallError, CircuitBreaker, Retryable};
use serde::Deserialize;

/// Why no history could be had.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider has no record of the licence.
    #[error("no driving record found for this licence")]
    NoRecord,
    /// The provider is unavailable (after retries, or the circuit is open).
    #[error("driver-record provider unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Looks up driving records.
#[async_trait]
pub trait DriverRecordProvider: Send + Sync + std::fmt::Debug {
    /// The history of one licence.
    async fn history(
        &self,
        state: UsState,
        number: &LicenseNumber,
    ) -> Result<DriverHistoryRetrieved, ProviderError>;
}

/// The built-in deterministic provider.
#[derive(Debug, Clone, Default)]
pub struct SimulatedProvider;

#[async_trait]
impl DriverRecordProvider for SimulatedProvider {
    async fn history(
        &self,
        state: UsState,
        number: &LicenseNumber,
    ) -> Result<DriverHistoryRetrieved, ProviderError> {
        let today = time::OffsetDateTime::now_utc().date();
        tracing::debug!(%state, "driver history from the SIMULATED provider");
        Ok(quote_domain::driver_simulation::simulate(
            state, number, today,
        ))
    }
}

/// Settings of the HTTP provider.
#[derive(Debug, Clone)]
pub struct HttpProviderConfig {
    /// Base URL (`DRIVER_HISTORY_URL`).
    pub base_url: String,
    /// Optional bearer token (`DRIVER_HISTORY_TOKEN`; never printed).
    pub token: Option<SecretString>,
    /// Per-attempt timeout (`DRIVER_HISTORY_TIMEOUT_MS`, default 3000).
    pub timeout: Duration,
    /// Attempts per lookup (`DRIVER_HISTORY_ATTEMPTS`, default 3).
    pub attempts: u32,
    /// Consecutive failures that open the circuit.
    pub breaker_threshold: u32,
    /// How long the circuit stays open.
    pub breaker_cool_down: Duration,
}

#[derive(Debug, Deserialize)]
struct RecordBody {
    license_status: LicenseStatus,
    #[serde(default)]
    accidents: Vec<Accident>,
    #[serde(default)]
    violations: Vec<Violation>,
}

#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("no answer from the provider")]
    Unreachable(#[source] reqwest::Error),
    #[error("the provider answered {0}")]
    Status(reqwest::StatusCode),
    #[error("no record")]
    NoRecord,
    #[error("unreadable record")]
    Unreadable(#[source] reqwest::Error),
}

impl Retryable for AttemptError {
    /// No answer, throttling and 5xx may go away; any other answer stays.
    fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Unreachable(_) => true,
            AttemptError::Status(status) => {
                status.is_server_error() || *status == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            AttemptError::NoRecord | AttemptError::Unreadable(_) => false,
        }
    }
}

/// A provider reached over HTTP (the contract above).
#[derive(Debug, Clone)]
pub struct HttpProvider {
    http: reqwest::Client,
    config: HttpProviderConfig,
    breaker: Arc<CircuitBreaker>,
}

impl HttpProvider {
    /// A provider client.
    pub fn new(config: HttpProviderConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(Self {
            http,
            breaker: Arc::new(CircuitBreaker::new(
                config.breaker_threshold,
                config.breaker_cool_down,
            )),
            config,
        })
    }

    async fn attempt(
        &self,
        state: UsState,
        number: &LicenseNumber,
    ) -> Result<RecordBody, AttemptError> {
        let url = format!(
            "{}/v1/driver-records/{}/{}",
            self.config.base_url.trim_end_matches('/'),
            state.as_str(),
            number.as_str()
        );
        let mut request = self.http.get(url).header("accept", "application/json");
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token.expose_secret());
        }
        let response = request.send().await.map_err(AttemptError::Unreachable)?;
        let status = response.status();
        if status.as_u16() == 404 {
            return Err(AttemptError::NoRecord);
        }
        if !status.is_success() {
            return Err(AttemptError::Status(status));
        }
        response
            .json::<RecordBody>()
            .await
            .map_err(AttemptError::Unreadable)
    }
}

#[async_trait]
impl DriverRecordProvider for HttpProvider {
    #[tracing::instrument(skip(self, number), fields(base_url = %self.config.base_url))]
    async fn history(
        &self,
        state: UsState,
        number: &LicenseNumber,
    ) -> Result<DriverHistoryRetrieved, ProviderError> {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let body = match call_with_retries(&self.breaker, self.config.attempts, backoff, || {
            self.attempt(state, number)
        })
        .await
        {
            Ok(body) => body,
            Err(CallError::Permanent(AttemptError::NoRecord)) => {
                return Err(ProviderError::NoRecord)
            }
            Err(other) => return Err(ProviderError::Unavailable(Box::new(other))),
        };
        Ok(DriverHistoryRetrieved {
            license_state: state,
            license_number: number.clone(),
            license_status: body.license_status,
            accidents: body.accidents,
            violations: body.violations,
            source: HistorySource::Provider,
        })
    }
}
