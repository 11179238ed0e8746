//! A container's resource settings (`PipelineContainerSpec.resources`): CPU and memory requests and
//! limits, and the accelerator, as kfp 2.14 compiles them.
//!
//! kfp writes each setting twice: the `resource*` string field (`resourceCpuLimit: '500m'`), which may hold
//! a `{{$.inputs.parameters['pipelinechannel--…']}}` placeholder when the value comes from a pipeline
//! parameter or a task output, and the older numeric field (`cpuLimit: 0.5`) only for constants. Parsing
//! prefers the string field; the placeholders are resolved per task from its inputs ([`Resources::resolve`])
//! and the results checked as Kubernetes quantities, as kfp's driver does before it builds the Pod.

use serde_json::Value;

use crate::placeholder::{self, Placeholder, Segment};

/// One resource setting: its name in the IR and its text, parsed for placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceField {
    /// The IR field (`resourceCpuLimit`, `accelerator.resourceType`, …), for messages.
    pub field: &'static str,
    pub kind: ResourceKind,
    pub template: Vec<Segment>,
}

/// What a setting measures, which decides how its value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// A CPU quantity: `2`, `0.5`, `500m`.
    Cpu,
    /// A memory quantity: `512Mi`, `1G`, `1.5Gi`, `1000000`.
    Memory,
    /// An accelerator type (`nvidia.com/gpu`): any non-empty text.
    AcceleratorType,
    /// An accelerator count: a non-negative integer.
    AcceleratorCount,
}

/// A container's resource settings, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub fields: Vec<ResourceField>,
}

/// One setting with its placeholders resolved and its value checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedResource {
    pub field: &'static str,
    pub value: String,
}

const FIELDS: [(&str, &str, ResourceKind); 4] = [
    ("resourceCpuRequest", "cpuRequest", ResourceKind::Cpu),
    ("resourceCpuLimit", "cpuLimit", ResourceKind::Cpu),
    ("resourceMemoryRequest", "memoryRequest", ResourceKind::Memory),
    ("resourceMemoryLimit", "memoryLimit", ResourceKind::Memory),
];

impl Resources {
    /// Parses the IR's `resources` object; problems are `(field, message)` pairs.
    pub fn parse(raw: Option<&Value>) -> (Resources, Vec<(String, String)>) {
        let mut out = Resources::default();
        let mut problems = Vec::new();
        let Some(raw) = raw else { return (out, problems) };
        let mut add = |field: &'static str, kind: ResourceKind, text: String| match placeholder::parse_text(&text) {
            Ok(template) => out.fields.push(ResourceField { field, kind, template }),
            Err(e) => problems.push((field.to_owned(), e.to_string())),
        };
        for (field, legacy, kind) in FIELDS {
            match (raw.get(field), raw.get(legacy)) {
                (Some(Value::String(s)), _) => add(field, kind, s.clone()),
                (None, Some(v @ Value::Number(_))) => add(legacy, kind, legacy_text(v, kind)),
                _ => {}
            }
        }
        if let Some(acc) = raw.get("accelerator") {
            if let Some(Value::String(s)) = acc.get("resourceType").or_else(|| acc.get("type")) {
                add("accelerator.resourceType", ResourceKind::AcceleratorType, s.clone());
            }
            match acc.get("resourceCount").or_else(|| acc.get("count")) {
                Some(Value::String(s)) => add("accelerator.resourceCount", ResourceKind::AcceleratorCount, s.clone()),
                Some(v @ Value::Number(_)) => add("accelerator.count", ResourceKind::AcceleratorCount, v.to_string()),
                Some(_) | None => {}
            }
        }
        // A constant is checked once, here, rather than at each run.
        for f in &out.fields {
            if let [Segment::Lit(text)] = f.template.as_slice() {
                if let Err(e) = check(f.kind, text.trim()) {
                    problems.push((f.field.to_owned(), e));
                }
            }
        }
        (out, problems)
    }

    /// The input parameters the settings' placeholders name.
    pub fn input_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().flat_map(|f| {
            f.template.iter().filter_map(|s| match s {
                Segment::Ph(Placeholder::InputParameter(n)) => Some(n.as_str()),
                _ => None,
            })
        })
    }

    /// Resolves each setting from a task's input values (`text` formats one; `None` when absent) and checks
    /// it; the error names the field and the value.
    pub fn resolve(&self, text: &dyn Fn(&str) -> Option<String>) -> Result<Vec<ResolvedResource>, String> {
        let mut out = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let mut value = String::new();
            for seg in &f.template {
                match seg {
                    Segment::Lit(l) => value.push_str(l),
                    Segment::Ph(Placeholder::InputParameter(n)) => match text(n) {
                        Some(v) => value.push_str(&v),
                        None => return Err(format!("resources.{}: input `{n}` has no value", f.field)),
                    },
                    Segment::Ph(p) => return Err(format!("resources.{}: unsupported placeholder {p:?}", f.field)),
                }
            }
            let value = value.trim().to_owned();
            check(f.kind, &value).map_err(|e| format!("resources.{}: {e}", f.field))?;
            out.push(ResolvedResource { field: f.field, value });
        }
        Ok(out)
    }
}

