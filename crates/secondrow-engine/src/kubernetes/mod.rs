//! The Kubernetes executor: a task attempt runs as a Pod instead of a local process.
//!
//! Only "start an attempt and wait for it" changes; the run driver (caching, retries, conditions, loops,
//! exit handlers) is the same for both executors. For each attempt the executor
//!
//! - adopts a Pod of the same task left running by an earlier engine (found by its labels: run and task
//!   path digest), or creates the attempt's Pod ([`pod::build`]);
//! - follows it through one watch of all of SecondRow's Pods in the namespace (never polling): the watch
//!   task routes each event to the attempt waiting for that Pod, and [`state::observe`] maps it to an
//!   attempt state;
//! - fails the attempt when the Pod stays pending past the pending timeout (with the reason the Pod
//!   gives), deletes the Pod on cancel, copies the main container's log from the API into the task's log
//!   file with the secret values it knows as `***` ([`redact`]), and deletes finished Pods per the
//!   [`DeletePolicy`];
//! - repeats calls the API server does not answer, with backoff, and fails the attempt naming the API
//!   server only after the unreachable timeout ([`health`]).
//!
//! kfp-kubernetes' `CreatePVC` / `DeletePVC` become real PersistentVolumeClaims ([`claim`]).
//!
//! The task's files (inputs, outputs, `executor_output.json`): with a local artifact root they are read and
//! written under the root, which the Pod mounts at the same path (a host path: one node, or a volume every
//! node shares); with an S3 root the Pod has no host path, and its launcher stages them between the bucket
//! and an `emptyDir` ([`launch::staging`]), the engine reading the outputs back from the bucket.

pub mod claim;
pub mod health;
pub mod launch;
pub mod pod;
pub mod redact;
pub mod state;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::TryStreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt as _};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use pod::{EnvRef, PodPlatform, PodRequest, PodStaging, VolumeRef};
use state::Observed;

/// When finished Pods are deleted (their logs are copied into the log store first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletePolicy {
    /// Every finished Pod.
    Always,
    /// Pods that succeeded; failed ones stay for `kubectl describe`.
    #[default]
    OnSuccess,
    /// None.
    Never,
}

/// Where the API server and credentials come from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A kubeconfig file (its current context).
    Kubeconfig(PathBuf),
    /// The Pod's service account (running inside the cluster).
    InCluster,
    /// `KUBECONFIG`, then `~/.kube/config`, then in-cluster.
    Infer,
}

impl ConfigSource {
    /// The client configuration this source gives: a missing or malformed kubeconfig is the caller's error
    /// naming the file.
    pub async fn config(&self) -> Result<Config, KubeError> {
        match self {
            ConfigSource::Kubeconfig(path) => {
                let bad = |message: String| KubeError::Kubeconfig { path: path.clone(), message };
                if !path.is_file() {
                    return Err(bad("no such file".into()));
                }
                let kc = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
                Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.map_err(|e| bad(e.to_string()))
            }
            ConfigSource::InCluster => Config::incluster().map_err(|e| KubeError::InCluster(e.to_string())),
            ConfigSource::Infer => Config::infer().await.map_err(|e| KubeError::NoConfig(e.to_string())),
        }
    }
}

/// How the executor reaches the cluster and makes Pods.
#[derive(Debug, Clone)]
pub struct KubeSettings {
    pub source: ConfigSource,
    /// The namespace of the Pods; the configuration's own namespace when unset.
    pub namespace: Option<String>,
    /// Binds Pods to this node directly (no scheduler involved).
    pub node_name: Option<String>,
    /// The service account of the Pods (the namespace's default when unset).
    pub service_account: Option<String>,
    pub delete: DeletePolicy,
    /// A Pod still pending after this long fails its attempt with the reason the Pod gives.
    pub pending_timeout: Duration,
    /// The SecondRow image whose binary runs each task under `secondrow launch` ([`launch`]).
    pub launcher_image: Option<String>,
    /// The Secret holding the launcher's S3 credentials (S3 roots; [`launch::SECRET_KEYS`]).
    pub s3_credentials_secret: Option<String>,
    /// How long calls to an API server that does not answer are repeated (with backoff, [`health`])
    /// before the attempts waiting on it fail.
    pub unreachable_timeout: Duration,
}

/// The default of [`KubeSettings::unreachable_timeout`].
pub const DEFAULT_UNREACHABLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("kubeconfig {}: {message}", path.display())]
    Kubeconfig { path: PathBuf, message: String },
    #[error("in-cluster Kubernetes configuration: {0}")]
    InCluster(String),
    #[error("no Kubernetes configuration found ({0}); pass --kubeconfig PATH")]
    NoConfig(String),
    #[error("the Kubernetes API server at {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("the Kubernetes API server refused to {what}: {message}")]
    Forbidden { what: String, message: String },
    #[error("Kubernetes API error while trying to {what}: {message}")]
    Api { what: String, message: String },
}

