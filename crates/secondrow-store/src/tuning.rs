//! Hyperparameter tuning: Katib v1beta1 experiments and their trials (`secondrow tune`).
//!
//! An experiment is unique by name within its namespace and keeps the YAML it was created from; its state
//! follows Katib's conditions (Created → Running → Succeeded/Failed), plus Stopped for `secondrow tune stop`.
//! Trials are numbered in creation order. Every state change is one statement or one transaction that checks
//! the state it leaves, so two processes (a runner and `tune stop`) never both move the same record.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::stored_enum::stored_enum;
use crate::{new_id, now_ms, Result, Store, StoreError};

/// An experiment's state (Katib's conditions; `Stopped` is SecondRow's: stopped by `tune stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExperimentState {
    Created,
    Running,
    Succeeded,
    Failed,
    Stopped,
}

stored_enum!("tuning_experiments.state", ExperimentState { Created, Running, Succeeded, Failed, Stopped });

impl ExperimentState {
    /// Succeeded and Failed are final; a Stopped experiment may be resumed.
    pub fn is_final(self) -> bool {
        matches!(self, ExperimentState::Succeeded | ExperimentState::Failed)
    }
}

/// A trial's state, as Katib names them (`Killed`: stopped with its experiment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrialState {
    Created,
    Running,
    Succeeded,
    Failed,
    EarlyStopped,
    MetricsUnavailable,
    Killed,
}

stored_enum!(
    "tuning_trials.state",
    TrialState { Created, Running, Succeeded, Failed, EarlyStopped, MetricsUnavailable, Killed }
);

