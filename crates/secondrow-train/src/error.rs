//! The crate's one error type.

use secondrow_error::ErrorKind;

/// Why a job document was refused.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The document is not YAML of a job's shape.
    #[error("job is not a valid document: {0}")]
    Parse(String),
    /// A field breaks one of the operator's rules; `path` names it (`spec.pytorchReplicaSpecs.Master.replicas`).
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// A field the operator accepts that a local run cannot honour (for example env `valueFrom`).
    #[error("{path}: {message} is not supported")]
    Unsupported { path: String, message: String },
}

impl TrainError {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        TrainError::Invalid { path: path.into(), message: message.into() }
    }

    pub(crate) fn unsupported(path: impl Into<String>, message: impl Into<String>) -> Self {
        TrainError::Unsupported { path: path.into(), message: message.into() }
    }

    /// The field path for `Invalid`/`Unsupported`, else `None`.
    pub fn path(&self) -> Option<&str> {
        match self {
            TrainError::Invalid { path, .. } | TrainError::Unsupported { path, .. } => Some(path),
            TrainError::Parse(_) => None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        // Every failure here is caused by the caller's document.
        ErrorKind::InvalidInput
    }
}

pub type Result<T> = std::result::Result<T, TrainError>;
