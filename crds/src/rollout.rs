//! Placement (zones, node selector, tolerations, disruption budget) and rollout (canary steps,
//! analysis thresholds, history, manual rollback) parts of the spec.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Where the runtime pods run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PlacementSpec {
    /// Zones (`topology.kubernetes.io/zone` values) to spread replicas across evenly; pods are
    /// only scheduled in these zones. Empty: no zone constraint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "set"))]
    pub zones: Vec<String>,
    /// Node labels the runtime pods require.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the runtime pods (a `NoSchedule` toleration for the GPU resource is added
    /// automatically when `runtime.gpus > 0`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// `minAvailable` of the PodDisruptionBudget; by default one per zone (at least one), and no
    /// budget at all for a single replica, which would block node drains forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 512))]
    pub pdb_min_available: Option<i32>,
}

/// How a new revision replaces the stable one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.steps.map(s, s.weight).isSorted() && self.steps.all(s, self.steps.exists_one(t, t.weight == s.weight))").message("rollout.steps weights must be strictly ascending"))]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Canary steps: traffic weight of the new revision and how long to hold it. Empty: the new
    /// revision takes all traffic as soon as it is ready.
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub steps: Vec<RolloutStep>,
    /// Thresholds that fail a canary and roll it back.
    #[serde(default)]
    pub analysis: AnalysisSpec,
    /// Stable revisions kept for manual rollback (their Deployments scaled to zero).
    #[serde(default = "default_history_limit")]
    #[schemars(range(min = 1, max = 10))]
    pub revision_history_limit: i32,
    /// A revision hash from `status.history` to return to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{10}$"))]
    pub rollback_to: Option<String>,
    /// Holds the rollout at its current step until set back to false.
    #[serde(default)]
    pub paused: bool,
    /// Seconds a new revision may take to become ready before it is rolled back.
    #[serde(default = "default_progress_deadline")]
    #[schemars(range(min = 60, max = 86400))]
    pub progress_deadline_seconds: i32,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        Self {
            steps: Vec::new(),
            analysis: AnalysisSpec::default(),
            revision_history_limit: default_history_limit(),
            rollback_to: None,
            paused: false,
            progress_deadline_seconds: default_progress_deadline(),
        }
    }
}

fn default_history_limit() -> i32 {
    3
}

fn default_progress_deadline() -> i32 {
    1800
}

/// One canary step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStep {
    /// Percent of requests sent to the new revision during this step.
    #[schemars(range(min = 0, max = 100))]
    pub weight: i32,
    /// How long to hold this weight before judging and advancing (`30s`, `5m`, `1h30m`);
    /// absent: advance as soon as the analysis has `minRequests` requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub pause: Option<String>,
}

/// Canary analysis thresholds, compared with the router's per-revision figures.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// Highest tolerated fraction of failed requests (5xx, timeouts), 0 to 1.
    #[serde(default = "default_max_error_rate")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate: f64,
    /// Highest tolerated p99 latency of a full response, in milliseconds.
    #[serde(default = "default_max_p99_latency_ms")]
    #[schemars(range(min = 1, max = 3600000))]
    pub max_p99_latency_ms: i64,
    /// Requests the canary must have served before it is judged.
    #[serde(default = "default_min_requests")]
    #[schemars(range(min = 1, max = 100000000))]
    pub min_requests: i64,
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        Self {
            max_error_rate: default_max_error_rate(),
            max_p99_latency_ms: default_max_p99_latency_ms(),
            min_requests: default_min_requests(),
        }
    }
}

fn default_max_error_rate() -> f64 {
    0.05
}

fn default_max_p99_latency_ms() -> i64 {
    2000
}

fn default_min_requests() -> i64 {
    50
}
