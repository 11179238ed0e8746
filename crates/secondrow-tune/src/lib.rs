//! Hyperparameter tuning with Katib's `Experiment` (kubeflow.org/v1beta1) as the input format.
//!
//! - [`experiment`] — the typed model, Katib's validation rules (errors name the field path) and
//!   `${trialParameters.x}` substitution into the trial template.
//! - [`space`] — the typed search space and its unit-cube encoding.
//! - [`suggest`] — the algorithms (`grid`, `random`, `sobol`, `tpe`, `multivariate-tpe`,
//!   `bayesianoptimization`, `cmaes`, `hyperband`) behind [`suggest::Suggester`].
//! - [`earlystop`] — `medianstop`.
//! - [`metrics`] — Katib's StdOut/File collectors as pure parsers.
//!
//! No IO: running trials, storing them and the CLI/API live elsewhere.

pub mod earlystop;
pub mod error;
pub mod experiment;
pub mod math;
pub mod metrics;
pub mod space;
pub mod suggest;

pub use error::{Result, TuneError};
pub use experiment::{Direction, Experiment};
pub use space::{Assignment, Space, Value};
pub use suggest::{build, build_named, Suggester, Trial, TrialState};
