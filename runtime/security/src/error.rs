//! The security layers' refusals and their one mapping to an HTTP status and OpenAI's error
//! body: 401 (who are you?), 403 (you may not), 429 (slow down), 503 (the limiter's store is
//! down and the policy is fail-closed).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use deepseek_protocol::{ErrorBody, ErrorDetail};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SecurityError {
    /// No credentials, or credentials that do not verify. The reason is logged, never sent:
    /// telling a caller *why* a token failed helps forge the next one.
    #[error("Missing or invalid credentials")]
    Unauthenticated { reason: String },
    #[error("This credential may not use {path}: it needs the '{role}' role")]
    Forbidden { path: String, role: &'static str },
    #[error("Rate limit reached for {scope} requests; retry after {retry_after_secs}s")]
    RateLimited {
        scope: &'static str,
        retry_after_secs: u64,
        /// The `x-ratelimit-*` headers, sent with the refusal too.
        headers: HeaderMap,
    },
    #[error("The rate limiter is unavailable and requests are refused until it is back")]
    LimiterUnavailable,
}

impl SecurityError {
    pub fn status(&self) -> StatusCode {
        match self {
            SecurityError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            SecurityError::Forbidden { .. } => StatusCode::FORBIDDEN,
            SecurityError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            SecurityError::LimiterUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// OpenAI's `type` and `code` for this refusal.
    fn kind_and_code(&self) -> (&'static str, &'static str) {
        match self {
            SecurityError::Unauthenticated { .. } => ("invalid_request_error", "invalid_api_key"),
            SecurityError::Forbidden { .. } => {
                ("invalid_request_error", "insufficient_permissions")
            }
            SecurityError::RateLimited { .. } => ("requests", "rate_limit_exceeded"),
            SecurityError::LimiterUnavailable => ("server_error", "rate_limiter_unavailable"),
        }
    }
}

impl IntoResponse for SecurityError {
    fn into_response(self) -> Response {
        let (kind, code) = self.kind_and_code();
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.to_string(),
                kind: kind.into(),
                param: None,
                code: Some(code.into()),
            },
        };
        let mut resp = (self.status(), Json(body)).into_response();
        match &self {
            SecurityError::Unauthenticated { .. } => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            SecurityError::RateLimited {
                retry_after_secs,
                headers,
                ..
            } => {
                resp.headers_mut().extend(headers.clone());
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        resp
    }
}