impl KubeError {
    pub fn kind(&self) -> secondrow_error::ErrorKind {
        use secondrow_error::ErrorKind;
        match self {
            KubeError::Kubeconfig { .. } | KubeError::InCluster(_) | KubeError::NoConfig(_) => ErrorKind::InvalidInput,
            KubeError::Unreachable { .. } | KubeError::Api { .. } => ErrorKind::Unavailable,
            KubeError::Forbidden { .. } => ErrorKind::PermissionDenied,
        }
    }
}

/// An API error of one call, by what was being done.
fn api_error(what: &str, e: kube::Error) -> KubeError {
    let what = what.to_owned();
    match e {
        kube::Error::Api(resp) if resp.code == 401 || resp.code == 403 => {
            KubeError::Forbidden { what, message: resp.message.clone() }
        }
        kube::Error::Api(resp) => KubeError::Api { what, message: format!("{} ({})", resp.message, resp.code) },
        other => KubeError::Api { what, message: other.to_string() },
    }
}

/// What the watch tells the attempt waiting for one Pod.
#[derive(Debug, Clone)]
enum Update {
    Nothing,
    Pod(Arc<Pod>),
    /// The Pod was deleted.
    Gone,
    /// The watch started again and the Pod was not listed: look it up.
    Recheck,
    /// The watch itself is refused (its credentials lack `list`/`watch` on Pods).
    WatchRefused(String),
}

type Waiters = Arc<Mutex<HashMap<String, watch::Sender<Update>>>>;

/// Since when the watch has found the API server unreachable, and the last error (`None`: it answers).
type Health = Arc<watch::Sender<Option<(Instant, String)>>>;

/// How one attempt's Pod ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodEnd {
    Succeeded,
    Failed(String),
    Canceled,
}

/// Runs attempts as Pods in one namespace. One per engine.
pub struct KubeExecutor {
    pods: Api<Pod>,
    namespace: String,
    url: String,
    settings: KubeSettings,
    waiters: Waiters,
    health: Health,
    watch_task: OnceLock<tokio::task::JoinHandle<()>>,
    /// This process's own credential values (read from its environment once, at connect), redacted from
    /// every Pod's log.
    own_credentials: Arc<[String]>,
}

impl Drop for KubeExecutor {
    fn drop(&mut self) {
        if let Some(task) = self.watch_task.get() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for KubeExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeExecutor").field("url", &self.url).field("namespace", &self.namespace).finish()
    }
}

