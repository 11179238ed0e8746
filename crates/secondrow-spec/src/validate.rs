//! Raw spec → validated [`Pipeline`], reporting every problem at once.
//!
//! Validation runs before anything is executed or written: a spec that passes here never makes the
//! engine meet an unknown component, executor, task, input, output or placeholder at run time, and its
//! task graphs are acyclic. Run parameters are checked against the root's inputs by
//! [`Pipeline::bind_parameters`].

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cel;
use crate::graph::{self, Graph};
use crate::ir::{ArtifactIterator, ComponentSpec, DagSpec, ExecutorSpec, ParameterType, PipelineSpec, TaskSpec};
use crate::lightweight::{prelude_requirements, PipRequirements};
use crate::placeholder::{self, ArgTemplate, Placeholder};
use crate::resources::Resources;
use crate::value;
use crate::{Problem, SpecError};

/// A pipeline that passed validation, with its executors' arguments parsed.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub spec: PipelineSpec,
    /// The pipeline spec document as JSON, exactly as given (what the store keeps).
    pub document: Value,
    /// The second YAML document (kfp-kubernetes platform spec), as given; its per-executor settings reach
    /// each container task as `ContainerPlan::platform` (see [`crate::platform`]).
    pub platform_spec: Option<Value>,
    pub executors: BTreeMap<String, ParsedExecutor>,
    /// The task graph, resolved: what the engine executes.
    pub graph: Graph,
}

/// A container executor's command and arguments, parsed into templates.
#[derive(Debug, Clone)]
pub struct ParsedExecutor {
    pub command: Vec<ArgTemplate>,
    pub args: Vec<ArgTemplate>,
    /// Number of leading `command` entries forming the kfp `pip install` prelude (`sh -c "... && "$0" "$@""`),
    /// 0 when there is none. A backend whose Python already has kfp may drop them.
    pub pip_prelude_len: usize,
    /// True for kfp lightweight Python components (`python3 -m kfp.dsl.executor_main`).
    pub is_lightweight_python: bool,
    /// What the prelude installs besides kfp (`packages_to_install`); empty when it installs only kfp.
    pub requirements: PipRequirements,
}

impl Pipeline {
    /// Parses IR YAML as the kfp compiler writes it (one or two documents).
    pub fn from_yaml(text: &str) -> Result<Pipeline, SpecError> {
        crate::limits::check_text(text)?;
        let mut docs = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(text) {
            let v = Value::deserialize(doc).map_err(|e| SpecError::Syntax(e.to_string()))?;
            docs.push(v);
        }
        let mut docs = docs.into_iter().filter(|d| !d.is_null());
        let Some(document) = docs.next() else {
            return Err(SpecError::Syntax("the file holds no YAML document".into()));
        };
        let platform_spec = docs.next();
        // Deserialize the typed spec straight from YAML so that type errors carry line numbers.
        let first = serde_yaml_ng::Deserializer::from_str(text).next();
        let spec = match first {
            Some(doc) => PipelineSpec::deserialize(doc).map_err(|e| SpecError::Syntax(e.to_string()))?,
            None => return Err(SpecError::Syntax("the file holds no YAML document".into())),
        };
        Pipeline::build(spec, document, platform_spec)
    }

    /// Accepts the JSON forms the KFP API carries: a bare spec, or `{pipeline_spec, platform_spec}`.
    pub fn from_json(v: &Value) -> Result<Pipeline, SpecError> {
        crate::limits::check_value(v)?;
        let (document, platform_spec) = match v.get("pipeline_spec") {
            Some(inner) => (inner.clone(), v.get("platform_spec").cloned()),
            None => (v.clone(), None),
        };
        let spec = PipelineSpec::deserialize(&document).map_err(|e| SpecError::Syntax(e.to_string()))?;
        Pipeline::build(spec, document, platform_spec)
    }

