//! Errors of the reconcile layer. Each variant has a stable `kind()` label used in metrics,
//! logs and Events, so dashboards do not depend on message text.

use deepseek_crds::SpecError;

/// Why one reconciliation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed (network, 5xx, or a 4xx we cannot fix by retrying).
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The API server refused a child's server-side apply (422 invalid, 403, ...): written to
    /// status as `Ready=False` with the server's message, not only logged.
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The pure builders refused the resource (should not happen after validation passed).
    #[error("building desired objects: {0}")]
    Desired(String),
    /// An object could not be converted to or from JSON.
    #[error("serializing {what}: {source}")]
    Serialize {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// The resource has no namespace or uid (it is always namespaced and stored).
    #[error("resource {0} lacks metadata.namespace or metadata.uid")]
    MissingMetadata(String),
    /// The watch caches stopped (the Controller is shutting down).
    #[error("watch caches closed")]
    CacheClosed,
    /// The status subresource kept answering 409 after every retry.
    #[error("status update of {name} still conflicted after {attempts} attempts")]
    StatusConflict { name: String, attempts: u32 },
    /// The spec is semantically invalid; reported in status, never retried quickly.
    #[error("invalid spec: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidSpec(Vec<SpecError>),
}

impl Error {
    /// Stable, low-cardinality label for metrics and Events.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Self::Kube(kube::Error::Api(s)) if s.code == 404 => "not_found",
            Self::Kube(kube::Error::Api(_)) => "api_error",
            Self::Kube(_) => "transport",
            Self::Apply { .. } => "apply",
            Self::Desired(_) => "desired",
            Self::Serialize { .. } => "serialize",
            Self::MissingMetadata(_) => "missing_metadata",
            Self::StatusConflict { .. } => "status_conflict",
            Self::CacheClosed => "cache_closed",
            Self::InvalidSpec(_) => "invalid_spec",
        }
    }
}

impl Error {
    /// What a user should read in status: the child and the API server's own message.
    pub fn user_message(&self) -> String {
        match self {
            Self::Apply {
                kind,
                name,
                source: kube::Error::Api(s),
            } => format!("{kind} {name}: {} ({})", s.message, s.code),
            other => other.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