impl KubeExecutor {
    /// Reads the configuration and checks that the API server answers (before any run starts).
    pub async fn connect(settings: KubeSettings) -> Result<KubeExecutor, KubeError> {
        let config = settings.source.config().await?;
        let namespace = settings.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
        let url = config.cluster_url.to_string();
        let unreachable = |message: String| KubeError::Unreachable { url: url.clone(), message };
        let client = Client::try_from(config).map_err(|e| unreachable(e.to_string()))?;
        match tokio::time::timeout(Duration::from_secs(15), client.apiserver_version()).await {
            Ok(Ok(_)) => {}
            Ok(Err(kube::Error::Api(resp))) if resp.code == 401 => {
                return Err(KubeError::Forbidden { what: "authenticate".into(), message: resp.message.clone() })
            }
            // Some clusters refuse `/version` to unprivileged accounts: the server answered, so it is reachable.
            Ok(Err(kube::Error::Api(_))) => {}
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => return Err(unreachable("no answer within 15s".into())),
        }
        Ok(KubeExecutor {
            pods: Api::namespaced(client, &namespace),
            namespace,
            url,
            settings,
            waiters: Arc::default(),
            health: Arc::new(watch::channel(None).0),
            watch_task: OnceLock::new(),
            own_credentials: redact::own_credentials(std::env::vars()).into(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn settings(&self) -> &KubeSettings {
        &self.settings
    }

    /// Starts the namespace's one watch on first use.
    fn ensure_watch(&self) {
        self.watch_task
            .get_or_init(|| tokio::spawn(watch_loop(self.pods.clone(), self.waiters.clone(), self.health.clone())));
    }

    /// Makes `call` until the API server answers: a call that got no answer (or a 5xx/429) is repeated
    /// with backoff until `unreachable_timeout` has passed since the first failure ([`health::decide`]);
    /// then its last error is returned. Answers (success or refusal) are returned at once.
    pub(crate) async fn with_retry<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let mut failures = 0u32;
        let mut first = None;
        loop {
            match call().await {
                Err(e) if health::is_transient(&e) => {
                    failures = failures.saturating_add(1);
                    let since = *first.get_or_insert_with(Instant::now);
                    match health::decide(failures, since.elapsed(), self.settings.unreachable_timeout) {
                        health::Retry::GiveUp => return Err(e),
                        health::Retry::After(pause) => {
                            tracing::warn!("trying to {what}: {e}; trying again in {}ms", pause.as_millis());
                            tokio::time::sleep(pause).await;
                        }
                    }
                }
                other => return other,
            }
        }
    }

    /// The error of a call [`Self::with_retry`] gave up on (or that was answered with a refusal).
    pub(crate) fn fail(&self, what: &str, e: kube::Error) -> KubeError {
        if health::is_transient(&e) {
            let message = health::unreachable_reason(&self.url, self.settings.unreachable_timeout, &e.to_string());
            KubeError::Unreachable { url: self.url.clone(), message: format!("trying to {what}: {message}") }
        } else {
            api_error(what, e)
        }
    }

    fn subscribe(&self, name: &str) -> watch::Receiver<Update> {
        let (tx, rx) = watch::channel(Update::Nothing);
        if let Ok(mut w) = self.waiters.lock() {
            w.insert(name.to_owned(), tx);
        }
        rx
    }

    fn unsubscribe(&self, name: &str) {
        if let Ok(mut w) = self.waiters.lock() {
            w.remove(name);
        }
    }

    /// A Pod of this task (any attempt) that an earlier engine left, still running or finished with
    /// success: its name and state. Failed leftovers are deleted (the attempt runs again).
    async fn adoptable(&self, run_id: &str, task_path: &str) -> Result<Option<Pod>, KubeError> {
        let lp = ListParams::default().labels(&pod::task_selector(run_id, task_path));
        let list = self.with_retry("list Pods", || self.pods.list(&lp)).await.map_err(|e| self.fail("list Pods", e))?;
        let mut found = None;
        for p in list.items {
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match state::observe(&p) {
                Observed::Failed(_) => {
                    let _ = self.pods.delete(&p.name_any(), &DeleteParams::default()).await;
                }
                _ => found = Some(p),
            }
        }
        Ok(found)
    }

    /// The attempt's Pod, adopted or created, with the subscription that follows it; the attempt's end
    /// when neither works.
    async fn start(
        &self,
        pod: &Pod,
        run_id: &str,
        task_path: &str,
    ) -> Result<(String, watch::Receiver<Update>, Pod), PodEnd> {
        match self.adoptable(run_id, task_path).await {
            Err(e) => Err(PodEnd::Failed(e.to_string())),
            Ok(Some(existing)) => {
                let name = existing.name_any();
                tracing::info!("run {run_id}: adopting Pod {name} of task {task_path}");
                let rx = self.subscribe(&name);
                // The state now (events before the subscription are not replayed).
                let read = format!("read Pod {name}");
                match self.with_retry(&read, || self.pods.get_opt(&name)).await {
                    Ok(Some(p)) => Ok((name, rx, p)),
                    Ok(None) => Ok((name, rx, existing)),
                    Err(e) => {
                        self.unsubscribe(&name);
                        Err(PodEnd::Failed(self.fail(&read, e).to_string()))
                    }
                }
            }
            Ok(None) => {
                let name = pod.name_any();
                let rx = self.subscribe(&name);
                let what = format!("create Pod {name}");
                let pp = PostParams::default();
                let created = match self.with_retry(&what, || self.pods.create(&pp, pod)).await {
                    Ok(p) => Ok(Some(p)),
                    // Made by a create whose answer was lost (the name is the attempt's own): adopt it.
                    Err(kube::Error::Api(r)) if r.code == 409 => {
                        let read = format!("read Pod {name}");
                        self.with_retry(&read, || self.pods.get_opt(&name)).await.map_err(|e| self.fail(&read, e))
                    }
                    Err(e) => Err(self.fail(&what, e)),
                };
                match created {
                    Ok(Some(p)) => Ok((name, rx, p)),
                    Ok(None) => {
                        self.unsubscribe(&name);
                        Err(PodEnd::Failed(format!("Pod {name} was deleted before it finished")))
                    }
                    Err(e) => {
                        self.unsubscribe(&name);
                        Err(PodEnd::Failed(e.to_string()))
                    }
                }
            }
        }
    }

    /// Runs one attempt's Pod to its end (or adopts the task's running Pod), copying its log to `log`
    /// with the secret values the engine knows replaced by `***` ([`redact`]).
    pub async fn run(&self, pod: Pod, run_id: &str, task_path: &str, log: &Path, cancel: CancellationToken) -> PodEnd {
        self.ensure_watch();
        let secrets = redact::Sources::of(&pod);
        // The calls may wait for the API server ([`Self::with_retry`]); a cancel does not wait for them.
        let started = tokio::select! {
            biased;
            started = self.start(&pod, run_id, task_path) => started,
            _ = cancel.cancelled() => {
                self.unsubscribe(&pod.name_any());
                return PodEnd::Canceled;
            }
        };
        let (name, mut rx, seed) = match started {
            Ok(s) => s,
            Err(end) => return end,
        };
        let end = self.follow(&name, &mut rx, seed, &cancel).await;
        self.unsubscribe(&name);
        if end != PodEnd::Canceled {
            let values = secrets.values(self).await;
            self.copy_log(&name, log, &values).await;
        }
        let delete = match (&end, self.settings.delete) {
            (PodEnd::Canceled, _) | (_, DeletePolicy::Always) => true,
            (PodEnd::Succeeded, DeletePolicy::OnSuccess) => true,
            // A Pod that never started is of no use to anyone: it would only hold its node's resources.
            (PodEnd::Failed(m), _) if m.contains("still pending") => true,
            _ => false,
        };
        if delete {
            let what = format!("delete Pod {name}");
            let dp = DeleteParams::default();
            if let Err(e) = self.with_retry(&what, || self.pods.delete(&name, &dp)).await {
                if !matches!(&e, kube::Error::Api(r) if r.code == 404) {
                    tracing::warn!("{}", self.fail(&what, e));
                }
            }
        }
        end
    }

    /// Waits for the Pod's end through the watch; fails it when the watch has found the API server
    /// unreachable for longer than `unreachable_timeout`.
    async fn follow(
        &self,
        name: &str,
        rx: &mut watch::Receiver<Update>,
        seed: Pod,
        cancel: &CancellationToken,
    ) -> PodEnd {
        let pending_for = self.settings.pending_timeout;
        let unreachable_for = self.settings.unreachable_timeout;
        let mut pending = health::PendingClock::new(tokio::time::Instant::now(), pending_for);
        let mut health = self.health.subscribe();
        let mut current = seed;
        let mut started = false;
        let mut reason = None;
        loop {
            match state::observe(&current) {
                Observed::Succeeded => return PodEnd::Succeeded,
                Observed::Failed(m) => return PodEnd::Failed(m),
                Observed::Running => started = true,
                Observed::Pending(r) => reason = r.or(reason),
            }
            let down = health.borrow_and_update().clone();
            pending.observe(down.is_some(), tokio::time::Instant::now());
            let deadline = pending.deadline();
            let down_until = down.as_ref().map(|(since, _)| tokio::time::Instant::from_std(*since) + unreachable_for);
            tokio::select! {
                _ = cancel.cancelled() => return PodEnd::Canceled,
                _ = tokio::time::sleep_until(deadline), if !started && down.is_none() => {
                    let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
                    return PodEnd::Failed(format!(
                        "Pod {name} was still pending after {}s{why}", pending_for.as_secs()
                    ));
                }
                _ = tokio::time::sleep_until(down_until.unwrap_or(deadline)), if down_until.is_some() => {
                    let last = down.map(|(_, e)| e).unwrap_or_default();
                    return PodEnd::Failed(health::unreachable_reason(&self.url, unreachable_for, &last));
                }
                _ = health.changed() => {}
                changed = rx.changed() => {
                    if changed.is_err() {
                        return PodEnd::Failed("the Pod watch ended".into());
                    }
                    let update = rx.borrow_and_update().clone();
                    match update {
                        Update::Nothing => {}
                        Update::Pod(p) => current = (*p).clone(),
                        Update::Gone => return PodEnd::Failed(format!("Pod {name} was deleted before it finished")),
                        Update::WatchRefused(m) => return PodEnd::Failed(m),
                        Update::Recheck => match self.pods.get_opt(name).await {
                            Ok(Some(p)) => current = p,
                            Ok(None) => return PodEnd::Failed(format!("Pod {name} was deleted before it finished")),
                            Err(e) => tracing::warn!("reading Pod {name}: {e}"),
                        },
                    }
                }
            }
        }
    }

    /// Appends the main container's log, as the API serves it, to the task's log file, with `secrets`
    /// replaced by `***`; a note when the API has none to give.
    async fn copy_log(&self, name: &str, log: &Path, secrets: &[String]) {
        use std::io::Write as _;
        let params = LogParams { container: Some(pod::MAIN_CONTAINER.to_owned()), ..Default::default() };
        let what = format!("read the log of Pod {name}");
        let text = match self.with_retry(&what, || self.pods.logs(name, &params)).await {
            Ok(t) => crate::process::redact(&t, secrets),
            Err(e) => format!("[secondrow] the log of Pod {name} is not available from the API: {e}\n"),
        };
        if let Some(dir) = log.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::OpenOptions::new().create(true).append(true).open(log) {
            Ok(mut f) => {
                let _ = f.write_all(text.as_bytes());
            }
            Err(e) => tracing::warn!("writing {}: {e}", log.display()),
        }
    }

    /// Deletes every Pod of a run (terminate; a canceled run leaves none behind), waiting for an API server
    /// that does not answer up to the unreachable timeout.
    pub async fn delete_run_pods(&self, run_id: &str) -> Result<(), KubeError> {
        let lp = ListParams::default().labels(&pod::run_selector(run_id));
        let dp = DeleteParams::default();
        self.with_retry("delete Pods", || self.pods.delete_collection(&dp, &lp))
            .await
            .map_err(|e| self.fail("delete Pods", e))?;
        Ok(())
    }
}

fn route(waiters: &Waiters, name: &str, update: Update) {
    if let Ok(w) = waiters.lock() {
        if let Some(tx) = w.get(name) {
            let _ = tx.send(update);
        }
    }
}

fn route_all(waiters: &Waiters, update: &Update) {
    if let Ok(w) = waiters.lock() {
        for tx in w.values() {
            let _ = tx.send(update.clone());
        }
    }
}

/// The namespace's one watch of SecondRow's Pods: list, then watch from the list's version; on an
/// expired version or a dropped stream, list again (waiters whose Pod was not listed look it up). While the
/// list gets no answer, `health` says since when (the attempts give up after the unreachable timeout);
/// the first list that is answered clears it and brings every waiter up to date.
async fn watch_loop(pods: Api<Pod>, waiters: Waiters, health: Health) {
    let selector = format!("{}={}", pod::LABEL_MANAGED_BY, pod::MANAGED_BY);
    let lp = ListParams::default().labels(&selector);
    loop {
        let list = match pods.list(&lp).await {
            Ok(l) => l,
            Err(e) => {
                if health::is_transient(&e) {
                    let message = e.to_string();
                    health.send_if_modified(|h| match h {
                        Some((_, last)) => {
                            *last = message;
                            false
                        }
                        None => {
                            *h = Some((Instant::now(), message));
                            true
                        }
                    });
                }
                let e = api_error("list Pods", e);
                if matches!(e, KubeError::Forbidden { .. }) {
                    route_all(&waiters, &Update::WatchRefused(e.to_string()));
                } else {
                    tracing::warn!("{e}");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        health.send_if_modified(|h| h.take().is_some());
        let listed: std::collections::HashSet<String> = list.items.iter().map(|p| p.name_any()).collect();
        for p in list.items {
            let name = p.name_any();
            route(&waiters, &name, Update::Pod(Arc::new(p)));
        }
        if let Ok(w) = waiters.lock() {
            for (name, tx) in w.iter() {
                if !listed.contains(name) {
                    let _ = tx.send(Update::Recheck);
                }
            }
        }
        let mut version = list.metadata.resource_version.unwrap_or_default();
        'watch: loop {
            let wp = WatchParams::default().labels(&selector).timeout(290);
            let stream = match pods.watch(&wp, &version).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("watching Pods: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break 'watch;
                }
            };
            let mut stream = std::pin::pin!(stream);
            loop {
                match stream.try_next().await {
                    Ok(Some(WatchEvent::Added(p))) | Ok(Some(WatchEvent::Modified(p))) => {
                        if let Some(v) = p.resource_version() {
                            version = v;
                        }
                        let name = p.name_any();
                        route(&waiters, &name, Update::Pod(Arc::new(p)));
                    }
                    Ok(Some(WatchEvent::Deleted(p))) => {
                        if let Some(v) = p.resource_version() {
                            version = v;
                        }
                        route(&waiters, &p.name_any(), Update::Gone);
                    }
                    Ok(Some(WatchEvent::Bookmark(b))) => version = b.metadata.resource_version,
                    // 410 Gone: the version is too old; list again.
                    Ok(Some(WatchEvent::Error(_))) | Err(_) => break 'watch,
                    // The server closed the stream at its timeout: watch on from the last version.
                    Ok(None) => continue 'watch,
                }
            }
        }
    }
}
