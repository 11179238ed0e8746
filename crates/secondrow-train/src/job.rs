//! The typed job: parsed from `kubeflow.org/v1` YAML, validated as the Training Operator's webhooks (and,
//! for MPIJob, its controller) validate, then defaulted as its scheme defaulter does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The five v1 job kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobKind {
    PyTorchJob,
    TFJob,
    MPIJob,
    JAXJob,
    XGBoostJob,
}

impl JobKind {
    pub const ALL: [JobKind; 5] =
        [JobKind::PyTorchJob, JobKind::TFJob, JobKind::MPIJob, JobKind::JAXJob, JobKind::XGBoostJob];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::PyTorchJob => "PyTorchJob",
            JobKind::TFJob => "TFJob",
            JobKind::MPIJob => "MPIJob",
            JobKind::JAXJob => "JAXJob",
            JobKind::XGBoostJob => "XGBoostJob",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The resource's plural (`pytorchjobs`), as in API paths.
    pub fn plural(self) -> &'static str {
        match self {
            JobKind::PyTorchJob => "pytorchjobs",
            JobKind::TFJob => "tfjobs",
            JobKind::MPIJob => "mpijobs",
            JobKind::JAXJob => "jaxjobs",
            JobKind::XGBoostJob => "xgboostjobs",
        }
    }

    pub fn from_plural(s: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.plural() == s)
    }

    /// The key of the replica-spec map under `spec`.
    pub fn specs_field(self) -> &'static str {
        match self {
            JobKind::PyTorchJob => "pytorchReplicaSpecs",
            JobKind::TFJob => "tfReplicaSpecs",
            JobKind::MPIJob => "mpiReplicaSpecs",
            JobKind::JAXJob => "jaxReplicaSpecs",
            JobKind::XGBoostJob => "xgbReplicaSpecs",
        }
    }

    /// The framework container's name (the one that runs, and the one whose exit code counts).
    pub fn container_name(self) -> &'static str {
        match self {
            JobKind::PyTorchJob => "pytorch",
            JobKind::TFJob => "tensorflow",
            JobKind::MPIJob => "mpi",
            JobKind::JAXJob => "jax",
            JobKind::XGBoostJob => "xgboost",
        }
    }

    /// The default port's name and number.
    pub fn default_port(self) -> (&'static str, u16) {
        match self {
            JobKind::PyTorchJob => ("pytorchjob-port", 23456),
            JobKind::TFJob => ("tfjob-port", 2222),
            JobKind::MPIJob => ("mpi-port", 9999),
            JobKind::JAXJob => ("jaxjob-port", 6666),
            JobKind::XGBoostJob => ("xgboostjob-port", 9999),
        }
    }

    /// The replica types this kind accepts, rank 0's type first.
    pub fn replica_types(self) -> &'static [ReplicaType] {
        use ReplicaType::*;
        match self {
            JobKind::PyTorchJob => &[Master, Worker],
            JobKind::TFJob => &[Chief, Master, Worker, PS, Evaluator],
            JobKind::MPIJob => &[Launcher, Worker],
            JobKind::JAXJob => &[Worker],
            JobKind::XGBoostJob => &[Master, Worker],
        }
    }

    pub fn default_restart_policy(self) -> RestartPolicy {
        match self {
            JobKind::PyTorchJob => RestartPolicy::OnFailure,
            _ => RestartPolicy::Never,
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A replica type. The order of the variants is the rank order (a Master/Chief/Launcher is rank 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ReplicaType {
    Launcher,
    Chief,
    Master,
    Worker,
    PS,
    Evaluator,
}

impl ReplicaType {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaType::Launcher => "Launcher",
            ReplicaType::Chief => "Chief",
            ReplicaType::Master => "Master",
            ReplicaType::Worker => "Worker",
            ReplicaType::PS => "PS",
            ReplicaType::Evaluator => "Evaluator",
        }
    }

    /// Lower case, as in pod names and labels (`worker`).
    pub fn lower(self) -> String {
        self.as_str().to_ascii_lowercase()
    }

    fn parse_exact(s: &str) -> Option<ReplicaType> {
        use ReplicaType::*;
        [Launcher, Chief, Master, Worker, PS, Evaluator].into_iter().find(|t| t.as_str() == s)
    }

    fn parse_any_case(s: &str) -> Option<ReplicaType> {
        use ReplicaType::*;
        [Launcher, Chief, Master, Worker, PS, Evaluator].into_iter().find(|t| t.as_str().eq_ignore_ascii_case(s))
    }

    /// Parses `worker` as well as `Worker` (replica names in the CLI).
    pub fn parse(s: &str) -> Option<ReplicaType> {
        ReplicaType::parse_any_case(s)
    }
}

impl std::fmt::Display for ReplicaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
    ExitCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CleanPodPolicy {
    #[default]
    None,
    Running,
    All,
}

/// `spec.runPolicy`, defaulted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunPolicy {
    pub clean_pod_policy: CleanPodPolicy,
    pub ttl_seconds_after_finished: Option<u32>,
    pub active_deadline_seconds: Option<u64>,
    pub backoff_limit: Option<u32>,
    pub suspend: bool,
}

