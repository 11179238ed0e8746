//! Input resolution and trigger conditions: a task's inputs from its parent's inputs, its siblings'
//! outputs and constants, coerced to the declared types; then whether its condition holds.
//!
//! Problems found here (a producer that made no such output, a value of the wrong type, a condition that
//! cannot be evaluated) fail the one task, not the run.

use serde_json::{json, Map, Value};

use secondrow_spec::cel::{self, CelValue, Env};
use secondrow_spec::graph::{PlanKind, TaskPlan};
use secondrow_spec::ir::ParameterInputSpec;
use secondrow_spec::placeholder::{self, Placeholder, PlaceholderContext, PlaceholderError};
use secondrow_spec::value;
use secondrow_store::TaskState;

use super::nodes::NodeId;
use super::RunDriver;
use crate::task::{IoValues, JobContext, TASK_UUID_PLACEHOLDER};

/// What a task's trigger condition decided.
pub(super) enum Trigger {
    Run,
    /// The condition is false: the task is skipped (its dependents are not blocked).
    Skip,
    Fail(String),
}

impl RunDriver {
    /// Resolves a task's inputs from its parent's inputs, its siblings' outputs and constants.
    ///
    /// Constants holding placeholders (kfp's f-strings: `"a {{$.inputs.parameters['pipelinechannel--x']}}"`)
    /// are formatted last, from the task's other inputs, as kfp's launcher does. A task that runs whatever
    /// its upstream did (`ignore_upstream_failure`) takes the component's default for an input whose
    /// producer failed.
    pub(super) fn resolve_inputs(&self, id: NodeId, plan: &TaskPlan) -> Result<IoValues, String> {
        let node = &self.tree[id];
        let parent = &self.tree[node.parent.ok_or("the root has no task spec")?];
        let spec = &plan.spec;
        let comp = &plan.component;
        let mut out = IoValues::default();
        let mut formatted = Vec::new();
        for (name, src) in &spec.inputs.parameters {
            let v = if let Some(p) = &src.component_input_parameter {
                parent.inputs.parameters.get(p).cloned().or_else(|| item_field(&parent.inputs.parameters, p))
            } else if let Some(t) = &src.task_output_parameter {
                let sib = &self.tree[self.tree.sibling(id, &t.producer_task)?];
                match sib.outputs.parameters.get(&t.output_parameter_key) {
                    Some(v) => Some(v.clone()),
                    None if Self::tolerates(plan, sib.state) => None,
                    None => {
                        return Err(format!(
                            "input `{name}`: task `{}` produced no output `{}`",
                            t.producer_task, t.output_parameter_key
                        ))
                    }
                }
            } else if let Some(rv) = &src.runtime_value {
                if has_placeholder(&rv.constant) {
                    formatted.push((name, &rv.constant, src));
                    continue;
                }
                Some(rv.constant.clone())
            } else if let Some(fs) = &src.task_final_status {
                Some(self.final_status(self.tree.sibling(id, &fs.producer_task)?))
            } else {
                None
            };
            Self::settle(plan, name, src, v, &mut out)?;
        }
        for (name, constant, src) in formatted {
            let ctx = Formatting { own: &out.parameters, parent: &parent.inputs, job: &self.job, task_key: &node.key };
            let v = format_value(constant, &ctx).map_err(|e| format!("input `{name}`: {e}"))?;
            Self::settle(plan, name, src, Some(v), &mut out)?;
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
                let sib = &self.tree[self.tree.sibling(id, &t.producer_task)?];
                match sib.outputs.artifacts.get(&t.output_artifact_key) {
                    Some(l) => Some(l.clone()),
                    None if Self::tolerates(plan, sib.state) => None,
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
        if let PlanKind::Container(c) = &plan.kind {
            c.resources.resolve(&|n| out.parameters.get(n).map(value::channel_text))?;
        }
        Ok(out)
    }

    /// Whether a missing output of a producer in `state` leaves the input unset (the default applies)
    /// instead of failing the task: a skipped producer, or any unsuccessful one for a task that runs after
    /// its upstream completed whatever its state.
    fn tolerates(plan: &TaskPlan, state: TaskState) -> bool {
        state == TaskState::Skipped
            || (plan.accepts_completed && matches!(state, TaskState::Failed | TaskState::Canceled))
    }

    /// Applies an input's selector and its declared type, then records it.
    fn settle(
        plan: &TaskPlan,
        name: &str,
        src: &ParameterInputSpec,
        mut v: Option<Value>,
        out: &mut IoValues,
    ) -> Result<(), String> {
        if let (Some(sel), Some(val)) = (&src.parameter_expression_selector, &v) {
            let mut env = Env::new();
            env.insert("string_value".into(), CelValue::String(value::placeholder_text(val)));
            let parsed = cel::parse(sel).map_err(|e| format!("input `{name}` selector: {e}"))?;
            v = Some(cel::eval(&parsed, &env).map_err(|e| format!("input `{name}` selector `{sel}`: {e}"))?.to_json());
        }
        if let Some(val) = v {
            let val = match plan.component.input_definitions.parameters.get(name) {
                Some(def) => value::coerce(&val, def.parameter_type).map_err(|e| format!("input `{name}`: {e}"))?,
                None => val,
            };
            out.parameters.insert(name.to_owned(), val);
        }
        Ok(())
    }

    /// Evaluates `triggerPolicy.condition` against the resolved inputs.
    pub(super) fn trigger(plan: &TaskPlan, inputs: &IoValues) -> Trigger {
        let Some(cond) = plan.spec.trigger_policy.as_ref().and_then(|t| t.condition.as_deref()) else {
            return Trigger::Run;
        };
        let mut env = Env::new();
        env.insert(
            "inputs".into(),
            CelValue::from_json(&json!({ "parameter_values": Value::Object(inputs.parameters.clone()) })),
        );
        match cel::eval_condition(cond, &env) {
            Ok(true) => Trigger::Run,
            Ok(false) => Trigger::Skip,
            Err(e) => Trigger::Fail(format!("condition `{cond}`: {e}")),
        }
    }

    /// The `TASK_FINAL_STATUS` value of a finished task (docs/kfp-contract.md §3.5).
    pub(super) fn final_status(&self, id: NodeId) -> Value {
        let n = &self.tree[id];
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
}

/// What a formatted constant's placeholders stand for: the task's own inputs first (kfp names its
/// `pipelinechannel--` inputs), then the parent's (specs written by hand), and the run's values.
struct Formatting<'a> {
    own: &'a Map<String, Value>,
    parent: &'a IoValues,
    job: &'a JobContext,
    task_key: &'a str,
}

impl PlaceholderContext for Formatting<'_> {
    fn value(&self, p: &Placeholder) -> Result<Option<String>, PlaceholderError> {
        Ok(Some(match p {
            Placeholder::InputParameter(n) => {
                return Ok(self.own.get(n).or_else(|| self.parent.parameters.get(n)).map(value::channel_text))
            }
            Placeholder::PipelineJobName => self.job.job_name.clone(),
            Placeholder::PipelineJobResourceName => self.job.job_resource_name.clone(),
            Placeholder::PipelineJobUuid => self.job.job_uuid.clone(),
            Placeholder::PipelineTaskName => self.task_key.to_owned(),
            // The task's id exists once it is recorded; the attempt fills it in (`task::fill_task_uuid`).
            Placeholder::PipelineTaskUuid => TASK_UUID_PLACEHOLDER.to_owned(),
            Placeholder::PipelineRoot => self.job.pipeline_root.clone(),
            Placeholder::PipelineJobCreateTime => self.job.create_time.clone(),
            Placeholder::PipelineJobScheduleTime => self.job.schedule_time.clone(),
            other => return Err(PlaceholderError::Value(format!("{other:?} cannot appear in a constant"))),
        }))
    }

    fn is_present(&self, input: &str) -> bool {
        self.own.contains_key(input) || self.parent.parameters.contains_key(input)
    }
}

/// Whether a constant holds a placeholder anywhere (in a string, a list item, a struct key or value).
fn has_placeholder(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("{{$"),
        Value::Array(items) => items.iter().any(has_placeholder),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains("{{$") || has_placeholder(v)),
        _ => false,
    }
}

