//! The two containers of a runtime pod: the `fetch` init container (downloads the model files
//! into the model volume and verifies every SHA256, or verifies a PVC in place) and the `serve`
//! container (probes suited to model loads of many minutes, graceful shutdown).

use std::collections::BTreeMap;

use deepseek_crds::{DeepSeekDeploymentSpec, ModelFormat, ModelSource};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar,
    HTTPGetAction, Lifecycle, LifecycleHandler, Probe, ResourceRequirements, SecretEnvSource,
    SecurityContext, SleepAction, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::security::{self, RUNTIME_ADMIN_PORT};
use super::BuildConfig;

/// Where the model volume is mounted in both containers.
pub const MODEL_DIR: &str = "/models";
/// Name of the model volume.
pub const MODEL_VOLUME: &str = "models";
/// Name of the writable scratch volume (the root filesystem is read-only).
pub const TMP_VOLUME: &str = "tmp";
/// Name of the serving container.
pub const RUNTIME_CONTAINER: &str = "runtime";
/// Name of the init container.
pub const FETCH_CONTAINER: &str = "fetch";
/// The runtime binary, on the image's PATH.
pub const RUNTIME_BINARY: &str = "deepseek-runtime";
/// Environment variable moving `/metrics` to the admin port (set by the operator only).
pub use deepseek_crds::validate::ADMIN_PORT_ENV;
/// Seconds a stopping pod keeps serving while its endpoints are removed.
pub const PRE_STOP_SLEEP_SECONDS: i64 = 10;

/// `--source` of `fetch`: `https://...` (files under it), `hf://REPO@REVISION`,
/// `s3://BUCKET/PREFIX`, or `pvc://CLAIM/PATH` (already mounted at `--dest`: verify only).
pub fn source_uri(source: &ModelSource) -> String {
    if let Some(url) = &source.url {
        url.url.clone()
    } else if let Some(hf) = &source.hugging_face {
        format!("hf://{}@{}", hf.repo, hf.revision)
    } else if let Some(s3) = &source.s3 {
        format!("s3://{}/{}", s3.bucket, s3.prefix)
    } else if let Some(pvc) = &source.pvc {
        format!("pvc://{}/{}", pvc.claim_name, pvc.path)
    } else {
        String::new() // rejected by validation before any builder runs
    }
}

/// Arguments of the init container: `fetch --source .. --dest /models --sha256 PATH=HEX ..`.
pub fn fetch_args(spec: &DeepSeekDeploymentSpec) -> Vec<String> {
    let source = &spec.model.source;
    let mut args = vec![
        "fetch".into(),
        "--source".into(),
        source_uri(source),
        "--dest".into(),
        MODEL_DIR.into(),
    ];
    if let Some(s3) = &source.s3 {
        if let Some(endpoint) = &s3.endpoint {
            args.extend(["--s3-endpoint".into(), endpoint.clone()]);
        }
        if let Some(region) = &s3.region {
            args.extend(["--s3-region".into(), region.clone()]);
        }
    }
    // `fetch` refuses plain http:// unless told otherwise; a spec that names an http:// URL or
    // S3 endpoint (an in-cluster mirror or MinIO) has said so.
    if fetch_endpoints(source).iter().any(|u| is_plain_http(u)) {
        args.push("--allow-insecure-http".into());
    }
    for file in &spec.model.files {
        args.extend(["--sha256".into(), format!("{}={}", file.path, file.sha256)]);
    }
    args
}

/// The URLs `fetch` will talk to, as far as the spec names them.
fn fetch_endpoints(source: &ModelSource) -> Vec<&str> {
    let url = source.url.as_ref().map(|u| u.url.as_str());
    let s3 = source.s3.as_ref().and_then(|s| s.endpoint.as_deref());
    url.into_iter().chain(s3).collect()
}

fn is_plain_http(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
}

/// What `serve --model` points at: the GGUF file (the first, for split GGUF), or the directory
/// holding a safetensors model's config.json.
pub fn model_path(spec: &DeepSeekDeploymentSpec) -> String {
    let files = &spec.model.files;
    match spec.model.format {
        ModelFormat::Gguf => {
            let mut ggufs: Vec<&str> = files
                .iter()
                .map(|f| f.path.as_str())
                .filter(|p| p.ends_with(".gguf"))
                .collect();
            ggufs.sort_unstable();
            format!("{MODEL_DIR}/{}", ggufs.first().copied().unwrap_or_default())
        }
        ModelFormat::Safetensors => {
            let config = files
                .iter()
                .find(|f| f.path.rsplit('/').next() == Some("config.json"));
            match config.and_then(|f| f.path.rsplit_once('/')) {
                Some((dir, _)) => format!("{MODEL_DIR}/{dir}"),
                None => MODEL_DIR.to_string(),
            }
        }
    }
}

/// Arguments of the serving container; `extraArgs` last.
pub fn serve_args(spec: &DeepSeekDeploymentSpec, cfg: &BuildConfig, revision: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--model".into(),
        model_path(spec),
        "--served-model-name".into(),
        spec.model.name.clone(),
        "--revision".into(),
        revision.into(),
        "--host".into(),
        "0.0.0.0".into(),
        "--port".into(),
        cfg.runtime_port.to_string(),
    ];
    args.extend(security::auth_args(spec));
    args.extend(super::privacy::privacy_args(spec));
    args.extend(spec.runtime.extra_args.iter().cloned());
    args
}

