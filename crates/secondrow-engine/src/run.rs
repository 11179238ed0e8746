//! The run driver: the single owner of one run's state while it executes.
//!
//! The run is a tree of nodes — the root DAG, nested DAGs, loops and their iterations, and leaf tasks
//! (containers, importers). The driver alternates between two steps until the root is done:
//! `schedule` makes every decision possible now (start ready tasks, skip tasks whose upstream failed or
//! whose condition is false, complete groups whose children are all done), then it waits for one event
//! (an attempt finished, or a cancel). Every transition is written to the store before the next decision,
//! so a killed process loses at most the attempts that were running.
//!
//! Resume: tasks the store already holds as SUCCEEDED or CACHED (same run, same path) are adopted with
//! their recorded outputs instead of being executed again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use secondrow_spec::cel::{self, CelValue, Env};
use secondrow_spec::ir::{ComponentSpec, TaskSpec};
use secondrow_spec::{upstream_tasks, value, Pipeline};
use secondrow_store::{
    new_id, NewArtifact, RunRecord, RunState, TaskFinish, TaskKind, TaskRecord, TaskStart, TaskState,
};

use crate::executor::{self, Exit, LogLine, ProcessJob};
use crate::python::PythonEnv;
use crate::task::{self, ArtifactRef, JobContext, LaunchOptions, Outputs, PreparedContainer};
use crate::warm::WarmJob;
use crate::PythonMode;
use crate::{cache, retry, EngineError, Inner, Progress, Result, RunControl, RunOptions};
use secondrow_spec::lightweight::{self, PipRequirements};

type NodeId = usize;

/// The root component has no name in `components`; this marks it.
const ROOT: &str = "";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Running,
    Done,
}

struct Node {
    parent: Option<NodeId>,
    path: String,
    key: String,
    display: String,
    spec: Option<TaskSpec>,
    component: String,
    kind: TaskKind,
    phase: Phase,
    state: TaskState,
    /// Skipped because its own condition was false (not because upstream failed).
    by_condition: bool,
    error: Option<String>,
    task_id: Option<String>,
    children: Vec<NodeId>,
    child_by_key: HashMap<String, NodeId>,
    inputs: Outputs,
    outputs: Outputs,
    attempt: i64,
    started: Option<Instant>,
    prepared: Option<Arc<PreparedContainer>>,
    cache_key: Option<String>,
    caching: bool,
    /// Lightweight Python components: which Python, environment and mode run them.
    python: Option<Arc<PythonPlan>>,
    /// Loops: at most this many iterations running at once.
    limit: usize,
}

/// How a lightweight component's Python is provided.
struct PythonPlan {
    base: PythonEnv,
    /// `packages_to_install`, provided by a cached environment (empty: the base suffices).
    requirements: PipRequirements,
    warm: bool,
}

enum AttemptResult {
    Finished(std::result::Result<Outputs, String>, Duration),
    Canceled,
}

pub(crate) struct RunDriver {
    inner: Arc<Inner>,
    pipeline: Arc<Pipeline>,
    run: RunRecord,
    options: RunOptions,
    progress: Option<mpsc::UnboundedSender<Progress>>,
    cancel_rx: Option<watch::Receiver<bool>>,
    log_tx: Option<mpsc::UnboundedSender<LogLine>>,
    nodes: Vec<Node>,
    previous: HashMap<String, TaskRecord>,
    running: JoinSet<(NodeId, AttemptResult)>,
    kill_tx: watch::Sender<bool>,
    canceling: bool,
    job: JobContext,
    run_root: PathBuf,
    logs_dir: PathBuf,
    slots: Arc<Semaphore>,
}

