//! What happens when replicas end: restarts (`restartPolicy`), the job's success and failure per kind, and
//! the job's `status` as the operator writes it (conditions with reasons, replica statuses).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::job::{JobKind, ReplicaType, RestartPolicy, TrainingJob};

/// Whether a replica that ended with `exit_code` (≠ 0; a signal `s` counts as `128 + s`) is started again.
/// OnFailure and Always restart; Never does not; ExitCode restarts retryable codes only (≥ 128: killed by a
/// signal, out of memory, preempted), while 1–127 are the program's own verdict and fail the job.
pub fn should_restart(policy: RestartPolicy, exit_code: i32) -> bool {
    match policy {
        RestartPolicy::Always | RestartPolicy::OnFailure => true,
        RestartPolicy::Never => false,
        RestartPolicy::ExitCode => is_retryable_exit_code(exit_code),
    }
}

/// The operator's rule for `ExitCode`: codes ≥ 128 are retryable, 1–127 permanent.
pub fn is_retryable_exit_code(code: i32) -> bool {
    code >= 128
}

/// Per replica type: how many replicas are running, succeeded, failed (for good, not restarted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaCounts {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub active: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub succeeded: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The state a job is in after its replicas' latest changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Succeeded,
    /// A replica type that failed (for the message).
    Failed {
        replica_type: ReplicaType,
        failed: u32,
    },
}

/// The job's outcome from its replicas' counts, by the operator's rules per kind. `worker0_succeeded` tells
/// TFJob's default success policy whether Worker-0 exited 0.
pub fn outcome(job: &TrainingJob, counts: &BTreeMap<ReplicaType, ReplicaCounts>, worker0_succeeded: bool) -> Outcome {
    let get = |t: ReplicaType| counts.get(&t).copied().unwrap_or_default();
    let replicas = |t: ReplicaType| job.group(t).map_or(0, |g| g.replicas);
    // Failure first: a replica that failed for good fails the job (TF's dynamic workers excepted).
    for g in &job.groups {
        let c = get(g.replica_type);
        let ignored = job.kind == JobKind::TFJob && job.enable_dynamic_worker && g.replica_type == ReplicaType::Worker;
        if c.failed > 0 && !ignored {
            return Outcome::Failed { replica_type: g.replica_type, failed: c.failed };
        }
    }
    let done = |t: ReplicaType| replicas(t) > 0 && get(t).succeeded >= replicas(t);
    let succeeded = match job.kind {
        JobKind::PyTorchJob => {
            if job.group(ReplicaType::Master).is_some() {
                done(ReplicaType::Master)
            } else if job.elastic_policy.is_some() {
                get(ReplicaType::Worker).succeeded > 0
            } else {
                done(ReplicaType::Worker)
            }
        }
        JobKind::TFJob => {
            if let Some(chief) = [ReplicaType::Chief, ReplicaType::Master].into_iter().find(|t| job.group(*t).is_some())
            {
                done(chief)
            } else if job.success_policy == "AllWorkers" {
                done(ReplicaType::Worker)
            } else {
                // Worker-0 exiting 0, or all workers.
                worker0_succeeded || done(ReplicaType::Worker)
            }
        }
        JobKind::MPIJob => done(ReplicaType::Launcher),
        JobKind::JAXJob => done(ReplicaType::Worker),
        JobKind::XGBoostJob => done(ReplicaType::Master),
    };
    if succeeded {
        Outcome::Succeeded
    } else {
        Outcome::Running
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionType {
    Created,
    Running,
    Restarting,
    Succeeded,
    Failed,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Created => "Created",
            ConditionType::Running => "Running",
            ConditionType::Restarting => "Restarting",
            ConditionType::Succeeded => "Succeeded",
            ConditionType::Failed => "Failed",
        }
    }

    pub fn parse(s: &str) -> Option<ConditionType> {
        use ConditionType::*;
        [Created, Running, Restarting, Succeeded, Failed].into_iter().find(|c| c.as_str() == s)
    }
}

/// One entry of `status.conditions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub condition_type: ConditionType,
    /// `"True"` or `"False"`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_update_time: String,
    pub last_transition_time: String,
}

/// A job's `status`, as `kubectl get <kind> -o yaml` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    pub conditions: Vec<Condition>,
    pub replica_statuses: BTreeMap<ReplicaType, ReplicaCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
}

