//! Distributed training jobs (migration `0011`): the submitted Training Operator YAML, the job's state and
//! operator-shaped status JSON, and one row per replica with its process, restarts, exit code and log file.
//!
//! The store knows nothing of the job kinds' rules (`secondrow-train` has them): the supervisor decides and
//! records each transition here, the job's row and its replicas' rows in one transaction.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::stored_enum::stored_enum;
use crate::{new_id, now_ms, Result, Store, StoreError};

/// A job's state: its status's last true condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrainingJobState {
    Created,
    Running,
    Restarting,
    Succeeded,
    Failed,
}

stored_enum!("training job state", TrainingJobState { Created, Running, Restarting, Succeeded, Failed });

impl TrainingJobState {
    pub fn is_finished(self) -> bool {
        matches!(self, TrainingJobState::Succeeded | TrainingJobState::Failed)
    }
}

/// A replica's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaState {
    /// Not started yet (or waiting to be started again).
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Stopped by SecondRow (the job ended or was deleted while it ran).
    Killed,
}

stored_enum!("replica state", ReplicaState { Pending, Running, Succeeded, Failed, Killed });

/// One replica of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaRecord {
    /// `Worker`, `Master`, …
    pub replica_type: String,
    pub index: i64,
    pub state: ReplicaState,
    /// The process (and process group) id while it runs.
    pub pid: Option<i64>,
    /// The process's start time (clock ticks since boot): with `pid`, it names one process for good.
    pub pid_start: Option<i64>,
    pub port: Option<i64>,
    pub restarts: i64,
    pub exit_code: Option<i64>,
    /// The replica's log file (stdout and stderr together).
    pub log_path: String,
    pub updated_at: i64,
}

/// A job with its replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingJobRecord {
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub kind: String,
    /// The submitted YAML, as given.
    pub spec: String,
    pub state: TrainingJobState,
    /// The operator-shaped `status` (conditions, replicaStatuses, times).
    pub status: serde_json::Value,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The process supervising the job (pid and start time), once one claimed it.
    pub supervisor_pid: Option<i64>,
    pub supervisor_start: Option<i64>,
    /// In rank order (as given at creation).
    pub replicas: Vec<ReplicaRecord>,
}

/// What [`Store::create_training_job`] records.
#[derive(Debug, Clone)]
pub struct NewTrainingJob<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub spec: &'a str,
    pub status: &'a serde_json::Value,
    /// (type, index, port, log path) per replica, in rank order.
    pub replicas: Vec<(String, i64, Option<i64>, String)>,
}

/// A change to one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaUpdate {
    pub replica_type: String,
    pub index: i64,
    pub state: ReplicaState,
    pub pid: Option<i64>,
    pub pid_start: Option<i64>,
    pub restarts: i64,
    pub exit_code: Option<i64>,
}

/// One transition of a job: its state and status, and the replicas that changed with it.
#[derive(Debug, Clone)]
pub struct TrainingJobUpdate<'a> {
    pub state: TrainingJobState,
    pub status: &'a serde_json::Value,
    /// Set once, when the job first runs.
    pub started_at: Option<i64>,
    /// Set when it succeeds or fails.
    pub finished_at: Option<i64>,
    pub replicas: &'a [ReplicaUpdate],
}

fn check_namespace(namespace: &str) -> Result<()> {
    if namespace.is_empty() {
        Ok(())
    } else {
        crate::validate_namespace(namespace)
    }
}

fn json_text(v: &serde_json::Value) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

const JOB_COLUMNS: &str =
    "id, namespace, name, kind, spec, state, status, created_at, started_at, finished_at, supervisor_pid, supervisor_start";

fn job_from_row(row: &AnyRow) -> Result<TrainingJobRecord> {
    let state: String = row.try_get("state")?;
    let status: String = row.try_get("status")?;
    Ok(TrainingJobRecord {
        id: row.try_get("id")?,
        namespace: row.try_get("namespace")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        spec: row.try_get("spec")?,
        state: state.parse()?,
        status: serde_json::from_str(&status).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        supervisor_pid: row.try_get("supervisor_pid")?,
        supervisor_start: row.try_get("supervisor_start")?,
        replicas: Vec::new(),
    })
}

