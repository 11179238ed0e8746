//! Distributed training jobs written as Kubeflow Training Operator v1 YAML (`kubeflow.org/v1`):
//! `PyTorchJob`, `TFJob`, `MPIJob`, `JAXJob`, `XGBoostJob`.
//!
//! - [`job`] — the typed model, parsed from YAML and validated as the operator's webhooks do (each error
//!   names the field path), with the operator's defaults applied.
//! - [`env`] — the environment each replica's framework container gets (peers on loopback, each replica
//!   with its own port), and the MPI hostfile.
//! - [`status`] — restart decisions (`restartPolicy`, ExitCode's retryable codes), success and failure per
//!   kind, and the job's `status` (conditions with reasons, replica statuses).
//!
//! No IO: running replicas, storing jobs, the CLI and the API live elsewhere.

pub mod env;
pub mod error;
pub mod job;
pub mod status;

pub use env::{Placement, ReplicaId};
pub use error::{Result, TrainError};
pub use job::{JobKind, ReplicaGroup, ReplicaType, RestartPolicy, TrainingJob};
pub use status::{Condition, ConditionType, JobStatus, Outcome, ReplicaCounts};
