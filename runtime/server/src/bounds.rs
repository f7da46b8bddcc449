//! Per-request and per-socket limits of the API (`serve` flags, README "Limits and health") and
//! the live state they are enforced with: the server-wide in-flight permits, the shutdown signal
//! handlers see, and the count of open WebSockets `serve` waits for on SIGTERM (axum stops
//! tracking upgraded connections, so it would otherwise cut them).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// Limits (`serve` flags).
#[derive(Debug, Clone)]
pub struct Bounds {
    /// From arrival to the first generated token (queue wait and prefill included).
    pub first_token_timeout: Duration,
    /// From arrival to the last token.
    pub request_timeout: Duration,
    /// Chat requests in flight over the whole server (HTTP and WebSocket); 429 beyond.
    pub max_concurrent_requests: usize,
    /// SSE comment sent after this long without an event (waiting in the queue, slow prefill).
    pub sse_keepalive: Duration,
    /// Chat requests in flight on one WebSocket; an `error` frame beyond.
    pub ws_max_in_flight: usize,
    /// A ping on every WebSocket this often.
    pub ws_ping_interval: Duration,
    /// A WebSocket closes after this long without any frame from the client (pongs included),
    /// or without a request frame while none is in flight.
    pub ws_idle_timeout: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            first_token_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(600),
            max_concurrent_requests: 512,
            sse_keepalive: Duration::from_secs(10),
            ws_max_in_flight: 32,
            ws_ping_interval: Duration::from_secs(20),
            ws_idle_timeout: Duration::from_secs(120),
        }
    }
}

/// What the limits are enforced with.
pub struct Live {
    in_flight: Arc<Semaphore>,
    max_concurrent: usize,
    shutdown: watch::Sender<bool>,
    ws_open: watch::Sender<usize>,
}

impl Default for Live {
    fn default() -> Self {
        Self::new(&Bounds::default())
    }
}

/// Held while a chat request runs; dropping it frees the slot.
pub type RequestPermit = OwnedSemaphorePermit;

impl Live {
    pub fn new(bounds: &Bounds) -> Self {
        let max = bounds.max_concurrent_requests.max(1);
        Self {
            in_flight: Arc::new(Semaphore::new(max)),
            max_concurrent: max,
            shutdown: watch::channel(false).0,
            ws_open: watch::channel(0).0,
        }
    }

    /// A slot for one more chat request, or 429 when every slot is taken.
    pub fn try_permit(&self) -> Result<RequestPermit, ApiError> {
        self.in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::TooManyRequests {
                limit: self.max_concurrent,
            })
    }

    /// Chat requests in flight right now.
    pub fn in_flight(&self) -> usize {
        self.max_concurrent - self.in_flight.available_permits()
    }

    /// Tells handlers the server is draining (SIGTERM).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn shutdown_watch(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Counts a WebSocket as open until the guard drops.
    pub fn ws_opened(&self) -> WsGuard {
        self.ws_open.send_modify(|n| *n += 1);
        WsGuard(self.ws_open.clone())
    }

    pub fn ws_open(&self) -> usize {
        *self.ws_open.borrow()
    }

    /// Resolves once every WebSocket has closed.
    pub async fn ws_drained(&self) {
        let mut rx = self.ws_open.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

pub struct WsGuard(watch::Sender<usize>);

impl Drop for WsGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The `serve` flags of the limits above and of the engine's health (README "Limits and
/// health").
#[derive(Debug, Clone, clap::Args)]
pub struct BoundsArgs {
    /// Seconds from arrival to the first token (queue wait and prefill included); 504 after.
    #[arg(long, env = "DSR_FIRST_TOKEN_TIMEOUT_SECS", default_value_t = 120)]
    pub first_token_timeout_secs: u64,
    /// Seconds from arrival to the end of a reply; 504 (or an error frame) after.
    #[arg(long, env = "DSR_REQUEST_TIMEOUT_SECS", default_value_t = 600)]
    pub request_timeout_secs: u64,
    /// Chat requests in flight over HTTP and WebSocket together; 429 beyond.
    #[arg(long, env = "DSR_MAX_CONCURRENT_REQUESTS", default_value_t = 512)]
    pub max_concurrent_requests: usize,
    /// Seconds without an event after which a streaming reply gets an SSE keep-alive comment.
    #[arg(long, env = "DSR_SSE_KEEPALIVE_SECS", default_value_t = 10)]
    pub sse_keepalive_secs: u64,
    /// Chat requests in flight on one WebSocket; an `error` frame beyond.
    #[arg(long, env = "DSR_WS_MAX_IN_FLIGHT", default_value_t = 32)]
    pub ws_max_in_flight: usize,
    /// Seconds between the server's pings on each WebSocket.
    #[arg(long, env = "DSR_WS_PING_INTERVAL_SECS", default_value_t = 20)]
    pub ws_ping_interval_secs: u64,
    /// Seconds after which a WebSocket that sends nothing (pongs included), or no request while
    /// none is in flight, is closed.
    #[arg(long, env = "DSR_WS_IDLE_TIMEOUT_SECS", default_value_t = 120)]
    pub ws_idle_timeout_secs: u64,
    /// Watchdog: seconds one forward step may run before the engine counts as stuck (readiness
    /// and liveness fail, waiting requests get an error).
    #[arg(long, env = "DSR_ENGINE_STEP_TIMEOUT_SECS", default_value_t = 120)]
    pub engine_step_timeout_secs: u64,
    /// TEST ONLY: makes the engine fail (`engine-panic-after:N`, `worker-panic-after:N`,
    /// `stuck-step-after:N`) for the chaos tests. Never set in production.
    #[arg(long, env = "DSR_FAULT_INJECTION", hide = true)]
    pub fault_injection: Option<deepseek_engine::engine::fault::Fault>,
}

impl Default for BoundsArgs {
    fn default() -> Self {
        let b = Bounds::default();
        Self {
            first_token_timeout_secs: b.first_token_timeout.as_secs(),
            request_timeout_secs: b.request_timeout.as_secs(),
            max_concurrent_requests: b.max_concurrent_requests,
            sse_keepalive_secs: b.sse_keepalive.as_secs(),
            ws_max_in_flight: b.ws_max_in_flight,
            ws_ping_interval_secs: b.ws_ping_interval.as_secs(),
            ws_idle_timeout_secs: b.ws_idle_timeout.as_secs(),
            engine_step_timeout_secs: deepseek_engine::engine::health::DEFAULT_STEP_TIMEOUT
                .as_secs(),
            fault_injection: None,
        }
    }
}

impl BoundsArgs {
    pub fn bounds(&self) -> Bounds {
        let secs = |s: u64| Duration::from_secs(s.max(1));
        Bounds {
            first_token_timeout: secs(self.first_token_timeout_secs),
            request_timeout: secs(self.request_timeout_secs),
            max_concurrent_requests: self.max_concurrent_requests.max(1),
            sse_keepalive: secs(self.sse_keepalive_secs),
            ws_max_in_flight: self.ws_max_in_flight.max(1),
            ws_ping_interval: secs(self.ws_ping_interval_secs),
            ws_idle_timeout: secs(self.ws_idle_timeout_secs),
        }
    }
}
