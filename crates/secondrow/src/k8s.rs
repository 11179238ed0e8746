//! The executor flags shared by `secondrow run`, `resume`, `server` and `tune`: local processes (the
//! default) or Kubernetes Pods.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secondrow_engine::kubernetes::{ConfigSource, DeletePolicy, KubeExecutor, KubeSettings};

use crate::error::{Failure, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorArg {
    /// Each task attempt is a process on this machine.
    #[default]
    Local,
    /// Each task attempt is a Pod (its component's image) in `--kube-namespace`.
    Kubernetes,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DeletionArg {
    Always,
    OnSuccess,
    Never,
}

#[derive(Args, Debug, Clone)]
pub struct KubeArgs {
    /// Where task attempts run.
    #[arg(long, env = "SECONDROW_EXECUTOR", value_enum, default_value_t = ExecutorArg::Local)]
    pub executor: ExecutorArg,
    /// The namespace of the Pods (`--executor kubernetes`); default: the kubeconfig context's namespace
    /// (`default`). Not `--namespace`, which names SecondRow's own namespaces.
    #[arg(long, env = "SECONDROW_KUBE_NAMESPACE")]
    pub kube_namespace: Option<String>,
    /// The kubeconfig file (its current context); without it and without `--in-cluster`, `KUBECONFIG`
    /// or `~/.kube/config`, then the in-cluster service account.
    #[arg(long, env = "SECONDROW_KUBECONFIG", conflicts_with = "in_cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// Use the Pod's service account (SecondRow running inside the cluster).
    #[arg(long)]
    pub in_cluster: bool,
    /// Bind Pods to this node directly instead of leaving them to the scheduler.
    #[arg(long, env = "SECONDROW_KUBE_NODE_NAME")]
    pub kube_node_name: Option<String>,
    /// The service account the task Pods run as.
    #[arg(long)]
    pub pod_service_account: Option<String>,
    /// Which finished Pods are deleted (their logs are copied into the log store first).
    #[arg(long, value_enum, default_value_t = DeletionArg::OnSuccess)]
    pub pod_deletion: DeletionArg,
    /// A Pod still pending after this many seconds fails its attempt, with the reason the Pod gives.
    #[arg(long, default_value_t = 300)]
    pub pod_pending_timeout: u64,
}

impl KubeArgs {
    /// The Kubernetes executor when `--executor kubernetes`, connected (the API server answered).
    pub async fn executor(&self) -> Result<Option<KubeExecutor>> {
        let kube_only = self.kubeconfig.is_some() || self.in_cluster || self.kube_node_name.is_some();
        if self.executor == ExecutorArg::Local {
            if kube_only {
                return Err(Failure::usage(
                    "--kubeconfig, --in-cluster and --kube-node-name need --executor kubernetes",
                ));
            }
            return Ok(None);
        }
        if self.pod_pending_timeout == 0 {
            return Err(Failure::usage("--pod-pending-timeout must be at least 1 second"));
        }
        let source = match (&self.kubeconfig, self.in_cluster) {
            (Some(path), _) => ConfigSource::Kubeconfig(path.clone()),
            (None, true) => ConfigSource::InCluster,
            (None, false) => ConfigSource::Infer,
        };
        let settings = KubeSettings {
            source,
            namespace: self.kube_namespace.clone(),
            node_name: self.kube_node_name.clone(),
            service_account: self.pod_service_account.clone(),
            delete: match self.pod_deletion {
                DeletionArg::Always => DeletePolicy::Always,
                DeletionArg::OnSuccess => DeletePolicy::OnSuccess,
                DeletionArg::Never => DeletePolicy::Never,
            },
            pending_timeout: Duration::from_secs(self.pod_pending_timeout),
        };
        Ok(Some(KubeExecutor::connect(settings).await?))
    }
}
