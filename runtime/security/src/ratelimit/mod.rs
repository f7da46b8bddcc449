//! Rate limits: a token bucket per principal (JWT `sub` or API key; one shared bucket for
//! unauthenticated callers) and optionally one global bucket, in memory or on Redis. Every
//! limited response carries OpenAI's `x-ratelimit-*-requests` headers; a refusal is a 429 with
//! `Retry-After`. When Redis cannot be reached the configured policy decides (open: let the
//! request through; closed: 503), and either way a metric counts it and a line is logged.

pub mod bucket;
pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::Principal;
use crate::error::SecurityError;
use crate::metrics::SecurityMetrics;
use crate::routes::{required_role, Role};
use bucket::{BucketView, Limit};
use memory::MemoryStore;
use redis::{RedisStore, RedisUrl};

/// What happens to requests while the Redis store is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FailPolicy {
    /// Serve them unlimited (availability first).
    #[default]
    Open,
    /// Refuse them with 503 (the limit is a hard guarantee).
    Closed,
}

impl FailPolicy {
    fn as_str(self) -> &'static str {
        match self {
            FailPolicy::Open => "open",
            FailPolicy::Closed => "closed",
        }
    }
}

/// The rate-limit flags, shared by `serve` and `route`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RateLimitArgs {
    /// Requests per minute each client (JWT `sub` or API key) may make; no limit when unset.
    /// 3000 is 50 requests a second.
    #[arg(long, env = "DSR_RATE_LIMIT_RPM")]
    pub rate_limit_rpm: Option<u32>,
    /// Requests a client may send at once above the sustained rate; --rate-limit-rpm when unset.
    #[arg(long, env = "DSR_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// Requests per minute over all clients together; no global limit when unset.
    #[arg(long, env = "DSR_RATE_LIMIT_GLOBAL_RPM")]
    pub rate_limit_global_rpm: Option<u32>,
    /// Keep the buckets on Redis (`redis://[:password@]host:port[/db]`) so all replicas share
    /// one budget; in this process's memory when unset.
    #[arg(long, env = "DSR_RATE_LIMIT_REDIS_URL")]
    pub rate_limit_redis_url: Option<String>,
    /// While Redis is unreachable: `open` serves requests unlimited, `closed` refuses them (503).
    #[arg(long, env = "DSR_RATE_LIMIT_FAILURE_POLICY", value_enum, default_value_t = FailPolicy::Open)]
    pub rate_limit_failure_policy: FailPolicy,
}

enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

pub struct RateLimiter {
    per_principal: Option<Limit>,
    global: Option<Limit>,
    store: Store,
    policy: FailPolicy,
    metrics: Arc<SecurityMetrics>,
}

/// Redis key prefix: one namespace for all deployments sharing a Redis, by principal.
const KEY_PREFIX: &str = "dsr:ratelimit:";

impl RateLimiter {
    /// `None` when no limit is configured.
    pub fn new(
        args: &RateLimitArgs,
        metrics: Arc<SecurityMetrics>,
    ) -> anyhow::Result<Option<Self>> {
        let limit = |rpm: u32, burst: Option<u32>| Limit {
            per_minute: rpm.max(1),
            capacity: burst.unwrap_or(rpm).max(1),
        };
        let per_principal = args
            .rate_limit_rpm
            .map(|rpm| limit(rpm, args.rate_limit_burst));
        let global = args.rate_limit_global_rpm.map(|rpm| limit(rpm, None));
        if per_principal.is_none() && global.is_none() {
            return Ok(None);
        }
        let store = match &args.rate_limit_redis_url {
            Some(url) => Store::Redis(RedisStore::new(RedisUrl::parse(url)?)),
            None => Store::Memory(MemoryStore::default()),
        };
        Ok(Some(Self {
            per_principal,
            global,
            store,
            policy: args.rate_limit_failure_policy,
            metrics,
        }))
    }

    /// Decides one request of `principal`: the headers to send, or the refusal.
    pub async fn check(&self, principal: &str) -> Result<Option<HeaderMap>, SecurityError> {
        let mut scopes = Vec::with_capacity(2);
        let mut keys = Vec::with_capacity(2);
        if let Some(l) = self.per_principal {
            scopes.push("principal");
            keys.push((format!("{KEY_PREFIX}p:{principal}"), l));
        }
        if let Some(l) = self.global {
            scopes.push("global");
            keys.push((format!("{KEY_PREFIX}global"), l));
        }
        let outcome = match &self.store {
            Store::Memory(m) => Ok(m.take(&keys)),
            Store::Redis(r) => r.take(&keys).await,
        };
        let (allowed, views) = match outcome {
            Ok(o) => o,
            Err(e) => {
                self.metrics
                    .store_errors
                    .with_label_values(&[self.policy.as_str()])
                    .inc();
                tracing::warn!(error = %e, policy = self.policy.as_str(), "rate-limit store unreachable");
                return match self.policy {
                    FailPolicy::Open => Ok(None),
                    FailPolicy::Closed => Err(SecurityError::LimiterUnavailable),
                };
            }
        };
        // The headers describe the tightest bucket: the one the client runs into first.
        let tightest = (0..views.len())
            .min_by_key(|&i| views[i].remaining)
            .unwrap_or(0);
        let shown = headers(&keys[tightest].1, &views[tightest]);
        if allowed {
            return Ok(Some(shown));
        }
        // The bucket that refused: the first one without a whole token.
        let refusing = (0..views.len())
            .find(|&i| views[i].retry_after_ms > 0)
            .unwrap_or(tightest);
        let scope = scopes[refusing];
        self.metrics.rate_limited.with_label_values(&[scope]).inc();
        Err(SecurityError::RateLimited {
            scope,
            retry_after_secs: views[refusing].retry_after_ms.div_ceil(1000).max(1),
            headers: shown,
        })
    }
}

/// OpenAI's rate-limit headers for one bucket.
fn headers(limit: &Limit, view: &BucketView) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "x-ratelimit-limit-requests",
        HeaderValue::from(limit.per_minute),
    );
    h.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from(view.remaining),
    );
    if let Ok(v) = HeaderValue::from_str(&go_duration(Duration::from_millis(view.reset_ms))) {
        h.insert("x-ratelimit-reset-requests", v);
    }
    h
}

/// A duration the way OpenAI writes resets (Go's format): `120ms`, `1s`, `6m0s`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    let (m, s) = ((secs / 60.0).floor() as u64, secs % 60.0);
    let s = format!("{s:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if m == 0 {
        format!("{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

/// The axum middleware; runs after auth, so the principal (if any) is in the extensions.
/// Only chat traffic is limited: probes and admin pages never are.
pub async fn limit_requests(
    State(limiter): State<Arc<RateLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    if required_role(req.uri().path()) != Some(Role::Chat) {
        return next.run(req).await;
    }
    let principal = req
        .extensions()
        .get::<Principal>()
        .map(|p| p.id.clone())
        .unwrap_or_else(|| "anonymous".into());
    match limiter.check(&principal).await {
        Ok(headers) => {
            let mut resp = next.run(req).await;
            if let Some(h) = headers {
                resp.headers_mut().extend(h);
            }
            resp
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_are_written_like_openai_does() {
        assert_eq!(go_duration(Duration::from_millis(120)), "120ms");
        assert_eq!(go_duration(Duration::from_millis(1000)), "1s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(360)), "6m0s");
    }
}
