//! `spec.privacy`: what the runtime redacts, keeps and answers about personal data. Each field
//! becomes a `serve` flag (see the README's Privacy section); the operator never reads the
//! PostgreSQL Secret, it only points the runtime's environment at it.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::ops::SecretKeyRef;

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrivacySpec {
    /// PII categories redacted from logs, the degradation cache and stored conversations; all
    /// five when absent, none when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redact: Option<Vec<PiiCategory>>,
    /// Browser origins (`https://host[:port]`) allowed to open the WebSocket chat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub allowed_origins: Vec<String>,
    /// Keep redacted conversations per data subject in PostgreSQL (shared by every replica):
    /// the Secret key holding the `postgres://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_store: Option<SecretKeyRef>,
    /// Seconds a stored conversation is kept (30 days when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60))]
    pub retention_seconds: Option<i64>,
    /// Serve the data-subject endpoints (`/v1/privacy/*`, `admin` role).
    #[serde(default)]
    pub endpoints: bool,
    /// Purposes of processing, for the records of processing activities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<String>,
    /// Recipients of the personal data, for the records of processing activities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
}

/// A PII category the runtime can redact.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PiiCategory {
    Email,
    Phone,
    CnId,
    Card,
    Ip,
}

impl PiiCategory {
    /// The name `serve --redact` takes.
    pub fn flag_name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::CnId => "cn_id",
            Self::Card => "card",
            Self::Ip => "ip",
        }
    }
}
