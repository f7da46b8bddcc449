//! Operational parts of the spec: the chat Service, authentication, rate limiting, TLS, alert
//! thresholds and cold backups. Declared with their bounds now; issues 5 and 6 give some of them
//! behaviour (router, PrometheusRule, backup CronJob).

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::spec::{PvcSource, S3Source};

/// The chat Service apps call (`http://NAME.NAMESPACE.svc/v1/chat/completions`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service port.
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            port: default_service_port(),
            type_: ServiceType::default(),
        }
    }
}

fn default_service_port() -> i32 {
    80
}

/// Kubernetes Service type of the chat Service.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Also through a cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The value of `spec.type` in a Service.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

/// Who may call: Bearer JWTs (HS256 secret, RS256/ES256 public key or JWKS) with roles
/// (`chat` for `/v1/*` and `/ws/chat`, `admin` for admin pages), and/or static API keys. Each
/// reference is a key of a Secret, mounted as a file into the router and runtime pods (the
/// operator never reads it) and re-read there when the Secret changes. At least one is needed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// HS256 signing secret of accepted tokens (`--jwt-secret-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret_ref: Option<SecretKeyRef>,
    /// PEM public key (RSA: RS256, P-256: ES256) of accepted tokens (`--jwt-public-key-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_public_key_ref: Option<SecretKeyRef>,
    /// JWKS document of accepted tokens' keys, chosen by `kid` (`--jwks-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_ref: Option<SecretKeyRef>,
    /// API keys, one per line: the key or `sha256:HEX`, then optionally its roles
    /// (`--api-keys-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys_ref: Option<SecretKeyRef>,
    /// Required `iss` of tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Required `aud` of tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Claim holding the roles; `roles` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_claim: Option<String>,
}

impl AuthSpec {
    /// The Secret keys this spec mounts: (file name in the pod, flag, reference).
    pub fn files(&self) -> Vec<(&'static str, &'static str, &SecretKeyRef)> {
        [
            ("jwt-secret", "--jwt-secret-file", &self.jwt_secret_ref),
            (
                "jwt-public-key.pem",
                "--jwt-public-key-file",
                &self.jwt_public_key_ref,
            ),
            ("jwks.json", "--jwks-file", &self.jwks_ref),
            ("api-keys", "--api-keys-file", &self.api_keys_ref),
        ]
        .into_iter()
        .filter_map(|(file, flag, r)| r.as_ref().map(|r| (file, flag, r)))
        .collect()
    }
}

/// A key of a Secret in the resource's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// Token-bucket rate limits, enforced by the routers (the chat entry point): per client (JWT
/// `sub` or API key) and optionally over all clients, in each router's memory or, with `redis`,
/// as one budget shared by every router replica.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Sustained requests per minute per client (3000 = 50 requests a second).
    #[schemars(range(min = 1, max = 1000000))]
    pub requests_per_minute: i32,
    /// Requests a client may send at once above the sustained rate; `requestsPerMinute` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub burst: Option<i32>,
    /// Requests per minute over all clients together; no global limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000000))]
    pub global_requests_per_minute: Option<i32>,
    /// Keep the buckets on Redis so all routers share one budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSpec>,
}

/// The Redis holding shared rate-limit buckets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// Secret key holding the URL, `redis://[:password@]host:port[/db]`.
    pub url_secret_ref: SecretKeyRef,
    /// While Redis is unreachable: `Open` serves requests unlimited, `Closed` refuses them (503).
    #[serde(default)]
    pub failure_policy: FailurePolicy,
}

/// What the routers do with requests while Redis is unreachable.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum FailurePolicy {
    /// Serve them without a limit (availability first).
    #[default]
    Open,
    /// Refuse them with 503 (the limit is a hard guarantee).
    Closed,
}

