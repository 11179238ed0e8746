//! Distributed training jobs on one machine: [`submit`] validates a Training Operator job, picks a free
//! loopback port per replica and records it; [`supervise`] runs it — every replica's framework container as a
//! process of its own group (through [`crate::process::run_process`]), started together, each with the
//! environment its kind prescribes (`secondrow_train::env`) and one log file — and applies the operator's
//! rules: restarts per `restartPolicy` within `backoffLimit`, `activeDeadlineSeconds`, success per kind, a
//! failed replica failing the job and stopping the others, `ttlSecondsAfterFinished`. Every transition is
//! one store transaction (`Store::update_training_job`).
//!
//! On one machine no replica outlives its job: when the job succeeds or fails, replicas still running are
//! stopped whatever `cleanPodPolicy` says (`None` would leave processes nobody supervises).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secondrow_error::ErrorKind;
use secondrow_store::{
    NewTrainingJob, ReplicaState, ReplicaUpdate, Store, StoreError, TrainingJobRecord, TrainingJobState,
    TrainingJobUpdate,
};
use secondrow_train::env::{hostfile, replica_env};
use secondrow_train::status::{
    backoff_exceeded, backoff_message, deadline_message, failed_message, message, outcome, should_restart,
};
use secondrow_train::{
    ConditionType, JobStatus, Outcome, Placement, ReplicaCounts, ReplicaId, TrainError, TrainingJob,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::process::{run_process, Exit, ProcessJob};

pub use secondrow_train::JobKind;

/// Parses and validates a job document (what [`submit`] does first), for callers that check it before.
pub fn parse(yaml: &str) -> Result<TrainingJob, JobError> {
    Ok(TrainingJob::from_yaml(yaml)?)
}

/// Deletes a job and stops its processes. The record goes first: a supervisor that then sees its replicas
/// die finds its job gone and stops instead of restarting them.
pub async fn delete(store: &Store, rec: &TrainingJobRecord) -> Result<(), JobError> {
    store.delete_training_job(&rec.namespace, &rec.name).await?;
    for r in &rec.replicas {
        if let (Some(pid), Some(start)) = (r.pid, r.pid_start) {
            if let (Ok(pid), Ok(start)) = (u32::try_from(pid), u64::try_from(start)) {
                crate::process::kill_orphan_group(pid, start).await;
            }
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Spec(#[from] TrainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("metadata.namespace {doc:?} does not match the namespace {given:?} the job is submitted to")]
    Namespace { doc: String, given: String },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("choosing free loopback ports: {0}")]
    Ports(std::io::Error),
    #[error("job {job} has no replica {replica} (it has {have})")]
    NoReplica { job: String, replica: String, have: String },
}

impl JobError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            JobError::Spec(e) => e.kind(),
            JobError::Store(e) => e.kind(),
            JobError::Namespace { .. } => ErrorKind::InvalidInput,
            JobError::NoReplica { .. } => ErrorKind::NotFound,
            JobError::Io { .. } | JobError::Ports(_) => ErrorKind::Internal,
        }
    }
}

/// Lines a caller may show while a job runs (`job submit --follow`).
pub type JobEvents = mpsc::UnboundedSender<String>;

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `n` distinct free TCP ports on 127.0.0.1 (held together while chosen, so none repeats).
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind(("127.0.0.1", 0))).collect::<std::io::Result<_>>()?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect()
}

/// The folder of one job's logs and files under `jobs_dir`.
pub fn job_dir(jobs_dir: &Path, namespace: &str, name: &str, id: &str) -> PathBuf {
    let ns = if namespace.is_empty() { "default" } else { namespace };
    jobs_dir.join(ns).join(format!("{name}-{}", id.get(..8).unwrap_or(id)))
}

/// Validates `yaml`, chooses ports and records the job (state Created). `namespace`: where it is submitted
/// (`None`: the document's `metadata.namespace`, else the default namespace `""`).
pub async fn submit(
    store: &Store,
    jobs_dir: &Path,
    yaml: &str,
    namespace: Option<&str>,
) -> Result<TrainingJobRecord, JobError> {
    let job = TrainingJob::from_yaml(yaml)?;
    let namespace = match (namespace, &job.namespace) {
        (Some(given), Some(doc)) if given != doc => {
            return Err(JobError::Namespace { doc: doc.clone(), given: given.to_owned() })
        }
        (Some(given), _) => given.to_owned(),
        (None, Some(doc)) => doc.clone(),
        (None, None) => String::new(),
    };
    let ids = job.replicas();
    let ports = free_ports(ids.len()).map_err(JobError::Ports)?;
    let mut status = JobStatus::default();
    status.set_condition(
        job.kind,
        ConditionType::Created,
        &message(job.kind, &job.name, ConditionType::Created),
        &now_text(),
    );
    let status = serde_json::to_value(&status).unwrap_or_default();
    // One folder per submission (a resubmitted name gets a new one).
    let folder_id = uuid::Uuid::new_v4().to_string();
    let dir = job_dir(jobs_dir, &namespace, &job.name, &folder_id);
    let replicas = ids
        .iter()
        .zip(&ports)
        .map(|(id, port)| {
            (
                id.replica_type.as_str().to_owned(),
                i64::from(id.index),
                Some(i64::from(*port)),
                dir.join(format!("{id}.log")).display().to_string(),
            )
        })
        .collect();
    std::fs::create_dir_all(&dir).map_err(|source| JobError::Io {
        what: "creating job folder",
        path: dir.clone(),
        source,
    })?;
    let rec = store
        .create_training_job(&NewTrainingJob {
            namespace: &namespace,
            name: &job.name,
            kind: job.kind.as_str(),
            spec: yaml,
            status: &status,
            replicas,
        })
        .await;
    if rec.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(rec?)
}

