//! The validated pipeline as a typed, resolved task graph: what validation promised, in a shape the
//! engine can use without checking again.
//!
//! Every DAG component becomes a [`Dag`] whose tasks ([`TaskPlan`]) carry their component, their kind with
//! everything that kind needs (the nested [`Dag`], the loop's iterator and body, the container and its
//! parsed executor, the importer), and their upstream siblings as indices into the same DAG. The graph is
//! built only from a spec that passed validation ([`crate::Pipeline`] holds it), so an unknown component,
//! executor or task cannot appear in it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ir::{ComponentSpec, ContainerSpec, ImporterSpec, ItemsSpec, ParameterType, PipelineSpec, TaskSpec};
use crate::platform::{PlatformConfig, PvcOp};
use crate::resources::Resources;
use crate::validate::{upstream_tasks, ParsedExecutor};
use crate::Problem;

/// A DAG component with its tasks resolved.
#[derive(Debug)]
pub struct Dag {
    /// The component's name in `components` (empty for the root).
    pub component_name: String,
    /// The DAG component itself (its interface and `dag.outputs`).
    pub component: Arc<ComponentSpec>,
    /// The tasks, in key order; [`TaskPlan::upstream`] indexes into this list.
    pub tasks: Vec<Arc<TaskPlan>>,
}

impl Dag {
    /// The position of the task `key` in [`Dag::tasks`].
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.tasks.binary_search_by(|t| t.key.as_str().cmp(key)).ok()
    }
}

/// One task of a DAG, resolved.
#[derive(Debug)]
pub struct TaskPlan {
    pub key: String,
    /// `taskInfo.name`, or the key when empty.
    pub display: String,
    pub spec: TaskSpec,
    /// The component the task runs (for a loop: the body DAG's component).
    pub component: Arc<ComponentSpec>,
    /// Upstream siblings (explicit `dependentTasks` and data producers) as indices into the DAG's tasks.
    pub upstream: Vec<usize>,
    /// `triggerPolicy.strategy` is `ALL_UPSTREAM_TASKS_COMPLETED` (exit handlers, `ignore_upstream_failure`):
    /// the task runs after its upstream finished, whatever their state.
    pub accepts_completed: bool,
    pub kind: PlanKind,
}

/// What a task is, with what running it needs.
#[derive(Debug)]
pub enum PlanKind {
    /// A nested DAG (pipeline, condition branch, exit-handler body).
    Dag(Arc<Dag>),
    /// A ParallelFor: one iteration of `body` per item.
    Loop(Arc<LoopPlan>),
    /// A container executor.
    Container(Arc<ContainerPlan>),
    /// An importer executor.
    Importer(Arc<ImporterSpec>),
}

#[derive(Debug)]
pub struct LoopPlan {
    /// The body's input that receives one item per iteration (`itemInput`).
    pub item_input: String,
    /// What the loop iterates over.
    pub items: LoopItems,
    /// At most this many iterations at once (`None`: no limit).
    pub parallelism_limit: Option<usize>,
    /// The body, run once per item.
    pub body: Arc<Dag>,
}

/// The items of a loop: parameter values (`parameterIterator`) or artifacts (`artifactIterator`).
#[derive(Debug)]
pub enum LoopItems {
    /// A JSON list, given raw or by one of the loop task's input parameters; each item becomes the parameter
    /// `item_input`.
    Parameters {
        items: ItemsSpec,
        /// The declared type of the item input, when the body declares one.
        item_type: Option<ParameterType>,
    },
    /// The list of artifacts of the loop task's input artifact `input`; each artifact becomes the one-artifact
    /// input `item_input`.
    Artifacts { input: String },
}

#[derive(Debug)]
pub struct ContainerPlan {
    pub executor_label: String,
    pub container: ContainerSpec,
    pub parsed: ParsedExecutor,
    /// `container.resources`, parsed (placeholders resolve from the task's inputs).
    pub resources: Resources,
    /// The executor's kfp-kubernetes settings (volumes, secrets, timeout, Kubernetes-only fields).
    pub platform: Option<PlatformConfig>,
    /// Set for kfp-kubernetes' image-only CreatePVC/DeletePVC executors: no process runs.
    pub pvc_op: Option<PvcOp>,
}

/// The whole pipeline's graph.
#[derive(Debug, Clone)]
pub struct Graph {
    pub root: Arc<Dag>,
}

