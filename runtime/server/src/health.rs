//! `/healthz` (liveness: fails when the engine thread is dead or a step is stuck past the
//! watchdog, so Kubernetes restarts the pod), `/readyz` (readiness: the engine can serve right
//! now and the server is not draining) and `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;
use deepseek_engine::engine::health::EngineState;

/// Alive unless the engine can never serve again by itself. Warming up counts as alive: a slow
/// load is the startup probe's business, and a warm-up that fails stops the engine.
pub async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    let state = st.engine.state();
    let body = Json(json!({"status": state.as_str()}));
    if state.is_dead() {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    } else {
        body.into_response()
    }
}

pub async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    let state = st.engine.state();
    let status = if st.live.shutting_down() {
        "draining"
    } else {
        state.as_str()
    };
    let code = if state == EngineState::Ready && status != "draining" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({"status": status}))).into_response()
}

pub async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let m = &st.metrics;
    m.engine_up
        .set(i64::from(st.engine.state() == EngineState::Ready));
    m.in_flight_requests.set(st.live.in_flight() as i64);
    m.ws_connections.set(st.live.ws_open() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}
