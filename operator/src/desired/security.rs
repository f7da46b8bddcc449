//! What `spec.auth`, `spec.tls` and `spec.rateLimit` become in pods, as the flags the runtime
//! and router really accept (`deepseek-security`): Secret keys mounted as files (the operator
//! never reads them; the pods re-read them when the Secret changes), and the admin ports that
//! take `/metrics` and `/admin/stats` off the chat path.
//!
//! Where each applies: auth at the routers (the chat entry point) and at the runtime (defence
//! in depth: a pod reached around the router still checks tokens); TLS and rate limits at the
//! routers only, so a request spends one token of one budget (Redis-shared with `redis`).

use deepseek_crds::DeepSeekDeploymentSpec;
use k8s_openapi::api::core::v1::{
    ContainerPort, EnvVar, EnvVarSource, KeyToPath, ProjectedVolumeSource, SecretKeySelector,
    SecretProjection, SecretVolumeSource, Volume, VolumeMount, VolumeProjection,
};

/// Where the auth Secrets' keys are mounted, one file each.
pub const AUTH_DIR: &str = "/etc/deepseek/auth";
/// Name of the auth volume.
pub const AUTH_VOLUME: &str = "auth";
/// Where the TLS Secret is mounted in router pods.
pub const TLS_DIR: &str = "/etc/deepseek/tls";
/// Name of the TLS volume.
pub const TLS_VOLUME: &str = "tls";
/// The runtime's admin port (`/metrics`; container port `admin`), never behind a Service.
pub const RUNTIME_ADMIN_PORT: u16 = 9090;
/// The router's admin port (`/metrics`, `/admin/stats`; container port `admin`).
pub const ROUTER_ADMIN_PORT: u16 = 9091;
/// Name of the admin container port on both.
pub const ADMIN_PORT_NAME: &str = "admin";
/// The router's Redis URL, from the Secret `rateLimit.redis.urlSecretRef` names.
pub const REDIS_URL_ENV: &str = "DSR_RATE_LIMIT_REDIS_URL";

/// `--api-keys-file`, `--jwt-*` for `spec.auth` (nothing without it).
pub fn auth_args(spec: &DeepSeekDeploymentSpec) -> Vec<String> {
    let Some(auth) = &spec.auth else {
        return Vec::new();
    };
    let mut args = Vec::new();
    for (file, flag, _) in auth.files() {
        args.extend([flag.to_string(), format!("{AUTH_DIR}/{file}")]);
    }
    let claims = [
        ("--jwt-issuer", &auth.issuer),
        ("--jwt-audience", &auth.audience),
        ("--jwt-roles-claim", &auth.roles_claim),
    ];
    for (flag, value) in claims {
        if let Some(v) = value {
            args.extend([flag.to_string(), v.clone()]);
        }
    }
    args
}

/// One projected volume with every referenced Secret key under its file name.
pub fn auth_volume(spec: &DeepSeekDeploymentSpec) -> Option<Volume> {
    let auth = spec.auth.as_ref()?;
    let sources = auth
        .files()
        .into_iter()
        .map(|(file, _, r)| VolumeProjection {
            secret: Some(SecretProjection {
                name: r.name.clone(),
                items: Some(vec![KeyToPath {
                    key: r.key.clone(),
                    path: file.into(),
                    ..KeyToPath::default()
                }]),
                optional: Some(false),
            }),
            ..VolumeProjection::default()
        })
        .collect();
    Some(Volume {
        name: AUTH_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    })
}

/// The auth files, read-only. Never a subPath mount: those miss Secret updates.
pub fn auth_mount(spec: &DeepSeekDeploymentSpec) -> Option<VolumeMount> {
    spec.auth.as_ref().map(|_| read_only(AUTH_VOLUME, AUTH_DIR))
}

/// `--tls-cert`, `--tls-key` of the router for `spec.tls`.
pub fn tls_args(spec: &DeepSeekDeploymentSpec) -> Vec<String> {
    match spec.tls {
        Some(_) => vec![
            "--tls-cert".into(),
            format!("{TLS_DIR}/tls.crt"),
            "--tls-key".into(),
            format!("{TLS_DIR}/tls.key"),
        ],
        None => Vec::new(),
    }
}

pub fn tls_volume(spec: &DeepSeekDeploymentSpec) -> Option<Volume> {
    spec.tls.as_ref().map(|tls| Volume {
        name: TLS_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(tls.secret_name.clone()),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    })
}

pub fn tls_mount(spec: &DeepSeekDeploymentSpec) -> Option<VolumeMount> {
    spec.tls.as_ref().map(|_| read_only(TLS_VOLUME, TLS_DIR))
}

/// `--rate-limit-*` of the router for `spec.rateLimit`.
pub fn rate_limit_args(spec: &DeepSeekDeploymentSpec) -> Vec<String> {
    let Some(rl) = &spec.rate_limit else {
        return Vec::new();
    };
    let mut args = vec![
        "--rate-limit-rpm".into(),
        rl.requests_per_minute.to_string(),
    ];
    if let Some(burst) = rl.burst {
        args.extend(["--rate-limit-burst".into(), burst.to_string()]);
    }
    if let Some(global) = rl.global_requests_per_minute {
        args.extend(["--rate-limit-global-rpm".into(), global.to_string()]);
    }
    if let Some(redis) = &rl.redis {
        args.extend([
            "--rate-limit-failure-policy".into(),
            redis.failure_policy.as_arg().into(),
        ]);
    }
    args
}

/// The Redis URL from its Secret. A missing Secret shows in the router pods' container
/// status (`CreateContainerConfigError`, naming the Secret); the operator never looks it up.
pub fn rate_limit_env(spec: &DeepSeekDeploymentSpec) -> Vec<EnvVar> {
    let Some(redis) = spec.rate_limit.as_ref().and_then(|r| r.redis.as_ref()) else {
        return Vec::new();
    };
    vec![EnvVar {
        name: REDIS_URL_ENV.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: redis.url_secret_ref.name.clone(),
                key: redis.url_secret_ref.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }]
}

/// The `admin` container port.
pub fn admin_port(port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(ADMIN_PORT_NAME.into()),
        container_port: i32::from(port),
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn read_only(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}
