//! The per-revision runtime settings ConfigMap (`{name}-{revision}`), read by the runtime
//! container through `envFrom`. One per revision, so a canary's settings never leak into the
//! stable pods; its content is covered by the revision hash.

use std::collections::BTreeMap;

use deepseek_crds::{DeepSeekDeploymentSpec, ModelFormat};
use k8s_openapi::api::core::v1::ConfigMap;

use super::{naming, BuildConfig, BuildError, ChildKind, DesiredChild, Owner};

/// Environment variables of `deepseek-runtime serve` the ConfigMap sets.
pub mod keys {
    /// `gguf` or `safetensors`.
    pub const MODEL_FORMAT: &str = "DEEPSEEK_MODEL_FORMAT";
    /// Most sequences per batch.
    pub const MAX_BATCH_SIZE: &str = "DEEPSEEK_MAX_BATCH_SIZE";
    /// Most queued requests before 429.
    pub const MAX_QUEUE: &str = "DEEPSEEK_MAX_QUEUE";
    /// Inference threads.
    pub const THREADS: &str = "DEEPSEEK_THREADS";
    /// Context length in tokens.
    pub const CONTEXT_LENGTH: &str = "DEEPSEEK_CONTEXT_LENGTH";
    /// Sustained requests per minute per client.
    pub const RATE_LIMIT_RPM: &str = "DEEPSEEK_RATE_LIMIT_RPM";
    /// Burst per client.
    pub const RATE_LIMIT_BURST: &str = "DEEPSEEK_RATE_LIMIT_BURST";
    /// `json` logs in the cluster.
    pub const LOG_FORMAT: &str = "DEEPSEEK_LOG_FORMAT";
}

/// Settings of the revision as environment variables; unset options are left to the runtime.
pub fn settings(spec: &DeepSeekDeploymentSpec) -> BTreeMap<String, String> {
    let format = match spec.model.format {
        ModelFormat::Gguf => "gguf",
        ModelFormat::Safetensors => "safetensors",
    };
    let mut data = BTreeMap::from([
        (keys::MODEL_FORMAT.to_string(), format.to_string()),
        (keys::LOG_FORMAT.to_string(), "json".to_string()),
    ]);
    let runtime = &spec.runtime;
    let optional = [
        (keys::MAX_BATCH_SIZE, runtime.max_batch_size),
        (keys::MAX_QUEUE, runtime.max_queue),
        (keys::THREADS, runtime.threads),
        (keys::CONTEXT_LENGTH, spec.model.context_length),
        (
            keys::RATE_LIMIT_RPM,
            spec.rate_limit.as_ref().map(|r| r.requests_per_minute),
        ),
        (
            keys::RATE_LIMIT_BURST,
            spec.rate_limit.as_ref().and_then(|r| r.burst),
        ),
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