/// Formats every string of a constant, recursively through lists and structs (keys too), as kfp's
/// launcher does: `[f"Hello {name}"]` and `{f"Hi {name}": f"{x}"}` are legal arguments.
fn format_value(v: &Value, ctx: &Formatting<'_>) -> Result<Value, PlaceholderError> {
    let text = |s: &str| placeholder::parse_text(s).and_then(|segs| placeholder::expand_text(&segs, ctx));
    Ok(match v {
        Value::String(s) if s.contains("{{$") => Value::String(text(s)?),
        Value::Array(items) => Value::Array(items.iter().map(|i| format_value(i, ctx)).collect::<Result<_, _>>()?),
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, v) in o {
                let k = if k.contains("{{$") { text(k)? } else { k.clone() };
                out.insert(k, format_value(v, ctx)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// A loop item's field under kfp's name for it, `<item input>-subvar-<field>`, taken from the item (a struct,
/// or JSON text of one) when the iteration has no input of that name.
fn item_field(inputs: &Map<String, Value>, name: &str) -> Option<Value> {
    let (item, field) = name.split_once("-subvar-")?;
    match inputs.get(item)? {
        Value::Object(o) => o.get(field).cloned(),
        Value::String(s) => serde_json::from_str::<Value>(s).ok()?.get(field).cloned(),
        _ => None,
    }
}