    fn build(spec: PipelineSpec, document: Value, platform_spec: Option<Value>) -> Result<Pipeline, SpecError> {
        let mut problems = Vec::new();
        let executors = check_spec(&spec, &mut problems);
        let platform = crate::platform::parse(platform_spec.as_ref(), &mut problems);
        if !problems.is_empty() {
            return Err(SpecError::Invalid(problems));
        }
        match graph::build(&spec, &executors, &platform, &mut problems) {
            Some(graph) if problems.is_empty() => Ok(Pipeline { spec, document, platform_spec, executors, graph }),
            _ => Err(SpecError::Invalid(problems)),
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.pipeline_info.name
    }

    pub fn component(&self, name: &str) -> Option<&ComponentSpec> {
        self.spec.components.get(name)
    }

    pub fn executor(&self, label: &str) -> Option<&ExecutorSpec> {
        self.spec.deployment_spec.executors.get(label)
    }

    /// Binds run parameters to the root's inputs: coerces types, applies defaults, rejects unknown names.
    /// Optional inputs without a value are left out.
    pub fn bind_parameters(&self, given: &Map<String, Value>) -> Result<Map<String, Value>, SpecError> {
        let defs = &self.spec.root.input_definitions;
        let mut problems = Vec::new();
        for name in given.keys() {
            if !defs.parameters.contains_key(name) {
                let known: Vec<_> = defs.parameters.keys().map(String::as_str).collect();
                problems.push(Problem::new(
                    format!("parameter `{name}`"),
                    format!("unknown parameter (the pipeline takes: {})", known.join(", ")),
                ));
            }
        }
        let mut bound = Map::new();
        for (name, def) in &defs.parameters {
            let raw = given.get(name).or(def.default_value.as_ref());
            match raw {
                Some(v) => match value::coerce(v, def.parameter_type) {
                    Ok(v) => {
                        bound.insert(name.clone(), v);
                    }
                    Err(e) => problems.push(Problem::new(format!("parameter `{name}`"), e.to_string())),
                },
                None if def.is_optional => {}
                None => problems.push(Problem::new(
                    format!("parameter `{name}`"),
                    format!("missing required parameter of type {}", def.parameter_type.as_str()),
                )),
            }
        }
        for (name, def) in &defs.artifacts {
            if !def.is_optional {
                problems.push(Problem::new(
                    format!("artifact input `{name}`"),
                    "pipelines with required artifact inputs cannot be started with parameters alone",
                ));
            }
        }
        if problems.is_empty() {
            Ok(bound)
        } else {
            Err(SpecError::Parameters(problems))
        }
    }

    /// Parses `name=TEXT` pairs from a command line using the declared types, then binds them.
    pub fn bind_cli_parameters(&self, pairs: &[(String, String)]) -> Result<Map<String, Value>, SpecError> {
        let defs = &self.spec.root.input_definitions.parameters;
        let mut given = Map::new();
        let mut problems = Vec::new();
        for (name, text) in pairs {
            match defs.get(name) {
                Some(def) => match value::parse_cli(text, def.parameter_type) {
                    Ok(v) => {
                        given.insert(name.clone(), v);
                    }
                    Err(e) => problems.push(Problem::new(format!("parameter `{name}`"), e.to_string())),
                },
                None => {
                    given.insert(name.clone(), Value::String(text.clone()));
                }
            }
        }
        match self.bind_parameters(&given) {
            Ok(bound) if problems.is_empty() => Ok(bound),
            Ok(_) => Err(SpecError::Parameters(problems)),
            Err(e) => {
                let seen: BTreeSet<String> = problems.iter().map(|p| p.location.clone()).collect();
                problems.extend(e.problems().iter().filter(|p| !seen.contains(&p.location)).cloned());
                Err(SpecError::Parameters(problems))
            }
        }
    }
}

fn check_spec(spec: &PipelineSpec, problems: &mut Vec<Problem>) -> BTreeMap<String, ParsedExecutor> {
    let executors = check_executors(spec, problems);
    for (name, comp) in &spec.components {
        let loc = format!("components.{name}");
        crate::names::check_component(name, comp, &loc, problems);
        match (&comp.dag, &comp.executor_label) {
            (Some(_), Some(_)) => problems.push(Problem::new(&loc, "has both `dag` and `executorLabel`")),
            (None, None) => problems.push(Problem::new(&loc, "has neither `dag` nor `executorLabel`")),
            (None, Some(label)) => match spec.deployment_spec.executors.get(label) {
                None => problems.push(Problem::new(
                    format!("{loc}.executorLabel"),
                    format!("unknown executor `{label}` (not in deploymentSpec.executors)"),
                )),
                Some(_) => {
                    if let Some(parsed) = executors.get(label) {
                        check_placeholders_against(comp, label, parsed, problems);
                    }
                }
            },
            (Some(dag), None) => check_dag(spec, &loc, comp, dag, problems),
        }
    }
    crate::names::check_component("root", &spec.root, "root", problems);
    match &spec.root.dag {
        Some(dag) => check_dag(spec, "root", &spec.root, dag, problems),
        None => problems.push(Problem::new("root", "the root component has no `dag`")),
    }
    executors
}

/// Why a container without `command` cannot run here, naming the components that use it and how to fix
/// them: on Kubernetes it would run the image's entrypoint (with `args`, if any, as its arguments), but
/// SecondRow runs a process, not an image, so the command has to be spelled out.
fn no_command_message(spec: &PipelineSpec, label: &str, image: &str, has_args: bool) -> String {
    let users: Vec<String> = spec
        .components
        .iter()
        .filter(|(_, c)| c.executor_label.as_deref() == Some(label))
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    let who = match users.as_slice() {
        [] => "it".to_owned(),
        [one] => format!("component {one}"),
        many => format!("components {}", many.join(", ")),
    };
    let (what, receives) = if has_args {
        ("has `args` but no `command`", " (which would receive the args)")
    } else {
        ("has neither `command` nor `args`", "")
    };
    format!(
        "{what}: {who} relies on the entrypoint of image `{image}`{receives}, but SecondRow runs a local process, \
         not an image; give the container a `command` (for example a `dsl.container_component` returning \
         `dsl.ContainerSpec(image=..., command=[...], args=[...])`)"
    )
}

fn check_executors(spec: &PipelineSpec, problems: &mut Vec<Problem>) -> BTreeMap<String, ParsedExecutor> {
    let mut out = BTreeMap::new();
    for (label, exec) in &spec.deployment_spec.executors {
        let loc = format!("deploymentSpec.executors.{label}");
        match (&exec.container, &exec.importer) {
            (Some(c), None) => {
                for (field, message) in Resources::parse(c.resources.as_ref()).1 {
                    problems.push(Problem::new(format!("{loc}.container.resources.{field}"), message));
                }
                let mut parse_all = |field: &str, items: &[String]| -> Vec<ArgTemplate> {
                    let mut v = Vec::new();
                    for (i, a) in items.iter().enumerate() {
                        match placeholder::parse_arg(a) {
                            Ok(t) => v.push(t),
                            Err(e) => {
                                problems.push(Problem::new(format!("{loc}.container.{field}[{i}]"), e.to_string()))
                            }
                        }
                    }
                    v
                };
                let command = parse_all("command", &c.command);
                let args = parse_all("args", &c.args);
                // kfp-kubernetes' CreatePVC/DeletePVC executors are image-only: no process runs for them.
                let pvc_stub = crate::platform::PvcOp::from_image(&c.image).is_some();
                if c.command.is_empty() && !pvc_stub {
                    problems.push(Problem::new(
                        format!("{loc}.container"),
                        no_command_message(spec, label, &c.image, !c.args.is_empty()),
                    ));
                }
                let pip_prelude_len = pip_prelude_len(&c.command);
                let is_lightweight_python = c.command.iter().any(|s| s.contains("kfp.dsl.executor_main"));
                let requirements = match pip_prelude_len {
                    0 => PipRequirements::default(),
                    _ => prelude_requirements(&c.command[2]).unwrap_or_default(),
                };
                out.insert(
                    label.clone(),
                    ParsedExecutor { command, args, pip_prelude_len, is_lightweight_python, requirements },
                );
            }
            (None, Some(imp)) => {
                if imp.artifact_uri.constant.is_none() && imp.artifact_uri.runtime_parameter.is_none() {
                    problems.push(Problem::new(
                        format!("{loc}.importer.artifactUri"),
                        "needs `constant` or `runtimeParameter`",
                    ));
                }
            }
            (Some(_), Some(_)) => problems.push(Problem::new(&loc, "has both `container` and `importer`")),
            (None, None) => problems.push(Problem::new(&loc, "has neither `container` nor `importer`")),
        }
    }
    out
}

/// Detects kfp's `sh -c "<pip install ...> && \"$0\" \"$@\""` prelude at the start of a command.
fn pip_prelude_len(command: &[String]) -> usize {
    match command {
        [sh, c, script, ..]
            if sh == "sh"
                && c == "-c"
                && script.contains("pip install")
                && script.trim_end().ends_with("\"$0\" \"$@\"") =>
        {
            3
        }
        _ => 0,
    }
}

fn check_placeholders_against(comp: &ComponentSpec, label: &str, exec: &ParsedExecutor, problems: &mut Vec<Problem>) {
    let ins = &comp.input_definitions;
    let outs = &comp.output_definitions;
    for t in exec.command.iter().chain(&exec.args) {
        for p in placeholder::placeholders(t) {
            let missing = match p {
                Placeholder::InputParameter(n) if !ins.parameters.contains_key(n) => Some(("input parameter", n)),
                Placeholder::InputArtifact { name, .. } if !ins.artifacts.contains_key(name) => {
                    Some(("input artifact", name))
                }
                Placeholder::OutputParameterFile(n) if !outs.parameters.contains_key(n) => {
                    Some(("output parameter", n))
                }
                Placeholder::OutputArtifact { name, .. } if !outs.artifacts.contains_key(name) => {
                    Some(("output artifact", name))
                }
                _ => None,
            };
            if let Some((kind, name)) = missing {
                problems.push(Problem::new(
                    format!("deploymentSpec.executors.{label}"),
                    format!("placeholder refers to unknown {kind} `{name}`"),
                ));
            }
        }
        for input in placeholder::if_present_inputs(t) {
            if !ins.parameters.contains_key(input) && !ins.artifacts.contains_key(input) {
                problems.push(Problem::new(
                    format!("deploymentSpec.executors.{label}"),
                    format!("IfPresent refers to unknown input `{input}`"),
                ));
            }
        }
    }
}

fn check_dag(spec: &PipelineSpec, loc: &str, comp: &ComponentSpec, dag: &DagSpec, problems: &mut Vec<Problem>) {
    for (key, task) in &dag.tasks {
        crate::names::check_task_key(key, &format!("{loc}.dag.tasks.{key}"), problems);
        check_task(spec, &format!("{loc}.dag.tasks.{key}"), comp, dag, task, problems);
    }
    if let Some(cycle) = find_cycle(dag) {
        problems.push(Problem::new(
            format!("{loc}.dag"),
            format!("dependency cycle between tasks: {}", cycle.join(" -> ")),
        ));
    }
    let producer = |subtask: &str| dag.tasks.get(subtask).and_then(|t| spec.components.get(&t.component_ref.name));
    for (name, out) in &dag.outputs.parameters {
        let oloc = format!("{loc}.dag.outputs.parameters.{name}");
        if !comp.output_definitions.parameters.contains_key(name) {
            problems.push(Problem::new(&oloc, "not declared in the component's outputDefinitions"));
        }
        let selectors: Vec<_> = out
            .value_from_parameter
            .iter()
            .chain(out.value_from_oneof.iter().flat_map(|o| &o.parameter_selectors))
            .collect();
        if selectors.is_empty() {
            problems.push(Problem::new(&oloc, "needs `valueFromParameter` or `valueFromOneof`"));
        }
        for s in selectors {
            if !dag.tasks.contains_key(&s.producer_subtask) {
                problems.push(Problem::new(&oloc, format!("unknown producerSubtask `{}`", s.producer_subtask)));
            } else if let Some(p) = producer(&s.producer_subtask) {
                if !p.output_definitions.parameters.contains_key(&s.output_parameter_key) {
                    problems.push(Problem::new(
                        &oloc,
                        format!("task `{}` has no output parameter `{}`", s.producer_subtask, s.output_parameter_key),
                    ));
                }
            }
        }
    }
    for (name, out) in &dag.outputs.artifacts {
        let oloc = format!("{loc}.dag.outputs.artifacts.{name}");
        if !comp.output_definitions.artifacts.contains_key(name) {
            problems.push(Problem::new(&oloc, "not declared in the component's outputDefinitions"));
        }
        for s in &out.artifact_selectors {
            if !dag.tasks.contains_key(&s.producer_subtask) {
                problems.push(Problem::new(&oloc, format!("unknown producerSubtask `{}`", s.producer_subtask)));
            } else if let Some(p) = producer(&s.producer_subtask) {
                if !p.output_definitions.artifacts.contains_key(&s.output_artifact_key) {
                    problems.push(Problem::new(
                        &oloc,
                        format!("task `{}` has no output artifact `{}`", s.producer_subtask, s.output_artifact_key),
                    ));
                }
            }
        }
    }
}

fn check_task(
    spec: &PipelineSpec,
    loc: &str,
    parent: &ComponentSpec,
    dag: &DagSpec,
    task: &TaskSpec,
    problems: &mut Vec<Problem>,
) {
    let target = spec.components.get(&task.component_ref.name);
    if target.is_none() {
        problems.push(Problem::new(
            format!("{loc}.componentRef"),
            format!("unknown component `{}`", task.component_ref.name),
        ));
    }
    for dep in &task.dependent_tasks {
        if !dag.tasks.contains_key(dep) {
            problems.push(Problem::new(format!("{loc}.dependentTasks"), format!("unknown task `{dep}`")));
        }
    }
    let sibling_comp =
        |producer: &str| dag.tasks.get(producer).and_then(|t| spec.components.get(&t.component_ref.name));
    let item_input = task.parameter_iterator.as_ref().map(|it| it.item_input.as_str());
    for (name, input) in &task.inputs.parameters {
        let iloc = format!("{loc}.inputs.parameters.{name}");
        if let Some(t) = target {
            if !t.input_definitions.parameters.contains_key(name) && !is_compiler_input(name, input) {
                problems
                    .push(Problem::new(&iloc, format!("component `{}` has no such input", task.component_ref.name)));
            }
        }
        let sources = [
            input.component_input_parameter.is_some(),
            input.task_output_parameter.is_some(),
            input.runtime_value.is_some(),
            input.task_final_status.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if sources != 1 {
            problems.push(Problem::new(&iloc, format!("needs exactly one value source, found {sources}")));
        }
        if let Some(src) = &input.component_input_parameter {
            if !parent.input_definitions.parameters.contains_key(src) && !is_item_field(task, src) {
                problems.push(Problem::new(
                    &iloc,
                    format!("componentInputParameter `{src}` is not an input of the enclosing DAG"),
                ));
            }
        }
        if let Some(src) = &input.task_output_parameter {
            match sibling_comp(&src.producer_task) {
                None if !dag.tasks.contains_key(&src.producer_task) => {
                    problems.push(Problem::new(&iloc, format!("unknown producer task `{}`", src.producer_task)))
                }
                Some(p) if !p.output_definitions.parameters.contains_key(&src.output_parameter_key) => {
                    problems.push(Problem::new(
                        &iloc,
                        format!("task `{}` has no output parameter `{}`", src.producer_task, src.output_parameter_key),
                    ))
                }
                _ => {}
            }
        }
        if let Some(src) = &input.task_final_status {
            if !dag.tasks.contains_key(&src.producer_task) {
                problems.push(Problem::new(&iloc, format!("unknown producer task `{}`", src.producer_task)));
            }
        }
        let mut texts = Vec::new();
        if let Some(r) = &input.runtime_value {
            constant_texts(&r.constant, &mut texts);
        }
        for s in texts {
            match placeholder::parse_text(s) {
                Ok(segs) => {
                    for seg in segs {
                        if let placeholder::Segment::Ph(p) = seg {
                            let ok = match &p {
                                // kfp's f-strings name the task's own `pipelinechannel--` inputs.
                                Placeholder::InputParameter(n) => {
                                    task.inputs.parameters.contains_key(n)
                                        || parent.input_definitions.parameters.contains_key(n)
                                }
                                Placeholder::PipelineJobName
                                | Placeholder::PipelineJobResourceName
                                | Placeholder::PipelineJobUuid
                                | Placeholder::PipelineTaskName
                                | Placeholder::PipelineTaskUuid
                                | Placeholder::PipelineRoot
                                | Placeholder::PipelineJobCreateTime
                                | Placeholder::PipelineJobScheduleTime => true,
                                _ => false,
                            };
                            match (&p, ok) {
                                (_, true) => {}
                                (Placeholder::InputParameter(n), false) => problems.push(Problem::new(
                                    &iloc,
                                    format!("the constant refers to `{n}`, an input of neither the task nor its DAG"),
                                )),
                                (_, false) => problems
                                    .push(Problem::new(&iloc, format!("unsupported placeholder in constant: {p:?}"))),
                            }
                        }
                    }
                }
                Err(e) => problems.push(Problem::new(&iloc, e.to_string())),
            }
        }
        if let Some(sel) = &input.parameter_expression_selector {
            if let Err(e) = cel::parse(sel) {
                problems.push(Problem::new(format!("{iloc}.parameterExpressionSelector"), e.message));
            }
        }
    }
    for (name, input) in &task.inputs.artifacts {
        let iloc = format!("{loc}.inputs.artifacts.{name}");
        if let Some(t) = target {
            if !t.input_definitions.artifacts.contains_key(name) {
                problems.push(Problem::new(
                    &iloc,
                    format!("component `{}` has no such input artifact", task.component_ref.name),
                ));
            }
        }
        match (&input.task_output_artifact, &input.component_input_artifact) {
            (Some(src), None) => match sibling_comp(&src.producer_task) {
                None if !dag.tasks.contains_key(&src.producer_task) => {
                    problems.push(Problem::new(&iloc, format!("unknown producer task `{}`", src.producer_task)))
                }
                Some(p) if !p.output_definitions.artifacts.contains_key(&src.output_artifact_key) => {
                    problems.push(Problem::new(
                        &iloc,
                        format!("task `{}` has no output artifact `{}`", src.producer_task, src.output_artifact_key),
                    ))
                }
                _ => {}
            },
            (None, Some(src)) => {
                if !parent.input_definitions.artifacts.contains_key(src) {
                    problems.push(Problem::new(
                        &iloc,
                        format!("componentInputArtifact `{src}` is not an input of the enclosing DAG"),
                    ));
                }
            }
            _ => problems.push(Problem::new(&iloc, "needs exactly one of taskOutputArtifact / componentInputArtifact")),
        }
    }
    if let Some(t) = target {
        for (name, def) in &t.input_definitions.parameters {
            let provided = task.inputs.parameters.contains_key(name) || item_input == Some(name.as_str());
            if !provided && !def.is_optional && def.default_value.is_none() {
                problems.push(Problem::new(
                    format!("{loc}.inputs.parameters"),
                    format!("missing required input `{name}` of component `{}`", task.component_ref.name),
                ));
            }
            if def.parameter_type == ParameterType::TaskFinalStatus
                && task.inputs.parameters.get(name).is_some_and(|i| i.task_final_status.is_none())
            {
                problems.push(Problem::new(
                    format!("{loc}.inputs.parameters.{name}"),
                    "a TASK_FINAL_STATUS input needs `taskFinalStatus`",
                ));
            }
        }
        for (name, def) in &t.input_definitions.artifacts {
            let provided = task.inputs.artifacts.contains_key(name)
                || task.artifact_iterator.as_ref().is_some_and(|it| it.item_input == *name);
            if !provided && !def.is_optional {
                problems.push(Problem::new(
                    format!("{loc}.inputs.artifacts"),
                    format!("missing required input artifact `{name}` of component `{}`", task.component_ref.name),
                ));
            }
        }
        if let Some(it) = &task.parameter_iterator {
            if !t.input_definitions.parameters.contains_key(&it.item_input) {
                problems.push(Problem::new(
                    format!("{loc}.parameterIterator.itemInput"),
                    format!("`{}` is not an input of component `{}`", it.item_input, task.component_ref.name),
                ));
            }
        }
    }
    if let Some(exec) = target
        .and_then(|t| t.executor_label.as_ref())
        .and_then(|l| spec.deployment_spec.executors.get(l))
        .and_then(|e| e.container.as_ref())
    {
        let (resources, _) = Resources::parse(exec.resources.as_ref());
        for n in resources.input_names() {
            if !task.inputs.parameters.contains_key(n) {
                problems.push(Problem::new(
                    format!("{loc}.inputs.parameters"),
                    format!("the container's resources refer to `{n}`, which is not an input of the task"),
                ));
            }
        }
    }
    if let Some(it) = &task.parameter_iterator {
        let iloc = format!("{loc}.parameterIterator.items");
        match (&it.items.raw, &it.items.input_parameter) {
            (Some(raw), None) => {
                if !matches!(serde_json::from_str::<Value>(raw), Ok(Value::Array(_))) {
                    problems.push(Problem::new(&iloc, format!("`raw` is not a JSON list: {raw}")));
                }
            }
            (None, Some(p)) => {
                if !task.inputs.parameters.contains_key(p) {
                    problems.push(Problem::new(&iloc, format!("inputParameter `{p}` is not an input of the task")));
                }
            }
            _ => problems.push(Problem::new(&iloc, "needs exactly one of `raw` / `inputParameter`")),
        }
    }
    if let Some(it) = &task.artifact_iterator {
        check_artifact_iterator(task, it, target, loc, problems);
    }
    if let Some(cond) = task.trigger_policy.as_ref().and_then(|t| t.condition.as_deref()) {
        if let Err(e) = cel::parse(cond) {
            problems.push(Problem::new(format!("{loc}.triggerPolicy.condition"), e.message));
        }
    }
    if let Some(strategy) = task.trigger_policy.as_ref().and_then(|t| t.strategy.as_deref()) {
        if !matches!(
            strategy,
            "ALL_UPSTREAM_TASKS_SUCCEEDED" | "ALL_UPSTREAM_TASKS_COMPLETED" | "TRIGGER_STRATEGY_UNSPECIFIED"
        ) {
            problems
                .push(Problem::new(format!("{loc}.triggerPolicy.strategy"), format!("unknown strategy `{strategy}`")));
        }
    }
}

/// Every string of a constant that may hold placeholders: the string itself, list items, struct keys
/// and values (kfp formats f-strings inside lists and dicts too).
fn constant_texts<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) if s.contains("{{$") => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| constant_texts(i, out)),
        Value::Object(o) => {
            for (k, v) in o {
                if k.contains("{{$") {
                    out.push(k);
                }
                constant_texts(v, out);
            }
        }
        _ => {}
    }
}

