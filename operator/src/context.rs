//! What every reconciliation shares: the client, metrics, the Event reporter, the builder
//! configuration, the watch caches, and what the operator remembers between rounds (failure
//! counts for backoff, the last version of each resource it knows, the last apply, discovery).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deepseek_crds::{DeepSeekDeployment, RevisionRef};
use kube::runtime::events::Reporter;
use kube::Client;
use serde_json::Value;

use crate::cache::Stores;
use crate::desired::{self, naming, BuildConfig, Plan};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::reconcile::apply::ApplyOutcome;
use crate::reconcile::stats::{RouterPods, StatsSource};

#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub metrics: Metrics,
    pub reporter: Reporter,
    pub build: BuildConfig,
    /// Where canary analysis reads the routers' figures.
    pub stats: Arc<dyn StatsSource>,
    /// How often a running canary is re-examined.
    pub analysis_interval: Duration,
    /// How long a revision leaving the routes is kept for a router that cannot be read
    /// (`reconcile::drain`); routers that answer are waited for until they confirm.
    pub unreadable_router_wait: Duration,
    /// The watch caches, while a Controller runs (`None`: read the API server).
    pub stores: Option<Stores>,
    memory: Arc<Memory>,
}

/// Per-resource memory, keyed by uid (or `namespace/name` for failures).
#[derive(Default)]
struct Memory {
    failures: Mutex<HashMap<String, u32>>,
    /// resourceVersion of the newest copy of each resource this operator has read or written.
    known_versions: Mutex<HashMap<String, String>>,
    /// The last full apply: what was applied (a digest of the objects), when, and its outcome.
    applied: Mutex<HashMap<String, AppliedRecord>>,
    /// Which monitoring kinds the cluster lacks, and when discovery said so.
    discovery: Mutex<Option<(Instant, Vec<String>)>>,
    /// Since when a routes generation has waited on a router that cannot be read, per uid.
    unreadable_routers: Mutex<HashMap<String, (String, Instant)>>,
}

#[derive(Clone)]
struct AppliedRecord {
    digest: String,
    at: Instant,
    outcome: Arc<ApplyOutcome>,
}

/// First retry after a failure; doubles per consecutive failure up to MAX_BACKOFF.
pub const BASE_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Default interval between two looks at a running canary.
pub const DEFAULT_ANALYSIS_INTERVAL: Duration = Duration::from_secs(10);
/// Unchanged children are applied again at least this often, correcting drift by hand edits.
pub const FULL_APPLY_INTERVAL: Duration = Duration::from_secs(300);
/// A kubelet refreshes a mounted ConfigMap within its sync period plus its cache TTL (one
/// minute each by default): past that, a router that still cannot be read is not waited for.
pub const DEFAULT_UNREADABLE_ROUTER_WAIT: Duration = Duration::from_secs(150);
/// How long a discovery answer about the monitoring kinds is trusted.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Context {
    pub fn new(client: Client, metrics: Metrics, reporter: Reporter, build: BuildConfig) -> Self {
        Self {
            stats: Arc::new(RouterPods::new(client.clone(), None)),
            analysis_interval: DEFAULT_ANALYSIS_INTERVAL,
            unreadable_router_wait: DEFAULT_UNREADABLE_ROUTER_WAIT,
            client,
            metrics,
            reporter,
            build,
            stores: None,
            memory: Arc::new(Memory::default()),
        }
    }

    /// This context reading `stores` (router pods for canary analysis included).
    pub fn with_stores(&self, stores: Stores) -> Self {
        let mut ctx = self.clone();
        ctx.stats = Arc::new(RouterPods::new(
            self.client.clone(),
            Some(stores.pods.clone()),
        ));
        ctx.stores = Some(stores);
        ctx
    }

    /// The builder inputs of this resource: the operator's, with the runtime image its current
    /// revision was created with kept (see `naming::pinned_config`).
    pub fn build_config(&self, dsd: &DeepSeekDeployment) -> BuildConfig {
        naming::pinned_config(&dsd.spec, dsd.status.as_ref(), &self.build)
    }

    /// The revision the spec describes.
    pub fn revision(&self, dsd: &DeepSeekDeployment) -> RevisionRef {
        naming::revision_ref(&dsd.spec, &self.build_config(dsd))
    }

    /// The children to apply for a rollout plan, as JSON.
    pub fn desired_objects(&self, dsd: &DeepSeekDeployment, plan: &Plan) -> Result<Vec<Value>> {
        let children = desired::build_with(dsd, &self.build_config(dsd), plan)
            .map_err(|e| Error::Desired(e.to_string()))?;
        Ok(children.into_iter().map(|c| c.object).collect())
    }

    /// Records a failure of `key` and returns how long to wait before retrying it.
    pub fn backoff_after_failure(&self, key: &str) -> Duration {
        let mut map = lock(&self.memory.failures);
        let n = map.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        BASE_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
    }

    /// How long routes `generation` of `uid` has waited on a router that cannot be read (zero
    /// the first time it is asked).
    pub fn unreadable_router_waited(&self, uid: &str, generation: &str) -> Duration {
        let mut map = lock(&self.memory.unreadable_routers);
        let entry = map
            .entry(uid.to_string())
            .or_insert_with(|| (generation.to_string(), Instant::now()));
        if entry.0 != generation {
            *entry = (generation.to_string(), Instant::now());
        }
        entry.1.elapsed()
    }

    pub fn clear_unreadable_routers(&self, uid: &str) {
        lock(&self.memory.unreadable_routers).remove(uid);
    }

    pub fn clear_failures(&self, key: &str) {
        lock(&self.memory.failures).remove(key);
    }

    /// Whether `resource_version` is the newest this operator has seen of `uid` (then a cached
    /// copy is as fresh as a read from the API server).
    pub fn is_newest(&self, uid: &str, resource_version: Option<&str>) -> bool {
        self.memory.is_newest(uid, resource_version)
    }

    pub fn remember_version(&self, uid: &str, resource_version: Option<String>) {
        self.memory.remember_version(uid, resource_version);
    }

    /// The outcome of the last apply of exactly `digest` to `uid`, if it is recent enough to
    /// skip applying again.
    pub fn recent_apply(&self, uid: &str, digest: &str) -> Option<Arc<ApplyOutcome>> {
        self.memory.recent_apply(uid, digest, Instant::now())
    }

    pub fn remember_apply(&self, uid: &str, digest: String, outcome: Arc<ApplyOutcome>) {
        self.memory
            .remember_apply(uid, digest, outcome, Instant::now());
    }

    /// Forgets everything about `uid` (its children must be applied again next round).
    pub fn forget(&self, uid: &str) {
        lock(&self.memory.applied).remove(uid);
        lock(&self.memory.known_versions).remove(uid);
    }

    /// The monitoring kinds the cluster lacked at the last discovery, if recent.
    pub fn cached_discovery(&self) -> Option<Vec<String>> {
        let d = lock(&self.memory.discovery);
        d.as_ref()
            .filter(|(at, _)| at.elapsed() < DISCOVERY_TTL)
            .map(|(_, missing)| missing.clone())
    }

    pub fn remember_discovery(&self, missing: Vec<String>) {
        *lock(&self.memory.discovery) = Some((Instant::now(), missing));
    }
}

