//! The run engine: turns a validated pipeline and its parameters into finished tasks.
//!
//! [`Engine::submit`] records a run (PENDING) in the store; [`Engine::execute`] drives it to a terminal
//! state. One driver ([`run`]) owns a run's state: it decides which tasks are ready, resolves their inputs
//! ([`task`]), consults the cache ([`cache`]), spawns processes through [`process`] (the only module that
//! starts processes), applies retries ([`retry`]) and writes every transition to the store.
//! [`Engine::execute`] on a run that already has tasks resumes it: finished tasks are adopted, not re-run.
//!
//! The engine speaks no HTTP and draws no progress bars; it emits [`Progress`] events instead.

pub mod cache;
pub mod data_import;
pub mod envs;
pub mod kubernetes;
pub mod platform;
pub mod process;
pub mod python;
pub mod registry;
pub mod retry;
mod run;
pub mod sandbox;
pub mod staging;
pub mod task;
pub mod training;
pub mod tune;
pub mod warm;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Semaphore};

use secondrow_spec::{Pipeline, SpecError};
use secondrow_store::{ArtifactStore, NewRun, RunRecord, RunState, Store, StoreError, TaskState};

pub use process::LogLine;

/// How many task nodes the runs executing in this process hold in memory right now (all engines
/// together): a bound that hostile specs must not blow up (loop iterations are created as they can start).
pub fn live_nodes() -> usize {
    run::live_nodes()
}
pub use task::{ArtifactRef, IoValues};
pub use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("run `{0}` is already finished ({1}); nothing to resume")]
    AlreadyFinished(String, RunState),
    /// A value could not be encoded as JSON for the store.
    #[error("encoding a value for the store: {0}")]
    Encode(#[source] serde_json::Error),
    /// A task attempt's future panicked (a bug in the engine).
    #[error("a task attempt panicked: {0}")]
    AttemptPanicked(String),
    /// Tasks remain but none can start and none is running (a bug in the driver).
    #[error("run stalled: tasks remain but none can start")]
    Stalled,
}

impl EngineError {
    /// The class of the error (the store's and the spec's own for theirs).
    pub fn kind(&self) -> secondrow_error::ErrorKind {
        match self {
            EngineError::Store(e) => e.kind(),
            EngineError::Spec(e) => e.kind(),
            EngineError::AlreadyFinished(..) => secondrow_error::ErrorKind::FailedPrecondition,
            EngineError::Encode(_) | EngineError::AttemptPanicked(_) | EngineError::Stalled => {
                secondrow_error::ErrorKind::Internal
            }
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where task logs go (`<logs_root>/<run id>/<task path>/stdout|stderr`).
    pub logs_root: PathBuf,
    /// A folder the engine may write helper files into (the `python3` shim).
    pub work_dir: PathBuf,
    /// Default maximum number of task processes running at once.
    pub parallelism: usize,
    /// The Python that runs kfp lightweight components; `python3` from PATH when unset.
    pub python: Option<PathBuf>,
    /// How lightweight components run: in warm fork-server workers (default) or as cold processes.
    pub python_mode: PythonMode,
    /// Where cached environments for `packages_to_install` live.
    pub envs_dir: PathBuf,
    /// The task sandbox and import rules (off for local runs; `secondrow server` turns it on).
    pub sandbox: sandbox::SandboxConfig,
    /// The most items one ParallelFor may iterate over ([`DEFAULT_MAX_LOOP_ITEMS`] by default).
    pub max_loop_items: usize,
}

/// The default bound on a ParallelFor's items: far above real pipelines, low enough that a hostile or mistaken
/// items list cannot make one run hold millions of iterations.
pub const DEFAULT_MAX_LOOP_ITEMS: usize = 10_000;

impl EngineConfig {
    /// Where kfp-kubernetes PVCs live as folders: `<work_dir>/volumes/<namespace>/<name>`.
    pub fn volumes_root(&self) -> PathBuf {
        self.work_dir.join("volumes")
    }
}

/// How kfp lightweight Python components are executed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PythonMode {
    /// A long-lived worker per environment forks a fresh child per task (milliseconds of overhead).
    #[default]
    Warm,
    /// A new interpreter per task, exactly the compiled command (minus the pip prelude).
    Cold,
}

/// Per-run options, stored with the run so that a resume behaves like the original.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunOptions {
    /// Disable cache look-ups and writes for this run.
    #[serde(default)]
    pub no_cache: bool,
    /// Overrides the engine's parallelism for this run.
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// When the schedule that started this run fired (epoch ms): `{{$.pipeline_job_schedule_time_utc}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<i64>,
}

/// What to record about a new run besides the pipeline and parameters.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    pub display_name: Option<String>,
    pub description: String,
    pub namespace: String,
    pub experiment_id: Option<String>,
    pub pipeline_id: Option<String>,
    pub pipeline_version_id: Option<String>,
    pub recurring_run_id: Option<String>,
    pub options: RunOptions,
}

/// Live events of a run, for progress displays.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The run now has this many more executable tasks (containers and importers) than announced before.
    Planned {
        count: usize,
    },
    Started {
        path: String,
        display_name: String,
        attempt: i64,
    },
    Retrying {
        path: String,
        attempt: i64,
        delay_ms: u64,
        error: String,
    },
    Finished {
        path: String,
        display_name: String,
        state: TaskState,
        duration_ms: u64,
        error: Option<String>,
    },
    Log(LogLine),
}

/// How the caller controls and observes one execution.
pub struct RunControl {
    /// Cancelled to cancel the run: its task process groups are killed and it ends CANCELED.
    pub cancel: CancellationToken,
    pub progress: Option<mpsc::UnboundedSender<Progress>>,
    /// Tail task output live through `progress`.
    pub tail_logs: bool,
}

