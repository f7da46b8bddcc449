//! The router's own failures and their one mapping to an HTTP status and OpenAI's error body,
//! so a client of the router sees the same error shape as a client of the runtime.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use thiserror::Error;

use super::stats::ErrorClass;
use deepseek_protocol::{ErrorBody, ErrorDetail};

#[derive(Debug, Error, PartialEq)]
pub enum RouterError {
    #[error("No backend of revision '{revision}' accepted a connection ({tried} tried; last error: {last})")]
    NoBackend {
        revision: String,
        tried: usize,
        last: String,
    },
    #[error("Revision '{revision}' failed the request after it was sent: {reason}")]
    Upstream { revision: String, reason: String },
    #[error("Revision '{revision}' did not answer within the {secs}s request timeout")]
    Timeout { revision: String, secs: u64 },
    #[error("The request body is larger than the router's {limit}-byte limit")]
    BodyTooLarge { limit: usize },
    #[error("Could not read the request body: {0}")]
    BadBody(String),
    #[error("The router has too many requests in flight; retry shortly")]
    TooManyRequests,
    #[error(
        "The router's {budget}-byte budget for buffered request bodies is in use; retry shortly"
    )]
    BodyBudget { budget: usize },
    #[error("The router has no routes yet (its route file is missing)")]
    NoRoutes,
    #[error("Origin '{0}' is not allowed (see --allowed-origins)")]
    OriginNotAllowed(String),
    #[error("Content-Type must be application/json, not '{0}'")]
    UnsupportedMediaType(String),
}

impl RouterError {
    pub fn status(&self) -> StatusCode {
        match self {
            RouterError::NoBackend { .. } | RouterError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            RouterError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            RouterError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RouterError::BadBody(_) => StatusCode::BAD_REQUEST,
            RouterError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            RouterError::BodyBudget { .. } | RouterError::NoRoutes => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RouterError::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            RouterError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    /// Stable label for `code` in the body.
    pub fn code(&self) -> &'static str {
        match self {
            RouterError::NoBackend { .. } => "upstream_unavailable",
            RouterError::Upstream { .. } => "upstream_error",
            RouterError::Timeout { .. } => "upstream_timeout",
            RouterError::BodyTooLarge { .. } => "body_too_large",
            RouterError::BadBody(_) => "bad_request_body",
            RouterError::TooManyRequests => "router_overloaded",
            RouterError::BodyBudget { .. } => "body_budget_exhausted",
            RouterError::NoRoutes => "no_routes",
            RouterError::OriginNotAllowed(_) => "origin_not_allowed",
            RouterError::UnsupportedMediaType(_) => "unsupported_media_type",
        }
    }

    /// The stats class this failure counts under in its revision's stats; `None` for the
    /// router's own refusals, which happen before a revision is chosen.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            RouterError::NoBackend { .. } => Some(ErrorClass::Connect),
            RouterError::Upstream { .. } => Some(ErrorClass::Upstream5xx),
            RouterError::Timeout { .. } => Some(ErrorClass::Timeout),
            RouterError::BodyTooLarge { .. } | RouterError::BadBody(_) => {
                Some(ErrorClass::Client4xx)
            }
            // The router's own refusals, before a revision is chosen.
            RouterError::TooManyRequests
            | RouterError::BodyBudget { .. }
            | RouterError::NoRoutes
            | RouterError::OriginNotAllowed(_)
            | RouterError::UnsupportedMediaType(_) => None,
        }
    }

    /// Refusals that clear up by themselves get a `Retry-After`.
    fn retry_after(&self) -> bool {
        matches!(
            self,
            RouterError::TooManyRequests | RouterError::BodyBudget { .. } | RouterError::NoRoutes
        )
    }
}

impl IntoResponse for RouterError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after();
        let kind = if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        };
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.to_string(),
                kind: kind.to_string(),
                param: None,
                code: Some(self.code().to_string()),
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if retry_after {
            resp.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}