/// `loop-item-param-N-subvar-a`: what kfp 2.14 writes on a ParallelFor task for a field of its own item used in
/// an f-string (`f"{item.a}"`). It names no input of the enclosing DAG; each iteration takes the field from its
/// item instead (`pipelinechannel--loop-item-param-N-subvar-a` in the body, see the engine's input resolution).
fn is_item_field(task: &TaskSpec, src: &str) -> bool {
    let Some(it) = &task.parameter_iterator else { return false };
    src.split_once("-subvar-")
        .is_some_and(|(item, field)| !field.is_empty() && it.item_input == format!("pipelinechannel--{item}"))
}

/// Task inputs the kfp compiler adds that the component does not declare, all given as constants or
/// channels: `pipelinechannel--…` (the values an f-string or a resource setting formats) and the resource
/// settings themselves (`cpu_limit: '{{$.inputs.parameters['pipelinechannel--cpu']}}'`).
fn is_compiler_input(name: &str, input: &crate::ir::ParameterInputSpec) -> bool {
    const RESOURCE_INPUTS: [&str; 6] =
        ["cpu_request", "cpu_limit", "memory_request", "memory_limit", "accelerator_type", "accelerator_count"];
    name.starts_with("pipelinechannel--") || (RESOURCE_INPUTS.contains(&name) && input.runtime_value.is_some())
}

