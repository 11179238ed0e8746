//! Groups: DAGs (the root, nested pipelines, condition branches, exit-handler bodies), loops and their
//! iterations. Starting a group creates its children; a group completes when all its children are done,
//! failed if one of them failed, with outputs selected (DAGs) or collected into lists (loops).

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use secondrow_spec::graph::{Dag, LoopItems, LoopPlan};
use secondrow_spec::value;
use secondrow_store::{TaskFinish, TaskKind, TaskState};

use super::nodes::{NodeId, Phase, Work};
use super::RunDriver;
use crate::task::{ArtifactRef, IoValues};
use crate::{Progress, Result};

impl RunDriver {
    /// Starts a DAG-like node: records it (the root is the run itself) and creates its children.
    pub(super) async fn start_group(&mut self, id: NodeId) -> Result<()> {
        if self.tree[id].parent.is_some() {
            let task_id = self.record_start(id).await?;
            self.tree[id].task_id = Some(task_id);
        }
        self.tree[id].phase = Phase::Running;
        self.tree[id].started = Some(Instant::now());
        let Some(dag) = self.tree[id].work.body().cloned() else { return Ok(()) };
        self.add_children(id, &dag);
        Ok(())
    }

    fn add_children(&mut self, id: NodeId, dag: &Arc<Dag>) {
        let mut planned = 0;
        for plan in &dag.tasks {
            let work = Work::Task(plan.clone());
            if work.is_leaf() {
                planned += 1;
            }
            self.tree.add(Some(id), plan.key.clone(), plan.display.clone(), work);
        }
        if planned > 0 {
            self.emit(Progress::Planned { count: planned });
        }
    }

    /// Starts a loop: resolves its items and creates one iteration node per item (started by `schedule`,
    /// at most `parallelismLimit` at once). An iteration's inputs are the loop's, plus its item as the
    /// parameter or the one-artifact input `itemInput`.
    pub(super) async fn start_loop(&mut self, id: NodeId, plan: &LoopPlan) -> Result<()> {
        let items = match self.loop_items(id, plan) {
            Ok(items) => items,
            Err(e) => return self.finish_unrun(id, TaskState::Failed, false, e).await,
        };
        let limit = self.inner.config.max_loop_items;
        if items.len() > limit {
            let e = format!(
                "the loop has {} items; at most {limit} are allowed (--max-loop-items, SECONDROW_MAX_LOOP_ITEMS)",
                items.len()
            );
            return self.finish_unrun(id, TaskState::Failed, false, e).await;
        }
        let task_id = self.record_start(id).await?;
        {
            let n = &mut self.tree[id];
            n.task_id = Some(task_id);
            n.phase = Phase::Running;
            n.started = Some(Instant::now());
        }
        self.tree[id].pending_iterations = items.into();
        self.expand_loop(id, plan);
        Ok(())
    }

    /// Creates the running loop's next iterations, as many as its `parallelism` lets start now (all of them
    /// without a limit); true when it created any. Iteration `i` is the loop's `i`-th child, whatever the order
    /// they finish in, so collected outputs keep the items' order.
    pub(super) fn expand_loop(&mut self, id: NodeId, plan: &LoopPlan) -> bool {
        let mut open = self.tree[id].children.iter().filter(|c| self.tree[**c].phase != Phase::Done).count();
        let display = self.tree[id].display.clone();
        let mut created = false;
        while plan.parallelism_limit.is_none_or(|l| open < l) {
            let Some(item) = self.tree[id].pending_iterations.pop_front() else { break };
            let mut inputs = self.tree[id].inputs.clone();
            match item {
                LoopItem::Parameter(v) => {
                    inputs.parameters.insert(plan.item_input.clone(), v);
                }
                LoopItem::Artifact(a) => {
                    inputs.artifacts.insert(plan.item_input.clone(), vec![a]);
                }
            }
            let i = self.tree[id].children.len();
            let child =
                self.tree.add(Some(id), i.to_string(), format!("{display}-{i}"), Work::Iteration(plan.body.clone()));
            self.tree[child].inputs = inputs;
            open += 1;
            created = true;
        }
        created
    }

