//! The one PodDisruptionBudget of the runtime pods: voluntary disruptions (node drains,
//! upgrades) must leave enough ready replicas — by default one per zone, and always at least one
//! fewer than the replica count so a drain can make progress.
//!
//! There is deliberately no per-zone budget: the eviction API refuses to evict a pod selected
//! by more than one budget ("more than one PodDisruptionBudget"), which would hang every
//! drain, and a `minAvailable: 1` budget over a zone holding one pod allows no disruption.

use deepseek_crds::DeepSeekDeploymentSpec;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{naming, BuildError, ChildKind, DesiredChild, Owner};

/// `minAvailable`: the spec's, else one per zone (at least one) but always below the replica
/// count, so one pod can always be evicted; `None` (no budget) for a single replica, where any
/// budget would block drains forever.
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
