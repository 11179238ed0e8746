//! Leaf tasks: container attempts (resume adoption, cache look-up, preparation, spawning, retries with
//! backoff, recording the result) and importers.
//!
//! An attempt runs as a future in the driver's `JoinSet`: it waits out its backoff, provides the Python
//! environment a lightweight component needs, takes a parallelism slot, and runs the process (cold, through
//! [`crate::process`], or in a warm worker). Every wait ends early when the run is canceled.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use secondrow_spec::graph::{ContainerPlan, PlanKind, TaskPlan};
use secondrow_spec::ir::{ComponentSpec, ImporterSpec};
use secondrow_spec::lightweight;
use secondrow_spec::resources::ResolvedResource;
use secondrow_spec::value;
use secondrow_store::{new_id, NewArtifact, TaskFinish, TaskState};

use super::nodes::{NodeId, Phase, PythonPlan};
use super::{to_json, RunDriver};
use crate::kubernetes::{KubeExecutor, PodEnd, PodPlatform, PodRequest};
use crate::process::{self, Exit, LogLine, ProcessJob};
use crate::python::PythonEnv;
use crate::sandbox::{self, Access, ImportError, ImportPolicy, TaskSandbox};
use crate::task::{self, ArtifactRef, IoValues, LaunchOptions, PreparedContainer};
use crate::warm::WarmJob;
use crate::{cache, retry, Inner, Progress, PythonMode, Result};

/// How one attempt ended: its outputs or why it failed, or canceled.
pub(super) enum AttemptResult {
    Finished(std::result::Result<IoValues, String>),
    Canceled,
}

/// Everything an attempt future needs, detached from the driver.
struct Attempt {
    number: i64,
    delay: Duration,
    prepared: Arc<PreparedContainer>,
    component: Arc<ComponentSpec>,
    job: ProcessJob,
    log_dir: PathBuf,
    python: Option<Arc<PythonPlan>>,
    slots: Arc<Semaphore>,
    cancel: CancellationToken,
    inner: Arc<Inner>,
    /// The run's namespace (output artifact URIs a task reports must be authorized for it).
    namespace: String,
    task_id: String,
    /// Set when the attempt runs as a Kubernetes Pod.
    pod: Option<PodJob>,
    /// The Pod's launcher stages the artifacts (an S3 root): the task's paths are the Pod's, not this
    /// machine's, and its outputs are read back from the store.
    staged: bool,
    /// The task's inputs as the store has them (`s3://` URIs under an S3 root, fetched before the process).
    inputs: IoValues,
}

/// What a Pod of the attempt is made of besides the prepared command.
struct PodJob {
    run_id: String,
    task_path: String,
    image: String,
    /// The container's resources, resolved from the task's inputs.
    resources: std::result::Result<Vec<ResolvedResource>, String>,
    platform: Arc<PodPlatform>,
}

