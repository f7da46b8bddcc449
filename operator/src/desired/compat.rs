//! The oldest Kubernetes the built objects are accepted by. The chart's `kubeVersion`, the
//! README and this constant say the same; a test fails when a builder starts using a field
//! newer than it.

/// Oldest supported minor version of Kubernetes 1.x: `lifecycle.preStop.sleep` (used for
/// graceful endpoint removal on the runtime and router pods) is served by default from 1.30;
/// older API servers reject the Deployment (422).
pub const MIN_KUBERNETES_MINOR: u32 = 30;

/// Fields the builders write that older releases do not serve by default, with the first minor
/// version that does.
pub const VERSIONED_FIELDS: &[(&str, u32)] = &[
    // PodLifecycleSleepAction: beta, on by default, in 1.30.
    ("sleep", 30),
    // MinDomainsInPodTopologySpread: beta on by default in 1.27, GA in 1.30.
    ("minDomains", 27),
    // PDBUnhealthyPodEvictionPolicy: beta on by default in 1.27, GA in 1.31.
    ("unhealthyPodEvictionPolicy", 27),
];

/// The chart's `kubeVersion` constraint for [`MIN_KUBERNETES_MINOR`].
pub fn chart_kube_version() -> String {
    format!(">=1.{MIN_KUBERNETES_MINOR}.0-0")
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::desired::tests::{base_spec, children, dsd, with};

    fn keys(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                out.push(k.clone());
                keys(v, out);
            }),
            Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_field_the_builders_use_is_served_by_the_minimum_version() {
        let spec = with(base_spec(), "/replicas", json!(3));
        let spec = with(spec, "/placement", json!({"zones": ["a", "b", "c"]}));
        let mut used = Vec::new();
        for child in children(&dsd(spec)) {
            keys(&child.object, &mut used);
        }
        for (field, minor) in VERSIONED_FIELDS {
            if used.iter().any(|k| k == field) {
                assert!(
                    *minor <= MIN_KUBERNETES_MINOR,
                    "{field} needs 1.{minor}, the minimum is 1.{MIN_KUBERNETES_MINOR}"
                );
            }
        }
        assert!(
            used.iter().any(|k| k == "sleep"),
            "the fixture covers preStop sleep"
        );
    }

    #[test]
    fn the_charts_kube_version_is_the_minimum() {
        let chart = include_str!("../../../charts/deepseek-operator/Chart.yaml");
        let line = chart
            .lines()
            .find(|l| l.starts_with("kubeVersion:"))
            .expect("Chart.yaml has kubeVersion");
        assert_eq!(
            line.trim_start_matches("kubeVersion:")
                .trim()
                .trim_matches('"'),
            chart_kube_version()
        );
    }
}
