//! The DeepSeekDeployment spec root, the model (what to serve, where its files come from, their
//! SHA256) and the runtime (image, GPUs, resources, batching limits). Schema bounds and CEL rules
//! live on the fields; rules CEL cannot express are in [`crate::validate`].

use k8s_openapi::api::core::v1::EnvVar;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::ops::{AuthSpec, BackupSpec, MonitoringSpec, RateLimitSpec, ServiceSpec, TlsSpec};
use crate::rollout::{PlacementSpec, RolloutSpec};
use crate::status::DeepSeekDeploymentStatus;

/// A model served by DeepSeek runtime pods, rolled out revision by revision.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// Each `printcolumn(...)` repeats keys such as `type_ = "string"`: separate columns, not the
// duplicated attributes this lint looks for (it fires once rustfmt splits them over lines).
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "inference.deepseek-k8s.dev",
    version = "v1alpha1",
    kind = "DeepSeekDeployment",
    plural = "deepseekdeployments",
    shortname = "dsd",
    namespaced,
    status = "DeepSeekDeploymentStatus",
    derive = "PartialEq",
    doc = "A large language model served on GPU (or CPU) pods, with progressive rollout.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Model",
        type_ = "string",
        json_path = ".spec.model.name",
        description = "served model name"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.ready",
        description = "ready/current replicas of the stable revision"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Stable",
        type_ = "string",
        json_path = ".status.stableRevision.hash"
    ),
    printcolumn(
        name = "Canary",
        type_ = "string",
        json_path = ".status.canaryRevision.hash"
    ),
    printcolumn(
        name = "Weight",
        type_ = "integer",
        json_path = ".status.canaryWeight",
        description = "percent of requests sent to the canary"
    ),
    printcolumn(
        name = "Step",
        type_ = "string",
        json_path = ".status.step",
        description = "rollout step / step count"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "GPUs",
        type_ = "integer",
        json_path = ".spec.runtime.gpus",
        description = "GPUs per pod",
        priority = 1
    ),
    printcolumn(
        name = "Image",
        type_ = "string",
        json_path = ".status.stableRevision.image",
        priority = 1
    ),
    printcolumn(
        name = "Digest",
        type_ = "string",
        json_path = ".status.stableRevision.modelDigest",
        priority = 1
    )
)]
#[x_kube(validation = Rule::new("!has(self.placement) || !has(self.placement.pdbMinAvailable) || self.placement.pdbMinAvailable <= self.replicas").message("placement.pdbMinAvailable must not exceed replicas"))]
#[serde(rename_all = "camelCase")]
pub struct DeepSeekDeploymentSpec {
    /// The model to serve and where its files come from.
    pub model: ModelSpec,
    /// The runtime pods: image, GPUs, resources, batching limits.
    #[serde(default)]
    pub runtime: RuntimeSpec,
    /// Runtime pods of the stable revision.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 512))]
    pub replicas: i32,
    /// Where pods run: zones, node selector, tolerations, disruption budget.
    #[serde(default)]
    pub placement: PlacementSpec,
    /// How a new revision replaces the stable one (canary steps, analysis, rollback).
    #[serde(default)]
    pub rollout: RolloutSpec,
    /// The chat Service in front of the revisions.
    #[serde(default)]
    pub service: ServiceSpec,
    /// Authentication (JWT roles, API keys) at the routers and the runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Per-client request rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// TLS of the chat endpoint (the routers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Alert thresholds (PrometheusRule) and scraping.
    #[serde(default)]
    pub monitoring: MonitoringSpec,
    /// Cold backups of the verified model files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
    /// PII redaction, Origin allow-list, conversation store and data-subject endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<crate::privacy::PrivacySpec>,
}

fn default_replicas() -> i32 {
    1
}

/// The model: served name, source, files with their SHA256, format.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// Name clients put in `model` of a chat request (`/v1/models` lists it).
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    )]
    pub name: String,
    /// Where the files are fetched from: exactly one of url, huggingFace, s3, pvc.
    pub source: ModelSource,
    /// Every file the runtime needs, each verified against its SHA256 before serving.
    #[schemars(
        length(min = 1, max = 512),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["path"])
    )]
    pub files: Vec<ModelFile>,
    /// File format of the weights.
    pub format: ModelFormat,
    /// Quantization, informational for GGUF (`Q4_K_M`), dtype for safetensors (`bf16`, `f16`, `f32`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub quantization: Option<String>,
    /// Maximum context length in tokens; the model's own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 128, max = 1048576))]
    pub context_length: Option<i32>,
}

