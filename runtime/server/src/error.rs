//! The one mapping from every API failure to an HTTP status and OpenAI's error body
//! `{"error":{"message","type","param","code"}}`. Axum's own rejections (bad JSON, wrong
//! content type, body too large, unknown route) come through here too.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use thiserror::Error;

use deepseek_engine::engine::SubmitError;
use deepseek_protocol::validate::ValidationError;
use deepseek_protocol::{ErrorBody, ErrorDetail};

#[derive(Debug, Error)]
pub enum ApiError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("We could not parse the JSON body of your request: {0}")]
    InvalidJson(String),
    #[error("Content-Type must be application/json, not '{0}'")]
    UnsupportedMediaType(String),
    #[error("The request body is larger than the {limit}-byte limit")]
    BodyTooLarge { limit: usize },
    #[error("The server is busy ({0} requests waiting); retry later")]
    QueueFull(usize),
    #[error("The server is overloaded ({waiting} requests waiting); retry later")]
    Overloaded { waiting: usize },
    #[error("The model is not ready yet")]
    NotReady,
    #[error("The inference engine has stopped")]
    EngineStopped,
    #[error("The inference engine is unavailable ({0}); retry on another replica")]
    EngineUnavailable(&'static str),
    #[error("The server is handling its limit of {limit} concurrent requests; retry later")]
    TooManyRequests { limit: usize },
    #[error("This WebSocket already has its limit of {limit} requests in flight")]
    TooManyInFlight { limit: usize },
    #[error("No token was generated within {secs} seconds")]
    FirstTokenTimeout { secs: f64 },
    #[error("The request did not finish within {secs} seconds")]
    RequestTimeout { secs: f64 },
    #[error("The server is shutting down; retry on another replica")]
    ShuttingDown,
    /// The detail is logged with the id, never sent: internal error text can leak paths,
    /// tensor shapes or library internals.
    #[error("The server had an error while processing your request (error id {id}); contact the operator with this id if it persists")]
    Internal { id: String },
    #[error("Unknown request URL: {0}")]
    NotFound(String),
    #[error("Method not allowed")]
    MethodNotAllowed,
    #[error("Origin '{0}' is not allowed (see --allowed-origins)")]
    OriginNotAllowed(String),
}

impl ApiError {
    /// Logs `detail` under a fresh id and returns the generic error that names only the id.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let id = format!("err-{}", uuid::Uuid::new_v4().simple());
        tracing::error!(error_id = %id, error = %detail, "internal error");
        ApiError::Internal { id }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::QueueFull(n) => ApiError::QueueFull(n),
            SubmitError::Stopped => ApiError::EngineStopped,
        }
    }
}

/// Seconds a client should wait after a 429.
pub const RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(ValidationError::UnknownModel(_)) => StatusCode::NOT_FOUND,
            ApiError::Validation(_) | ApiError::InvalidJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::QueueFull(_)
            | ApiError::Overloaded { .. }
            | ApiError::TooManyRequests { .. }
            | ApiError::TooManyInFlight { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotReady
            | ApiError::EngineStopped
            | ApiError::EngineUnavailable(_)
            | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::FirstTokenTimeout { .. } | ApiError::RequestTimeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
        }
    }

    /// OpenAI's `type`.
    pub fn kind(&self) -> &'static str {
        let status = self.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            "rate_limit_error"
        } else if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        }
    }

    /// Stable label for `code` and the errors metric.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(v) => v.code(),
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::QueueFull(_) => "queue_full",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::NotReady => "not_ready",
            ApiError::EngineStopped => "engine_stopped",
            ApiError::EngineUnavailable(_) => "engine_unavailable",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::TooManyInFlight { .. } => "too_many_in_flight",
            ApiError::FirstTokenTimeout { .. } => "first_token_timeout",
            ApiError::RequestTimeout { .. } => "request_timeout",
            ApiError::ShuttingDown => "shutting_down",
            // The label the operator's error-ratio alert already counts.
            ApiError::Internal { .. } => "generation_failed",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::OriginNotAllowed(_) => "origin_not_allowed",
        }
    }

    pub fn param(&self) -> Option<&'static str> {
        match self {
            ApiError::Validation(v) => v.param(),
            _ => None,
        }
    }

    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            message: self.to_string(),
            kind: self.kind().to_string(),
            param: self.param().map(str::to_string),
            code: Some(self.code().to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (
            status,
            Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        resp
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unknown_model_is_a_404_naming_the_model_param() {
        let e = ApiError::from(ValidationError::UnknownModel("x".into()));
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(e.detail().param.as_deref(), Some("model"));
        assert_eq!(e.detail().code.as_deref(), Some("model_not_found"));
    }

    #[test]
    fn a_full_queue_is_a_429_with_retry_after() {
        let resp = ApiError::from(SubmitError::QueueFull(3)).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn internal_errors_name_an_id_and_never_the_detail() {
        let e = ApiError::internal("matmul shape [3, 7] x [8, 2] in /secret/path");
        let d = e.detail();
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(d.code.as_deref(), Some("generation_failed"));
        assert!(!d.message.contains("secret"), "{}", d.message);
        let ApiError::Internal { id } = &e else {
            panic!("{e:?}")
        };
        assert!(d.message.contains(id.as_str()), "{}", d.message);
    }

    #[test]
    fn validation_errors_are_400_invalid_request_errors() {
        let e = ApiError::from(ValidationError::TemperatureOutOfRange(3.0));
        assert_eq!(
            (e.status(), e.kind()),
            (StatusCode::BAD_REQUEST, "invalid_request_error")
        );
    }
}
