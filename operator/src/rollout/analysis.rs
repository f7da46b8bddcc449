//! Canary analysis over the router's per-revision figures: parse `/admin/stats` (the router
//! contract), sum them over router pods, diff against the baseline kept in status, and judge
//! the window against `spec.rollout.analysis`. Pure: fetching lives in `reconcile::stats`.

use std::collections::BTreeMap;

use deepseek_crds::{AnalysisSpec, StatsBaseline};
use serde::Deserialize;

/// Cumulative figures of one revision (since router start, summed over router pods).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RevisionStats {
    /// Completed proxied requests, any outcome.
    pub requests: u64,
    /// upstream_5xx + connect + timeout (client 4xx are the caller's fault, not the canary's).
    pub errors: u64,
    /// Upper bounds of the latency buckets, in seconds.
    pub bounds: Vec<f64>,
    /// Requests at or under each bound (cumulative, Prometheus style).
    pub buckets: Vec<u64>,
}

/// Figures of every revision the routers know, by revision hash.
pub type Stats = BTreeMap<String, RevisionStats>;

/// The router's `/admin/stats` body.
#[derive(Deserialize)]
struct AdminStats {
    revisions: Vec<AdminRevision>,
}

#[derive(Deserialize)]
struct AdminRevision {
    name: String,
    requests: u64,
    #[serde(default)]
    errors: BTreeMap<String, u64>,
    latency_seconds: AdminLatency,
}

#[derive(Deserialize)]
struct AdminLatency {
    bounds: Vec<f64>,
    cumulative_counts: Vec<u64>,
}

/// Error classes that count against a canary.
pub const FAILURE_CLASSES: [&str; 3] = ["upstream_5xx", "connect", "timeout"];

/// Parses one router's `/admin/stats` JSON.
pub fn parse_admin_stats(body: &[u8]) -> Result<Stats, serde_json::Error> {
    let parsed: AdminStats = serde_json::from_slice(body)?;
    Ok(parsed
        .revisions
        .into_iter()
        .map(|r| {
            let errors = FAILURE_CLASSES
                .iter()
                .map(|c| r.errors.get(*c).copied().unwrap_or(0))
                .sum();
            let stats = RevisionStats {
                requests: r.requests,
                errors,
                bounds: r.latency_seconds.bounds,
                buckets: r.latency_seconds.cumulative_counts,
            };
            (r.name, stats)
        })
        .collect())
}

/// Adds one router's figures to the running sum (all routers share the bucket bounds).
pub fn add(total: &mut Stats, one: Stats) {
    for (name, s) in one {
        let t = total.entry(name).or_default();
        t.requests += s.requests;
        t.errors += s.errors;
        if t.bounds.is_empty() {
            t.bounds = s.bounds;
        }
        if t.buckets.len() < s.buckets.len() {
            t.buckets.resize(s.buckets.len(), 0);
        }
        for (acc, v) in t.buckets.iter_mut().zip(s.buckets) {
            *acc += v;
        }
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The baseline to keep in status for `revision` (zeros when the routers have not seen it).
pub fn baseline(revision: &str, stats: &Stats) -> StatsBaseline {
    let s = stats.get(revision).cloned().unwrap_or_default();
    StatsBaseline {
        revision: revision.to_string(),
        requests: to_i64(s.requests),
        errors: to_i64(s.errors),
        buckets: s.buckets.into_iter().map(to_i64).collect(),
    }
}

/// Figures of one analysis window.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub requests: i64,
    pub errors: i64,
    pub error_rate: f64,
    /// Upper bound of the bucket holding the 99th percentile, in milliseconds (the last bound
    /// when it lies beyond every bucket).
    pub p99_ms: f64,
}

/// Figures since `base`. A router restart resets its counters: when any figure went down, the
/// window restarts from zero rather than reporting negative counts.
pub fn window(now: &RevisionStats, base: &StatsBaseline) -> Window {
    let reset = to_i64(now.requests) < base.requests
        || now
            .buckets
            .iter()
            .zip(&base.buckets)
            .any(|(n, b)| to_i64(*n) < *b);
    let zero = StatsBaseline::default();
    let base = if reset { &zero } else { base };
    let requests = to_i64(now.requests) - base.requests;
    let errors = (to_i64(now.errors) - base.errors).max(0);
    let buckets: Vec<i64> = now
        .buckets
        .iter()
        .enumerate()
        .map(|(i, n)| to_i64(*n) - base.buckets.get(i).copied().unwrap_or(0))
        .collect();
    Window {
        requests,
        errors,
        error_rate: if requests > 0 {
            errors as f64 / requests as f64
        } else {
            0.0
        },
        p99_ms: p99_ms(&now.bounds, &buckets, requests),
    }
}

fn p99_ms(bounds: &[f64], cumulative: &[i64], count: i64) -> f64 {
    if count <= 0 {
        return 0.0;
    }
    // The smallest bucket holding at least 99% of the requests.
    let target = (count as f64 * 0.99).ceil() as i64;
    bounds
        .iter()
        .zip(cumulative)
        .find(|(_, c)| **c >= target)
        .or_else(|| bounds.iter().zip(cumulative).next_back())
        .map(|(b, _)| b * 1000.0)
        .unwrap_or(0.0)
}

/// What a window says about the canary.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Fewer than `minRequests` requests: not judged yet.
    Inconclusive,
    Pass,
    /// Why it failed, with the numbers.
    Fail(String),
}

