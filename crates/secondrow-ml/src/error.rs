//! The crate's one public error type.
//!
//! Every variant names the entity that failed (a file, a column, an argument) so that a user reading the
//! message of a failed pipeline step knows what to fix. [`Error::kind`] classifies errors (SecondRow's one
//! [`ErrorKind`]) for callers that map them onto exit codes or HTTP statuses: what the user gave (an
//! argument, a data file, a model file) is a caller error, a failed read or write of a file that exists
//! is `Internal`.

use std::path::PathBuf;

pub use secondrow_error::ErrorKind;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// The class of this error: a missing file, column or component is `NotFound`; bad arguments and
    /// data are `InvalidInput`; an IO failure other than a missing or refused file is `Internal`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { source, .. } => ErrorKind::of_io(source),
            Error::WriteTable { .. } => ErrorKind::Internal,
            Error::MissingColumn { .. } | Error::UnknownComponent { .. } => ErrorKind::NotFound,
            Error::UnknownArgument { .. }
            | Error::MissingArgument { .. }
            | Error::InvalidArgument { .. }
            | Error::ReadTable { .. }
            | Error::EmptyData { .. }
            | Error::NonNumeric { .. }
            | Error::MissingValues { .. }
            | Error::SingleClass { .. }
            | Error::WrongModelKind { .. }
            | Error::InvalidModelFile { .. }
            | Error::InvalidFile { .. }
            | Error::ValidationFailed { .. }
            | Error::InvalidData(_) => ErrorKind::InvalidInput,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn arg(argument: &str, message: impl Into<String>) -> Error {
        Error::InvalidArgument { argument: argument.to_string(), message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_failures_are_internal_unless_the_file_is_missing() {
        let io = |k| Error::io("/data/x.csv", std::io::Error::new(k, "boom"));
        assert_eq!(io(std::io::ErrorKind::NotFound).kind(), ErrorKind::NotFound);
        assert_eq!(io(std::io::ErrorKind::StorageFull).kind(), ErrorKind::Internal);
        assert_eq!(io(std::io::ErrorKind::Other).kind(), ErrorKind::Internal);
        let write = Error::WriteTable { path: "/out/t.csv".into(), message: "disk".into() };
        assert_eq!(write.kind(), ErrorKind::Internal);
        assert_eq!(Error::arg("k", "must be positive").kind(), ErrorKind::InvalidInput);
        let missing = Error::MissingColumn { column: "y".into(), available: "a, b".into() };
        assert_eq!(missing.kind(), ErrorKind::NotFound);
    }
}
