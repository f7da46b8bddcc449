//! The NetworkPolicy `{name}-runtime`: traffic to the runtime pods only from this resource's
//! routers (the chat port) and from the monitoring namespace (the admin port, `/metrics`).
//! Whatever reaches the cluster network can then neither call a model around the router's
//! auth, TLS and rate limits, nor read the runtime's metrics. Probes come from the kubelet on
//! the node, which NetworkPolicies do not restrict.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

use super::router::router_selector;
use super::security::ADMIN_PORT_NAME;
use super::{naming, BuildError, ChildKind, DesiredChild, Owner};

/// The namespace whose pods (Prometheus) may scrape the runtime's admin port.
pub const MONITORING_NAMESPACE: &str = "monitoring";

/// `{name}-runtime`.
pub fn network_policy_name(dsd_name: &str) -> String {
    format!("{dsd_name}-runtime")
}

fn port(name: &str) -> Option<Vec<NetworkPolicyPort>> {
    Some(vec![NetworkPolicyPort {
        port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    }])
}

fn selector(labels: BTreeMap<String, String>) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    })
}

pub(crate) fn build(owner: &Owner) -> Result<DesiredChild, BuildError> {
    let name = network_policy_name(&owner.name);
    let from_routers = NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            pod_selector: selector(router_selector(&owner.name)),
            ..NetworkPolicyPeer::default()
        }]),
        ports: port("http"),
    };
    let from_monitoring = NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            namespace_selector: selector(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                MONITORING_NAMESPACE.to_string(),
            )])),
            ..NetworkPolicyPeer::default()
        }]),
        ports: port(ADMIN_PORT_NAME),
    };
    let policy = NetworkPolicy {
        metadata: owner.child_meta(name.clone(), naming::common_labels(&owner.name)),
        spec: Some(NetworkPolicySpec {
            pod_selector: selector(naming::runtime_selector(&owner.name)),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![from_routers, from_monitoring]),
            ..NetworkPolicySpec::default()
        }),
    };
    owner.child(ChildKind::NetworkPolicy, &name, &policy)
}