/// Whether the process recorded as `rec`'s supervisor still runs (same pid, same start time, not a zombie).
fn supervisor_alive(rec: &TrainingJobRecord) -> bool {
    let Some(pid) = rec.supervisor_pid.and_then(|p| u32::try_from(p).ok()) else { return false };
    let same = crate::process::start_time(pid).and_then(|t| i64::try_from(t).ok()) == rec.supervisor_start;
    // A killed supervisor nobody reaped (its parent gone, an init that does not reap) is a zombie: gone.
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])))
        .unwrap_or(true);
    rec.supervisor_start.is_some() && same && !zombie
}

/// Whether a job whose supervisor stopped while `lost` replicas ran may run again: every lost replica's
/// `restartPolicy` allows a restart (`OnFailure`, `Always`, `ExitCode`: a lost exit code counts as retryable,
/// as the operator's "no exit code" does) and `restarts` (the job's total) is within `backoffLimit`. Shared by
/// [`recover`] (a supervisor that died) and [`supervise`] (one that was stopped: a server's SIGTERM).
fn may_restart<'r>(job: &TrainingJob, mut lost: impl Iterator<Item = &'r str>, restarts: u32) -> bool {
    let policies_allow = lost.all(|t| {
        secondrow_train::ReplicaType::parse(t)
            .and_then(|t| job.group(t))
            .is_some_and(|g| g.restart_policy != secondrow_train::RestartPolicy::Never)
    });
    policies_allow && !backoff_exceeded(job, restarts)
}

fn supervisor_stopped_message(kind: JobKind, name: &str, restart: bool) -> String {
    if restart {
        format!("{kind} {name} is restarting because its supervisor stopped.")
    } else {
        format!("{kind} {name} is failed because its supervisor stopped while it ran.")
    }
}

