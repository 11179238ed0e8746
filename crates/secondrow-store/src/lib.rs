//! Where SecondRow keeps what happened: the metadata store and the artifact store.
//!
//! [`Store`] is the metadata database — experiments, pipelines and versions, runs and their state history,
//! tasks, artifacts, lineage events and the cache index — behind sqlx's `Any` driver, so one body of
//! portable SQL serves SQLite (`sqlite://…`, the embedded default) and PostgreSQL (`postgres://…`).
//! The schema ships inside the binary as migrations, one folder per dialect.
//! Every multi-row change (finishing a task with its artifacts and events) is one transaction.
//!
//! [`ArtifactStore`] reaches artifact bytes through `object_store`.
//!
//! This crate knows nothing about scheduling; it stores what the engine tells it.

mod artifact_store;
pub mod data;
pub mod deployments;
mod listing;
pub mod model_cache;
pub mod monitor_rules;
pub mod notebooks;
mod records;
mod recurring;
pub mod registry;
mod resources;
mod run_list;
mod secrets;
mod stored_enum;
mod tokens;
pub mod training_jobs;
pub mod tuning;

use std::str::FromStr;

use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

pub use artifact_store::{parse_s3_uri, ArtifactStore, S3Credentials, S3Options, Uploaded};
pub use listing::{ColumnKind, ListFilter, ListPage, ListRequest, Listed};
pub use records::*;
pub use recurring::{NewRecurringRun, RecurringRunRecord};
pub use resources::{PipelineRecord, PipelineVersionRecord};
pub use run_list::{CmpOp, Cursor, RunColumn, RunFilter, RunListPage, RunListQuery, RunListRow, RunSort, SqlValue};
pub use secondrow_error::ErrorKind;
pub use secrets::{validate_secret_key, validate_secret_name, SecretInfo, SecretKind};
pub use tokens::{token_digest, validate_namespace, ApiToken};
pub use training_jobs::{
    NewTrainingJob, ReplicaRecord, ReplicaState, ReplicaUpdate, TrainingJobRecord, TrainingJobState, TrainingJobUpdate,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} `{id}` not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} `{id}` already exists")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("artifact store: {0}")]
    Artifacts(String),
}

