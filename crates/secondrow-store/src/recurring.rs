//! Recurring runs: a pipeline, its parameters and a trigger (cron or periodic) that the API server's
//! scheduler turns into runs.

use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{json_col, new_id, now_ms, Result, Store, StoreError};

#[derive(Debug, Clone, Serialize)]
pub struct RecurringRunRecord {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub experiment_id: Option<String>,
    pub pipeline_id: Option<String>,
    pub pipeline_version_id: Option<String>,
    /// The pipeline spec document every run gets.
    pub spec: Value,
    /// Bound parameters.
    pub parameters: Value,
    /// The runtime config as the client sent it (returned as is).
    pub runtime_config: Value,
    /// The trigger as the client sent it (`{cron_schedule: …}` or `{periodic_schedule: …}`).
    pub trigger: Value,
    pub max_concurrency: i64,
    pub no_catchup: bool,
    pub enabled: bool,
    /// The scheduled time of the last run started (epoch ms).
    pub last_fire_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A recurring run to create.
#[derive(Debug, Clone)]
pub struct NewRecurringRun {
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub experiment_id: Option<String>,
    pub pipeline_id: Option<String>,
    pub pipeline_version_id: Option<String>,
    pub spec: Value,
    pub parameters: Value,
    pub runtime_config: Value,
    pub trigger: Value,
    pub max_concurrency: i64,
    pub no_catchup: bool,
    pub enabled: bool,
}

impl RecurringRunRecord {
    pub(crate) fn from_row(r: &AnyRow) -> Result<RecurringRunRecord> {
        Ok(RecurringRunRecord {
            id: r.try_get("id")?,
            display_name: r.try_get("display_name")?,
            description: r.try_get("description")?,
            namespace: r.try_get("namespace")?,
            experiment_id: r.try_get("experiment_id")?,
            pipeline_id: r.try_get("pipeline_id")?,
            pipeline_version_id: r.try_get("pipeline_version_id")?,
            spec: json_col(r, "spec")?.unwrap_or(Value::Null),
            parameters: json_col(r, "parameters")?.unwrap_or(Value::Null),
            runtime_config: json_col(r, "runtime_config")?.unwrap_or(Value::Null),
            trigger: json_col(r, "trigger_spec")?.unwrap_or(Value::Null),
            max_concurrency: r.try_get("max_concurrency")?,
            no_catchup: r.try_get::<i64, _>("no_catchup")? != 0,
            enabled: r.try_get::<i64, _>("enabled")? != 0,
            last_fire_at: r.try_get("last_fire_at")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

impl Store {
    pub async fn create_recurring_run(&self, n: &NewRecurringRun) -> Result<RecurringRunRecord> {
        let id = new_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO recurring_runs (id, display_name, description, namespace, experiment_id, pipeline_id,
                 pipeline_version_id, spec, parameters, runtime_config, trigger_spec, max_concurrency, no_catchup,
                 enabled, last_fire_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, $15, $15)",
        )
        .bind(&id)
        .bind(&n.display_name)
        .bind(&n.description)
        .bind(&n.namespace)
        .bind(&n.experiment_id)
        .bind(&n.pipeline_id)
        .bind(&n.pipeline_version_id)
        .bind(n.spec.to_string())
        .bind(n.parameters.to_string())
        .bind(n.runtime_config.to_string())
        .bind(n.trigger.to_string())
        .bind(n.max_concurrency)
        .bind(n.no_catchup as i64)
        .bind(n.enabled as i64)
        .bind(now)
        .execute(self.pool())
        .await?;
        self.get_recurring_run(&id).await
    }

    pub async fn get_recurring_run(&self, id: &str) -> Result<RecurringRunRecord> {
        let row =
            sqlx::query("SELECT * FROM recurring_runs WHERE id = $1").bind(id).fetch_optional(self.reader()).await?;
        match row {
            Some(r) => RecurringRunRecord::from_row(&r),
            None => Err(StoreError::NotFound { kind: "recurring run", id: id.to_owned() }),
        }
    }

    /// Recurring runs, oldest first; `enabled_only` for the scheduler.
    pub async fn list_recurring_runs(&self, enabled_only: bool) -> Result<Vec<RecurringRunRecord>> {
        let sql = if enabled_only {
            "SELECT * FROM recurring_runs WHERE enabled = 1 ORDER BY created_at, id"
        } else {
            "SELECT * FROM recurring_runs ORDER BY created_at, id"
        };
        let rows = sqlx::query(sql).fetch_all(self.reader()).await?;
        rows.iter().map(RecurringRunRecord::from_row).collect()
    }

    pub async fn set_recurring_run_enabled(&self, id: &str, enabled: bool) -> Result<()> {
        let done = sqlx::query("UPDATE recurring_runs SET enabled = $1, updated_at = $2 WHERE id = $3")
            .bind(enabled as i64)
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "recurring run", id: id.to_owned() });
        }
        Ok(())
    }

    /// Records the scheduled time of the latest run the scheduler started.
    pub async fn set_recurring_run_fired(&self, id: &str, fire_at: i64) -> Result<()> {
        sqlx::query("UPDATE recurring_runs SET last_fire_at = $1 WHERE id = $2")
            .bind(fire_at)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn delete_recurring_run(&self, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM recurring_runs WHERE id = $1").bind(id).execute(self.pool()).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "recurring run", id: id.to_owned() });
        }
        Ok(())
    }
}