impl RunDriver {
    pub(super) async fn start_container(
        &mut self,
        id: NodeId,
        plan: &Arc<TaskPlan>,
        container: &ContainerPlan,
    ) -> Result<()> {
        let path = self.tree[id].path.clone();
        let display = self.tree[id].display.clone();
        if self.adopt_previous(id) {
            let state = self.tree[id].state;
            self.emit(Progress::Finished { path, display_name: display, state, duration_ms: 0, error: None });
            return Ok(());
        }
        if let Some(op) = container.pvc_op {
            return self.run_pvc_op(id, op).await;
        }

        let options = plan.spec.caching_options.clone().unwrap_or_default();
        let caching = options.enable_cache && !self.options.no_cache;
        let key = cache::cache_key(
            &container.container,
            &plan.component,
            &self.tree[id].inputs,
            options.cache_key.as_deref(),
            &self.run.namespace,
        );
        self.tree[id].exec.cache_key = Some(key.clone());
        self.tree[id].exec.caching = caching;
        if caching && self.use_cached(id, &key).await? {
            self.emit(Progress::Finished {
                path,
                display_name: display,
                state: TaskState::Cached,
                duration_ms: 0,
                error: None,
            });
            return Ok(());
        }

        let attempt = self.previous.get(&path).map(|p| p.attempts).unwrap_or(0) + 1;
        self.tree[id].exec.attempt = attempt;
        let task_id = self.record_start(id).await?;
        self.tree[id].task_id = Some(task_id.clone());
        task::fill_task_uuid(&mut self.tree[id].inputs, &task_id);
        if let (Some(cfg), Some(_)) = (&container.platform, &self.inner.kube) {
            match self.resolve_pod_platform(id, cfg) {
                Ok(p) => self.tree[id].exec.pod_platform = Some(Arc::new(p)),
                Err(e) => return self.fail_leaf(id, e).await,
            }
        } else if let Some(cfg) = &container.platform {
            match self.prepare_platform(id, cfg).await {
                Ok(p) => self.tree[id].exec.platform = Some(Arc::new(p)),
                Err(e) => return self.fail_leaf(id, e).await,
            }
        }
        // Mounts, a kill timer and redacted logs need a process of the task's own.
        let own_process = self.tree[id].exec.platform.as_ref().is_some_and(|p| p.needs_own_process());
        // In a Pod, a lightweight component runs in its own image, the compiled command unchanged (its
        // prelude installs kfp when the image lacks it, as upstream).
        let python = if container.parsed.is_lightweight_python && self.inner.kube.is_none() {
            let base = self.python_env().await;
            // Without kfp in the base Python, the compiled prelude (pip install) has to stay, and runs cold.
            let provided = base.has_kfp;
            // Sandboxed, a `packages_to_install` environment runs cold: a warm worker imports `site` (and so
            // runs the installed packages' `.pth` files) before any sandbox applies.
            let own_env = provided && !container.parsed.requirements.is_empty();
            Some(Arc::new(PythonPlan {
                requirements: if provided { container.parsed.requirements.clone() } else { Default::default() },
                warm: provided
                    && self.inner.config.python_mode == PythonMode::Warm
                    && !own_process
                    && !(own_env && self.inner.config.sandbox.enabled),
                base,
            }))
        } else {
            None
        };
        let launch = LaunchOptions { skip_pip_prelude: python.as_ref().is_some_and(|p| p.base.has_kfp) };
        self.tree[id].exec.python = python;
        // The process sees local paths; under an S3 root, `s3://` inputs map to the store's local mirror, or
        // in a Pod to the launcher's staging folder (kfp's `/s3/BUCKET/KEY` layout under its mount).
        let (local_inputs, task_root) = if self.staged_pods() {
            let mount = crate::kubernetes::launch::staging_mount();
            let inputs = crate::staging::localize_under(mount, &self.tree[id].inputs);
            let local = self.run_root.join(&path);
            let root = self
                .inner
                .artifacts
                .uri_of_local(&local)
                .and_then(|uri| crate::staging::local_path(mount, &uri))
                .unwrap_or(local);
            (inputs, root)
        } else {
            (crate::staging::localize(&self.inner.artifacts, &self.tree[id].inputs), self.run_root.join(&path))
        };
        let prepared = task::prepare(
            &plan.component,
            &container.container,
            &container.parsed,
            &local_inputs,
            &task_root,
            &self.job,
            &self.tree[id].key,
            &task_id,
            &launch,
        );
        match prepared {
            Ok(p) => {
                let n = &mut self.tree[id];
                n.phase = Phase::Running;
                n.exec.prepared = Some(Arc::new(p));
                n.started = Some(Instant::now());
                self.spawn_attempt(id, Duration::ZERO);
                self.emit(Progress::Started { path, display_name: display, attempt });
            }
            Err(e) => self.fail_leaf(id, format!("resolving the command line: {e}")).await?,
        }
        Ok(())
    }

    /// Resume: a task that finished in an earlier execution of this run keeps its result.
    fn adopt_previous(&mut self, id: NodeId) -> bool {
        let Some(prev) = self.previous.get(&self.tree[id].path) else { return false };
        if !prev.state.is_success() {
            return false;
        }
        let Some(outputs) = prev.outputs.as_ref().and_then(|o| serde_json::from_value::<IoValues>(o.clone()).ok())
        else {
            return false;
        };
        let (state, task_id) = (prev.state, prev.id.clone());
        let n = &mut self.tree[id];
        n.task_id = Some(task_id);
        n.finish(state, None, outputs);
        true
    }

    /// A cache hit is recorded as a CACHED task with the cached outputs; false on a miss.
    async fn use_cached(&mut self, id: NodeId, key: &str) -> Result<bool> {
        let Some((_, cached)) = self.inner.store.lookup_cache(key).await? else { return Ok(false) };
        let Ok(outputs) = serde_json::from_value::<IoValues>(cached.clone()) else { return Ok(false) };
        self.tree[id].exec.attempt = 0;
        let task_id = self.record_start(id).await?;
        let refs = outputs.artifact_refs();
        let input_refs = self.tree[id].inputs.artifact_refs();
        self.inner
            .store
            .finish_task(&TaskFinish {
                run_id: &self.run.id,
                task_id: &task_id,
                state: TaskState::Cached,
                error: None,
                cached: true,
                outputs: Some(&cached),
                new_artifacts: &[],
                output_artifact_refs: &refs,
                input_artifact_refs: &input_refs,
                cache_key_to_record: None,
            })
            .await?;
        let n = &mut self.tree[id];
        n.task_id = Some(task_id);
        n.finish(TaskState::Cached, None, outputs);
        Ok(true)
    }