/// Builds the graph of a spec that passed [`crate::validate`]'s checks; anything still missing (which
/// validation reports first) becomes a problem here instead of a panic later.
pub(crate) fn build(
    spec: &PipelineSpec,
    executors: &BTreeMap<String, ParsedExecutor>,
    platform: &BTreeMap<String, PlatformConfig>,
    problems: &mut Vec<Problem>,
) -> Option<Graph> {
    // kfp names tasks uniquely across the pipeline, and kubernetes settings may name a task of an
    // enclosing DAG (a PVC created at the root, mounted inside a condition or loop).
    let all_keys = std::iter::once(&spec.root)
        .chain(spec.components.values())
        .filter_map(|c| c.dag.as_ref())
        .flat_map(|d| d.tasks.keys().cloned())
        .collect();
    let mut builder =
        Builder { spec, executors, platform, all_keys, done: BTreeMap::new(), active: Vec::new(), problems };
    let root = builder.dag("", Arc::new(spec.root.clone()), "root")?;
    Some(Graph { root })
}

struct Builder<'a> {
    spec: &'a PipelineSpec,
    executors: &'a BTreeMap<String, ParsedExecutor>,
    platform: &'a BTreeMap<String, PlatformConfig>,
    /// Every task key of every DAG in the spec.
    all_keys: std::collections::BTreeSet<String>,
    done: BTreeMap<String, Arc<Dag>>,
    /// DAG components being built, to refuse a component that contains itself.
    active: Vec<String>,
    problems: &'a mut Vec<Problem>,
}

