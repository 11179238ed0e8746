//! The environment each replica gets, as the Training Operator sets it, with one difference forced by one
//! machine: every peer is on the loopback host, so each replica has a port of its own where on Kubernetes
//! each pod has the same port on its own address. Where the operator writes a peer's Service name
//! (`<job>-master-0`), the address here is [`Placement::host`]; where it writes a type's port, the port of
//! that type's replica 0 (or of the replica itself, for its own listening port).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::job::{JobKind, ReplicaType, TrainingJob};

/// One replica of a job: type and index (`worker-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaId {
    pub replica_type: ReplicaType,
    pub index: u32,
}

impl ReplicaId {
    pub fn new(replica_type: ReplicaType, index: u32) -> ReplicaId {
        ReplicaId { replica_type, index }
    }

    /// Parses `worker-1` (any case of the type).
    pub fn parse(s: &str) -> Option<ReplicaId> {
        let (t, i) = s.rsplit_once('-')?;
        Some(ReplicaId { replica_type: ReplicaType::parse(t)?, index: i.parse().ok()? })
    }
}

impl std::fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.replica_type.lower(), self.index)
    }
}

/// Where the replicas of one job listen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// The address every replica is reached at (`127.0.0.1`).
    pub host: String,
    /// One port per replica.
    pub ports: BTreeMap<ReplicaId, u16>,
    /// MPIJob: where the hostfile ([`hostfile`]) is written, given to the launcher.
    pub hostfile: Option<String>,
}

impl Placement {
    /// Assigns `ports` to the job's replicas in rank order; `None` if there are fewer ports than replicas.
    pub fn new(job: &TrainingJob, host: &str, ports: &[u16], hostfile: Option<String>) -> Option<Placement> {
        let ids = job.replicas();
        if ports.len() < ids.len() {
            return None;
        }
        Some(Placement { host: host.to_owned(), ports: ids.into_iter().zip(ports.iter().copied()).collect(), hostfile })
    }

    fn port(&self, t: ReplicaType, index: u32) -> u16 {
        self.ports.get(&ReplicaId::new(t, index)).copied().unwrap_or(0)
    }

    fn addr(&self, t: ReplicaType, index: u32) -> String {
        format!("{}:{}", self.host, self.port(t, index))
    }
}

/// The whole environment of a replica's framework container: the user's variables, then the injected ones
/// (appended, as the operator does; a later entry wins).
pub fn replica_env(job: &TrainingJob, id: ReplicaId, placement: &Placement) -> Vec<(String, String)> {
    let Some(group) = job.group(id.replica_type) else { return Vec::new() };
    let mut env: Vec<(String, String)> =
        group.container.env.iter().map(|e| (e.name.clone(), e.value.clone())).collect();
    let user_set = |name: &str| group.container.env.iter().any(|e| e.name == name);
    for (k, v) in injected_env(job, id, &group.container.name, placement) {
        // MPI's launcher variables yield to the user's; elsewhere the operator appends regardless.
        if job.kind == JobKind::MPIJob && user_set(&k) {
            continue;
        }
        env.push((k, v));
    }
    env
}

