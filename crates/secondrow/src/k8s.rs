//! The executor flags shared by `secondrow run`, `resume`, `server` and `tune`: local processes (the
//! default) or Kubernetes Pods.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secondrow_engine::kubernetes::{ConfigSource, DeletePolicy, KubeExecutor, KubeSettings};
use secondrow_store::ArtifactStore;

use crate::error::{Failure, Result};

/// Pods at once without `--parallelism` (they run on the cluster's nodes, not this machine's cores).
pub const DEFAULT_POD_PARALLELISM: usize = 100;

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
    /// The SecondRow image: an init container copies its binary into each Pod, which runs the task under
    /// `secondrow launch run` (needed for built-in components in other images).
    #[arg(long, env = "SECONDROW_LAUNCHER_IMAGE")]
    pub launcher_image: Option<String>,
    /// Under an `s3://` artifact root: the Secret (keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional
    /// AWS_SESSION_TOKEN) from which each Pod's launcher takes its S3 credentials. Without it the
    /// launcher is given this process's AWS_* credentials as plain values in the Pod spec.
    #[arg(long, env = "SECONDROW_S3_CREDENTIALS_SECRET")]
    pub s3_credentials_secret: Option<String>,
    /// While the API server does not answer, calls are repeated with backoff for this many seconds before
    /// the attempts waiting on it fail (naming the API server).
    #[arg(long, default_value_t = secondrow_engine::kubernetes::DEFAULT_UNREACHABLE_TIMEOUT.as_secs())]
    pub kube_unreachable_timeout: u64,
}

/// `secondrow launch`: the launcher inside a task Pod.
#[derive(clap::Subcommand, Debug)]
pub enum LaunchCommand {
    /// Copy this binary into DIR (the Pod's init container).
    Install { dir: PathBuf },
    /// Run the task's command between staging its inputs in and its outputs out; exits with its status.
    Run {
        /// Stage the artifacts under this folder (the Pod's emptyDir; S3 roots): download the inputs before
        /// the command, upload the outputs after it. The store comes from SECONDROW_ARTIFACT_ROOT,
        /// SECONDROW_S3_ENDPOINT and the SECONDROW_S3_* credentials.
        #[arg(long, requires = "executor_input")]
        mount: Option<PathBuf>,
        /// The task's executor input (kfp's JSON), its artifacts at their paths under `--mount`.
        #[arg(long, requires = "mount")]
        executor_input: Option<String>,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        argv: Vec<String>,
    },
}

pub async fn launch(command: LaunchCommand) -> Result<std::process::ExitCode> {
    use secondrow_engine::kubernetes::launch;
    match command {
        LaunchCommand::Install { dir } => {
            let path = launch::install(&dir).map_err(|e| Failure::from(anyhow::anyhow!(e.to_string())))?;
            eprintln!("secondrow launch: installed {}", path.display());
            Ok(std::process::ExitCode::SUCCESS)
        }
        LaunchCommand::Run { mount, executor_input, argv } => {
            let staging = match (mount, executor_input) {
                (Some(mount), Some(executor_input)) => Some(launch::staging::Staging { mount, executor_input }),
                _ => None,
            };
            let code = launch::run(&argv, staging.as_ref()).await.map_err(|e| Failure::usage(e.to_string()))?;
            Ok(std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
    }
}

impl KubeArgs {
    /// The Kubernetes executor when `--executor kubernetes`, connected (the API server answered), for
    /// artifacts in `artifacts`.
    pub async fn executor(&self, artifacts: &ArtifactStore) -> Result<Option<KubeExecutor>> {
        let kube_only = self.kubeconfig.is_some()
            || self.in_cluster
            || self.kube_node_name.is_some()
            || self.launcher_image.is_some()
            || self.s3_credentials_secret.is_some();
        if self.executor == ExecutorArg::Local {
            if kube_only {
                return Err(Failure::usage(
                    "--kubeconfig, --in-cluster, --kube-node-name, --launcher-image and --s3-credentials-secret \
                     need --executor kubernetes",
                ));
            }
            return Ok(None);
        }
        if artifacts.is_remote() && self.launcher_image.is_none() {
            return Err(Failure::usage(
                "an s3:// --artifact-root with --executor kubernetes needs --launcher-image: the launcher in each \
                 Pod downloads the task's inputs from the bucket and uploads its outputs",
            ));
        }
        if !artifacts.is_remote() && self.s3_credentials_secret.is_some() {
            return Err(Failure::usage("--s3-credentials-secret needs an s3:// --artifact-root"));
        }
        if self.kube_unreachable_timeout == 0 {
            return Err(Failure::usage("--kube-unreachable-timeout must be at least 1 second"));
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
            launcher_image: self.launcher_image.clone(),
            s3_credentials_secret: self.s3_credentials_secret.clone(),
            unreachable_timeout: Duration::from_secs(self.kube_unreachable_timeout),
        };
        Ok(Some(KubeExecutor::connect(settings).await?))
    }
}
