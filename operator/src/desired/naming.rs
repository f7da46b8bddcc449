//! Names, labels and identities of everything the operator creates: child names, the label keys
//! used in selectors, the revision hash (everything that changes the pods, nothing else) and the
//! model digest.

use std::collections::BTreeMap;

use deepseek_crds::{DeepSeekDeploymentSpec, DeepSeekDeploymentStatus, ModelSpec, RevisionRef};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::BuildConfig;

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "deepseek-operator";
/// Label: name of the owning DeepSeekDeployment.
pub const LABEL_DEPLOYMENT: &str = "inference.deepseek-k8s.dev/deployment";
/// Label: revision hash of a runtime Deployment, its pods and ConfigMap.
pub const LABEL_REVISION: &str = "inference.deepseek-k8s.dev/revision";
/// Label: which part of the deployment an object is (`runtime`, later `router`).
pub const LABEL_COMPONENT: &str = "inference.deepseek-k8s.dev/component";
/// Pod template annotation: model digest of the revision.
pub const ANNOTATION_MODEL_DIGEST: &str = "inference.deepseek-k8s.dev/model-digest";
/// Component value of runtime pods.
pub const COMPONENT_RUNTIME: &str = "runtime";
/// Component value of the monitoring children (PrometheusRule, PodMonitor, dashboard).
pub const COMPONENT_MONITORING: &str = "monitoring";
/// Component value of the backup CronJob and its pods.
pub const COMPONENT_BACKUP: &str = "backup";
/// Length of a revision hash in hex characters.
pub const REVISION_LEN: usize = 10;

/// Deployment (and ConfigMap) of one revision: `{name}-{revision}`.
pub fn revision_object_name(dsd_name: &str, revision: &str) -> String {
    format!("{dsd_name}-{revision}")
}

/// The chat Service: named like the resource, so apps call `http://NAME.NAMESPACE.svc`.
pub fn service_name(dsd_name: &str) -> String {
    dsd_name.to_string()
}

/// The PodDisruptionBudget of the runtime pods.
pub fn pdb_name(dsd_name: &str) -> String {
    dsd_name.to_string()
}

/// PrometheusRule, PodMonitor and dashboard ConfigMap: `{name}-monitoring`.
pub fn monitoring_name(dsd_name: &str) -> String {
    format!("{dsd_name}-monitoring")
}

/// Longest CronJob name: its Jobs append 11 characters to it and must stay DNS labels.
pub const MAX_CRONJOB_NAME: usize = 52;

/// The backup CronJob: `{name}-backup`; a long name is cut and made unique again with a short
/// hash of the full name.
pub fn backup_name(dsd_name: &str) -> String {
    let plain = format!("{dsd_name}-backup");
    if plain.len() <= MAX_CRONJOB_NAME {
        return plain;
    }
    let hash = hex::encode(Sha256::digest(dsd_name.as_bytes()));
    let keep = MAX_CRONJOB_NAME - "-backup".len() - 7;
    let head: String = dsd_name.chars().take(keep).collect();
    format!(
        "{}-{}-backup",
        head.trim_end_matches(['-', '.']),
        &hash[..6]
    )
}

/// Labels on every child: the Kubernetes recommended ones plus the owner's name.
pub fn common_labels(dsd_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "deepseek".to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            dsd_name.to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            FIELD_MANAGER.to_string(),
        ),
        (LABEL_DEPLOYMENT.to_string(), dsd_name.to_string()),
    ])
}

/// Selector of every runtime pod of the resource, whatever its revision.
pub fn runtime_selector(dsd_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_DEPLOYMENT.to_string(), dsd_name.to_string()),
        (LABEL_COMPONENT.to_string(), COMPONENT_RUNTIME.to_string()),
    ])
}

/// Selector of the runtime pods of one revision.
pub fn revision_selector(dsd_name: &str, revision: &str) -> BTreeMap<String, String> {
    let mut labels = runtime_selector(dsd_name);
    labels.insert(LABEL_REVISION.to_string(), revision.to_string());
    labels
}