/// Exactly one source; a struct of optional members keeps the schema structural.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("[has(self.url), has(self.huggingFace), has(self.s3), has(self.pvc)].filter(x, x).size() == 1").message("exactly one of url, huggingFace, s3, pvc must be set"))]
#[serde(rename_all = "camelCase")]
pub struct ModelSource {
    /// Plain HTTP(S): each file is fetched from `{url}/{path}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<UrlSource>,
    /// A Hugging Face Hub repository at a pinned revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugging_face: Option<HuggingFaceSource>,
    /// An S3-compatible bucket: each file is `{prefix}/{path}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Source>,
    /// Files already on a PersistentVolumeClaim (mounted read-only, verified in place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcSource>,
}

/// Base URL the files are fetched from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UrlSource {
    /// `http://` or `https://` base URL, without a trailing slash.
    #[schemars(
        length(min = 8, max = 2048),
        regex(pattern = r"^https?://[^\s]+[^/\s]$")
    )]
    pub url: String,
}

/// A Hugging Face Hub repository.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HuggingFaceSource {
    /// `owner/name`, e.g. `deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B`.
    #[schemars(
        length(min = 3, max = 200),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
    )]
    pub repo: String,
    /// Branch, tag or commit; pin a commit for reproducible revisions.
    #[serde(default = "default_hf_revision")]
    #[schemars(length(min = 1, max = 128))]
    pub revision: String,
    /// Secret holding the access token under key `HF_TOKEN` (gated or private repositories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

fn default_hf_revision() -> String {
    "main".to_string()
}

/// An S3-compatible bucket (AWS, MinIO, Ceph RGW, ...).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct S3Source {
    /// Bucket name.
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    pub bucket: String,
    /// Key prefix of the files, without leading or trailing slash; empty for the bucket root.
    #[serde(default)]
    #[schemars(length(max = 1024), regex(pattern = r"^([^/].*[^/]|[^/])?$"))]
    pub prefix: String,
    /// Endpoint URL for non-AWS stores; AWS's regional endpoint when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub endpoint: Option<String>,
    /// Region, e.g. `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region: Option<String>,
    /// Secret with `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`; anonymous access when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// Files on an existing PersistentVolumeClaim in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PvcSource {
    /// Name of the PersistentVolumeClaim.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub claim_name: String,
    /// Directory inside the volume holding the files; the volume root when empty.
    #[serde(default)]
    #[schemars(length(max = 1024), regex(pattern = r"^([^/].*)?$"))]
    pub path: String,
}

/// A reference to a Secret in the resource's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Secret name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// One model file and its expected digest.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelFile {
    /// Path relative to the source root (and to `/models` in the pod).
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^[A-Za-z0-9._][A-Za-z0-9._/-]*$")
    )]
    pub path: String,
    /// Lowercase hex SHA256 of the file's content.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: String,
}

/// Weights file format.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// Single-file (or split) GGUF, usually quantized.
    Gguf,
    /// Hugging Face safetensors shards with `config.json` and `tokenizer.json`.
    Safetensors,
}

/// The runtime pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSpec {
    /// Runtime image; the operator's default (`--runtime-image`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// GPUs per pod; 0 runs on CPU only.
    #[serde(default = "default_gpus")]
    #[schemars(range(min = 0, max = 16))]
    pub gpus: i32,
    /// Extended resource name of the GPU, e.g. `nvidia.com/gpu`, `amd.com/gpu`.
    #[serde(default = "default_gpu_resource_name")]
    #[schemars(length(min = 3, max = 253))]
    pub gpu_resource_name: String,
    /// CPU and memory of the runtime container.
    #[serde(default)]
    pub resources: ResourceSpec,
    /// Most sequences decoded together in one batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4096))]
    pub max_batch_size: Option<i32>,
    /// Most requests waiting for a batch slot before new ones get 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000000))]
    pub max_queue: Option<i32>,
    /// CPU threads for inference; the container's CPU count when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub threads: Option<i32>,
    /// Extra `serve` arguments, appended after the operator's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub extra_args: Vec<String>,
    /// Extra environment variables of the runtime container, one entry per name (names the
    /// operator sets itself are refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 128),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    pub env: Vec<EnvVar>,
}

impl Default for RuntimeSpec {
    fn default() -> Self {
        Self {
            image: None,
            gpus: default_gpus(),
            gpu_resource_name: default_gpu_resource_name(),
            resources: ResourceSpec::default(),
            max_batch_size: None,
            max_queue: None,
            threads: None,
            extra_args: Vec::new(),
            env: Vec::new(),
        }
    }
}

fn default_gpus() -> i32 {
    1
}

/// Default GPU extended resource name.
pub fn default_gpu_resource_name() -> String {
    "nvidia.com/gpu".to_string()
}

/// CPU and memory of the runtime container: the CPU is requested (no limit, so inference threads
/// are never throttled), the memory is both requested and limited (the node must hold the model).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpec {
    /// CPU quantity, e.g. `4` or `500m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$"))]
    pub cpu: Option<String>,
    /// Memory quantity, e.g. `16Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
    pub memory: Option<String>,
}