fn quantity(value: impl Into<String>) -> Quantity {
    Quantity(value.into())
}

/// Restricted-profile container security: no privilege escalation, no capabilities, read-only root.
/// Requests and limits of the runtime's one-shot subcommands (`fetch`, `backup`): they stream
/// files and hash them, so little CPU and a bounded amount of memory.
pub fn tool_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), quantity("250m")),
            ("memory".into(), quantity("128Mi")),
        ])),
        limits: Some(BTreeMap::from([("memory".into(), quantity("512Mi"))])),
        ..ResourceRequirements::default()
    }
}

pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// The model volume at `/models`. A PVC source mounts only its `path` (subPath), so the files
/// sit directly under `/models` where `serve --model` and the manifest expect them.
pub(crate) fn model_mount(spec: &DeepSeekDeploymentSpec, read_only: bool) -> VolumeMount {
    let sub_path = spec
        .model
        .source
        .pvc
        .as_ref()
        .map(|p| p.path.trim_matches('/').to_string())
        .filter(|p| !p.is_empty());
    VolumeMount {
        sub_path,
        ..mount(MODEL_VOLUME, MODEL_DIR, read_only)
    }
}

/// The `fetch` init container. Credentials come from the source's Secret via `envFrom`.
pub fn fetch_container(spec: &DeepSeekDeploymentSpec, image: &str) -> Container {
    let source = &spec.model.source;
    let secret = source
        .s3
        .as_ref()
        .and_then(|s| s.secret_ref.as_ref())
        .or_else(|| {
            source
                .hugging_face
                .as_ref()
                .and_then(|h| h.secret_ref.as_ref())
        });
    let env_from = secret.map(|s| {
        vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: s.name.clone(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]
    });
    // A PVC source is verified in place and must never be written to.
    let read_only = source.pvc.is_some();
    Container {
        name: FETCH_CONTAINER.into(),
        image: Some(image.into()),
        command: Some(vec![RUNTIME_BINARY.into()]),
        args: Some(fetch_args(spec)),
        env_from,
        resources: Some(tool_resources()),
        volume_mounts: Some(vec![
            model_mount(spec, read_only),
            mount(TMP_VOLUME, "/tmp", false),
        ]),
        security_context: Some(container_security()),
        // The controller reads why a fetch failed from the pod status (ModelVerified=False).
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    }
}

/// Probes on the public port: health and readiness stay open whatever the auth settings (TLS
/// terminates at the routers, so the runtime's port is plain HTTP).
fn http_probe(path: &str, period: i32, timeout: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn runtime_resources(spec: &DeepSeekDeploymentSpec) -> ResourceRequirements {
    let runtime = &spec.runtime;
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    if let Some(cpu) = &runtime.resources.cpu {
        requests.insert("cpu".to_string(), quantity(cpu.clone()));
    }
    if let Some(memory) = &runtime.resources.memory {
        requests.insert("memory".to_string(), quantity(memory.clone()));
        limits.insert("memory".to_string(), quantity(memory.clone()));
    }
    if runtime.gpus > 0 {
        // Extended resources are set as limits; the request defaults to the limit.
        limits.insert(
            runtime.gpu_resource_name.clone(),
            quantity(runtime.gpus.to_string()),
        );
    }
    ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..ResourceRequirements::default()
    }
}

fn runtime_env(spec: &DeepSeekDeploymentSpec) -> Vec<EnvVar> {
    let mut env = vec![EnvVar {
        name: ADMIN_PORT_ENV.into(),
        value: Some(RUNTIME_ADMIN_PORT.to_string()),
        ..EnvVar::default()
    }];
    env.extend(super::privacy::privacy_env(spec));
    // User variables last: on a duplicate name Kubernetes keeps the last one.
    env.extend(spec.runtime.env.iter().cloned());
    env
}

/// The serving container.
pub fn runtime_container(
    spec: &DeepSeekDeploymentSpec,
    cfg: &BuildConfig,
    image: &str,
    revision: &str,
    config_map: &str,
) -> Container {
    let mut mounts = vec![model_mount(spec, true), mount(TMP_VOLUME, "/tmp", false)];
    mounts.extend(security::auth_mount(spec));
    let env = runtime_env(spec);
    Container {
        name: RUNTIME_CONTAINER.into(),
        image: Some(image.into()),
        command: Some(vec![RUNTIME_BINARY.into()]),
        args: Some(serve_args(spec, cfg, revision)),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: i32::from(cfg.runtime_port),
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
            security::admin_port(RUNTIME_ADMIN_PORT),
        ]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: config_map.into(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]),
        env: (!env.is_empty()).then_some(env),
        resources: Some(runtime_resources(spec)),
        // Loading tens of GB can take many minutes: allow up to an hour before liveness applies.
        startup_probe: Some(http_probe("/readyz", 10, 5, 360)),
        liveness_probe: Some(http_probe("/healthz", 10, 5, 6)),
        readiness_probe: Some(http_probe("/readyz", 5, 3, 2)),
        // Keep serving while endpoints are removed, so no new request lands on a stopping pod.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_SLEEP_SECONDS,
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        volume_mounts: Some(mounts),
        security_context: Some(container_security()),
        ..Container::default()
    }
}
