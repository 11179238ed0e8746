//! A run's graph as the UI shows it: one DAG of the spec at a time (the root, a nested pipeline, a condition
//! branch, or one iteration of a ParallelFor), each task coloured by its recorded state, a loop drawn as one
//! node with its iteration counts. Laid out by [`crate::layout`] and written as SVG.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use secondrow_spec::ir::{ComponentSpec, PipelineSpec, TaskSpec};
use secondrow_store::{TaskKind, TaskRecord, TaskState};

use crate::layout::{layout, route_path, NODE_H, NODE_W};
use crate::viz::esc;

/// What kind of box a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Task,
    Group,
    Loop,
}

/// Iteration counts of a loop node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoopCounts {
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub running: usize,
    pub other: usize,
}

impl LoopCounts {
    pub fn label(&self) -> String {
        let mut s = format!("×{}: {} ✓", self.total, self.succeeded);
        if self.failed > 0 {
            let _ = write!(s, " {} ✗", self.failed);
        }
        if self.running > 0 {
            let _ = write!(s, " {} running", self.running);
        }
        s
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub key: String,
    pub label: String,
    /// The task path in the run (`parent/key`).
    pub path: String,
    pub kind: NodeKind,
    /// The recorded state; `None` before the task started.
    pub state: Option<TaskState>,
    pub attempts: i64,
    pub counts: Option<LoopCounts>,
}

impl Node {
    pub fn state_name(&self) -> &'static str {
        self.state.map(TaskState::as_str).unwrap_or("NOT_STARTED")
    }
}

/// One DAG of a run, ready to draw.
#[derive(Debug, Clone)]
pub struct DagView {
    pub nodes: Vec<Node>,
    pub edges: Vec<(usize, usize)>,
}

/// What a view path names.
pub enum Target<'a> {
    Dag(&'a ComponentSpec),
    /// A loop: its iterations are listed (their body is `body`).
    Loop(&'a ComponentSpec),
}

fn is_loop(t: &TaskSpec) -> bool {
    t.parameter_iterator.is_some() || t.artifact_iterator.is_some()
}

/// Resolves a view path (`""` the root; `sub`, `for-loop-2`, `for-loop-2/3`, …) against the spec.
pub fn resolve<'a>(spec: &'a PipelineSpec, path: &str) -> Result<Target<'a>, String> {
    let mut comp = &spec.root;
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut i = 0;
    while i < segs.len() {
        let key = segs[i];
        let task = comp
            .dag
            .as_ref()
            .and_then(|d| d.tasks.get(key))
            .ok_or_else(|| format!("the graph has no group `{}`", segs[..=i].join("/")))?;
        let child = spec
            .components
            .get(&task.component_ref.name)
            .ok_or_else(|| format!("unknown component `{}`", task.component_ref.name))?;
        if is_loop(task) {
            match segs.get(i + 1) {
                None => return Ok(Target::Loop(child)),
                Some(n) if n.parse::<usize>().is_ok() => {
                    comp = child;
                    i += 2;
                }
                Some(n) => return Err(format!("`{n}` is not an iteration of loop `{key}`")),
            }
        } else if child.dag.is_some() {
            comp = child;
            i += 1;
        } else {
            return Err(format!("`{}` is a task, not a group", segs[..=i].join("/")));
        }
    }
    Ok(Target::Dag(comp))
}

/// The nodes and edges of `comp`'s DAG at `prefix`, with the states of `tasks`.
pub fn dag_view(spec: &PipelineSpec, comp: &ComponentSpec, prefix: &str, tasks: &[TaskRecord]) -> DagView {
    let by_path: HashMap<&str, &TaskRecord> = tasks.iter().map(|t| (t.path.as_str(), t)).collect();
    let empty = BTreeMap::new();
    let dag_tasks = comp.dag.as_ref().map(|d| &d.tasks).unwrap_or(&empty);
    let index: HashMap<&str, usize> = dag_tasks.keys().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
    let mut nodes = Vec::with_capacity(dag_tasks.len());
    let mut edges = Vec::new();
    for (i, (key, t)) in dag_tasks.iter().enumerate() {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}/{key}") };
        let rec = by_path.get(path.as_str()).copied();
        let kind = if is_loop(t) {
            NodeKind::Loop
        } else if spec.components.get(&t.component_ref.name).is_some_and(|c| c.dag.is_some()) {
            NodeKind::Group
        } else {
            NodeKind::Task
        };
        let counts = (kind == NodeKind::Loop).then(|| loop_counts(rec, tasks));
        let label = if t.task_info.name.is_empty() { key.clone() } else { t.task_info.name.clone() };
        nodes.push(Node {
            key: key.clone(),
            label,
            path,
            kind,
            state: rec.map(|r| if r.cached { TaskState::Cached } else { r.state }),
            attempts: rec.map(|r| r.attempts).unwrap_or(0),
            counts,
        });
        for d in secondrow_spec::upstream_tasks(t) {
            if let Some(&j) = index.get(d) {
                edges.push((j, i));
            }
        }
    }
    edges.sort_unstable();
    edges.dedup();
    DagView { nodes, edges }
}

