//! The per-revision runtime settings ConfigMap (`{name}-{revision}`), read by the runtime
//! container through `envFrom`. One per revision, so a canary's settings never leak into the
//! stable pods; its content is covered by the revision hash.

use std::collections::BTreeMap;

use deepseek_crds::DeepSeekDeploymentSpec;
use k8s_openapi::api::core::v1::ConfigMap;

use super::containers::PRE_STOP_SLEEP_SECONDS;
use super::deployment::TERMINATION_GRACE_SECONDS;
use super::{naming, BuildConfig, BuildError, ChildKind, DesiredChild, Owner};

/// Environment variables of `deepseek-runtime serve` the ConfigMap sets: every `serve` flag can
/// also come from a `DSR_*` variable, so settings stay out of the command line.
pub mod keys {
    /// Most sequences per batch (`--max-batch-size`).
    pub const MAX_BATCH_SIZE: &str = "DSR_MAX_BATCH_SIZE";
    /// Most queued requests before 429 (`--max-queue`).
    pub const MAX_QUEUE: &str = "DSR_MAX_QUEUE";
    /// Inference threads (`--threads`).
    pub const THREADS: &str = "DSR_THREADS";
    /// Context length in tokens (`--context-length`).
    pub const CONTEXT_LENGTH: &str = "DSR_CONTEXT_LENGTH";
    /// Seconds in-flight requests get after SIGTERM (`--shutdown-grace-secs`).
    pub const SHUTDOWN_GRACE_SECS: &str = "DSR_SHUTDOWN_GRACE_SECS";
}

/// Seconds the runtime drains in-flight requests: the pod's grace period minus the preStop
/// sleep, with a margin so the runtime finishes before the kubelet kills it.
pub fn shutdown_grace_secs() -> i64 {
    TERMINATION_GRACE_SECONDS - PRE_STOP_SLEEP_SECONDS - 10
}

/// Settings of the revision as environment variables; unset options are left to the runtime.
pub fn settings(spec: &DeepSeekDeploymentSpec) -> BTreeMap<String, String> {
    let mut data = BTreeMap::from([(
        keys::SHUTDOWN_GRACE_SECS.to_string(),
        shutdown_grace_secs().to_string(),
    )]);
    let runtime = &spec.runtime;
    let optional = [
        (keys::MAX_BATCH_SIZE, runtime.max_batch_size),
        (keys::MAX_QUEUE, runtime.max_queue),
        (keys::THREADS, runtime.threads),
        (keys::CONTEXT_LENGTH, spec.model.context_length),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            data.insert(key.to_string(), value.to_string());
        }
    }
    data
}

pub(crate) fn build(
    owner: &Owner,
    spec: &DeepSeekDeploymentSpec,
    _cfg: &BuildConfig,
    revision: &str,
) -> Result<DesiredChild, BuildError> {
    let name = naming::revision_object_name(&owner.name, revision);
    let config_map = ConfigMap {
        metadata: owner.child_meta(name.clone(), naming::revision_labels(&owner.name, revision)),
        data: Some(settings(spec)),
        ..ConfigMap::default()
    };
    owner.child(ChildKind::ConfigMap, &name, &config_map)
}
