//! One accepted connection: hyper's HTTP/1 connection builder with a timer (its header-read
//! timer is the idle limit: it runs while the connection waits for a request), a watchdog for
//! the header-read limit once a request head has started arriving, graceful close on the
//! shutdown signal, and the connection's socket wrapped so that it counts as open (for the cap
//! and the drain) until it is closed, even after an upgrade hands it to a WebSocket handler.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body as AxumBody;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::drain::{Drain, DrainGuard};
use super::limits::ConnLimits;
use super::metrics::{ConnMetrics, TIMEOUT_HEADER_READ, TIMEOUT_IDLE};

/// What the socket, the service and the watchdog of one connection share.
struct ConnState {
    epoch: Instant,
    /// Requests whose response has not finished (the body is dropped when it has).
    in_flight: AtomicUsize,
    /// Answered 101: the socket now belongs to the upgrade's handler, no longer timed here.
    upgraded: AtomicBool,
    /// Milliseconds since `epoch` plus one when the first byte of a request head arrived;
    /// 0 while no head is being read.
    head_started: AtomicU64,
}

impl ConnState {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            upgraded: AtomicBool::new(false),
            head_started: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Bytes arrived: between requests they are the start of the next request's head.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0
            && !self.upgraded.load(Ordering::SeqCst)
            && self.head_started.load(Ordering::SeqCst) == 0
        {
            self.head_started.store(self.now_ms(), Ordering::SeqCst);
        }
    }

    fn head_overdue(&self, limit: Duration) -> bool {
        let started = self.head_started.load(Ordering::SeqCst);
        started != 0 && self.now_ms().saturating_sub(started) > limit.as_millis() as u64
    }
}

/// Counts a request as in flight until its response body is gone.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn start(state: &Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        state.head_started.store(0, Ordering::SeqCst);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection's byte stream after the handshake: the TCP socket itself, or a TLS session
/// over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// What [`Handshake`] hands over.
pub type BoxedIo = Box<dyn Io>;

/// Turns an accepted socket into the stream HTTP is spoken on (a TLS handshake, say). It runs
/// in the connection's own task, inside the connection cap and under the header-read limit, so
/// a client that never finishes its handshake is cut like one that never finishes its head.
pub type Handshake = Arc<
    dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = io::Result<BoxedIo>> + Send>> + Send + Sync,
>;

/// The accepted socket: notes arriving bytes for the watchdog, and holds the connection's
/// places in the open count and the drain until it is dropped.
struct WatchedIo {
    tcp: BoxedIo,
    state: Arc<ConnState>,
    _open: OpenSlot,
    _drain: DrainGuard,
}

/// One of `--max-connections`, and one on the open-connections gauge.
pub(crate) struct OpenSlot {
    open: Arc<AtomicUsize>,
    metrics: ConnMetrics,
}

impl OpenSlot {
    pub(crate) fn take(open: &Arc<AtomicUsize>, metrics: &ConnMetrics) -> Self {
        open.fetch_add(1, Ordering::SeqCst);
        metrics.open.inc();
        Self {
            open: open.clone(),
            metrics: metrics.clone(),
        }
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        self.metrics.open.dec();
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
        }
        r
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// The response body, holding its request's place in flight until hyper drops it.
struct TrackedBody {
    inner: AxumBody,
    _in_flight: InFlight,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The app for one connection: every request carries the [`Drain`] in its extensions.
#[derive(Clone)]
struct ConnService {
    app: Router,
    state: Arc<ConnState>,
    drain: Drain,
}

type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<TrackedBody>, Infallible>> + Send>>;

impl hyper::service::Service<http::Request<Incoming>> for ConnService {
    type Response = http::Response<TrackedBody>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::start(&self.state);
        let mut req = req.map(AxumBody::new);
        req.extensions_mut().insert(self.drain.clone());
        let (app, state) = (self.app.clone(), self.state.clone());
        Box::pin(async move {
            let resp = app.oneshot(req).await?;
            if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                state.upgraded.store(true, Ordering::SeqCst);
            }
            Ok(resp.map(|inner| TrackedBody {
                inner,
                _in_flight: in_flight,
            }))
        })
    }
}

/// Serves one connection until it closes, a limit cuts it, or the drain ends it.
pub(crate) async fn serve_connection(
    tcp: TcpStream,
    handshake: Option<Handshake>,
    slot: OpenSlot,
    app: Router,
    drain: Drain,
    limits: ConnLimits,
    metrics: ConnMetrics,
) {
    let tcp: BoxedIo = match handshake {
        None => Box::new(tcp),
        Some(handshake) => {
            match tokio::time::timeout(limits.header_read_timeout, handshake(tcp)).await {
                Ok(Ok(io)) => io,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "handshake failed");
                    return;
                }
                Err(_) => {
                    metrics
                        .timeouts
                        .with_label_values(&[TIMEOUT_HEADER_READ])
                        .inc();
                    tracing::debug!("handshake too slow: connection closed");
                    return;
                }
            }
        }
    };
    let state = Arc::new(ConnState::new());
    let io = WatchedIo {
        tcp,
        state: state.clone(),
        _open: slot,
        _drain: drain.guard(),
    };
    let service = ConnService {
        app,
        state: state.clone(),
        drain: drain.clone(),
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        // hyper runs this timer whenever the connection waits for a request head, so it is the
        // idle limit; the watchdog below holds a started head to the shorter header limit.
        .header_read_timeout(limits.idle_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let stopping = drain.stopping();
    tokio::pin!(stopping);
    let mut told_to_stop = false;
    let mut watchdog = tokio::time::interval(watchdog_period(limits.header_read_timeout));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    if e.is_timeout() {
                        metrics.timeouts.with_label_values(&[TIMEOUT_IDLE]).inc();
                    } else {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                return;
            }
            _ = &mut stopping, if !told_to_stop => {
                told_to_stop = true;
                // Idle connections close now; busy ones after their response.
                conn.as_mut().graceful_shutdown();
            }
            _ = watchdog.tick() => {
                if state.head_overdue(limits.header_read_timeout) {
                    metrics.timeouts.with_label_values(&[TIMEOUT_HEADER_READ]).inc();
                    tracing::debug!("request head too slow: connection closed");
                    return;
                }
            }
        }
    }
}

/// How often the header-read limit is checked: a quarter of it, within 50 ms..1 s.
fn watchdog_period(limit: Duration) -> Duration {
    (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}
