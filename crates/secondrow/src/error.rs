//! The binary's error and the one table from error kind to exit code.
//!
//! A [`Failure`] is an `anyhow` chain (the message, with the context added on the way up) and the
//! [`ErrorKind`] of the error it started from. Library errors bring their own kind (`kind()` on each
//! crate's error); the binary's own checks say theirs ([`Failure::usage`]); anything else is `Internal`.
//! [`Context`] adds context the way `anyhow::Context` does, keeping the kind, so `main` never inspects
//! the chain: it prints it and looks the kind up in [`exit_code`].

use std::fmt;
use std::process::ExitCode;

use secondrow_error::ErrorKind;

/// An error on its way to `main`: what to print and how to exit.
pub struct Failure {
    kind: ErrorKind,
    error: anyhow::Error,
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

/// Exit status of a failure of `kind`: 2 when the user's input (arguments, files, ids, credentials) was
/// wrong, 1 when something failed on this side. (0 is success and 1 also a failed or canceled run.)
pub fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidInput
        | ErrorKind::NotFound
        | ErrorKind::AlreadyExists
        | ErrorKind::FailedPrecondition
        | ErrorKind::Unauthenticated
        | ErrorKind::PermissionDenied
        | ErrorKind::TooLarge => 2,
        ErrorKind::Unavailable | ErrorKind::Internal => 1,
    }
}

impl Failure {
    pub fn new(kind: ErrorKind, error: impl Into<anyhow::Error>) -> Failure {
        Failure { kind, error: error.into() }
    }

    /// The user's input was wrong (exit 2).
    pub fn usage(message: impl fmt::Display) -> Failure {
        Failure::new(ErrorKind::InvalidInput, anyhow::Error::msg(message.to_string()))
    }

    /// Something failed on this side (exit 1).
    pub fn internal(message: impl fmt::Display) -> Failure {
        Failure::new(ErrorKind::Internal, anyhow::Error::msg(message.to_string()))
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(exit_code(self.kind()))
    }

    fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Failure {
        Failure { kind: self.kind, error: self.error.context(context) }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({})", self.error, self.kind)
    }
}

/// Errors that know their kind.
macro_rules! classified {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Failure {
                Failure { kind: e.kind(), error: e.into() }
            }
        }
    )*};
}

classified!(
    secondrow_spec::SpecError,
    secondrow_store::StoreError,
    secondrow_store::registry::RegistryError,
    secondrow_store::data::DataError,
    secondrow_engine::EngineError,
    secondrow_engine::kubernetes::KubeError,
    secondrow_engine::tune::TuningError,
    secondrow_ml::Error,
    secondrow_serve::Error,
    secondrow_api::ApiError,
    crate::client::ClientError,
);

/// Errors of the binary's own plumbing (a runtime task, local IO, JSON output): this side's.
macro_rules! internal {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Failure {
                Failure { kind: ErrorKind::Internal, error: e.into() }
            }
        }
    )*};
}

internal!(anyhow::Error, std::io::Error, serde_json::Error, tokio::task::JoinError);

/// `anyhow::Context` for [`Failure`]: adds a line of context and keeps the kind.
pub trait Context<T> {
    fn context<C: fmt::Display + Send + Sync + 'static>(self, context: C) -> Result<T>;
    fn with_context<C: fmt::Display + Send + Sync + 'static, F: FnOnce() -> C>(self, f: F) -> Result<T>;
}

impl<T, E: Into<Failure>> Context<T> for std::result::Result<T, E> {
    fn context<C: fmt::Display + Send + Sync + 'static>(self, context: C) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: fmt::Display + Send + Sync + 'static, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_errors_exit_2_and_ours_exit_1() {
        for kind in ErrorKind::ALL {
            assert_eq!(exit_code(kind) == 2, kind.is_caller_error(), "{kind}");
            assert!(matches!(exit_code(kind), 1 | 2));
        }
    }

    #[test]
    fn context_keeps_the_kind_of_the_library_error() {
        let e: std::result::Result<(), _> =
            Err(secondrow_store::StoreError::NotFound { kind: "run", id: "abc".into() });
        let e = e.context("looking up the run").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "looking up the run: run `abc` not found");
        let io: std::result::Result<(), std::io::Error> = Err(std::io::Error::other("disk"));
        assert_eq!(io.context("writing").unwrap_err().kind(), ErrorKind::Internal);
        let ml = secondrow_ml::Error::WriteTable { path: "/o.csv".into(), message: "disk full".into() };
        assert_eq!(Failure::from(ml).kind(), ErrorKind::Internal, "an ML IO failure is not invalid input");
    }
}
