//! `secondrow-serve`: SecondRow's model server.
//!
//! It speaks KServe's V1 protocol and the Open Inference Protocol (V2) over REST, JSON and binary
//! tensors, with the model repository extension and Prometheus metrics on the same port.
//! Where to start reading:
//! - [`repository::Repository`]: loaded models and versions, traffic (default version, canary), the
//!   inference path (input checks, concurrency limit, batching, metrics). Lock-free for readers.
//! - [`runtime`]: the [`runtime::Runtime`] trait and its implementations: ONNX through tract, ONNX-ML
//!   graphs (tree ensembles, linear models) evaluated natively by [`native`], SecondRow's own model files.
//! - [`http`]: the axum router, wire formats and the one error → status table.
//! - [`tensor`]: V2 datatypes and their JSON and binary codecs.
//! - [`batch`]: dynamic batching; [`metrics`]: the Prometheus counters; [`observer`]: the hook that
//!   sees sampled inferences (prediction logging, monitoring).
//!
//! This crate does not know the engine or the metadata store: the `secondrow` binary hands it files.

pub mod batch;
pub mod error;
pub mod http;
pub mod metrics;
pub mod native;
pub mod observer;
pub mod repository;
pub mod runtime;
pub mod tensor;

pub use error::{Error, ErrorKind, ModelError, Result};
pub use http::{router, serve, HttpOptions};
pub use repository::{ModelOptions, Repository};
