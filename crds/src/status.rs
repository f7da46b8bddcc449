//! The DeepSeekDeployment status: phase, revisions, canary progress, replicas, model verification,
//! history of stable revisions, conditions, last analysis and backup. Written only by the operator
//! through the status subresource.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state, as reported by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeepSeekDeploymentStatus {
    /// `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Coarse lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// `readyReplicas/replicas` for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// `currentStep/stepCount` for `kubectl get` while a canary runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The revision serving (most) traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<RevisionRef>,
    /// The revision being rolled out, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<RevisionRef>,
    /// Percent of requests sent to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,
    /// 1-based index of the rollout step in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<i32>,
    /// Number of rollout steps of the current rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_count: Option<i32>,
    /// Runtime pods of the stable revision that exist now (its Deployments' `status.replicas`),
    /// as the scale subresource reports them; the desired count is `spec.replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Label selector of the runtime pods (every revision), for the scale subresource: what a
    /// HorizontalPodAutoscaler reads pod metrics by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Ready runtime replicas of the stable revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Ready replicas per zone (when `placement.zones` is set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneStatus>,
    /// Result of the model file verification of the newest revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_verification: Option<ModelVerification>,
    /// Previous stable revisions, newest first, at most `rollout.revisionHistoryLimit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    /// Latest canary analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analysis: Option<AnalysisResult>,
    /// Latest successful backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<BackupRecord>,
    /// Bookkeeping of the rollout state machine: timers, analysis baseline, last rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutState>,
    /// Ready, ModelVerified, Progressing, RolledBack, Degraded, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl DeepSeekDeploymentStatus {
    /// Fills the display-only `ready` and `step` strings from the numeric fields.
    pub fn refresh_display(&mut self) {
        self.ready = Some(format!(
            "{}/{}",
            self.ready_replicas.unwrap_or(0),
            self.replicas.unwrap_or(0)
        ));
        self.step = match (self.current_step, self.step_count) {
            // Past the last step the canary is being scaled up for promotion: show the last.
            (Some(current), Some(count)) if self.canary_revision.is_some() && count > 0 => {
                Some(format!("{}/{count}", current.min(count)))
            }
            _ => None,
        };
    }

    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// Coarse lifecycle phase.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Accepted, nothing ready yet.
    Pending,
    /// A revision is rolling out.
    Progressing,
    /// The rollout is paused by `spec.rollout.paused`.
    Paused,
    /// All replicas of the stable revision are ready and no rollout is running.
    Healthy,
    /// Serving, but with fewer ready replicas than desired (or a zone without any).
    Degraded,
    /// The last canary was rolled back; the stable revision serves.
    RolledBack,
    /// Nothing can serve (invalid spec before any revision ran, model verification failed, ...).
    Failed,
}

/// Identity of one revision of the pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRef {
    /// Short hash of everything that changes the pods (10 hex characters).
    pub hash: String,
    /// SHA256 over the model files' paths and digests.
    #[serde(default)]
    pub model_digest: String,
    /// Runtime image.
    #[serde(default)]
    pub image: String,
}

/// A previous stable revision, available for `rollout.rollbackTo`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Revision hash.
    pub hash: String,
    /// SHA256 over the model files' paths and digests.
    #[serde(default)]
    pub model_digest: String,
    /// Runtime image.
    #[serde(default)]
    pub image: String,
    /// When this revision last became stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<Time>,
}

/// Ready replicas in one zone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStatus {
    /// Zone name.
    pub zone: String,
    /// Ready runtime pods of the stable revision in the zone.
    pub ready_replicas: i32,
}

/// Model file verification of the newest revision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelVerification {
    /// Pending, Verified or Failed.
    pub state: ModelVerificationState,
    /// Revision the result belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Why verification failed (from the init container's termination message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// State of model file verification.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ModelVerificationState {
    /// No pod has finished fetching yet.
    Pending,
    /// Every file matched its SHA256.
    Verified,
    /// A file could not be fetched or did not match.
    Failed,
}

