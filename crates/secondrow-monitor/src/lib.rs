//! `secondrow-monitor`: model monitoring computations, with no IO beyond the prediction log's files.
//!
//! - [`cloudevents`]: the prediction log as CloudEvents in KServe's inference logger layout.
//! - [`log`]: the prediction log, Parquet batches of sampled requests per deployment version, and the
//!   sliding window read back from it.
//! - [`stats`]: PSI, two-sample Kolmogorov–Smirnov, chi-square and their p-values.
//! - [`drift`]: drift of a window of inputs against the training data (raw or its statistics).
//! - [`performance`]: accuracy / RMSE of logged predictions against labels posted later.
//! - [`report`]: the drift report as Markdown and HTML.
//! - [`rule`]: monitor rule conditions (`psi(x) > 0.2 or accuracy < 0.8`).
//! - [`timeline`]: the same figures per time span of the window (drift and performance over time).

pub mod cloudevents;
pub mod drift;
pub mod error;
pub mod log;
pub mod performance;
pub mod report;
pub mod rule;
pub mod stats;
pub mod timeline;

pub use error::{MonitorError, Result};
