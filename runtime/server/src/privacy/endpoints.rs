//! The data-subject endpoints (on with `--privacy-endpoints`, `admin` role required):
//! - `GET /v1/privacy/subjects/{sub}/conversations`: the subject's stored conversations (JSON);
//! - `DELETE /v1/privacy/subjects/{sub}`: erases them and answers with a receipt;
//! - `GET /v1/privacy/processing-activities`: the records of processing, from configuration.
//!
//! Every call, allowed or not, writes an audit log line (target `privacy_audit`); every
//! allowed call also an audit row in the store when one is open.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::identity::caller;
use crate::AppState;
use deepseek_http::Principal;
use deepseek_privacy::store::{AuditEntry, ConversationStore};
use deepseek_protocol::{ErrorBody, ErrorDetail};

/// The role every privacy endpoint needs.
pub const ADMIN_ROLE: &str = "admin";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/privacy/subjects/{sub}/conversations", get(export))
        .route("/v1/privacy/subjects/{sub}", delete(erase))
        .route(
            "/v1/privacy/processing-activities",
            get(processing_activities),
        )
}

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("Authentication required for privacy endpoints")]
    Unauthenticated,
    #[error("The '{ADMIN_ROLE}' role is required for privacy endpoints")]
    Forbidden,
    #[error("No conversation store is configured (--conversation-store)")]
    NoStore,
    #[error("The conversation store failed: {0}")]
    Store(String),
}

impl IntoResponse for PrivacyError {
    fn into_response(self) -> Response {
        let (status, code, kind) = match self {
            Self::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "authentication_error",
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "permission_denied",
                "permission_error",
            ),
            Self::NoStore => (
                StatusCode::CONFLICT,
                "conversation_store_disabled",
                "invalid_request_error",
            ),
            Self::Store(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_error",
                "server_error",
            ),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.to_string(),
                kind: kind.into(),
                param: None,
                code: Some(code.into()),
            },
        };
        (status, Json(body)).into_response()
    }
}

/// The caller, when they may use these endpoints; the refusal is audited too.
fn admin(
    st: &AppState,
    req: &Request,
    action: &str,
    subject: &str,
) -> Result<Principal, PrivacyError> {
    let who = caller(
        req.extensions(),
        req.headers(),
        st.privacy.config.trust_identity_headers,
    );
    let refused = match &who {
        None => Some(PrivacyError::Unauthenticated),
        Some(p) if !p.has_role(ADMIN_ROLE) => Some(PrivacyError::Forbidden),
        Some(_) => None,
    };
    let actor = who.as_ref().map_or("", |p| p.subject.as_str());
    match refused {
        Some(e) => {
            tracing::warn!(target: "privacy_audit", actor, action, subject, outcome = "refused", reason = %e, "privacy action");
            Err(e)
        }
        None => who.ok_or(PrivacyError::Unauthenticated),
    }
}

fn store(st: &AppState) -> Result<&Arc<ConversationStore>, PrivacyError> {
    st.privacy.store().ok_or(PrivacyError::NoStore)
}

/// The audit log line, and the audit row when a store is open.
async fn audit(
    st: &AppState,
    actor: &str,
    action: &str,
    subject: &str,
    detail: Value,
) -> Result<String, PrivacyError> {
    let entry = AuditEntry {
        id: format!("audit-{}", uuid::Uuid::new_v4().simple()),
        at: chrono::Utc::now().timestamp(),
        actor: actor.into(),
        action: action.into(),
        subject: subject.into(),
        detail: detail.to_string(),
    };
    tracing::info!(target: "privacy_audit", actor, action, subject, outcome = "done", detail = %entry.detail, audit_id = %entry.id, "privacy action");
    if let Some(store) = st.privacy.store() {
        store
            .audit(&entry)
            .await
            .map_err(|e| PrivacyError::Store(e.to_string()))?;
    }
    Ok(entry.id)
}

async fn export(
    State(st): State<Arc<AppState>>,
    Path(sub): Path<String>,
    req: Request,
) -> Result<Json<Value>, PrivacyError> {
    let who = admin(&st, &req, "export", &sub)?;
    let store = store(&st)?;
    let now = chrono::Utc::now().timestamp();
    let conversations = store
        .export(&sub, now)
        .await
        .map_err(|e| PrivacyError::Store(e.to_string()))?;
    let audit_id = audit(
        &st,
        &who.subject,
        "export",
        &sub,
        json!({"conversations": conversations.len()}),
    )
    .await?;
    Ok(Json(json!({
        "object": "privacy.export",
        "subject": sub,
        "exported_at": chrono::Utc::now().to_rfc3339(),
        "audit_id": audit_id,
        "conversations": conversations,
    })))
}

async fn erase(
    State(st): State<Arc<AppState>>,
    Path(sub): Path<String>,
    req: Request,
) -> Result<Json<Value>, PrivacyError> {
    let who = admin(&st, &req, "erase", &sub)?;
    let store = store(&st)?;
    let erased = store
        .erase(&sub)
        .await
        .map_err(|e| PrivacyError::Store(e.to_string()))?;
    let audit_id = audit(
        &st,
        &who.subject,
        "erase",
        &sub,
        json!({"erased_conversations": erased}),
    )
    .await?;
    Ok(Json(json!({
        "object": "privacy.erasure_receipt",
        "receipt_id": audit_id,
        "subject": sub,
        "erased_conversations": erased,
        "erased_at": chrono::Utc::now().to_rfc3339(),
        "store": store.kind(),
        "note": "stored conversations of the subject are deleted; the degradation cache keeps only redacted answers, keyed by a hash, for at most its TTL",
    })))
}

async fn processing_activities(
    State(st): State<Arc<AppState>>,
    req: Request,
) -> Result<Json<Value>, PrivacyError> {
    let who = admin(&st, &req, "processing_activities", "")?;
    let p = &st.privacy;
    let redacted: Vec<&str> = p.redactor.categories().iter().map(|c| c.name()).collect();
    let degrade = st.degrade.config();
    let record = json!({
        "object": "privacy.processing_activities",
        "service": st.limits.served_model_name,
        "activities": [{
            "name": "chat completions",
            "purposes": p.config.privacy_purposes,
            "data_subjects": ["authenticated API callers", "people named in chat messages"],
            "categories_of_personal_data": ["chat message content", "caller subject identifier"],
            "redacted_before_logging_or_storage": redacted,
            "model_input_redacted": false,
            "storage": {
                "conversations_stored": p.store().is_some(),
                "backend": p.store().map(|s| s.kind()),
                "retention_secs": p.retention.as_secs(),
            },
            "degradation_cache": {
                "entries": degrade.cache_entries,
                "ttl_secs": degrade.ttl.as_secs(),
                "content": "redacted answers keyed by a SHA-256 of the conversation",
            },
            "recipients": p.config.privacy_recipients,
        }],
    });
    audit(&st, &who.subject, "processing_activities", "", json!({})).await?;
    Ok(Json(record))
}
