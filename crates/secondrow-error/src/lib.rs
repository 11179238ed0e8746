//! The one error classification of SecondRow.
//!
//! Every library crate keeps its own `thiserror` enum (its variants name the entity that failed), and
//! each of those enums has a `kind(&self) -> ErrorKind`. Callers decide what a kind means for them in
//! one table each: the binary maps kinds to exit codes (`crates/secondrow/src/error.rs`), the KFP API and
//! the model server map them to HTTP statuses (`secondrow-api/src/error.rs`, `secondrow-serve/src/http`).
//!
//! The rule that decides a kind: *whose fault is it, and would trying again help?* Input the caller gave
//! (a file, a spec, an argument, an id) that is wrong is `InvalidInput`/`NotFound`/`AlreadyExists`/
//! `FailedPrecondition`; a failure of this machine (a disk, a database, a bug) is `Internal` or
//! `Unavailable` even when it happened while reading the caller's input.
//!
//! This crate has no dependencies and no IO.

use std::fmt;

/// What kind of failure an error is, independent of CLI, HTTP or gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is malformed or does not meet what is asked of it (a bad spec, argument, parameter,
    /// data file or request body).
    InvalidInput,
    /// A named thing (run, model, file, column, component) does not exist.
    NotFound,
    /// Creating something that exists already.
    AlreadyExists,
    /// The request is well-formed but the target is in a state that does not allow it (resuming a
    /// finished run).
    FailedPrecondition,
    /// No valid credentials were given.
    Unauthenticated,
    /// Valid credentials that do not allow this.
    PermissionDenied,
    /// The input is larger than a configured limit.
    TooLarge,
    /// The service cannot do it now (a model that failed to load, shutting down); trying later may work.
    Unavailable,
    /// A failure on this side: IO, database, a broken invariant. Never the caller's fault.
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order (for exhaustive tables in tests).
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::InvalidInput,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::FailedPrecondition,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::TooLarge,
        ErrorKind::Unavailable,
        ErrorKind::Internal,
    ];

    /// True when the caller's input (or credentials) caused the failure; false for `Unavailable` and
    /// `Internal`.
    pub fn is_caller_error(self) -> bool {
        !matches!(self, ErrorKind::Unavailable | ErrorKind::Internal)
    }

    /// A stable snake_case name (`invalid_input`, `not_found`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    /// The kind of an IO failure: a missing file is `NotFound`, a refused one `PermissionDenied`, the
    /// rest `Internal`. Use it only for paths the caller named; IO on the program's own files is
    /// `Internal` whatever happened.
    pub fn of_io(e: &std::io::Error) -> ErrorKind {
        match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Internal,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_only_unavailable_and_internal_are_ours() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        let ours: Vec<_> = ErrorKind::ALL.into_iter().filter(|k| !k.is_caller_error()).collect();
        assert_eq!(ours, [ErrorKind::Unavailable, ErrorKind::Internal]);
    }

    #[test]
    fn io_errors_are_classified_by_their_kind() {
        let e = |k| std::io::Error::new(k, "x");
        assert_eq!(ErrorKind::of_io(&e(std::io::ErrorKind::NotFound)), ErrorKind::NotFound);
        assert_eq!(ErrorKind::of_io(&e(std::io::ErrorKind::PermissionDenied)), ErrorKind::PermissionDenied);
        assert_eq!(ErrorKind::of_io(&e(std::io::ErrorKind::StorageFull)), ErrorKind::Internal);
    }
}
