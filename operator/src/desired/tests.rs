//! Builder tests: GPU limits, placement, owner references, revision hash stability, containers.

use deepseek_crds::{DeepSeekDeployment, DeepSeekDeploymentStatus, RevisionRef, SpecError};
use serde_json::{json, Value};

use super::*;

pub(super) const SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

pub(super) fn dsd(spec: Value) -> DeepSeekDeployment {
    serde_json::from_value(json!({
        "apiVersion": "inference.deepseek-k8s.dev/v1alpha1",
        "kind": "DeepSeekDeployment",
        "metadata": {"name": "chat", "namespace": "ai", "uid": "1234-uid"},
        "spec": spec,
    }))
    .expect("fixture parses")
}

pub(super) fn base_spec() -> Value {
    json!({
        "model": {
            "name": "smollm2",
            "source": {"url": {"url": "http://models.local/smollm2"}},
            "files": [{"path": "SmolLM2-135M-Instruct.Q4_1.gguf", "sha256": SHA}],
            "format": "gguf"
        }
    })
}

pub(super) fn with(mut spec: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    let target = if parent.is_empty() {
        &mut spec
    } else {
        spec.pointer_mut(parent).expect("parent exists")
    };
    target[key] = value;
    spec
}

pub(super) fn children(dsd: &DeepSeekDeployment) -> Vec<DesiredChild> {
    build(dsd, &BuildConfig::default()).expect("builds")
}

pub(super) fn child(children: &[DesiredChild], kind: ChildKind) -> &Value {
    &children
        .iter()
        .find(|c| c.kind == kind)
        .expect("child present")
        .object
}

pub(super) fn runtime_container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn gpu_limit_uses_the_configured_resource_name() {
    let spec = with(
        base_spec(),
        "/runtime",
        json!({"gpus": 2, "gpuResourceName": "amd.com/gpu"}),
    );
    let out = children(&dsd(spec));
    let limits = &runtime_container(child(&out, ChildKind::Deployment))["resources"]["limits"];
    assert_eq!(limits["amd.com/gpu"], json!("2"));
    assert!(limits.get("nvidia.com/gpu").is_none());
}

#[test]
fn default_gpu_is_one_nvidia_gpu_with_a_matching_toleration() {
    let out = children(&dsd(base_spec()));
    let deployment = child(&out, ChildKind::Deployment);
    assert_eq!(
        runtime_container(deployment)["resources"]["limits"]["nvidia.com/gpu"],
        json!("1")
    );
    let tolerations = &deployment["spec"]["template"]["spec"]["tolerations"];
    assert_eq!(
        tolerations,
        &json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    );
}

#[test]
fn cpu_only_pods_have_no_gpu_limit_or_toleration() {
    let spec = with(
        base_spec(),
        "/runtime",
        json!({"gpus": 0, "resources": {"cpu": "2", "memory": "1Gi"}}),
    );
    let out = children(&dsd(spec));
    let deployment = child(&out, ChildKind::Deployment);
    let resources = &runtime_container(deployment)["resources"];
    assert_eq!(
        resources,
        &json!({"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": "1Gi"}})
    );
    assert!(deployment["spec"]["template"]["spec"]
        .get("tolerations")
        .is_none());
}

