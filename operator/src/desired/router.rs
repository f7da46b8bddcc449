//! The router in front of the revisions (issue 5): its routes ConfigMap (`{name}-routes`, key
//! `routes.yaml`, the format of the router contract), its CPU-only Deployment (`{name}-router`,
//! at least two replicas, the operator's runtime image in `route` mode), its
//! PodDisruptionBudget, and one Service per live revision (`{name}-{revision}`) that the
//! routes point at. Canary weights are exact because the router splits requests, not pods.
//!
//! The router image is the operator's default runtime image, not the spec's: the router speaks
//! the operator's route contract, so it moves with the operator, and a canary of a new runtime
//! image never restarts the router that is judging it.

use std::collections::BTreeMap;

use deepseek_crds::DeepSeekDeploymentSpec;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, HTTPGetAction, Lifecycle,
    LifecycleHandler, PodAffinityTerm, PodAntiAffinity, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, Service, ServicePort, ServiceSpec, SleepAction, Volume, VolumeMount,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::containers::{container_security, RUNTIME_BINARY};
use super::deployment::{pod_security, HOSTNAME_LABEL};
use super::security::{self, ADMIN_PORT_NAME, ROUTER_ADMIN_PORT};
use super::{naming, BuildConfig, BuildError, ChildKind, DesiredChild, Owner};

/// Component label value of router pods.
pub const COMPONENT_ROUTER: &str = "router";
/// Port the router listens on (container port `http`).
pub const ROUTER_PORT: u16 = 8080;
/// Router replicas: two, so a node drain or a crash never leaves the chat Service empty.
pub const ROUTER_REPLICAS: i32 = 2;
/// Where the routes ConfigMap is mounted.
pub const ROUTES_DIR: &str = "/etc/deepseek-router";
/// Key of the routes file in the ConfigMap.
pub const ROUTES_KEY: &str = "routes.yaml";
/// Header that keeps a conversation on one revision.
pub const SESSION_HEADER: &str = "x-session-id";
/// Whole-request timeout of the router (long generations stream for minutes).
pub const TIMEOUT_SECONDS: u64 = 600;
/// Connect timeout to a backend before trying the next.
pub const CONNECT_TIMEOUT_MS: u64 = 2000;

/// The router Deployment and its PodDisruptionBudget: `{name}-router`.
pub fn router_name(dsd_name: &str) -> String {
    format!("{dsd_name}-router")
}

/// The routes ConfigMap: `{name}-routes`.
pub fn routes_name(dsd_name: &str) -> String {
    format!("{dsd_name}-routes")
}

/// The Service of one revision, named like its Deployment.
pub fn revision_service_name(dsd_name: &str, revision: &str) -> String {
    naming::revision_object_name(dsd_name, revision)
}

/// Selector of the router pods.
pub fn router_selector(dsd_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (naming::LABEL_DEPLOYMENT.to_string(), dsd_name.to_string()),
        (
            naming::LABEL_COMPONENT.to_string(),
            COMPONENT_ROUTER.to_string(),
        ),
    ])
}

fn router_labels(dsd_name: &str) -> BTreeMap<String, String> {
    let mut labels = naming::common_labels(dsd_name);
    labels.insert(
        "app.kubernetes.io/component".into(),
        COMPONENT_ROUTER.into(),
    );
    labels.extend(router_selector(dsd_name));
    labels
}

/// `routes.yaml`, as the router contract defines it.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoutesFile {
    /// Identity of this route table ([`routes_generation`]): a router reports the generation
    /// it serves in `/admin/stats` (`routesGeneration`), so the operator knows when every
    /// router has stopped sending requests to a revision the table no longer lists.
    pub generation: String,
    pub session_header: String,
    pub timeout_seconds: u64,
    pub connect_timeout_ms: u64,
    pub revisions: Vec<RouteEntry>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct RouteEntry {
    pub name: String,
    pub weight: i32,
    pub backends: Vec<String>,
}

/// Base URL of a revision's Service inside the cluster. Plain HTTP: TLS terminates at the
/// routers, and inside the cluster only routers and monitoring reach the runtime pods.
pub(crate) fn backend_url(owner: &Owner, cfg: &BuildConfig, revision: &str) -> String {
    format!(
        "http://{}.{}.svc:{}",
        revision_service_name(&owner.name, revision),
        owner.namespace,
        cfg.runtime_port
    )
}

/// The generation of a route table: 16 hex characters of SHA256 over its revisions and
/// weights (a revision hash fixes its backends), equal for equal tables whatever the order of
/// rounds that produced them.
pub fn routes_generation(routes: &[(String, i32)]) -> String {
    let text: String = routes
        .iter()
        .map(|(revision, weight)| format!("{revision}={weight}\n"))
        .collect();
    hex::encode(Sha256::digest(text.as_bytes()))[..16].to_string()
}

pub(crate) fn routes_file(
    owner: &Owner,
    cfg: &BuildConfig,
    routes: &[(String, i32)],
) -> RoutesFile {
    RoutesFile {
        generation: routes_generation(routes),
        session_header: SESSION_HEADER.into(),
        timeout_seconds: TIMEOUT_SECONDS,
        connect_timeout_ms: CONNECT_TIMEOUT_MS,
        revisions: routes
            .iter()
            .map(|(revision, weight)| RouteEntry {
                name: revision.clone(),
                weight: *weight,
                backends: vec![backend_url(owner, cfg, revision)],
            })
            .collect(),
    }
}