    /// Whether attempts run as Pods whose launcher stages the artifacts (an S3 root on Kubernetes).
    fn staged_pods(&self) -> bool {
        self.inner.kube.is_some() && self.inner.artifacts.is_remote()
    }

    async fn python_env(&self) -> PythonEnv {
        self.inner.python.get_or_init(|| init_python(&self.inner)).await.clone()
    }

    /// Starts the node's next attempt after `delay`.
    pub(super) fn spawn_attempt(&mut self, id: NodeId, delay: Duration) {
        let n = &self.tree[id];
        let (Some(prepared), Some(plan)) = (n.exec.prepared.clone(), n.work.plan()) else { return };
        let log_dir = self.logs_dir.join(&n.path);
        let mut argv = prepared.argv.clone();
        // Built-in components call `secondrow component …`: run this very binary, wherever it is.
        if argv.first().is_some_and(|a| a == "secondrow") {
            if let Ok(me) = std::env::current_exe() {
                argv[0] = me.to_string_lossy().into_owned();
            }
        }
        let platform = n.exec.platform.clone().unwrap_or_default();
        let mut env = prepared.env.clone();
        env.extend(platform.env.iter().cloned());
        let sandbox = self.inner.config.sandbox.enabled.then(|| {
            let mut sb = TaskSandbox::base(self.inner.config.sandbox.task_user);
            // Of the engine's work folder only the `python3` shim: its `volumes/` and `task-files/` hold other
            // namespaces' PVCs and other tasks' secret files.
            sb.read.push(self.inner.config.work_dir.join("python-shim"));
            // The admin's import roots are data every namespace may read (a task may be given such a path
            // as a plain parameter, as the quickstart's `ingest` is).
            sb.read.extend(self.inner.config.sandbox.import_roots.iter().cloned());
            if let Some(first) = argv.first().filter(|a| a.starts_with('/')) {
                sb.read.push(PathBuf::from(first));
            }
            for a in n.inputs.artifacts.values().flatten() {
                if let Some(p) = ImportPolicy::local_path(&a.uri).or_else(|| self.inner.artifacts.local_path(&a.uri)) {
                    sb.read.push(p);
                }
            }
            sb.write.push(prepared.task_root.clone());
            sb.write.push(log_dir.clone());
            // kfp-kubernetes volumes: the folder behind each mount and its mount point.
            for m in &platform.mounts {
                let list = if m.read_only { &mut sb.read } else { &mut sb.write };
                list.extend([m.source.clone(), m.target.clone()]);
            }
            sb
        });
        let job = ProcessJob {
            argv,
            env,
            cwd: prepared.task_root.clone(),
            stdout_log: log_dir.join("stdout.log"),
            stderr_log: log_dir.join("stderr.log"),
            sandbox,
            on_start: None,
            tail: self.log_tx.clone().map(|tx: mpsc::UnboundedSender<LogLine>| (n.path.clone(), tx)),
            mounts: platform.mounts.clone(),
            timeout: platform.timeout,
            redact: platform.redact.clone(),
        };
        let attempt = Attempt {
            number: n.exec.attempt,
            delay,
            prepared,
            component: plan.component.clone(),
            job,
            log_dir,
            python: n.exec.python.clone(),
            slots: self.slots.clone(),
            cancel: self.kill.clone(),
            inner: self.inner.clone(),
            namespace: self.run.namespace.clone(),
            task_id: n.task_id.clone().unwrap_or_default(),
            pod: self.inner.kube.as_ref().map(|_| PodJob {
                run_id: self.run.id.clone(),
                task_path: n.path.clone(),
                image: match &plan.kind {
                    PlanKind::Container(c) => c.container.image.clone(),
                    _ => String::new(),
                },
                resources: match &plan.kind {
                    PlanKind::Container(c) => {
                        c.resources.resolve(&|name| n.inputs.parameters.get(name).map(value::channel_text))
                    }
                    _ => Ok(Vec::new()),
                },
                platform: n.exec.pod_platform.clone().unwrap_or_default(),
            }),
            inputs: n.inputs.clone(),
            staged: self.staged_pods(),
        };
        self.running.spawn(async move { (id, attempt.run().await) });
    }