impl RunControl {
    /// No events; `cancel` cancels the run.
    pub fn new(cancel: CancellationToken) -> RunControl {
        RunControl { cancel, progress: None, tail_logs: false }
    }

    /// No cancel, no events.
    pub fn detached() -> RunControl {
        RunControl::new(CancellationToken::new())
    }
}

pub(crate) struct Inner {
    pub store: Store,
    pub artifacts: ArtifactStore,
    pub config: EngineConfig,
    pub slots: Arc<Semaphore>,
    pub python: tokio::sync::OnceCell<python::PythonEnv>,
    pub warm: warm::WarmPool,
    pub envs: envs::EnvManager,
    /// Set when attempts run as Kubernetes Pods instead of local processes.
    pub kube: Option<Arc<kubernetes::KubeExecutor>>,
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    pub fn new(store: Store, artifacts: ArtifactStore, config: EngineConfig) -> Engine {
        Engine::with_executor(store, artifacts, config, None)
    }

    /// An engine whose task attempts run as Pods through `kube` (local processes when `None`).
    pub fn with_executor(
        store: Store,
        artifacts: ArtifactStore,
        config: EngineConfig,
        kube: Option<kubernetes::KubeExecutor>,
    ) -> Engine {
        let kube = kube.map(Arc::new);
        let slots = Arc::new(Semaphore::new(config.parallelism.max(1)));
        let warm = warm::WarmPool::new(config.work_dir.clone());
        let mut envs = envs::EnvManager::new(config.envs_dir.clone());
        if config.sandbox.enabled {
            envs = envs.sandboxed(config.sandbox.task_user);
        }
        Engine {
            inner: Arc::new(Inner { store, artifacts, config, slots, python: Default::default(), warm, envs, kube }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn artifacts(&self) -> &ArtifactStore {
        &self.inner.artifacts
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The cached `packages_to_install` environments.
    pub fn envs(&self) -> &envs::EnvManager {
        &self.inner.envs
    }

    /// The warm Python workers.
    pub fn warm_pool(&self) -> &warm::WarmPool {
        &self.inner.warm
    }

    /// Records the pipeline (and a version keyed by content) and a new PENDING run. Parameters must
    /// already be bound ([`Pipeline::bind_parameters`]); nothing is written if anything is invalid.
    pub async fn submit(
        &self,
        pipeline: &Pipeline,
        parameters: Map<String, Value>,
        sub: Submission,
    ) -> Result<RunRecord> {
        let store = &self.inner.store;
        let digest = hex::encode(Sha256::digest(pipeline.document.to_string().as_bytes()));
        let description = pipeline.spec.pipeline_info.description.clone().unwrap_or_default();
        let (pipeline_id, version_id) = match (&sub.pipeline_id, &sub.pipeline_version_id) {
            (Some(p), Some(v)) => (p.clone(), v.clone()),
            _ => {
                store
                    .record_pipeline_version(pipeline.name(), &description, &sub.namespace, &pipeline.document, &digest)
                    .await?
            }
        };
        let experiment_id = match sub.experiment_id {
            Some(e) => e,
            None => store.ensure_experiment("Default", &sub.namespace).await?.id,
        };
        let display_name = sub
            .display_name
            .unwrap_or_else(|| format!("{} {}", pipeline.name(), chrono::Utc::now().format("%Y-%m-%d %H-%M-%S")));
        let mut spec_doc = pipeline.document.clone();
        if let Some(platform) = &pipeline.platform_spec {
            spec_doc = serde_json::json!({"pipeline_spec": spec_doc, "platform_spec": platform});
        }
        let run = NewRun {
            display_name,
            description: sub.description,
            namespace: sub.namespace,
            experiment_id: Some(experiment_id),
            pipeline_id: Some(pipeline_id),
            pipeline_version_id: Some(version_id),
            pipeline_name: pipeline.name().to_owned(),
            spec: spec_doc,
            parameters,
            options: serde_json::to_value(&sub.options).map_err(EngineError::Encode)?,
            recurring_run_id: sub.recurring_run_id,
        };
        Ok(store.create_run(&run).await?)
    }

    /// Drives a run to a terminal state and returns its final record. Tasks that already finished
    /// successfully in an earlier execution of the same run (a crash, a cancel, a failure) are kept.
    pub async fn execute(&self, run_id: &str, control: RunControl) -> Result<RunRecord> {
        let record = self.inner.store.get_run(run_id).await?;
        let pipeline = Arc::new(Pipeline::from_json(&record.spec)?);
        let options: RunOptions = serde_json::from_value(record.options.clone()).unwrap_or_default();
        let outcome = run::RunDriver::new(self.inner.clone(), pipeline, record, options, control).await?.drive().await;
        if let Err(e) = &outcome {
            // Leave the store consistent: an engine error fails the run and closes its open tasks.
            let msg = e.to_string();
            let _ = self.inner.store.close_open_tasks(run_id, TaskState::Failed, &msg).await;
            let _ = self.inner.store.set_run_state(run_id, RunState::Failed, Some(&msg)).await;
        }
        outcome?;
        Ok(self.inner.store.get_run(run_id).await?)
    }

    /// Resumes a run that did not finish (its process was killed) or re-runs the failed part of a
    /// FAILED/CANCELED run: completed tasks are not executed again.
    pub async fn resume(&self, run_id: &str, control: RunControl, allow_finished: bool) -> Result<RunRecord> {
        let record = self.inner.store.get_run(run_id).await?;
        if record.state == RunState::Succeeded || (record.state.is_terminal() && !allow_finished) {
            return Err(EngineError::AlreadyFinished(run_id.to_owned(), record.state));
        }
        self.execute(run_id, control).await
    }
}
