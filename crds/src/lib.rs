//! DeepSeekDeployment custom resource: the types (spec, status, conditions), their schema and CEL
//! rules, the semantic validation CEL cannot express, and the CRD document `crdgen` prints.
//!
//! Pure: no client, no network. The operator builds its children from these types; the chart and
//! `deepseek-operator crd` print [`crd::crd_yaml`], which is committed as `crds/deepseekdeployments.yaml`.

pub mod crd;
pub mod duration;
pub mod ops;
pub mod privacy;
pub mod rollout;
pub mod spec;
pub mod spec_error;
pub mod status;
pub mod syntax;
pub mod validate;

pub use kube::CustomResourceExt;
pub use ops::{
    AuthSpec, BackupDestination, BackupSpec, FailurePolicy, MonitoringSpec, RateLimitSpec,
    RedisSpec, SecretKeyRef, ServiceSpec, ServiceType, TlsSpec,
};
pub use privacy::{PiiCategory, PrivacySpec};
pub use rollout::{AnalysisSpec, PlacementSpec, RolloutSpec, RolloutStep};
pub use spec::{
    DeepSeekDeployment, DeepSeekDeploymentSpec, HuggingFaceSource, ModelFile, ModelFormat,
    ModelSource, ModelSpec, PvcSource, ResourceSpec, RuntimeSpec, S3Source, SecretRef, UrlSource,
};
pub use status::{
    AnalysisResult, BackupRecord, DeepSeekDeploymentStatus, HistoryEntry, ModelVerification,
    ModelVerificationState, Phase, RevisionRef, RollbackRecord, RolloutState, StatsBaseline,
    ZoneStatus,
};
pub use validate::{validate, validate_resource, SpecError};

/// API group of the resource: a DNS name the project owns, never a vendor's domain.
pub const GROUP: &str = "inference.deepseek-k8s.dev";
/// The only served version so far.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "inference.deepseek-k8s.dev/v1alpha1";
/// Kind of the resource.
pub const KIND: &str = "DeepSeekDeployment";
/// Plural resource name (URL path segment, RBAC resource).
pub const PLURAL: &str = "deepseekdeployments";
/// Longest accepted resource name: children are named `{name}-{revision}` (revision: 10 hex
/// characters) and Service names must stay DNS labels of at most 63 characters.
pub const MAX_NAME_LEN: usize = 52;
