//! Desired state as a pure function: DeepSeekDeployment (+ operator config) -> the children to
//! server-side apply. No client, no clock, no randomness: the same input gives byte-identical
//! output, which `render` prints and golden tests pin.
//!
//! Today: one Deployment and one ConfigMap for the spec's revision, the chat Service (selecting
//! the stable revision's pods), and a PodDisruptionBudget. Deployments of other revisions named
//! in status (stable, history) are not rebuilt here — the controller keeps them and prunes the
//! rest (see [`naming::revision_of`]).

pub mod configmap;
pub mod containers;
pub mod cronjob;
pub mod dashboard;
pub mod deployment;
pub mod manifests;
pub mod naming;
pub mod pdb;
pub mod pod_monitor;
pub mod prometheus_rule;
pub mod service;

use deepseek_crds::{validate_resource, DeepSeekDeployment, SpecError, API_VERSION, KIND};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;
use serde_json::Value;

/// Operator-wide inputs of the builders (from `run` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildConfig {
    /// Runtime image used when `spec.runtime.image` is absent.
    pub runtime_image: String,
    /// Port the runtime listens on inside the pod.
    pub runtime_port: u16,
}

impl Default for BuildConfig {
    fn default() -> Self {
        Self {
            runtime_image: default_runtime_image(),
            runtime_port: 8000,
        }
    }
}

/// `deepseek-runtime:<operator version>`: the image built from the same commit.
pub fn default_runtime_image() -> String {
    format!("deepseek-runtime:{}", env!("CARGO_PKG_VERSION"))
}

/// Kinds of children the operator manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChildKind {
    /// apps/v1 Deployment.
    Deployment,
    /// v1 Service.
    Service,
    /// v1 ConfigMap.
    ConfigMap,
    /// policy/v1 PodDisruptionBudget.
    PodDisruptionBudget,
    /// batch/v1 CronJob (backups).
    CronJob,
    /// monitoring.coreos.com/v1 PrometheusRule (only where the cluster serves it).
    PrometheusRule,
    /// monitoring.coreos.com/v1 PodMonitor (only where the cluster serves it).
    PodMonitor,
}

impl ChildKind {
    /// Every kind, in apply order (config before the pods that read it).
    pub const ALL: [ChildKind; 7] = [
        Self::ConfigMap,
        Self::Deployment,
        Self::Service,
        Self::PodDisruptionBudget,
        Self::CronJob,
        Self::PrometheusRule,
        Self::PodMonitor,
    ];

    /// Kinds of the monitoring.coreos.com group: applied only where discovery finds them.
    pub const MONITORING: [ChildKind; 2] = [Self::PrometheusRule, Self::PodMonitor];

    /// `apiVersion` of the kind.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::Deployment => "apps/v1",
            Self::Service | Self::ConfigMap => "v1",
            Self::PodDisruptionBudget => "policy/v1",
            Self::CronJob => "batch/v1",
            Self::PrometheusRule | Self::PodMonitor => "monitoring.coreos.com/v1",
        }
    }

    /// `kind` of the kind.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::Service => "Service",
            Self::ConfigMap => "ConfigMap",
            Self::PodDisruptionBudget => "PodDisruptionBudget",
            Self::CronJob => "CronJob",
            Self::PrometheusRule => "PrometheusRule",
            Self::PodMonitor => "PodMonitor",
        }
    }

    /// API group ("" for core).
    pub fn group(self) -> &'static str {
        self.api_version()
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }

    /// Resource name in URLs and RBAC rules.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Deployment => "deployments",
            Self::Service => "services",
            Self::ConfigMap => "configmaps",
            Self::PodDisruptionBudget => "poddisruptionbudgets",
            Self::CronJob => "cronjobs",
            Self::PrometheusRule => "prometheusrules",
            Self::PodMonitor => "podmonitors",
        }
    }
}

/// One object to server-side apply: complete (apiVersion, kind, metadata with namespace, labels
/// and a controller owner reference to the DeepSeekDeployment) and ready to send as-is.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredChild {
    /// What it is.
    pub kind: ChildKind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (the DeepSeekDeployment's).
    pub namespace: String,
    /// The full object.
    pub object: Value,
}

