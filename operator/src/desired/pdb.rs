//! The PodDisruptionBudget of the runtime pods: voluntary disruptions (node drains, upgrades)
//! must leave enough ready replicas — by default one per zone. With `placement.zones`, one more
//! budget per zone (`minAvailable: 1`) selects the pods the controller labelled with that zone,
//! so no drain can take a zone's last ready replica.

use deepseek_crds::DeepSeekDeploymentSpec;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{naming, BuildError, ChildKind, DesiredChild, Owner};

/// `minAvailable`: the spec's, else one per zone (at least one) but always below the replica
/// count; `None` (no budget) for a single replica, where any budget would block drains forever.
pub fn min_available(spec: &DeepSeekDeploymentSpec) -> Option<i32> {
    if let Some(explicit) = spec.placement.pdb_min_available {
        return Some(explicit);
    }
    if spec.replicas < 2 {
        return None;
    }
    let per_zone = i32::try_from(spec.placement.zones.len())
        .unwrap_or(i32::MAX)
        .max(1);
    Some(per_zone.min(spec.replicas - 1))
}

pub(crate) fn build(
    owner: &Owner,
    spec: &DeepSeekDeploymentSpec,
) -> Result<Option<DesiredChild>, BuildError> {
    let Some(min_available) = min_available(spec) else {
        return Ok(None);
    };
    let name = naming::pdb_name(&owner.name);
    let pdb = PodDisruptionBudget {
        metadata: owner.child_meta(name.clone(), naming::common_labels(&owner.name)),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(min_available)),
            selector: Some(LabelSelector {
                match_labels: Some(naming::runtime_selector(&owner.name)),
                ..LabelSelector::default()
            }),
            // Pods that are not ready yet (loading a model) may be evicted: they serve nothing.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    };
    owner
        .child(ChildKind::PodDisruptionBudget, &name, &pdb)
        .map(Some)
}

/// Per-zone budgets: with zones, at least as many replicas as zones and no explicit
/// `pdbMinAvailable` (setting it, even to 0, hands disruption control to the user).
pub fn zone_budgets(spec: &DeepSeekDeploymentSpec) -> Vec<String> {
    let zones = &spec.placement.zones;
    let enough = usize::try_from(spec.replicas).unwrap_or(0) >= zones.len();
    if zones.is_empty() || !enough || spec.placement.pdb_min_available.is_some() {
        return Vec::new();
    }
    zones.clone()
}

pub(crate) fn build_zones(
    owner: &Owner,
    spec: &DeepSeekDeploymentSpec,
) -> Result<Vec<DesiredChild>, BuildError> {
    zone_budgets(spec)
        .iter()
        .map(|zone| {
            let name = naming::zone_pdb_name(&owner.name, zone);
            let mut labels = naming::common_labels(&owner.name);
            labels.insert(naming::LABEL_ZONE.to_string(), zone.clone());
            let mut selector = naming::runtime_selector(&owner.name);
            selector.insert(naming::LABEL_ZONE.to_string(), zone.clone());
            let pdb = PodDisruptionBudget {
                metadata: owner.child_meta(name.clone(), labels),
                spec: Some(PodDisruptionBudgetSpec {
                    min_available: Some(IntOrString::Int(1)),
                    selector: Some(LabelSelector {
                        match_labels: Some(selector),
                        ..LabelSelector::default()
                    }),
                    unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
                    ..PodDisruptionBudgetSpec::default()
                }),
                ..PodDisruptionBudget::default()
            };
            owner.child(ChildKind::PodDisruptionBudget, &name, &pdb)
        })
        .collect()
}
