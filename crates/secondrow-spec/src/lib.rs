//! The KFP pipeline IR, as the kfp SDK 2.14 compiler writes it, and everything about it that needs no IO.
//!
//! Start at [`Pipeline::from_yaml`]: it parses the raw [`ir::PipelineSpec`] and validates it into a
//! [`Pipeline`], or returns a [`SpecError`] listing every problem with the task and field it concerns; the
//! pipeline carries its resolved task [`graph`], which is what the engine executes.
//! [`cel`] evaluates trigger conditions and selectors, [`placeholder`] parses and expands container
//! arguments, and [`value`] coerces parameter values to their declared types.
//!
//! This crate performs no IO and depends on no other SecondRow crate but the dependency-free
//! `secondrow-error` (the [`ErrorKind`] every crate's error reports).

pub mod cel;
pub mod graph;
pub mod ir;
pub mod lightweight;
pub mod limits;
pub mod names;
pub mod placeholder;
pub mod platform;
pub mod resources;
pub mod validate;
pub mod value;

use std::fmt;

pub use ir::{ParameterType, PipelineSpec};
pub use secondrow_error::ErrorKind;
pub use validate::{upstream_tasks, ParsedExecutor, Pipeline};

/// One problem found in a spec or in run parameters: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// A dotted path into the spec (`root.dag.tasks.train.inputs.parameters.lr`) or a parameter name.
    pub location: String,
    pub message: String,
}

impl Problem {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { location: location.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Not YAML/JSON, or not shaped like a PipelineSpec (the message names line and column when known).
    #[error("not a valid pipeline spec: {0}")]
    Syntax(String),
    #[error("invalid pipeline spec:{}", list(.0))]
    Invalid(Vec<Problem>),
    #[error("invalid run parameters:{}", list(.0))]
    Parameters(Vec<Problem>),
}

impl SpecError {
    /// Every spec error is the input's fault.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }

    pub fn problems(&self) -> &[Problem] {
        match self {
            SpecError::Syntax(_) => &[],
            SpecError::Invalid(p) | SpecError::Parameters(p) => p,
        }
    }
}

#[cfg(test)]
mod tests;
