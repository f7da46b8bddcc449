//! What `deepseek-operator manifests` prints for a plain `kubectl apply`: the CRD, a namespace,
//! the ServiceAccount, least-privilege RBAC (exactly the calls the controller makes) and the
//! operator Deployment with leader election. The Helm chart renders the same objects.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::containers::container_security;
use super::default_runtime_image;

/// Name of the operator's ServiceAccount, roles, Deployment and leader-election Lease.
pub const OPERATOR_NAME: &str = "deepseek-operator";

/// One RBAC rule: API group, resources, verbs.
pub type Rule = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// Permissions on namespaced resources: exactly what the controller reads, applies and prunes,
/// checked by operator/tests/rbac.rs against every call it makes (and equal to the chart's
/// charts/deepseek-operator/files/clusterrole-rules.yaml). Bound cluster-wide by a
/// ClusterRoleBinding, or, with the chart's `watchNamespace`, held by a Role in that namespace
/// only. Children are never read one by one: they are watched (the reconciler reads the watch
/// caches), server-side applied (`patch`, plus `create` when the apply creates) and pruned
/// (`delete`). No Secret is ever read: a missing Secret shows on the pods that mount it.
pub const CLUSTER_RULES: &[Rule] = &[
    // `get`: each reconciliation decides the rollout on a fresh read, not the watch cache.
    (
        deepseek_crds::GROUP,
        &["deepseekdeployments"],
        &["get", "list", "watch"],
    ),
    (
        deepseek_crds::GROUP,
        &["deepseekdeployments/status"],
        &["patch"],
    ),
    // Children carry `blockOwnerDeletion`; clusters with OwnerReferencesPermissionEnforcement
    // (OpenShift) require this to set it.
    (
        deepseek_crds::GROUP,
        &["deepseekdeployments/finalizers"],
        &["update"],
    ),
    (
        "apps",
        &["deployments"],
        &["list", "watch", "create", "patch", "delete"],
    ),
    (
        "",
        &["services", "configmaps"],
        &["list", "watch", "create", "patch", "delete"],
    ),
    (
        "policy",
        &["poddisruptionbudgets"],
        &["list", "watch", "create", "patch", "delete"],
    ),
    ("", &["pods"], &["list", "watch"]),
    (
        "batch",
        &["cronjobs"],
        &["list", "watch", "create", "patch", "delete"],
    ),
    // Applied and pruned like the monitoring kinds, never watched.
    (
        "networking.k8s.io",
        &["networkpolicies"],
        &["list", "create", "patch", "delete"],
    ),
    // Created only where discovery finds the Prometheus operator's CRDs.
    (
        "monitoring.coreos.com",
        &["prometheusrules", "podmonitors"],
        &["list", "create", "patch", "delete"],
    ),
    ("events.k8s.io", &["events"], &["create", "patch"]),
];

/// Cluster-scoped and read-only: the zone of a runtime pod is its node's label. Always bound by
/// a ClusterRoleBinding (a RoleBinding cannot grant a cluster-scoped resource).
pub const NODE_RULES: &[Rule] = &[("", &["nodes"], &["list", "watch"])];

/// Name of the ClusterRole (and binding) of [`NODE_RULES`].
pub fn node_role_name() -> String {
    format!("{OPERATOR_NAME}-nodes")
}

/// Namespace-scoped permissions in the operator's namespace: the leader-election Lease.
pub const LEASE_RULES: &[Rule] = &[(
    "coordination.k8s.io",
    &["leases"],
    &["get", "create", "update"],
)];

/// Inputs of the printed manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestConfig {
    /// Namespace the operator runs in.
    pub namespace: String,
    /// Operator image.
    pub image: String,
    /// Default runtime image passed to `run --runtime-image`.
    pub runtime_image: String,
    /// Operator replicas (leader election makes more than one safe).
    pub replicas: i32,
    /// Port of `/metrics`, `/healthz`, `/readyz`.
    pub metrics_port: u16,
}

impl Default for ManifestConfig {
    fn default() -> Self {
        Self {
            namespace: "deepseek-system".into(),
            image: format!("deepseek-operator:{}", env!("CARGO_PKG_VERSION")),
            runtime_image: default_runtime_image(),
            replicas: 1,
            metrics_port: 8080,
        }
    }
}

