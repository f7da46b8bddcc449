//! Resource kinds the fake server knows: what a test registers (group, version, kind, plural,
//! scope, status subresource) and the built-in kinds every server starts with.

use std::any::TypeId;

use kube::core::NamespaceResourceScope;
use kube::Resource;

/// One API resource the fake server serves. Objects are stored per (group, plural); the
/// version is only used for discovery and the apiVersion written into objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceDef {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    /// With a status subresource, main-resource writes ignore `.status` and `/status`
    /// writes change nothing else (as for Deployments, Pods and CRDs declaring it).
    pub has_status: bool,
}

impl ResourceDef {
    pub fn new(group: &str, version: &str, kind: &str, plural: &str) -> Self {
        Self {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced: true,
            has_status: false,
        }
    }

    #[must_use]
    pub fn cluster_scoped(mut self) -> Self {
        self.namespaced = false;
        self
    }

    #[must_use]
    pub fn with_status(mut self) -> Self {
        self.has_status = true;
        self
    }

    /// Definition taken from a typed resource (k8s-openapi or `#[derive(CustomResource)]`);
    /// the scope comes from the type, the status subresource must be said explicitly.
    pub fn of<K>(has_status: bool) -> Self
    where
        K: Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        Self {
            group: K::group(&()).to_string(),
            version: K::version(&()).to_string(),
            kind: K::kind(&()).to_string(),
            plural: K::plural(&()).to_string(),
            namespaced: TypeId::of::<K::Scope>() == TypeId::of::<NamespaceResourceScope>(),
            has_status,
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// The kinds a controller test usually touches; tests register their own CRDs on top.
pub fn builtin_defs() -> Vec<ResourceDef> {
    let core = |kind: &str, plural: &str| ResourceDef::new("", "v1", kind, plural);
    vec![
        core("Namespace", "namespaces")
            .cluster_scoped()
            .with_status(),
        core("Pod", "pods").with_status(),
        core("Service", "services").with_status(),
        core("ConfigMap", "configmaps"),
        core("Secret", "secrets"),
        core("ServiceAccount", "serviceaccounts"),
        core("Event", "events"),
        core("PersistentVolumeClaim", "persistentvolumeclaims").with_status(),
        core("Node", "nodes").cluster_scoped().with_status(),
        ResourceDef::new("apps", "v1", "Deployment", "deployments").with_status(),
        ResourceDef::new("apps", "v1", "StatefulSet", "statefulsets").with_status(),
        ResourceDef::new("apps", "v1", "ReplicaSet", "replicasets").with_status(),
        ResourceDef::new(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
        )
        .with_status(),
        ResourceDef::new("batch", "v1", "CronJob", "cronjobs").with_status(),
        ResourceDef::new("batch", "v1", "Job", "jobs").with_status(),
        ResourceDef::new("coordination.k8s.io", "v1", "Lease", "leases"),
        ResourceDef::new("events.k8s.io", "v1", "Event", "events"),
        ResourceDef::new(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
        ),
        ResourceDef::new(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        )
        .cluster_scoped()
        .with_status(),
    ]
}

/// The Prometheus operator's kinds (monitoring.coreos.com/v1), for tests of a cluster that has
/// its CRDs installed: register them and discovery serves the group.
pub fn monitoring_defs() -> Vec<ResourceDef> {
    let def =
        |kind: &str, plural: &str| ResourceDef::new("monitoring.coreos.com", "v1", kind, plural);
    vec![
        def("PrometheusRule", "prometheusrules"),
        def("ServiceMonitor", "servicemonitors"),
        def("PodMonitor", "podmonitors"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Namespace;

    #[test]
    fn typed_definition_reads_scope_from_the_type() {
        let d = ResourceDef::of::<Deployment>(true);
        assert_eq!(
            (d.group.as_str(), d.plural.as_str()),
            ("apps", "deployments")
        );
        assert!(d.namespaced);
        assert!(!ResourceDef::of::<Namespace>(true).namespaced);
    }
}