    /// An attempt ended: record success, retry per policy, or record the failure.
    pub(super) async fn on_attempt_done(&mut self, id: NodeId, result: AttemptResult) -> Result<()> {
        let error = match result {
            AttemptResult::Canceled => {
                return self.finish_leaf(id, TaskState::Canceled, Some("canceled".into()), None).await;
            }
            AttemptResult::Finished(Ok(outputs)) => {
                return self.finish_leaf(id, TaskState::Succeeded, None, Some(outputs)).await;
            }
            AttemptResult::Finished(Err(e)) => e,
        };
        let policy = self.tree[id].work.plan().and_then(|p| p.spec.retry_policy.clone());
        let attempt = self.tree[id].exec.attempt;
        let first_attempt = self.previous.get(&self.tree[id].path).map(|p| p.attempts).unwrap_or(0) + 1;
        let tries_this_execution = attempt - first_attempt + 1;
        if self.canceling || tries_this_execution >= retry::max_attempts(policy.as_ref()) {
            return self.fail_leaf(id, error).await;
        }
        let delay = policy.as_ref().map(|p| retry::backoff(p, tries_this_execution)).unwrap_or_default();
        let next = attempt + 1;
        self.tree[id].exec.attempt = next;
        if let Some(task_id) = &self.tree[id].task_id {
            let starts_at = secondrow_store::now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            self.inner.store.set_task_attempt(task_id, next, starts_at).await?;
        }
        self.emit(Progress::Retrying {
            path: self.tree[id].path.clone(),
            attempt: next,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error,
        });
        self.spawn_attempt(id, delay);
        Ok(())
    }

    pub(super) async fn fail_leaf(&mut self, id: NodeId, error: String) -> Result<()> {
        self.finish_leaf(id, TaskState::Failed, Some(error), None).await
    }

    /// Records a container's or importer's end: state, outputs, new artifacts, lineage and cache entry in
    /// one store transaction.
    pub(super) async fn finish_leaf(
        &mut self,
        id: NodeId,
        state: TaskState,
        error: Option<String>,
        outputs: Option<IoValues>,
    ) -> Result<()> {
        let mut outputs = outputs.unwrap_or_default();
        let mut new_artifacts = Vec::new();
        for (output_name, list) in outputs.artifacts.iter_mut() {
            for a in list.iter_mut() {
                a.id = new_id();
                new_artifacts.push(NewArtifact {
                    id: a.id.clone(),
                    output_name: output_name.clone(),
                    name: a.name.clone(),
                    uri: a.uri.clone(),
                    schema_title: a.schema.schema_title.clone(),
                    schema_version: a.schema.schema_version.clone(),
                    metadata: a.metadata.clone(),
                });
            }
        }
        // The built-in `register_model` component: the engine registers the model it was given.
        let (mut state, mut error) = (state, error);
        if state == TaskState::Succeeded && crate::registry::wants_registration(&new_artifacts) {
            let model = self.tree[id].inputs.artifacts.get("model").and_then(|l| l.first());
            if let Err(message) =
                crate::registry::register_outputs(&self.inner.store, &self.run, model, &new_artifacts).await
            {
                (state, error) = (TaskState::Failed, Some(message));
            }
        }
        let out_json = if state == TaskState::Succeeded { Some(to_json(&outputs)?) } else { None };
        let n = &self.tree[id];
        let input_refs = n.inputs.artifact_refs();
        let task_id = n.task_id.clone().unwrap_or_default();
        let record_cache =
            (state == TaskState::Succeeded && n.exec.caching).then(|| n.exec.cache_key.clone()).flatten();
        self.inner
            .store
            .finish_task(&TaskFinish {
                run_id: &self.run.id,
                task_id: &task_id,
                state,
                error: error.as_deref(),
                cached: false,
                outputs: out_json.as_ref(),
                new_artifacts: &new_artifacts,
                output_artifact_refs: &[],
                input_artifact_refs: &input_refs,
                cache_key_to_record: record_cache.as_deref(),
            })
            .await?;
        let n = &mut self.tree[id];
        let duration_ms = n.started.map(|s| u64::try_from(s.elapsed().as_millis()).unwrap_or(u64::MAX)).unwrap_or(0);
        n.finish(state, error.clone(), outputs);
        let (path, display) = (n.path.clone(), n.display.clone());
        self.emit(Progress::Finished { path, display_name: display, state, duration_ms, error });
        Ok(())
    }