/// The older numeric fields: CPUs as a number, memory in gigabytes (kfp's `_memory_to_float`).
fn legacy_text(v: &Value, kind: ResourceKind) -> String {
    let n = v.as_f64().unwrap_or_default();
    match kind {
        ResourceKind::Memory => format!("{}", (n * 1e9).round() as i64),
        _ => crate::value::channel_text(v),
    }
}

/// Checks a value the way Kubernetes parses a quantity (kfp's driver hands it to `resource.ParseQuantity`).
pub fn check(kind: ResourceKind, value: &str) -> Result<(), String> {
    match kind {
        ResourceKind::Cpu => quantity(value)
            .map_err(|why| format!("`{value}` is not a CPU quantity such as `2`, `0.5` or `500m` ({why})")),
        ResourceKind::Memory => quantity(value)
            .map_err(|why| format!("`{value}` is not a memory quantity such as `512Mi`, `1G` or `1.5Gi` ({why})")),
        ResourceKind::AcceleratorType if value.is_empty() => Err("the accelerator type is empty".into()),
        ResourceKind::AcceleratorType => Ok(()),
        ResourceKind::AcceleratorCount => match value.parse::<u64>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("`{value}` is not an accelerator count (a whole number such as `1`)")),
        },
    }
}

/// A Kubernetes quantity: a non-negative decimal number with an optional suffix (binary `Ki`…`Ei`, decimal
/// `n u m k M G T P E`, or an exponent `e3`/`E3`).
fn quantity(s: &str) -> Result<(), &'static str> {
    let digits_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let number = number.strip_prefix('+').unwrap_or(number);
    if number.is_empty() || number.parse::<f64>().is_err() || number.matches('.').count() > 1 {
        return Err("no number");
    }
    let ok = matches!(
        suffix,
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E"
    ) || (suffix.len() > 1
        && (suffix.starts_with('e') || suffix.starts_with('E'))
        && suffix[1..].trim_start_matches(['+', '-']).chars().all(|c| c.is_ascii_digit())
        && !suffix[1..].trim_start_matches(['+', '-']).is_empty());
    if ok {
        Ok(())
    } else {
        Err("unknown suffix")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn quantities_are_checked_like_kubernetes() {
        for ok in ["2", "0.5", "500m", "1.5", "+1"] {
            assert_eq!(check(ResourceKind::Cpu, ok), Ok(()), "{ok}");
        }
        for ok in ["512Mi", "1G", "1.5Gi", "1000000", "1e9", "128974848"] {
            assert_eq!(check(ResourceKind::Memory, ok), Ok(()), "{ok}");
        }
        for bad in ["", "lots", "-1", "2 cores", "1GB", "1.2.3", "m"] {
            assert!(check(ResourceKind::Cpu, bad).is_err(), "{bad}");
        }
        let e = check(ResourceKind::Memory, "1GB").unwrap_err();
        assert_eq!(e, "`1GB` is not a memory quantity such as `512Mi`, `1G` or `1.5Gi` (unknown suffix)");
        assert!(check(ResourceKind::AcceleratorCount, "two").is_err());
        assert!(check(ResourceKind::AcceleratorType, "").is_err());
    }

    #[test]
    fn placeholders_resolve_from_task_inputs_and_constants_are_checked_once() {
        let raw = json!({
            "resourceCpuLimit": "{{$.inputs.parameters['pipelinechannel--cpu']}}",
            "cpuLimit": 9.0,
            "resourceMemoryLimit": "1G",
            "memoryRequest": 0.268435456,
            "accelerator": {"resourceType": "{{$.inputs.parameters['pipelinechannel--t']}}", "resourceCount": "2"}
        });
        let (r, problems) = Resources::parse(Some(&raw));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(r.input_names().collect::<Vec<_>>(), ["pipelinechannel--cpu", "pipelinechannel--t"]);
        let values = |n: &str| match n {
            "pipelinechannel--cpu" => Some("500m".to_owned()),
            "pipelinechannel--t" => Some("nvidia.com/gpu".to_owned()),
            _ => None,
        };
        let resolved = r.resolve(&values).unwrap();
        let pairs: Vec<_> = resolved.iter().map(|r| (r.field, r.value.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("resourceCpuLimit", "500m"),
                ("memoryRequest", "268435456"),
                ("resourceMemoryLimit", "1G"),
                ("accelerator.resourceType", "nvidia.com/gpu"),
                ("accelerator.resourceCount", "2"),
            ]
        );
        let bad = |_: &str| Some("lots".to_owned());
        assert_eq!(
            r.resolve(&bad).unwrap_err(),
            "resources.resourceCpuLimit: `lots` is not a CPU quantity such as `2`, `0.5` or `500m` (no number)"
        );
        let (_, problems) = Resources::parse(Some(&json!({"resourceMemoryLimit": "1GB"})));
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}