/// A ParallelFor over a list of artifacts: the list is one of the task's input artifacts, the item an input
/// artifact of the body, and the task is not also a ParallelFor over parameters.
fn check_artifact_iterator(
    task: &TaskSpec,
    it: &ArtifactIterator,
    target: Option<&ComponentSpec>,
    loc: &str,
    problems: &mut Vec<Problem>,
) {
    let iloc = format!("{loc}.artifactIterator");
    if task.parameter_iterator.is_some() {
        problems.push(Problem::new(&iloc, "a task has at most one of parameterIterator / artifactIterator"));
    }
    match &it.items.input_artifact {
        Some(a) if task.inputs.artifacts.contains_key(a) => {}
        Some(a) => problems.push(Problem::new(
            format!("{iloc}.items"),
            format!("inputArtifact `{a}` is not an input artifact of the task"),
        )),
        None => problems.push(Problem::new(format!("{iloc}.items"), "needs `inputArtifact`")),
    }
    if let Some(t) = target {
        if !t.input_definitions.artifacts.contains_key(&it.item_input) {
            problems.push(Problem::new(
                format!("{iloc}.itemInput"),
                format!("`{}` is not an input artifact of component `{}`", it.item_input, task.component_ref.name),
            ));
        }
    }
}

/// All upstream sibling tasks of `task`: explicit `dependentTasks` plus data producers.
pub fn upstream_tasks(task: &TaskSpec) -> BTreeSet<&str> {
    let mut deps: BTreeSet<&str> = task.dependent_tasks.iter().map(String::as_str).collect();
    for input in task.inputs.parameters.values() {
        if let Some(p) = &input.task_output_parameter {
            deps.insert(&p.producer_task);
        }
        if let Some(p) = &input.task_final_status {
            deps.insert(&p.producer_task);
        }
    }
    for input in task.inputs.artifacts.values() {
        if let Some(p) = &input.task_output_artifact {
            deps.insert(&p.producer_task);
        }
    }
    deps
}