    /// An importer registers its URI as an artifact; it runs no process.
    pub(super) async fn run_importer(&mut self, id: NodeId, plan: &TaskPlan, importer: &ImporterSpec) -> Result<()> {
        let uri = match (&importer.artifact_uri.constant, &importer.artifact_uri.runtime_parameter) {
            (Some(Value::String(s)), _) => Ok(s.clone()),
            (_, Some(p)) => match self.tree[id].inputs.parameters.get(p) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(format!("importer URI parameter `{p}` is not a string: {other}")),
                None => Err(format!("importer URI parameter `{p}` has no value")),
            },
            (Some(other), None) => Err(format!("importer URI is not a string: {other}")),
            (None, None) => Err("importer has no URI".to_owned()),
        };
        // A data version (`secondrow://data/NAME@REF…`) resolves to a commit of the run's namespace now.
        let mut data_source = None;
        let uri = match uri {
            Ok(u) if u.starts_with(crate::data_import::SCHEME) => {
                crate::data_import::resolve(&self.inner.store, &self.inner.artifacts, &self.run.namespace, &u)
                    .await
                    .map(|r| {
                        data_source = Some(r.source);
                        r.uri
                    })
            }
            Ok(u) => authorize_uri(&self.inner, &self.run.namespace, &u).await.map(|()| u),
            Err(e) => Err(e),
        };
        let uri = match uri {
            Ok(u) => u,
            Err(e) => return self.finish_unrun(id, TaskState::Failed, false, e).await,
        };
        let output_name =
            plan.component.output_definitions.artifacts.keys().next().cloned().unwrap_or_else(|| "artifact".into());
        self.tree[id].exec.attempt = 1;
        let task_id = self.record_start(id).await?;
        self.tree[id].task_id = Some(task_id);
        let artifact = ArtifactRef {
            id: String::new(),
            name: output_name.clone(),
            uri,
            schema: importer.type_schema.clone(),
            metadata: importer.metadata.clone().unwrap_or_else(|| json!({})),
        };
        let mut artifact = artifact;
        if let (Some(source), Some(meta)) = (data_source, artifact.metadata.as_object_mut()) {
            meta.insert(crate::data_import::METADATA_KEY.to_owned(), source);
        }
        let mut outputs = IoValues::default();
        outputs.artifacts.insert(output_name, vec![artifact]);
        self.finish_leaf(id, TaskState::Succeeded, None, Some(outputs)).await
    }
}

impl Attempt {
    async fn run(mut self) -> AttemptResult {
        let cancel = self.cancel.clone();
        // Waiting (backoff, environment, a parallelism slot) ends at once on cancel; once the process runs,
        // its executor owns the cancel and kills the whole process group.
        let ready = tokio::select! {
            ready = self.get_ready() => ready,
            _ = cancel.cancelled() => return AttemptResult::Canceled,
        };
        let (python_exe, _slot) = match ready {
            Ok(ready) => ready,
            Err(e) => return AttemptResult::Finished(Err(e)),
        };
        if cancel.is_cancelled() {
            return AttemptResult::Canceled;
        }
        if let Err(e) = self.lay_out() {
            return AttemptResult::Finished(Err(e));
        }
        if self.staged {
            return self.launch(python_exe).await;
        }
        if let Err(e) = crate::staging::fetch_inputs(&self.inner.artifacts, &self.inputs).await {
            return AttemptResult::Finished(Err(format!("staging inputs: {e}")));
        }
        self.launch(python_exe).await
    }

