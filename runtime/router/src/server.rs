//! Axum wiring: the router's own endpoints (`/healthz`, `/readyz`, `/metrics`, `/admin/stats`)
//! and the proxy as the fallback for every other path and method.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::net::TcpListener;

use super::proxy::proxy;
use super::reload::Routes;
use super::stats::Stats;

pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
pub const ADMIN_STATS: &str = "/admin/stats";

pub struct App {
    pub routes: Arc<Routes>,
    pub stats: Arc<Stats>,
    /// Largest request body buffered for retries (413 beyond it).
    pub max_body_bytes: usize,
    /// Browser origins allowed to open WebSockets through the router (`--allowed-origins`).
    pub origins: deepseek_http::OriginPolicy,
}

pub fn app(state: Arc<App>) -> Router {
    Router::new()
        .route(HEALTHZ, get(|| async { "ok" }))
        .route(READYZ, get(readyz))
        .route(METRICS, get(metrics))
        .route(ADMIN_STATS, get(admin_stats))
        .fallback(proxy)
        .with_state(state)
}

/// Ready once routes are loaded, which `route` requires before it listens; the body names the
/// live weights so a probe's log shows what the pod routes.
async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let table = app.routes.current();
    let weights: Vec<String> = table
        .weights()
        .iter()
        .map(|(n, w)| format!("{n}={w}"))
        .collect();
    (StatusCode::OK, weights.join(","))
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.stats.metrics.render(),
    )
}

async fn admin_stats(State(app): State<Arc<App>>) -> impl IntoResponse {
    let table = app.routes.current();
    let mut snapshot = app.stats.snapshot(&table.weights());
    snapshot.routes_generation = table.config.generation.clone();
    Json(snapshot)
}

/// Serves until SIGTERM, then lets in-flight requests (open streams too) finish for up to
/// `grace` (`deepseek_http::serve`), with TCP_NODELAY on every accepted socket: a forwarded SSE
/// token is one small write, and Nagle would hold it until the client acknowledges the last.
pub async fn serve(listener: TcpListener, app: Router, grace: Duration) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    deepseek_http::serve(listener, app, deepseek_http::shutdown_signal(), grace).await
}
