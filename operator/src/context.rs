//! What every reconciliation shares: the client, metrics, the Event reporter, the builder
//! configuration and the per-object failure counts that drive error backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deepseek_crds::{DeepSeekDeployment, RevisionRef};
use kube::runtime::events::Reporter;
use kube::Client;
use serde_json::Value;

use crate::desired::{self, naming, BuildConfig, Plan};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::reconcile::stats::{RouterPods, StatsSource};

pub struct Context {
    pub client: Client,
    pub metrics: Metrics,
    pub reporter: Reporter,
    pub build: BuildConfig,
    /// Where canary analysis reads the routers' figures.
    pub stats: Arc<dyn StatsSource>,
    /// How often a running canary is re-examined.
    pub analysis_interval: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

/// First retry after a failure; doubles per consecutive failure up to MAX_BACKOFF.
pub const BASE_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Default interval between two looks at a running canary.
pub const DEFAULT_ANALYSIS_INTERVAL: Duration = Duration::from_secs(10);

impl Context {
    pub fn new(client: Client, metrics: Metrics, reporter: Reporter, build: BuildConfig) -> Self {
        Self {
            stats: Arc::new(RouterPods::new(client.clone())),
            analysis_interval: DEFAULT_ANALYSIS_INTERVAL,
            client,
            metrics,
            reporter,
            build,
            failures: Mutex::new(HashMap::new()),
        }
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
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        BASE_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
    }

    pub fn clear_failures(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}
