//! The crate's one error type.

use secondrow_error::ErrorKind;

/// Why an Experiment was refused, or a suggestion/metric step failed.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// The document is not YAML/JSON of the Experiment's shape.
    #[error("experiment is not a valid document: {0}")]
    Parse(String),
    /// A field breaks one of Katib's rules; `path` names it (`spec.parameters[2].feasibleSpace.min`).
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// A Katib feature that is recognised but not implemented here (for example `pbt`, `EIps`).
    #[error("{path}: {message} is not supported")]
    Unsupported { path: String, message: String },
    /// A `${trialParameters.x}` placeholder names no declared trial parameter, or a parameter has no value.
    #[error("trial template: {0}")]
    Substitution(String),
    /// A trial's metrics output could not be read (malformed JSON line, unparsable value).
    #[error("metrics: {0}")]
    Metrics(String),
}

impl TuneError {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        TuneError::Invalid { path: path.into(), message: message.into() }
    }

    pub(crate) fn unsupported(path: impl Into<String>, message: impl Into<String>) -> Self {
        TuneError::Unsupported { path: path.into(), message: message.into() }
    }

    /// The field path for `Invalid`/`Unsupported`, else `None`.
    pub fn path(&self) -> Option<&str> {
        match self {
            TuneError::Invalid { path, .. } | TuneError::Unsupported { path, .. } => Some(path),
            _ => None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        // Every failure here is caused by the caller's experiment or the trial's output.
        ErrorKind::InvalidInput
    }
}

pub type Result<T> = std::result::Result<T, TuneError>;