    /// The loop's items: parameter values, each coerced to the item input's declared type, or the
    /// artifacts of the iterated input artifact, in order.
    fn loop_items(&self, id: NodeId, plan: &LoopPlan) -> std::result::Result<Vec<LoopItem>, String> {
        let (items, item_type) = match &plan.items {
            LoopItems::Parameters { items, item_type } => (items, *item_type),
            LoopItems::Artifacts { input } => {
                return match self.tree[id].inputs.artifacts.get(input) {
                    Some(list) => Ok(list.iter().cloned().map(LoopItem::Artifact).collect()),
                    None => Err(format!("loop items input artifact `{input}` has no value")),
                };
            }
        };
        let items = match (&items.raw, &items.input_parameter) {
            (Some(raw), _) => serde_json::from_str::<Value>(raw).map_err(|e| e.to_string())?,
            (None, Some(p)) => match self.tree[id].inputs.parameters.get(p) {
                Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| format!("items `{p}`: {e}"))?,
                Some(v) => v.clone(),
                None => return Err(format!("loop items input `{p}` has no value")),
            },
            (None, None) => return Err("loop has no items".to_owned()),
        };
        let items = match value::normalize(items) {
            Value::Array(items) => items,
            other => return Err(format!("loop items are not a list: {other}")),
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item_type {
                Some(t) => value::coerce(&item, t).map(LoopItem::Parameter).map_err(|e| format!("loop item {i}: {e}")),
                None => Ok(LoopItem::Parameter(item)),
            })
            .collect()
    }

    /// All children done: compute the group's state and outputs and record them.
    pub(super) async fn complete_group(&mut self, id: NodeId) -> Result<()> {
        let failed = self.tree[id]
            .children
            .iter()
            .copied()
            .find(|c| matches!(self.tree[*c].state, TaskState::Failed | TaskState::Canceled));
        let state = if self.canceling {
            TaskState::Canceled
        } else if failed.is_some() {
            TaskState::Failed
        } else {
            TaskState::Succeeded
        };
        let error = failed.map(|c| {
            let n = &self.tree[c];
            match &n.error {
                Some(e) if n.work.is_leaf() => format!("task `{}` failed: {e}", n.path),
                Some(e) => e.clone(),
                None => format!("task `{}` failed", n.path),
            }
        });
        let outputs = self.group_outputs(id);
        if self.tree[id].parent.is_some() {
            let task_id = self.tree[id].task_id.clone().unwrap_or_default();
            let refs = outputs.artifact_refs();
            let out_json = super::to_json(&outputs)?;
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
        self.tree[id].finish(state, error, outputs);
        Ok(())
    }

    fn group_outputs(&self, id: NodeId) -> IoValues {
        let node = &self.tree[id];
        if node.work.kind() == TaskKind::Loop {
            return self.loop_outputs(id);
        }
        match node.work.body() {
            Some(dag) => self.dag_outputs(id, dag),
            None => IoValues::default(),
        }
    }

    /// A DAG's outputs: for each declared output, the first selector whose producer made it.
    fn dag_outputs(&self, id: NodeId, dag: &Dag) -> IoValues {
        let mut out = IoValues::default();
        let Some(spec) = &dag.component.dag else { return out };
        let children = &self.tree[id].children;
        let child = |key: &str| dag.index_of(key).and_then(|i| children.get(i)).map(|c| &self.tree[*c]);
        for (name, output) in &spec.outputs.parameters {
            let selectors = output
                .value_from_parameter
                .iter()
                .chain(output.value_from_oneof.iter().flat_map(|o| &o.parameter_selectors));
            for s in selectors {
                if let Some(v) =
                    child(&s.producer_subtask).and_then(|c| c.outputs.parameters.get(&s.output_parameter_key))
                {
                    out.parameters.insert(name.clone(), v.clone());
                    break;
                }
            }
        }
        for (name, output) in &spec.outputs.artifacts {
            for s in &output.artifact_selectors {
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
    fn loop_outputs(&self, id: NodeId) -> IoValues {
        let node = &self.tree[id];
        let mut out = IoValues::default();
        let Some(spec) = node.work.plan().and_then(|p| p.component.dag.as_ref()) else { return out };
        for name in spec.outputs.parameters.keys() {
            let values: Vec<Value> =
                node.children.iter().filter_map(|c| self.tree[*c].outputs.parameters.get(name).cloned()).collect();
            out.parameters.insert(name.clone(), Value::Array(values));
        }
        for name in spec.outputs.artifacts.keys() {
            let all: Vec<ArtifactRef> = node
                .children
                .iter()
                .flat_map(|c| self.tree[*c].outputs.artifacts.get(name).cloned().unwrap_or_default())
                .collect();
            out.artifacts.insert(name.clone(), all);
        }
        out
    }
}

/// One loop iteration's item.
pub(super) enum LoopItem {
    Parameter(Value),
    Artifact(ArtifactRef),
}
