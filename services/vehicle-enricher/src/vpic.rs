//! A client of the NHTSA vPIC VIN decoder (or any service with its API):
//! `GET {VPIC_BASE_URL}/vehicles/DecodeVinValues/{vin}?format=json`.
//!
//! Calls have a timeout, are retried with full-jitter backoff on timeouts, connection errors,
//! 429 and 5xx, and go through a circuit breaker: while vPIC is down, lookups fail fast and the
//! enricher falls back to what the VIN itself says.

use std::sync::Arc;
use std::time::Duration;

use quote_runtime::backoff::Backoff;
use quote_runtime::resilience::{call_with_retries, CallError, CircuitBreaker, Retryable};
use serde::Deserialize;

/// Settings of the vPIC client.
#[derive(Debug, Clone)]
pub struct VpicConfig {
    /// Base URL (`VPIC_BASE_URL`, default `https://vpic.nhtsa.dot.gov/api`).
    pub base_url: String,
    /// Per-attempt timeout (`VPIC_TIMEOUT_MS`, default 3000).
    pub timeout: Duration,
    /// Attempts per lookup (`VPIC_ATTEMPTS`, default 3).
    pub attempts: u32,
    /// Consecutive failures that open the circuit (default 5).
    pub breaker_threshold: u32,
    /// How long the circuit stays open (default 30 s).
    pub breaker_cool_down: Duration,
}

impl Default for VpicConfig {
    fn default() -> Self {
        Self {
            base_url: "https://vpic.nhtsa.dot.gov/api".to_owned(),
            timeout: Duration::from_secs(3),
            attempts: 3,
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(30),
        }
    }
}

/// What vPIC says about a VIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpicDecode {
    /// Manufacturer's make, e.g. `HONDA`.
    pub make: String,
    /// Model, e.g. `Accord`.
    pub model: String,
    /// Model year.
    pub model_year: Option<u16>,
    /// Body class, e.g. `Sedan/Saloon`.
    pub body_class: Option<String>,
    /// Vehicle type, e.g. `PASSENGER CAR`.
    pub vehicle_type: Option<String>,
}

/// Why a lookup gave no decode.
#[derive(Debug, thiserror::Error)]
pub enum VpicError {
    /// vPIC answered but does not know the VIN.
    #[error("vPIC does not know this VIN")]
    Unknown(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// vPIC could not be reached or failed (after retries), or the circuit is open.
    #[error("vPIC unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why one call to vPIC failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("no answer from vPIC")]
    Unreachable(#[source] reqwest::Error),
    #[error("vPIC answered {0}")]
    Status(reqwest::StatusCode),
    #[error("unreadable vPIC answer")]
    Unreadable(#[source] reqwest::Error),
    #[error("vPIC returned no result")]
    NoResult,
    #[error("vPIC cannot decode the VIN: {0}")]
    NotDecoded(String),
}

impl Retryable for AttemptError {
    /// No answer, an unreadable one, throttling and 5xx may go away; any other answer stays.
    fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Unreachable(_) | AttemptError::Unreadable(_) => true,
            AttemptError::Status(status) => {
                status.is_server_error() || *status == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            AttemptError::NoResult | AttemptError::NotDecoded(_) => false,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Response {
    #[serde(rename = "Results", default)]
    results: Vec<ResultRow>,
}

#[derive(Debug, Deserialize)]
struct ResultRow {
    #[serde(rename = "Make", default)]
    make: Option<String>,
    #[serde(rename = "Model", default)]
    model: Option<String>,
    #[serde(rename = "ModelYear", default)]
    model_year: Option<String>,
    #[serde(rename = "BodyClass", default)]
    body_class: Option<String>,
    #[serde(rename = "VehicleType", default)]
    vehicle_type: Option<String>,
    #[serde(rename = "ErrorCode", default)]
    error_code: Option<String>,
    #[serde(rename = "ErrorText", default)]
    error_text: Option<String>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The vPIC client (cheap to clone; clones share the circuit breaker).
#[derive(Debug, Clone)]
pub struct VpicClient {
    http: reqwest::Client,
    config: VpicConfig,
    breaker: Arc<CircuitBreaker>,
}

impl VpicClient {
    /// A client with `config`.
    pub fn new(config: VpicConfig) -> Result<Self, reqwest::Error> {
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

    /// The circuit breaker (for readiness and tests).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    async fn attempt(&self, vin: &str) -> Result<VpicDecode, AttemptError> {
        let url = format!(
            "{}/vehicles/DecodeVinValues/{vin}?format=json",
            self.config.base_url.trim_end_matches('/')
        );
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(AttemptError::Unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(AttemptError::Status(status));
        }
        let body: Response = response.json().await.map_err(AttemptError::Unreadable)?;
        let row = body
            .results
            .into_iter()
            .next()
            .ok_or(AttemptError::NoResult)?;
        let make = non_empty(row.make);
        let model = non_empty(row.model);
        match (make, model) {
            (Some(make), Some(model)) => Ok(VpicDecode {
                make,
                model,
                model_year: non_empty(row.model_year).and_then(|y| y.parse().ok()),
                body_class: non_empty(row.body_class),
                vehicle_type: non_empty(row.vehicle_type),
            }),
            _ => Err(AttemptError::NotDecoded(
                non_empty(row.error_text)
                    .or_else(|| non_empty(row.error_code))
                    .unwrap_or_else(|| "no make or model".to_owned()),
            )),
        }
    }

    /// Decodes a VIN.
    #[tracing::instrument(skip(self), fields(base_url = %self.config.base_url))]
    pub async fn decode(&self, vin: &str) -> Result<VpicDecode, VpicError> {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        match call_with_retries(&self.breaker, self.config.attempts, backoff, || {
            self.attempt(vin)
        })
        .await
        {
            Ok(decode) => Ok(decode),
            Err(CallError::Permanent(err)) => Err(VpicError::Unknown(Box::new(err))),
            Err(other) => Err(VpicError::Unavailable(Box::new(other))),
        }
    }
}
