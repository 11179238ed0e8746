//! Row types of the metadata store and the state enums they carry. Records serialize to the JSON the CLI
//! prints and the server's record view sends, and deserialize from it (`secondrow --server` reads them back).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{json_col, Result, StoreError};

/// A state or kind name that is not one of the enum's (a corrupt row, or a newer writer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

impl UnknownName {
    fn new(what: &'static str, name: &str) -> UnknownName {
        UnknownName { what, name: name.to_owned() }
    }
}

/// Run states, named as KFP's `V2beta1RuntimeState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunState {
    Pending,
    Running,
    Succeeded,
    Skipped,
    Failed,
    Canceling,
    Canceled,
    Paused,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "PENDING",
            RunState::Running => "RUNNING",
            RunState::Succeeded => "SUCCEEDED",
            RunState::Skipped => "SKIPPED",
            RunState::Failed => "FAILED",
            RunState::Canceling => "CANCELING",
            RunState::Canceled => "CANCELED",
            RunState::Paused => "PAUSED",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, RunState::Succeeded | RunState::Skipped | RunState::Failed | RunState::Canceled)
    }
}

impl FromStr for RunState {
    type Err = UnknownName;
    fn from_str(s: &str) -> std::result::Result<Self, UnknownName> {
        Ok(match s {
            "PENDING" => RunState::Pending,
            "RUNNING" => RunState::Running,
            "SUCCEEDED" => RunState::Succeeded,
            "SKIPPED" => RunState::Skipped,
            "FAILED" => RunState::Failed,
            "CANCELING" => RunState::Canceling,
            "CANCELED" => RunState::Canceled,
            "PAUSED" => RunState::Paused,
            other => return Err(UnknownName::new("run state", other)),
        })
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Task states: KFP's runtime states plus CACHED (outputs reused from an earlier execution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    Pending,
    Running,
    Succeeded,
    Cached,
    Skipped,
    Failed,
    Canceled,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "PENDING",
            TaskState::Running => "RUNNING",
            TaskState::Succeeded => "SUCCEEDED",
            TaskState::Cached => "CACHED",
            TaskState::Skipped => "SKIPPED",
            TaskState::Failed => "FAILED",
            TaskState::Canceled => "CANCELED",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, TaskState::Pending | TaskState::Running)
    }

    /// Finished with outputs available.
    pub fn is_success(self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Cached)
    }
}

impl FromStr for TaskState {
    type Err = UnknownName;
    fn from_str(s: &str) -> std::result::Result<Self, UnknownName> {
        Ok(match s {
            "PENDING" => TaskState::Pending,
            "RUNNING" => TaskState::Running,
            "SUCCEEDED" => TaskState::Succeeded,
            "CACHED" => TaskState::Cached,
            "SKIPPED" => TaskState::Skipped,
            "FAILED" => TaskState::Failed,
            "CANCELED" => TaskState::Canceled,
            other => return Err(UnknownName::new("task state", other)),
        })
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a task row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// A container executor run as a process.
    Container,
    /// An importer executor: registers an existing URI.
    Importer,
    /// A DAG component (nested pipeline, condition branch, exit-handler body).
    Dag,
    /// A ParallelFor task; its iterations are children.
    Loop,
    /// One iteration of a ParallelFor.
    Iteration,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Container => "container",
            TaskKind::Importer => "importer",
            TaskKind::Dag => "dag",
            TaskKind::Loop => "loop",
            TaskKind::Iteration => "iteration",
        }
    }
}

impl FromStr for TaskKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> std::result::Result<Self, UnknownName> {
        Ok(match s {
            "container" => TaskKind::Container,
            "importer" => TaskKind::Importer,
            "dag" => TaskKind::Dag,
            "loop" => TaskKind::Loop,
            "iteration" => TaskKind::Iteration,
            other => return Err(UnknownName::new("task kind", other)),
        })
    }
}

