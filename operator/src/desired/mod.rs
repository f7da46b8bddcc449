//! Desired state as a pure function: DeepSeekDeployment (+ operator config) -> the children to
//! server-side apply. No client, no clock, no randomness: the same input gives byte-identical
//! output, which `render` prints and golden tests pin.
//!
//! One Deployment and one ConfigMap for the spec's revision (at the replicas the rollout plan
//! gives it), one Service per routed revision, the router (routes ConfigMap, Deployment,
//! budget; see [`router`]), the chat Service in front of the router, and the runtime
//! PodDisruptionBudget. Deployments of other revisions (stable, history) are not rebuilt here:
//! the controller keeps them, scales them as the rollout decides and prunes the rest.

pub mod compat;
pub mod configmap;
pub mod containers;
pub mod cronjob;
pub mod dashboard;
pub mod deployment;
pub mod manifests;
pub mod naming;
pub mod network_policy;
pub mod pdb;
pub mod pod_monitor;
pub mod privacy;
pub mod prometheus_rule;
pub mod router;
pub mod security;
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
    /// networking.k8s.io/v1 NetworkPolicy (who may reach the runtime pods).
    NetworkPolicy,
}

impl ChildKind {
    /// Every kind, in apply order (config before the pods that read it).
    pub const ALL: [ChildKind; 8] = [
        Self::NetworkPolicy,
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

    /// The kind named `kind` (`"Deployment"`, ...), if the operator manages it.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.kind() == kind)
    }

    /// `apiVersion` of the kind.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::Deployment => "apps/v1",
            Self::Service | Self::ConfigMap => "v1",
            Self::PodDisruptionBudget => "policy/v1",
            Self::CronJob => "batch/v1",
            Self::PrometheusRule | Self::PodMonitor => "monitoring.coreos.com/v1",
            Self::NetworkPolicy => "networking.k8s.io/v1",
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
            Self::NetworkPolicy => "NetworkPolicy",
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
            Self::NetworkPolicy => "networkpolicies",
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
    /// A generated file failed to serialize as YAML (a bug).
    #[error("cannot serialize the YAML of {name}: {source}")]
    Yaml {
        name: String,
        source: serde_yaml::Error,
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

/// What the rollout decided, as the builders need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Replicas of the spec revision's Deployment (a canary's share, or 0 while held).
    pub replicas: i32,
    /// Revisions the router sends to, with their weights (summing to 100), stable first.
    pub routes: Vec<(String, i32)>,
}

impl Plan {
    /// The plan a status describes (offline rendering): its stable revision (or the spec's when
    /// none) and its canary at the canary's weight; the spec's revision at full replicas.
    pub fn from_status(dsd: &DeepSeekDeployment, revision: &str) -> Self {
        let status = dsd.status.clone().unwrap_or_default();
        let stable = status
            .stable_revision
            .map(|r| r.hash)
            .unwrap_or_else(|| revision.to_string());
        let weight = status.canary_weight.unwrap_or(0);
        let mut routes = vec![(stable, 100 - weight)];
        if let Some(canary) = status.canary_revision {
            routes.push((canary.hash, weight));
        }
        Self {
            replicas: dsd.spec.replicas,
            routes,
        }
    }

    /// The plan of a rollout decision.
    pub fn from_decision(decision: &crate::rollout::Decision, revision: &str) -> Self {
        Self {
            replicas: decision.replicas.get(revision).copied().unwrap_or(0),
            routes: decision.routes(),
        }
    }
}

/// The children the controller applies for this resource, in apply order, for the plan its
/// status describes. Fails without building anything when the spec is invalid or the metadata
/// incomplete.
pub fn build(dsd: &DeepSeekDeployment, cfg: &BuildConfig) -> Result<Vec<DesiredChild>, BuildError> {
    let revision = naming::revision(&dsd.spec, cfg);
    build_with(dsd, cfg, &Plan::from_status(dsd, &revision))
}

/// The children for a given rollout plan: the spec revision's ConfigMap and Deployment, one
/// Service per routed revision, the router (routes ConfigMap, Deployment, budget), the chat
/// Service (selecting the router pods), the runtime PodDisruptionBudget and the NetworkPolicy
/// admitting only routers and monitoring to the runtime pods.
pub fn build_with(
    dsd: &DeepSeekDeployment,
    cfg: &BuildConfig,
    plan: &Plan,
) -> Result<Vec<DesiredChild>, BuildError> {
    validate_resource(dsd).map_err(BuildError::InvalidSpec)?;
    let owner = Owner::of(dsd)?;
    let spec = &dsd.spec;
    let revision = naming::revision(spec, cfg);
    let mut deployment = deployment::build(&owner, spec, cfg, &revision)?;
    deployment.object["spec"]["replicas"] = plan.replicas.into();
    let mut children = vec![
        configmap::build(&owner, spec, cfg, &revision)?,
        router::routes_config_map(&owner, cfg, &plan.routes)?,
        deployment,
        router::router_deployment(&owner, spec, cfg)?,
    ];
    for (hash, _) in &plan.routes {
        children.push(router::revision_service(&owner, cfg, hash)?);
    }
    children.push(service::build(
        &owner,
        spec,
        cfg,
        &service::ServiceTarget::Router,
    )?);
    if let Some(pdb) = pdb::build(&owner, spec)? {
        children.push(pdb);
    }
    children.push(router::router_pdb(&owner)?);
    children.push(network_policy::build(&owner)?);
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
        children.push(pod_monitor::build(owner, spec)?);
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
