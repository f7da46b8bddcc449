//! Backend health, passive and (optionally) active, in the manner of Envoy's outlier
//! detection: consecutive failures (connect errors, 5xx answers, timeouts, streams that break
//! off) eject a backend from its revision's rotation for a backoff period that doubles with
//! each ejection up to a cap; a success resets the count. The last available backend of a
//! revision is never ejected (some traffic beats none), but it still counts as failing for
//! readiness. Active probes, when on, mark a backend down until a probe passes again. State is
//! keyed by backend URL, so it survives route reloads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::Uri;
use serde::{Deserialize, Serialize};

use super::metrics::RouterMetrics;

pub const DEFAULT_EJECT_AFTER: u32 = 5;
pub const DEFAULT_EJECT_BASE_SECS: u64 = 10;
pub const DEFAULT_EJECT_MAX_SECS: u64 = 300;

/// Flags of passive and active health checking.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// Consecutive failures (connect error, 5xx, timeout, broken stream) that eject a backend
    /// from its revision's rotation; 0 turns ejection off.
    #[arg(long, env = "DSR_ROUTER_EJECT_AFTER_FAILURES", default_value_t = DEFAULT_EJECT_AFTER)]
    pub eject_after_failures: u32,
    /// First ejection period in seconds; it doubles with each further ejection.
    #[arg(long, env = "DSR_ROUTER_EJECT_BASE_SECONDS", default_value_t = DEFAULT_EJECT_BASE_SECS)]
    pub eject_base_seconds: u64,
    /// Longest ejection period in seconds.
    #[arg(long, env = "DSR_ROUTER_EJECT_MAX_SECONDS", default_value_t = DEFAULT_EJECT_MAX_SECS)]
    pub eject_max_seconds: u64,
    /// Milliseconds between active readiness probes of every backend; 0 (the default) turns
    /// them off.
    #[arg(long, env = "DSR_ROUTER_PROBE_INTERVAL_MS", default_value_t = 0)]
    pub probe_interval_ms: u64,
    /// Path the active probes GET on each backend; a 2xx is ready.
    #[arg(long, env = "DSR_ROUTER_PROBE_PATH", default_value = "/readyz")]
    pub probe_path: String,
}

impl Default for HealthArgs {
    fn default() -> Self {
        Self {
            eject_after_failures: DEFAULT_EJECT_AFTER,
            eject_base_seconds: DEFAULT_EJECT_BASE_SECS,
            eject_max_seconds: DEFAULT_EJECT_MAX_SECS,
            probe_interval_ms: 0,
            probe_path: "/readyz".into(),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct BackendState {
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
    /// Ejections so far; the next period is `base * 2^ejections`, capped.
    ejections: u32,
    probe_failed: bool,
}

impl BackendState {
    fn ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|t| now < t)
    }

    /// Takes traffic: not ejected and not failing its probe.
    fn available(&self, now: Instant) -> bool {
        !self.ejected(now) && !self.probe_failed
    }
}

/// One backend as `/admin/stats` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendView {
    pub revision: String,
    pub url: String,
    pub available: bool,
    pub ejected: bool,
    pub probe_failed: bool,
    pub consecutive_failures: u32,
    pub ejections: u32,
}

pub struct Health {
    eject_after: u32,
    base: Duration,
    max: Duration,
    backends: Mutex<HashMap<String, BackendState>>,
    metrics: RouterMetrics,
}

fn key(uri: &Uri) -> String {
    uri.to_string()
}

