//! Liveness and readiness probes.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{ApiError, Problem};
use super::AppState;

/// How long a dependency may take to answer a readiness check.
const DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(2);

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

/// Readiness: the event store, the read model and the stream answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "A dependency is down", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let store = tokio::time::timeout(DEPENDENCY_TIMEOUT, state.store.ping()).await;
    if !matches!(store, Ok(Ok(()))) {
        return Err(ApiError::Unavailable("event store not reachable".into()));
    }
    let read_model = tokio::time::timeout(DEPENDENCY_TIMEOUT, state.read_model.ping()).await;
    if !matches!(read_model, Ok(Ok(()))) {
        return Err(ApiError::Unavailable("read model not reachable".into()));
    }
    let sink = tokio::time::timeout(DEPENDENCY_TIMEOUT, state.sink.ping()).await;
    if !matches!(sink, Ok(Ok(()))) {
        return Err(ApiError::Unavailable("event stream not reachable".into()));
    }
    Ok(Json(Health { status: "ready" }))
}
