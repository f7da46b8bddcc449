//! deepseek-server: the OpenAI-compatible HTTP/WebSocket API over the engine, and `serve`
//! (load, verify, warm up, listen). Is: handlers, the one error-to-HTTP mapping, degradation,
//! readiness and metrics pages. Is NOT: wire types or validation rules (`deepseek-protocol`),
//! the model or its batching (`deepseek-engine`), the router (`deepseek-router`).
//!
//! HTTP and WebSocket API (axum): chat completions (JSON and SSE), models, the WebSocket chat,
//! health, readiness and metrics. Handlers only parse, validate, submit to the engine and shape
//! replies; every failure goes through `error::ApiError`.

pub mod bounds;
pub mod chat;
pub mod degrade;
pub mod error;
pub mod health;
pub mod models;
pub mod privacy;
pub mod reasoning;
pub mod serve;
pub mod sse;
pub mod wait;
pub mod ws;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::routing::{get, post};
use axum::Router;

use deepseek_engine::engine::EngineHandle;
use deepseek_engine::metrics::Metrics;
use deepseek_protocol::validate::{Limits, PromptBuilder};

pub use error::ApiError;

/// Everything the handlers share.
pub struct AppState {
    pub engine: EngineHandle,
    pub prompt: Arc<dyn PromptBuilder>,
    pub limits: Limits,
    pub revision: String,
    /// Unix seconds when the server started (the model card's `created`).
    pub created: i64,
    pub metrics: Arc<Metrics>,
    /// Largest accepted request body (413 beyond it).
    pub max_body_bytes: usize,
    /// Overload policy and the answer cache it serves from.
    pub degrade: degrade::Degradation,
    /// Browser origins allowed to open `/ws/chat` (`--allowed-origins`).
    pub origins: deepseek_http::OriginPolicy,
    /// Redaction, the conversation store and the privacy endpoints' settings.
    pub privacy: Arc<privacy::Privacy>,
    /// Deadlines and concurrency limits (`serve` flags).
    pub bounds: bounds::Bounds,
    /// What enforces them: concurrency slots, the shutdown signal, open WebSockets.
    pub live: bounds::Live,
}

/// The full route table: the API plus `/metrics` (one port, as without `--admin-port`).
pub fn router(state: Arc<AppState>) -> Router {
    with_fallbacks(
        api_routes(&state).route("/metrics", get(health::metrics)),
        state,
    )
}

/// The public port's routes when `/metrics` is served on the admin port.
pub fn api_router(state: Arc<AppState>) -> Router {
    with_fallbacks(api_routes(&state), state)
}

/// The API; the privacy endpoints only with `--privacy-endpoints` (auth then asks for the
/// `admin` role on them).
fn api_routes(state: &AppState) -> Router<Arc<AppState>> {
    let privacy_routes = if state.privacy.config.privacy_endpoints {
        privacy::endpoints::routes()
    } else {
        Router::new()
    };
    Router::new()
        .merge(privacy_routes)
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/models", get(models::list_models))
        .route("/ws/chat", get(ws::ws_chat))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
}

fn with_fallbacks(routes: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    let max_body_bytes = state.max_body_bytes;
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// The admin port's routes (`--admin-port`): metrics and the probes, never the API.
pub fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
