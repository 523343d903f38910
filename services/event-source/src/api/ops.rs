//! The operations view over HTTP (agent or `ops:read` tokens): `GET /v1/ops` once as JSON,
//! `GET /v1/ops/stream` as Server-Sent Events, one `event: ops` a second (`crate::ops`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::Json;
use futures::Stream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::problem::ApiError;
use super::stream::{json_event, sse, Follow, MAX_STREAM_AGE};
use super::AppState;
use crate::auth::Principal;
use crate::ops::OpsView;

/// The caller may read the operations view, or a 403.
fn operator(principal: &Principal) -> Result<(), ApiError> {
    if principal.may_read_operations() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "the operations view needs a token with the ops:read or quotes:agent scope".into(),
        ))
    }
}

/// The operations view now: per consumer application its shards (owner, checkpoint,
/// `MillisBehindLatest`, records since the last checkpoint) and dead letters; the outbox.
#[utoipa::path(
    get,
    path = "/v1/ops",
    tag = "operations",
    responses(
        (status = 200, description = "The operations view", body = OpsView),
        (status = 403, description = "The token has neither ops:read nor quotes:agent", body = super::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn ops_view(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<OpsView>, ApiError> {
    operator(&principal)?;
    Ok(Json(state.ops.current().await.as_ref().clone()))
}

/// The operations view, live (Server-Sent Events, one `event: ops` a second).
#[utoipa::path(
    get,
    path = "/v1/ops/stream",
    tag = "operations",
    responses(
        (status = 200, description = "A `text/event-stream`: `event: ops` with the view as `data` (`id` = when it was read, Unix milliseconds), once a second", content_type = "text/event-stream"),
        (status = 403, description = "The token has neither ops:read nor quotes:agent", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many open streams", body = super::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn ops_stream(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    operator(&principal)?;
    let permit = state.open_streams.open()?;
    Ok(sse(
        OpsFollow {
            views: state.ops.subscribe(),
            waits: false,
            opened: Instant::now(),
            _permit: permit,
        },
        &state.open_streams,
    ))
}

/// One open operations stream.
#[derive(Debug)]
struct OpsFollow {
    views: watch::Receiver<Option<Arc<OpsView>>>,
    /// False until the first view is sent (the one current at opening, if any).
    waits: bool,
    opened: Instant,
    /// Held while the stream is open.
    _permit: OwnedSemaphorePermit,
}

impl Follow for OpsFollow {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if std::mem::replace(&mut self.waits, true) {
                let age_left = MAX_STREAM_AGE.checked_sub(self.opened.elapsed())?;
                match tokio::time::timeout(age_left, self.views.changed()).await {
                    Ok(Ok(())) => {}
                    // The monitor is gone or the stream is old enough.
                    Ok(Err(_)) | Err(_) => return None,
                }
            }
            let current = self.views.borrow_and_update().clone();
            if let Some(view) = current {
                let id =
                    u64::try_from(view.read_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                return Some(json_event(id, "ops", view.as_ref()));
            }
        }
    }
}
