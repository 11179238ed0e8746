//! The run driver: the single owner of one run's state while it executes.
//!
//! The run is a tree of nodes ([`nodes`]) over the pipeline's resolved graph — the root DAG, nested DAGs,
//! loops and their iterations, and leaf tasks (containers, importers). The driver alternates between two
//! steps until the root is done: [`RunDriver::schedule`] makes every decision possible now (start ready
//! tasks, skip tasks whose upstream failed or whose condition is false, complete groups whose children are
//! all done), then it waits for one event (an attempt ended, or a cancel). Every transition is written to
//! the store before the next decision, so a killed process loses at most the attempts that were running.
//!
//! The concepts live in their own modules: [`inputs`] (input resolution and trigger conditions),
//! [`groups`] (DAGs, loops, iterations and their outputs) and [`attempt`] (container attempts, retries,
//! importers).
//!
//! Resume: tasks the store already holds as SUCCEEDED or CACHED (same run, same path) are adopted with
//! their recorded outputs instead of being executed again.

mod attempt;
mod groups;
mod inputs;
mod nodes;
mod platform;

/// Nodes held by the run trees of this process.
pub(crate) fn live_nodes() -> usize {
    nodes::LIVE_NODES.load(std::sync::atomic::Ordering::Relaxed)
}

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use secondrow_spec::graph::PlanKind;
use secondrow_spec::Pipeline;
use secondrow_store::{RunRecord, RunState, TaskRecord, TaskStart, TaskState};

use crate::process::LogLine;
use crate::task::{IoValues, JobContext};
use crate::{EngineError, Inner, Progress, Result, RunControl, RunOptions};
use attempt::AttemptResult;
use inputs::Trigger;
use nodes::{NodeId, Phase, Tree, Work};

pub(crate) struct RunDriver {
    inner: Arc<Inner>,
    pipeline: Arc<Pipeline>,
    run: RunRecord,
    options: RunOptions,
    progress: Option<mpsc::UnboundedSender<Progress>>,
    log_tx: Option<mpsc::UnboundedSender<LogLine>>,
    /// The caller's cancel.
    cancel: CancellationToken,
    /// Kills every attempt: a child of `cancel`, also cancelled when the driver begins canceling.
    kill: CancellationToken,
    canceling: bool,
    tree: Tree,
    /// Tasks recorded by earlier executions of this run, by path.
    previous: HashMap<String, TaskRecord>,
    running: JoinSet<(NodeId, AttemptResult)>,
    job: JobContext,
    run_root: PathBuf,
    logs_dir: PathBuf,
    slots: Arc<Semaphore>,
}

/// Encodes a value for the store.
fn to_json(value: &impl Serialize) -> Result<Value> {
    serde_json::to_value(value).map_err(EngineError::Encode)
}