pub(crate) fn routes_config_map(
    owner: &Owner,
    cfg: &BuildConfig,
    routes: &[(String, i32)],
) -> Result<DesiredChild, BuildError> {
    let name = routes_name(&owner.name);
    let yaml = serde_yaml::to_string(&routes_file(owner, cfg, routes)).map_err(|source| {
        BuildError::Yaml {
            name: name.clone(),
            source,
        }
    })?;
    let config_map = ConfigMap {
        metadata: owner.child_meta(name.clone(), router_labels(&owner.name)),
        data: Some(BTreeMap::from([(ROUTES_KEY.to_string(), yaml)])),
        ..ConfigMap::default()
    };
    owner.child(ChildKind::ConfigMap, &name, &config_map)
}

/// The Service `{name}-{revision}` the routes point at: the revision's runtime pods.
pub(crate) fn revision_service(
    owner: &Owner,
    cfg: &BuildConfig,
    revision: &str,
) -> Result<DesiredChild, BuildError> {
    let name = revision_service_name(&owner.name, revision);
    let service = Service {
        metadata: owner.child_meta(name.clone(), naming::revision_labels(&owner.name, revision)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(naming::revision_selector(&owner.name, revision)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(cfg.runtime_port),
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                app_protocol: Some("http".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    owner.child(ChildKind::Service, &name, &service)
}

/// Probes on the admin port: plain HTTP whatever `spec.tls` says, and never rate limited.
fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(ADMIN_PORT_NAME.into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// Arguments of the router container: routes, ports, then auth, TLS and rate limits.
pub fn route_args(spec: &DeepSeekDeploymentSpec) -> Vec<String> {
    let mut args = vec![
        "route".into(),
        "--config".into(),
        format!("{ROUTES_DIR}/{ROUTES_KEY}"),
        "--listen".into(),
        format!("0.0.0.0:{ROUTER_PORT}"),
        "--admin-port".into(),
        ROUTER_ADMIN_PORT.to_string(),
    ];
    args.extend(security::auth_args(spec));
    args.extend(security::tls_args(spec));
    args.extend(security::rate_limit_args(spec));
    // Browsers reach the runtime's WebSocket through the router: it checks Origin first.
    args.extend(super::privacy::router_args(spec));
    args
}

fn router_container(spec: &DeepSeekDeploymentSpec, cfg: &BuildConfig) -> Container {
    let quantity = |v: &str| Quantity(v.into());
    let mut mounts = vec![VolumeMount {
        name: "routes".into(),
        mount_path: ROUTES_DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    mounts.extend(security::auth_mount(spec));
    mounts.extend(security::tls_mount(spec));
    let env = security::rate_limit_env(spec);
    Container {
        name: COMPONENT_ROUTER.into(),
        image: Some(cfg.runtime_image.clone()),
        command: Some(vec![RUNTIME_BINARY.into()]),
        args: Some(route_args(spec)),
        env: (!env.is_empty()).then_some(env),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: i32::from(ROUTER_PORT),
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
            security::admin_port(ROUTER_ADMIN_PORT),
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), quantity("250m")),
                ("memory".into(), quantity("64Mi")),
            ])),
            limits: Some(BTreeMap::from([("memory".into(), quantity("256Mi"))])),
            ..ResourceRequirements::default()
        }),
        readiness_probe: Some(probe("/readyz", 2, 2)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        // Let endpoints drop the pod before it stops accepting requests.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds: 5 }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        volume_mounts: Some(mounts),
        security_context: Some(container_security()),
        ..Container::default()
    }
}

pub(crate) fn router_deployment(
    owner: &Owner,
    spec: &DeepSeekDeploymentSpec,
    cfg: &BuildConfig,
) -> Result<DesiredChild, BuildError> {
    let name = router_name(&owner.name);
    let labels = router_labels(&owner.name);
    let selector = LabelSelector {
        match_labels: Some(router_selector(&owner.name)),
        ..LabelSelector::default()
    };
    let anti_affinity = PodAntiAffinity {
        preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
            weight: 100,
            pod_affinity_term: PodAffinityTerm {
                topology_key: HOSTNAME_LABEL.into(),
                label_selector: Some(selector.clone()),
                ..PodAffinityTerm::default()
            },
        }]),
        ..PodAntiAffinity::default()
    };
    let deployment = Deployment {
        metadata: owner.child_meta(name.clone(), labels.clone()),
        spec: DeploymentSpec {
            replicas: Some(ROUTER_REPLICAS),
            selector,
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: Some(2),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![router_container(spec, cfg)],
                    volumes: Some(router_volumes(owner, spec)),
                    affinity: Some(Affinity {
                        pod_anti_affinity: Some(anti_affinity),
                        ..Affinity::default()
                    }),
                    security_context: Some(pod_security()),
                    termination_grace_period_seconds: Some(60),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    };
    owner.child(ChildKind::Deployment, &name, &deployment)
}

/// One router pod may be disrupted at a time: the other keeps the chat Service answering.
pub(crate) fn router_pdb(owner: &Owner) -> Result<DesiredChild, BuildError> {
    let name = router_name(&owner.name);
    let pdb = PodDisruptionBudget {
        metadata: owner.child_meta(name.clone(), router_labels(&owner.name)),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(ROUTER_REPLICAS - 1)),
            selector: Some(LabelSelector {
                match_labels: Some(router_selector(&owner.name)),
                ..LabelSelector::default()
            }),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    };
    owner.child(ChildKind::PodDisruptionBudget, &name, &pdb)
}

/// The routes ConfigMap, plus the auth and TLS Secrets when set.
fn router_volumes(owner: &Owner, spec: &DeepSeekDeploymentSpec) -> Vec<Volume> {
    let mut volumes = vec![Volume {
        name: "routes".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: routes_name(&owner.name),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    volumes.extend(security::auth_volume(spec));
    volumes.extend(security::tls_volume(spec));
    volumes
}