fn loop_counts(rec: Option<&TaskRecord>, tasks: &[TaskRecord]) -> LoopCounts {
    let mut c = LoopCounts::default();
    let Some(rec) = rec else { return c };
    for t in tasks.iter().filter(|t| t.kind == TaskKind::Iteration && t.parent_id.as_deref() == Some(rec.id.as_str())) {
        c.total += 1;
        match t.state {
            TaskState::Succeeded | TaskState::Cached => c.succeeded += 1,
            TaskState::Failed => c.failed += 1,
            TaskState::Running | TaskState::Pending => c.running += 1,
            TaskState::Skipped | TaskState::Canceled => c.other += 1,
        }
    }
    c
}

/// The iterations of the loop recorded at `loop_path`, in index order.
pub fn iterations<'a>(loop_path: &str, tasks: &'a [TaskRecord]) -> Vec<&'a TaskRecord> {
    let Some(l) = tasks.iter().find(|t| t.path == loop_path) else { return Vec::new() };
    let mut its: Vec<&TaskRecord> = tasks
        .iter()
        .filter(|t| t.kind == TaskKind::Iteration && t.parent_id.as_deref() == Some(l.id.as_str()))
        .collect();
    its.sort_by_key(|t| t.task_key.parse::<u64>().unwrap_or(u64::MAX));
    its
}