fn find_cycle(dag: &DagSpec) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = dag.tasks.keys().map(|k| (k.as_str(), Mark::New)).collect();
    fn visit<'a>(
        dag: &'a DagSpec,
        key: &'a str,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(key) {
            Some(Mark::Done) | None => return None,
            Some(Mark::Active) => {
                let start = stack.iter().position(|k| *k == key).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(key.to_owned());
                return Some(cycle);
            }
            Some(Mark::New) => {}
        }
        marks.insert(key, Mark::Active);
        stack.push(key);
        if let Some(task) = dag.tasks.get(key) {
            for dep in upstream_tasks(task) {
                if let Some(c) = visit(dag, dep, marks, stack) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        marks.insert(key, Mark::Done);
        None
    }
    let keys: Vec<&str> = dag.tasks.keys().map(String::as_str).collect();
    for k in keys {
        let mut stack = Vec::new();
        if let Some(c) = visit(dag, k, &mut marks, &mut stack) {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
components:
  comp-echo:
    executorLabel: exec-echo
    inputDefinitions:
      parameters:
        text: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-echo:
      container:
        image: alpine
        command: [echo, "{{$.inputs.parameters['text']}}"]
        resources:
          resourceCpuLimit: "{{$.inputs.parameters['pipelinechannel--cpu']}}"
          resourceMemoryLimit: MEMORY
pipelineInfo: {name: compat}
root:
  inputDefinitions:
    parameters:
      name: {parameterType: STRING}
      cpu: {parameterType: STRING}
  dag:
    tasks:
      echo:
        componentRef: {name: comp-echo}
        inputs:
          parameters:
            text: {runtimeValue: {constant: "hi {{$.inputs.parameters['pipelinechannel--name']}} TAIL"}}
            pipelinechannel--name: {componentInputParameter: name}
            cpu_limit: {runtimeValue: {constant: "{{$.inputs.parameters['pipelinechannel--cpu']}}"}}
            CPU_INPUT
schemaVersion: 2.1.0
"#;

    fn problems(spec: &str) -> Vec<String> {
        match Pipeline::from_yaml(spec) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn compiler_inputs_and_formatted_constants_are_accepted() {
        let spec = SPEC
            .replace("MEMORY", "512Mi")
            .replace("TAIL", "")
            .replace("CPU_INPUT", "pipelinechannel--cpu: {componentInputParameter: cpu}");
        assert_eq!(problems(&spec), Vec::<String>::new());
    }

    #[test]
    fn what_kfp_would_not_compile_is_still_refused() {
        let spec = SPEC
            .replace("MEMORY", "1GB")
            .replace("TAIL", "{{$.inputs.parameters['pipelinechannel--nope']}}")
            .replace("CPU_INPUT", "typo: {runtimeValue: {constant: 1}}");
        let p = problems(&spec);
        let has = |s: &str| p.iter().any(|m| m.contains(s));
        assert!(has("root.dag.tasks.echo.inputs.parameters.typo: component `comp-echo` has no such input"), "{p:?}");
        assert!(
            has("the constant refers to `pipelinechannel--nope`, an input of neither the task nor its DAG"),
            "{p:?}"
        );
        assert!(has("the container's resources refer to `pipelinechannel--cpu`, which is not an input"), "{p:?}");
        assert!(has("deploymentSpec.executors.exec-echo.container.resources.resourceMemoryLimit: `1GB` is not a memory quantity"), "{p:?}");
        assert_eq!(p.len(), 5, "{p:?}");
    }
}