    /// Waits out the backoff, provides the Python environment and takes a slot.
    async fn get_ready(&mut self) -> std::result::Result<(Option<PathBuf>, OwnedSemaphorePermit), String> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let python_exe = self.provide_python().await?;
        let slot = self.slots.clone().acquire_owned().await.map_err(|_| "the parallelism limiter is closed")?;
        Ok((python_exe, slot))
    }

    /// The interpreter of a lightweight component (its `packages_to_install` environment, created on first
    /// use), first on the task's PATH; `None` for other containers.
    async fn provide_python(&mut self) -> std::result::Result<Option<PathBuf>, String> {
        let Some(plan) = &self.python else { return Ok(None) };
        let (exe, prefix) = if plan.requirements.is_empty() {
            (plan.base.python.clone(), plan.base.path_prefix.clone())
        } else {
            let py = self
                .inner
                .envs
                .ensure(&plan.base.python, &plan.requirements)
                .await
                .map_err(|e| format!("creating the environment for packages_to_install: {e}"))?;
            let dir = py.parent().map(Path::to_path_buf);
            (py, dir)
        };
        if let Some(p) = &prefix {
            task::with_path_prefix(&mut self.job.env, p);
        }
        Ok(Some(exe))
    }

    /// Creates the task and log folders; a retry marks its start in the logs.
    fn lay_out(&self) -> std::result::Result<(), String> {
        // A staged Pod's task folder is the Pod's (its launcher makes it).
        std::fs::create_dir_all(&self.log_dir)
            .and_then(|_| {
                if self.staged {
                    Ok(())
                } else {
                    task::lay_out(&self.prepared).and_then(|_| self.lay_out_sandbox())
                }
            })
            .map_err(|e| format!("preparing task folders: {e}"))?;
        if self.number > 1 {
            let note = format!("--- attempt {} ---\n", self.number);
            for log in [&self.job.stdout_log, &self.job.stderr_log] {
                use std::io::Write as _;
                if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
                    let _ = f.write_all(note.as_bytes());
                }
            }
        }
        Ok(())
    }

    /// A sandboxed task's scratch folder (its HOME and TMPDIR), and the task user's ownership of what it
    /// writes: its output folder and scratch folder.
    fn lay_out_sandbox(&self) -> std::io::Result<()> {
        let Some(sb) = &self.job.sandbox else { return Ok(()) };
        let scratch = self.log_dir.join("tmp");
        std::fs::create_dir_all(&scratch)?;
        if let Some(user) = sb.user {
            let (uid, gid) = (Some(nix::unistd::Uid::from_raw(user.uid)), Some(nix::unistd::Gid::from_raw(user.gid)));
            for dir in [&self.prepared.task_root, &self.log_dir, &scratch] {
                nix::unistd::chown(dir.as_path(), uid, gid).map_err(std::io::Error::from)?;
            }
            for p in self.prepared.output_parameter_files.values() {
                if let Some(parent) = p.parent() {
                    nix::unistd::chown(parent, uid, gid).map_err(std::io::Error::from)?;
                }
            }
            // kfp-kubernetes volumes: a PVC's folder is the task user's to write (what earlier tasks wrote in
            // it is theirs already), a secret's or config map's files (private to this attempt) to read.
            for m in &self.job.mounts {
                if m.read_only {
                    crate::sandbox::chown_tree(&m.source, Some(user))?;
                } else {
                    nix::unistd::chown(m.source.as_path(), uid, gid).map_err(std::io::Error::from)?;
                }
            }
        }
        Ok(())
    }

    /// Runs the attempt as a Pod and reads its outputs: from the shared local artifact root, or under an
    /// S3 root from the bucket, where the Pod's launcher uploaded them.
    async fn launch_pod(self, kube: &KubeExecutor, job: &PodJob) -> AttemptResult {
        let resources = match &job.resources {
            Ok(r) => r,
            Err(e) => return AttemptResult::Finished(Err(e.clone())),
        };
        let settings = kube.settings();
        let shared: Vec<PathBuf> =
            if self.staged { Vec::new() } else { vec![self.inner.artifacts.root().to_path_buf()] };
        let staging = self.staged.then(|| crate::kubernetes::PodStaging {
            mount: crate::kubernetes::launch::STAGING_MOUNT.to_owned(),
            executor_input: self.prepared.executor_input.to_string(),
            env: crate::kubernetes::launch::pod_env(&self.inner.artifacts, settings.s3_credentials_secret.is_some()),
            credentials_secret: settings.s3_credentials_secret.clone(),
        });
        // Built-in components call this very binary: in a Pod with the launcher, the copy of it there.
        let mut argv = self.job.argv.clone();
        let me = std::env::current_exe().ok().map(|p| p.to_string_lossy().into_owned());
        if settings.launcher_image.is_some() && argv.first().is_some_and(|a| Some(a) == me.as_ref()) {
            argv[0] = crate::kubernetes::launch::binary_in_pod();
        }
        let working_dir = self.job.cwd.to_string_lossy().into_owned();
        let request = PodRequest {
            namespace: kube.namespace(),
            run_id: &job.run_id,
            task_id: &self.task_id,
            task_path: &job.task_path,
            attempt: self.number,
            image: &job.image,
            argv: &argv,
            env: &self.job.env,
            // A staged Pod runs in its image's working folder, as upstream (the task folder is the launcher's).
            working_dir: (!self.staged).then_some(working_dir.as_str()),
            resources,
            platform: &job.platform,
            shared_dirs: &shared,
            node_name: settings.node_name.as_deref(),
            service_account: settings.service_account.as_deref(),
            launcher_image: settings.launcher_image.as_deref(),
            staging: staging.as_ref(),
        };
        let pod = match crate::kubernetes::pod::build(&request) {
            Ok(p) => p,
            Err(e) => return AttemptResult::Finished(Err(e.to_string())),
        };
        let end = kube.run(pod, &job.run_id, &job.task_path, &self.job.stdout_log, self.cancel.clone()).await;
        match end {
            PodEnd::Canceled => AttemptResult::Canceled,
            PodEnd::Failed(m) => AttemptResult::Finished(Err(with_stderr_tail(m, &self.job.stdout_log))),
            PodEnd::Succeeded if self.staged => AttemptResult::Finished(self.finish_staged_outputs().await),
            PodEnd::Succeeded => AttemptResult::Finished(self.finish_outputs().await),
        }
    }

    /// A staged Pod's outputs, read from the store: `executor_output.json` and the output-parameter files the
    /// launcher uploaded, output artifacts at their `s3://` URIs.
    async fn finish_staged_outputs(&self) -> std::result::Result<IoValues, String> {
        let mount = crate::kubernetes::launch::staging_mount();
        let mut paths = vec![self.prepared.executor_output.as_path()];
        paths.extend(self.prepared.output_parameter_files.values().map(PathBuf::as_path));
        let texts = crate::staging::read_remote_outputs(&self.inner.artifacts, mount, &paths)
            .await
            .map_err(|e| format!("reading the task's outputs from the artifact store: {e}"))?;
        let mut outputs = task::collect_outputs_with(&self.component, &self.prepared, &|p| Ok(texts.get(p).cloned()))
            .map_err(|e| e.to_string())?;
        for a in outputs.artifacts.values_mut().flatten() {
            if let Some(uri) = crate::staging::remote_uri(mount, &a.uri) {
                a.uri = uri;
            }
        }
        self.authorize_outputs(outputs).await
    }

    /// A succeeded attempt's outputs: read back, checked against the run's namespace, and uploaded when the
    /// artifact root is remote (`staging::publish_outputs`).
    async fn finish_outputs(&self) -> std::result::Result<IoValues, String> {
        let outputs = task::collect_outputs(&self.component, &self.prepared).map_err(|e| e.to_string())?;
        let mut outputs = self.authorize_outputs(outputs).await?;
        crate::staging::publish_outputs(&self.inner.artifacts, &mut outputs)
            .await
            .map_err(|e| format!("uploading outputs: {e}"))?;
        Ok(outputs)
    }

    /// Runs the process (in a warm worker for warm lightweight components) and reads its outputs.
    async fn launch(mut self, python_exe: Option<PathBuf>) -> AttemptResult {
        if let (Some(kube), Some(job)) = (self.inner.kube.clone(), self.pod.take()) {
            return self.launch_pod(&kube, &job).await;
        }
        let stderr_log = self.job.stderr_log.clone();
        let argv = self.job.argv.clone();
        if let Some(sb) = &mut self.job.sandbox {
            if let Some(exe) = &python_exe {
                sb.add_python(exe);
            }
            self.job.env = sandbox::task_env(sandbox::inherited_env(), &self.log_dir.join("tmp"), &self.job.env);
        }
        // Record the process group as soon as it runs: a restart after a crash kills it before re-running.
        let (started_tx, mut started_rx) = mpsc::unbounded_channel::<u32>();
        self.job.on_start = Some(started_tx);
        let (store, task_id) = (self.inner.store.clone(), self.task_id.clone());
        let recorder = tokio::spawn(async move {
            if let Some(pgid) = started_rx.recv().await {
                if let Some(started) = process::start_time(pgid) {
                    let (pgid, started) = (i64::from(pgid), i64::try_from(started).unwrap_or(i64::MAX));
                    if let Err(e) = store.set_task_process(&task_id, pgid, started).await {
                        tracing::warn!("recording the process group of task {task_id}: {e}");
                    }
                }
            }
        });
        let warm_program = match (&self.python, &python_exe) {
            (Some(plan), Some(exe)) if plan.warm => lightweight::split_program(&self.job.argv)
                .map(|(code, args)| (exe.clone(), code.to_owned(), args.to_vec())),
            _ => None,
        };
        let outcome = match warm_program {
            Some((exe, code, args)) => {
                let job = &self.job;
                let env: Vec<(String, String)> = if job.sandbox.is_some() {
                    job.env.clone()
                } else {
                    let mut env: Vec<(String, String)> =
                        std::env::vars().filter(|(k, _)| !job.env.iter().any(|(e, _)| e == k)).collect();
                    env.extend(job.env.iter().cloned());
                    env
                };
                let warm_job = WarmJob {
                    code,
                    args,
                    env,
                    cwd: job.cwd.clone(),
                    program_dir: self.log_dir.join("program"),
                    stdout_log: job.stdout_log.clone(),
                    stderr_log: job.stderr_log.clone(),
                    sandbox: job.sandbox.clone(),
                    on_start: job.on_start.clone(),
                    tail: job.tail.clone(),
                };
                self.inner.warm.run(&exe, warm_job, self.cancel.clone()).await.map_err(process::SpawnError::Worker)
            }
            None => process::run_process(self.job.clone(), self.cancel.clone()).await,
        };
        // Every sender is gone now (the process's copy ended with it), so the recorder ends too.
        self.job.on_start = None;
        let _ = recorder.await;
        match outcome {
            Ok((Exit::Canceled, _)) => AttemptResult::Canceled,
            Ok((Exit::TimedOut(t), _)) => AttemptResult::Finished(Err(format!(
                "timed out after {}s (kubernetes.set_timeout) and was killed",
                t.as_secs()
            ))),
            Ok((Exit::Code(0), _)) => AttemptResult::Finished(self.finish_outputs().await),
            Ok((Exit::Code(c), _)) => {
                let mut msg = with_stderr_tail(format!("exited with status {c}"), &stderr_log);
                if let Some(hint) = shell_hint(&argv, &stderr_log) {
                    msg = format!("{msg}; {hint}");
                }
                AttemptResult::Finished(Err(msg))
            }
            Ok((Exit::Signal(s), _)) => {
                AttemptResult::Finished(Err(with_stderr_tail(format!("killed by signal {s}"), &stderr_log)))
            }
            Err(e) => AttemptResult::Finished(Err(e.to_string())),
        }
    }
}

