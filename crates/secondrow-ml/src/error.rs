//! The crate's one public error type.
//!
//! Every variant names the entity that failed (a file, a column, an argument) so that a user reading the
//! message of a failed pipeline step knows what to fix. [`Error::code`] classifies errors for callers that
//! map them onto exit codes or HTTP statuses.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A framework-free classification of [`Error`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A file, column or component does not exist.
    NotFound,
    /// An argument or hyperparameter is malformed or out of range.
    InvalidArgument,
    /// The data does not meet what the step needs (empty, wrong type, one class, failed validation).
    InvalidData,
    /// Reading or writing failed for a reason outside the user's input.
    Internal,
}

/// Everything that can go wrong in a built-in component.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot read table: {message}")]
    ReadTable { path: PathBuf, message: String },
    #[error("{path}: cannot write table: {message}")]
    WriteTable { path: PathBuf, message: String },
    #[error("{path}: file is empty or has no data rows")]
    EmptyData { path: PathBuf },
    #[error("column `{column}` not found (available: {available})")]
    MissingColumn { column: String, available: String },
    #[error("column `{column}`: non-numeric value `{value}` in row {row}")]
    NonNumeric { column: String, row: usize, value: String },
    #[error("column `{column}`: {count} missing value(s) (first in row {row}); add an impute transform")]
    MissingValues { column: String, count: usize, row: usize },
    #[error("label column `{column}` has a single class `{class}`; a classifier needs at least two")]
    SingleClass { column: String, class: String },
    #[error("{path}: model kind `{found}` cannot be used here: {expected}")]
    WrongModelKind { path: PathBuf, found: String, expected: String },
    #[error("{path}: not a secondrow model file: {message}")]
    InvalidModelFile { path: PathBuf, message: String },
    #[error("{path}: invalid {what}: {message}")]
    InvalidFile { path: PathBuf, what: &'static str, message: String },
    #[error("unknown component `{name}` (available: {available})")]
    UnknownComponent { name: String, available: String },
    #[error("component `{component}`: unknown argument `--{argument}`")]
    UnknownArgument { component: String, argument: String },
    #[error("component `{component}`: missing required argument `--{argument}`")]
    MissingArgument { component: String, argument: String },
    #[error("argument `{argument}`: {message}")]
    InvalidArgument { argument: String, message: String },
    #[error("data validation failed with {count} anomal{plural}: {summary}", plural = if *count == 1 { "y" } else { "ies" })]
    ValidationFailed { count: usize, summary: String },
    #[error("{0}")]
    InvalidData(String),
}

impl Error {
    /// The class of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => ErrorCode::NotFound,
            Error::Io { .. } | Error::WriteTable { .. } => ErrorCode::Internal,
            Error::MissingColumn { .. } | Error::UnknownComponent { .. } => ErrorCode::NotFound,
            Error::UnknownArgument { .. } | Error::MissingArgument { .. } | Error::InvalidArgument { .. } => {
                ErrorCode::InvalidArgument
            }
            Error::ReadTable { .. }
            | Error::EmptyData { .. }
            | Error::NonNumeric { .. }
            | Error::MissingValues { .. }
            | Error::SingleClass { .. }
            | Error::WrongModelKind { .. }
            | Error::InvalidModelFile { .. }
            | Error::InvalidFile { .. }
            | Error::ValidationFailed { .. }
            | Error::InvalidData(_) => ErrorCode::InvalidData,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn arg(argument: &str, message: impl Into<String>) -> Error {
        Error::InvalidArgument { argument: argument.to_string(), message: message.into() }
    }
}
