//! Axum wiring: the router's own endpoints (`/healthz`, `/readyz`, `/metrics`, `/admin/stats`)
//! and the proxy as the fallback for every other path and method.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::admission::Admission;
use super::health::Health;
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
    pub health: Arc<Health>,
    pub admission: Admission,
    /// Largest request body buffered for retries (413 beyond it).
    pub max_body_bytes: usize,
    /// A 5xx answer is retried once per remaining backend of the revision.
    pub retry_5xx: bool,
    /// Browser origins allowed to open WebSockets through the router (`--allowed-origins`).
    pub origins: deepseek_http::OriginPolicy,
}

/// Every endpoint on one port (no `--admin-port`).
pub fn app(state: Arc<App>) -> Router {
    Router::new()
        .route(HEALTHZ, get(|| async { "ok" }))
        .route(READYZ, get(readyz))
        .route(METRICS, get(metrics))
        .route(ADMIN_STATS, get(admin_stats))
        .fallback(proxy)
        .with_state(state)
}

/// The public port with `--admin-port`: probes and the proxy, nothing administrative.
pub fn public_app(state: Arc<App>) -> Router {
    Router::new()
        .route(HEALTHZ, get(|| async { "ok" }))
        .route(READYZ, get(readyz))
        .fallback(proxy)
        .with_state(state)
}

/// The admin port (`--admin-port`): metrics, stats and the probes; never proxies.
pub fn admin_app(state: Arc<App>) -> Router {
    Router::new()
        .route(HEALTHZ, get(|| async { "ok" }))
        .route(READYZ, get(readyz))
        .route(METRICS, get(metrics))
        .route(ADMIN_STATS, get(admin_stats))
        .with_state(state)
}

/// Ready when routes are loaded and every revision with weight has a healthy backend (not
/// ejected, not failing its probe, not failing request after request). The body names the
/// live weights, or what is missing, so a probe's log shows why.
async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let Some(table) = app.routes.current() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no route file loaded".to_string(),
        );
    };
    let unhealthy: Vec<&str> = table
        .config
        .revisions
        .iter()
        .filter(|r| r.weight > 0 && !app.health.any_healthy(&r.backends))
        .map(|r| r.name.as_str())
        .collect();
    if !unhealthy.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no healthy backend for revision(s) {}", unhealthy.join(",")),
        );
    }
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
    let Some(table) = app.routes.current() else {
        return Json(app.stats.snapshot(&[]));
    };
    let mut snapshot = app.stats.snapshot(&table.weights());
    snapshot.routes_generation = table.config.generation.clone();
    snapshot.backends = table
        .config
        .revisions
        .iter()
        .flat_map(|r| app.health.view(&r.name, &r.backends))
        .collect();
    Json(snapshot)
}