/// Why the desired state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec breaks semantic rules; nothing is built so running children stay as they are.
    #[error("invalid spec: {}", join_errors(.0))]
    InvalidSpec(Vec<SpecError>),
    /// A metadata field the children need (name, namespace, uid) is missing.
    #[error("metadata.{0} is missing")]
    MissingMetadata(&'static str),
    /// A typed object failed to serialize (a bug).
    #[error("cannot serialize {kind} {name}: {source}")]
    Serialize {
        kind: &'static str,
        name: String,
        source: serde_json::Error,
    },
}

fn join_errors(errors: &[SpecError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Identity of the owner, extracted once.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl Owner {
    fn of(dsd: &DeepSeekDeployment) -> Result<Self, BuildError> {
        Ok(Self {
            name: dsd
                .metadata
                .name
                .clone()
                .ok_or(BuildError::MissingMetadata("name"))?,
            namespace: dsd
                .metadata
                .namespace
                .clone()
                .ok_or(BuildError::MissingMetadata("namespace"))?,
            uid: dsd
                .metadata
                .uid
                .clone()
                .ok_or(BuildError::MissingMetadata("uid"))?,
        })
    }

    /// Metadata of a child: name, namespace, labels, controller owner reference (so deleting the
    /// DeepSeekDeployment garbage-collects it, and the Controller maps its events back).
    pub(crate) fn child_meta(
        &self,
        name: String,
        labels: std::collections::BTreeMap<String, String>,
    ) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![OwnerReference {
                api_version: API_VERSION.to_string(),
                kind: KIND.to_string(),
                name: self.name.clone(),
                uid: self.uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        }
    }

    pub(crate) fn child<T: Serialize>(
        &self,
        kind: ChildKind,
        name: &str,
        typed: &T,
    ) -> Result<DesiredChild, BuildError> {
        let object = serde_json::to_value(typed).map_err(|source| BuildError::Serialize {
            kind: kind.kind(),
            name: name.to_string(),
            source,
        })?;
        Ok(DesiredChild {
            kind,
            name: name.to_string(),
            namespace: self.namespace.clone(),
            object,
        })
    }
}

/// The children the controller applies for this resource, in apply order. Fails without building
/// anything when the spec is invalid or the metadata incomplete.
pub fn build(dsd: &DeepSeekDeployment, cfg: &BuildConfig) -> Result<Vec<DesiredChild>, BuildError> {
    validate_resource(dsd).map_err(BuildError::InvalidSpec)?;
    let owner = Owner::of(dsd)?;
    let spec = &dsd.spec;
    let revision = naming::revision(spec, cfg);
    let stable = dsd
        .status
        .as_ref()
        .and_then(|s| s.stable_revision.as_ref())
        .map(|r| r.hash.clone())
        .unwrap_or_else(|| revision.clone());
    let mut children = vec![
        configmap::build(&owner, spec, cfg, &revision)?,
        deployment::build(&owner, spec, cfg, &revision)?,
        service::build(&owner, spec, cfg, &service::ServiceTarget::Revision(stable))?,
    ];
    if let Some(pdb) = pdb::build(&owner, spec)? {
        children.push(pdb);
    }
    children.extend(pdb::build_zones(&owner, spec)?);
    children.extend(operations(&owner, spec, cfg)?);
    Ok(children)
}

/// Backup CronJob and monitoring children (PrometheusRule, PodMonitor, dashboard ConfigMap; the
/// controller drops the monitoring ones where the cluster lacks their CRDs).
fn operations(
    owner: &Owner,
    spec: &deepseek_crds::DeepSeekDeploymentSpec,
    cfg: &BuildConfig,
) -> Result<Vec<DesiredChild>, BuildError> {
    let mut children = Vec::new();
    if let Some(backup) = &spec.backup {
        children.push(cronjob::build(owner, spec, cfg, backup)?);
    }
    if spec.monitoring.enabled {
        children.push(prometheus_rule::build(owner, spec)?);
        children.push(pod_monitor::build(owner, spec, spec.tls.is_some())?);
        children.push(dashboard::build(owner, spec)?);
    }
    Ok(children)
}

/// Whether a built child belongs to the monitoring stack (skipped without its CRDs).
pub fn is_monitoring(object: &Value) -> bool {
    object["metadata"]["labels"][naming::LABEL_COMPONENT].as_str()
        == Some(naming::COMPONENT_MONITORING)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "pod_tests.rs"]
mod pod_tests;

#[cfg(test)]
#[path = "ops_tests.rs"]
mod ops_tests;
