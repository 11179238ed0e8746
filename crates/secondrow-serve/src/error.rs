//! The crate's one error type and its classification; the HTTP status of each class is chosen in
//! `http` alone.

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is, independent of any transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Unknown model, version or route.
    NotFound,
    /// The request is malformed or does not fit the model (shape, datatype, input name).
    InvalidArgument,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    /// The model exists but cannot serve now (load failed, shutting down).
    Unavailable,
    /// A model failed while predicting, or another server-side fault.
    Internal,
}

/// Every failure of the serving crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("model `{0}` not found")]
    ModelNotFound(String),
    #[error("model `{model}` has no version `{version}`")]
    VersionNotFound { model: String, version: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("model `{model}` version `{version}`: cannot load `{path}`: {message}")]
    Load { model: String, version: String, path: String, message: String },
    #[error("model `{model}` is not ready: {message}")]
    Unavailable { model: String, message: String },
    #[error("model `{model}` version `{version}`: prediction failed: {message}")]
    Predict { model: String, version: String, message: String },
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidArgument(message.into())
    }

    /// The class of the error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::ModelNotFound(_) | Error::VersionNotFound { .. } => ErrorCode::NotFound,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Error::Load { .. } | Error::Unavailable { .. } => ErrorCode::Unavailable,
            Error::Predict { .. } | Error::Internal(_) => ErrorCode::Internal,
        }
    }
}
