//! Liveness and readiness probes.
//!
//! `/readyz` is public and each round of checks makes one call to each dependency (the event
//! store's tables, the read model, the stream): a flood of probes must not turn into a flood of
//! control-plane calls that throttles the account. [`ReadinessCache`] runs at most one round at a
//! time and reuses its answer (ready or not) for [`READINESS_TTL`].

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::problem::{ApiError, Problem};
use super::AppState;

/// How long a dependency may take to answer a readiness check.
const DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a readiness answer is reused.
pub const READINESS_TTL: Duration = Duration::from_secs(2);

/// The last readiness answer and when it was found; one round of checks at a time.
#[derive(Debug)]
pub struct ReadinessCache {
    /// How long an answer is reused.
    ttl: Duration,
    /// The last answer (`Err` names the dependency that failed); held across a round so that
    /// concurrent probes wait for it instead of starting their own.
    last: Mutex<Option<(Instant, Result<(), &'static str>)>>,
}

impl ReadinessCache {
    /// A cache reusing answers for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            last: Mutex::new(None),
        }
    }

    /// The cached answer while fresh, else a new round of checks.
    async fn check(&self, state: &AppState) -> Result<(), &'static str> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = *last {
            if at.elapsed() < self.ttl {
                return answer;
            }
        }
        let answer = check_dependencies(state).await;
        *last = Some((Instant::now(), answer));
        answer
    }
}

impl Default for ReadinessCache {
    fn default() -> Self {
        Self::new(READINESS_TTL)
    }
}

/// One round: each dependency once, each within [`DEPENDENCY_TIMEOUT`].
async fn check_dependencies(state: &AppState) -> Result<(), &'static str> {
    let store = tokio::time::timeout(DEPENDENCY_TIMEOUT, state.store.ping()).await;
    if !matches!(store, Ok(Ok(()))) {
        return Err("event store not reachable");
    }
    let read_model = tokio::time::timeout(DEPENDENCY_TIMEOUT, state.read_model.ping()).await;
    if !matches!(read_model, Ok(Ok(()))) {
        return Err("read model not reachable");
    }
    let sink = tokio::time::timeout(DEPENDENCY_TIMEOUT, state.sink.ping()).await;
    if !matches!(sink, Ok(Ok(()))) {
        return Err("event stream not reachable");
    }
    Ok(())
}

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the event store, the read model and the stream answer (answers are reused for
/// a couple of seconds).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "A dependency is down", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state
        .readiness
        .check(&state)
        .await
        .map_err(|down| ApiError::Unavailable(down.into()))?;
    Ok(Json(Health { status: "ready" }))
}