/// Labels of a revision's objects and pods: common labels plus the revision selector.
pub fn revision_labels(dsd_name: &str, revision: &str) -> BTreeMap<String, String> {
    let mut labels = common_labels(dsd_name);
    labels.insert(
        "app.kubernetes.io/component".to_string(),
        COMPONENT_RUNTIME.to_string(),
    );
    labels.extend(revision_selector(dsd_name, revision));
    labels
}

/// What determines the pods of a revision. Replicas, placement, rollout, service and monitoring
/// are left out on purpose: changing them must not start a new revision.
#[derive(Serialize)]
struct RevisionInput<'a> {
    /// Bumped when the way pods are built from these inputs changes.
    scheme: u32,
    model: &'a ModelSpec,
    image: &'a str,
    runtime: &'a deepseek_crds::RuntimeSpec,
    auth: &'a Option<deepseek_crds::AuthSpec>,
    rate_limit: &'a Option<deepseek_crds::RateLimitSpec>,
    tls: &'a Option<deepseek_crds::TlsSpec>,
}

/// The runtime image a spec runs: its own, else the operator's default.
pub fn runtime_image<'a>(spec: &'a DeepSeekDeploymentSpec, cfg: &'a BuildConfig) -> &'a str {
    spec.runtime.image.as_deref().unwrap_or(&cfg.runtime_image)
}

/// The builder configuration the spec's revision runs with. When the spec does not pin
/// `runtime.image` and its revision already ran (canary, stable or history) with another default
/// image, that recorded image is kept: an operator upgrade changes the default image, and
/// hashing the new one would start a canary of every resource that relies on the default.
/// A spec change makes a new revision, which then takes the operator's current default.
pub fn pinned_config(
    spec: &DeepSeekDeploymentSpec,
    status: Option<&DeepSeekDeploymentStatus>,
    cfg: &BuildConfig,
) -> BuildConfig {
    let Some(status) = status.filter(|_| spec.runtime.image.is_none()) else {
        return cfg.clone();
    };
    let recorded = status
        .canary_revision
        .iter()
        .chain(status.stable_revision.iter())
        .map(|r| (&r.hash, &r.image))
        .chain(status.history.iter().map(|h| (&h.hash, &h.image)));
    for (hash, image) in recorded {
        if image.is_empty() || *image == cfg.runtime_image {
            continue;
        }
        let pinned = BuildConfig {
            runtime_image: image.clone(),
            ..cfg.clone()
        };
        if revision(spec, &pinned) == *hash {
            return pinned;
        }
    }
    cfg.clone()
}

/// Short stable hash of everything that changes the pods (10 lowercase hex characters).
pub fn revision(spec: &DeepSeekDeploymentSpec, cfg: &BuildConfig) -> String {
    let image = runtime_image(spec, cfg);
    // The image is hashed once, resolved; the spec's own (optional) image must not count twice.
    let mut runtime = spec.runtime.clone();
    runtime.image = None;
    let input = RevisionInput {
        scheme: 1,
        model: &spec.model,
        image,
        runtime: &runtime,
        auth: &spec.auth,
        rate_limit: &spec.rate_limit,
        tls: &spec.tls,
    };
    // Serializing plain structs (no maps with random order) is deterministic.
    let bytes = serde_json::to_vec(&input).unwrap_or_default();
    let digest = hex::encode(Sha256::digest(&bytes));
    digest[..REVISION_LEN].to_string()
}

/// SHA256 over the model files as `sha256sum` lines sorted by path: two specs listing the same
/// files in another order have the same digest.
pub fn model_digest(model: &ModelSpec) -> String {
    let mut lines: Vec<String> = model
        .files
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.path))
        .collect();
    lines.sort();
    hex::encode(Sha256::digest(lines.concat().as_bytes()))
}

/// Identity of the revision the spec describes, as written to status.
pub fn revision_ref(spec: &DeepSeekDeploymentSpec, cfg: &BuildConfig) -> RevisionRef {
    RevisionRef {
        hash: revision(spec, cfg),
        model_digest: model_digest(&spec.model),
        image: runtime_image(spec, cfg).to_string(),
    }
}

/// Revision hash of a child from its labels (for pruning and observation).
pub fn revision_of(labels: &BTreeMap<String, String>) -> Option<&str> {
    labels.get(LABEL_REVISION).map(String::as_str)
}