impl StoreError {
    /// The class of the error: the first three are the caller's; a database, migration, corrupt record
    /// or artifact-store failure is this side's.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound { .. } => ErrorKind::NotFound,
            StoreError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            StoreError::InvalidArgument(_) => ErrorKind::InvalidInput,
            StoreError::Database(_) | StoreError::Migrate(_) | StoreError::Corrupt(_) | StoreError::Artifacts(_) => {
                ErrorKind::Internal
            }
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch, the store's time unit.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The metadata store. Cheap to clone (a connection pool).
#[derive(Clone)]
pub struct Store {
    /// Writes and transactions (and everything on PostgreSQL).
    pool: AnyPool,
    /// Plain reads. On SQLite a pool of its own, so that API reads never queue behind the engine's writers
    /// waiting for SQLite's single write lock; on PostgreSQL the same pool as `pool`.
    read_pool: AnyPool,
    backend: Backend,
}

/// A pool of SQLite connections that wait up to 10 s for a lock and run `pragma` when they open.
async fn sqlite_pool(url: &str, max: u32, pragma: &'static str) -> Result<AnyPool> {
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                conn.execute(pragma).await?;
                Ok(())
            })
        })
        .connect(url)
        .await?;
    Ok(pool)
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::InvalidArgument(format!(
                "unsupported database URL `{url}` (use sqlite:// or postgres://)"
            )));
        };
        if backend == Backend::Sqlite {
            // Create the file on first use; WAL lets readers (CLI, API) run beside the engine's writes.
            let file_url = if url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") };
            let pool = sqlite_pool(&file_url, 8, "PRAGMA synchronous = NORMAL").await?;
            pool.execute("PRAGMA journal_mode = WAL").await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            if url.contains(":memory:") || url.contains("mode=memory") {
                // Every connection to an in-memory database is a database of its own.
                return Ok(Store { read_pool: pool.clone(), pool, backend });
            }
            let read_pool = sqlite_pool(&file_url, 4, "PRAGMA query_only = ON").await?;
            return Ok(Store { pool, read_pool, backend });
        }
        let pool = AnyPoolOptions::new().max_connections(16).connect(url).await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Store { read_pool: pool.clone(), pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool for writes and transactions.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for plain reads (see [`Store`]); a read that must see a transaction's own writes uses the
    /// transaction instead.
    pub fn reader(&self) -> &AnyPool {
        &self.read_pool
    }

    // ------------------------------------------------------------ experiments

    /// Returns the experiment named `display_name` in `namespace`, creating it if needed.
    pub async fn ensure_experiment(&self, display_name: &str, namespace: &str) -> Result<Experiment> {
        if let Some(e) = self.find_experiment(display_name, namespace).await? {
            return Ok(e);
        }
        let e = Experiment {
            id: new_id(),
            display_name: display_name.to_owned(),
            description: String::new(),
            namespace: namespace.to_owned(),
            storage_state: "AVAILABLE".into(),
            created_at: now_ms(),
        };
        let inserted = sqlx::query(
            "INSERT INTO experiments (id, display_name, description, namespace, storage_state, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (namespace, display_name) DO NOTHING",
        )
        .bind(&e.id)
        .bind(&e.display_name)
        .bind(&e.description)
        .bind(&e.namespace)
        .bind(&e.storage_state)
        .bind(e.created_at)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            // Lost a race with another creator: theirs is the one.
            return self
                .find_experiment(display_name, namespace)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("experiment `{display_name}` vanished")));
        }
        Ok(e)
    }

    pub async fn find_experiment(&self, display_name: &str, namespace: &str) -> Result<Option<Experiment>> {
        let row = sqlx::query("SELECT * FROM experiments WHERE display_name = $1 AND namespace = $2")
            .bind(display_name)
            .bind(namespace)
            .fetch_optional(self.reader())
            .await?;
        row.map(|r| decode::<Experiment>(&r)).transpose()
    }

    // ------------------------------------------------------------ pipelines

    /// Records a pipeline spec: finds or creates the pipeline by name and a version by content digest.
    ///
    /// Safe under concurrent submissions of the same new pipeline: the inserts come first and skip a row that
    /// exists (`ON CONFLICT DO NOTHING`), then the rows are read back. Writing first also makes SQLite take its
    /// write lock before reading, so the transaction never reads a snapshot another writer has moved past.
    pub async fn record_pipeline_version(
        &self,
        name: &str,
        description: &str,
        namespace: &str,
        spec: &Value,
        digest: &str,
    ) -> Result<(String, String)> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO pipelines (id, name, display_name, description, namespace, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (namespace, name) DO NOTHING",
        )
        .bind(new_id())
        .bind(name)
        .bind(name)
        .bind(description)
        .bind(namespace)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let pipeline_id: String = sqlx::query("SELECT id FROM pipelines WHERE name = $1 AND namespace = $2")
            .bind(name)
            .bind(namespace)
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
        let existing = sqlx::query("SELECT id FROM pipeline_versions WHERE pipeline_id = $1 AND spec_digest = $2")
            .bind(&pipeline_id)
            .bind(digest)
            .fetch_optional(&mut *tx)
            .await?;
        let version_id = match existing {
            Some(r) => r.try_get::<String, _>("id")?,
            None => {
                let vname = format!("{name}-{}", &digest[..digest.len().min(12)]);
                sqlx::query(
                    "INSERT INTO pipeline_versions (id, pipeline_id, name, display_name, description, spec, spec_digest, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (pipeline_id, name) DO NOTHING",
                )
                .bind(new_id())
                .bind(&pipeline_id)
                .bind(&vname)
                .bind(&vname)
                .bind(description)
                .bind(spec.to_string())
                .bind(digest)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                // The concurrent submitter's row, or none when a different spec holds that version name.
                sqlx::query("SELECT id FROM pipeline_versions WHERE pipeline_id = $1 AND spec_digest = $2")
                    .bind(&pipeline_id)
                    .bind(digest)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| StoreError::AlreadyExists { kind: "pipeline version", id: vname.clone() })?
                    .try_get("id")?
            }
        };
        tx.commit().await?;
        Ok((pipeline_id, version_id))
    }

    // ------------------------------------------------------------ runs

    /// Inserts a new run in state PENDING (with its first history entry).
    pub async fn create_run(&self, run: &NewRun) -> Result<RunRecord> {
        let id = new_id();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO runs (id, display_name, description, namespace, experiment_id, pipeline_id, pipeline_version_id,
                               pipeline_name, spec, parameters, options, state, storage_state, recurring_run_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'PENDING', 'AVAILABLE', $12, $13)",
        )
        .bind(&id)
        .bind(&run.display_name)
        .bind(&run.description)
        .bind(&run.namespace)
        .bind(&run.experiment_id)
        .bind(&run.pipeline_id)
        .bind(&run.pipeline_version_id)
        .bind(&run.pipeline_name)
        .bind(run.spec.to_string())
        .bind(Value::Object(run.parameters.clone()).to_string())
        .bind(run.options.to_string())
        .bind(&run.recurring_run_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_history(&mut tx, &id, RunState::Pending, now).await?;
        tx.commit().await?;
        self.get_run(&id).await
    }

    pub async fn get_run(&self, id: &str) -> Result<RunRecord> {
        let row = sqlx::query("SELECT * FROM runs WHERE id = $1").bind(id).fetch_optional(self.reader()).await?;
        match row {
            Some(r) => RunRecord::from_row(&r),
            None => Err(StoreError::NotFound { kind: "run", id: id.to_owned() }),
        }
    }

    /// Finds a run by full id or by a unique id prefix (for the CLI), in any letter case: ids are lower-case,
    /// and LIKE ignores ASCII case on SQLite but not on PostgreSQL.
    pub async fn resolve_run_id(&self, id_or_prefix: &str) -> Result<String> {
        if id_or_prefix.is_empty() || id_or_prefix.contains('%') || id_or_prefix.contains('_') {
            return Err(StoreError::NotFound { kind: "run", id: id_or_prefix.to_owned() });
        }
        let rows = sqlx::query("SELECT id FROM runs WHERE id LIKE $1 LIMIT 2")
            .bind(format!("{}%", id_or_prefix.to_ascii_lowercase()))
            .fetch_all(self.reader())
            .await?;
        match rows.as_slice() {
            [one] => Ok(one.try_get::<String, _>("id")?),
            [] => Err(StoreError::NotFound { kind: "run", id: id_or_prefix.to_owned() }),
            _ => Err(StoreError::InvalidArgument(format!("run id prefix `{id_or_prefix}` is ambiguous"))),
        }
    }

    /// Runs, newest first.
    pub async fn list_runs(&self, limit: i64) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query("SELECT * FROM runs ORDER BY created_at DESC, id LIMIT $1")
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(RunRecord::from_row).collect()
    }

    /// Runs in one of `states` (e.g. the unfinished ones, for resume after a crash).
    pub async fn list_runs_in_states(&self, states: &[RunState]) -> Result<Vec<RunRecord>> {
        let mut out = Vec::new();
        for s in states {
            let rows = sqlx::query("SELECT * FROM runs WHERE state = $1 ORDER BY created_at")
                .bind(s.as_str())
                .fetch_all(self.reader())
                .await?;
            for r in &rows {
                out.push(RunRecord::from_row(r)?);
            }
        }
        Ok(out)
    }

    /// Moves a run to `state`, stamping start/finish times and appending to the state history.
    pub async fn set_run_state(&self, id: &str, state: RunState, error: Option<&str>) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let sql = if state.is_terminal() {
            "UPDATE runs SET state = $1, error = $2, finished_at = $3 WHERE id = $4"
        } else if state == RunState::Running {
            "UPDATE runs SET state = $1, error = $2, started_at = COALESCE(started_at, $3), finished_at = NULL WHERE id = $4"
        } else {
            "UPDATE runs SET state = $1, error = $2, finished_at = NULL, started_at = COALESCE(started_at, $3) WHERE id = $4"
        };
        let done = sqlx::query(sql).bind(state.as_str()).bind(error).bind(now).bind(id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "run", id: id.to_owned() });
        }
        insert_history(&mut tx, id, state, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_run_outputs(&self, id: &str, outputs: &Value) -> Result<()> {
        sqlx::query("UPDATE runs SET outputs = $1 WHERE id = $2")
            .bind(outputs.to_string())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn run_state_history(&self, id: &str) -> Result<Vec<(RunState, i64)>> {
        let rows = sqlx::query("SELECT state, at FROM run_state_history WHERE run_id = $1 ORDER BY at, id")
            .bind(id)
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get("state")?;
                Ok((
                    RunState::from_str(&s).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    r.try_get::<i64, _>("at")?,
                ))
            })
            .collect()
    }

    // ------------------------------------------------------------ tasks

    /// Records that a task has started (or restarted): inserts it, or updates the row for the same path.
    /// Returns the task id (stable across attempts and resumes).
    pub async fn start_task(&self, t: &TaskStart<'_>) -> Result<String> {
        let now = now_ms();
        let existing = sqlx::query("SELECT id FROM tasks WHERE run_id = $1 AND path = $2")
            .bind(t.run_id)
            .bind(t.path)
            .fetch_optional(self.reader())
            .await?;
        if let Some(r) = existing {
            let id: String = r.try_get("id")?;
            sqlx::query(
                "UPDATE tasks SET state = $1, attempts = $2, inputs = $3, cache_key = $4, error = NULL,
                        started_at = $5, finished_at = NULL WHERE id = $6",
            )
            .bind(t.state.as_str())
            .bind(t.attempt)
            .bind(t.inputs.map(Value::to_string))
            .bind(t.cache_key)
            .bind(now)
            .bind(&id)
            .execute(&self.pool)
            .await?;
            return Ok(id);
        }
        let id = new_id();
        sqlx::query(
            "INSERT INTO tasks (id, run_id, parent_id, path, task_key, display_name, kind, state, attempts, cached,
                                cache_key, inputs, created_at, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12, $13)",
        )
        .bind(&id)
        .bind(t.run_id)
        .bind(t.parent_id)
        .bind(t.path)
        .bind(t.task_key)
        .bind(t.display_name)
        .bind(t.kind.as_str())
        .bind(t.state.as_str())
        .bind(t.attempt)
        .bind(t.cache_key)
        .bind(t.inputs.map(Value::to_string))
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Bumps a running task's attempt counter: a retry starts at `starts_at` (after its backoff).
    /// `created_at` keeps the first attempt's start, `started_at` holds the latest attempt's.
    pub async fn set_task_attempt(&self, task_id: &str, attempt: i64, starts_at: i64) -> Result<()> {
        sqlx::query("UPDATE tasks SET attempts = $1, state = 'RUNNING', started_at = $2 WHERE id = $3")
            .bind(attempt)
            .bind(starts_at)
            .bind(task_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the process group running a task's attempt and its leader's start time.
    pub async fn set_task_process(&self, task_id: &str, pgid: i64, started: i64) -> Result<()> {
        sqlx::query("UPDATE tasks SET pgid = $1, pgid_started = $2 WHERE id = $3")
            .bind(pgid)
            .bind(started)
            .bind(task_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// (task id, process group, leader start time) of a run's tasks still marked RUNNING with a recorded
    /// process: what a crashed engine may have left behind.
    pub async fn running_task_processes(&self, run_id: &str) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT id, pgid, pgid_started FROM tasks WHERE run_id = $1 AND state = 'RUNNING' \
             AND pgid IS NOT NULL AND pgid_started IS NOT NULL",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("pgid")?, r.try_get("pgid_started")?))).collect()
    }

    /// Finishes a task in one transaction: its state and outputs, the artifacts it produced, lineage events
    /// for what it consumed and produced, and (when asked) the cache entry for its key.
    pub async fn finish_task(&self, f: &TaskFinish<'_>) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for a in f.new_artifacts {
            let rec = ArtifactRecord {
                id: a.id.clone(),
                run_id: f.run_id.to_owned(),
                task_id: Some(f.task_id.to_owned()),
                name: a.name.clone(),
                uri: a.uri.clone(),
                schema_title: a.schema_title.clone(),
                schema_version: a.schema_version.clone(),
                metadata: a.metadata.clone(),
                created_at: now,
            };
            sqlx::query(
                "INSERT INTO artifacts (id, run_id, task_id, name, uri, schema_title, schema_version, metadata, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&rec.id)
            .bind(&rec.run_id)
            .bind(&rec.task_id)
            .bind(&rec.name)
            .bind(&rec.uri)
            .bind(&rec.schema_title)
            .bind(&rec.schema_version)
            .bind(rec.metadata.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            insert_event(&mut tx, f.task_id, &rec.id, "OUTPUT", &a.output_name, f.run_id, now).await?;
        }
        for (name, artifact_id) in f.output_artifact_refs {
            insert_event(&mut tx, f.task_id, artifact_id, "OUTPUT", name, f.run_id, now).await?;
        }
        for (name, artifact_id) in f.input_artifact_refs {
            insert_event(&mut tx, f.task_id, artifact_id, "INPUT", name, f.run_id, now).await?;
        }
        let done = sqlx::query(
            "UPDATE tasks SET state = $1, outputs = $2, error = $3, cached = $4, finished_at = $5,
                    started_at = COALESCE(started_at, $5) WHERE id = $6",
        )
        .bind(f.state.as_str())
        .bind(f.outputs.map(Value::to_string))
        .bind(f.error)
        .bind(f.cached as i64)
        .bind(now)
        .bind(f.task_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "task", id: f.task_id.to_owned() });
        }
        if let (Some(key), Some(outputs)) = (f.cache_key_to_record, f.outputs) {
            sqlx::query(
                "INSERT INTO cache_entries (cache_key, task_id, outputs, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (cache_key) DO UPDATE SET task_id = excluded.task_id, outputs = excluded.outputs,
                 created_at = excluded.created_at",
            )
            .bind(key)
            .bind(f.task_id)
            .bind(outputs.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a task that never ran (skipped, or canceled before starting) in one statement.
    pub async fn record_unrun_task(&self, t: &TaskStart<'_>, error: Option<&str>) -> Result<String> {
        let now = now_ms();
        let id = new_id();
        sqlx::query(
            "INSERT INTO tasks (id, run_id, parent_id, path, task_key, display_name, kind, state, attempts, cached,
                                inputs, error, created_at, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, $9, $10, $11, $11)
             ON CONFLICT (run_id, path) DO UPDATE SET state = excluded.state, error = excluded.error,
                 finished_at = excluded.finished_at",
        )
        .bind(&id)
        .bind(t.run_id)
        .bind(t.parent_id)
        .bind(t.path)
        .bind(t.task_key)
        .bind(t.display_name)
        .bind(t.kind.as_str())
        .bind(t.state.as_str())
        .bind(t.inputs.map(Value::to_string))
        .bind(error)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Marks every task of a run that is still RUNNING or PENDING as `state` (after a cancel or a crash).
    pub async fn close_open_tasks(&self, run_id: &str, state: TaskState, error: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE tasks SET state = $1, error = $2, finished_at = $3 WHERE run_id = $4 AND state IN ('RUNNING', 'PENDING')",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(now_ms())
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn list_tasks(&self, run_id: &str) -> Result<Vec<TaskRecord>> {
        let rows = sqlx::query("SELECT * FROM tasks WHERE run_id = $1 ORDER BY created_at, path")
            .bind(run_id)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(TaskRecord::from_row).collect()
    }

    pub async fn lookup_cache(&self, cache_key: &str) -> Result<Option<(String, Value)>> {
        let row = sqlx::query("SELECT task_id, outputs FROM cache_entries WHERE cache_key = $1")
            .bind(cache_key)
            .fetch_optional(self.reader())
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let outputs: String = r.try_get("outputs")?;
                let v = serde_json::from_str(&outputs).map_err(|e| StoreError::Corrupt(format!("cache entry: {e}")))?;
                Ok(Some((r.try_get("task_id")?, v)))
            }
        }
    }

    // ------------------------------------------------------------ artifacts and lineage

    pub async fn list_artifacts(&self, run_id: &str) -> Result<Vec<ArtifactRecord>> {
        let rows = sqlx::query("SELECT * FROM artifacts WHERE run_id = $1 ORDER BY created_at, name")
            .bind(run_id)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(ArtifactRecord::from_row).collect()
    }

    pub async fn get_artifact(&self, id: &str) -> Result<ArtifactRecord> {
        let row = sqlx::query("SELECT * FROM artifacts WHERE id = $1").bind(id).fetch_optional(self.reader()).await?;
        match row {
            Some(r) => ArtifactRecord::from_row(&r),
            None => Err(StoreError::NotFound { kind: "artifact", id: id.to_owned() }),
        }
    }

    pub async fn list_events(&self, run_id: &str) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query("SELECT * FROM events WHERE run_id = $1 ORDER BY at, task_id, kind, name")
            .bind(run_id)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(decode).collect()
    }
}

async fn insert_history(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: &str,
    state: RunState,
    at: i64,
) -> Result<()> {
    // Ids sort in insertion order, so transitions within one millisecond keep their order.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    sqlx::query("INSERT INTO run_state_history (id, run_id, state, at) VALUES ($1, $2, $3, $4)")
        .bind(format!("{at:015}-{seq:012}-{}", &new_id()[..8]))
        .bind(run_id)
        .bind(state.as_str())
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    task_id: &str,
    artifact_id: &str,
    kind: &str,
    name: &str,
    run_id: &str,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (task_id, artifact_id, kind, name, run_id, at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (task_id, artifact_id, kind, name) DO NOTHING",
    )
    .bind(task_id)
    .bind(artifact_id)
    .bind(kind)
    .bind(name)
    .bind(run_id)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A record whose columns map one to one onto its fields (`#[derive(sqlx::FromRow)]`).
fn decode<T: for<'r> sqlx::FromRow<'r, AnyRow>>(row: &AnyRow) -> Result<T> {
    Ok(T::from_row(row)?)
}

fn json_col(row: &AnyRow, col: &str) -> Result<Option<Value>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))).transpose()
}

#[cfg(test)]
mod tests;