/// Why manifests could not be produced.
#[derive(Debug, thiserror::Error)]
#[error("cannot serialize manifest: {0}")]
pub struct ManifestError(#[from] serde_json::Error);

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            OPERATOR_NAME.to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            "operator".to_string(),
        ),
        (
            "app.kubernetes.io/part-of".to_string(),
            "deepseek".to_string(),
        ),
    ])
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

/// RBAC rules as Kubernetes PolicyRules.
pub fn policy_rules(rules: &[Rule]) -> Vec<PolicyRule> {
    rules
        .iter()
        .map(|(group, resources, verbs)| PolicyRule {
            api_groups: Some(vec![group.to_string()]),
            resources: Some(resources.iter().map(ToString::to_string).collect()),
            verbs: verbs.iter().map(ToString::to_string).collect(),
            ..PolicyRule::default()
        })
        .collect()
}

/// Every object, in apply order (CRD and namespace first).
pub fn manifests(cfg: &ManifestConfig) -> Result<Vec<Value>, ManifestError> {
    let ns = cfg.namespace.as_str();
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: OPERATOR_NAME.into(),
        namespace: Some(ns.into()),
        ..Subject::default()
    };
    let role_ref = |kind: &str| RoleRef {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: kind.into(),
        name: OPERATOR_NAME.into(),
    };
    Ok(vec![
        serde_json::to_value(deepseek_crds::crd::crd())?,
        serde_json::to_value(Namespace {
            metadata: meta(ns, None),
            ..Namespace::default()
        })?,
        serde_json::to_value(ServiceAccount {
            metadata: meta(OPERATOR_NAME, Some(ns)),
            ..ServiceAccount::default()
        })?,
        serde_json::to_value(ClusterRole {
            metadata: meta(OPERATOR_NAME, None),
            rules: Some(policy_rules(CLUSTER_RULES)),
            ..ClusterRole::default()
        })?,
        serde_json::to_value(ClusterRoleBinding {
            metadata: meta(OPERATOR_NAME, None),
            role_ref: role_ref("ClusterRole"),
            subjects: Some(vec![subject.clone()]),
        })?,
        serde_json::to_value(ClusterRole {
            metadata: meta(&node_role_name(), None),
            rules: Some(policy_rules(NODE_RULES)),
            ..ClusterRole::default()
        })?,
        serde_json::to_value(ClusterRoleBinding {
            metadata: meta(&node_role_name(), None),
            role_ref: RoleRef {
                name: node_role_name(),
                ..role_ref("ClusterRole")
            },
            subjects: Some(vec![subject.clone()]),
        })?,
        serde_json::to_value(Role {
            metadata: meta(OPERATOR_NAME, Some(ns)),
            rules: Some(policy_rules(LEASE_RULES)),
        })?,
        serde_json::to_value(RoleBinding {
            metadata: meta(OPERATOR_NAME, Some(ns)),
            role_ref: role_ref("Role"),
            subjects: Some(vec![subject]),
        })?,
        serde_json::to_value(operator_deployment(cfg))?,
    ])
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("metrics".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    }
}

fn operator_container(cfg: &ManifestConfig) -> Container {
    let quantity = |v: &str| Quantity(v.into());
    Container {
        name: "operator".into(),
        image: Some(cfg.image.clone()),
        args: Some(vec![
            "run".into(),
            "--metrics-addr".into(),
            format!("0.0.0.0:{}", cfg.metrics_port),
            "--leader-election".into(),
            "--lease-name".into(),
            OPERATOR_NAME.into(),
            "--runtime-image".into(),
            cfg.runtime_image.clone(),
        ]),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            EnvVar {
                name: "RUST_LOG".into(),
                value: Some("info".into()),
                ..EnvVar::default()
            },
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: i32::from(cfg.metrics_port),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(probe("/healthz")),
        readiness_probe: Some(probe("/readyz")),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), quantity("50m")),
                ("memory".into(), quantity("64Mi")),
            ])),
            limits: Some(BTreeMap::from([("memory".into(), quantity("256Mi"))])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(container_security()),
        ..Container::default()
    }
}

fn operator_deployment(cfg: &ManifestConfig) -> Deployment {
    let selector = BTreeMap::from([(
        "app.kubernetes.io/name".to_string(),
        OPERATOR_NAME.to_string(),
    )]);
    Deployment {
        metadata: meta(OPERATOR_NAME, Some(&cfg.namespace)),
        spec: DeploymentSpec {
            replicas: Some(cfg.replicas),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(OPERATOR_NAME.into()),
                    containers: vec![operator_container(cfg)],
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}