impl RunDriver {
    pub(crate) async fn new(
        inner: Arc<Inner>,
        pipeline: Arc<Pipeline>,
        run: RunRecord,
        options: RunOptions,
        control: RunControl,
    ) -> Result<RunDriver> {
        let previous = inner.store.list_tasks(&run.id).await?.into_iter().map(|t| (t.path.clone(), t)).collect();
        let run_root = inner.artifacts.root().join(&run.id);
        let logs_dir = inner.config.logs_root.join(&run.id);
        let created = chrono::DateTime::from_timestamp_millis(run.created_at).unwrap_or_default();
        let job = JobContext {
            job_name: run.display_name.clone(),
            job_resource_name: format!("{}-{}", run.pipeline_name, run.id),
            job_uuid: run.id.clone(),
            pipeline_root: run_root.to_string_lossy().into_owned(),
            create_time: created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let slots = match options.parallelism {
            Some(n) => Arc::new(Semaphore::new(n.max(1))),
            None => inner.slots.clone(),
        };
        let log_tx = match (&control.progress, control.tail_logs) {
            (Some(progress), true) => {
                let (tx, mut rx) = mpsc::unbounded_channel::<LogLine>();
                let progress = progress.clone();
                tokio::spawn(async move {
                    while let Some(line) = rx.recv().await {
                        let _ = progress.send(Progress::Log(line));
                    }
                });
                Some(tx)
            }
            _ => None,
        };
        let (kill_tx, _) = watch::channel(false);
        Ok(RunDriver {
            inner,
            pipeline,
            run,
            options,
            progress: control.progress,
            cancel_rx: Some(control.cancel),
            log_tx,
            nodes: Vec::new(),
            previous,
            running: JoinSet::new(),
            kill_tx,
            canceling: false,
            job,
            run_root,
            logs_dir,
            slots,
        })
    }

    pub(crate) async fn drive(mut self) -> Result<()> {
        let run_id = self.run.id.clone();
        self.inner.store.set_run_state(&run_id, RunState::Running, None).await?;
        let root_inputs = Outputs {
            parameters: self.run.parameters.as_object().cloned().unwrap_or_default(),
            artifacts: Default::default(),
        };
        let root = self.add_node(
            None,
            String::new(),
            String::new(),
            self.pipeline.name().to_owned(),
            None,
            ROOT.into(),
            TaskKind::Dag,
        );
        self.nodes[root].inputs = root_inputs;
        if self.pipeline.executors.values().any(|e| e.is_lightweight_python) {
            // Warm the Python up while the first tasks are being prepared.
            let inner = self.inner.clone();
            tokio::spawn(async move {
                inner.python.get_or_init(|| init_python(&inner)).await;
            });
        }
        self.start_group(root).await?;
        let mut cancel_rx = self.cancel_rx.take().ok_or_else(|| EngineError::Internal("driver reused".into()))?;
        loop {
            if !self.canceling && *cancel_rx.borrow() {
                self.begin_cancel();
            }
            self.schedule().await?;
            if self.nodes[root].phase == Phase::Done {
                break;
            }
            if self.running.is_empty() {
                if self.canceling {
                    break;
                }
                return Err(EngineError::Internal("run stalled: tasks remain but none can start".into()));
            }
            tokio::select! {
                changed = cancel_rx.changed(), if !self.canceling => {
                    if changed.is_err() {
                        // Nobody can cancel any more; stop listening.
                        self.canceling = false;
                        let (_tx, rx) = watch::channel(false);
                        std::mem::forget(_tx);
                        cancel_rx = rx;
                    }
                }
                joined = self.running.join_next() => {
                    if let Some(joined) = joined {
                        let (id, result) = joined.map_err(|e| EngineError::Internal(format!("task future failed: {e}")))?;
                        self.on_attempt_done(id, result).await?;
                    }
                }
            }
        }
        if self.canceling {
            for n in &mut self.nodes {
                if n.phase != Phase::Done {
                    n.phase = Phase::Done;
                    n.state = TaskState::Canceled;
                }
            }
            self.inner.store.close_open_tasks(&run_id, TaskState::Canceled, "run canceled").await?;
            self.inner.store.set_run_state(&run_id, RunState::Canceled, Some("run canceled")).await?;
            return Ok(());
        }
        let root_node = &self.nodes[root];
        let outputs = serde_json::to_value(&root_node.outputs).map_err(|e| EngineError::Internal(e.to_string()))?;
        self.inner.store.set_run_outputs(&run_id, &outputs).await?;
        let (state, error) = match root_node.state {
            TaskState::Failed => (RunState::Failed, root_node.error.clone()),
            TaskState::Canceled => (RunState::Canceled, root_node.error.clone()),
            _ => (RunState::Succeeded, None),
        };
        self.inner.store.set_run_state(&run_id, state, error.as_deref()).await?;
        Ok(())
    }

    fn begin_cancel(&mut self) {
        self.canceling = true;
        let _ = self.kill_tx.send(true);
    }

    fn emit(&self, p: Progress) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(p);
        }
    }

    fn comp(&self, name: &str) -> &ComponentSpec {
        if name == ROOT {
            &self.pipeline.spec.root
        } else {
            // Validation guarantees every referenced component exists.
            &self.pipeline.spec.components[name]
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_node(
        &mut self,
        parent: Option<NodeId>,
        path: String,
        key: String,
        display: String,
        spec: Option<TaskSpec>,
        component: String,
        kind: TaskKind,
    ) -> NodeId {
        let id = self.nodes.len();
        if let Some(p) = parent {
            self.nodes[p].children.push(id);
            self.nodes[p].child_by_key.insert(key.clone(), id);
        }
        self.nodes.push(Node {
            parent,
            path,
            key,
            display,
            spec,
            component,
            kind,
            phase: Phase::Pending,
            state: TaskState::Pending,
            by_condition: false,
            error: None,
            task_id: None,
            children: Vec::new(),
            child_by_key: HashMap::new(),
            inputs: Outputs::default(),
            outputs: Outputs::default(),
            attempt: 0,
            started: None,
            prepared: None,
            cache_key: None,
            caching: false,
            python: None,
            limit: usize::MAX,
        });
        id
    }

    /// Makes every decision available now, until nothing changes.
    async fn schedule(&mut self) -> Result<()> {
        loop {
            let mut changed = false;
            let mut id = 0;
            while id < self.nodes.len() {
                match self.nodes[id].phase {
                    Phase::Pending => {
                        let parent_running =
                            self.nodes[id].parent.is_some_and(|p| self.nodes[p].phase == Phase::Running);
                        if parent_running && !self.canceling {
                            changed |= self.try_start(id).await?;
                        }
                    }
                    Phase::Running => {
                        let group = matches!(self.nodes[id].kind, TaskKind::Dag | TaskKind::Loop | TaskKind::Iteration);
                        if group && self.nodes[id].children.iter().all(|c| self.nodes[*c].phase == Phase::Done) {
                            self.complete_group(id).await?;
                            changed = true;
                        }
                    }
                    Phase::Done => {}
                }
                id += 1;
            }
            if !changed {
                return Ok(());
            }
        }
    }

    /// Upstream that did not succeed blocks dependents (unless they accept completed upstream).
    fn blocks(&self, id: NodeId) -> bool {
        let n = &self.nodes[id];
        matches!(n.state, TaskState::Failed | TaskState::Canceled) || (n.state == TaskState::Skipped && !n.by_condition)
    }

    async fn try_start(&mut self, id: NodeId) -> Result<bool> {
        let Some(parent) = self.nodes[id].parent else { return Ok(false) };
        if self.nodes[id].kind == TaskKind::Iteration {
            let running =
                self.nodes[parent].children.iter().filter(|c| self.nodes[**c].phase == Phase::Running).count();
            if running >= self.nodes[parent].limit {
                return Ok(false);
            }
            self.start_group(id).await?;
            return Ok(true);
        }
        let Some(spec) = self.nodes[id].spec.clone() else { return Ok(false) };
        let mut blocked_by = None;
        for dep in upstream_tasks(&spec) {
            let Some(&sib) = self.nodes[parent].child_by_key.get(dep) else {
                return Err(EngineError::Internal(format!("unknown upstream `{dep}`")));
            };
            if self.nodes[sib].phase != Phase::Done {
                return Ok(false);
            }
            if self.blocks(sib) {
                blocked_by = Some(dep.to_owned());
            }
        }
        let accepts_completed = spec
            .trigger_policy
            .as_ref()
            .and_then(|t| t.strategy.as_deref())
            .is_some_and(|s| s == "ALL_UPSTREAM_TASKS_COMPLETED");
        if let Some(dep) = blocked_by {
            if !accepts_completed {
                self.finish_unrun(id, TaskState::Skipped, false, format!("upstream task `{dep}` did not succeed"))
                    .await?;
                return Ok(true);
            }
        }
        let inputs = match self.resolve_inputs(id, &spec) {
            Ok(i) => i,
            Err(e) => {
                self.finish_unrun(id, TaskState::Failed, false, e).await?;
                return Ok(true);
            }
        };
        if let Some(cond) = spec.trigger_policy.as_ref().and_then(|t| t.condition.as_deref()) {
            let mut env = Env::new();
            env.insert(
                "inputs".into(),
                CelValue::from_json(&json!({ "parameter_values": Value::Object(inputs.parameters.clone()) })),
            );
            match cel::eval_condition(cond, &env) {
                Ok(true) => {}
                Ok(false) => {
                    self.nodes[id].inputs = inputs;
                    self.finish_unrun(id, TaskState::Skipped, true, "condition is false".into()).await?;
                    return Ok(true);
                }
                Err(e) => {
                    self.finish_unrun(id, TaskState::Failed, false, format!("condition `{cond}`: {e}")).await?;
                    return Ok(true);
                }
            }
        }
        self.nodes[id].inputs = inputs;
        match self.nodes[id].kind {
            TaskKind::Dag => self.start_group(id).await?,
            TaskKind::Loop => self.start_loop(id).await?,
            TaskKind::Container => self.start_container(id).await?,
            TaskKind::Importer => self.run_importer(id).await?,
            TaskKind::Iteration => unreachable!("iterations are started above"),
        }
        Ok(true)
    }

    fn sibling(&self, id: NodeId, key: &str) -> std::result::Result<NodeId, String> {
        let parent = self.nodes[id].parent.ok_or("the root has no siblings")?;
        self.nodes[parent].child_by_key.get(key).copied().ok_or_else(|| format!("unknown task `{key}`"))
    }

    /// Resolves a task's inputs from its parent's inputs, its siblings' outputs and constants.
    fn resolve_inputs(&self, id: NodeId, spec: &TaskSpec) -> std::result::Result<Outputs, String> {
        let node = &self.nodes[id];
        let parent = &self.nodes[node.parent.ok_or("the root has no task spec")?];
        let comp = self.comp(&node.component);
        let mut out = Outputs::default();
        for (name, src) in &spec.inputs.parameters {
            let mut v = if let Some(p) = &src.component_input_parameter {
                parent.inputs.parameters.get(p).cloned()
            } else if let Some(t) = &src.task_output_parameter {
                let sib = &self.nodes[self.sibling(id, &t.producer_task)?];
                match sib.outputs.parameters.get(&t.output_parameter_key) {
                    Some(v) => Some(v.clone()),
                    None if sib.state == TaskState::Skipped => None,
                    None => {
                        return Err(format!(
                            "input `{name}`: task `{}` produced no output `{}`",
                            t.producer_task, t.output_parameter_key
                        ))
                    }
                }
            } else if let Some(rv) = &src.runtime_value {
                match &rv.constant {
                    Value::String(s) => Some(Value::String(
                        task::expand_constant(s, &parent.inputs, &self.job, &node.key, "")
                            .map_err(|e| format!("input `{name}`: {e}"))?,
                    )),
                    other => Some(other.clone()),
                }
            } else if let Some(fs) = &src.task_final_status {
                Some(self.final_status(self.sibling(id, &fs.producer_task)?))
            } else {
                None
            };
            if let (Some(sel), Some(val)) = (&src.parameter_expression_selector, &v) {
                let mut env = Env::new();
                env.insert("string_value".into(), CelValue::String(value::placeholder_text(val)));
                let parsed = cel::parse(sel).map_err(|e| format!("input `{name}` selector: {e}"))?;
                v = Some(
                    cel::eval(&parsed, &env).map_err(|e| format!("input `{name}` selector `{sel}`: {e}"))?.to_json(),
                );
            }
            if let Some(val) = v {
                let val = match comp.input_definitions.parameters.get(name) {
                    Some(def) => value::coerce(&val, def.parameter_type).map_err(|e| format!("input `{name}`: {e}"))?,
                    None => val,
                };
                out.parameters.insert(name.clone(), val);
            }
        }
        for (name, def) in &comp.input_definitions.parameters {
            if !out.parameters.contains_key(name) {
                if let Some(d) = &def.default_value {
                    let d =
                        value::coerce(d, def.parameter_type).map_err(|e| format!("default of input `{name}`: {e}"))?;
                    out.parameters.insert(name.clone(), d);
                }
            }
        }
        for (name, src) in &spec.inputs.artifacts {
            let list = if let Some(t) = &src.task_output_artifact {
                let sib = &self.nodes[self.sibling(id, &t.producer_task)?];
                match sib.outputs.artifacts.get(&t.output_artifact_key) {
                    Some(l) => Some(l.clone()),
                    None if sib.state == TaskState::Skipped => None,
                    None => {
                        return Err(format!(
                            "input `{name}`: task `{}` produced no artifact `{}`",
                            t.producer_task, t.output_artifact_key
                        ))
                    }
                }
            } else if let Some(p) = &src.component_input_artifact {
                parent.inputs.artifacts.get(p).cloned()
            } else {
                None
            };
            if let Some(l) = list {
                out.artifacts.insert(name.clone(), l);
            }
        }
        Ok(out)
    }

    /// The `TASK_FINAL_STATUS` value of a finished task (docs/kfp-contract.md §3.5).
    fn final_status(&self, id: NodeId) -> Value {
        let n = &self.nodes[id];
        let (state, error) = match n.state {
            TaskState::Failed => ("FAILED", json!({"code": 2, "message": n.error.clone().unwrap_or_default()})),
            TaskState::Canceled => ("CANCELED", json!({"code": 1, "message": n.error.clone().unwrap_or_default()})),
            _ => ("COMPLETE", json!({})),
        };
        json!({
            "state": state,
            "pipelineJobResourceName": self.job.job_resource_name,
            "pipelineTaskName": n.key,
            "error": error,
        })
    }

    fn task_start<'a>(&'a self, id: NodeId, state: TaskState, inputs: Option<&'a Value>) -> TaskStart<'a> {
        let n = &self.nodes[id];
        TaskStart {
            run_id: &self.run.id,
            parent_id: n.parent.and_then(|p| self.nodes[p].task_id.as_deref()),
            path: &n.path,
            task_key: &n.key,
            display_name: &n.display,
            kind: n.kind,
            state,
            attempt: n.attempt,
            cache_key: n.cache_key.as_deref(),
            inputs,
        }
    }

    /// Records a task that will not run (skipped, or failed before starting).
    async fn finish_unrun(&mut self, id: NodeId, state: TaskState, by_condition: bool, reason: String) -> Result<()> {
        let inputs = serde_json::to_value(&self.nodes[id].inputs).ok();
        let task_id =
            self.inner.store.record_unrun_task(&self.task_start(id, state, inputs.as_ref()), Some(&reason)).await?;
        let n = &mut self.nodes[id];
        n.task_id = Some(task_id);
        n.phase = Phase::Done;
        n.state = state;
        n.by_condition = by_condition;
        n.error = Some(reason.clone());
        if matches!(n.kind, TaskKind::Container | TaskKind::Importer) {
            let (path, display) = (n.path.clone(), n.display.clone());
            self.emit(Progress::Finished { path, display_name: display, state, duration_ms: 0, error: Some(reason) });
        }
        Ok(())
    }

    /// Starts a DAG-like node: records it and creates its children.
    async fn start_group(&mut self, id: NodeId) -> Result<()> {
        if self.nodes[id].parent.is_some() {
            let inputs = serde_json::to_value(&self.nodes[id].inputs).ok();
            let task_id =
                self.inner.store.start_task(&self.task_start(id, TaskState::Running, inputs.as_ref())).await?;
            self.nodes[id].task_id = Some(task_id);
        }
        self.nodes[id].phase = Phase::Running;
        self.nodes[id].started = Some(Instant::now());
        let comp_name = self.nodes[id].component.clone();
        let Some(dag) = self.comp(&comp_name).dag.clone() else {
            return Err(EngineError::Internal(format!("component `{comp_name}` has no dag")));
        };
        let mut planned = 0;
        for (key, task_spec) in dag.tasks {
            let comp = self.comp(&task_spec.component_ref.name);
            let kind = if task_spec.parameter_iterator.is_some() {
                TaskKind::Loop
            } else if comp.dag.is_some() {
                TaskKind::Dag
            } else {
                let label = comp.executor_label.clone().unwrap_or_default();
                match self.pipeline.executor(&label) {
                    Some(e) if e.importer.is_some() => TaskKind::Importer,
                    _ => TaskKind::Container,
                }
            };
            if matches!(kind, TaskKind::Container | TaskKind::Importer) {
                planned += 1;
            }
            let path =
                if self.nodes[id].path.is_empty() { key.clone() } else { format!("{}/{key}", self.nodes[id].path) };
            let display =
                if task_spec.task_info.name.is_empty() { key.clone() } else { task_spec.task_info.name.clone() };
            let component = task_spec.component_ref.name.clone();
            self.add_node(Some(id), path, key, display, Some(task_spec), component, kind);
        }
        if planned > 0 {
            self.emit(Progress::Planned { count: planned });
        }
        Ok(())
    }

    async fn start_loop(&mut self, id: NodeId) -> Result<()> {
        let spec = self.nodes[id].spec.clone().ok_or_else(|| EngineError::Internal("loop without spec".into()))?;
        let Some(iter) = spec.parameter_iterator.clone() else {
            return Err(EngineError::Internal("loop without iterator".into()));
        };
        let items = match (&iter.items.raw, &iter.items.input_parameter) {
            (Some(raw), _) => serde_json::from_str::<Value>(raw).map_err(|e| e.to_string()),
            (None, Some(p)) => match self.nodes[id].inputs.parameters.get(p) {
                Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| format!("items `{p}`: {e}")),
                Some(v) => Ok(v.clone()),
                None => Err(format!("loop items input `{p}` has no value")),
            },
            (None, None) => Err("loop has no items".to_owned()),
        };
        let items = match items.map(value::normalize) {
            Ok(Value::Array(a)) => a,
            Ok(other) => {
                return self
                    .finish_unrun(id, TaskState::Failed, false, format!("loop items are not a list: {other}"))
                    .await;
            }
            Err(e) => return self.finish_unrun(id, TaskState::Failed, false, e).await,
        };
        let inputs = serde_json::to_value(&self.nodes[id].inputs).ok();
        let task_id = self.inner.store.start_task(&self.task_start(id, TaskState::Running, inputs.as_ref())).await?;
        let limit = spec.iterator_policy.as_ref().map(|p| p.parallelism_limit).filter(|l| *l > 0);
        let item_type = self
            .comp(&self.nodes[id].component)
            .input_definitions
            .parameters
            .get(&iter.item_input)
            .map(|d| d.parameter_type);
        {
            let n = &mut self.nodes[id];
            n.task_id = Some(task_id);
            n.phase = Phase::Running;
            n.started = Some(Instant::now());
            n.limit = limit.map(|l| l as usize).unwrap_or(usize::MAX);
        }
        for (i, item) in items.into_iter().enumerate() {
            let item = match item_type {
                Some(t) => match value::coerce(&item, t) {
                    Ok(v) => v,
                    Err(e) => {
                        let msg = format!("loop item {i}: {e}");
                        self.nodes[id].phase = Phase::Pending;
                        return self.finish_unrun(id, TaskState::Failed, false, msg).await;
                    }
                },
                None => item,
            };
            let n = &self.nodes[id];
            let (path, display, component) =
                (format!("{}/{i}", n.path), format!("{}-{i}", n.display), n.component.clone());
            let mut inputs = n.inputs.clone();
            inputs.parameters.insert(iter.item_input.clone(), item);
            let child = self.add_node(Some(id), path, i.to_string(), display, None, component, TaskKind::Iteration);
            self.nodes[child].inputs = inputs;
        }
        Ok(())
    }

    /// All children done: compute the group's state and outputs and record them.
    async fn complete_group(&mut self, id: NodeId) -> Result<()> {
        let failed = self.nodes[id]
            .children
            .iter()
            .copied()
            .find(|c| matches!(self.nodes[*c].state, TaskState::Failed | TaskState::Canceled));
        let state = if self.canceling {
            TaskState::Canceled
        } else if failed.is_some() {
            TaskState::Failed
        } else {
            TaskState::Succeeded
        };
        let error = failed.map(|c| {
            let n = &self.nodes[c];
            match &n.error {
                Some(e) if matches!(n.kind, TaskKind::Container | TaskKind::Importer) => {
                    format!("task `{}` failed: {e}", n.path)
                }
                Some(e) => e.clone(),
                None => format!("task `{}` failed", n.path),
            }
        });
        let outputs = if self.nodes[id].kind == TaskKind::Loop { self.loop_outputs(id) } else { self.dag_outputs(id) };
        if self.nodes[id].parent.is_some() {
            let task_id = self.nodes[id].task_id.clone().unwrap_or_default();
            let refs = outputs.artifact_refs();
            let out_json = serde_json::to_value(&outputs).map_err(|e| EngineError::Internal(e.to_string()))?;
            self.inner
                .store
                .finish_task(&TaskFinish {
                    run_id: &self.run.id,
                    task_id: &task_id,
                    state,
                    error: error.as_deref(),
                    cached: false,
                    outputs: Some(&out_json),
                    new_artifacts: &[],
                    output_artifact_refs: &refs,
                    input_artifact_refs: &[],
                    cache_key_to_record: None,
                })
                .await?;
        }
        let n = &mut self.nodes[id];
        n.outputs = outputs;
        n.state = state;
        n.error = error;
        n.phase = Phase::Done;
        Ok(())
    }

    fn dag_outputs(&self, id: NodeId) -> Outputs {
        let node = &self.nodes[id];
        let mut out = Outputs::default();
        let Some(dag) = &self.comp(&node.component).dag else { return out };
        let child = |key: &str| node.child_by_key.get(key).map(|c| &self.nodes[*c]);
        for (name, spec) in &dag.outputs.parameters {
            let selectors = spec
                .value_from_parameter
                .iter()
                .chain(spec.value_from_oneof.iter().flat_map(|o| &o.parameter_selectors));
            for s in selectors {
                if let Some(v) =
                    child(&s.producer_subtask).and_then(|c| c.outputs.parameters.get(&s.output_parameter_key))
                {
                    out.parameters.insert(name.clone(), v.clone());
                    break;
                }
            }
        }
        for (name, spec) in &dag.outputs.artifacts {
            for s in &spec.artifact_selectors {
                if let Some(l) =
                    child(&s.producer_subtask).and_then(|c| c.outputs.artifacts.get(&s.output_artifact_key))
                {
                    out.artifacts.insert(name.clone(), l.clone());
                    break;
                }
            }
        }
        out
    }

    /// A loop's outputs: each iteration's DAG outputs collected into lists, in iteration order.
    fn loop_outputs(&self, id: NodeId) -> Outputs {
        let node = &self.nodes[id];
        let mut out = Outputs::default();
        let Some(dag) = &self.comp(&node.component).dag else { return out };
        for name in dag.outputs.parameters.keys() {
            let values: Vec<Value> =
                node.children.iter().filter_map(|c| self.nodes[*c].outputs.parameters.get(name).cloned()).collect();
            out.parameters.insert(name.clone(), Value::Array(values));
        }
        for name in dag.outputs.artifacts.keys() {
            let all: Vec<ArtifactRef> = node
                .children
                .iter()
                .flat_map(|c| self.nodes[*c].outputs.artifacts.get(name).cloned().unwrap_or_default())
                .collect();
            out.artifacts.insert(name.clone(), all);
        }
        out
    }

    async fn start_container(&mut self, id: NodeId) -> Result<()> {
        let spec = self.nodes[id].spec.clone().ok_or_else(|| EngineError::Internal("task without spec".into()))?;
        let comp = self.comp(&self.nodes[id].component).clone();
        let label = comp.executor_label.clone().unwrap_or_default();
        let (Some(container), Some(parsed)) = (
            self.pipeline.executor(&label).and_then(|e| e.container.clone()),
            self.pipeline.executors.get(&label).cloned(),
        ) else {
            return Err(EngineError::Internal(format!("executor `{label}` missing")));
        };
        let path = self.nodes[id].path.clone();
        let display = self.nodes[id].display.clone();

        // Resume: a task that finished in an earlier execution of this run keeps its result.
        if let Some(prev) = self.previous.get(&path) {
            if prev.state.is_success() {
                if let Some(outputs) =
                    prev.outputs.as_ref().and_then(|o| serde_json::from_value::<Outputs>(o.clone()).ok())
                {
                    let state = prev.state;
                    let n = &mut self.nodes[id];
                    n.task_id = Some(prev.id.clone());
                    n.outputs = outputs;
                    n.state = state;
                    n.phase = Phase::Done;
                    self.emit(Progress::Finished { path, display_name: display, state, duration_ms: 0, error: None });
                    return Ok(());
                }
            }
        }

        let options = spec.caching_options.clone().unwrap_or_default();
        let caching = options.enable_cache && !self.options.no_cache;
        let key = cache::cache_key(&container, &comp, &self.nodes[id].inputs, options.cache_key.as_deref());
        self.nodes[id].cache_key = Some(key.clone());
        self.nodes[id].caching = caching;
        let inputs_json = serde_json::to_value(&self.nodes[id].inputs).ok();
        let input_refs = self.input_refs(id);

        if caching {
            if let Some((_, cached)) = self.inner.store.lookup_cache(&key).await? {
                if let Ok(outputs) = serde_json::from_value::<Outputs>(cached.clone()) {
                    self.nodes[id].attempt = 0;
                    let task_id = self
                        .inner
                        .store
                        .start_task(&self.task_start(id, TaskState::Running, inputs_json.as_ref()))
                        .await?;
                    let refs = outputs.artifact_refs();
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
                    let n = &mut self.nodes[id];
                    n.task_id = Some(task_id);
                    n.outputs = outputs;
                    n.state = TaskState::Cached;
                    n.phase = Phase::Done;
                    self.emit(Progress::Finished {
                        path,
                        display_name: display,
                        state: TaskState::Cached,
                        duration_ms: 0,
                        error: None,
                    });
                    return Ok(());
                }
            }
        }

        let attempt = self.previous.get(&path).map(|p| p.attempts).unwrap_or(0) + 1;
        self.nodes[id].attempt = attempt;
        let task_id =
            self.inner.store.start_task(&self.task_start(id, TaskState::Running, inputs_json.as_ref())).await?;
        self.nodes[id].task_id = Some(task_id.clone());
        let plan = if parsed.is_lightweight_python {
            let base = self.python_env().await;
            // Without kfp in the base Python, the compiled prelude (pip install) has to stay, and runs cold.
            let provided = base.has_kfp;
            Some(Arc::new(PythonPlan {
                requirements: if provided { parsed.requirements.clone() } else { Default::default() },
                warm: provided && self.inner.config.python_mode == PythonMode::Warm,
                base,
            }))
        } else {
            None
        };
        let launch = LaunchOptions { skip_pip_prelude: plan.as_ref().is_some_and(|p| p.base.has_kfp) };
        self.nodes[id].python = plan;
        let task_root = self.run_root.join(&path);
        let prepared = task::prepare(
            &comp,
            &container,
            &parsed,
            &self.nodes[id].inputs,
            &task_root,
            &self.job,
            &self.nodes[id].key,
            &task_id,
            &launch,
        );
        match prepared {
            Ok(p) => {
                self.nodes[id].phase = Phase::Running;
                self.nodes[id].prepared = Some(Arc::new(p));
                self.nodes[id].started = Some(Instant::now());
                self.spawn_attempt(id, Duration::ZERO);
                self.emit(Progress::Started { path, display_name: display, attempt });
            }
            Err(e) => {
                self.fail_task(id, format!("resolving the command line: {e}"), Duration::ZERO).await?;
            }
        }
        Ok(())
    }

    async fn python_env(&self) -> PythonEnv {
        self.inner.python.get_or_init(|| init_python(&self.inner)).await.clone()
    }

    fn input_refs(&self, id: NodeId) -> Vec<(String, String)> {
        self.nodes[id].inputs.artifact_refs()
    }

    fn spawn_attempt(&mut self, id: NodeId, delay: Duration) {
        let Some(prepared) = self.nodes[id].prepared.clone() else { return };
        let comp = self.comp(&self.nodes[id].component).clone();
        let log_dir = self.logs_dir.join(&self.nodes[id].path);
        let mut argv = prepared.argv.clone();
        // Built-in components call `secondrow component …`: run this very binary, wherever it is.
        if argv.first().is_some_and(|a| a == "secondrow") {
            if let Ok(me) = std::env::current_exe() {
                argv[0] = me.to_string_lossy().into_owned();
            }
        }
        let job = ProcessJob {
            argv,
            env: prepared.env.clone(),
            cwd: prepared.task_root.clone(),
            stdout_log: log_dir.join("stdout.log"),
            stderr_log: log_dir.join("stderr.log"),
            tail: self.log_tx.clone().map(|tx| (self.nodes[id].path.clone(), tx)),
        };
        let attempt = self.nodes[id].attempt;
        let slots = self.slots.clone();
        let mut cancel = self.kill_tx.subscribe();
        let plan = self.nodes[id].python.clone();
        let inner = self.inner.clone();
        let mut job = job;
        self.running.spawn(async move {
            if !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = cancel.wait_for(|c| *c) => return (id, AttemptResult::Canceled),
                }
            }
            let mut python_exe = None;
            if let Some(plan) = &plan {
                let (exe, prefix) = if plan.requirements.is_empty() {
                    (plan.base.python.clone(), plan.base.path_prefix.clone())
                } else {
                    let ensured = tokio::select! {
                        r = inner.envs.ensure(&plan.base.python, &plan.requirements) => r,
                        _ = cancel.wait_for(|c| *c) => return (id, AttemptResult::Canceled),
                    };
                    match ensured {
                        Ok(py) => {
                            let dir = py.parent().map(std::path::Path::to_path_buf);
                            (py, dir)
                        }
                        Err(e) => {
                            let msg = format!("creating the environment for packages_to_install: {e}");
                            return (id, AttemptResult::Finished(Err(msg), Duration::ZERO));
                        }
                    }
                };
                if let Some(p) = &prefix {
                    task::with_path_prefix(&mut job.env, p);
                }
                python_exe = Some(exe);
            }
            let Ok(_permit) = slots.acquire_owned().await else { return (id, AttemptResult::Canceled) };
            if *cancel.borrow() {
                return (id, AttemptResult::Canceled);
            }
            let setup = std::fs::create_dir_all(&log_dir).and_then(|_| task::lay_out(&prepared));
            if let Err(e) = setup {
                return (id, AttemptResult::Finished(Err(format!("preparing task folders: {e}")), Duration::ZERO));
            }
            if attempt > 1 {
                let note = format!("--- attempt {attempt} ---\n");
                for log in [&job.stdout_log, &job.stderr_log] {
                    use std::io::Write as _;
                    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
                        let _ = f.write_all(note.as_bytes());
                    }
                }
            }
            let stderr_log = job.stderr_log.clone();
            let warm_program = match (&plan, &python_exe) {
                (Some(plan), Some(exe)) if plan.warm => lightweight::split_program(&job.argv)
                    .map(|(code, args)| (exe.clone(), code.to_owned(), args.to_vec())),
                _ => None,
            };
            let outcome = match warm_program {
                Some((exe, code, args)) => {
                    let mut env: Vec<(String, String)> =
                        std::env::vars().filter(|(k, _)| !job.env.iter().any(|(e, _)| e == k)).collect();
                    env.extend(job.env.iter().cloned());
                    let warm_job = WarmJob {
                        code,
                        args,
                        env,
                        cwd: job.cwd.clone(),
                        program_dir: log_dir.join("program"),
                        stdout_log: job.stdout_log.clone(),
                        stderr_log: job.stderr_log.clone(),
                        tail: job.tail.clone(),
                    };
                    inner.warm.run(&exe, warm_job, cancel).await.map_err(executor::SpawnError::Worker)
                }
                None => executor::run_process(job, cancel).await,
            };
            let result = match outcome {
                Ok((Exit::Canceled, _)) => return (id, AttemptResult::Canceled),
                Ok((Exit::Code(0), d)) => AttemptResult::Finished(task::collect_outputs(&comp, &prepared), d),
                Ok((Exit::Code(c), d)) => {
                    AttemptResult::Finished(Err(with_stderr_tail(format!("exited with status {c}"), &stderr_log)), d)
                }
                Ok((Exit::Signal(s), d)) => {
                    AttemptResult::Finished(Err(with_stderr_tail(format!("killed by signal {s}"), &stderr_log)), d)
                }
                Err(e) => AttemptResult::Finished(Err(e.to_string()), Duration::ZERO),
            };
            (id, result)
        });
    }

    async fn on_attempt_done(&mut self, id: NodeId, result: AttemptResult) -> Result<()> {
        match result {
            AttemptResult::Canceled => {
                self.finish_container(id, TaskState::Canceled, Some("canceled".into()), None, Duration::ZERO).await
            }
            AttemptResult::Finished(Ok(outputs), d) => {
                self.finish_container(id, TaskState::Succeeded, None, Some(outputs), d).await
            }
            AttemptResult::Finished(Err(e), d) => {
                let policy = self.nodes[id].spec.as_ref().and_then(|s| s.retry_policy.clone());
                let attempt = self.nodes[id].attempt;
                let first_attempt = self.previous.get(&self.nodes[id].path).map(|p| p.attempts).unwrap_or(0) + 1;
                let tries_this_execution = attempt - first_attempt + 1;
                if !self.canceling && tries_this_execution < retry::max_attempts(policy.as_ref()) {
                    let delay = policy.as_ref().map(|p| retry::backoff(p, tries_this_execution)).unwrap_or_default();
                    let next = attempt + 1;
                    self.nodes[id].attempt = next;
                    if let Some(task_id) = &self.nodes[id].task_id {
                        self.inner
                            .store
                            .set_task_attempt(task_id, next, secondrow_store::now_ms() + delay.as_millis() as i64)
                            .await?;
                    }
                    self.emit(Progress::Retrying {
                        path: self.nodes[id].path.clone(),
                        attempt: next,
                        delay_ms: delay.as_millis() as u64,
                        error: e,
                    });
                    self.spawn_attempt(id, delay);
                    Ok(())
                } else {
                    self.fail_task(id, e, d).await
                }
            }
        }
    }

    async fn fail_task(&mut self, id: NodeId, error: String, d: Duration) -> Result<()> {
        self.finish_container(id, TaskState::Failed, Some(error), None, d).await
    }

    async fn finish_container(
        &mut self,
        id: NodeId,
        state: TaskState,
        error: Option<String>,
        outputs: Option<Outputs>,
        _d: Duration,
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
        let out_json = if state == TaskState::Succeeded {
            Some(serde_json::to_value(&outputs).map_err(|e| EngineError::Internal(e.to_string()))?)
        } else {
            None
        };
        let input_refs = self.input_refs(id);
        let n = &self.nodes[id];
        let task_id = n.task_id.clone().unwrap_or_default();
        let record_cache = (state == TaskState::Succeeded && n.caching).then(|| n.cache_key.clone()).flatten();
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
        let n = &mut self.nodes[id];
        let duration_ms = n.started.map(|s| s.elapsed().as_millis() as u64).unwrap_or(0);
        n.outputs = outputs;
        n.state = state;
        n.error = error.clone();
        n.phase = Phase::Done;
        n.prepared = None;
        let (path, display) = (n.path.clone(), n.display.clone());
        self.emit(Progress::Finished { path, display_name: display, state, duration_ms, error });
        Ok(())
    }

    async fn run_importer(&mut self, id: NodeId) -> Result<()> {
        let comp = self.comp(&self.nodes[id].component).clone();
        let label = comp.executor_label.clone().unwrap_or_default();
        let Some(importer) = self.pipeline.executor(&label).and_then(|e| e.importer.clone()) else {
            return Err(EngineError::Internal(format!("importer `{label}` missing")));
        };
        let uri = match (&importer.artifact_uri.constant, &importer.artifact_uri.runtime_parameter) {
            (Some(Value::String(s)), _) => Ok(s.clone()),
            (_, Some(p)) => match self.nodes[id].inputs.parameters.get(p) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(format!("importer URI parameter `{p}` is not a string: {other}")),
                None => Err(format!("importer URI parameter `{p}` has no value")),
            },
            (Some(other), None) => Err(format!("importer URI is not a string: {other}")),
            (None, None) => Err("importer has no URI".to_owned()),
        };
        let uri = match uri {
            Ok(u) => u,
            Err(e) => return self.finish_unrun(id, TaskState::Failed, false, e).await,
        };
        let output_name = comp.output_definitions.artifacts.keys().next().cloned().unwrap_or_else(|| "artifact".into());
        self.nodes[id].attempt = 1;
        let inputs_json = serde_json::to_value(&self.nodes[id].inputs).ok();
        let task_id =
            self.inner.store.start_task(&self.task_start(id, TaskState::Running, inputs_json.as_ref())).await?;
        self.nodes[id].task_id = Some(task_id);
        let artifact = ArtifactRef {
            id: String::new(),
            name: output_name.clone(),
            uri,
            schema: importer.type_schema.clone(),
            metadata: importer.metadata.clone().unwrap_or_else(|| json!({})),
        };
        let mut outputs = Outputs::default();
        outputs.artifacts.insert(output_name, vec![artifact]);
        self.finish_container(id, TaskState::Succeeded, None, Some(outputs), Duration::ZERO).await
    }
}

/// Finds the Python for lightweight components. In warm mode, starting the worker (which imports kfp)
/// is the probe, so no second interpreter is paid for.
async fn init_python(inner: &Inner) -> PythonEnv {
    let cfg = &inner.config;
    if cfg.python_mode == PythonMode::Warm {
        let mut env = PythonEnv::locate(cfg.python.as_deref(), &cfg.work_dir);
        let mut vars: Vec<(String, String)> = std::env::vars().collect();
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
fn with_stderr_tail(msg: String, stderr_log: &std::path::Path) -> String {
    let Ok(text) = std::fs::read_to_string(stderr_log) else { return msg };
    match text.lines().rev().find(|l| !l.trim().is_empty() && !l.starts_with("--- attempt")) {
        Some(last) => {
            let last: String = last.chars().take(300).collect();
            format!("{msg}: {last}")
        }
        None => msg,
    }
}
