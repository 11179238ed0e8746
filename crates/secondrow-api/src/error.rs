//! The one API error type and the one place it becomes an HTTP status and KFP's grpc-gateway error JSON.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use secondrow_engine::EngineError;
use secondrow_spec::SpecError;
use secondrow_store::StoreError;

/// What went wrong, classified the way KFP (gRPC) classifies it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// Logged, never echoed to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(msg: impl Into<String>) -> ApiError {
        ApiError::InvalidArgument(msg.into())
    }

    /// (HTTP status, gRPC code, gRPC status name): the whole mapping table.
    fn codes(&self) -> (StatusCode, i32, &'static str) {
        match self {
            ApiError::InvalidArgument(_) => (StatusCode::BAD_REQUEST, 3, "INVALID_ARGUMENT"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, 5, "NOT_FOUND"),
            ApiError::AlreadyExists(_) => (StatusCode::CONFLICT, 6, "ALREADY_EXISTS"),
            ApiError::FailedPrecondition(_) => (StatusCode::BAD_REQUEST, 9, "FAILED_PRECONDITION"),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, 16, "UNAUTHENTICATED"),
            ApiError::PermissionDenied(_) => (StatusCode::FORBIDDEN, 7, "PERMISSION_DENIED"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 13, "INTERNAL"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            StoreError::AlreadyExists { .. } => ApiError::AlreadyExists(e.to_string()),
            StoreError::InvalidArgument(m) => ApiError::InvalidArgument(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> ApiError {
        ApiError::InvalidArgument(e.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e {
            EngineError::Store(s) => s.into(),
            EngineError::Spec(s) => s.into(),
            EngineError::AlreadyFinished(..) => ApiError::FailedPrecondition(e.to_string()),
            EngineError::Encode(_) | EngineError::AttemptPanicked(_) | EngineError::Stalled => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, name) = self.codes();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let body = json!({
            "error": message,
            "code": code,
            "message": message,
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": name, "domain": "secondrow"}],
        });
        (status, axum::Json(body)).into_response()
    }
}