/// Percent-encodes a task path for a URL path (segments kept) or a query value.
pub fn url_part(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b'/' if keep_slash => out.push('/'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The view as SVG: with a run, nodes link to their task panel (tasks) or their own view (groups and loops);
/// without one (a pipeline's static graph) they are plain boxes.
pub fn svg(view: &DagView, run_id: &str) -> String {
    svg_with(view, Some(run_id))
}

pub fn svg_with(view: &DagView, run_id: Option<&str>) -> String {
    let l = layout(view.nodes.len(), &view.edges);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="dag" role="img" aria-label="pipeline graph" viewBox="0 0 {w} {h}" width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg"><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>"#,
        w = l.width,
        h = l.height
    );
    for route in &l.routes {
        if route.len() >= 2 {
            let _ = write!(s, r#"<path class="edge" d="{}" marker-end="url(#arrow)"/>"#, route_path(route));
        }
    }
    for (node, &(x, y)) in view.nodes.iter().zip(&l.positions) {
        let (open, close) = match run_id.map(|r| url_part(r, false)) {
            Some(rid) => {
                let href = match node.kind {
                    NodeKind::Task => format!("/runs/{rid}/tasks/{}", url_part(&node.path, true)),
                    NodeKind::Group | NodeKind::Loop => format!("/runs/{rid}?dag={}", url_part(&node.path, false)),
                };
                (format!(r#"<a href="{href}" tabindex="0""#), "</a>")
            }
            None => ("<g".to_owned(), "</g>"),
        };
        let state = node.state_name();
        let sub = match (&node.counts, node.kind) {
            (Some(c), _) => c.label(),
            (None, NodeKind::Group) => format!("group · {}", state.to_lowercase().replace('_', " ")),
            (None, _) if node.attempts > 1 => format!("{} · attempt {}", state.to_lowercase(), node.attempts),
            (None, _) => state.to_lowercase().replace('_', " "),
        };
        let _ = write!(
            s,
            r#"{open} class="node kind-{kind} state-{cls}" data-path="{path}" data-state="{state}"><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="7"/><text x="{tx}" y="{ty1}" class="label">{label}</text><text x="{tx}" y="{ty2}" class="sub">{sub}</text><title>{title}</title>{close}"#,
            kind = match node.kind {
                NodeKind::Task => "task",
                NodeKind::Group => "group",
                NodeKind::Loop => "loop",
            },
            cls = state.to_lowercase(),
            path = esc(&node.path),
            tx = x + 10.0,
            ty1 = y + 19.0,
            ty2 = y + 35.0,
            label = esc(&clip(&node.label, 24)),
            sub = esc(&sub),
            title = esc(&node.label),
        );
    }
    s.push_str("</svg>");
    s
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec() -> PipelineSpec {
        serde_json::from_value(json!({
            "pipelineInfo": {"name": "p"},
            "deploymentSpec": {"executors": {}},
            "root": {"dag": {"tasks": {
                "a": {"taskInfo": {"name": "a <b>"}, "componentRef": {"name": "comp-a"}},
                "for-loop-1": {"taskInfo": {"name": "for-loop-1"}, "componentRef": {"name": "comp-for-loop-1"},
                               "dependentTasks": ["a"],
                               "parameterIterator": {"itemInput": "x", "items": {"raw": "[1,2,3]"}}},
                "z": {"taskInfo": {"name": "z"}, "componentRef": {"name": "comp-a"}, "dependentTasks": ["for-loop-1", "nope"]}
            }}},
            "components": {
                "comp-a": {"executorLabel": "exec-a"},
                "comp-for-loop-1": {"dag": {"tasks": {"sq": {"taskInfo": {"name": "sq"}, "componentRef": {"name": "comp-a"}}}}}
            }
        }))
        .unwrap()
    }

    fn task(id: &str, path: &str, parent: Option<&str>, kind: TaskKind, state: TaskState) -> TaskRecord {
        TaskRecord {
            id: id.into(),
            run_id: "r".into(),
            parent_id: parent.map(Into::into),
            path: path.into(),
            task_key: path.rsplit('/').next().unwrap_or("").into(),
            display_name: path.into(),
            kind,
            state,
            attempts: 1,
            cached: false,
            cache_key: None,
            inputs: None,
            outputs: None,
            error: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn loops_are_one_node_with_counts_and_open_to_iterations() {
        let spec = spec();
        let tasks = vec![
            task("1", "a", None, TaskKind::Container, TaskState::Succeeded),
            task("2", "for-loop-1", None, TaskKind::Loop, TaskState::Running),
            task("3", "for-loop-1/0", Some("2"), TaskKind::Iteration, TaskState::Succeeded),
            task("4", "for-loop-1/1", Some("2"), TaskKind::Iteration, TaskState::Failed),
            task("5", "for-loop-1/2", Some("2"), TaskKind::Iteration, TaskState::Running),
            task("6", "for-loop-1/0/sq", Some("3"), TaskKind::Container, TaskState::Succeeded),
        ];
        let Ok(Target::Dag(root)) = resolve(&spec, "") else { panic!("root") };
        let v = dag_view(&spec, root, "", &tasks);
        assert_eq!(v.nodes.iter().map(|n| n.key.as_str()).collect::<Vec<_>>(), ["a", "for-loop-1", "z"]);
        assert_eq!(v.edges, [(0, 1), (1, 2)]);
        let counts = v.nodes[1].counts.clone().unwrap();
        assert_eq!(counts.label(), "×3: 1 ✓ 1 ✗ 1 running");
        assert_eq!(v.nodes[2].state_name(), "NOT_STARTED");
        let svg = svg(&v, "r");
        assert!(svg.contains("a &lt;b&gt;") && !svg.contains("a <b>"));
        assert!(svg.contains(r#"href="/runs/r?dag=for-loop-1""#) && svg.contains(r#"href="/runs/r/tasks/a""#));
        assert!(matches!(resolve(&spec, "for-loop-1"), Ok(Target::Loop(_))));
        assert_eq!(iterations("for-loop-1", &tasks).len(), 3);
        let Ok(Target::Dag(body)) = resolve(&spec, "for-loop-1/0") else { panic!("iteration") };
        let v = dag_view(&spec, body, "for-loop-1/0", &tasks);
        assert_eq!(v.nodes[0].path, "for-loop-1/0/sq");
        assert_eq!(v.nodes[0].state, Some(TaskState::Succeeded));
        assert!(
            resolve(&spec, "a").is_err() && resolve(&spec, "for-loop-1/x").is_err() && resolve(&spec, "q").is_err()
        );
    }

    #[test]
    fn urls_are_encoded() {
        assert_eq!(url_part("a/b c\"<", true), "a/b%20c%22%3C");
        assert_eq!(url_part("a/b", false), "a%2Fb");
    }
}
