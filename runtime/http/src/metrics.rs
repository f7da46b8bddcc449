//! Connection metrics, registered on the caller's registry so they appear on its `/metrics`.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub const OPEN_CONNECTIONS: &str = "dsr_http_open_connections";
pub const CONNECTIONS: &str = "dsr_http_connections_total";
pub const REFUSED_CONNECTIONS: &str = "dsr_http_connections_refused_total";
pub const CONNECTION_TIMEOUTS: &str = "dsr_http_connection_timeouts_total";
pub const CUT_AT_DRAIN: &str = "dsr_http_connections_cut_at_drain_total";
pub const LABEL_KIND: &str = "kind";
/// `kind` of [`CONNECTION_TIMEOUTS`].
pub const TIMEOUT_HEADER_READ: &str = "header_read";
pub const TIMEOUT_IDLE: &str = "idle";

#[derive(Clone)]
pub struct ConnMetrics {
    pub open: IntGauge,
    pub accepted: IntCounter,
    pub refused: IntCounter,
    pub timeouts: IntCounterVec,
    pub cut_at_drain: IntCounter,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    c: T,
) -> prometheus::Result<T> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl ConnMetrics {
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            open: register(
                r,
                IntGauge::new(
                    OPEN_CONNECTIONS,
                    "Open client connections, upgraded (WebSocket) ones included",
                )?,
            )?,
            accepted: register(
                r,
                IntCounter::new(CONNECTIONS, "Client connections accepted and served")?,
            )?,
            refused: register(
                r,
                IntCounter::new(
                    REFUSED_CONNECTIONS,
                    "Client connections answered 503 and closed because --max-connections were open",
                )?,
            )?,
            timeouts: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        CONNECTION_TIMEOUTS,
                        "Connections closed by a limit: header_read (a request head too slow) or idle (no request in time)",
                    ),
                    &[LABEL_KIND],
                )?,
            )?,
            cut_at_drain: register(
                r,
                IntCounter::new(
                    CUT_AT_DRAIN,
                    "Connections still open when the shutdown drain deadline passed",
                )?,
            )?,
        })
    }

    /// Metrics on a registry of their own (nobody renders them; for callers without one).
    pub fn detached() -> Self {
        #[allow(clippy::expect_used)] // fixed names on a fresh registry cannot collide
        Self::register(&Registry::new()).expect("fresh registry")
    }
}