impl Attempt {
    /// An output artifact whose URI the task changed (in `executor_output.json`) must point where an import
    /// could: a task cannot hand its downstream tasks another namespace's files.
    async fn authorize_outputs(&self, outputs: IoValues) -> std::result::Result<IoValues, String> {
        for (name, list) in &outputs.artifacts {
            for a in list {
                let mut default = self.prepared.output_artifacts.get(name).map(|d| d.uri.clone());
                if self.staged {
                    let mount = crate::kubernetes::launch::staging_mount();
                    default = default.map(|d| crate::staging::remote_uri(mount, &d).unwrap_or(d));
                }
                if default.as_deref() != Some(a.uri.as_str()) {
                    authorize_uri(&self.inner, &self.namespace, &a.uri)
                        .await
                        .map_err(|e| format!("output artifact `{name}`: {e}"))?;
                }
            }
        }
        Ok(outputs)
    }
}

/// Whether `uri` may enter a run of `namespace` (an importer's URI, a task's re-pointed output).
async fn authorize_uri(inner: &Inner, namespace: &str, uri: &str) -> std::result::Result<(), String> {
    let policy = ImportPolicy { config: &inner.config.sandbox, artifact_root: inner.artifacts.root() };
    match policy.authorize(uri) {
        Ok(Access::Allowed) => Ok(()),
        Ok(Access::IfNamespace(owner)) if owner == namespace => Ok(()),
        Ok(Access::IfNamespace(_)) => Err(ImportError::Outside(uri.to_owned()).to_string()),
        Ok(Access::IfRunInNamespace(run)) => match inner.store.get_run(&run).await {
            Ok(r) if r.namespace == namespace => Ok(()),
            _ => Err(ImportError::Outside(uri.to_owned()).to_string()),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// Finds the Python for lightweight components. In warm mode, starting the worker (which imports kfp)
/// is the probe, so no second interpreter is paid for.
pub(super) async fn init_python(inner: &Inner) -> PythonEnv {
    let cfg = &inner.config;
    if cfg.python_mode == PythonMode::Warm {
        let mut env = PythonEnv::locate(cfg.python.as_deref(), &cfg.work_dir);
        // A sandboxing engine's worker holds only the allow-listed environment: its children (the tasks)
        // inherit its memory, so it must never have seen the server's secrets.
        let mut vars: Vec<(String, String)> =
            if cfg.sandbox.enabled { sandbox::allowed_env() } else { std::env::vars().collect() };
        if let Some(p) = &env.path_prefix {
            task::with_path_prefix(&mut vars, p);
        }
        match inner.warm.start(&env.python, &vars).await {
            Ok(()) => {
                env.has_kfp = true;
                return env;
            }
            Err(e) => tracing::warn!("{e}; running lightweight components cold"),
        }
    }
    let env = PythonEnv::detect(cfg.python.as_deref(), &cfg.work_dir).await;
    if let Some(note) = &env.note {
        tracing::warn!("{note}; lightweight components keep their pip prelude (set --python to a Python with kfp)");
    }
    env
}

/// Appends the last line of a task's stderr to its error message, so the run's error says why.
/// A hint when an `sh -c` script failed on bash syntax under a `/bin/sh` that is not bash
/// ([`task::bash_hint`]).
fn shell_hint(argv: &[String], stderr_log: &Path) -> Option<String> {
    let sh = std::fs::canonicalize("/bin/sh").ok()?;
    let sh_name = sh.file_name()?.to_string_lossy().into_owned();
    let text = std::fs::read_to_string(stderr_log).ok()?;
    task::bash_hint(argv, &text, &sh_name)
}

fn with_stderr_tail(msg: String, stderr_log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(stderr_log) else { return msg };
    match text.lines().rev().find(|l| !l.trim().is_empty() && !l.starts_with("--- attempt")) {
        Some(last) => {
            let last: String = last.chars().take(300).collect();
            format!("{msg}: {last}")
        }
        None => msg,
    }
}