fn parse<T: FromStr<Err = UnknownName>>(row: &AnyRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    s.parse().map_err(|e: UnknownName| StoreError::Corrupt(e.to_string()))
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct Experiment {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub storage_state: String,
    pub created_at: i64,
}

/// A run to create.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub experiment_id: Option<String>,
    pub pipeline_id: Option<String>,
    pub pipeline_version_id: Option<String>,
    pub pipeline_name: String,
    /// The pipeline spec document (JSON), as validated.
    pub spec: Value,
    /// Bound run parameters (declared types, defaults applied).
    pub parameters: Map<String, Value>,
    /// Engine options that must survive a resume (caching, parallelism, pipeline root…).
    pub options: Value,
    pub recurring_run_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub experiment_id: Option<String>,
    pub pipeline_id: Option<String>,
    pub pipeline_version_id: Option<String>,
    pub pipeline_name: String,
    /// Not serialized (large, and the API serves it elsewhere); `Null` when deserialized.
    #[serde(skip)]
    pub spec: Value,
    pub parameters: Value,
    pub options: Value,
    pub state: RunState,
    pub error: Option<String>,
    pub outputs: Option<Value>,
    pub storage_state: String,
    pub recurring_run_id: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl RunRecord {
    pub(crate) fn from_row(r: &AnyRow) -> Result<RunRecord> {
        Ok(RunRecord {
            id: r.try_get("id")?,
            display_name: r.try_get("display_name")?,
            description: r.try_get("description")?,
            namespace: r.try_get("namespace")?,
            experiment_id: r.try_get("experiment_id")?,
            pipeline_id: r.try_get("pipeline_id")?,
            pipeline_version_id: r.try_get("pipeline_version_id")?,
            pipeline_name: r.try_get("pipeline_name")?,
            spec: json_col(r, "spec")?.unwrap_or(Value::Null),
            parameters: json_col(r, "parameters")?.unwrap_or(Value::Null),
            options: json_col(r, "options")?.unwrap_or(Value::Null),
            state: parse(r, "state")?,
            error: r.try_get("error")?,
            outputs: json_col(r, "outputs")?,
            storage_state: r.try_get("storage_state")?,
            recurring_run_id: r.try_get("recurring_run_id")?,
            created_at: r.try_get("created_at")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
        })
    }
}

/// The fields of a task row written when it starts (or is recorded without running).
#[derive(Debug, Clone)]
pub struct TaskStart<'a> {
    pub run_id: &'a str,
    pub parent_id: Option<&'a str>,
    /// Unique within the run: task keys from the root, `/`-separated, iterations as `for-loop-2.3`.
    pub path: &'a str,
    pub task_key: &'a str,
    pub display_name: &'a str,
    pub kind: TaskKind,
    pub state: TaskState,
    pub attempt: i64,
    pub cache_key: Option<&'a str>,
    pub inputs: Option<&'a Value>,
}

/// An artifact a task produced, with an id chosen by the caller.
#[derive(Debug, Clone)]
pub struct NewArtifact {
    pub id: String,
    /// The task output it was produced under.
    pub output_name: String,
    pub name: String,
    pub uri: String,
    pub schema_title: String,
    pub schema_version: String,
    pub metadata: Value,
}

/// Everything written when a task finishes, in one transaction.
pub struct TaskFinish<'a> {
    pub run_id: &'a str,
    pub task_id: &'a str,
    pub state: TaskState,
    pub error: Option<&'a str>,
    pub cached: bool,
    pub outputs: Option<&'a Value>,
    pub new_artifacts: &'a [NewArtifact],
    /// Existing artifacts this task outputs again (cache hits, DAG outputs): (output name, artifact id).
    pub output_artifact_refs: &'a [(String, String)],
    /// Artifacts it consumed: (input name, artifact id).
    pub input_artifact_refs: &'a [(String, String)],
    /// Record `outputs` in the cache under this key.
    pub cache_key_to_record: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub run_id: String,
    pub parent_id: Option<String>,
    pub path: String,
    pub task_key: String,
    pub display_name: String,
    pub kind: TaskKind,
    pub state: TaskState,
    pub attempts: i64,
    pub cached: bool,
    pub cache_key: Option<String>,
    pub inputs: Option<Value>,
    pub outputs: Option<Value>,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl TaskRecord {
    pub(crate) fn from_row(r: &AnyRow) -> Result<TaskRecord> {
        Ok(TaskRecord {
            id: r.try_get("id")?,
            run_id: r.try_get("run_id")?,
            parent_id: r.try_get("parent_id")?,
            path: r.try_get("path")?,
            task_key: r.try_get("task_key")?,
            display_name: r.try_get("display_name")?,
            kind: parse(r, "kind")?,
            state: parse(r, "state")?,
            attempts: r.try_get("attempts")?,
            cached: r.try_get::<i64, _>("cached")? != 0,
            cache_key: r.try_get("cache_key")?,
            inputs: json_col(r, "inputs")?,
            outputs: json_col(r, "outputs")?,
            error: r.try_get("error")?,
            created_at: r.try_get("created_at")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArtifactRecord {
    pub id: String,
    pub run_id: String,
    pub task_id: Option<String>,
    pub name: String,
    pub uri: String,
    pub schema_title: String,
    pub schema_version: String,
    pub metadata: Value,
    pub created_at: i64,
}

impl ArtifactRecord {
    pub(crate) fn from_row(r: &AnyRow) -> Result<ArtifactRecord> {
        Ok(ArtifactRecord {
            id: r.try_get("id")?,
            run_id: r.try_get("run_id")?,
            task_id: r.try_get("task_id")?,
            name: r.try_get("name")?,
            uri: r.try_get("uri")?,
            schema_title: r.try_get("schema_title")?,
            schema_version: r.try_get("schema_version")?,
            metadata: json_col(r, "metadata")?.unwrap_or(Value::Null),
            created_at: r.try_get("created_at")?,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct EventRecord {
    pub task_id: String,
    pub artifact_id: String,
    /// `INPUT` or `OUTPUT`.
    pub kind: String,
    pub name: String,
    pub at: i64,
}