impl JobStatus {
    /// The last condition's type that is True (the printed "State"); `Created` before anything else.
    pub fn state(&self) -> Option<ConditionType> {
        self.conditions.iter().rev().find(|c| c.status == "True").map(|c| c.condition_type)
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.state(), Some(ConditionType::Succeeded | ConditionType::Failed))
    }

    /// Sets condition `t` True with reason `<Kind><Type>` and `message`, by the operator's rules: one entry per
    /// type; Running and Restarting replace each other; Succeeded and Failed set Running False; after Failed
    /// nothing changes. Returns whether anything changed.
    pub fn set_condition(&mut self, kind: JobKind, t: ConditionType, message: &str, now: &str) -> bool {
        if self.conditions.iter().any(|c| c.condition_type == ConditionType::Failed && c.status == "True") {
            return false;
        }
        let reason = format!("{}{}", kind.as_str(), t.as_str());
        if let Some(c) = self.conditions.iter().find(|c| c.condition_type == t) {
            if c.status == "True" && c.reason == reason && c.message == message {
                return false;
            }
        }
        match t {
            ConditionType::Running => self.conditions.retain(|c| c.condition_type != ConditionType::Restarting),
            ConditionType::Restarting => self.conditions.retain(|c| c.condition_type != ConditionType::Running),
            ConditionType::Succeeded | ConditionType::Failed => {
                for c in self.conditions.iter_mut().filter(|c| c.condition_type == ConditionType::Running) {
                    if c.status != "False" {
                        c.status = "False".into();
                        c.last_update_time = now.into();
                        c.last_transition_time = now.into();
                    }
                }
            }
            ConditionType::Created => {}
        }
        let entry = Condition {
            condition_type: t,
            status: "True".into(),
            reason,
            message: message.into(),
            last_update_time: now.into(),
            last_transition_time: now.into(),
        };
        match self.conditions.iter_mut().find(|c| c.condition_type == t) {
            Some(c) => {
                let transition = if c.status == "True" { c.last_transition_time.clone() } else { now.into() };
                *c = Condition { last_transition_time: transition, ..entry };
            }
            None => self.conditions.push(entry),
        }
        true
    }
}

/// The operator's condition messages.
pub fn message(kind: JobKind, name: &str, t: ConditionType) -> String {
    match t {
        ConditionType::Created => format!("{kind} {name} is created."),
        ConditionType::Running => format!("{kind} {name} is running."),
        ConditionType::Restarting => format!("{kind} {name} is restarting."),
        ConditionType::Succeeded => format!("{kind} {name} is successfully completed."),
        ConditionType::Failed => format!("{kind} {name} is failed."),
    }
}

/// Failed message for a replica type that failed.
pub fn failed_message(kind: JobKind, name: &str, t: ReplicaType, failed: u32) -> String {
    format!("{kind} {name} is failed because {failed} {t} replica(s) failed.")
}

/// Failed message when `activeDeadlineSeconds` passed.
pub fn deadline_message(name: &str) -> String {
    format!("Job {name} has failed because it was active longer than specified deadline")
}

/// Failed message when `backoffLimit` was reached.
pub fn backoff_message(name: &str) -> String {
    format!("Job {name} has failed because it has reached the specified backoff limit")
}