#[test]
fn zones_add_topology_spread_and_zone_affinity() {
    let spec = with(base_spec(), "/replicas", json!(3));
    let spec = with(
        spec,
        "/placement",
        json!({"zones": ["zone-a", "zone-b", "zone-c"]}),
    );
    let out = children(&dsd(spec));
    let pod = &child(&out, ChildKind::Deployment)["spec"]["template"]["spec"];
    let spread = &pod["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], json!("topology.kubernetes.io/zone"));
    assert_eq!(spread["whenUnsatisfiable"], json!("DoNotSchedule"));
    assert_eq!(spread["maxSkew"], json!(1));
    assert_eq!(spread["minDomains"], json!(3));
    let term = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"][0];
    assert_eq!(
        term["matchExpressions"][0]["values"],
        json!(["zone-a", "zone-b", "zone-c"])
    );
    assert_eq!(
        child(&out, ChildKind::PodDisruptionBudget)["spec"]["minAvailable"],
        json!(2)
    );
}

#[test]
fn no_zones_means_no_topology_spread_and_no_pdb_for_one_replica() {
    let out = children(&dsd(base_spec()));
    assert!(
        child(&out, ChildKind::Deployment)["spec"]["template"]["spec"]
            .get("topologySpreadConstraints")
            .is_none()
    );
    // Only the router keeps a budget (it always runs two replicas).
    assert!(out
        .iter()
        .filter(|c| c.kind == ChildKind::PodDisruptionBudget)
        .all(|c| c.name == router::router_name("chat")));
}

#[test]
fn every_child_has_a_controller_owner_reference_and_common_labels() {
    let out = children(&dsd(base_spec()));
    // Revision ConfigMap, routes ConfigMap, revision Deployment, router Deployment, revision
    // Service, chat Service, router budget, runtime NetworkPolicy + PrometheusRule, PodMonitor,
    // dashboard ConfigMap.
    assert_eq!(out.len(), 11);
    for c in &out {
        let meta = &c.object["metadata"];
        assert_eq!(
            meta["ownerReferences"],
            json!([{
                "apiVersion": "inference.deepseek-k8s.dev/v1alpha1", "kind": "DeepSeekDeployment",
                "name": "chat", "uid": "1234-uid", "controller": true, "blockOwnerDeletion": true
            }]),
            "{:?}",
            c.kind
        );
        assert_eq!(meta["namespace"], json!("ai"));
        assert_eq!(meta["labels"][naming::LABEL_DEPLOYMENT], json!("chat"));
        assert_eq!(c.object["apiVersion"], json!(c.kind.api_version()));
        assert_eq!(c.object["kind"], json!(c.kind.kind()));
    }
}

#[test]
fn same_spec_gives_the_same_revision() {
    let cfg = BuildConfig::default();
    let a = naming::revision(&dsd(base_spec()).spec, &cfg);
    let b = naming::revision(&dsd(base_spec()).spec, &cfg);
    assert_eq!(a, b);
    assert_eq!(a.len(), naming::REVISION_LEN);
    assert!(a
        .bytes()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
}

#[test]
fn replicas_placement_and_rollout_do_not_change_the_revision() {
    let cfg = BuildConfig::default();
    let before = naming::revision(&dsd(base_spec()).spec, &cfg);
    let spec = with(base_spec(), "/replicas", json!(4));
    let spec = with(
        spec,
        "/placement",
        json!({"zones": ["a", "b"], "nodeSelector": {"pool": "gpu"}}),
    );
    let spec = with(spec, "/rollout", json!({"steps": [{"weight": 10}]}));
    assert_eq!(naming::revision(&dsd(spec).spec, &cfg), before);
}

#[test]
fn model_image_and_runtime_changes_change_the_revision() {
    let cfg = BuildConfig::default();
    let before = naming::revision(&dsd(base_spec()).spec, &cfg);
    let other_file = with(
        base_spec(),
        "/model/files",
        json!([{"path": "other.gguf", "sha256": SHA}]),
    );
    let other_image = with(
        base_spec(),
        "/runtime",
        json!({"image": "deepseek-runtime:9.9"}),
    );
    let other_args = with(
        base_spec(),
        "/runtime",
        json!({"extraArgs": ["--log-json"]}),
    );
    for spec in [other_file, other_image, other_args] {
        assert_ne!(naming::revision(&dsd(spec).spec, &cfg), before);
    }
    let other_default = BuildConfig {
        runtime_image: "registry.local/runtime:2".into(),
        ..BuildConfig::default()
    };
    assert_ne!(
        naming::revision(&dsd(base_spec()).spec, &other_default),
        before
    );
}

#[test]
fn explicit_default_image_equals_the_operator_default() {
    let cfg = BuildConfig::default();
    let explicit = with(
        base_spec(),
        "/runtime",
        json!({"image": cfg.runtime_image.clone()}),
    );
    assert_eq!(
        naming::revision(&dsd(explicit).spec, &cfg),
        naming::revision(&dsd(base_spec()).spec, &cfg)
    );
}

#[test]
fn the_chat_service_fronts_the_router_which_routes_to_the_stable_revision_from_status() {
    let mut d = dsd(base_spec());
    d.status = Some(DeepSeekDeploymentStatus {
        stable_revision: Some(RevisionRef {
            hash: "aaaaaaaaaa".into(),
            ..RevisionRef::default()
        }),
        ..DeepSeekDeploymentStatus::default()
    });
    let out = children(&d);
    let named = |kind: ChildKind, name: &str| {
        out.iter()
            .find(|c| c.kind == kind && c.name == name)
            .map(|c| c.object.clone())
            .unwrap_or_else(|| panic!("no {kind:?} {name}"))
    };
    let chat = named(ChildKind::Service, "chat");
    assert_eq!(
        chat["spec"]["selector"],
        json!(router::router_selector("chat"))
    );
    let stable = named(ChildKind::Service, "chat-aaaaaaaaaa");
    assert_eq!(
        stable["spec"]["selector"][naming::LABEL_REVISION],
        json!("aaaaaaaaaa")
    );
    let routes = named(ChildKind::ConfigMap, "chat-routes");
    let yaml = routes["data"][router::ROUTES_KEY]
        .as_str()
        .unwrap_or_default();
    assert!(
        yaml.contains(
            "name: aaaaaaaaaa\n  weight: 100\n  backends:\n  - http://chat-aaaaaaaaaa.ai.svc:8000"
        ),
        "{yaml}"
    );
    let router = named(ChildKind::Deployment, "chat-router");
    assert_eq!(router["spec"]["replicas"], json!(2));
    let container = &router["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["args"],
        json!([
            "route",
            "--config",
            "/etc/deepseek-router/routes.yaml",
            "--listen",
            "0.0.0.0:8080",
            "--admin-port",
            "9091"
        ])
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"],
        json!("/readyz")
    );
    assert!(container["resources"]["limits"]
        .get("nvidia.com/gpu")
        .is_none());
}

#[test]
fn a_canary_in_status_is_routed_at_its_weight_with_its_own_service() {
    let mut d = dsd(base_spec());
    let r = |hash: &str| RevisionRef {
        hash: hash.into(),
        ..RevisionRef::default()
    };
    d.status = Some(DeepSeekDeploymentStatus {
        stable_revision: Some(r("aaaaaaaaaa")),
        canary_revision: Some(r("bbbbbbbbbb")),
        canary_weight: Some(10),
        ..DeepSeekDeploymentStatus::default()
    });
    let plan = Plan::from_status(&d, "bbbbbbbbbb");
    assert_eq!(
        plan.routes,
        vec![
            ("aaaaaaaaaa".to_string(), 90),
            ("bbbbbbbbbb".to_string(), 10)
        ]
    );
    let out = build_with(
        &d,
        &BuildConfig::default(),
        &Plan {
            replicas: 1,
            ..plan
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let services: Vec<&str> = out
        .iter()
        .filter(|c| c.kind == ChildKind::Service)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(services, vec!["chat-aaaaaaaaaa", "chat-bbbbbbbbbb", "chat"]);
    let routes = out
        .iter()
        .find(|c| c.name == "chat-routes")
        .map(|c| c.object["data"][router::ROUTES_KEY].to_string())
        .unwrap_or_default();
    assert!(
        routes.contains("weight: 90") && routes.contains("weight: 10"),
        "{routes}"
    );
}

#[test]
fn invalid_spec_builds_nothing() {
    let spec = with(base_spec(), "/runtime", json!({"gpuResourceName": "gpu"}));
    match build(&dsd(spec), &BuildConfig::default()) {
        Err(BuildError::InvalidSpec(errors)) => assert_eq!(
            errors,
            vec![SpecError::InvalidGpuResourceName {
                field: "spec.runtime.gpuResourceName".into(),
                value: "gpu".into()
            }]
        ),
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
}

#[test]
fn missing_uid_is_reported() {
    let mut d = dsd(base_spec());
    d.metadata.uid = None;
    assert!(matches!(
        build(&d, &BuildConfig::default()),
        Err(BuildError::MissingMetadata("uid"))
    ));
}

#[test]
fn build_output_is_deterministic() {
    let d = dsd(with(
        base_spec(),
        "/placement",
        json!({"nodeSelector": {"b": "2", "a": "1"}}),
    ));
    assert_eq!(children(&d), children(&d));
}

#[test]
fn explicit_pdb_min_available_wins_over_the_per_zone_default() {
    let spec = with(base_spec(), "/replicas", json!(4));
    let spec = with(
        spec,
        "/placement",
        json!({"zones": ["a", "b"], "pdbMinAvailable": 3}),
    );
    let out = children(&dsd(spec));
    assert_eq!(
        child(&out, ChildKind::PodDisruptionBudget)["spec"]["minAvailable"],
        json!(3)
    );
}
