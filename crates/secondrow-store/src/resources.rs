//! Resources beyond what the engine records: experiments, pipelines and versions as resources, run listing
//! without specs, archiving and deletion, and the run/task aggregates `/metrics` reports. (The KFP API is
//! their main user.) Recurring runs are in `recurring.rs`, API tokens in `tokens.rs`.

use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{decode, json_col, new_id, now_ms, Experiment, Result, RunRecord, Store, StoreError};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PipelineRecord {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PipelineVersionRecord {
    pub id: String,
    pub pipeline_id: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// The spec document; `Value::Null` in listings.
    pub spec: Value,
    pub created_at: i64,
}

impl PipelineVersionRecord {
    pub(crate) fn from_row(r: &AnyRow, with_spec: bool) -> Result<PipelineVersionRecord> {
        Ok(PipelineVersionRecord {
            id: r.try_get("id")?,
            pipeline_id: r.try_get("pipeline_id")?,
            name: r.try_get("name")?,
            display_name: r.try_get("display_name")?,
            description: r.try_get("description")?,
            spec: if with_spec { json_col(r, "spec")?.unwrap_or(Value::Null) } else { Value::Null },
            created_at: r.try_get("created_at")?,
        })
    }
}

/// Run columns without the (large) spec, for listings.
const RUN_SUMMARY_COLUMNS: &str =
    "id, display_name, description, namespace, experiment_id, pipeline_id, pipeline_version_id,
    pipeline_name, NULL AS spec, parameters, options, state, error, outputs, storage_state, recurring_run_id,
    created_at, started_at, finished_at";

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation() || d.message().contains("UNIQUE") || d.message().contains("duplicate key")
        }
        _ => false,
    }
}

impl Store {
    // ------------------------------------------------------------ experiments

