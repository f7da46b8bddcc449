//! The connection limits as flags (each with a `DSR_*` twin), shared by `serve` and `route`.

use std::time::Duration;

pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Limits on every accepted connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnLimits {
    /// From the first byte of a request head to its last (slowloris).
    pub header_read_timeout: Duration,
    /// A connection waiting for a request (fresh or kept alive) is closed after this.
    pub idle_timeout: Duration,
    /// Open connections (upgraded ones included); more are answered 503 and closed.
    pub max_connections: usize,
    /// After the shutdown signal: how long in-flight work may go on.
    pub drain: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            drain: Duration::from_secs(30),
        }
    }
}

/// Connection flags, flattened into `serve` and `route` (the drain deadline stays their own
/// `--shutdown-grace-secs`).
#[derive(Debug, Clone, clap::Args)]
pub struct ConnArgs {
    /// Seconds from the first byte of a request head to its end; slower clients are cut
    /// (slowloris).
    #[arg(long, env = "DSR_HEADER_READ_TIMEOUT_SECONDS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECS)]
    pub header_read_timeout_seconds: u64,
    /// Seconds a connection may wait for its next request (fresh or kept alive) before it is
    /// closed.
    #[arg(long, env = "DSR_IDLE_TIMEOUT_SECONDS", default_value_t = DEFAULT_IDLE_TIMEOUT_SECS)]
    pub idle_timeout_seconds: u64,
    /// Most open connections (WebSockets included); more are answered 503 and closed.
    #[arg(long, env = "DSR_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
}

impl Default for ConnArgs {
    fn default() -> Self {
        Self {
            header_read_timeout_seconds: DEFAULT_HEADER_READ_TIMEOUT_SECS,
            idle_timeout_seconds: DEFAULT_IDLE_TIMEOUT_SECS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ConnArgs {
    /// The limits, with `drain` from the caller's grace flag; zero values are raised to the
    /// smallest that still serves.
    pub fn limits(&self, drain: Duration) -> ConnLimits {
        ConnLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds.max(1)),
            max_connections: self.max_connections.max(1),
            drain,
        }
    }
}
