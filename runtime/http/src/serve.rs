//! The accept loop: every connection within `--max-connections` is served on its own task;
//! one beyond it gets a 503 and is closed. On the shutdown signal the listener closes and the
//! drain runs (see the crate docs).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::conn::{serve_connection, Handshake, OpenSlot};
use super::drain::Drain;
use super::limits::ConnLimits;
use super::metrics::ConnMetrics;

/// After the drain deadline: how long handlers get to send their goodbyes.
const LAST_WORDS: Duration = Duration::from_secs(1);
/// How long a refused connection is given to take its 503.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

const REFUSAL_BODY: &str = r#"{"error":{"message":"The server has too many open connections; retry shortly","type":"server_error","param":null,"code":"too_many_connections"}}"#;

/// Serves `app` on `listener` under `limits` until `shutdown` resolves, then drains (up to
/// `limits.drain`) and returns. `drain` is the handle handlers and tunnels watch; it is also in
/// every request's extensions.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnLimits,
    drain: Drain,
    metrics: ConnMetrics,
) -> std::io::Result<()> {
    serve_with_handshake(listener, None, app, shutdown, limits, drain, metrics).await
}

/// [`serve`], with every accepted socket passed through `handshake` (TLS) before HTTP.
pub async fn serve_with_handshake(
    listener: TcpListener,
    handshake: Option<Handshake>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnLimits,
    drain: Drain,
    metrics: ConnMetrics,
) -> std::io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small SSE chunks must leave at once, not wait for Nagle.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        if open.load(Ordering::SeqCst) >= limits.max_connections {
            metrics.refused.inc();
            tokio::spawn(refuse(tcp));
            continue;
        }
        metrics.accepted.inc();
        let slot = OpenSlot::take(&open, &metrics);
        tokio::spawn(serve_connection(
            tcp,
            handshake.clone(),
            slot,
            app.clone(),
            drain.clone(),
            limits,
            metrics.clone(),
        ));
    }
    drop(listener);
    tracing::info!(
        drain_secs = limits.drain.as_secs_f64(),
        open = drain.active(),
        "shutting down: no new connections"
    );
    drain.begin_stopping();
    if tokio::time::timeout(limits.drain, drain.idle())
        .await
        .is_err()
    {
        tracing::warn!(
            open = drain.active(),
            "drain deadline passed: closing the remaining connections"
        );
        drain.begin_closing();
        let _ = tokio::time::timeout(LAST_WORDS, drain.idle()).await;
        metrics.cut_at_drain.inc_by(drain.active() as u64);
    }
    Ok(())
}

/// A 503 in OpenAI's error shape, then close. The answer waits for the request head (an HTTP
/// client takes an answer before its request as a protocol error), and what the client sends
/// after it is read and dropped for a moment, so the close does not reset the connection
/// before the client has read the answer.
async fn refuse(mut tcp: TcpStream) {
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        REFUSAL_BODY.len()
    );
    let answer = async {
        let mut request = Vec::new();
        let mut chunk = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
            match tcp.read(&mut chunk).await? {
                0 => return Ok(()),
                n => request.extend_from_slice(&chunk[..n]),
            }
        }
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(REFUSAL_BODY.as_bytes()).await?;
        tcp.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tcp.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_TIME, answer).await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Extension;
    use std::time::Instant;

    async fn start(limits: ConnLimits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Every request finds the drain in its extensions.
        let app = Router::new().route(
            "/",
            get(|Extension(drain): Extension<Drain>| async move {
                format!("stopping={}", drain.is_stopping())
            }),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        tokio::spawn(serve(
            listener,
            app,
            shutdown,
            limits,
            Drain::new(),
            ConnMetrics::detached(),
        ));
        (addr, tx)
    }

    async fn request(addr: std::net::SocketAddr) -> String {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.unwrap();
        out
    }

    /// Waits until the server closes `tcp`; how long that took.
    async fn closed_after(mut tcp: TcpStream) -> Duration {
        let started = Instant::now();
        let mut buf = [0u8; 256];
        while !matches!(tcp.read(&mut buf).await, Ok(0) | Err(_)) {}
        started.elapsed()
    }

    fn limits() -> ConnLimits {
        ConnLimits {
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_secs(1),
            max_connections: 2,
            drain: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn a_trickled_head_is_cut_at_the_header_limit_and_an_idle_one_at_the_idle_limit() {
        let (addr, _stop) = start(limits()).await;
        assert!(request(addr).await.ends_with("stopping=false"));
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let idle = TcpStream::connect(addr).await.unwrap();
        let (slow_lived, idle_lived) = tokio::join!(closed_after(slow), closed_after(idle));
        assert!(slow_lived < Duration::from_millis(800), "{slow_lived:?}");
        assert!(
            idle_lived >= Duration::from_millis(900) && idle_lived < Duration::from_secs(3),
            "{idle_lived:?}"
        );
    }

    #[tokio::test]
    async fn a_connection_beyond_the_cap_gets_a_503_and_shutdown_stops_accepting() {
        let (addr, stop) = start(limits()).await;
        let held: Vec<TcpStream> = vec![
            TcpStream::connect(addr).await.unwrap(),
            TcpStream::connect(addr).await.unwrap(),
        ];
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = request(addr).await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        assert!(refused.contains("too_many_connections"), "{refused}");
        drop(held);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(request(addr).await.ends_with("stopping=false"));
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer accepting"
        );
    }
}