impl Health {
    pub fn new(args: &HealthArgs, metrics: RouterMetrics) -> Self {
        let base = Duration::from_secs(args.eject_base_seconds.max(1));
        Self {
            eject_after: args.eject_after_failures,
            base,
            max: Duration::from_secs(args.eject_max_seconds).max(base),
            backends: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BackendState>> {
        self.backends.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The order to try a revision's backends in: the available ones round robin from
    /// `start`, then the unavailable ones as a last resort (only reached when every available
    /// one refused the connection).
    pub fn order<'a>(&self, backends: &'a [Uri], start: usize) -> Vec<&'a Uri> {
        let now = Instant::now();
        let map = self.lock();
        let rotated = (0..backends.len()).map(|i| &backends[(start + i) % backends.len()]);
        let (mut up, down): (Vec<&Uri>, Vec<&Uri>) =
            rotated.partition(|b| map.get(&key(b)).is_none_or(|s| s.available(now)));
        up.extend(down);
        up
    }

    pub fn success(&self, backend: &Uri) {
        let mut map = self.lock();
        if let Some(s) = map.get_mut(&key(backend)) {
            s.consecutive_failures = 0;
            // A backend healthy for a whole maximum period since its last ejection starts over.
            if s.ejected_until
                .is_some_and(|t| Instant::now() > t + self.max)
            {
                s.ejections = 0;
                s.ejected_until = None;
            }
        }
    }

    /// Counts a failure of `backend` (one of `revision`'s `backends`); ejects it once the
    /// failures in a row reach the threshold, unless it is the revision's last available one.
    pub fn failure(&self, revision: &str, backends: &[Uri], backend: &Uri) {
        let now = Instant::now();
        let mut map = self.lock();
        let others_available = backends
            .iter()
            .filter(|b| *b != backend)
            .any(|b| map.get(&key(b)).is_none_or(|s| s.available(now)));
        let s = map.entry(key(backend)).or_default();
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        if self.eject_after == 0 || s.consecutive_failures < self.eject_after || s.ejected(now) {
            return;
        }
        if !others_available {
            tracing::warn!(revision, backend = %backend, failures = s.consecutive_failures, "backend failing, but it is the revision's last: kept in rotation");
            return;
        }
        let period = self
            .base
            .saturating_mul(1u32 << s.ejections.min(16))
            .min(self.max);
        s.ejected_until = Some(now + period);
        s.ejections = s.ejections.saturating_add(1);
        s.consecutive_failures = 0;
        self.metrics
            .ejections
            .with_label_values(&[revision, &key(backend)])
            .inc();
        tracing::warn!(revision, backend = %backend, secs = period.as_secs(), "backend ejected after consecutive failures");
    }

    pub fn set_probe(&self, backend: &Uri, ready: bool) {
        let mut map = self.lock();
        let s = map.entry(key(backend)).or_default();
        if s.probe_failed == ready {
            tracing::info!(backend = %backend, ready, "backend readiness probe changed");
        }
        s.probe_failed = !ready;
    }

    /// Whether one of `backends` can serve: available and not failing in a row.
    pub fn any_healthy(&self, backends: &[Uri]) -> bool {
        let now = Instant::now();
        let map = self.lock();
        backends.iter().any(|b| {
            map.get(&key(b)).is_none_or(|s| {
                s.available(now)
                    && (self.eject_after == 0 || s.consecutive_failures < self.eject_after)
            })
        })
    }

    pub fn view(&self, revision: &str, backends: &[Uri]) -> Vec<BackendView> {
        let now = Instant::now();
        let map = self.lock();
        backends
            .iter()
            .map(|b| {
                let s = map.get(&key(b)).cloned().unwrap_or_default();
                BackendView {
                    revision: revision.to_string(),
                    url: key(b),
                    available: s.available(now),
                    ejected: s.ejected(now),
                    probe_failed: s.probe_failed,
                    consecutive_failures: s.consecutive_failures,
                    ejections: s.ejections,
                }
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn health(after: u32) -> Health {
        let args = HealthArgs {
            eject_after_failures: after,
            eject_base_seconds: 1,
            eject_max_seconds: 4,
            ..Default::default()
        };
        Health::new(&args, RouterMetrics::new().unwrap())
    }

    fn uris(n: usize) -> Vec<Uri> {
        (0..n)
            .map(|i| format!("http://10.0.0.{i}:8000").parse().unwrap())
            .collect()
    }

    #[test]
    fn consecutive_failures_eject_a_backend_to_the_end_of_the_order() {
        let h = health(3);
        let b = uris(2);
        for _ in 0..2 {
            h.failure("r", &b, &b[0]);
        }
        assert_eq!(h.order(&b, 0), vec![&b[0], &b[1]], "two failures: still in");
        h.failure("r", &b, &b[0]);
        assert_eq!(h.order(&b, 0), vec![&b[1], &b[0]], "three: ejected");
        assert!(h.view("r", &b)[0].ejected);
        assert!(h.any_healthy(&b));
    }

    #[test]
    fn a_success_resets_the_count() {
        let h = health(3);
        let b = uris(2);
        h.failure("r", &b, &b[0]);
        h.failure("r", &b, &b[0]);
        h.success(&b[0]);
        h.failure("r", &b, &b[0]);
        assert!(!h.view("r", &b)[0].ejected);
    }

    #[test]
    fn the_last_available_backend_is_never_ejected_but_is_not_healthy() {
        let h = health(2);
        let b = uris(2);
        for _ in 0..2 {
            h.failure("r", &b, &b[0]);
        }
        for _ in 0..5 {
            h.failure("r", &b, &b[1]);
        }
        let v = h.view("r", &b);
        assert!(v[0].ejected && !v[1].ejected, "{v:?}");
        assert!(!h.any_healthy(&b), "the one left fails every request");
    }

    #[test]
    fn ejection_periods_double_up_to_the_cap() {
        let h = health(1);
        let b = uris(2);
        let mut periods = Vec::new();
        for _ in 0..4 {
            h.failure("r", &b, &b[0]);
            let until = h.lock()[&key(&b[0])].ejected_until.unwrap();
            periods.push((until - Instant::now()).as_secs_f64().round() as u64);
            h.lock().get_mut(&key(&b[0])).unwrap().ejected_until = Some(Instant::now());
        }
        assert_eq!(periods, vec![1, 2, 4, 4]);
    }

    #[test]
    fn a_failed_probe_takes_a_backend_out_until_it_passes() {
        let h = health(5);
        let b = uris(1);
        h.set_probe(&b[0], false);
        assert!(!h.any_healthy(&b));
        h.set_probe(&b[0], true);
        assert!(h.any_healthy(&b));
    }
}
