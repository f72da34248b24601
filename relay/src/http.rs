//! HTTP surfaces: the public one (WebSocket, relay information) and the admin one
//! (metrics, health, readiness, drain), which stays off the public network.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::info::RelayInfo;
use crate::state::RelayState;
use crate::transport::websocket;

/// State of both routers.
#[derive(Clone)]
pub struct HttpState {
    /// The relay.
    pub relay: Arc<RelayState>,
    /// What `/info` answers.
    pub info: Arc<RelayInfo>,
}

/// `/ws` and `/info`.
pub fn public_router(state: HttpState) -> Router {
    Router::new()
        .route(
            "/ws",
            get(websocket::upgrade).with_state(state.relay.clone()),
        )
        .route("/info", get(info))
        .with_state(state)
}

/// `/metrics`, `/healthz`, `/readyz`, `POST /drain`.
pub fn admin_router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/drain", post(drain))
        .route("/info", get(info))
        .with_state(state)
}

async fn info(State(state): State<HttpState>) -> impl IntoResponse {
    let mut info = RelayInfo::clone(&state.info);
    info.draining = state.relay.is_draining();
    info.meetings = state.relay.meeting_count();
    (
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(info),
    )
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    state
        .relay
        .metrics()
        .runtime_tasks
        .set(i64::try_from(tasks).unwrap_or(i64::MAX));
    let paused = state.relay.core.paused_layers();
    state
        .relay
        .metrics()
        .paused_layers
        .set(i64::try_from(paused).unwrap_or(i64::MAX));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.relay.metrics().render(),
    )
}

async fn ready(State(state): State<HttpState>) -> impl IntoResponse {
    if state.relay.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        (StatusCode::OK, "ready")
    }
}

async fn drain(State(state): State<HttpState>) -> impl IntoResponse {
    if state.relay.start_drain() {
        (StatusCode::ACCEPTED, "drain started")
    } else {
        (StatusCode::OK, "already draining")
    }
}