    /// Creates an experiment; `AlreadyExists` when the namespace has one of that name.
    pub async fn create_experiment(
        &self,
        display_name: &str,
        description: &str,
        namespace: &str,
    ) -> Result<Experiment> {
        let e = Experiment {
            id: new_id(),
            display_name: display_name.to_owned(),
            description: description.to_owned(),
            namespace: namespace.to_owned(),
            storage_state: "AVAILABLE".into(),
            created_at: now_ms(),
        };
        let res = sqlx::query(
            "INSERT INTO experiments (id, display_name, description, namespace, storage_state, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&e.id)
        .bind(&e.display_name)
        .bind(&e.description)
        .bind(&e.namespace)
        .bind(&e.storage_state)
        .bind(e.created_at)
        .execute(self.pool())
        .await;
        match res {
            Ok(_) => Ok(e),
            Err(err) if is_unique_violation(&err) => {
                Err(StoreError::AlreadyExists { kind: "experiment", id: display_name.to_owned() })
            }
            Err(err) => Err(err.into()),
        }
    }

    pub async fn get_experiment(&self, id: &str) -> Result<Experiment> {
        let row = sqlx::query("SELECT * FROM experiments WHERE id = $1").bind(id).fetch_optional(self.reader()).await?;
        match row {
            Some(r) => decode(&r),
            None => Err(StoreError::NotFound { kind: "experiment", id: id.to_owned() }),
        }
    }

    /// Experiments of one namespace (all when `None`), oldest first.
    pub async fn list_experiments(&self, namespace: Option<&str>) -> Result<Vec<Experiment>> {
        let rows = match namespace {
            Some(ns) => {
                sqlx::query("SELECT * FROM experiments WHERE namespace = $1 ORDER BY created_at, id")
                    .bind(ns)
                    .fetch_all(self.reader())
                    .await?
            }
            None => sqlx::query("SELECT * FROM experiments ORDER BY created_at, id").fetch_all(self.reader()).await?,
        };
        rows.iter().map(decode).collect()
    }

    /// Archives or unarchives an experiment together with its runs (as KFP does).
    pub async fn set_experiment_storage_state(&self, id: &str, storage_state: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query("UPDATE experiments SET storage_state = $1 WHERE id = $2")
            .bind(storage_state)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "experiment", id: id.to_owned() });
        }
        sqlx::query("UPDATE runs SET storage_state = $1 WHERE experiment_id = $2")
            .bind(storage_state)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_experiment(&self, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM experiments WHERE id = $1").bind(id).execute(self.pool()).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "experiment", id: id.to_owned() });
        }
        Ok(())
    }

    // ------------------------------------------------------------ pipelines and versions

    /// Creates a pipeline without versions (`POST /pipelines`); `AlreadyExists` when the name is taken.
    pub async fn create_pipeline(&self, name: &str, description: &str, namespace: &str) -> Result<PipelineRecord> {
        let p = new_pipeline(name, description, namespace, now_ms());
        let mut tx = self.pool().begin().await?;
        insert_pipeline(&mut tx, &p).await?;
        tx.commit().await?;
        Ok(p)
    }

    /// Creates a pipeline and its first version in one transaction.
    pub async fn create_pipeline_with_version(
        &self,
        name: &str,
        description: &str,
        namespace: &str,
        version_name: &str,
        spec: &Value,
        digest: &str,
    ) -> Result<(PipelineRecord, PipelineVersionRecord)> {
        let now = now_ms();
        let p = new_pipeline(name, description, namespace, now);
        let mut tx = self.pool().begin().await?;
        insert_pipeline(&mut tx, &p).await?;
        let v = insert_version(&mut tx, &p.id, version_name, description, spec, digest, now).await?;
        tx.commit().await?;
        Ok((p, v))
    }

    /// Adds a version to an existing pipeline; `AlreadyExists` when the name is taken.
    pub async fn create_pipeline_version(
        &self,
        pipeline_id: &str,
        name: &str,
        description: &str,
        spec: &Value,
        digest: &str,
    ) -> Result<PipelineVersionRecord> {
        self.get_pipeline(pipeline_id).await?;
        let mut tx = self.pool().begin().await?;
        let v = insert_version(&mut tx, pipeline_id, name, description, spec, digest, now_ms()).await?;
        tx.commit().await?;
        Ok(v)
    }

    pub async fn get_pipeline(&self, id: &str) -> Result<PipelineRecord> {
        let row = sqlx::query("SELECT * FROM pipelines WHERE id = $1").bind(id).fetch_optional(self.reader()).await?;
        match row {
            Some(r) => decode(&r),
            None => Err(StoreError::NotFound { kind: "pipeline", id: id.to_owned() }),
        }
    }

    pub async fn list_pipelines(&self, namespace: Option<&str>) -> Result<Vec<PipelineRecord>> {
        let rows = match namespace {
            Some(ns) => {
                sqlx::query("SELECT * FROM pipelines WHERE namespace = $1 ORDER BY created_at, id")
                    .bind(ns)
                    .fetch_all(self.reader())
                    .await?
            }
            None => sqlx::query("SELECT * FROM pipelines ORDER BY created_at, id").fetch_all(self.reader()).await?,
        };
        rows.iter().map(decode).collect()
    }

    /// Deletes a pipeline and all its versions.
    pub async fn delete_pipeline(&self, id: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM pipeline_versions WHERE pipeline_id = $1").bind(id).execute(&mut *tx).await?;
        let done = sqlx::query("DELETE FROM pipelines WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "pipeline", id: id.to_owned() });
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_pipeline_version(&self, pipeline_id: &str, version_id: &str) -> Result<PipelineVersionRecord> {
        let row = sqlx::query("SELECT * FROM pipeline_versions WHERE id = $1 AND pipeline_id = $2")
            .bind(version_id)
            .bind(pipeline_id)
            .fetch_optional(self.reader())
            .await?;
        match row {
            Some(r) => PipelineVersionRecord::from_row(&r, true),
            None => Err(StoreError::NotFound { kind: "pipeline version", id: version_id.to_owned() }),
        }
    }

    /// Versions of a pipeline, oldest first, without their specs.
    pub async fn list_pipeline_versions(&self, pipeline_id: &str) -> Result<Vec<PipelineVersionRecord>> {
        let rows = sqlx::query(
            "SELECT id, pipeline_id, name, display_name, description, NULL AS spec, created_at
             FROM pipeline_versions WHERE pipeline_id = $1 ORDER BY created_at, id",
        )
        .bind(pipeline_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| PipelineVersionRecord::from_row(r, false)).collect()
    }

    pub async fn delete_pipeline_version(&self, pipeline_id: &str, version_id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM pipeline_versions WHERE id = $1 AND pipeline_id = $2")
            .bind(version_id)
            .bind(pipeline_id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "pipeline version", id: version_id.to_owned() });
        }
        Ok(())
    }

    // ------------------------------------------------------------ runs

    /// Runs without their specs (`spec` is `Null`), optionally of one namespace / experiment, oldest first.
    pub async fn list_run_summaries(
        &self,
        namespace: Option<&str>,
        experiment_id: Option<&str>,
    ) -> Result<Vec<RunRecord>> {
        let mut sql = format!("SELECT {RUN_SUMMARY_COLUMNS} FROM runs WHERE 1 = 1");
        let mut binds = Vec::new();
        if let Some(ns) = namespace {
            binds.push(ns);
            sql.push_str(&format!(" AND namespace = ${}", binds.len()));
        }
        if let Some(e) = experiment_id {
            binds.push(e);
            sql.push_str(&format!(" AND experiment_id = ${}", binds.len()));
        }
        sql.push_str(" ORDER BY created_at, id");
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.reader()).await?;
        rows.iter().map(RunRecord::from_row).collect()
    }

    /// Runs started by a recurring run that have not finished yet.
    pub async fn count_active_runs_of(&self, recurring_run_id: &str) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM runs WHERE recurring_run_id = $1
             AND state IN ('PENDING', 'RUNNING', 'CANCELING', 'PAUSED')",
        )
        .bind(recurring_run_id)
        .fetch_one(self.reader())
        .await?;
        Ok(row.try_get::<i64, _>("n")?)
    }

    pub async fn set_run_storage_state(&self, id: &str, storage_state: &str) -> Result<()> {
        let done = sqlx::query("UPDATE runs SET storage_state = $1 WHERE id = $2")
            .bind(storage_state)
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "run", id: id.to_owned() });
        }
        Ok(())
    }

    /// Deletes a run with its tasks, artifacts records, lineage events and state history, in one transaction.
    pub async fn delete_run(&self, id: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for sql in [
            "DELETE FROM events WHERE run_id = $1",
            "DELETE FROM artifacts WHERE run_id = $1",
            "DELETE FROM tasks WHERE run_id = $1",
            "DELETE FROM run_state_history WHERE run_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let done = sqlx::query("DELETE FROM runs WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "run", id: id.to_owned() });
        }
        tx.commit().await?;
        Ok(())
    }

    /// Number of runs in each state.
    pub async fn run_state_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM runs GROUP BY state ORDER BY state")
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(|r| Ok((r.try_get::<String, _>("state")?, r.try_get::<i64, _>("n")?))).collect()
    }

    /// Finished container tasks by state: (state, count, summed duration in ms).
    pub async fn task_duration_stats(&self) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n, CAST(COALESCE(SUM(finished_at - started_at), 0) AS BIGINT) AS total FROM tasks
             WHERE kind = 'container' AND finished_at IS NOT NULL AND started_at IS NOT NULL GROUP BY state ORDER BY state",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>("state")?, r.try_get::<i64, _>("n")?, r.try_get::<i64, _>("total")?)))
            .collect()
    }
}