/// One environment variable of a container (`value` only; `valueFrom` is refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// The container a replica runs as a local process. The image is ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub working_dir: Option<String>,
}

impl Container {
    /// command followed by args (empty when neither is given).
    pub fn argv(&self) -> Vec<String> {
        self.command.iter().chain(&self.args).cloned().collect()
    }
}

/// One replica type of a job, defaulted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaGroup {
    pub replica_type: ReplicaType,
    pub replicas: u32,
    pub restart_policy: RestartPolicy,
    /// The framework container (named as [`JobKind::container_name`]; MPI: container 0).
    pub container: Container,
}

/// `spec.elasticPolicy` of a PyTorchJob, defaulted (min/max filled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElasticPolicy {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub rdzv_backend: String,
    pub rdzv_host: Option<String>,
    pub rdzv_port: Option<u16>,
    pub rdzv_id: Option<String>,
    pub rdzv_conf: Vec<(String, String)>,
    pub standalone: bool,
    pub max_restarts: Option<u32>,
    pub n_proc_per_node: Option<u32>,
}

/// A validated, defaulted job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingJob {
    pub kind: JobKind,
    pub name: String,
    /// `metadata.namespace` when the document gives one.
    pub namespace: Option<String>,
    /// Replica types in rank order.
    pub groups: Vec<ReplicaGroup>,
    pub run_policy: RunPolicy,
    /// PyTorchJob `spec.nprocPerNode` (`auto` by default).
    pub nproc_per_node: String,
    pub elastic_policy: Option<ElasticPolicy>,
    /// TFJob `spec.successPolicy` (`""` or `AllWorkers`).
    pub success_policy: String,
    pub enable_dynamic_worker: bool,
    /// MPIJob `spec.slotsPerWorker` (1 by default).
    pub slots_per_worker: u32,
}

impl TrainingJob {
    /// Parses, validates and defaults one job document.
    pub fn from_yaml(text: &str) -> Result<TrainingJob> {
        let raw: RawJob = serde_yaml_ng::from_str(text).map_err(|e| TrainError::Parse(e.to_string()))?;
        raw.into_job()
    }

    pub fn group(&self, t: ReplicaType) -> Option<&ReplicaGroup> {
        self.groups.iter().find(|g| g.replica_type == t)
    }

    /// Sum of replicas over all types.
    pub fn total_replicas(&self) -> u32 {
        self.groups.iter().map(|g| g.replicas).sum()
    }

    /// Every replica in rank order: (type, index).
    pub fn replicas(&self) -> Vec<crate::ReplicaId> {
        self.groups
            .iter()
            .flat_map(|g| (0..g.replicas).map(move |i| crate::ReplicaId { replica_type: g.replica_type, index: i }))
            .collect()
    }

    /// The replicas that run a process: all of them, except MPI workers without a command (on Kubernetes they
    /// only host the launcher's ranks; locally `mpirun` starts the ranks itself).
    pub fn runs_process(&self, id: crate::ReplicaId) -> bool {
        match (self.kind, self.group(id.replica_type)) {
            (JobKind::MPIJob, Some(g)) if id.replica_type == ReplicaType::Worker => !g.container.argv().is_empty(),
            (_, Some(_)) => true,
            (_, None) => false,
        }
    }
}

// ---- raw document ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawJob {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: RawMeta,
    spec: Option<RawSpec>,
}

