//! Input resolution and trigger conditions: a task's inputs from its parent's inputs, its siblings'
//! outputs and constants, coerced to the declared types; then whether its condition holds.
//!
//! Problems found here (a producer that made no such output, a value of the wrong type, a condition that
//! cannot be evaluated) fail the one task, not the run.

use serde_json::{json, Value};

use secondrow_spec::cel::{self, CelValue, Env};
use secondrow_spec::graph::TaskPlan;
use secondrow_spec::value;
use secondrow_store::TaskState;

use super::nodes::NodeId;
use super::RunDriver;
use crate::task::{self, IoValues};

/// What a task's trigger condition decided.
pub(super) enum Trigger {
    Run,
    /// The condition is false: the task is skipped (its dependents are not blocked).
    Skip,
    Fail(String),
}

impl RunDriver {
    /// Resolves a task's inputs from its parent's inputs, its siblings' outputs and constants.
    pub(super) fn resolve_inputs(&self, id: NodeId, plan: &TaskPlan) -> Result<IoValues, String> {
        let node = &self.tree[id];
        let parent = &self.tree[node.parent.ok_or("the root has no task spec")?];
        let spec = &plan.spec;
        let comp = &plan.component;
        let mut out = IoValues::default();
        for (name, src) in &spec.inputs.parameters {
            let mut v = if let Some(p) = &src.component_input_parameter {
                parent.inputs.parameters.get(p).cloned()
            } else if let Some(t) = &src.task_output_parameter {
                let sib = &self.tree[self.tree.sibling(id, &t.producer_task)?];
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
                Some(self.final_status(self.tree.sibling(id, &fs.producer_task)?))
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
                let sib = &self.tree[self.tree.sibling(id, &t.producer_task)?];
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