fn new_pipeline(name: &str, description: &str, namespace: &str, now: i64) -> PipelineRecord {
    PipelineRecord {
        id: new_id(),
        name: name.to_owned(),
        display_name: name.to_owned(),
        description: description.to_owned(),
        namespace: namespace.to_owned(),
        created_at: now,
    }
}

async fn insert_pipeline(tx: &mut sqlx::Transaction<'_, sqlx::Any>, p: &PipelineRecord) -> Result<()> {
    let res = sqlx::query(
        "INSERT INTO pipelines (id, name, display_name, description, namespace, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&p.id)
    .bind(&p.name)
    .bind(&p.display_name)
    .bind(&p.description)
    .bind(&p.namespace)
    .bind(p.created_at)
    .execute(&mut **tx)
    .await;
    match res {
        Ok(_) => Ok(()),
        Err(err) if is_unique_violation(&err) => {
            Err(StoreError::AlreadyExists { kind: "pipeline", id: p.name.clone() })
        }
        Err(err) => Err(err.into()),
    }
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    pipeline_id: &str,
    name: &str,
    description: &str,
    spec: &Value,
    digest: &str,
    now: i64,
) -> Result<PipelineVersionRecord> {
    let v = PipelineVersionRecord {
        id: new_id(),
        pipeline_id: pipeline_id.to_owned(),
        name: name.to_owned(),
        display_name: name.to_owned(),
        description: description.to_owned(),
        spec: spec.clone(),
        created_at: now,
    };
    let res = sqlx::query(
        "INSERT INTO pipeline_versions (id, pipeline_id, name, display_name, description, spec, spec_digest, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&v.id)
    .bind(&v.pipeline_id)
    .bind(&v.name)
    .bind(&v.display_name)
    .bind(&v.description)
    .bind(spec.to_string())
    .bind(digest)
    .bind(now)
    .execute(&mut **tx)
    .await;
    match res {
        Ok(_) => Ok(v),
        Err(err) if is_unique_violation(&err) => {
            Err(StoreError::AlreadyExists { kind: "pipeline version", id: name.to_owned() })
        }
        Err(err) => Err(err.into()),
    }
}
