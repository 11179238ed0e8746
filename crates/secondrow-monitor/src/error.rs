//! Errors of the monitoring crate.

use secondrow_error::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// Reading or writing a prediction log file.
    #[error("prediction log `{path}`: {message}")]
    Log { path: String, message: String },
    /// A batch whose columns do not line up (a caller's bug, not user input).
    #[error("prediction log batch: {0}")]
    Batch(String),
    /// The reference (training) statistics are not usable.
    #[error("reference statistics: {0}")]
    Reference(String),
    /// A monitor rule expression that does not parse or names something unknown.
    #[error("{0}")]
    Rule(String),
}

impl MonitorError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            MonitorError::Log { .. } | MonitorError::Batch(_) => ErrorKind::Internal,
            MonitorError::Reference(_) | MonitorError::Rule(_) => ErrorKind::InvalidInput,
        }
    }
}

pub type Result<T, E = MonitorError> = std::result::Result<T, E>;
