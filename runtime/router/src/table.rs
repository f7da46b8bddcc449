//! One loaded route table: the validated config, its splitter, a round-robin cursor per
//! revision over its backends, and the HTTP client (connection pool) those backends share.
//! A reload builds a new `Table` and swaps it in whole; requests keep the `Arc` they started
//! with, so in-flight requests finish on the backend they were sent to.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::config::RouteConfig;
use super::split::Splitter;

const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub struct Table {
    pub config: RouteConfig,
    /// Revision names, shared cheaply with every response body that records stats.
    pub names: Vec<Arc<str>>,
    splitter: Splitter,
    cursors: Vec<AtomicUsize>,
    pub client: HttpClient,
}

impl Table {
    pub fn new(config: RouteConfig) -> Self {
        let weights: Vec<u32> = config.revisions.iter().map(|r| r.weight).collect();
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        // Small SSE chunks must leave at once, not wait for Nagle.
        connector.set_nodelay(true);
        // Idle pooled connections are dropped before a backend's own idle limit (`serve`'s
        // `--idle-timeout-seconds`, 60 s by default) closes them under a request.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        Self {
            names: config
                .revisions
                .iter()
                .map(|r| Arc::from(r.name.as_str()))
                .collect(),
            splitter: Splitter::new(&weights),
            cursors: config
                .revisions
                .iter()
                .map(|_| AtomicUsize::new(0))
                .collect(),
            client,
            config,
        }
    }

    /// The revision for a request: sticky when it carries the session header.
    pub fn pick(&self, headers: &HeaderMap) -> usize {
        match headers.get(&self.config.session_header) {
            Some(v) if !v.is_empty() => self.splitter.sticky(v.as_bytes()),
            _ => self.splitter.next(),
        }
    }

    /// Where this request starts its round robin over the revision's backends.
    pub fn next_start(&self, revision: usize) -> usize {
        self.cursors[revision].fetch_add(1, Ordering::Relaxed)
    }

    pub fn backends(&self, revision: usize) -> &[Uri] {
        &self.config.revisions[revision].backends
    }

    /// `(name, weight)` in route order, for the stats snapshot.
    pub fn weights(&self) -> Vec<(&str, u32)> {
        self.config
            .revisions
            .iter()
            .map(|r| (r.name.as_str(), r.weight))
            .collect()
    }
}