impl RunDriver {
    pub(crate) async fn new(
        inner: Arc<Inner>,
        pipeline: Arc<Pipeline>,
        run: RunRecord,
        options: RunOptions,
        control: RunControl,
    ) -> Result<RunDriver> {
        // A crashed engine may have left task processes running: kill them before anything runs again, so
        // the same task never runs twice at once.
        for (task_id, pgid, started) in inner.store.running_task_processes(&run.id).await? {
            if let (Ok(pgid), Ok(started)) = (u32::try_from(pgid), u64::try_from(started)) {
                if crate::process::kill_orphan_group(pgid, started).await {
                    tracing::warn!("run {}: killed the process group {pgid} left running by task {task_id}", run.id);
                }
            }
        }
        let previous = inner.store.list_tasks(&run.id).await?.into_iter().map(|t| (t.path.clone(), t)).collect();
        let run_root = inner.artifacts.root().join(&run.id);
        let logs_dir = inner.config.logs_root.join(&run.id);
        let created = chrono::DateTime::from_timestamp_millis(run.created_at).unwrap_or_default();
        let scheduled = options.scheduled_at.and_then(chrono::DateTime::from_timestamp_millis).unwrap_or(created);
        let job = JobContext {
            job_name: run.display_name.clone(),
            job_resource_name: format!("{}-{}", run.pipeline_name, run.id),
            job_uuid: run.id.clone(),
            pipeline_root: inner
                .artifacts
                .uri_of_local(&run_root)
                .unwrap_or_else(|| run_root.to_string_lossy().into_owned()),
            create_time: created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            schedule_time: scheduled.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
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
        let kill = control.cancel.child_token();
        Ok(RunDriver {
            inner,
            pipeline,
            run,
            options,
            progress: control.progress,
            log_tx,
            cancel: control.cancel,
            kill,
            canceling: false,
            tree: Tree::default(),
            previous,
            running: JoinSet::new(),
            job,
            run_root,
            logs_dir,
            slots,
        })
    }

    pub(crate) async fn drive(mut self) -> Result<()> {
        let run_id = self.run.id.clone();
        self.inner.store.set_run_state(&run_id, RunState::Running, None).await?;
        let root_work = Work::Root(self.pipeline.graph.root.clone());
        let root = self.tree.add(None, String::new(), self.pipeline.name().to_owned(), root_work);
        self.tree[root].inputs = IoValues {
            parameters: self.run.parameters.as_object().cloned().unwrap_or_default(),
            artifacts: Default::default(),
        };
        if self.pipeline.executors.values().any(|e| e.is_lightweight_python) {
            // Warm the Python up while the first tasks are being prepared.
            let inner = self.inner.clone();
            tokio::spawn(async move {
                inner.python.get_or_init(|| attempt::init_python(&inner)).await;
            });
        }
        self.start_group(root).await?;
        let cancel = self.cancel.clone();
        loop {
            if !self.canceling && cancel.is_cancelled() {
                self.begin_cancel();
            }
            self.schedule().await?;
            if self.tree[root].phase == Phase::Done {
                break;
            }
            if self.running.is_empty() {
                if self.canceling {
                    break;
                }
                return Err(EngineError::Stalled);
            }
            tokio::select! {
                _ = cancel.cancelled(), if !self.canceling => {}
                Some(joined) = self.running.join_next() => {
                    let (id, result) = joined.map_err(|e| EngineError::AttemptPanicked(e.to_string()))?;
                    self.on_attempt_done(id, result).await?;
                }
                else => {}
            }
        }
        if self.canceling {
            // Pods this engine did not start (an earlier execution's) go too.
            if let Some(kube) = &self.inner.kube {
                if let Err(e) = kube.delete_run_pods(&run_id).await {
                    tracing::warn!("run {run_id}: {e}");
                }
            }
            for n in self.tree.iter_mut() {
                if n.phase != Phase::Done {
                    n.phase = Phase::Done;
                    n.state = TaskState::Canceled;
                }
            }
            self.inner.store.close_open_tasks(&run_id, TaskState::Canceled, "run canceled").await?;
            self.inner.store.set_run_state(&run_id, RunState::Canceled, Some("run canceled")).await?;
            return Ok(());
        }
        let root_node = &self.tree[root];
        self.inner.store.set_run_outputs(&run_id, &to_json(&root_node.outputs)?).await?;
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
        self.kill.cancel();
    }

    fn emit(&self, p: Progress) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(p);
        }
    }

    /// Makes every decision available now, until nothing changes.
    async fn schedule(&mut self) -> Result<()> {
        loop {
            let mut changed = false;
            // Nodes added during the pass (children of a group just started) are visited in the same pass.
            let mut id = 0;
            while id < self.tree.len() {
                match self.tree[id].phase {
                    Phase::Pending => {
                        let parent_running = self.tree[id].parent.is_some_and(|p| self.tree[p].phase == Phase::Running);
                        if parent_running && !self.canceling {
                            changed |= self.try_start(id).await?;
                        }
                    }
                    Phase::Running => {
                        if !self.tree[id].pending_iterations.is_empty() {
                            if self.canceling {
                                // Iterations not created yet never run.
                                self.tree[id].pending_iterations.clear();
                            } else if let Some(PlanKind::Loop(l)) = self.tree[id].work.plan().map(|p| &p.kind) {
                                let l = l.clone();
                                changed |= self.expand_loop(id, &l);
                            }
                        }
                        if self.tree[id].work.is_group()
                            && self.tree[id].pending_iterations.is_empty()
                            && self.tree.all_children_done(id)
                        {
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

    /// Starts `id` if it can start now (or decides it will not run); true when something changed.
    async fn try_start(&mut self, id: NodeId) -> Result<bool> {
        let Some(parent) = self.tree[id].parent else { return Ok(false) };
        let plan = match self.tree[id].work.clone() {
            Work::Task(plan) => plan,
            Work::Iteration(_) => {
                let limit = self.tree[parent].work.plan().and_then(|p| match &p.kind {
                    PlanKind::Loop(l) => l.parallelism_limit,
                    _ => None,
                });
                if limit.is_some_and(|l| self.tree.running_children(parent) >= l) {
                    return Ok(false);
                }
                self.start_group(id).await?;
                return Ok(true);
            }
            Work::Root(_) => return Ok(false),
        };
        let mut blocked_by = None;
        for &index in &plan.upstream {
            let Some(sib) = self.tree.sibling_at(id, index) else { continue };
            if self.tree[sib].phase != Phase::Done {
                return Ok(false);
            }
            if self.tree.blocks(sib) {
                blocked_by = Some(self.tree[sib].key.clone());
            }
        }
        if let Some(dep) = blocked_by {
            if !plan.accepts_completed {
                let reason = format!("upstream task `{dep}` did not succeed");
                self.finish_unrun(id, TaskState::Skipped, false, reason).await?;
                return Ok(true);
            }
        }
        let inputs = match self.resolve_inputs(id, &plan) {
            Ok(i) => i,
            Err(e) => {
                self.finish_unrun(id, TaskState::Failed, false, e).await?;
                return Ok(true);
            }
        };
        let trigger = Self::trigger(&plan, &inputs);
        self.tree[id].inputs = inputs;
        match trigger {
            Trigger::Run => {}
            Trigger::Skip => {
                self.finish_unrun(id, TaskState::Skipped, true, "condition is false".into()).await?;
                return Ok(true);
            }
            Trigger::Fail(e) => {
                self.finish_unrun(id, TaskState::Failed, false, e).await?;
                return Ok(true);
            }
        }
        match &plan.kind {
            PlanKind::Dag(_) => self.start_group(id).await?,
            PlanKind::Loop(l) => self.start_loop(id, l).await?,
            PlanKind::Container(c) => self.start_container(id, &plan, c).await?,
            PlanKind::Importer(i) => self.run_importer(id, &plan, i).await?,
        }
        Ok(true)
    }

    fn task_start<'a>(&'a self, id: NodeId, state: TaskState, inputs: Option<&'a Value>) -> TaskStart<'a> {
        let n = &self.tree[id];
        TaskStart {
            run_id: &self.run.id,
            parent_id: n.parent.and_then(|p| self.tree[p].task_id.as_deref()),
            path: &n.path,
            task_key: &n.key,
            display_name: &n.display,
            kind: n.work.kind(),
            state,
            attempt: n.exec.attempt,
            cache_key: n.exec.cache_key.as_deref(),
            inputs,
        }
    }

    /// Records a task as RUNNING with its resolved inputs; returns its id.
    async fn record_start(&self, id: NodeId) -> Result<String> {
        let inputs = serde_json::to_value(&self.tree[id].inputs).ok();
        Ok(self.inner.store.start_task(&self.task_start(id, TaskState::Running, inputs.as_ref())).await?)
    }

    /// Records a task that will not run (skipped, or failed before starting).
    async fn finish_unrun(&mut self, id: NodeId, state: TaskState, by_condition: bool, reason: String) -> Result<()> {
        let inputs = serde_json::to_value(&self.tree[id].inputs).ok();
        let task_id =
            self.inner.store.record_unrun_task(&self.task_start(id, state, inputs.as_ref()), Some(&reason)).await?;
        let n = &mut self.tree[id];
        n.task_id = Some(task_id);
        n.by_condition = by_condition;
        n.finish(state, Some(reason.clone()), IoValues::default());
        if n.work.is_leaf() {
            let (path, display) = (n.path.clone(), n.display.clone());
            self.emit(Progress::Finished { path, display_name: display, state, duration_ms: 0, error: Some(reason) });
        }
        Ok(())
    }
}
