//! Per-revision outcome counters and latency histogram: every finished proxied request is
//! recorded once, into both the JSON snapshot behind `/admin/stats` and the Prometheus series,
//! so the two always agree. Counters are cumulative since process start and kept for revisions
//! that have left the routes (the operator diffs snapshots).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::metrics::{RouterMetrics, LATENCY_BOUNDS};

/// Why a request failed, as the contract's `errors` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The backend answered 5xx, or broke off after the request was sent.
    Upstream5xx,
    /// No backend of the revision accepted a connection.
    Connect,
    /// The whole-request timeout passed.
    Timeout,
    /// The backend (or the router) answered 4xx: the client's fault, not the revision's.
    Client4xx,
}

impl ErrorClass {
    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::Upstream5xx => "upstream_5xx",
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Client4xx => "client_4xx",
        }
    }

    /// The class a backend's status implies, when it is an error.
    pub fn of_status(status: StatusCode) -> Option<Self> {
        if status.is_server_error() {
            Some(ErrorClass::Upstream5xx)
        } else if status.is_client_error() {
            Some(ErrorClass::Client4xx)
        } else {
            None
        }
    }
}

/// `1xx` .. `5xx`.
pub fn code_class(status: StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorCounts {
    pub upstream_5xx: u64,
    pub connect: u64,
    pub timeout: u64,
    pub client_4xx: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    pub bounds: Vec<f64>,
    /// Requests that took at most `bounds[i]` seconds.
    pub cumulative_counts: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            bounds: LATENCY_BOUNDS.to_vec(),
            cumulative_counts: vec![0; LATENCY_BOUNDS.len()],
            count: 0,
            sum: 0.0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RevisionStats {
    pub name: String,
    /// Current weight; 0 for a revision no longer in the routes.
    pub weight: u32,
    pub requests: u64,
    pub errors: ErrorCounts,
    /// Of `errors.upstream_5xx`, the streams that failed after their 200 went out (the backend
    /// broke off or sent an in-band error frame).
    #[serde(default)]
    pub midstream_failures: u64,
    pub latency_seconds: LatencyHistogram,
}

/// The `/admin/stats` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// The `generation` of the route file this router serves (absent when the file has none).
    /// It changes only when a reload is accepted, so an operator waiting for it knows no
    /// request of this router goes to a revision the new table dropped.
    #[serde(
        rename = "routesGeneration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub routes_generation: Option<String>,
    pub revisions: Vec<RevisionStats>,
    /// Every backend of the current routes and its health (ejections, probes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<super::health::BackendView>,
}

pub struct Stats {
    by_revision: Mutex<BTreeMap<String, RevisionStats>>,
    pub metrics: RouterMetrics,
}

impl Stats {
    pub fn new(metrics: RouterMetrics) -> Self {
        Self {
            by_revision: Mutex::new(BTreeMap::new()),
            metrics,
        }
    }

    /// Records one finished request: `status` is what the client got.
    pub fn record(
        &self,
        revision: &str,
        status: StatusCode,
        error: Option<ErrorClass>,
        latency: Duration,
    ) {
        let secs = latency.as_secs_f64();
        let m = &self.metrics;
        m.requests
            .with_label_values(&[revision, code_class(status)])
            .inc();
        m.duration.with_label_values(&[revision]).observe(secs);
        if let Some(class) = error {
            m.errors.with_label_values(&[revision, class.label()]).inc();
        }
        let mut map = self.by_revision.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry(revision.to_string())
            .or_insert_with(|| RevisionStats {
                name: revision.to_string(),
                ..Default::default()
            });
        entry.requests += 1;
        match error {
            Some(ErrorClass::Upstream5xx) => entry.errors.upstream_5xx += 1,
            Some(ErrorClass::Connect) => entry.errors.connect += 1,
            Some(ErrorClass::Timeout) => entry.errors.timeout += 1,
            Some(ErrorClass::Client4xx) => entry.errors.client_4xx += 1,
            None => {}
        }
        let h = &mut entry.latency_seconds;
        for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
            if secs <= *bound {
                h.cumulative_counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts a stream that failed after it started; `record` counts it as an error too.
    pub fn record_midstream(&self, revision: &str) {
        self.metrics.midstream.with_label_values(&[revision]).inc();
        let mut map = self.by_revision.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(revision.to_string())
            .or_insert_with(|| RevisionStats {
                name: revision.to_string(),
                ..Default::default()
            })
            .midstream_failures += 1;
    }

    /// Revisions in route order (with their weights), then those that left the routes.
    pub fn snapshot(&self, routes: &[(&str, u32)]) -> StatsSnapshot {
        let map = self.by_revision.lock().unwrap_or_else(|e| e.into_inner());
        let mut revisions: Vec<RevisionStats> = routes
            .iter()
            .map(|(name, weight)| RevisionStats {
                weight: *weight,
                ..map.get(*name).cloned().unwrap_or_else(|| RevisionStats {
                    name: name.to_string(),
                    ..Default::default()
                })
            })
            .collect();
        for (name, s) in map.iter() {
            if !routes.iter().any(|(n, _)| n == name) {
                revisions.push(RevisionStats {
                    weight: 0,
                    ..s.clone()
                });
            }
        }
        StatsSnapshot {
            routes_generation: None,
            revisions,
            backends: Vec::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stats() -> Stats {
        Stats::new(RouterMetrics::new().unwrap())
    }

    #[test]
    fn counts_requests_errors_and_latency_buckets_per_revision() {
        let s = stats();
        s.record("a", StatusCode::OK, None, Duration::from_millis(70));
        s.record(
            "a",
            StatusCode::BAD_GATEWAY,
            Some(ErrorClass::Connect),
            Duration::from_secs(3),
        );
        s.record(
            "b",
            StatusCode::NOT_FOUND,
            Some(ErrorClass::Client4xx),
            Duration::ZERO,
        );
        let snap = s.snapshot(&[("a", 90), ("b", 10)]);
        let a = &snap.revisions[0];
        assert_eq!((a.name.as_str(), a.weight, a.requests), ("a", 90, 2));
        assert_eq!(a.errors.connect, 1);
        assert_eq!(a.latency_seconds.cumulative_counts[0], 0);
        assert_eq!(a.latency_seconds.cumulative_counts[1], 1);
        assert_eq!(a.latency_seconds.cumulative_counts[6], 2);
        assert_eq!(a.latency_seconds.count, 2);
        assert_eq!(snap.revisions[1].errors.client_4xx, 1);
    }

    #[test]
    fn keeps_revisions_that_left_the_routes_at_weight_zero() {
        let s = stats();
        s.record("old", StatusCode::OK, None, Duration::ZERO);
        let snap = s.snapshot(&[("new", 100)]);
        assert_eq!(snap.revisions.len(), 2);
        assert_eq!(
            (snap.revisions[0].name.as_str(), snap.revisions[0].requests),
            ("new", 0)
        );
        assert_eq!(
            (snap.revisions[1].name.as_str(), snap.revisions[1].weight),
            ("old", 0)
        );
        assert_eq!(snap.revisions[1].requests, 1);
    }

    #[test]
    fn prometheus_series_agree_with_the_snapshot() {
        let s = stats();
        s.record(
            "a",
            StatusCode::GATEWAY_TIMEOUT,
            Some(ErrorClass::Timeout),
            Duration::ZERO,
        );
        let text = s.metrics.render();
        assert!(
            text.contains(r#"dsr_router_requests_total{code_class="5xx",revision="a"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dsr_router_errors_total{class="timeout",revision="a"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dsr_router_request_duration_seconds_count{revision="a"} 1"#),
            "{text}"
        );
    }
}