impl FailurePolicy {
    /// The value of the router's `--rate-limit-failure-policy`.
    pub fn as_arg(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// TLS of the chat endpoint: the routers' listener (TLS 1.2 and 1.3), certificate reloaded
/// when the Secret changes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub secret_name: String,
}

/// Alert thresholds of the generated PrometheusRule (created only where its CRD exists).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Create the PrometheusRule, ServiceMonitor and dashboard.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// GPU utilisation percent (DCGM_FI_DEV_GPU_UTIL) above which, sustained, an alert fires.
    #[serde(default = "default_gpu_util")]
    #[schemars(range(min = 1, max = 100))]
    pub gpu_util_threshold: i32,
    /// Free GPU framebuffer bytes (DCGM_FI_DEV_FB_FREE) under which an alert fires.
    #[serde(default = "default_fb_free")]
    #[schemars(range(min = 0))]
    pub fb_free_bytes_threshold: i64,
    /// GPU temperature in degrees Celsius above which an alert fires.
    #[serde(default = "default_gpu_temp")]
    #[schemars(range(min = 30, max = 120))]
    pub gpu_temp_celsius_threshold: i32,
    /// Available node memory bytes under which an alert fires.
    #[serde(default = "default_node_memory")]
    #[schemars(range(min = 0))]
    pub node_memory_available_bytes_threshold: i64,
    /// Request latency p99 in seconds above which an alert fires.
    #[serde(default = "default_p99")]
    #[schemars(range(min = 0.001, max = 3600.0))]
    pub p99_latency_seconds: f64,
    /// Fraction of failed requests above which an alert fires.
    #[serde(default = "default_error_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub error_ratio: f64,
    /// Queued requests above which, growing, an alert fires.
    #[serde(default = "default_queue_depth")]
    #[schemars(range(min = 1))]
    pub queue_depth_threshold: i64,
    /// How long a condition must hold before its alert fires (`5m`).
    #[serde(default = "default_for")]
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    pub for_duration: String,
    /// Extra labels on the PrometheusRule, PodMonitor and dashboard ConfigMap, so the cluster's
    /// Prometheus `ruleSelector` / `podMonitorSelector` picks them up (e.g. `release: prometheus`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Base URL of the runbook (this project's README, where your team hosts it); each alert's
    /// `runbook_url` is this plus `#` and the alert's lowercase name. `README.md` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub runbook_base_url: Option<String>,
}

impl Default for MonitoringSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            gpu_util_threshold: default_gpu_util(),
            fb_free_bytes_threshold: default_fb_free(),
            gpu_temp_celsius_threshold: default_gpu_temp(),
            node_memory_available_bytes_threshold: default_node_memory(),
            p99_latency_seconds: default_p99(),
            error_ratio: default_error_ratio(),
            queue_depth_threshold: default_queue_depth(),
            for_duration: default_for(),
            labels: BTreeMap::new(),
            runbook_base_url: None,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_gpu_util() -> i32 {
    90
}
fn default_fb_free() -> i64 {
    10 * 1024 * 1024 * 1024
}
fn default_gpu_temp() -> i32 {
    85
}
fn default_node_memory() -> i64 {
    2 * 1024 * 1024 * 1024
}
fn default_p99() -> f64 {
    2.0
}
fn default_error_ratio() -> f64 {
    0.05
}
fn default_queue_depth() -> i64 {
    64
}
fn default_for() -> String {
    "5m".to_string()
}

/// Cold backups of the verified model files by a CronJob.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Cron schedule (five fields, e.g. `0 3 * * *`).
    #[schemars(length(min = 9, max = 128))]
    pub schedule: String,
    /// Where generations are written.
    pub destination: BackupDestination,
    /// Generations kept; older ones are pruned after a verified copy.
    #[serde(default = "default_keep")]
    #[schemars(range(min = 1, max = 100))]
    pub keep: i32,
    /// Stops scheduling new backups.
    #[serde(default)]
    pub suspend: bool,
}

fn default_keep() -> i32 {
    3
}

/// Exactly one backup destination.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.pvc) != has(self.s3)").message("exactly one of pvc, s3 must be set"))]
#[serde(rename_all = "camelCase")]
pub struct BackupDestination {
    /// A PersistentVolumeClaim (directory `path` inside it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcSource>,
    /// An S3-compatible bucket (key prefix `prefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Source>,
}
