//! The one API error type and the one place it becomes an HTTP status and KFP's grpc-gateway error JSON.
//!
//! Errors of the other crates arrive with their [`ErrorKind`] and keep it: [`ApiError::from_kind`] picks
//! the variant, and [`status_of`] is the whole table from kind to HTTP status and gRPC code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use secondrow_engine::EngineError;
use secondrow_error::ErrorKind;
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
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    /// Logged, never echoed to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(msg: impl Into<String>) -> ApiError {
        ApiError::InvalidArgument(msg.into())
    }

    /// The error of `kind` with `message` (an `Internal` message is logged, never sent).
    pub fn from_kind(kind: ErrorKind, message: String) -> ApiError {
        match kind {
            ErrorKind::InvalidInput => ApiError::InvalidArgument(message),
            ErrorKind::NotFound => ApiError::NotFound(message),
            ErrorKind::AlreadyExists => ApiError::AlreadyExists(message),
            ErrorKind::FailedPrecondition => ApiError::FailedPrecondition(message),
            ErrorKind::Unauthenticated => ApiError::Unauthenticated(message),
            ErrorKind::PermissionDenied => ApiError::PermissionDenied(message),
            ErrorKind::TooLarge => ApiError::TooLarge(message),
            ErrorKind::Unavailable => ApiError::Unavailable(message),
            ErrorKind::Internal => ApiError::Internal(message),
        }
    }

    /// The class of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApiError::InvalidArgument(_) => ErrorKind::InvalidInput,
            ApiError::NotFound(_) => ErrorKind::NotFound,
            ApiError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            ApiError::FailedPrecondition(_) => ErrorKind::FailedPrecondition,
            ApiError::Unauthenticated(_) => ErrorKind::Unauthenticated,
            ApiError::PermissionDenied(_) => ErrorKind::PermissionDenied,
            ApiError::TooLarge(_) => ErrorKind::TooLarge,
            ApiError::Unavailable(_) => ErrorKind::Unavailable,
            ApiError::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// (HTTP status, gRPC code, gRPC status name) of each kind: the whole mapping table. KFP answers
/// FAILED_PRECONDITION with 400, as grpc-gateway does.
pub fn status_of(kind: ErrorKind) -> (StatusCode, i32, &'static str) {
    match kind {
        ErrorKind::InvalidInput => (StatusCode::BAD_REQUEST, 3, "INVALID_ARGUMENT"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, 5, "NOT_FOUND"),
        ErrorKind::AlreadyExists => (StatusCode::CONFLICT, 6, "ALREADY_EXISTS"),
        ErrorKind::FailedPrecondition => (StatusCode::BAD_REQUEST, 9, "FAILED_PRECONDITION"),
        ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, 16, "UNAUTHENTICATED"),
        ErrorKind::PermissionDenied => (StatusCode::FORBIDDEN, 7, "PERMISSION_DENIED"),
        ErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, 8, "RESOURCE_EXHAUSTED"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, 14, "UNAVAILABLE"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, 13, "INTERNAL"),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            // The message without the `invalid argument: ` prefix the CLI prints.
            StoreError::InvalidArgument(m) => ApiError::InvalidArgument(m),
            other => ApiError::from_kind(other.kind(), other.to_string()),
        }
    }
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> ApiError {
        ApiError::from_kind(e.kind(), e.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e {
            EngineError::Store(s) => s.into(),
            other => ApiError::from_kind(other.kind(), other.to_string()),
        }
    }
}

impl From<secondrow_serve::Error> for ApiError {
    fn from(e: secondrow_serve::Error) -> ApiError {
        ApiError::from_kind(e.kind(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, name) = status_of(self.kind());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_only_ours_are_5xx() {
        for kind in ErrorKind::ALL {
            let e = ApiError::from_kind(kind, "m".into());
            assert_eq!(e.kind(), kind);
            let (status, _, _) = status_of(kind);
            assert_eq!(status.is_server_error(), !kind.is_caller_error(), "{kind}");
        }
    }

    #[test]
    fn store_failures_that_are_not_the_callers_are_internal() {
        let e: ApiError = StoreError::Corrupt("runs.state".into()).into();
        assert_eq!(e.kind(), ErrorKind::Internal);
        let e: ApiError = StoreError::NotFound { kind: "run", id: "x".into() }.into();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e: ApiError = EngineError::AlreadyFinished("r".into(), secondrow_store::RunState::Succeeded).into();
        assert_eq!(status_of(e.kind()).0, StatusCode::BAD_REQUEST);
    }
}