/// The variables the operator injects into container `container` of replica `id`.
pub fn injected_env(job: &TrainingJob, id: ReplicaId, container: &str, p: &Placement) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let mut set = |k: &str, v: String| env.push((k.to_owned(), v));
    let total = job.total_replicas();
    match job.kind {
        JobKind::PyTorchJob => {
            set("PYTHONUNBUFFERED", "1".into());
            if job.group(ReplicaType::Master).is_some() {
                let port = p.port(ReplicaType::Master, 0).to_string();
                let rank = match id.replica_type {
                    ReplicaType::Master => id.index,
                    _ => id.index + 1,
                };
                let factor: u32 = job.nproc_per_node.parse().unwrap_or(1);
                set("MASTER_ADDR", p.host.clone());
                set("MASTER_PORT", port.clone());
                set("PET_MASTER_ADDR", p.host.clone());
                set("PET_MASTER_PORT", port);
                set("WORLD_SIZE", (total * factor).to_string());
                set("RANK", rank.to_string());
                set("PET_NODE_RANK", rank.to_string());
            }
            set("PET_NPROC_PER_NODE", job.nproc_per_node.clone());
            match &job.elastic_policy {
                None => set("PET_NNODES", total.to_string()),
                Some(e) => {
                    set("PET_NNODES", format!("{}:{}", e.min_replicas, e.max_replicas));
                    let host = e.rdzv_host.clone().unwrap_or_else(|| p.host.clone());
                    let port = e.rdzv_port.unwrap_or_else(|| p.port(ReplicaType::Worker, 0));
                    set("PET_RDZV_ENDPOINT", format!("{host}:{port}"));
                    set("PET_RDZV_BACKEND", e.rdzv_backend.clone());
                    if let Some(n) = e.max_restarts {
                        set("PET_MAX_RESTARTS", n.to_string());
                    }
                    if let Some(id) = &e.rdzv_id {
                        set("PET_RDZV_ID", id.clone());
                    }
                    if !e.rdzv_conf.is_empty() {
                        let conf: Vec<String> = e.rdzv_conf.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        set("PET_RDZV_CONF", conf.join(","));
                    }
                    if e.standalone {
                        set("PET_STANDALONE", String::new());
                    }
                }
            }
        }
        JobKind::TFJob => {
            if container == "tensorflow" && total != 1 {
                set("TF_CONFIG", tf_config(job, id, p));
            }
        }
        JobKind::JAXJob => {
            set("PYTHONUNBUFFERED", "1".into());
            set("COORDINATOR_ADDRESS", p.host.clone());
            set("COORDINATOR_PORT", p.port(ReplicaType::Worker, 0).to_string());
            set("NUM_PROCESSES", total.to_string());
            set("PROCESS_ID", id.index.to_string());
        }
        JobKind::XGBoostJob => {
            let masters = job.group(ReplicaType::Master).map_or(0, |g| g.replicas);
            let rank = match id.replica_type {
                ReplicaType::Master => id.index,
                _ => id.index + masters,
            };
            set("MASTER_ADDR", p.host.clone());
            set("MASTER_PORT", p.port(ReplicaType::Master, 0).to_string());
            set("WORLD_SIZE", total.to_string());
            set("RANK", rank.to_string());
            set("PYTHONUNBUFFERED", "1".into());
            if total > 1 {
                let own = if id.replica_type == ReplicaType::Worker { id.index } else { 0 };
                set("WORKER_PORT", p.port(ReplicaType::Worker, own).to_string());
                let addrs: Vec<String> = (0..total - 1).map(|_| p.host.clone()).collect();
                set("WORKER_ADDRS", addrs.join(","));
            }
        }
        JobKind::MPIJob => {
            if id.replica_type == ReplicaType::Launcher {
                if let Some(h) = &p.hostfile {
                    set("OMPI_MCA_orte_default_hostfile", h.clone());
                }
                set("NVIDIA_VISIBLE_DEVICES", String::new());
                set("NVIDIA_DRIVER_CAPABILITIES", String::new());
            }
        }
    }
    env
}

/// TF_CONFIG: the cluster (every type present, keys sorted), this task, `"environment": "cloud"`; with
/// `enableDynamicWorker` the sparse form (this worker's own address and the PS list, no environment).
pub fn tf_config(job: &TrainingJob, id: ReplicaId, p: &Placement) -> String {
    let mut cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in &job.groups {
        cluster.insert(g.replica_type.lower(), (0..g.replicas).map(|i| p.addr(g.replica_type, i)).collect());
    }
    let task = serde_json::json!({"type": id.replica_type.lower(), "index": id.index});
    let value = if job.enable_dynamic_worker {
        let mut worker = serde_json::Map::new();
        if let Some(a) = cluster.get("worker").and_then(|w| w.get(id.index as usize)) {
            worker.insert(id.index.to_string(), a.clone().into());
        }
        let ps = cluster.get("ps").cloned().unwrap_or_default();
        serde_json::json!({"cluster": {"worker": worker, "ps": ps}, "task": task})
    } else {
        serde_json::json!({"cluster": cluster, "task": task, "environment": "cloud"})
    };
    value.to_string()
}

