//! `/healthz` and `/readyz`, on the public listener and the admin one.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::state::AppState;

/// Alive: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready: the engine answers, the server is not shutting down and the
/// public listener is below its connection cap.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if !state.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_string());
    }
    if state.gauge.open() >= state.gauge.cap() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "at the connection cap".to_string(),
        );
    }
    match tokio::time::timeout(Duration::from_secs(2), state.switchboard.stats()).await {
        Ok(Ok(stats)) => (
            StatusCode::OK,
            format!("ready: {} open sessions", stats.n_open_sessions),
        ),
        Ok(Err(err)) => (StatusCode::SERVICE_UNAVAILABLE, format!("engine: {err}")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "engine did not answer within 2 s".into(),
        ),
    }
}