impl Builder<'_> {
    fn dag(&mut self, name: &str, component: Arc<ComponentSpec>, loc: &str) -> Option<Arc<Dag>> {
        if let Some(d) = self.done.get(name) {
            return Some(d.clone());
        }
        if self.active.iter().any(|a| a == name) {
            self.problems.push(Problem::new(loc, format!("component `{name}` contains itself")));
            return None;
        }
        let Some(dag) = &component.dag else {
            self.problems.push(Problem::new(loc, "has no `dag`"));
            return None;
        };
        self.active.push(name.to_owned());
        let keys: Vec<&str> = dag.tasks.keys().map(String::as_str).collect();
        let mut tasks = Vec::with_capacity(dag.tasks.len());
        let mut ok = true;
        for (key, task) in &dag.tasks {
            let tloc = format!("{loc}.dag.tasks.{key}");
            match self.task(key, task, &keys, &tloc) {
                Some(t) => tasks.push(Arc::new(t)),
                None => ok = false,
            }
        }
        self.active.pop();
        if !ok {
            return None;
        }
        let built = Arc::new(Dag { component_name: name.to_owned(), component, tasks });
        self.done.insert(name.to_owned(), built.clone());
        Some(built)
    }

    fn task(&mut self, key: &str, task: &TaskSpec, keys: &[&str], loc: &str) -> Option<TaskPlan> {
        let name = &task.component_ref.name;
        let Some(component) = self.spec.components.get(name) else {
            self.problems.push(Problem::new(format!("{loc}.componentRef"), format!("unknown component `{name}`")));
            return None;
        };
        let component = Arc::new(component.clone());
        let mut upstream = Vec::new();
        for dep in upstream_tasks(task) {
            match keys.binary_search(&dep) {
                Ok(i) => upstream.push(i),
                Err(_) => {
                    self.problems.push(Problem::new(loc, format!("unknown upstream task `{dep}`")));
                    return None;
                }
            }
        }
        let loop_items = match (&task.parameter_iterator, &task.artifact_iterator) {
            (Some(it), _) => {
                let item_type = component.input_definitions.parameters.get(&it.item_input).map(|d| d.parameter_type);
                Some((it.item_input.clone(), LoopItems::Parameters { items: it.items.clone(), item_type }))
            }
            (None, Some(it)) => {
                it.items.input_artifact.clone().map(|input| (it.item_input.clone(), LoopItems::Artifacts { input }))
            }
            (None, None) => None,
        };
        let kind = if let Some((item_input, items)) = loop_items {
            let body = self.dag(name, component.clone(), &format!("components.{name}"))?;
            let parallelism_limit = task
                .iterator_policy
                .as_ref()
                .map(|p| p.parallelism_limit)
                .filter(|l| *l > 0)
                .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
            PlanKind::Loop(Arc::new(LoopPlan { item_input, items, parallelism_limit, body }))
        } else if component.dag.is_some() {
            PlanKind::Dag(self.dag(name, component.clone(), &format!("components.{name}"))?)
        } else {
            let label = component.executor_label.clone().unwrap_or_default();
            let executor = self.spec.deployment_spec.executors.get(&label);
            match (executor.and_then(|e| e.container.as_ref()), executor.and_then(|e| e.importer.as_ref())) {
                (Some(container), _) => {
                    let Some(parsed) = self.executors.get(&label) else {
                        self.problems.push(Problem::new(loc, format!("executor `{label}` was not parsed")));
                        return None;
                    };
                    let platform = self.platform.get(&label).cloned();
                    let producers = platform.iter().flat_map(|p| {
                        let pvc = p.pvc_mounts.iter().map(|m| &m.name);
                        pvc.chain(p.env.iter().map(|e| &e.name)).chain(p.volumes.iter().map(|v| &v.name))
                    });
                    for producer in producers.filter_map(|n| n.producer()) {
                        if !self.all_keys.contains(producer) {
                            self.problems.push(Problem::new(
                                loc,
                                format!("kubernetes settings of executor `{label}` name unknown task `{producer}`"),
                            ));
                            return None;
                        }
                    }
                    PlanKind::Container(Arc::new(ContainerPlan {
                        pvc_op: PvcOp::from_image(&container.image),
                        executor_label: label,
                        container: container.clone(),
                        parsed: parsed.clone(),
                        resources: Resources::parse(container.resources.as_ref()).0,
                        platform,
                    }))
                }
                (None, Some(importer)) => PlanKind::Importer(Arc::new(importer.clone())),
                (None, None) => {
                    self.problems.push(Problem::new(loc, format!("unknown executor `{label}`")));
                    return None;
                }
            }
        };
        let display = if task.task_info.name.is_empty() { key.to_owned() } else { task.task_info.name.clone() };
        let accepts_completed = task
            .trigger_policy
            .as_ref()
            .and_then(|t| t.strategy.as_deref())
            .is_some_and(|s| s == "ALL_UPSTREAM_TASKS_COMPLETED");
        Some(TaskPlan {
            key: key.to_owned(),
            display,
            spec: task.clone(),
            component,
            upstream,
            accepts_completed,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pipeline, SpecError};

    const SPEC: &str = r#"
components:
  comp-echo:
    executorLabel: exec-echo
    inputDefinitions:
      parameters:
        x: {parameterType: NUMBER_INTEGER}
    outputDefinitions:
      parameters:
        y: {parameterType: NUMBER_INTEGER}
  comp-import:
    executorLabel: exec-import
    outputDefinitions:
      artifacts:
        artifact: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}
  comp-body:
    dag:
      tasks:
        inner:
          componentRef: {name: comp-echo}
          inputs:
            parameters:
              x: {componentInputParameter: item}
    inputDefinitions:
      parameters:
        item: {parameterType: NUMBER_INTEGER}
deploymentSpec:
  executors:
    exec-echo:
      container: {image: alpine, command: [sh, -c, 'echo "$0" > "$1"'], args: ["{{$.inputs.parameters['x']}}", "{{$.outputs.parameters['y'].output_file}}"]}
    exec-import:
      importer: {artifactUri: {constant: /tmp/data.csv}, typeSchema: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}
pipelineInfo: {name: graph}
root:
  dag:
    tasks:
      second:
        componentRef: {name: comp-echo}
        taskInfo: {name: Second step}
        inputs:
          parameters:
            x: {taskOutputParameter: {producerTask: first, outputParameterKey: y}}
      first:
        componentRef: {name: comp-echo}
        inputs:
          parameters:
            x: {runtimeValue: {constant: 1}}
      loop:
        componentRef: {name: comp-body}
        dependentTasks: [second]
        iteratorPolicy: {parallelismLimit: 2}
        parameterIterator: {itemInput: item, items: {raw: '[1, 2]'}}
      nested:
        componentRef: {name: comp-body}
        inputs:
          parameters:
            item: {runtimeValue: {constant: 3}}
        triggerPolicy: {strategy: ALL_UPSTREAM_TASKS_COMPLETED}
      data:
        componentRef: {name: comp-import}
schemaVersion: 2.1.0
"#;

    #[test]
    fn tasks_are_resolved_with_kinds_and_upstream_indices() {
        let p = Pipeline::from_yaml(SPEC).expect("valid");
        let root = &p.graph.root;
        let keys: Vec<&str> = root.tasks.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["data", "first", "loop", "nested", "second"]);
        let task = |k: &str| &root.tasks[root.index_of(k).expect("known task")];
        assert!(matches!(task("data").kind, PlanKind::Importer(_)));
        assert!(matches!(&task("first").kind, PlanKind::Container(c) if c.executor_label == "exec-echo"));
        assert_eq!(task("second").upstream, [root.index_of("first").expect("first")]);
        assert_eq!(task("second").display, "Second step");
        assert_eq!(task("first").display, "first");
        match &task("loop").kind {
            PlanKind::Loop(l) => {
                assert_eq!(l.parallelism_limit, Some(2));
                assert_eq!(l.item_input, "item");
                assert!(matches!(
                    &l.items,
                    LoopItems::Parameters { item_type: Some(ParameterType::NumberInteger), items }
                        if items.raw.as_deref() == Some("[1, 2]")
                ));
                assert_eq!(l.body.tasks.len(), 1);
            }
            other => panic!("not a loop: {other:?}"),
        }
        assert_eq!(task("loop").upstream, [root.index_of("second").expect("second")]);
        match &task("nested").kind {
            PlanKind::Dag(d) => assert_eq!(d.component_name, "comp-body"),
            other => panic!("not a dag: {other:?}"),
        }
        assert!(task("nested").accepts_completed && !task("first").accepts_completed);
        assert_eq!(root.index_of("missing"), None);
    }

    #[test]
    fn a_component_that_contains_itself_is_refused() {
        let spec = SPEC.replace("componentRef: {name: comp-echo}\n          inputs:\n            parameters:\n              x: {componentInputParameter: item}", "componentRef: {name: comp-body}\n          inputs:\n            parameters:\n              item: {componentInputParameter: item}");
        assert_ne!(spec, SPEC);
        match Pipeline::from_yaml(&spec) {
            Err(SpecError::Invalid(problems)) => {
                assert!(problems.iter().any(|p| p.message.contains("`comp-body` contains itself")), "{problems:?}")
            }
            other => panic!("expected a problem, got {other:?}"),
        }
    }

    const ARTIFACT_LOOP: &str = r#"
