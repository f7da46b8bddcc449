//! Operator metrics: every name, label and bucket in one place, registered on one Registry
//! that `/metrics` serves.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub const RECONCILIATIONS: &str = "deepseek_operator_reconciliations_total";
pub const FAILURES: &str = "deepseek_operator_reconcile_failures_total";
pub const DURATION: &str = "deepseek_operator_reconcile_duration_seconds";
pub const IS_LEADER: &str = "deepseek_operator_is_leader";
/// Requests the operator sent to the API server, by verb: divided by RECONCILIATIONS, the
/// API cost of a reconcile (watches are long-lived and counted once per (re)connection).
pub const API_REQUESTS: &str = "deepseek_operator_api_requests_total";
/// Label on API_REQUESTS: `get`, `list`, `watch`, `create`, `patch`, `update`, `delete`.
pub const LABEL_VERB: &str = "verb";
/// Label on FAILURES: `Error::kind()`.
pub const LABEL_ERROR: &str = "error";
/// Reconciles are API round trips: milliseconds to a few seconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub reconciliations: IntCounter,
    pub failures: IntCounterVec,
    pub duration: Histogram,
    pub is_leader: IntGauge,
    pub api_requests: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciliations = IntCounter::new(RECONCILIATIONS, "Reconciliations started")?;
        let failures = IntCounterVec::new(
            Opts::new(FAILURES, "Reconciliations failed, by error kind"),
            &[LABEL_ERROR],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(DURATION, "Duration of one reconciliation")
                .buckets(DURATION_BUCKETS.to_vec()),
        )?;
        let is_leader = IntGauge::new(IS_LEADER, "1 while this replica holds the leader lease")?;
        registry.register(Box::new(reconciliations.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        let api_requests = IntCounterVec::new(
            Opts::new(
                API_REQUESTS,
                "Requests sent to the Kubernetes API server, by verb",
            ),
            &[LABEL_VERB],
        )?;
        registry.register(Box::new(is_leader.clone()))?;
        registry.register(Box::new(api_requests.clone()))?;
        Ok(Self {
            registry,
            reconciliations,
            failures,
            duration,
            is_leader,
            api_requests,
        })
    }

    pub fn observe(&self, took: Duration, error_kind: Option<&str>) {
        self.reconciliations.inc();
        self.duration.observe(took.as_secs_f64());
        if let Some(kind) = error_kind {
            self.failures.with_label_values(&[kind]).inc();
        }
    }

    /// Counts one request to the API server.
    pub fn api_request(&self, method: &str, query: Option<&str>) {
        self.api_requests
            .with_label_values(&[api_verb(method, query)])
            .inc();
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The RBAC-style verb of a request (a GET with `watch=true` is a watch; without a name it
/// is a list, which the path alone cannot tell, so GETs are `get` unless they watch).
pub fn api_verb(method: &str, query: Option<&str>) -> &'static str {
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    match method {
        "GET" if watch => "watch",
        "GET" => "get",
        "POST" => "create",
        "PATCH" => "patch",
        "PUT" => "update",
        "DELETE" => "delete",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_error_kind() -> Result<(), prometheus::Error> {
        let m = Metrics::new()?;
        m.observe(Duration::from_millis(3), None);
        m.observe(Duration::from_millis(3), Some("conflict"));
        let text = m.render();
        assert!(text.contains(&format!("{RECONCILIATIONS} 2")));
        assert!(text.contains(&format!("{FAILURES}{{error=\"conflict\"}} 1")));
        Ok(())
    }

    #[test]
    fn api_requests_are_counted_by_verb() -> Result<(), prometheus::Error> {
        let m = Metrics::new()?;
        m.api_request("GET", Some("labelSelector=a&watch=true"));
        m.api_request("PATCH", Some("fieldManager=x"));
        m.api_request("PATCH", None);
        let text = m.render();
        assert!(
            text.contains(&format!("{API_REQUESTS}{{verb=\"watch\"}} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{API_REQUESTS}{{verb=\"patch\"}} 2")),
            "{text}"
        );
        Ok(())
    }
}
