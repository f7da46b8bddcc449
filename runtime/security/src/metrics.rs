//! The security layers' Prometheus series. They live in their own collectors so the server
//! and the router can register them into the registry their `/metrics` page already renders.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

pub struct SecurityMetrics {
    /// Authentication outcomes: `ok`, `unauthenticated`, `forbidden`.
    pub auth: IntCounterVec,
    /// Requests refused by a rate limit, by `scope` (`principal`, `global`).
    pub rate_limited: IntCounterVec,
    /// Rate-limit store (Redis) failures, by the `policy` applied (`open`: let through,
    /// `closed`: refused).
    pub store_errors: IntCounterVec,
    /// TLS certificate reloads after a file change.
    pub tls_reloads: IntCounter,
}

impl SecurityMetrics {
    pub fn new() -> prometheus::Result<Self> {
        Ok(Self {
            auth: IntCounterVec::new(
                Opts::new("dsr_auth_requests_total", "Authentication outcomes"),
                &["outcome"],
            )?,
            rate_limited: IntCounterVec::new(
                Opts::new(
                    "dsr_rate_limited_requests_total",
                    "Requests refused with 429 by a rate limit",
                ),
                &["scope"],
            )?,
            store_errors: IntCounterVec::new(
                Opts::new(
                    "dsr_rate_limit_store_errors_total",
                    "Rate-limit store failures and the policy applied",
                ),
                &["policy"],
            )?,
            tls_reloads: IntCounter::new(
                "dsr_tls_certificate_reloads_total",
                "TLS certificate reloads after a file change",
            )?,
        })
    }

    /// Adds these series to `registry` (the same counters: registries only read them).
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.auth.clone()))?;
        registry.register(Box::new(self.rate_limited.clone()))?;
        registry.register(Box::new(self.store_errors.clone()))?;
        registry.register(Box::new(self.tls_reloads.clone()))?;
        Ok(())
    }

    pub fn auth_outcome(&self, outcome: &str) {
        self.auth.with_label_values(&[outcome]).inc();
    }
}
