//! The PodMonitor (monitoring.coreos.com/v1) scraping `/metrics` of every pod of the deployment —
//! runtime pods of every revision, canary included, and router pods when there are any — on
//! their `http` port. A PodMonitor rather than a ServiceMonitor: the chat Service selects only
//! the stable revision's pods, so a ServiceMonitor behind it would never see the canary.
//!
//! Relabelling adds `deepseek_deployment` (the DeepSeekDeployment's name), which the SLO alerts
//! of [`super::prometheus_rule`] and the dashboard select on; `namespace` and `pod` come from the
//! Prometheus operator, `model` and `revision` from the runtime itself.

use deepseek_crds::DeepSeekDeploymentSpec;
use serde_json::json;

use super::prometheus_rule::{monitoring_labels, DEPLOYMENT_LABEL};
use super::security::ADMIN_PORT_NAME;
use super::{naming, BuildError, ChildKind, DesiredChild, Owner};

/// Seconds between scrapes.
pub const SCRAPE_INTERVAL: &str = "15s";

/// The Prometheus service-discovery meta label of a pod label key.
pub fn meta_label(pod_label: &str) -> String {
    let sanitized: String = pod_label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("__meta_kubernetes_pod_label_{sanitized}")
}

pub(crate) fn build(
    owner: &Owner,
    spec: &DeepSeekDeploymentSpec,
) -> Result<DesiredChild, BuildError> {
    let name = naming::monitoring_name(&owner.name);
    let meta = owner.child_meta(
        name.clone(),
        monitoring_labels(&owner.name, &spec.monitoring),
    );
    let endpoint = json!({
        // The runtime serves /metrics on its admin port only (plain HTTP, no auth: only the
        // monitoring namespace reaches it).
        "port": ADMIN_PORT_NAME,
        "path": "/metrics",
        "interval": SCRAPE_INTERVAL,
        "scheme": "http",
        "relabelings": [{
            "action": "replace",
            "sourceLabels": [meta_label(naming::LABEL_DEPLOYMENT)],
            "targetLabel": DEPLOYMENT_LABEL,
        }],
    });
    let monitor = json!({
        "apiVersion": ChildKind::PodMonitor.api_version(),
        "kind": ChildKind::PodMonitor.kind(),
        "metadata": meta,
        "spec": {
            "selector": { "matchLabels": { naming::LABEL_DEPLOYMENT: owner.name } },
            "namespaceSelector": { "matchNames": [owner.namespace] },
            "podMetricsEndpoints": [endpoint],
        },
    });
    owner.child(ChildKind::PodMonitor, &name, &monitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_label_keys_become_prometheus_meta_labels() {
        assert_eq!(
            meta_label("inference.deepseek-k8s.dev/deployment"),
            "__meta_kubernetes_pod_label_inference_deepseek_k8s_dev_deployment"
        );
    }
}