components:
  comp-make:
    executorLabel: exec-make
    outputDefinitions:
      artifacts:
        out: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}, isArtifactList: true}
  comp-use:
    executorLabel: exec-make
    inputDefinitions:
      artifacts:
        one: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}
  comp-body:
    dag:
      tasks:
        use:
          componentRef: {name: comp-use}
          inputs:
            artifacts:
              one: {componentInputArtifact: item}
    inputDefinitions:
      artifacts:
        all: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}, isArtifactList: true}
        item: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}
deploymentSpec:
  executors:
    exec-make:
      container: {image: alpine, command: [sh, -c, 'true']}
pipelineInfo: {name: artifact-loop}
root:
  dag:
    tasks:
      make:
        componentRef: {name: comp-make}
      loop:
        componentRef: {name: comp-body}
        artifactIterator: {itemInput: item, items: {inputArtifact: all}}
        inputs:
          artifacts:
            all: {taskOutputArtifact: {producerTask: make, outputArtifactKey: out}}
schemaVersion: 2.1.0
"#;

    #[test]
    fn a_loop_over_artifacts_names_its_list_and_item() {
        let p = Pipeline::from_yaml(ARTIFACT_LOOP).expect("valid");
        let root = &p.graph.root;
        let lp = &root.tasks[root.index_of("loop").expect("loop")];
        match &lp.kind {
            PlanKind::Loop(l) => {
                assert_eq!(l.item_input, "item");
                assert!(matches!(&l.items, LoopItems::Artifacts { input } if input == "all"));
            }
            other => panic!("not a loop: {other:?}"),
        }
        assert_eq!(lp.upstream, [root.index_of("make").expect("make")]);
    }

    #[test]
    fn a_loop_over_artifacts_must_name_a_task_input_and_a_body_input() {
        let bad = ARTIFACT_LOOP.replace("items: {inputArtifact: all}", "items: {inputArtifact: nope}");
        let bad = bad.replace("{itemInput: item,", "{itemInput: missing,");
        match Pipeline::from_yaml(&bad) {
            Err(SpecError::Invalid(problems)) => {
                let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
                assert!(
                    messages.contains(&"inputArtifact `nope` is not an input artifact of the task"),
                    "{messages:?}"
                );
                assert!(
                    messages.contains(&"`missing` is not an input artifact of component `comp-body`"),
                    "{messages:?}"
                );
            }
            other => panic!("expected problems, got {other:?}"),
        }
    }
}