#[derive(Debug, Default, Deserialize)]
struct RawMeta {
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    pytorch_replica_specs: Option<BTreeMap<String, RawReplicaSpec>>,
    tf_replica_specs: Option<BTreeMap<String, RawReplicaSpec>>,
    mpi_replica_specs: Option<BTreeMap<String, RawReplicaSpec>>,
    jax_replica_specs: Option<BTreeMap<String, RawReplicaSpec>>,
    xgb_replica_specs: Option<BTreeMap<String, RawReplicaSpec>>,
    run_policy: Option<RawRunPolicy>,
    // MPIJob keeps these at the top level of spec too.
    clean_pod_policy: Option<CleanPodPolicy>,
    nproc_per_node: Option<serde_yaml_ng::Value>,
    elastic_policy: Option<RawElasticPolicy>,
    success_policy: Option<String>,
    enable_dynamic_worker: Option<bool>,
    slots_per_worker: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRunPolicy {
    clean_pod_policy: Option<CleanPodPolicy>,
    ttl_seconds_after_finished: Option<i64>,
    active_deadline_seconds: Option<i64>,
    backoff_limit: Option<i64>,
    suspend: Option<bool>,
    managed_by: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawElasticPolicy {
    min_replicas: Option<i64>,
    max_replicas: Option<i64>,
    rdzv_backend: Option<String>,
    rdzv_host: Option<String>,
    rdzv_port: Option<i64>,
    rdzv_id: Option<String>,
    #[serde(default)]
    rdzv_conf: Vec<RawKeyValue>,
    standalone: Option<bool>,
    max_restarts: Option<i64>,
    n_proc_per_node: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct RawKeyValue {
    key: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawReplicaSpec {
    replicas: Option<i64>,
    restart_policy: Option<String>,
    #[serde(default)]
    template: RawTemplate,
}

#[derive(Debug, Default, Deserialize)]
struct RawTemplate {
    #[serde(default)]
    spec: RawPodSpec,
}

#[derive(Debug, Default, Deserialize)]
struct RawPodSpec {
    #[serde(default)]
    containers: Vec<RawContainer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContainer {
    name: Option<String>,
    image: Option<String>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<RawEnvVar>,
    working_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvVar {
    name: String,
    value: Option<String>,
    value_from: Option<serde_yaml_ng::Value>,
}

/// `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1035_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

fn non_negative(v: Option<i64>, path: &str) -> Result<Option<u64>> {
    match v {
        None => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as u64)),
        Some(n) => Err(TrainError::invalid(path, format!("must be >= 0, got {n}"))),
    }
}

fn small(v: Option<u64>, path: &str) -> Result<Option<u32>> {
    v.map(|n| u32::try_from(n).map_err(|_| TrainError::invalid(path, format!("{n} is too large")))).transpose()
}

impl RawJob {
    fn into_job(self) -> Result<TrainingJob> {
        match self.api_version.as_deref() {
            Some("kubeflow.org/v1") => {}
            Some(other) => {
                return Err(TrainError::invalid("apiVersion", format!("must be kubeflow.org/v1, got {other:?}")))
            }
            None => return Err(TrainError::invalid("apiVersion", "is required (kubeflow.org/v1)")),
        }
        let kind_text = self.kind.ok_or_else(|| TrainError::invalid("kind", "is required"))?;
        let kind = JobKind::parse(&kind_text).ok_or_else(|| {
            TrainError::invalid(
                "kind",
                format!("unknown kind {kind_text:?}; expected one of PyTorchJob, TFJob, MPIJob, JAXJob, XGBoostJob"),
            )
        })?;
        let name = self.metadata.name.ok_or_else(|| TrainError::invalid("metadata.name", "is required"))?;
        if !is_dns1035_label(&name) {
            return Err(TrainError::invalid(
                "metadata.name",
                format!(
                    "{name:?} must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter, \
                     ending with a letter or digit, at most 63 characters"
                ),
            ));
        }
        if let Some(ns) = &self.metadata.namespace {
            if !crate::job::is_dns1123_label(ns) {
                return Err(TrainError::invalid("metadata.namespace", format!("{ns:?} is not a valid namespace")));
            }
        }
        let mut spec = self.spec.ok_or_else(|| TrainError::invalid("spec", "is required"))?;
        let specs_field = kind.specs_field();
        let specs = match kind {
            JobKind::PyTorchJob => spec.pytorch_replica_specs.take(),
            JobKind::TFJob => spec.tf_replica_specs.take(),
            JobKind::MPIJob => spec.mpi_replica_specs.take(),
            JobKind::JAXJob => spec.jax_replica_specs.take(),
            JobKind::XGBoostJob => spec.xgb_replica_specs.take(),
        };
        let specs = specs.ok_or_else(|| TrainError::invalid(format!("spec.{specs_field}"), "is required"))?;
        if specs.is_empty() {
            return Err(TrainError::invalid(format!("spec.{specs_field}"), "must name at least one replica type"));
        }
        let run = spec.run_policy.take().unwrap_or_default();
        if let Some(m) = &run.managed_by {
            if kind != JobKind::JAXJob && m != "kubeflow.org/training-operator" && m != "kueue.x-k8s.io/multikueue" {
                return Err(TrainError::invalid(
                    "spec.runPolicy.managedBy",
                    format!("{m:?} must be kubeflow.org/training-operator or kueue.x-k8s.io/multikueue"),
                ));
            }
        }
        if run.managed_by.as_deref() == Some("kueue.x-k8s.io/multikueue") {
            return Err(TrainError::unsupported("spec.runPolicy.managedBy", "a job managed by MultiKueue"));
        }

        let mut groups = Vec::new();
        for (key, rs) in specs {
            let path = format!("spec.{specs_field}.{key}");
            // The webhooks compare keys exactly; TFJob accepts any key and the defaulter fixes its case.
            let rtype =
                if kind == JobKind::TFJob { ReplicaType::parse_any_case(&key) } else { ReplicaType::parse_exact(&key) };
            let rtype = match rtype {
                Some(t) if kind.replica_types().contains(&t) => t,
                _ => {
                    let allowed: Vec<&str> = kind.replica_types().iter().map(|t| t.as_str()).collect();
                    return Err(TrainError::invalid(
                        path,
                        format!("unknown replica type {key:?} for {kind}; expected one of {}", allowed.join(", ")),
                    ));
                }
            };
            if groups.iter().any(|g: &ReplicaGroup| g.replica_type == rtype) {
                return Err(TrainError::invalid(path, format!("replica type {rtype} is given twice")));
            }
            groups.push(group(kind, rtype, rs, &path)?);
        }
        groups.sort_by_key(|g| g.replica_type);
        per_kind_rules(kind, &groups, specs_field)?;

        let clean_pod_policy =
            run.clean_pod_policy.or(if kind == JobKind::MPIJob { spec.clean_pod_policy } else { None });
        let run_policy = RunPolicy {
            clean_pod_policy: clean_pod_policy.unwrap_or_default(),
            ttl_seconds_after_finished: small(
                non_negative(run.ttl_seconds_after_finished, "spec.runPolicy.ttlSecondsAfterFinished")?,
                "spec.runPolicy.ttlSecondsAfterFinished",
            )?,
            active_deadline_seconds: non_negative(run.active_deadline_seconds, "spec.runPolicy.activeDeadlineSeconds")?,
            backoff_limit: small(
                non_negative(run.backoff_limit, "spec.runPolicy.backoffLimit")?,
                "spec.runPolicy.backoffLimit",
            )?,
            suspend: run.suspend.unwrap_or(false),
        };
        if run_policy.suspend {
            return Err(TrainError::unsupported("spec.runPolicy.suspend", "submitting a suspended job"));
        }

        let mut job = TrainingJob {
            kind,
            name,
            namespace: self.metadata.namespace,
            groups,
            run_policy,
            nproc_per_node: "auto".into(),
            elastic_policy: None,
            success_policy: String::new(),
            enable_dynamic_worker: false,
            slots_per_worker: 1,
        };
        match kind {
            JobKind::PyTorchJob => pytorch_options(&mut job, &spec)?,
            JobKind::TFJob => {
                job.success_policy = spec.success_policy.clone().unwrap_or_default();
                if !matches!(job.success_policy.as_str(), "" | "AllWorkers") {
                    return Err(TrainError::invalid(
                        "spec.successPolicy",
                        format!("{:?} must be \"\" or AllWorkers", job.success_policy),
                    ));
                }
                job.enable_dynamic_worker = spec.enable_dynamic_worker.unwrap_or(false);
            }
            JobKind::MPIJob => {
                let s = small(non_negative(spec.slots_per_worker, "spec.slotsPerWorker")?, "spec.slotsPerWorker")?;
                job.slots_per_worker = s.unwrap_or(1);
                if job.slots_per_worker == 0 {
                    return Err(TrainError::invalid("spec.slotsPerWorker", "must be at least 1"));
                }
            }
            JobKind::JAXJob | JobKind::XGBoostJob => {}
        }
        for g in &job.groups {
            if job.runs_process(crate::ReplicaId { replica_type: g.replica_type, index: 0 })
                && g.container.argv().is_empty()
            {
                return Err(TrainError::invalid(
                    format!("spec.{specs_field}.{}.template.spec.containers[{}].command", g.replica_type, 0),
                    "a local replica needs a command (the image's entrypoint is not known here)",
                ));
            }
        }
        Ok(job)
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

fn group(kind: JobKind, rtype: ReplicaType, rs: RawReplicaSpec, path: &str) -> Result<ReplicaGroup> {
    let replicas = match rs.replicas {
        None => {
            // The PyTorch and XGBoost webhooks reject an unset Master count (objects are not yet defaulted).
            if rtype == ReplicaType::Master && matches!(kind, JobKind::PyTorchJob | JobKind::XGBoostJob) {
                return Err(TrainError::invalid(format!("{path}.replicas"), "must be set to 1 for Master"));
            }
            if kind == JobKind::MPIJob && rtype == ReplicaType::Worker {
                0
            } else {
                1
            }
        }
        Some(n) if n < 0 => {
            return Err(TrainError::invalid(format!("{path}.replicas"), format!("must be >= 0, got {n}")))
        }
        Some(n) => u32::try_from(n).map_err(|_| TrainError::invalid(format!("{path}.replicas"), "is too large"))?,
    };
    let restart_policy = match rs.restart_policy.as_deref() {
        None => kind.default_restart_policy(),
        Some("Always") => RestartPolicy::Always,
        Some("OnFailure") => RestartPolicy::OnFailure,
        Some("Never") => RestartPolicy::Never,
        Some("ExitCode") => RestartPolicy::ExitCode,
        Some(other) => {
            return Err(TrainError::invalid(
                format!("{path}.restartPolicy"),
                format!("{other:?} must be Always, OnFailure, Never or ExitCode"),
            ))
        }
    };
    let cpath = format!("{path}.template.spec.containers");
    if rs.template.spec.containers.is_empty() {
        return Err(TrainError::invalid(cpath, "must have at least one container"));
    }
    for (i, c) in rs.template.spec.containers.iter().enumerate() {
        if c.image.as_deref().unwrap_or("").is_empty() {
            return Err(TrainError::invalid(format!("{cpath}[{i}].image"), "is required"));
        }
        if c.name.as_deref().unwrap_or("").is_empty() {
            return Err(TrainError::invalid(format!("{cpath}[{i}].name"), "is required"));
        }
    }
    let wanted = kind.container_name();
    let index = if kind == JobKind::MPIJob {
        0
    } else {
        rs.template.spec.containers.iter().position(|c| c.name.as_deref() == Some(wanted)).ok_or_else(|| {
            TrainError::invalid(
                cpath.clone(),
                format!("there must be a container named {wanted:?} (the {kind} framework container)"),
            )
        })?
    };
    if rs.template.spec.containers.len() > 1 {
        return Err(TrainError::unsupported(cpath, "more than one container per replica (sidecars)"));
    }
    let raw = rs.template.spec.containers.into_iter().nth(index).unwrap_or_default();
    let mut env = Vec::new();
    for (j, e) in raw.env.into_iter().enumerate() {
        if e.value_from.is_some() {
            return Err(TrainError::unsupported(format!("{cpath}[{index}].env[{j}].valueFrom"), "valueFrom"));
        }
        env.push(EnvVar { name: e.name, value: e.value.unwrap_or_default() });
    }
    Ok(ReplicaGroup {
        replica_type: rtype,
        replicas,
        restart_policy,
        container: Container {
            name: raw.name.unwrap_or_default(),
            command: raw.command,
            args: raw.args,
            env,
            working_dir: raw.working_dir,
        },
    })
}

fn per_kind_rules(kind: JobKind, groups: &[ReplicaGroup], specs_field: &str) -> Result<()> {
    let get = |t: ReplicaType| groups.iter().find(|g| g.replica_type == t);
    let path = |t: ReplicaType| format!("spec.{specs_field}.{t}.replicas");
    match kind {
        JobKind::PyTorchJob | JobKind::XGBoostJob => {
            if let Some(m) = get(ReplicaType::Master) {
                if m.replicas != 1 {
                    return Err(TrainError::invalid(path(ReplicaType::Master), "must be 1 for Master"));
                }
            } else if kind == JobKind::XGBoostJob {
                return Err(TrainError::invalid(format!("spec.{specs_field}.Master"), "is required"));
            }
        }
        JobKind::TFJob => {
            let chiefs: u32 = groups
                .iter()
                .filter(|g| matches!(g.replica_type, ReplicaType::Chief | ReplicaType::Master))
                .map(|g| g.replicas)
                .sum();
            if chiefs > 1 {
                return Err(TrainError::invalid(
                    format!("spec.{specs_field}"),
                    "at most one Chief or Master replica is allowed",
                ));
            }
        }
        JobKind::MPIJob => match get(ReplicaType::Launcher) {
            None => return Err(TrainError::invalid(format!("spec.{specs_field}.Launcher"), "is required")),
            Some(l) if l.replicas != 1 => {
                return Err(TrainError::invalid(path(ReplicaType::Launcher), "must be 1 for Launcher"))
            }
            Some(_) => {}
        },
        JobKind::JAXJob => {}
    }
    for g in groups {
        // A Worker (or any type but MPI's workers, which default to 0 hosts) must run at least one replica.
        if g.replicas == 0 && !(kind == JobKind::MPIJob && g.replica_type == ReplicaType::Worker) {
            return Err(TrainError::invalid(path(g.replica_type), "must be at least 1"));
        }
    }
    Ok(())
}

fn pytorch_options(job: &mut TrainingJob, spec: &RawSpec) -> Result<()> {
    if let Some(v) = &spec.nproc_per_node {
        let text = match v {
            serde_yaml_ng::Value::String(s) => s.clone(),
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            _ => return Err(TrainError::invalid("spec.nprocPerNode", "must be auto, cpu, gpu or an integer")),
        };
        let ok = matches!(text.as_str(), "auto" | "cpu" | "gpu") || text.parse::<u32>().is_ok_and(|n| n >= 1);
        if !ok {
            return Err(TrainError::invalid(
                "spec.nprocPerNode",
                format!("{text:?} must be auto, cpu, gpu or a positive integer"),
            ));
        }
        job.nproc_per_node = text;
    }
    let Some(e) = &spec.elastic_policy else { return Ok(()) };
    let Some(workers) = job.group(ReplicaType::Worker).map(|g| g.replicas) else {
        return Err(TrainError::invalid("spec.pytorchReplicaSpecs.Worker", "is required with elasticPolicy"));
    };
    if e.n_proc_per_node.is_some() && spec.nproc_per_node.is_some() {
        return Err(TrainError::invalid(
            "spec.elasticPolicy.nProcPerNode",
            "must not be set together with spec.nprocPerNode",
        ));
    }
    let p = "spec.elasticPolicy";
    let min = small(non_negative(e.min_replicas, &format!("{p}.minReplicas"))?, &format!("{p}.minReplicas"))?;
    let max = small(non_negative(e.max_replicas, &format!("{p}.maxReplicas"))?, &format!("{p}.maxReplicas"))?;
    let (min, max) = match (min, max) {
        (Some(a), Some(b)) => (a, b),
        (Some(a), None) => (a, a),
        (None, Some(b)) => (b, b),
        (None, None) => (workers, workers),
    };
    if min > max {
        return Err(TrainError::invalid(format!("{p}.minReplicas"), "must not exceed maxReplicas"));
    }
    let backend = e.rdzv_backend.clone().unwrap_or_else(|| "c10d".into());
    if !matches!(backend.as_str(), "c10d" | "etcd" | "etcd-v2") {
        return Err(TrainError::invalid(format!("{p}.rdzvBackend"), "must be c10d, etcd or etcd-v2"));
    }
    let rdzv_port = e
        .rdzv_port
        .map(|n| u16::try_from(n).map_err(|_| TrainError::invalid(format!("{p}.rdzvPort"), "is not a port")))
        .transpose()?;
    let n_proc = small(non_negative(e.n_proc_per_node, &format!("{p}.nProcPerNode"))?, &format!("{p}.nProcPerNode"))?;
    if let Some(n) = n_proc {
        job.nproc_per_node = n.to_string();
    }
    job.elastic_policy = Some(ElasticPolicy {
        min_replicas: min,
        max_replicas: max,
        rdzv_backend: backend,
        rdzv_host: e.rdzv_host.clone(),
        rdzv_port,
        rdzv_id: e.rdzv_id.clone(),
        rdzv_conf: e.rdzv_conf.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect(),
        standalone: e.standalone.unwrap_or(false),
        max_restarts: small(non_negative(e.max_restarts, &format!("{p}.maxRestarts"))?, &format!("{p}.maxRestarts"))?,
        n_proc_per_node: n_proc,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(yaml: &str) -> (String, String) {
        match TrainingJob::from_yaml(yaml) {
            Err(e) => (e.path().unwrap_or("").to_owned(), e.to_string()),
            Ok(j) => panic!("accepted: {j:?}"),
        }
    }

    const C: &str = "{template: {spec: {containers: [{name: pytorch, image: img, command: [python, t.py]}]}}}";

    fn pytorch(specs: &str) -> String {
        format!("apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {{name: ddp}}\nspec:\n  pytorchReplicaSpecs:\n{specs}")
    }

    #[test]
    fn defaults_are_applied() {
        let j = TrainingJob::from_yaml(&pytorch(&format!("    Master: {{replicas: 1, template: {{spec: {{containers: [{{name: pytorch, image: img, command: [python]}}]}}}}}}\n    Worker: {C}\n"))).unwrap();
        assert_eq!(j.kind, JobKind::PyTorchJob);
        assert_eq!(j.groups.len(), 2);
        assert_eq!(j.groups[0].replica_type, ReplicaType::Master);
        assert_eq!(j.groups[1].replicas, 1);
        assert_eq!(j.groups[1].restart_policy, RestartPolicy::OnFailure);
        assert_eq!(j.nproc_per_node, "auto");
        assert_eq!(j.run_policy.clean_pod_policy, CleanPodPolicy::None);
        assert_eq!(j.total_replicas(), 2);
    }

    #[test]
    fn names_and_kinds_are_checked() {
        let (p, _) = err("apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {name: Bad_Name}\nspec: {}\n");
        assert_eq!(p, "metadata.name");
        let (p, m) = err("apiVersion: kubeflow.org/v1\nkind: PaddleJob\nmetadata: {name: a}\nspec: {}\n");
        assert_eq!(p, "kind");
        assert!(m.contains("PaddleJob"), "{m}");
        let (p, _) = err("apiVersion: kubeflow.org/v2\nkind: PyTorchJob\nmetadata: {name: a}\nspec: {}\n");
        assert_eq!(p, "apiVersion");
        let (p, _) = err("apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {name: a}\nspec: {}\n");
        assert_eq!(p, "spec.pytorchReplicaSpecs");
        assert!(
            is_dns1035_label("a-1")
                && !is_dns1035_label("1a")
                && !is_dns1035_label("a-")
                && !is_dns1035_label(&"a".repeat(64))
        );
    }

    #[test]
    fn replica_type_keys_per_kind() {
        // Exact keys: the PyTorch webhook rejects `worker`.
        let (p, m) = err(&pytorch(&format!("    worker: {C}\n")));
        assert_eq!(p, "spec.pytorchReplicaSpecs.worker");
        assert!(m.contains("Master, Worker"), "{m}");
        let (p, _) = err(&pytorch(&format!("    Chief: {C}\n")));
        assert_eq!(p, "spec.pytorchReplicaSpecs.Chief");
        // TFJob fixes the case.
        let tf = "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {name: t}\nspec:\n  tfReplicaSpecs:\n    worker: {replicas: 2, template: {spec: {containers: [{name: tensorflow, image: i, command: [x]}]}}}\n";
        let j = TrainingJob::from_yaml(tf).unwrap();
        assert_eq!(j.groups[0].replica_type, ReplicaType::Worker);
        assert_eq!(j.groups[0].restart_policy, RestartPolicy::Never);
        let jax = "apiVersion: kubeflow.org/v1\nkind: JAXJob\nmetadata: {name: j}\nspec:\n  jaxReplicaSpecs:\n    Master: {template: {spec: {containers: [{name: jax, image: i, command: [x]}]}}}\n";
        assert_eq!(err(jax).0, "spec.jaxReplicaSpecs.Master");
    }

    #[test]
    fn counts_are_checked() {
        let (p, _) = err(&pytorch(&format!("    Master: {C}\n")));
        assert_eq!(p, "spec.pytorchReplicaSpecs.Master.replicas", "unset Master count is refused");
        let (p, _) = err(&pytorch(
            "    Master: {replicas: 2, template: {spec: {containers: [{name: pytorch, image: i, command: [x]}]}}}\n",
        ));
        assert_eq!(p, "spec.pytorchReplicaSpecs.Master.replicas");
        let (p, _) = err(&pytorch(
            "    Worker: {replicas: 0, template: {spec: {containers: [{name: pytorch, image: i, command: [x]}]}}}\n",
        ));
        assert_eq!(p, "spec.pytorchReplicaSpecs.Worker.replicas");
        let (p, _) = err(&pytorch(
            "    Worker: {replicas: -1, template: {spec: {containers: [{name: pytorch, image: i, command: [x]}]}}}\n",
        ));
        assert_eq!(p, "spec.pytorchReplicaSpecs.Worker.replicas");
        let xgb = "apiVersion: kubeflow.org/v1\nkind: XGBoostJob\nmetadata: {name: x}\nspec:\n  xgbReplicaSpecs:\n    Worker: {template: {spec: {containers: [{name: xgboost, image: i, command: [x]}]}}}\n";
        assert_eq!(err(xgb).0, "spec.xgbReplicaSpecs.Master");
        let tf = "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {name: t}\nspec:\n  tfReplicaSpecs:\n    Chief: {template: {spec: {containers: [{name: tensorflow, image: i, command: [x]}]}}}\n    Master: {template: {spec: {containers: [{name: tensorflow, image: i, command: [x]}]}}}\n";
        assert_eq!(err(tf).0, "spec.tfReplicaSpecs");
        let mpi = "apiVersion: kubeflow.org/v1\nkind: MPIJob\nmetadata: {name: m}\nspec:\n  mpiReplicaSpecs:\n    Worker: {replicas: 2, template: {spec: {containers: [{name: mpi, image: i}]}}}\n";
        assert_eq!(err(mpi).0, "spec.mpiReplicaSpecs.Launcher");
    }

    #[test]
    fn containers_are_checked() {
        let (p, m) =
            err(&pytorch("    Worker: {template: {spec: {containers: [{name: main, image: i, command: [x]}]}}}\n"));
        assert_eq!(p, "spec.pytorchReplicaSpecs.Worker.template.spec.containers");
        assert!(m.contains("\"pytorch\""), "{m}");
        let (p, _) = err(&pytorch("    Worker: {template: {spec: {containers: [{name: pytorch, command: [x]}]}}}\n"));
        assert_eq!(p, "spec.pytorchReplicaSpecs.Worker.template.spec.containers[0].image");
        let (p, _) = err(&pytorch("    Worker: {template: {spec: {containers: []}}}\n"));
        assert_eq!(p, "spec.pytorchReplicaSpecs.Worker.template.spec.containers");
        let (p, _) = err(&pytorch("    Worker: {template: {spec: {containers: [{name: pytorch, image: i}]}}}\n"));
        assert_eq!(p, "spec.pytorchReplicaSpecs.Worker.template.spec.containers[0].command");
        let (p, _) = err(&pytorch("    Worker: {restartPolicy: Sometimes, template: {spec: {containers: [{name: pytorch, image: i, command: [x]}]}}}\n"));
        assert_eq!(p, "spec.pytorchReplicaSpecs.Worker.restartPolicy");
        let e = TrainingJob::from_yaml(&pytorch("    Worker: {template: {spec: {containers: [{name: pytorch, image: i, command: [x], env: [{name: A, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]}}}\n")).unwrap_err();
        assert!(matches!(e, TrainError::Unsupported { .. }));
        assert_eq!(e.kind(), secondrow_error::ErrorKind::InvalidInput);
    }

    #[test]
    fn pytorch_options_are_checked() {
        let base = |extra: &str| {
            format!("apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {{name: ddp}}\nspec:\n{extra}  pytorchReplicaSpecs:\n    Worker: {{replicas: 3, template: {{spec: {{containers: [{{name: pytorch, image: i, command: [x]}}]}}}}}}\n")
        };
        assert_eq!(TrainingJob::from_yaml(&base("  nprocPerNode: \"4\"\n")).unwrap().nproc_per_node, "4");
        assert_eq!(TrainingJob::from_yaml(&base("  nprocPerNode: 2\n")).unwrap().nproc_per_node, "2");
        assert_eq!(err(&base("  nprocPerNode: many\n")).0, "spec.nprocPerNode");
        let j = TrainingJob::from_yaml(&base("  elasticPolicy: {maxReplicas: 5}\n")).unwrap();
        let e = j.elastic_policy.unwrap();
        assert_eq!((e.min_replicas, e.max_replicas, e.rdzv_backend.as_str()), (5, 5, "c10d"));
        assert_eq!(
            err(&base("  nprocPerNode: \"2\"\n  elasticPolicy: {nProcPerNode: 2}\n")).0,
            "spec.elasticPolicy.nProcPerNode"
        );
        assert_eq!(
            err(&base("  elasticPolicy: {minReplicas: 3, maxReplicas: 2}\n")).0,
            "spec.elasticPolicy.minReplicas"
        );
    }

    #[test]
    fn mpi_defaults() {
        let mpi = "apiVersion: kubeflow.org/v1\nkind: MPIJob\nmetadata: {name: m}\nspec:\n  slotsPerWorker: 2\n  cleanPodPolicy: Running\n  mpiReplicaSpecs:\n    Launcher: {template: {spec: {containers: [{name: launcher, image: i, command: [mpirun]}]}}}\n    Worker: {replicas: 2, template: {spec: {containers: [{name: mpi, image: i}]}}}\n";
        let j = TrainingJob::from_yaml(mpi).unwrap();
        assert_eq!(j.slots_per_worker, 2);
        assert_eq!(j.run_policy.clean_pod_policy, CleanPodPolicy::Running);
        assert_eq!(j.groups[0].replica_type, ReplicaType::Launcher);
        assert!(!j.runs_process(crate::ReplicaId { replica_type: ReplicaType::Worker, index: 0 }));
        assert!(j.runs_process(crate::ReplicaId { replica_type: ReplicaType::Launcher, index: 0 }));
    }
}
