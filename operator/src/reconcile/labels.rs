//! The label keys observe/cleanup and the controller's watches select children by; the
//! values are defined once, by the desired builders' naming.

use crate::desired::naming;

/// Set on every child (naming::common_labels).
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = naming::FIELD_MANAGER;
/// Name of the owning DeepSeekDeployment, on children and runtime pods.
pub const DEPLOYMENT: &str = naming::LABEL_DEPLOYMENT;
/// Revision hash of a runtime Deployment, its pods and ConfigMap.
pub const REVISION: &str = naming::LABEL_REVISION;

/// Selects every child (and runtime pod) of the DeepSeekDeployment `name`.
pub fn selector_for(name: &str) -> String {
    format!("{DEPLOYMENT}={name},{MANAGED_BY}={MANAGED_BY_VALUE}")
}

/// [`selector_for`] as a label map, for matching cached objects.
pub fn selector_map(name: &str) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        (DEPLOYMENT.to_string(), name.to_string()),
        (MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string()),
    ])
}

/// Selects every child of any DeepSeekDeployment (the controller's watches).
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGED_BY_VALUE}")
}