/// Whether the job's replicas, having been restarted `restarts` times in all, may not be restarted again:
/// restarts reached `backoffLimit` (a limit of 0 allows none; no limit allows any number).
pub fn backoff_exceeded(job: &TrainingJob, restarts: u32) -> bool {
    job.run_policy.backoff_limit.is_some_and(|limit| restarts >= limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> TrainingJob {
        TrainingJob::from_yaml(yaml).unwrap()
    }

    fn counts(list: &[(ReplicaType, u32, u32, u32)]) -> BTreeMap<ReplicaType, ReplicaCounts> {
        list.iter().map(|&(t, a, s, f)| (t, ReplicaCounts { active: a, succeeded: s, failed: f })).collect()
    }

    const PT: &str = "apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {name: ddp}\nspec:\n  pytorchReplicaSpecs:\n    Master: {replicas: 1, template: {spec: {containers: [{name: pytorch, image: i, command: [x]}]}}}\n    Worker: {replicas: 2, template: {spec: {containers: [{name: pytorch, image: i, command: [x]}]}}}\n";

    #[test]
    fn exit_code_policy() {
        assert!(should_restart(RestartPolicy::OnFailure, 1));
        assert!(should_restart(RestartPolicy::Always, 1));
        assert!(!should_restart(RestartPolicy::Never, 137));
        assert!(should_restart(RestartPolicy::ExitCode, 137));
        assert!(should_restart(RestartPolicy::ExitCode, 128));
        assert!(!should_restart(RestartPolicy::ExitCode, 127));
        assert!(!should_restart(RestartPolicy::ExitCode, 1));
    }

    #[test]
    fn success_per_kind() {
        let j = job(PT);
        use ReplicaType::*;
        assert_eq!(outcome(&j, &counts(&[(Master, 0, 1, 0), (Worker, 2, 0, 0)]), false), Outcome::Succeeded);
        assert_eq!(outcome(&j, &counts(&[(Master, 1, 0, 0), (Worker, 0, 2, 0)]), false), Outcome::Running);
        assert_eq!(
            outcome(&j, &counts(&[(Master, 1, 0, 0), (Worker, 1, 0, 1)]), false),
            Outcome::Failed { replica_type: Worker, failed: 1 }
        );
        let jax = job("apiVersion: kubeflow.org/v1\nkind: JAXJob\nmetadata: {name: j}\nspec:\n  jaxReplicaSpecs:\n    Worker: {replicas: 2, template: {spec: {containers: [{name: jax, image: i, command: [x]}]}}}\n");
        assert_eq!(outcome(&jax, &counts(&[(Worker, 1, 1, 0)]), false), Outcome::Running);
        assert_eq!(outcome(&jax, &counts(&[(Worker, 0, 2, 0)]), false), Outcome::Succeeded);
        let mpi = job("apiVersion: kubeflow.org/v1\nkind: MPIJob\nmetadata: {name: m}\nspec:\n  mpiReplicaSpecs:\n    Launcher: {template: {spec: {containers: [{name: mpi, image: i, command: [mpirun]}]}}}\n    Worker: {replicas: 2, template: {spec: {containers: [{name: mpi, image: i}]}}}\n");
        assert_eq!(outcome(&mpi, &counts(&[(Launcher, 0, 1, 0), (Worker, 2, 0, 0)]), false), Outcome::Succeeded);
        let tf = job("apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {name: t}\nspec:\n  successPolicy: AllWorkers\n  tfReplicaSpecs:\n    Worker: {replicas: 2, template: {spec: {containers: [{name: tensorflow, image: i, command: [x]}]}}}\n    PS: {template: {spec: {containers: [{name: tensorflow, image: i, command: [x]}]}}}\n");
        assert_eq!(outcome(&tf, &counts(&[(Worker, 1, 1, 0), (PS, 1, 0, 0)]), false), Outcome::Running);
        assert_eq!(
            outcome(&tf, &counts(&[(Worker, 0, 2, 0), (PS, 1, 0, 0)]), false),
            Outcome::Succeeded,
            "PS not awaited"
        );
        let tf0 = job("apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {name: t}\nspec:\n  tfReplicaSpecs:\n    Worker: {replicas: 2, template: {spec: {containers: [{name: tensorflow, image: i, command: [x]}]}}}\n");
        assert_eq!(outcome(&tf0, &counts(&[(Worker, 1, 1, 0)]), true), Outcome::Succeeded, "Worker-0 exited 0");
        assert_eq!(outcome(&tf0, &counts(&[(Worker, 1, 1, 0)]), false), Outcome::Running);
    }

    #[test]
    fn conditions_follow_the_operator() {
        let mut s = JobStatus::default();
        let k = JobKind::PyTorchJob;
        assert!(s.set_condition(k, ConditionType::Created, &message(k, "ddp", ConditionType::Created), "t0"));
        s.set_condition(k, ConditionType::Running, "r", "t1");
        s.set_condition(k, ConditionType::Restarting, "x", "t2");
        assert!(s.conditions.iter().all(|c| c.condition_type != ConditionType::Running), "Restarting replaces Running");
        s.set_condition(k, ConditionType::Running, "r", "t3");
        assert!(s.conditions.iter().all(|c| c.condition_type != ConditionType::Restarting));
        s.set_condition(k, ConditionType::Failed, "f", "t4");
        let running = s.conditions.iter().find(|c| c.condition_type == ConditionType::Running).unwrap();
        assert_eq!(running.status, "False");
        assert_eq!(s.state(), Some(ConditionType::Failed));
        assert_eq!(s.conditions.last().unwrap().reason, "PyTorchJobFailed");
        assert!(!s.set_condition(k, ConditionType::Succeeded, "s", "t5"), "nothing changes after Failed");
        assert!(s.is_finished());
    }

    #[test]
    fn backoff_limit() {
        let mut j = job(PT);
        assert!(!backoff_exceeded(&j, 100));
        j.run_policy.backoff_limit = Some(2);
        assert!(!backoff_exceeded(&j, 1));
        assert!(backoff_exceeded(&j, 2));
        j.run_policy.backoff_limit = Some(0);
        assert!(backoff_exceeded(&j, 0));
    }
}
