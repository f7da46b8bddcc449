//! deepseek-http: the graceful HTTP serve loop, the shutdown signal and the request checks
//! (`origin`: Origin allow-list, JSON content type), and the caller's `Principal`, shared by the API server and the router.
//! Is NOT: routes, handlers or error shapes (each server owns those).
//!
//! Serving with graceful shutdown: on the shutdown signal, stop accepting connections, let
//! in-flight requests (including open streams) finish for up to `grace`, then return.

pub mod origin;
pub mod principal;

pub use origin::{is_json, OriginPolicy};
pub use principal::Principal;

use std::future::{Future, IntoFuture};
use std::time::Duration;

use axum::serve::Listener;
use axum::Router;
use tokio::sync::watch;

/// Serves `app` until `shutdown` resolves and in-flight requests finish (or `grace` passes).
/// Any axum listener: a `TcpListener`, or one wrapped to tune each connection (the router
/// sets `TCP_NODELAY`).
pub async fn serve<L>(
    listener: L,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()>
where
    L: Listener,
    L::Addr: std::fmt::Debug,
{
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let signal = async move {
        shutdown.await;
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "shutting down: no new connections"
        );
        let _ = stopping_tx.send(true);
    };
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .into_future();
    let deadline = async move {
        let _ = stopping_rx.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = server => r,
        _ = deadline => {
            tracing::warn!("grace period over: closing the remaining connections");
            Ok(())
        }
    }
}

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
