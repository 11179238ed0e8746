//! The run as a tree of nodes: the root DAG, nested DAGs, loops and their iterations, and leaf tasks.
//!
//! A node is created when its parent starts (a DAG's children in the order of its tasks, so a task's
//! upstream indices in the resolved graph are indices into its parent's children) and moves
//! Pending → Running → Done exactly once.

use std::collections::VecDeque;
use std::ops::{Index, IndexMut};
use std::sync::Arc;
use std::time::Instant;

use secondrow_spec::graph::{Dag, PlanKind, TaskPlan};
use secondrow_store::{TaskKind, TaskState};

use super::groups::LoopItem;
use crate::python::PythonEnv;
use crate::task::{IoValues, PreparedContainer};
use secondrow_spec::lightweight::PipRequirements;

pub(super) type NodeId = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Pending,
    Running,
    Done,
}

/// What a node executes.
#[derive(Clone)]
pub(super) enum Work {
    /// The pipeline's root DAG.
    Root(Arc<Dag>),
    /// A task of its parent's DAG.
    Task(Arc<TaskPlan>),
    /// One iteration of a loop: the loop's body with the item bound.
    Iteration(Arc<Dag>),
}

impl Work {
    /// The kind the store records.
    pub(super) fn kind(&self) -> TaskKind {
        match self {
            Work::Root(_) => TaskKind::Dag,
            Work::Iteration(_) => TaskKind::Iteration,
            Work::Task(plan) => match plan.kind {
                PlanKind::Dag(_) => TaskKind::Dag,
                PlanKind::Loop(_) => TaskKind::Loop,
                PlanKind::Container(_) => TaskKind::Container,
                PlanKind::Importer(_) => TaskKind::Importer,
            },
        }
    }

    /// The DAG whose tasks become this node's children (every group except loops).
    pub(super) fn body(&self) -> Option<&Arc<Dag>> {
        match self {
            Work::Root(d) | Work::Iteration(d) => Some(d),
            Work::Task(plan) => match &plan.kind {
                PlanKind::Dag(d) => Some(d),
                _ => None,
            },
        }
    }

    pub(super) fn plan(&self) -> Option<&Arc<TaskPlan>> {
        match self {
            Work::Task(plan) => Some(plan),
            _ => None,
        }
    }

    /// Groups complete when their children are done.
    pub(super) fn is_group(&self) -> bool {
        matches!(self.kind(), TaskKind::Dag | TaskKind::Loop | TaskKind::Iteration)
    }

    /// Containers and importers: what the progress display counts.
    pub(super) fn is_leaf(&self) -> bool {
        matches!(self.kind(), TaskKind::Container | TaskKind::Importer)
    }
}

/// How a lightweight component's Python is provided.
pub(super) struct PythonPlan {
    pub base: PythonEnv,
    /// `packages_to_install`, provided by a cached environment (empty: the base suffices).
    pub requirements: PipRequirements,
    pub warm: bool,
}

/// A leaf task's execution state (containers; importers use `attempt`).
#[derive(Default)]
pub(super) struct Execution {
    pub attempt: i64,
    pub prepared: Option<Arc<PreparedContainer>>,
    pub cache_key: Option<String>,
    pub caching: bool,
    /// Lightweight Python components: which Python, environment and mode run them.
    pub python: Option<Arc<PythonPlan>>,
    /// kfp-kubernetes settings prepared for the task (env, mounts, timeout); dropped when it finishes,
    /// which removes its secret files.
    pub platform: Option<Arc<crate::platform::TaskPlatform>>,
    /// The same settings with names resolved, for a Pod (the Kubernetes executor).
    pub pod_platform: Option<Arc<crate::kubernetes::PodPlatform>>,
}

pub(super) struct Node {
    pub parent: Option<NodeId>,
    /// Task keys from the root, iterations as their index: `for-loop-2/3/square`.
    pub path: String,
    pub key: String,
    pub display: String,
    pub work: Work,
    pub phase: Phase,
    pub state: TaskState,
    /// Skipped because its own condition was false (not because upstream failed).
    pub by_condition: bool,
    pub error: Option<String>,
    /// The store's id, once recorded.
    pub task_id: Option<String>,
    pub children: Vec<NodeId>,
    pub inputs: IoValues,
    pub outputs: IoValues,
    pub started: Option<Instant>,
    pub exec: Execution,
    /// A running loop's items whose iterations are not created yet: iterations are made as the loop's
    /// `parallelism` lets them start, so a long loop holds one small item per waiting iteration, not a node.
    pub pending_iterations: VecDeque<LoopItem>,
}

impl Node {
    /// Records the node's end state (in memory; the caller has written the store).
    pub(super) fn finish(&mut self, state: TaskState, error: Option<String>, outputs: IoValues) {
        self.phase = Phase::Done;
        self.state = state;
        self.error = error;
        self.outputs = outputs;
        self.exec.prepared = None;
        self.exec.platform = None;
    }
}