fn replica_from_row(row: &AnyRow) -> Result<ReplicaRecord> {
    let state: String = row.try_get("state")?;
    Ok(ReplicaRecord {
        replica_type: row.try_get("replica_type")?,
        index: row.try_get::<i32, _>("replica_index")?.into(),
        state: state.parse()?,
        pid: row.try_get("pid")?,
        pid_start: row.try_get("pid_start")?,
        port: row.try_get::<Option<i32>, _>("port")?.map(i64::from),
        restarts: row.try_get::<i32, _>("restarts")?.into(),
        exit_code: row.try_get::<Option<i32>, _>("exit_code")?.map(i64::from),
        log_path: row.try_get("log_path")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn small(n: i64, what: &str) -> Result<i32> {
    i32::try_from(n).map_err(|_| StoreError::InvalidArgument(format!("{what} {n} is out of range")))
}

impl Store {
    /// Records a new job and its replicas (all `Pending`) in one transaction; a taken name in the namespace is
    /// `AlreadyExists`.
    pub async fn create_training_job(&self, new: &NewTrainingJob<'_>) -> Result<TrainingJobRecord> {
        check_namespace(new.namespace)?;
        let id = new_id();
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "INSERT INTO training_jobs (id, namespace, name, kind, spec, state, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (namespace, name) DO NOTHING",
        )
        .bind(&id)
        .bind(new.namespace)
        .bind(new.name)
        .bind(new.kind)
        .bind(new.spec)
        .bind(TrainingJobState::Created.as_str())
        .bind(json_text(new.status)?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists { kind: "training job", id: new.name.to_owned() });
        }
        for (ordinal, (t, index, port, log)) in new.replicas.iter().enumerate() {
            sqlx::query(
                "INSERT INTO training_job_replicas (job_id, replica_type, replica_index, ordinal, state, port, \
                 restarts, log_path, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)",
            )
            .bind(&id)
            .bind(t)
            .bind(small(*index, "replica index")?)
            .bind(small(ordinal as i64, "replica count")?)
            .bind(ReplicaState::Pending.as_str())
            .bind(port.map(|p| small(p, "port")).transpose()?)
            .bind(log)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.training_job_by_id(&id).await
    }

    /// A job with its replicas.
    pub async fn training_job_by_id(&self, id: &str) -> Result<TrainingJobRecord> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM training_jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.reader())
            .await?
            .ok_or_else(|| StoreError::NotFound { kind: "training job", id: id.to_owned() })?;
        self.with_replicas(job_from_row(&row)?).await
    }

    /// The job `name` in `namespace`.
    pub async fn get_training_job(&self, namespace: &str, name: &str) -> Result<TrainingJobRecord> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM training_jobs WHERE namespace = $1 AND name = $2"))
            .bind(namespace)
            .bind(name)
            .fetch_optional(self.reader())
            .await?
            .ok_or_else(|| StoreError::NotFound { kind: "training job", id: name.to_owned() })?;
        self.with_replicas(job_from_row(&row)?).await
    }

    async fn with_replicas(&self, mut job: TrainingJobRecord) -> Result<TrainingJobRecord> {
        let rows = sqlx::query(
            "SELECT replica_type, replica_index, state, pid, pid_start, port, restarts, exit_code, log_path, updated_at \
             FROM training_job_replicas WHERE job_id = $1 ORDER BY ordinal",
        )
        .bind(&job.id)
        .fetch_all(self.reader())
        .await?;
        job.replicas = rows.iter().map(replica_from_row).collect::<Result<_>>()?;
        Ok(job)
    }

    /// Jobs of one namespace (all when `None`), newest first, with their replicas.
    pub async fn list_training_jobs(&self, namespace: Option<&str>) -> Result<Vec<TrainingJobRecord>> {
        let rows = match namespace {
            Some(ns) => {
                sqlx::query(&format!(
                    "SELECT {JOB_COLUMNS} FROM training_jobs WHERE namespace = $1 ORDER BY created_at DESC, name"
                ))
                .bind(ns)
                .fetch_all(self.reader())
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM training_jobs ORDER BY created_at DESC, name"))
                    .fetch_all(self.reader())
                    .await?
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.with_replicas(job_from_row(row)?).await?);
        }
        Ok(out)
    }

    /// Jobs not yet Succeeded or Failed (what a restarted server must adopt or clean up).
    pub async fn unfinished_training_jobs(&self) -> Result<Vec<TrainingJobRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM training_jobs WHERE state NOT IN ('Succeeded', 'Failed') ORDER BY created_at"
        ))
        .fetch_all(self.reader())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.with_replicas(job_from_row(row)?).await?);
        }
        Ok(out)
    }

    /// Writes one transition: the job's state and status (and start/finish times when given) with the changed
    /// replicas, in one transaction. A finished job does not change any more (`FailedPrecondition`-like
    /// `InvalidArgument`).
    ///
    /// The transaction writes first (an `UPDATE` guarded by the state) and reads only to explain a refusal:
    /// SQLite refuses to upgrade a transaction that has read to a writer while another connection writes
    /// (`database is locked`, without waiting), so a read-then-write transaction failed whenever any other
    /// writer (an API call, another job) got in between.
    pub async fn update_training_job(&self, id: &str, update: &TrainingJobUpdate<'_>) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE training_jobs SET state = $1, status = $2, started_at = COALESCE(started_at, $3), \
             finished_at = COALESCE(finished_at, $4) WHERE id = $5 AND state NOT IN ('Succeeded', 'Failed')",
        )
        .bind(update.state.as_str())
        .bind(json_text(update.status)?)
        .bind(update.started_at)
        .bind(update.finished_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM training_jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            return Err(match state {
                None => StoreError::NotFound { kind: "training job", id: id.to_owned() },
                Some(state) => StoreError::InvalidArgument(format!("training job `{id}` has finished ({state})")),
            });
        }
        for r in update.replicas {
            let done = sqlx::query(
                "UPDATE training_job_replicas SET state = $1, pid = $2, pid_start = $3, restarts = $4, \
                 exit_code = $5, updated_at = $6 WHERE job_id = $7 AND replica_type = $8 AND replica_index = $9",
            )
            .bind(r.state.as_str())
            .bind(r.pid)
            .bind(r.pid_start)
            .bind(small(r.restarts, "restarts")?)
            .bind(r.exit_code.map(|c| small(c, "exit code")).transpose()?)
            .bind(now)
            .bind(id)
            .bind(&r.replica_type)
            .bind(small(r.index, "replica index")?)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound {
                    kind: "replica",
                    id: format!("{}-{}", r.replica_type.to_ascii_lowercase(), r.index),
                });
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the process `(pid, start)` as the one supervising job `id` from now on, if the job's supervisor
    /// is still `expected` (what the caller read; `None`: never claimed) and the job has not finished. One
    /// statement, so of two processes that read the same record and both claim it (a background supervisor
    /// starting while a server's recovery pass adopts its job) exactly one wins: `Ok(false)` for the other.
    pub async fn claim_training_job(
        &self,
        id: &str,
        expected: (Option<i64>, Option<i64>),
        pid: i64,
        start: Option<i64>,
    ) -> Result<bool> {
        // `IS NOT DISTINCT FROM` is PostgreSQL's NULL-safe equality; SQLite spells it `IS`.
        let same = match self.backend() {
            crate::Backend::Sqlite => "IS",
            crate::Backend::Postgres => "IS NOT DISTINCT FROM",
        };
        let done = sqlx::query(&format!(
            "UPDATE training_jobs SET supervisor_pid = $1, supervisor_start = $2 WHERE id = $3 \
             AND supervisor_pid {same} $4 AND supervisor_start {same} $5 AND state NOT IN ('Succeeded', 'Failed')"
        ))
        .bind(pid)
        .bind(start)
        .bind(id)
        .bind(expected.0)
        .bind(expected.1)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            // Gone, or claimed by another process (or finished) since the caller read it.
            self.training_job_by_id(id).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Deletes a job and its replicas' rows (the caller stops its processes first). Writes first, like
    /// [`Store::update_training_job`], so a supervisor writing at the same time cannot make it fail.
    pub async fn delete_training_job(&self, namespace: &str, name: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "DELETE FROM training_job_replicas WHERE job_id IN \
             (SELECT id FROM training_jobs WHERE namespace = $1 AND name = $2)",
        )
        .bind(namespace)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM training_jobs WHERE namespace = $1 AND name = $2")
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "training job", id: name.to_owned() });
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests::{per_backend, TestDb};
    use crate::ErrorKind;

    per_backend!(
        training_jobs_round_trip_and_names_are_unique_per_namespace,
        training_job_transitions_are_atomic,
        training_job_writes_beside_other_writers_never_fail,
    );

    fn new_job<'a>(ns: &'a str, name: &'a str, status: &'a serde_json::Value) -> NewTrainingJob<'a> {
        NewTrainingJob {
            namespace: ns,
            name,
            kind: "JAXJob",
            spec: "apiVersion: kubeflow.org/v1\nkind: JAXJob\n",
            status,
            replicas: vec![
                ("Worker".into(), 0, Some(30000), "/logs/worker-0.log".into()),
                ("Worker".into(), 1, Some(30001), "/logs/worker-1.log".into()),
            ],
        }
    }

    async fn training_jobs_round_trip_and_names_are_unique_per_namespace(db: &TestDb) {
        let s = &db.store;
        let status = json!({"conditions": [{"type": "Created", "status": "True"}]});
        let job = s.create_training_job(&new_job("team-a", "jx", &status)).await.unwrap();
        assert_eq!(job.state, TrainingJobState::Created);
        assert_eq!(job.status, status);
        assert_eq!(job.replicas.len(), 2);
        assert_eq!(job.replicas[1].replica_type, "Worker");
        assert_eq!(job.replicas[1].index, 1);
        assert_eq!(job.replicas[1].port, Some(30001));
        assert_eq!(job.replicas[1].state, ReplicaState::Pending);
        let again = s.create_training_job(&new_job("team-a", "jx", &status)).await.unwrap_err();
        assert_eq!(again.kind(), ErrorKind::AlreadyExists);
        s.create_training_job(&new_job("team-b", "jx", &status)).await.unwrap();
        assert_eq!(s.list_training_jobs(Some("team-a")).await.unwrap().len(), 1);
        assert_eq!(s.list_training_jobs(None).await.unwrap().len(), 2);
        assert_eq!(s.get_training_job("team-b", "jx").await.unwrap().namespace, "team-b");
        assert_eq!(s.get_training_job("team-c", "jx").await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(s.unfinished_training_jobs().await.unwrap().len(), 2);
        assert!(s.claim_training_job(&job.id, (None, None), 42, Some(7)).await.unwrap());
        let got = s.training_job_by_id(&job.id).await.unwrap();
        assert_eq!((got.supervisor_pid, got.supervisor_start), (Some(42), Some(7)));
        // A claim from a record read before that claim loses; one from the current supervisor wins.
        assert!(!s.claim_training_job(&job.id, (None, None), 43, Some(8)).await.unwrap());
        assert!(!s.claim_training_job(&job.id, (Some(42), None), 43, Some(8)).await.unwrap());
        assert!(s.claim_training_job(&job.id, (Some(42), Some(7)), 43, None).await.unwrap());
        assert!(s.claim_training_job(&job.id, (Some(43), None), 44, Some(9)).await.unwrap());
        assert_eq!(
            s.claim_training_job("no-such-job", (None, None), 1, None).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        s.delete_training_job("team-a", "jx").await.unwrap();
        assert_eq!(s.get_training_job("team-a", "jx").await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(s.delete_training_job("team-a", "jx").await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(
            s.create_training_job(&new_job("Bad NS", "jx", &status)).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }

    async fn training_job_transitions_are_atomic(db: &TestDb) {
        let s = &db.store;
        let status = json!({});
        let job = s.create_training_job(&new_job("", "jx", &status)).await.unwrap();
        let running = json!({"conditions": [{"type": "Running", "status": "True"}]});
        let r = |index, state, pid, restarts, exit_code| ReplicaUpdate {
            replica_type: "Worker".into(),
            index,
            state,
            pid,
            pid_start: pid.map(|p| p * 10),
            restarts,
            exit_code,
        };
        let replicas = [r(0, ReplicaState::Running, Some(11), 0, None), r(1, ReplicaState::Running, Some(12), 0, None)];
        let up = TrainingJobUpdate {
            state: TrainingJobState::Running,
            status: &running,
            started_at: Some(5),
            finished_at: None,
            replicas: &replicas,
        };
        s.update_training_job(&job.id, &up).await.unwrap();
        let got = s.training_job_by_id(&job.id).await.unwrap();
        assert_eq!((got.state, got.started_at), (TrainingJobState::Running, Some(5)));
        assert_eq!(got.replicas[0].pid, Some(11));
        // A transition naming a replica that does not exist changes nothing at all.
        let bad = [r(0, ReplicaState::Failed, None, 0, Some(1)), r(7, ReplicaState::Failed, None, 0, Some(1))];
        let failed = json!({"conditions": [{"type": "Failed", "status": "True"}]});
        let up = TrainingJobUpdate {
            state: TrainingJobState::Failed,
            status: &failed,
            started_at: Some(9),
            finished_at: Some(10),
            replicas: &bad,
        };
        assert_eq!(s.update_training_job(&job.id, &up).await.unwrap_err().kind(), ErrorKind::NotFound);
        let got = s.training_job_by_id(&job.id).await.unwrap();
        assert_eq!(got.state, TrainingJobState::Running);
        assert_eq!(got.replicas[0].state, ReplicaState::Running);
        let good = [r(0, ReplicaState::Failed, None, 2, Some(1)), r(1, ReplicaState::Killed, None, 0, None)];
        let up = TrainingJobUpdate { replicas: &good, ..up };
        s.update_training_job(&job.id, &up).await.unwrap();
        let got = s.training_job_by_id(&job.id).await.unwrap();
        assert_eq!((got.state, got.started_at, got.finished_at), (TrainingJobState::Failed, Some(5), Some(10)));
        assert_eq!((got.replicas[0].restarts, got.replicas[0].exit_code), (2, Some(1)));
        assert_eq!(got.replicas[1].state, ReplicaState::Killed);
        assert!(s.unfinished_training_jobs().await.unwrap().is_empty());
        // Finished jobs are final, and nobody claims them any more.
        assert_eq!(s.update_training_job(&job.id, &up).await.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert!(!s.claim_training_job(&job.id, (None, None), 1, None).await.unwrap());
        let gone = TrainingJobUpdate { state: TrainingJobState::Running, ..up };
        assert_eq!(s.update_training_job("no-such-job", &gone).await.unwrap_err().kind(), ErrorKind::NotFound);
    }

    /// A supervisor's transitions while other writers (job submissions and deletions, as the API makes them)
    /// hold SQLite's write lock: each waits for the lock instead of failing with `database is locked` (the
    /// cause of a job's supervisor stopping under load when its transaction read before writing).
    async fn training_job_writes_beside_other_writers_never_fail(db: &TestDb) {
        let s = &db.store;
        let status = json!({});
        let job = s.create_training_job(&new_job("", "watched", &status)).await.unwrap();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    let status = json!({});
                    for i in 0..25 {
                        let name = format!("other-{w}-{i}");
                        s.create_training_job(&new_job("team-a", &name, &status)).await.unwrap();
                        // A taken name: the insert takes the write lock and changes nothing.
                        assert!(s.create_training_job(&new_job("team-a", &name, &status)).await.is_err());
                        s.delete_training_job("team-a", &name).await.unwrap();
                    }
                })
            })
            .collect();
        for i in 0..100 {
            let replicas = [ReplicaUpdate {
                replica_type: "Worker".into(),
                index: 0,
                state: ReplicaState::Running,
                pid: Some(i),
                pid_start: None,
                restarts: i,
                exit_code: None,
            }];
            let up = TrainingJobUpdate {
                state: TrainingJobState::Running,
                status: &status,
                started_at: Some(1),
                finished_at: None,
                replicas: &replicas,
            };
            s.update_training_job(&job.id, &up).await.unwrap();
            assert!(s.claim_training_job(&job.id, (None, None), 1, None).await.unwrap() || i > 0);
            s.claim_training_job(&job.id, (Some(1), None), 1, None).await.unwrap();
        }
        for w in writers {
            w.await.unwrap();
        }
        assert_eq!(s.training_job_by_id(&job.id).await.unwrap().replicas[0].restarts, 99);
        assert_eq!(s.list_training_jobs(Some("team-a")).await.unwrap().len(), 0);
    }
}