pub fn judge(w: &Window, spec: &AnalysisSpec) -> Verdict {
    if w.requests < spec.min_requests {
        return Verdict::Inconclusive;
    }
    if w.error_rate > spec.max_error_rate {
        return Verdict::Fail(format!(
            "error rate {:.4} ({} of {} requests) above maxErrorRate {}",
            w.error_rate, w.errors, w.requests, spec.max_error_rate
        ));
    }
    if w.p99_ms > spec.max_p99_latency_ms as f64 {
        return Verdict::Fail(format!(
            "p99 latency {:.0} ms over {} requests above maxP99LatencyMs {}",
            w.p99_ms, w.requests, spec.max_p99_latency_ms
        ));
    }
    Verdict::Pass
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"revisions":[{"name":"aaaaaaaaaa","weight":90,"requests":100,
      "errors":{"upstream_5xx":2,"connect":1,"timeout":1,"client_4xx":7},
      "latency_seconds":{"bounds":[0.05,0.1,0.25],"cumulative_counts":[50,98,100],"count":100,"sum":5.0}}]}"#;

    #[test]
    fn admin_stats_count_5xx_connect_and_timeout_but_not_client_errors() {
        let stats = parse_admin_stats(BODY.as_bytes()).unwrap_or_default();
        let s = &stats["aaaaaaaaaa"];
        assert_eq!((s.requests, s.errors), (100, 4));
        assert_eq!(s.buckets, vec![50, 98, 100]);
    }

    #[test]
    fn two_routers_sum_and_the_window_diffs_the_baseline() {
        let one = parse_admin_stats(BODY.as_bytes()).unwrap_or_default();
        let mut total = Stats::new();
        add(&mut total, one.clone());
        add(&mut total, one);
        let s = &total["aaaaaaaaaa"];
        assert_eq!((s.requests, s.errors), (200, 8));
        let base = StatsBaseline {
            revision: "aaaaaaaaaa".into(),
            requests: 100,
            errors: 8,
            buckets: vec![100, 100, 100],
        };
        let w = window(s, &base);
        assert_eq!((w.requests, w.errors), (100, 0));
        // 96 of the 100 new requests are under 100 ms, the rest under 250 ms.
        assert_eq!(w.p99_ms, 250.0);
    }

    #[test]
    fn a_router_restart_restarts_the_window_from_zero() {
        let s = RevisionStats {
            requests: 10,
            errors: 1,
            bounds: vec![0.1],
            buckets: vec![10],
        };
        let base = StatsBaseline {
            revision: "a".into(),
            requests: 500,
            errors: 3,
            buckets: vec![500],
        };
        let w = window(&s, &base);
        assert_eq!((w.requests, w.errors), (10, 1));
    }

    #[test]
    fn windows_below_min_requests_are_inconclusive_then_judged_on_errors_and_p99() {
        let spec = AnalysisSpec {
            max_error_rate: 0.05,
            max_p99_latency_ms: 200,
            min_requests: 20,
        };
        let w = |requests, errors, p99_ms| Window {
            requests,
            errors,
            error_rate: errors as f64 / requests as f64,
            p99_ms,
        };
        assert_eq!(judge(&w(19, 19, 10.0), &spec), Verdict::Inconclusive);
        assert_eq!(judge(&w(20, 1, 100.0), &spec), Verdict::Pass);
        assert!(
            matches!(judge(&w(20, 2, 100.0), &spec), Verdict::Fail(m) if m.contains("error rate 0.1000"))
        );
        assert!(
            matches!(judge(&w(20, 0, 250.0), &spec), Verdict::Fail(m) if m.contains("p99 latency 250 ms"))
        );
    }
}
