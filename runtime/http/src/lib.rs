//! deepseek-http: the bounded, graceful HTTP serve loop, the shutdown signal, the request
//! checks (`origin`: Origin allow-list, JSON content type) and the caller's `Principal`, shared
//! by the API server and the router. Is NOT: routes, handlers or error shapes (each server owns
//! those).
//!
//! Every connection is bounded ([`ConnLimits`]): a cap on open connections (excess ones get a
//! 503 and are closed), an idle limit while a connection waits for a request, and a
//! header-read limit once a request head has started (slowloris). On the shutdown signal the
//! server stops accepting, lets in-flight requests, open streams and upgraded (WebSocket)
//! connections finish until the drain deadline, tells whoever still holds one to say goodbye
//! ([`Drain::closing`]), then returns. Handlers find the [`Drain`] in every request's
//! extensions.

mod conn;
mod drain;
mod limits;
mod metrics;
pub mod origin;
pub mod principal;
mod serve;

pub use origin::{is_json, OriginPolicy};
pub use principal::Principal;

pub use conn::{BoxedIo, Handshake, Io};
pub use drain::{Drain, DrainGuard};
pub use limits::{ConnArgs, ConnLimits};
pub use metrics::ConnMetrics;
pub use serve::{serve, serve_with_handshake};

/// Resolves on SIGTERM (Kubernetes) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
