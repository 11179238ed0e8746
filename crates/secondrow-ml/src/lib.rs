//! SecondRow's built-in ML components.
//!
//! The `secondrow` binary calls [`run_component`] for `secondrow component NAME --arg value ...`;
//! kfp pipelines reach the same code through `components/NAME.yaml`, whose container runs
//! `secondrow component NAME --executor-input {{$}}`.
//!
//! Where to start reading:
//! - [`component`]: the catalogue ([`component::spec`]), argument/executor-input parsing and output
//!   staging ([`component::invocation`]), and the component bodies ([`component::run`]).
//! - [`table`]: CSV/Parquet in and out through Arrow; [`Table`] and the feature [`Matrix`].
//! - [`stats`], [`schema`], [`transform`], [`split`]: data steps.
//! - [`estimator`]: the algorithms; [`model`]: the versioned model file ([`Model`], [`load_model`]).
//! - [`metrics`], [`report`]: evaluation and Markdown/HTML reports; [`onnx`]: ONNX export.
//!
//! Invariants: a failed component leaves no output files (outputs are staged and renamed on success);
//! errors name the file, column or argument at fault; nothing here panics on user input.

pub mod component;
pub mod error;
pub mod estimator;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod params;
pub mod report;
pub mod rng;
pub mod schema;
pub mod split;
pub mod stats;
pub mod table;
pub mod transform;

pub use component::run::{train_model, train_model_transformed};
pub use component::{component_names, component_yaml, run_component, usage};
pub use error::{Error, ErrorKind, Result};
pub use model::{load_model, Model, Predictions};
pub use params::Params;
pub use table::{Column, ColumnValues, Matrix, Table, TableFormat};
pub use transform::{TransformSpec, Transformer};