/// The MPI hostfile: every worker is this host, so one line with all the workers' slots (`slotsPerWorker`
/// each; the launcher's own slots when there are no workers).
pub fn hostfile(job: &TrainingJob) -> String {
    let workers = job.group(ReplicaType::Worker).map_or(0, |g| g.replicas);
    let slots = workers.max(1) * job.slots_per_worker;
    format!("localhost slots={slots}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> TrainingJob {
        TrainingJob::from_yaml(yaml).unwrap()
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    fn place(j: &TrainingJob) -> Placement {
        let ports: Vec<u16> = (0..j.total_replicas() as u16).map(|i| 30000 + i).collect();
        Placement::new(j, "127.0.0.1", &ports, Some("/tmp/hostfile".into())).unwrap()
    }

    fn c(name: &str) -> String {
        format!("{{template: {{spec: {{containers: [{{name: {name}, image: i, command: [x], env: [{{name: MINE, value: v}}]}}]}}}}}}")
    }

    #[test]
    fn pytorch_env_with_master_and_nproc() {
        let j = job("apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {name: ddp}\nspec:\n  nprocPerNode: \"4\"\n  pytorchReplicaSpecs:\n    Master: {replicas: 1, template: {spec: {containers: [{name: pytorch, image: i, command: [x]}]}}}\n    Worker: {replicas: 2, template: {spec: {containers: [{name: pytorch, image: i, command: [x]}]}}}\n");
        let p = place(&j);
        let w1 = replica_env(&j, ReplicaId::new(ReplicaType::Worker, 1), &p);
        assert_eq!(get(&w1, "WORLD_SIZE"), Some("12"));
        assert_eq!(get(&w1, "RANK"), Some("2"));
        assert_eq!(get(&w1, "PET_NODE_RANK"), Some("2"));
        assert_eq!(get(&w1, "PET_NNODES"), Some("3"));
        assert_eq!(get(&w1, "PET_NPROC_PER_NODE"), Some("4"));
        assert_eq!(get(&w1, "MASTER_ADDR"), Some("127.0.0.1"));
        assert_eq!(get(&w1, "MASTER_PORT"), Some("30000"));
        assert_eq!(get(&w1, "PET_MASTER_PORT"), Some("30000"));
        assert_eq!(get(&w1, "PYTHONUNBUFFERED"), Some("1"));
        let m = replica_env(&j, ReplicaId::new(ReplicaType::Master, 0), &p);
        assert_eq!(get(&m, "RANK"), Some("0"));
    }

    #[test]
    fn pytorch_env_auto_and_without_master() {
        let j = job(&format!(
            "apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {{name: ddp}}\nspec:\n  pytorchReplicaSpecs:\n    Master: {{replicas: 1, template: {{spec: {{containers: [{{name: pytorch, image: i, command: [x]}}]}}}}}}\n    Worker: {}\n",
            c("pytorch").replace("{template", "{replicas: 2, template")
        ));
        let p = place(&j);
        let w = replica_env(&j, ReplicaId::new(ReplicaType::Worker, 0), &p);
        assert_eq!(get(&w, "WORLD_SIZE"), Some("3"));
        assert_eq!(get(&w, "PET_NPROC_PER_NODE"), Some("auto"));
        assert_eq!(w[0], ("MINE".into(), "v".into()), "user variables come first");
        let j = job(&format!(
            "apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {{name: ddp}}\nspec:\n  elasticPolicy: {{minReplicas: 1, maxReplicas: 3, rdzvConf: [{{key: a, value: b}}]}}\n  pytorchReplicaSpecs:\n    Worker: {}\n",
            c("pytorch").replace("{template", "{replicas: 2, template")
        ));
        let p = place(&j);
        let w = replica_env(&j, ReplicaId::new(ReplicaType::Worker, 1), &p);
        assert_eq!(get(&w, "MASTER_ADDR"), None);
        assert_eq!(get(&w, "RANK"), None);
        assert_eq!(get(&w, "PET_NNODES"), Some("1:3"));
        assert_eq!(get(&w, "PET_RDZV_ENDPOINT"), Some("127.0.0.1:30000"));
        assert_eq!(get(&w, "PET_RDZV_BACKEND"), Some("c10d"));
        assert_eq!(get(&w, "PET_RDZV_CONF"), Some("a=b"));
    }

    #[test]
    fn tf_config_only_in_the_tensorflow_container() {
        let j = job(&format!(
            "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {{name: mnist}}\nspec:\n  tfReplicaSpecs:\n    Chief: {}\n    Worker: {}\n    PS: {}\n",
            c("tensorflow"),
            c("tensorflow").replace("{template", "{replicas: 2, template"),
            c("tensorflow")
        ));
        let p = place(&j);
        let id = ReplicaId::new(ReplicaType::Worker, 1);
        let env = replica_env(&j, id, &p);
        // Rank order: chief-0 30000, worker-0 30001, worker-1 30002, ps-0 30003.
        assert_eq!(
            get(&env, "TF_CONFIG"),
            Some(
                r#"{"cluster":{"chief":["127.0.0.1:30000"],"ps":["127.0.0.1:30003"],"worker":["127.0.0.1:30001","127.0.0.1:30002"]},"task":{"type":"worker","index":1},"environment":"cloud"}"#
            )
        );
        assert!(injected_env(&j, id, "sidecar", &p).is_empty());
        let single = job(&format!(
            "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {{name: one}}\nspec:\n  tfReplicaSpecs:\n    Worker: {}\n",
            c("tensorflow")
        ));
        let p = place(&single);
        assert!(injected_env(&single, ReplicaId::new(ReplicaType::Worker, 0), "tensorflow", &p).is_empty());
    }

    #[test]
    fn tf_config_dynamic_worker_is_sparse() {
        let j = job(&format!(
            "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {{name: d}}\nspec:\n  enableDynamicWorker: true\n  tfReplicaSpecs:\n    Worker: {}\n    PS: {}\n",
            c("tensorflow").replace("{template", "{replicas: 2, template"),
            c("tensorflow")
        ));
        let p = place(&j);
        assert_eq!(
            tf_config(&j, ReplicaId::new(ReplicaType::Worker, 1), &p),
            r#"{"cluster":{"worker":{"1":"127.0.0.1:30001"},"ps":["127.0.0.1:30002"]},"task":{"type":"worker","index":1}}"#
        );
    }

    #[test]
    fn jax_env() {
        let j = job(&format!(
            "apiVersion: kubeflow.org/v1\nkind: JAXJob\nmetadata: {{name: jx}}\nspec:\n  jaxReplicaSpecs:\n    Worker: {}\n",
            c("jax").replace("{template", "{replicas: 3, template")
        ));
        let p = place(&j);
        let env = replica_env(&j, ReplicaId::new(ReplicaType::Worker, 2), &p);
        assert_eq!(get(&env, "COORDINATOR_ADDRESS"), Some("127.0.0.1"));
        assert_eq!(get(&env, "COORDINATOR_PORT"), Some("30000"));
        assert_eq!(get(&env, "NUM_PROCESSES"), Some("3"));
        assert_eq!(get(&env, "PROCESS_ID"), Some("2"));
        assert_eq!(get(&env, "PYTHONUNBUFFERED"), Some("1"));
    }

    #[test]
    fn xgboost_env() {
        let j = job(&format!(
            "apiVersion: kubeflow.org/v1\nkind: XGBoostJob\nmetadata: {{name: xgb}}\nspec:\n  xgbReplicaSpecs:\n    Master: {}\n    Worker: {}\n",
            c("xgboost").replace("{template", "{replicas: 1, template"),
            c("xgboost").replace("{template", "{replicas: 2, restartPolicy: ExitCode, template")
        ));
        let p = place(&j);
        let w = replica_env(&j, ReplicaId::new(ReplicaType::Worker, 1), &p);
        assert_eq!(get(&w, "RANK"), Some("2"));
        assert_eq!(get(&w, "WORLD_SIZE"), Some("3"));
        assert_eq!(get(&w, "MASTER_PORT"), Some("30000"));
        assert_eq!(get(&w, "WORKER_PORT"), Some("30002"));
        assert_eq!(get(&w, "WORKER_ADDRS"), Some("127.0.0.1,127.0.0.1"));
        assert_eq!(j.group(ReplicaType::Worker).unwrap().restart_policy, crate::RestartPolicy::ExitCode);
    }

    #[test]
    fn mpi_launcher_env_and_hostfile() {
        let j = job("apiVersion: kubeflow.org/v1\nkind: MPIJob\nmetadata: {name: pi}\nspec:\n  slotsPerWorker: 2\n  mpiReplicaSpecs:\n    Launcher: {replicas: 1, template: {spec: {containers: [{name: mpi, image: i, command: [mpirun], env: [{name: NVIDIA_VISIBLE_DEVICES, value: all}]}]}}}\n    Worker: {replicas: 2, template: {spec: {containers: [{name: mpi, image: i}]}}}\n");
        let p = place(&j);
        let env = replica_env(&j, ReplicaId::new(ReplicaType::Launcher, 0), &p);
        assert_eq!(get(&env, "OMPI_MCA_orte_default_hostfile"), Some("/tmp/hostfile"));
        assert_eq!(get(&env, "NVIDIA_VISIBLE_DEVICES"), Some("all"), "the user's value is kept");
        assert_eq!(hostfile(&j), "localhost slots=4\n");
        assert!(replica_env(&j, ReplicaId::new(ReplicaType::Worker, 0), &p).is_empty());
    }

    #[test]
    fn replica_ids_print_and_parse() {
        let id = ReplicaId::new(ReplicaType::Worker, 1);
        assert_eq!(id.to_string(), "worker-1");
        assert_eq!(ReplicaId::parse("worker-1"), Some(id));
        assert_eq!(ReplicaId::parse("Master-0"), Some(ReplicaId::new(ReplicaType::Master, 0)));
        assert_eq!(ReplicaId::parse("boss-0"), None);
    }
}