/// Jobs left unfinished by a supervisor that is gone (a killed server or background `job supervise`), adopted
/// by this process: each is first claimed with a compare-and-swap on the supervisor it recorded (so a
/// supervisor starting right now, e.g. the background one of a `job submit` made while the server starts,
/// and this pass never both run it: the loser leaves it alone). Replicas recorded as running are lost: their
/// process groups are killed (never adopted: they are not this process's children); the job is marked
/// Restarting, their restarts counted, when [`may_restart`] allows, else Failed. A job with no lost replica
/// (never started yet, or stopped with a record by its supervisor) is simply run again as recorded. Returns
/// the jobs to supervise here. Jobs whose supervisor runs are left alone.
pub async fn recover(store: &Store) -> Result<Vec<String>, JobError> {
    let me = std::process::id();
    let my_start = crate::process::start_time(me).and_then(|t| i64::try_from(t).ok());
    let mut again = Vec::new();
    for rec in store.unfinished_training_jobs().await? {
        if supervisor_alive(&rec) {
            tracing::debug!(job = %rec.name, "training job still has its supervisor");
            continue;
        }
        let expected = (rec.supervisor_pid, rec.supervisor_start);
        match store.claim_training_job(&rec.id, expected, i64::from(me), my_start).await {
            Ok(true) => {}
            Ok(false) | Err(StoreError::NotFound { .. }) => {
                tracing::debug!(job = %rec.name, "training job claimed by another supervisor meanwhile");
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let lost = |r: &secondrow_store::ReplicaRecord| r.state == ReplicaState::Running;
        if !rec.replicas.iter().any(lost) {
            tracing::info!(job = %rec.name, state = %rec.state.as_str(), "adopting training job with no running replica");
            again.push(rec.id.clone());
            continue;
        }
        tracing::info!(job = %rec.name, "training job lost its supervisor");
        for r in &rec.replicas {
            if let (Some(pid), Some(start)) = (r.pid, r.pid_start) {
                if let (Ok(pid), Ok(start)) = (u32::try_from(pid), u64::try_from(start)) {
                    crate::process::kill_orphan_group(pid, start).await;
                }
            }
        }
        let mut status: JobStatus = serde_json::from_value(rec.status.clone()).unwrap_or_default();
        let job = TrainingJob::from_yaml(&rec.spec).ok();
        let restarts: u32 = rec.replicas.iter().map(|r| u32::try_from(r.restarts).unwrap_or(0)).sum();
        let restartable = job.as_ref().is_some_and(|job| {
            may_restart(job, rec.replicas.iter().filter(|r| lost(r)).map(|r| r.replica_type.as_str()), restarts)
        });
        let kind = JobKind::parse(&rec.kind).unwrap_or(JobKind::PyTorchJob);
        let msg = supervisor_stopped_message(kind, &rec.name, restartable);
        let (state, new_state, t) = if restartable {
            (TrainingJobState::Restarting, ReplicaState::Pending, ConditionType::Restarting)
        } else {
            (TrainingJobState::Failed, ReplicaState::Killed, ConditionType::Failed)
        };
        status.set_condition(kind, t, &msg, &now_text());
        let updates: Vec<ReplicaUpdate> = rec
            .replicas
            .iter()
            .filter(|r| lost(r) || r.state == ReplicaState::Pending)
            .map(|r| ReplicaUpdate {
                replica_type: r.replica_type.clone(),
                index: r.index,
                state: new_state,
                pid: None,
                pid_start: None,
                restarts: r.restarts + i64::from(restartable && lost(r) && r.pid.is_some()),
                exit_code: r.exit_code,
            })
            .collect();
        let now = secondrow_store::now_ms();
        let status_json = serde_json::to_value(&status).unwrap_or_default();
        let update = TrainingJobUpdate {
            state,
            status: &status_json,
            started_at: rec.started_at,
            finished_at: (state == TrainingJobState::Failed).then_some(now),
            replicas: &updates,
        };
        match store.update_training_job(&rec.id, &update).await {
            Ok(()) if restartable => again.push(rec.id.clone()),
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(again)
}

/// The running state of one replica inside [`supervise`].
struct Replica {
    id: ReplicaId,
    state: ReplicaState,
    pid: Option<i64>,
    pid_start: Option<i64>,
    restarts: i64,
    exit_code: Option<i64>,
    log: PathBuf,
    /// Cancels this replica's current process (kills its group).
    cancel: Option<CancellationToken>,
    /// Bumped per start, so the end of a previous process is told apart.
    attempt: u32,
    process: bool,
}

impl Replica {
    fn update(&self) -> ReplicaUpdate {
        ReplicaUpdate {
            replica_type: self.id.replica_type.as_str().to_owned(),
            index: i64::from(self.id.index),
            state: self.state,
            pid: self.pid,
            pid_start: self.pid_start,
            restarts: self.restarts,
            exit_code: self.exit_code,
        }
    }
}

enum Event {
    Started { index: usize, attempt: u32, pid: u32 },
    Ended { index: usize, attempt: u32, exit: Result<Exit, String> },
}

struct Supervisor<'a> {
    foreground: bool,
    output_dir: Option<PathBuf>,
    store: &'a Store,
    rec_id: String,
    job: TrainingJob,
    placement: Placement,
    cwd: PathBuf,
    replicas: Vec<Replica>,
    status: JobStatus,
    started_at: Option<i64>,
    restarts_total: u32,
    worker0_succeeded: bool,
    tx: mpsc::UnboundedSender<Event>,
    events: Option<JobEvents>,
}

/// How [`supervise`] ended: the job finished; its record is gone (`job delete`); the caller cancelled; or
/// another live process supervises it (it claimed the job first, see [`Store::claim_training_job`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Finished(TrainingJobState),
    Deleted,
    Cancelled,
    Elsewhere,
}

/// Runs job `id` (recorded by [`submit`]) to its end. `cancel` stops it: its replicas' process groups are
/// killed and the job is recorded as [`recover`] would find it after a crash, decided now: Restarting (the
/// killed replicas Pending, their restarts counted) when their policies allow, else Failed — so the next
/// supervisor (a restarted server) runs it again without a lost replica. A `cancel` already set before the
/// job is claimed leaves it untouched. Returns how it ended.
pub async fn supervise(
    store: &Store,
    id: &str,
    cancel: CancellationToken,
    events: Option<JobEvents>,
) -> Result<Stopped, JobError> {
    supervise_with_output(store, id, cancel, events, None, false).await
}

/// [`supervise`], giving every replica an output folder in `SECONDROW_OUTPUT_DIR` (SecondRow's own variable,
/// set only here): `output_dir` for rank 0, a folder beside its log for the others. The pipeline component
/// uses it to publish rank 0's output as an artifact. `foreground`: the caller waits on the job (`job submit
/// --follow`, a pipeline task, a tuning trial), so a `cancel` fails the job (nobody would resume it) instead
/// of leaving it to restart.
pub async fn supervise_with_output(
    store: &Store,
    id: &str,
    cancel: CancellationToken,
    events: Option<JobEvents>,
    output_dir: Option<PathBuf>,
    foreground: bool,
) -> Result<Stopped, JobError> {
    let rec = store.training_job_by_id(id).await?;
    if rec.state.is_finished() {
        return Ok(Stopped::Finished(rec.state));
    }
    let job = TrainingJob::from_yaml(&rec.spec)?;
    if cancel.is_cancelled() {
        return Ok(Stopped::Cancelled);
    }
    let me = std::process::id();
    let my_start = crate::process::start_time(me).and_then(|t| i64::try_from(t).ok());
    let mine = rec.supervisor_pid == Some(i64::from(me)) && rec.supervisor_start == my_start;
    if !mine && supervisor_alive(&rec) {
        return Ok(Stopped::Elsewhere);
    }
    // Compare-and-swap from the supervisor read above: of two processes starting on one job, one runs it.
    let expected = (rec.supervisor_pid, rec.supervisor_start);
    if !store.claim_training_job(&rec.id, expected, i64::from(me), my_start).await? {
        return Ok(Stopped::Elsewhere);
    }
    let dir = rec
        .replicas
        .first()
        .and_then(|r| Path::new(&r.log_path).parent().map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir);
    let hostfile_path = dir.join("hostfile");
    let ports: BTreeMap<ReplicaId, u16> = rec
        .replicas
        .iter()
        .filter_map(|r| {
            let t = secondrow_train::ReplicaType::parse(&r.replica_type)?;
            Some((ReplicaId::new(t, u32::try_from(r.index).ok()?), u16::try_from(r.port?).ok()?))
        })
        .collect();
    let placement = Placement {
        host: "127.0.0.1".into(),
        ports,
        hostfile: (job.kind == secondrow_train::JobKind::MPIJob).then(|| hostfile_path.display().to_string()),
    };
    if placement.hostfile.is_some() {
        std::fs::write(&hostfile_path, hostfile(&job)).map_err(|source| JobError::Io {
            what: "writing hostfile",
            path: hostfile_path.clone(),
            source,
        })?;
    }
    let status: JobStatus = serde_json::from_value(rec.status.clone()).unwrap_or_default();
    let replicas = job
        .replicas()
        .into_iter()
        .map(|rid| {
            let r = rec.replicas.iter().find(|r| {
                secondrow_train::ReplicaType::parse(&r.replica_type) == Some(rid.replica_type)
                    && r.index == i64::from(rid.index)
            });
            Replica {
                id: rid,
                state: ReplicaState::Pending,
                pid: None,
                pid_start: None,
                restarts: r.map_or(0, |r| r.restarts),
                exit_code: None,
                log: r.map_or_else(|| dir.join(format!("{rid}.log")), |r| PathBuf::from(&r.log_path)),
                cancel: None,
                attempt: 0,
                process: job.runs_process(rid),
            }
        })
        .collect();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut sup = Supervisor {
        foreground,
        output_dir,
        store,
        rec_id: rec.id.clone(),
        cwd: dir,
        job,
        placement,
        replicas,
        status,
        started_at: rec.started_at,
        restarts_total: rec.replicas.iter().map(|r| u32::try_from(r.restarts).unwrap_or(0)).sum(),
        worker0_succeeded: false,
        tx,
        events,
    };
    let result = sup.run(&mut rx, cancel.clone()).await;
    let result = match result {
        Ok(Stopped::Cancelled) => sup.stop_cancelled(&mut rx).await,
        other => other,
    };
    // Whatever happened, nothing this job started outlives it.
    sup.kill_all(&mut rx).await;
    let stopped = result?;
    if let Stopped::Finished(_) = stopped {
        if let Some(ttl) = sup.job.run_policy.ttl_seconds_after_finished {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(u64::from(ttl))) => {}
                // Stopped while waiting: the job stays, finished.
                _ = cancel.cancelled() => return Ok(stopped),
            }
            let ns = rec.namespace.clone();
            match store.delete_training_job(&ns, &rec.name).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => sup.say(format!("job {} deleted (ttl)", rec.name)),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(stopped)
}

impl Supervisor<'_> {
    fn say(&self, line: String) {
        if let Some(tx) = &self.events {
            let _ = tx.send(line);
        }
    }

    fn start(&mut self, index: usize) {
        let r = &mut self.replicas[index];
        r.attempt += 1;
        r.state = ReplicaState::Pending;
        r.pid = None;
        let group = match self.job.group(r.id.replica_type) {
            Some(g) => g,
            None => return,
        };
        let mut env = replica_env(&self.job, r.id, &self.placement);
        if let Some(out) = &self.output_dir {
            let dir = if index == 0 { out.clone() } else { r.log.with_extension("output") };
            let _ = std::fs::create_dir_all(&dir);
            env.push(("SECONDROW_OUTPUT_DIR".to_owned(), dir.display().to_string()));
        }
        let cwd = group.container.working_dir.as_ref().map_or_else(|| self.cwd.clone(), PathBuf::from);
        let (pid_tx, mut pid_rx) = mpsc::unbounded_channel();
        let pj = ProcessJob {
            argv: group.container.argv(),
            env,
            cwd,
            sandbox: None,
            on_start: Some(pid_tx),
            stdout_log: r.log.clone(),
            stderr_log: r.log.clone(),
            tail: None,
            mounts: Vec::new(),
            timeout: None,
            redact: Vec::new(),
        };
        let token = CancellationToken::new();
        r.cancel = Some(token.clone());
        let (tx, attempt) = (self.tx.clone(), r.attempt);
        let tx2 = tx.clone();
        tokio::spawn(async move {
            if let Some(pid) = pid_rx.recv().await {
                let _ = tx2.send(Event::Started { index, attempt, pid });
            }
        });
        tokio::spawn(async move {
            let exit = run_process(pj, token).await.map(|(e, _)| e).map_err(|e| e.to_string());
            let _ = tx.send(Event::Ended { index, attempt, exit });
        });
    }

    fn counts(&self) -> BTreeMap<secondrow_train::ReplicaType, ReplicaCounts> {
        let mut out: BTreeMap<_, ReplicaCounts> = BTreeMap::new();
        for r in &self.replicas {
            let c = out.entry(r.id.replica_type).or_default();
            match r.state {
                ReplicaState::Running | ReplicaState::Pending => c.active += 1,
                ReplicaState::Succeeded => c.succeeded += 1,
                ReplicaState::Failed => c.failed += 1,
                ReplicaState::Killed => {}
            }
        }
        out
    }

    /// Records the job's state with every replica's, in one transaction.
    async fn record(&mut self, state: TrainingJobState) -> Result<(), StoreError> {
        self.status.replica_statuses = self.counts();
        let now = secondrow_store::now_ms();
        if self.started_at.is_none() && state == TrainingJobState::Running {
            self.started_at = Some(now);
            self.status.start_time = Some(now_text());
        }
        let finished = state.is_finished().then_some(now);
        if finished.is_some() {
            self.status.completion_time = Some(now_text());
        }
        let status = serde_json::to_value(&self.status).unwrap_or_default();
        let updates: Vec<ReplicaUpdate> = self.replicas.iter().map(Replica::update).collect();
        self.store
            .update_training_job(
                &self.rec_id,
                &TrainingJobUpdate {
                    state,
                    status: &status,
                    started_at: self.started_at,
                    finished_at: finished,
                    replicas: &updates,
                },
            )
            .await
    }

    fn condition(&mut self, t: ConditionType, msg: &str) {
        let kind = self.job.kind;
        self.status.set_condition(kind, t, msg, &now_text());
        self.say(format!("{}: {msg}", t.as_str()));
    }

    /// Starts every replica and waits until all run (or one cannot start).
    async fn gang_start(&mut self, rx: &mut mpsc::UnboundedReceiver<Event>) -> Result<Option<String>, StoreError> {
        for i in 0..self.replicas.len() {
            if self.replicas[i].process {
                self.start(i);
            } else {
                self.replicas[i].state = ReplicaState::Running;
            }
        }
        while self.replicas.iter().any(|r| r.state == ReplicaState::Pending) {
            let Some(ev) = rx.recv().await else { break };
            match ev {
                Event::Started { index, attempt, pid } if self.replicas[index].attempt == attempt => {
                    self.on_started(index, pid);
                }
                Event::Ended { index, attempt, exit } if self.replicas[index].attempt == attempt => {
                    let id = self.replicas[index].id;
                    match exit {
                        Err(e) => {
                            self.replicas[index].cancel = None;
                            self.replicas[index].state = ReplicaState::Failed;
                            return Ok(Some(format!("replica {id} could not start: {e}")));
                        }
                        Ok(exit) => {
                            // It ran and ended before the others started: handled as an exit once all run.
                            self.replicas[index].state = ReplicaState::Running;
                            let _ = self.tx.send(Event::Ended { index, attempt, exit: Ok(exit) });
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }

    fn on_started(&mut self, index: usize, pid: u32) {
        let r = &mut self.replicas[index];
        // The process's end may be seen before its start (two tasks report them): an ended replica stays ended.
        if r.state != ReplicaState::Pending {
            return;
        }
        r.state = ReplicaState::Running;
        r.pid = Some(i64::from(pid));
        r.pid_start = crate::process::start_time(pid).and_then(|t| i64::try_from(t).ok());
        let line = format!("replica {} running (pid {pid})", r.id);
        self.say(line);
    }

    async fn run(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Event>,
        cancel: CancellationToken,
    ) -> Result<Stopped, JobError> {
        let name = self.job.name.clone();
        let kind = self.job.kind;
        if let Some(problem) = self.gang_start(rx).await? {
            return self.fail(rx, &problem).await;
        }
        self.condition(ConditionType::Running, &message(kind, &name, ConditionType::Running));
        if let Some(s) = self.record_or_stop(TrainingJobState::Running).await? {
            return Ok(s);
        }
        let deadline = self.job.run_policy.active_deadline_seconds.map(Duration::from_secs);
        let deadline = async move {
            match deadline {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = &mut deadline => return self.fail(rx, &deadline_message(&name)).await,
                _ = cancel.cancelled() => return Ok(Stopped::Cancelled),
            };
            let Some(ev) = ev else { return Ok(Stopped::Cancelled) };
            match ev {
                Event::Started { index, attempt, pid } if self.replicas[index].attempt == attempt => {
                    self.on_started(index, pid);
                    if self.replicas.iter().all(|r| r.state != ReplicaState::Pending) {
                        self.condition(ConditionType::Running, &message(kind, &name, ConditionType::Running));
                    }
                    if let Some(s) = self.record_or_stop(self.state()).await? {
                        return Ok(s);
                    }
                }
                Event::Ended { index, attempt, exit } if self.replicas[index].attempt == attempt => {
                    if let Some(s) = self.on_ended(rx, index, exit).await? {
                        return Ok(s);
                    }
                }
                _ => {}
            }
        }
    }

    fn state(&self) -> TrainingJobState {
        match self.status.state() {
            Some(ConditionType::Restarting) => TrainingJobState::Restarting,
            Some(ConditionType::Succeeded) => TrainingJobState::Succeeded,
            Some(ConditionType::Failed) => TrainingJobState::Failed,
            Some(ConditionType::Running) => TrainingJobState::Running,
            Some(ConditionType::Created) | None => TrainingJobState::Created,
        }
    }

    /// Records; a deleted job stops the supervisor.
    async fn record_or_stop(&mut self, state: TrainingJobState) -> Result<Option<Stopped>, JobError> {
        match self.record(state).await {
            Ok(()) => Ok(None),
            Err(StoreError::NotFound { .. }) => Ok(Some(Stopped::Deleted)),
            Err(e) => Err(e.into()),
        }
    }

    async fn on_ended(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Event>,
        index: usize,
        exit: Result<Exit, String>,
    ) -> Result<Option<Stopped>, JobError> {
        let id = self.replicas[index].id;
        let name = self.job.name.clone();
        let kind = self.job.kind;
        let code = match &exit {
            Ok(Exit::Code(c)) => *c,
            Ok(Exit::Signal(s)) => 128 + s,
            Ok(Exit::Canceled) | Ok(Exit::TimedOut(_)) => return Ok(None),
            Err(_) => 1,
        };
        self.replicas[index].exit_code = Some(i64::from(code));
        self.replicas[index].pid = None;
        self.replicas[index].cancel = None;
        if code == 0 {
            self.replicas[index].state = ReplicaState::Succeeded;
            self.say(format!("replica {id} succeeded"));
            if id.replica_type == secondrow_train::ReplicaType::Worker && id.index == 0 {
                self.worker0_succeeded = true;
            }
        } else {
            let policy = self.job.group(id.replica_type).map(|g| g.restart_policy);
            let restart = policy.is_some_and(|p| should_restart(p, code));
            self.say(format!("replica {id} exited with code {code}"));
            if restart && backoff_exceeded(&self.job, self.restarts_total) {
                self.replicas[index].state = ReplicaState::Failed;
                return self.fail(rx, &backoff_message(&name)).await.map(Some);
            }
            if restart {
                self.restarts_total += 1;
                self.replicas[index].restarts += 1;
                self.replicas[index].state = ReplicaState::Pending;
                self.condition(
                    ConditionType::Restarting,
                    &format!("{kind} {name} is restarting because 1 {} replica(s) failed.", id.replica_type),
                );
                if let Some(s) = self.record_or_stop(TrainingJobState::Restarting).await? {
                    return Ok(Some(s));
                }
                self.start(index);
                return Ok(None);
            }
            self.replicas[index].state = ReplicaState::Failed;
        }
        match outcome(&self.job, &self.counts(), self.worker0_succeeded) {
            Outcome::Running => {
                let state = self.state();
                self.record_or_stop(state).await
            }
            Outcome::Succeeded => {
                self.stop_others(rx).await;
                self.condition(ConditionType::Succeeded, &message(kind, &name, ConditionType::Succeeded));
                Ok(Some(
                    self.record_or_stop(TrainingJobState::Succeeded)
                        .await?
                        .unwrap_or(Stopped::Finished(TrainingJobState::Succeeded)),
                ))
            }
            Outcome::Failed { replica_type, failed } => {
                self.fail(rx, &failed_message(kind, &name, replica_type, failed)).await.map(Some)
            }
        }
    }

    /// The supervisor was cancelled (its process stops): the replicas' groups are killed and the job recorded
    /// as [`recover`] decides for a supervisor that died, so no replica is killed without a record.
    async fn stop_cancelled(&mut self, rx: &mut mpsc::UnboundedReceiver<Event>) -> Result<Stopped, JobError> {
        let killed: Vec<usize> = (0..self.replicas.len())
            .filter(|&i| matches!(self.replicas[i].state, ReplicaState::Running | ReplicaState::Pending))
            .collect();
        if killed.is_empty() {
            return Ok(Stopped::Cancelled);
        }
        // Those whose process ran count a restart (as a lost replica does in `recover`).
        let ran: Vec<bool> = killed
            .iter()
            .map(|&i| self.replicas[i].process && self.replicas[i].state == ReplicaState::Running)
            .collect();
        self.kill_all(rx).await;
        let types: Vec<&str> = killed.iter().map(|&i| self.replicas[i].id.replica_type.as_str()).collect();
        let restart = !self.foreground && may_restart(&self.job, types.into_iter(), self.restarts_total);
        let msg = if self.foreground {
            format!("{} {} is failed because its supervisor was interrupted.", self.job.kind, self.job.name)
        } else {
            supervisor_stopped_message(self.job.kind, &self.job.name, restart)
        };
        for (&i, ran) in killed.iter().zip(ran) {
            let r = &mut self.replicas[i];
            r.pid = None;
            r.pid_start = None;
            if restart {
                r.restarts += i64::from(ran);
                r.state = ReplicaState::Pending;
            } else {
                r.state = ReplicaState::Killed;
            }
        }
        let (t, state) = if restart {
            (ConditionType::Restarting, TrainingJobState::Restarting)
        } else {
            (ConditionType::Failed, TrainingJobState::Failed)
        };
        self.condition(t, &msg);
        Ok(self.record_or_stop(state).await?.unwrap_or(Stopped::Cancelled))
    }

    /// Fails the job: the other replicas' process groups are killed, then the Failed condition is recorded.
    async fn fail(&mut self, rx: &mut mpsc::UnboundedReceiver<Event>, msg: &str) -> Result<Stopped, JobError> {
        self.stop_others(rx).await;
        for r in &mut self.replicas {
            if r.state == ReplicaState::Pending {
                r.state = ReplicaState::Killed;
            }
        }
        self.condition(ConditionType::Failed, msg);
        Ok(self.record_or_stop(TrainingJobState::Failed).await?.unwrap_or(Stopped::Finished(TrainingJobState::Failed)))
    }

    /// Kills every replica still running and waits for their ends; they are recorded as Killed (MPI's
    /// process-less workers end with the job: Succeeded if it did).
    async fn stop_others(&mut self, rx: &mut mpsc::UnboundedReceiver<Event>) {
        let succeeded = matches!(outcome(&self.job, &self.counts(), self.worker0_succeeded), Outcome::Succeeded);
        self.kill_all(rx).await;
        for r in &mut self.replicas {
            if r.state == ReplicaState::Running && !r.process {
                r.state = if succeeded { ReplicaState::Succeeded } else { ReplicaState::Killed };
            }
        }
    }

    async fn kill_all(&mut self, rx: &mut mpsc::UnboundedReceiver<Event>) {
        let mut waiting = 0;
        for r in &mut self.replicas {
            if let Some(t) = r.cancel.take() {
                t.cancel();
                waiting += 1;
            }
        }
        while waiting > 0 {
            let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await else { break };
            if let Event::Ended { index, attempt, .. } = ev {
                let r = &mut self.replicas[index];
                if r.attempt == attempt {
                    waiting -= 1;
                    if matches!(r.state, ReplicaState::Running | ReplicaState::Pending) {
                        r.state = ReplicaState::Killed;
                        r.pid = None;
                    }
                }
            }
        }
    }
}

/// One replica's log, or every replica's under a `==> worker-0 <==` header.
pub fn render_logs(rec: &TrainingJobRecord, replica: Option<&str>) -> Result<String, JobError> {
    let name = |r: &secondrow_store::ReplicaRecord| format!("{}-{}", r.replica_type.to_ascii_lowercase(), r.index);
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    match replica {
        Some(want) => {
            let want = want.to_ascii_lowercase();
            let r = rec.replicas.iter().find(|r| name(r) == want).ok_or_else(|| JobError::NoReplica {
                job: rec.name.clone(),
                replica: want.clone(),
                have: rec.replicas.iter().map(name).collect::<Vec<_>>().join(", "),
            })?;
            Ok(read(&r.log_path))
        }
        None => Ok(rec.replicas.iter().map(|r| format!("==> {} <==\n{}", name(r), read(&r.log_path))).collect()),
    }
}

/// The job as the Kubernetes object `kubectl get -o yaml` prints: the submitted spec with metadata and the
/// operator-shaped status (replica statuses with their label selectors).
pub fn document(rec: &TrainingJobRecord) -> serde_json::Value {
    let submitted: serde_json::Value = serde_yaml_ng::from_str(&rec.spec).unwrap_or(serde_json::Value::Null);
    let spec = submitted.get("spec").cloned().unwrap_or(serde_json::Value::Null);
    let mut status = rec.status.clone();
    let operator = format!("{}-controller", rec.kind.to_ascii_lowercase());
    if let Some(map) = status.get_mut("replicaStatuses").and_then(|v| v.as_object_mut()) {
        for (t, v) in map.iter_mut() {
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "selector".into(),
                    format!(
                        "training.kubeflow.org/job-name={},training.kubeflow.org/operator-name={operator},training.kubeflow.org/replica-type={}",
                        rec.name,
                        t.to_ascii_lowercase()
                    )
                    .into(),
                );
            }
        }
    }
    let created = chrono::DateTime::from_timestamp_millis(rec.created_at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    serde_json::json!({
        "apiVersion": "kubeflow.org/v1",
        "kind": rec.kind,
        "metadata": {
            "name": rec.name,
            "namespace": if rec.namespace.is_empty() { "default" } else { &rec.namespace },
            "uid": rec.id,
            "creationTimestamp": created,
        },
        "spec": spec,
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &Path) -> Store {
        Store::open(&format!("sqlite://{}", dir.join("db.sqlite").display())).await.unwrap()
    }

    fn sh_job(name: &str, extra: &str, workers: &str) -> String {
        format!(
            "apiVersion: kubeflow.org/v1\nkind: JAXJob\nmetadata: {{name: {name}}}\nspec:\n{extra}  jaxReplicaSpecs:\n    Worker:\n{workers}"
        )
    }

    #[tokio::test]
    async fn a_failed_replica_fails_the_job_and_stops_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let yaml = sh_job(
            "fail",
            "",
            "      replicas: 2\n      template: {spec: {containers: [{name: jax, image: i, command: [sh, -c, 'echo id=$PROCESS_ID of $NUM_PROCESSES; if [ $PROCESS_ID = 1 ]; then exit 3; fi; sleep 60']}]}}\n",
        );
        let rec = submit(&s, dir.path(), &yaml, None).await.unwrap();
        let t0 = std::time::Instant::now();
        let end = supervise(&s, &rec.id, CancellationToken::new(), None).await.unwrap();
        assert_eq!(end, Stopped::Finished(TrainingJobState::Failed));
        assert!(t0.elapsed() < Duration::from_secs(30), "worker-0 was killed, not waited for");
        let got = s.training_job_by_id(&rec.id).await.unwrap();
        assert_eq!(got.replicas[0].state, ReplicaState::Killed);
        assert_eq!((got.replicas[1].state, got.replicas[1].exit_code), (ReplicaState::Failed, Some(3)));
        let log = std::fs::read_to_string(&got.replicas[1].log_path).unwrap();
        assert!(log.contains("id=1 of 2"), "{log}");
        let conds = got.status["conditions"].as_array().unwrap();
        let last = conds.last().unwrap();
        assert_eq!(last["type"], "Failed");
        assert_eq!(last["reason"], "JAXJobFailed");
        assert_eq!(got.status["replicaStatuses"]["Worker"]["failed"], 1);
    }

    #[tokio::test]
    async fn exit_code_policy_restarts_retryable_codes_within_the_backoff_limit() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let marker = dir.path().join("once");
        // First run exits 137 (retryable), the second succeeds.
        let yaml = sh_job(
            "retry",
            "  runPolicy: {backoffLimit: 2}\n",
            &format!(
                "      replicas: 1\n      restartPolicy: ExitCode\n      template: {{spec: {{containers: [{{name: jax, image: i, command: [sh, -c, 'if [ -e {m} ]; then exit 0; fi; touch {m}; exit 137']}}]}}}}\n",
                m = marker.display()
            ),
        );
        let rec = submit(&s, dir.path(), &yaml, Some("team-a")).await.unwrap();
        assert_eq!(rec.namespace, "team-a");
        let end = supervise(&s, &rec.id, CancellationToken::new(), None).await.unwrap();
        assert_eq!(end, Stopped::Finished(TrainingJobState::Succeeded));
        let got = s.training_job_by_id(&rec.id).await.unwrap();
        assert_eq!(got.replicas[0].restarts, 1);
        let types: Vec<&str> =
            got.status["conditions"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["Created", "Running", "Succeeded"], "Restarting was replaced by Running");

        // A permanent code (1..=127) is not retried; backoffLimit 0 allows no restart at all.
        let yaml = sh_job(
            "permanent",
            "",
            "      restartPolicy: ExitCode\n      template: {spec: {containers: [{name: jax, image: i, command: [sh, -c, 'exit 2']}]}}\n",
        );
        let rec = submit(&s, dir.path(), &yaml, None).await.unwrap();
        assert_eq!(
            supervise(&s, &rec.id, CancellationToken::new(), None).await.unwrap(),
            Stopped::Finished(TrainingJobState::Failed)
        );
        assert_eq!(s.training_job_by_id(&rec.id).await.unwrap().replicas[0].restarts, 0);
        let yaml = sh_job(
            "backoff",
            "  runPolicy: {backoffLimit: 1}\n",
            "      restartPolicy: OnFailure\n      template: {spec: {containers: [{name: jax, image: i, command: [sh, -c, 'exit 1']}]}}\n",
        );
        let rec = submit(&s, dir.path(), &yaml, None).await.unwrap();
        supervise(&s, &rec.id, CancellationToken::new(), None).await.unwrap();
        let got = s.training_job_by_id(&rec.id).await.unwrap();
        assert_eq!(got.replicas[0].restarts, 1);
        let last = got.status["conditions"].as_array().unwrap().last().unwrap().clone();
        assert!(last["message"].as_str().unwrap().contains("backoff limit"), "{last}");
    }

    #[tokio::test]
    async fn deadline_and_missing_commands_fail_the_job() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let yaml = sh_job(
            "slow",
            "  runPolicy: {activeDeadlineSeconds: 1}\n",
            "      template: {spec: {containers: [{name: jax, image: i, command: [sleep, '60']}]}}\n",
        );
        let rec = submit(&s, dir.path(), &yaml, None).await.unwrap();
        assert_eq!(
            supervise(&s, &rec.id, CancellationToken::new(), None).await.unwrap(),
            Stopped::Finished(TrainingJobState::Failed)
        );
        let got = s.training_job_by_id(&rec.id).await.unwrap();
        assert_eq!(got.replicas[0].state, ReplicaState::Killed);
        let last = got.status["conditions"].as_array().unwrap().last().unwrap().clone();
        assert!(last["message"].as_str().unwrap().contains("deadline"), "{last}");

        let yaml = sh_job(
            "nocmd",
            "",
            "      replicas: 2\n      template: {spec: {containers: [{name: jax, image: i, command: [/no/such/program]}]}}\n",
        );
        let rec = submit(&s, dir.path(), &yaml, None).await.unwrap();
        assert_eq!(
            supervise(&s, &rec.id, CancellationToken::new(), None).await.unwrap(),
            Stopped::Finished(TrainingJobState::Failed)
        );
        let got = s.training_job_by_id(&rec.id).await.unwrap();
        let last = got.status["conditions"].as_array().unwrap().last().unwrap().clone();
        assert!(last["message"].as_str().unwrap().contains("could not start"), "{last}");
        // Names are unique per namespace.
        assert_eq!(submit(&s, dir.path(), &yaml, None).await.unwrap_err().kind(), ErrorKind::AlreadyExists);
    }

    fn alive(pid: i64) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
            .unwrap_or(false)
    }

    /// Waits (polling, 20 s at most) until job `id`'s record passes `ok`.
    async fn wait_record(s: &Store, id: &str, ok: impl Fn(&TrainingJobRecord) -> bool) -> TrainingJobRecord {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let rec = s.training_job_by_id(id).await.unwrap();
            if ok(&rec) {
                return rec;
            }
            assert!(std::time::Instant::now() < deadline, "timed out waiting on {rec:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_cancelled_supervisor_kills_and_records_its_replicas_per_policy() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        for (name, policy, state) in
            [("again", "OnFailure", TrainingJobState::Restarting), ("never", "Never", TrainingJobState::Failed)]
        {
            let yaml = sh_job(
                name,
                "",
                &format!("      replicas: 2\n      restartPolicy: {policy}\n      template: {{spec: {{containers: [{{name: jax, image: i, command: [sleep, '60']}}]}}}}\n"),
            );
            let rec = submit(&s, dir.path(), &yaml, None).await.unwrap();
            let cancel = CancellationToken::new();
            let task = tokio::spawn({
                let (s, id, cancel) = (s.clone(), rec.id.clone(), cancel.clone());
                async move { supervise(&s, &id, cancel, None).await }
            });
            let running = wait_record(&s, &rec.id, |r| {
                r.state == TrainingJobState::Running && r.replicas.iter().all(|r| r.pid.is_some())
            })
            .await;
            cancel.cancel();
            assert_eq!(task.await.unwrap().unwrap(), Stopped::Cancelled);
            assert!(running.replicas.iter().all(|r| !alive(r.pid.unwrap())), "no replica outlives its supervisor");
            let got = s.training_job_by_id(&rec.id).await.unwrap();
            assert_eq!(got.state, state, "{name}");
            let last = got.status["conditions"].as_array().unwrap().last().unwrap().clone();
            assert!(last["message"].as_str().unwrap().contains("supervisor stopped"), "{last}");
            for r in &got.replicas {
                assert_eq!(r.pid, None);
                if state == TrainingJobState::Restarting {
                    assert_eq!((r.state, r.restarts), (ReplicaState::Pending, 1));
                } else {
                    assert_eq!((r.state, r.restarts), (ReplicaState::Killed, 0));
                }
            }
        }
        // The next recovery pass runs the restarting job again as recorded (nothing was lost: no further
        // restart counted) and leaves the failed one alone.
        let again = s.get_training_job("", "again").await.unwrap();
        // As after a restart: the recorded supervisor (this process) is gone; pid 999999999 never runs.
        let claimed = (again.supervisor_pid, again.supervisor_start);
        assert!(s.claim_training_job(&again.id, claimed, 999_999_999, Some(1)).await.unwrap());
        assert_eq!(recover(&s).await.unwrap(), vec![again.id.clone()]);
        let got = s.training_job_by_id(&again.id).await.unwrap();
        assert_eq!(got.state, TrainingJobState::Restarting);
        assert!(got.replicas.iter().all(|r| r.restarts == 1));
        assert_eq!(got.supervisor_pid, Some(i64::from(std::process::id())), "claimed by the recovering process");
        // A supervisor cancelled before it starts leaves the job as it is.
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert_eq!(supervise(&s, &again.id, cancel, None).await.unwrap(), Stopped::Cancelled);
        assert_eq!(s.training_job_by_id(&again.id).await.unwrap().replicas, got.replicas);
    }

    #[tokio::test]
    async fn a_job_not_started_yet_is_adopted_once_and_never_run_twice() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let yaml = sh_job(
            "fresh",
            "",
            "      restartPolicy: Never\n      template: {spec: {containers: [{name: jax, image: i, command: [sh, -c, 'exit 0']}]}}\n",
        );
        // Submitted (as `job submit` does before its background supervisor claims it) while a server starts:
        // the recovery pass does not count it lost (a Never job would fail) but claims and runs it.
        let rec = submit(&s, dir.path(), &yaml, None).await.unwrap();
        assert_eq!(recover(&s).await.unwrap(), vec![rec.id.clone()]);
        let got = s.training_job_by_id(&rec.id).await.unwrap();
        assert_eq!(got.state, TrainingJobState::Created);
        assert!(got.status["conditions"].as_array().unwrap().iter().all(|c| c["type"] != "Failed"));
        // A second pass leaves it to its (live) supervisor, this process.
        assert!(recover(&s).await.unwrap().is_empty());
        assert_eq!(
            supervise(&s, &rec.id, CancellationToken::new(), None).await.unwrap(),
            Stopped::Finished(TrainingJobState::Succeeded)
        );

        // Claimed by another live process (here init, pid 1): a supervisor here does not run it, nor does a
        // recovery pass.
        let yaml = yaml.replace("name: fresh", "name: taken");
        let rec = submit(&s, dir.path(), &yaml, None).await.unwrap();
        let init_start = crate::process::start_time(1).and_then(|t| i64::try_from(t).ok());
        assert!(s.claim_training_job(&rec.id, (None, None), 1, init_start).await.unwrap());
        assert_eq!(supervise(&s, &rec.id, CancellationToken::new(), None).await.unwrap(), Stopped::Elsewhere);
        assert!(recover(&s).await.unwrap().is_empty());
        assert_eq!(s.training_job_by_id(&rec.id).await.unwrap().state, TrainingJobState::Created);
    }
}