/// Outcome of the latest canary analysis.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisResult {
    /// Canary revision judged.
    pub revision: String,
    /// Requests the canary served in the window.
    pub requests: i64,
    /// Fraction of them that failed.
    pub error_rate: f64,
    /// p99 latency in milliseconds.
    pub p99_latency_ms: f64,
    /// Failed requests in the window (5xx, connect errors, timeouts).
    #[serde(default)]
    pub errors: i64,
    /// Whether the thresholds were met.
    pub passed: bool,
    /// Rollout step (1-based) the window belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    /// When the analysis ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// What the rollout state machine remembers between reconciliations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutState {
    /// When the current canary (or manual rollback target) started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_started_at: Option<Time>,
    /// When the current step's weight was set (its pause counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// Since when the canary has been waiting for the replicas its next weight needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<Time>,
    /// The canary is a manual `rollbackTo` target: promoted as soon as it is ready, no steps.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual_rollback: bool,
    /// The router's cumulative figures for the canary when the current step began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<StatsBaseline>,
    /// The last rollback, kept until a new canary starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<RollbackRecord>,
}

/// Cumulative router counters of one revision, summed over router pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsBaseline {
    /// Revision the counters belong to.
    pub revision: String,
    /// Completed requests.
    pub requests: i64,
    /// Failed requests (5xx, connect errors, timeouts).
    pub errors: i64,
    /// Cumulative latency histogram counts, one per router bucket bound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<i64>,
}

/// A canary that was rolled back (automatically or by `rollbackTo`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRecord {
    /// The revision taken out of service.
    pub revision: String,
    /// AnalysisFailed, ProgressDeadlineExceeded or ManualRollback.
    pub reason: String,
    /// What was measured, in words.
    pub message: String,
    /// When it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// A finished, verified backup generation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    /// Completion time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// SHA256 of the generation's manifest.
    pub digest: String,
    /// Generation name (timestamp).
    #[serde(default)]
    pub generation: String,
}

/// Condition types the operator sets.
pub mod condition_types {
    /// The stable revision serves with all desired replicas ready.
    pub const READY: &str = "Ready";
    /// The model files of the newest revision matched their SHA256.
    pub const MODEL_VERIFIED: &str = "ModelVerified";
    /// A revision is rolling out.
    pub const PROGRESSING: &str = "Progressing";
    /// The last canary was rolled back.
    pub const ROLLED_BACK: &str = "RolledBack";
    /// Serving with reduced capacity (missing replicas, a zone without replicas).
    pub const DEGRADED: &str = "Degraded";
    /// Monitoring objects could be created (the monitoring.coreos.com CRDs exist).
    pub const MONITORING: &str = "MonitoringAvailable";
    /// Every zone of `placement.zones` has at least one ready replica of the stable revision.
    pub const ZONES_AVAILABLE: &str = "ZonesAvailable";
}

/// Condition reasons shared by the operator and the docs.
pub mod reasons {
    /// The spec is structurally valid but semantically wrong; the message names the field.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The API server refused a child the operator applies; the message is the server's.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// All desired replicas are ready.
    pub const ALL_REPLICAS_READY: &str = "AllReplicasReady";
    /// Waiting for pods to become ready.
    pub const REPLICAS_NOT_READY: &str = "ReplicasNotReady";
    /// An init container failed to fetch or verify the model files.
    pub const MODEL_FETCH_FAILED: &str = "ModelFetchFailed";
    /// A pod cannot start a container because a Secret (or ConfigMap) it references, or a key
    /// of it, is missing; the message is the kubelet's, naming it. The operator never reads
    /// Secrets: this is how a missing one is reported.
    pub const POD_CONFIG_ERROR: &str = "PodConfigError";
    /// Every model file matched its SHA256.
    pub const MODEL_VERIFIED: &str = "Verified";
    /// Waiting for the init container to finish.
    pub const MODEL_VERIFICATION_PENDING: &str = "VerificationPending";
    /// Every zone of `placement.zones` has a ready replica.
    pub const ALL_ZONES_SERVING: &str = "AllZonesServing";
    /// A zone of `placement.zones` has no ready replica (a zone outage, or pods that cannot be
    /// scheduled there); the message names the zones.
    pub const ZONE_WITHOUT_READY_REPLICAS: &str = "ZoneWithoutReadyReplicas";
    /// The PrometheusRule, PodMonitor and dashboard are applied.
    pub const MONITORING_APPLIED: &str = "MonitoringApplied";
    /// The cluster does not serve the monitoring.coreos.com kinds (no Prometheus operator):
    /// the monitoring children are skipped, nothing else is affected.
    pub const MONITORING_CRDS_MISSING: &str = "MonitoringCRDsMissing";
    /// `spec.monitoring.enabled` is false.
    pub const MONITORING_DISABLED: &str = "MonitoringDisabled";
}
