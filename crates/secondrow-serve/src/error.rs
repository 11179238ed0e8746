//! The crate's one error type and its classification (SecondRow's one [`ErrorKind`]); the HTTP status of
//! each kind is chosen in `http` alone.

pub use secondrow_error::ErrorKind;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A model file a runtime cannot load, or a prediction it cannot make, in the runtime's words; the
/// repository names the model, version and file around it ([`Error::Load`], [`Error::Predict`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

impl From<String> for ModelError {
    fn from(message: String) -> ModelError {
        ModelError(message)
    }
}

impl From<&str> for ModelError {
    fn from(message: &str) -> ModelError {
        ModelError(message.to_owned())
    }
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
    /// No valid token (the serving port's access control).
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token that does not reach what was asked.
    #[error("{0}")]
    PermissionDenied(String),
    /// More work in flight than the server's bounds allow; a later try may work.
    #[error("{0}")]
    Overloaded(String),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidArgument(message.into())
    }

    /// The class of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ModelNotFound(_) | Error::VersionNotFound { .. } => ErrorKind::NotFound,
            Error::InvalidArgument(_) => ErrorKind::InvalidInput,
            Error::PayloadTooLarge { .. } => ErrorKind::TooLarge,
            Error::Load { .. } | Error::Unavailable { .. } | Error::Overloaded(_) => ErrorKind::Unavailable,
            Error::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::Predict { .. } | Error::Internal(_) => ErrorKind::Internal,
        }
    }
}