/// The nodes of one run.
#[derive(Default)]
pub(super) struct Tree {
    nodes: Vec<Node>,
}

/// Nodes held by every run tree of this process ([`crate::live_nodes`]).
pub(super) static LIVE_NODES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for Tree {
    fn drop(&mut self) {
        LIVE_NODES.fetch_sub(self.nodes.len(), std::sync::atomic::Ordering::Relaxed);
    }
}

impl Index<NodeId> for Tree {
    type Output = Node;
    fn index(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }
}

impl IndexMut<NodeId> for Tree {
    fn index_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id]
    }
}

impl Tree {
    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Node> {
        self.nodes.iter_mut()
    }

    /// Adds a Pending node under `parent`.
    pub(super) fn add(&mut self, parent: Option<NodeId>, key: String, display: String, work: Work) -> NodeId {
        let id = self.nodes.len();
        let path = match parent {
            Some(p) if !self.nodes[p].path.is_empty() => format!("{}/{key}", self.nodes[p].path),
            _ => key.clone(),
        };
        if let Some(p) = parent {
            self.nodes[p].children.push(id);
        }
        self.nodes.push(Node {
            parent,
            path,
            key,
            display,
            work,
            phase: Phase::Pending,
            state: TaskState::Pending,
            by_condition: false,
            error: None,
            task_id: None,
            children: Vec::new(),
            inputs: IoValues::default(),
            outputs: IoValues::default(),
            started: None,
            exec: Execution::default(),
            pending_iterations: VecDeque::new(),
        });
        LIVE_NODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        id
    }

    /// The sibling of `id` at position `index` of their DAG's tasks.
    pub(super) fn sibling_at(&self, id: NodeId, index: usize) -> Option<NodeId> {
        self.nodes[id].parent.and_then(|p| self.nodes[p].children.get(index).copied())
    }

    /// The sibling of `id` whose task key is `key`.
    pub(super) fn sibling(&self, id: NodeId, key: &str) -> Result<NodeId, String> {
        let parent = self.nodes[id].parent.ok_or("the root has no siblings")?;
        let index = self.nodes[parent].work.body().and_then(|d| d.index_of(key));
        index.and_then(|i| self.sibling_at(id, i)).ok_or_else(|| format!("unknown task `{key}`"))
    }

    /// Upstream that did not succeed blocks dependents (unless they accept completed upstream).
    pub(super) fn blocks(&self, id: NodeId) -> bool {
        let n = &self.nodes[id];
        matches!(n.state, TaskState::Failed | TaskState::Canceled) || (n.state == TaskState::Skipped && !n.by_condition)
    }

    pub(super) fn all_children_done(&self, id: NodeId) -> bool {
        self.nodes[id].children.iter().all(|c| self.nodes[*c].phase == Phase::Done)
    }

    pub(super) fn running_children(&self, id: NodeId) -> usize {
        self.nodes[id].children.iter().filter(|c| self.nodes[**c].phase == Phase::Running).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secondrow_spec::Pipeline;

    fn tree() -> (Tree, NodeId) {
        let pipeline = Pipeline::from_yaml(include_str!("../../tests/specs/diamond.yaml")).expect("valid");
        let root_dag = pipeline.graph.root.clone();
        let mut tree = Tree::default();
        let root = tree.add(None, String::new(), "diamond".into(), Work::Root(root_dag.clone()));
        for plan in &root_dag.tasks {
            tree.add(Some(root), plan.key.clone(), plan.display.clone(), Work::Task(plan.clone()));
        }
        (tree, root)
    }

    #[test]
    fn children_follow_the_dag_task_order_so_upstream_indices_find_siblings() {
        let (mut tree, root) = tree();
        assert_eq!(tree.len(), 5);
        let d = tree[root].children[3];
        assert_eq!((tree[d].path.as_str(), tree[d].work.kind()), ("d", TaskKind::Container));
        let upstream: Vec<&str> = tree[d]
            .work
            .plan()
            .map(|p| p.upstream.iter().filter_map(|i| tree.sibling_at(d, *i)).map(|s| tree[s].key.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(upstream, ["b", "c"]);
        assert_eq!(tree.sibling(d, "a").map(|s| tree[s].key.clone()), Ok("a".to_owned()));
        assert!(tree.sibling(d, "nope").is_err());
        assert!(tree.sibling(root, "a").is_err());

        let iteration = tree.add(Some(d), "0".into(), "d-0".into(), tree[root].work.clone());
        assert_eq!(tree[iteration].path, "d/0");

        let (b, c) = (tree[root].children[1], tree[root].children[2]);
        tree[b].finish(TaskState::Failed, Some("x".into()), IoValues::default());
        tree[c].by_condition = true;
        tree[c].finish(TaskState::Skipped, None, IoValues::default());
        assert!(tree.blocks(b), "a failed upstream blocks");
        assert!(!tree.blocks(c), "a task skipped by its own condition does not block");
        assert!(!tree.all_children_done(root));
        assert_eq!(tree.running_children(root), 0);
    }
}
