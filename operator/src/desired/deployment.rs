//! The runtime Deployment of one revision (`{name}-{revision}`): GPU limits under the configured
//! resource name, placement (node selector, tolerations, zones -> topology spread + node
//! affinity), the model volume, non-root pod security and graceful termination.

use std::collections::BTreeMap;

use deepseek_crds::DeepSeekDeploymentSpec;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, EmptyDirVolumeSource, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, PersistentVolumeClaimVolumeSource, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, Toleration,
    TopologySpreadConstraint, Volume, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::containers::{self, MODEL_VOLUME, TMP_VOLUME};
use super::security;
use super::{naming, BuildConfig, BuildError, ChildKind, DesiredChild, Owner};

/// Node label of the zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Node label of the host.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// Non-root user and group of the runtime images.
pub const RUNTIME_UID: i64 = 65532;
/// Seconds a stopping pod gets to finish in-flight generations.
pub const TERMINATION_GRACE_SECONDS: i64 = 120;

pub(crate) fn build(
    owner: &Owner,
    spec: &DeepSeekDeploymentSpec,
    cfg: &BuildConfig,
    revision: &str,
) -> Result<DesiredChild, BuildError> {
    let name = naming::revision_object_name(&owner.name, revision);
    let labels = naming::revision_labels(&owner.name, revision);
    let deployment = Deployment {
        metadata: owner.child_meta(name.clone(), labels.clone()),
        spec: DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: LabelSelector {
                match_labels: Some(naming::revision_selector(&owner.name, revision)),
                ..LabelSelector::default()
            },
            // A revision's template only changes with placement: replace pods one at a time and
            // never drop below the desired count (GPU pods take minutes to become ready).
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            progress_deadline_seconds: Some(spec.rollout.progress_deadline_seconds),
            revision_history_limit: Some(2),
            template: pod_template(owner, spec, cfg, revision, &name, labels),
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    };
    owner.child(ChildKind::Deployment, &name, &deployment)
}

fn pod_template(
    owner: &Owner,
    spec: &DeepSeekDeploymentSpec,
    cfg: &BuildConfig,
    revision: &str,
    config_map: &str,
    labels: BTreeMap<String, String>,
) -> PodTemplateSpec {
    let image = naming::runtime_image(spec, cfg);
    let annotations = BTreeMap::from([(
        naming::ANNOTATION_MODEL_DIGEST.to_string(),
        naming::model_digest(&spec.model),
    )]);
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            init_containers: Some(vec![containers::fetch_container(spec, image)]),
            containers: vec![containers::runtime_container(
                spec, cfg, image, revision, config_map,
            )],
            volumes: Some(volumes(spec)),
            node_selector: (!spec.placement.node_selector.is_empty())
                .then(|| spec.placement.node_selector.clone()),
            tolerations: tolerations(spec),
            affinity: affinity(owner, spec, revision),
            topology_spread_constraints: topology_spread(owner, spec, revision),
            security_context: Some(pod_security()),
            termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
            // The runtime never talks to the API server.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            ..PodSpec::default()
        }),
    }
}

pub(crate) fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUNTIME_UID),
        run_as_group: Some(RUNTIME_UID),
        fs_group: Some(RUNTIME_UID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// The model volume (an emptyDir the init container fills, or the source PVC read-only), a
/// scratch emptyDir, and the auth Secrets' keys when `spec.auth` is set.
pub fn volumes(spec: &DeepSeekDeploymentSpec) -> Vec<Volume> {
    let model = match &spec.model.source.pvc {
        Some(pvc) => Volume {
            name: MODEL_VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: pvc.claim_name.clone(),
                read_only: Some(true),
            }),
            ..Volume::default()
        },
        None => Volume {
            name: MODEL_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    };
    let mut volumes = vec![
        model,
        Volume {
            name: TMP_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    volumes.extend(security::auth_volume(spec));
    volumes
}

/// The user's tolerations, plus one for GPU nodes tainted with the GPU resource name (the
/// convention of GPU node pools on GKE, AKS and the NVIDIA GPU operator).
pub fn tolerations(spec: &DeepSeekDeploymentSpec) -> Option<Vec<Toleration>> {
    let mut tolerations = spec.placement.tolerations.clone();
    let gpu_key = &spec.runtime.gpu_resource_name;
    if spec.runtime.gpus > 0 && !tolerations.iter().any(|t| t.key.as_ref() == Some(gpu_key)) {
        tolerations.push(Toleration {
            key: Some(gpu_key.clone()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        });
    }
    (!tolerations.is_empty()).then_some(tolerations)
}

/// Zones: pods only on nodes of those zones; always prefer spreading replicas over hosts.
fn affinity(owner: &Owner, spec: &DeepSeekDeploymentSpec, revision: &str) -> Option<Affinity> {
    let zones = &spec.placement.zones;
    let node_affinity = (!zones.is_empty()).then(|| NodeAffinity {
        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: ZONE_LABEL.into(),
                    operator: "In".into(),
                    values: Some(zones.clone()),
                }]),
                ..NodeSelectorTerm::default()
            }],
        }),
        ..NodeAffinity::default()
    });
    // Set whatever the replica count: it is part of the pod template, so making it depend on
    // `replicas` would roll every GPU pod (minutes of model loading) on a 1 -> 2 scale-up. With
    // one replica the preference simply has nothing to repel.
    let pod_anti_affinity = Some(PodAntiAffinity {
        preferred_during_scheduling_ignored_during_execution: Some(anti_affinity_terms(
            owner, spec, revision,
        )),
        ..PodAntiAffinity::default()
    });
    Some(Affinity {
        node_affinity,
        pod_anti_affinity,
        ..Affinity::default()
    })
}

/// Prefer another host for each replica; with zones, also prefer a zone holding none yet (the
/// spread constraint is the hard rule, this breaks its ties towards empty zones).
fn anti_affinity_terms(
    owner: &Owner,
    spec: &DeepSeekDeploymentSpec,
    revision: &str,
) -> Vec<WeightedPodAffinityTerm> {
    let term = |weight: i32, key: &str| WeightedPodAffinityTerm {
        weight,
        pod_affinity_term: PodAffinityTerm {
            topology_key: key.into(),
            label_selector: Some(selector(owner, revision)),
            ..PodAffinityTerm::default()
        },
    };
    let mut terms = vec![term(100, HOSTNAME_LABEL)];
    if !spec.placement.zones.is_empty() {
        terms.push(term(50, ZONE_LABEL));
    }
    terms
}

fn selector(owner: &Owner, revision: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(naming::revision_selector(&owner.name, revision)),
        ..LabelSelector::default()
    }
}

/// Zones -> an even spread (skew 1) that refuses to schedule rather than pile up in one zone:
/// a zone outage must leave replicas elsewhere.
pub(crate) fn topology_spread(
    owner: &Owner,
    spec: &DeepSeekDeploymentSpec,
    revision: &str,
) -> Option<Vec<TopologySpreadConstraint>> {
    if spec.placement.zones.is_empty() {
        return None;
    }
    Some(vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: ZONE_LABEL.into(),
        when_unsatisfiable: "DoNotSchedule".into(),
        label_selector: Some(selector(owner, revision)),
        min_domains: Some(spec.placement.zones.len() as i32),
        ..TopologySpreadConstraint::default()
    }])
}
