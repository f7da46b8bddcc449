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
    #[error("Generation failed: {0}")]
    Generation(String),
    #[error("Unknown request URL: {0}")]
    NotFound(String),
    #[error("Method not allowed")]
    MethodNotAllowed,
    #[error("Origin '{0}' is not allowed (see --allowed-origins)")]
    OriginNotAllowed(String),
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
            ApiError::QueueFull(_) | ApiError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotReady | ApiError::EngineStopped => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Generation(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
            ApiError::Generation(_) => "generation_failed",
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
    fn validation_errors_are_400_invalid_request_errors() {
        let e = ApiError::from(ValidationError::TemperatureOutOfRange(3.0));
        assert_eq!(
            (e.status(), e.kind()),
            (StatusCode::BAD_REQUEST, "invalid_request_error")
        );
    }
}