impl TrialState {
    /// Created and Running are open; every other state is final.
    pub fn is_open(self) -> bool {
        matches!(self, TrialState::Created | TrialState::Running)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TuningExperiment {
    pub id: String,
    pub namespace: String,
    pub name: String,
    /// The Experiment document as given (YAML text).
    pub spec: String,
    pub state: ExperimentState,
    pub reason: Option<String>,
    pub message: Option<String>,
    /// The name of Katib's `currentOptimalTrial`.
    pub optimal_trial: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// One of Katib's `parameterAssignments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterAssignment {
    pub name: String,
    pub value: String,
}

/// One reported metric value; `step` counts the metric's values from 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub name: String,
    pub value: f64,
    pub step: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TuningTrial {
    pub id: String,
    pub experiment_id: String,
    /// Creation order, from 1.
    pub seq: i64,
    pub name: String,
    pub assignments: Vec<ParameterAssignment>,
    pub state: TrialState,
    /// The run that executes the trial (its logs and artifacts).
    pub run_id: Option<String>,
    pub observations: Vec<Observation>,
    /// The objective metric after its strategy (min/max/latest).
    pub objective: Option<f64>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialOutcome {
    pub state: TrialState,
    pub objective: Option<f64>,
    pub observations: Vec<Observation>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

const EXPERIMENT_COLUMNS: &str =
    "id, namespace, name, spec, state, reason, message, optimal_trial, created_at, finished_at";
const TRIAL_COLUMNS: &str = "id, experiment_id, seq, name, assignments, state, run_id, observations, objective, \
     reason, message, created_at, started_at, finished_at";

fn decode_experiment(r: &AnyRow) -> Result<TuningExperiment> {
    Ok(TuningExperiment {
        id: r.try_get("id")?,
        namespace: r.try_get("namespace")?,
        name: r.try_get("name")?,
        spec: r.try_get("spec")?,
        state: r.try_get::<String, _>("state")?.parse()?,
        reason: r.try_get("reason")?,
        message: r.try_get("message")?,
        optimal_trial: r.try_get("optimal_trial")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

fn decode_trial(r: &AnyRow) -> Result<TuningTrial> {
    let json = |col: &str| -> Result<String> { Ok(r.try_get::<String, _>(col)?) };
    Ok(TuningTrial {
        id: r.try_get("id")?,
        experiment_id: r.try_get("experiment_id")?,
        seq: r.try_get("seq")?,
        name: r.try_get("name")?,
        assignments: serde_json::from_str(&json("assignments")?)
            .map_err(|e| StoreError::Corrupt(format!("tuning_trials.assignments: {e}")))?,
        state: r.try_get::<String, _>("state")?.parse()?,
        run_id: r.try_get("run_id")?,
        observations: serde_json::from_str(&json("observations")?)
            .map_err(|e| StoreError::Corrupt(format!("tuning_trials.observations: {e}")))?,
        objective: r.try_get("objective")?,
        reason: r.try_get("reason")?,
        message: r.try_get("message")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::InvalidArgument(format!("encoding: {e}")))
}

fn states_sql(states: &[TrialState]) -> String {
    states.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ")
}

impl Store {
    /// Records a new experiment (state Created); a taken name in the namespace is `AlreadyExists`.
    pub async fn create_tuning_experiment(&self, namespace: &str, name: &str, spec: &str) -> Result<TuningExperiment> {
        crate::validate_namespace(namespace)?;
        let e = TuningExperiment {
            id: new_id(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            spec: spec.to_owned(),
            state: ExperimentState::Created,
            reason: None,
            message: None,
            optimal_trial: None,
            created_at: now_ms(),
            finished_at: None,
        };
        let inserted = sqlx::query(
            "INSERT INTO tuning_experiments (id, namespace, name, spec, state, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (namespace, name) DO NOTHING",
        )
        .bind(&e.id)
        .bind(&e.namespace)
        .bind(&e.name)
        .bind(&e.spec)
        .bind(e.state.as_str())
        .bind(e.created_at)
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists { kind: "experiment", id: format!("{namespace}/{name}") });
        }
        Ok(e)
    }

    pub async fn find_tuning_experiment(&self, namespace: &str, name: &str) -> Result<Option<TuningExperiment>> {
        let row = sqlx::query(&format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM tuning_experiments WHERE namespace = $1 AND name = $2"
        ))
        .bind(namespace)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(decode_experiment).transpose()
    }

    /// The experiment, or `NotFound` naming it.
    pub async fn get_tuning_experiment(&self, namespace: &str, name: &str) -> Result<TuningExperiment> {
        self.find_tuning_experiment(namespace, name)
            .await?
            .ok_or_else(|| StoreError::NotFound { kind: "experiment", id: format!("{namespace}/{name}") })
    }

    /// Experiments of one namespace (all namespaces with `None`), oldest first.
    pub async fn list_tuning_experiments(&self, namespace: Option<&str>) -> Result<Vec<TuningExperiment>> {
        let rows = match namespace {
            Some(ns) => {
                sqlx::query(&format!(
                    "SELECT {EXPERIMENT_COLUMNS} FROM tuning_experiments WHERE namespace = $1 ORDER BY created_at, id"
                ))
                .bind(ns)
                .fetch_all(self.reader())
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {EXPERIMENT_COLUMNS} FROM tuning_experiments ORDER BY created_at, id"))
                    .fetch_all(self.reader())
                    .await?
            }
        };
        rows.iter().map(decode_experiment).collect()
    }

    /// Moves the experiment to `to` if it is in one of `from`; `None` (and no change) otherwise. A final
    /// state sets `finished_at`; Running clears a previous reason.
    pub async fn transition_tuning_experiment(
        &self,
        id: &str,
        from: &[ExperimentState],
        to: ExperimentState,
        reason: Option<&str>,
        message: Option<&str>,
    ) -> Result<Option<TuningExperiment>> {
        let from_sql = from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        let finished = (to.is_final() || to == ExperimentState::Stopped).then(now_ms);
        let mut tx = self.pool().begin().await?;
        let changed = sqlx::query(&format!(
            "UPDATE tuning_experiments SET state = $1, reason = $2, message = $3, finished_at = $4
             WHERE id = $5 AND state IN ({from_sql})"
        ))
        .bind(to.as_str())
        .bind(reason)
        .bind(message)
        .bind(finished)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        finish_experiment_change(tx, id, changed.rows_affected() == 1).await
    }

    /// Records Katib's `currentOptimalTrial`.
    pub async fn set_optimal_trial(&self, experiment_id: &str, trial_name: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE tuning_experiments SET optimal_trial = $1 WHERE id = $2")
            .bind(trial_name)
            .bind(experiment_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Adds trials (state Created) after the existing ones, in one transaction that refuses to pass
    /// `max_trials` in total: returns the trials added, fewer than asked (possibly none) at the cap.
    pub async fn add_tuning_trials(
        &self,
        experiment_id: &str,
        trials: &[(String, Vec<ParameterAssignment>)],
        max_trials: Option<i64>,
    ) -> Result<Vec<TuningTrial>> {
        let mut tx = self.pool().begin().await?;
        // Take the experiment row's write lock first (PostgreSQL), so two adders queue instead of both
        // reading the same count.
        sqlx::query("UPDATE tuning_experiments SET state = state WHERE id = $1")
            .bind(experiment_id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(MAX(seq), 0) AS last FROM tuning_trials WHERE experiment_id = $1",
        )
        .bind(experiment_id)
        .fetch_one(&mut *tx)
        .await?;
        let count: i64 = row.try_get("n")?;
        let last: i64 = row.try_get("last")?;
        let room = max_trials.map(|m| (m - count).max(0) as usize).unwrap_or(usize::MAX);
        let now = now_ms();
        let mut added = Vec::new();
        for (i, (name, assignments)) in trials.iter().take(room).enumerate() {
            let t = TuningTrial {
                id: new_id(),
                experiment_id: experiment_id.to_owned(),
                seq: last + 1 + i as i64,
                name: name.clone(),
                assignments: assignments.clone(),
                state: TrialState::Created,
                run_id: None,
                observations: Vec::new(),
                objective: None,
                reason: None,
                message: None,
                created_at: now,
                started_at: None,
                finished_at: None,
            };
            sqlx::query(
                "INSERT INTO tuning_trials (id, experiment_id, seq, name, assignments, state, observations, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&t.id)
            .bind(&t.experiment_id)
            .bind(t.seq)
            .bind(&t.name)
            .bind(to_json(&t.assignments)?)
            .bind(t.state.as_str())
            .bind("[]")
            .bind(t.created_at)
            .execute(&mut *tx)
            .await?;
            added.push(t);
        }
        tx.commit().await?;
        Ok(added)
    }

    /// The experiment's trials in creation order.
    pub async fn list_tuning_trials(&self, experiment_id: &str) -> Result<Vec<TuningTrial>> {
        let rows =
            sqlx::query(&format!("SELECT {TRIAL_COLUMNS} FROM tuning_trials WHERE experiment_id = $1 ORDER BY seq"))
                .bind(experiment_id)
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(decode_trial).collect()
    }

    /// The trial executed by a run, if any.
    pub async fn find_trial_of_run(&self, run_id: &str) -> Result<Option<TuningTrial>> {
        let row = sqlx::query(&format!("SELECT {TRIAL_COLUMNS} FROM tuning_trials WHERE run_id = $1"))
            .bind(run_id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(decode_trial).transpose()
    }

    /// An open trial starts (again) on `run_id`; `false` if it is no longer open.
    pub async fn start_tuning_trial(&self, trial_id: &str, run_id: &str) -> Result<bool> {
        let changed = sqlx::query(&format!(
            "UPDATE tuning_trials SET state = 'Running', run_id = $1, started_at = $2
             WHERE id = $3 AND state IN ({})",
            states_sql(&[TrialState::Created, TrialState::Running])
        ))
        .bind(run_id)
        .bind(now_ms())
        .bind(trial_id)
        .execute(self.pool())
        .await?;
        Ok(changed.rows_affected() == 1)
    }

    /// The metric values a running trial reported so far (for progress displays).
    pub async fn record_trial_observations(&self, trial_id: &str, observations: &[Observation]) -> Result<()> {
        sqlx::query("UPDATE tuning_trials SET observations = $1 WHERE id = $2 AND state = 'Running'")
            .bind(to_json(&observations)?)
            .bind(trial_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends an open trial; `false` (and no change) if it had already ended.
    pub async fn finish_tuning_trial(&self, trial_id: &str, outcome: &TrialOutcome) -> Result<bool> {
        if outcome.state.is_open() {
            return Err(StoreError::InvalidArgument(format!("a trial cannot finish as {}", outcome.state)));
        }
        let changed = sqlx::query(&format!(
            "UPDATE tuning_trials SET state = $1, objective = $2, observations = $3, reason = $4, message = $5,
             finished_at = $6 WHERE id = $7 AND state IN ({})",
            states_sql(&[TrialState::Created, TrialState::Running])
        ))
        .bind(outcome.state.as_str())
        .bind(outcome.objective)
        .bind(to_json(&outcome.observations)?)
        .bind(outcome.reason.as_deref())
        .bind(outcome.message.as_deref())
        .bind(now_ms())
        .bind(trial_id)
        .execute(self.pool())
        .await?;
        Ok(changed.rows_affected() == 1)
    }

    /// Stops an experiment that has not ended: it becomes Stopped and its open trials Killed, in one
    /// transaction. `None` when it had already ended (nothing changes).
    pub async fn stop_tuning_experiment(&self, id: &str, message: &str) -> Result<Option<TuningExperiment>> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let changed = sqlx::query(
            "UPDATE tuning_experiments SET state = 'Stopped', reason = 'ExperimentStopped', message = $1,
             finished_at = $2 WHERE id = $3 AND state IN ('Created', 'Running')",
        )
        .bind(message)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 1 {
            sqlx::query(&format!(
                "UPDATE tuning_trials SET state = 'Killed', reason = 'ExperimentStopped', message = $1, finished_at = $2
                 WHERE experiment_id = $3 AND state IN ({})",
                states_sql(&[TrialState::Created, TrialState::Running])
            ))
            .bind(message)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        finish_experiment_change(tx, id, changed.rows_affected() == 1).await
    }
}

/// Ends a guarded experiment change: reads the experiment back in the same transaction and commits; the record
/// when the guard let the change through, `None` when the experiment was in another state.
async fn finish_experiment_change(
    mut tx: sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    changed: bool,
) -> Result<Option<TuningExperiment>> {
    let row = sqlx::query(&format!("SELECT {EXPERIMENT_COLUMNS} FROM tuning_experiments WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    let Some(row) = row else { return Err(StoreError::NotFound { kind: "experiment", id: id.to_owned() }) };
    changed.then(|| decode_experiment(&row)).transpose()
}

#[cfg(test)]
mod tests;