impl Memory {
    fn is_newest(&self, uid: &str, resource_version: Option<&str>) -> bool {
        resource_version
            .is_some_and(|rv| lock(&self.known_versions).get(uid).map(String::as_str) == Some(rv))
    }

    fn remember_version(&self, uid: &str, resource_version: Option<String>) {
        let mut map = lock(&self.known_versions);
        match resource_version {
            Some(rv) => map.insert(uid.to_string(), rv),
            None => map.remove(uid),
        };
    }

    fn recent_apply(&self, uid: &str, digest: &str, now: Instant) -> Option<Arc<ApplyOutcome>> {
        let map = lock(&self.applied);
        let rec = map.get(uid)?;
        let fresh = now.saturating_duration_since(rec.at) < FULL_APPLY_INTERVAL;
        (rec.digest == digest && fresh).then(|| rec.outcome.clone())
    }

    fn remember_apply(&self, uid: &str, digest: String, outcome: Arc<ApplyOutcome>, at: Instant) {
        let rec = AppliedRecord {
            digest,
            at,
            outcome,
        };
        lock(&self.applied).insert(uid.to_string(), rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_copy_is_fresh_only_at_the_version_last_read_or_written() {
        let m = Memory::default();
        assert!(
            !m.is_newest("u", Some("5")),
            "nothing known: read the API server"
        );
        m.remember_version("u", Some("7".into()));
        assert!(m.is_newest("u", Some("7")));
        assert!(
            !m.is_newest("u", Some("6")),
            "an older or newer copy is re-read"
        );
        assert!(!m.is_newest("u", None));
    }

    #[test]
    fn the_same_objects_are_not_applied_again_until_the_full_apply_interval() {
        let m = Memory::default();
        let t0 = Instant::now();
        m.remember_apply("u", "d1".into(), Arc::new(ApplyOutcome::default()), t0);
        assert!(m
            .recent_apply("u", "d1", t0 + Duration::from_secs(10))
            .is_some());
        assert!(
            m.recent_apply("u", "d2", t0).is_none(),
            "changed objects are applied"
        );
        assert!(
            m.recent_apply("u", "d1", t0 + FULL_APPLY_INTERVAL)
                .is_none(),
            "drift"
        );
        assert!(m.recent_apply("v", "d1", t0).is_none());
    }
}
