//! Placeholders in container arguments and constant strings: `{{$}}`, `{{$.inputs.parameters['x']}}`,
//! `{"Concat": [...]}`, `{"IfPresent": {...}}` and the pipeline-level `{{$.pipeline_job_uuid}}` family.
//!
//! Parsing happens once at validation time, so an unknown placeholder is rejected before anything runs.
//! Expansion asks a [`PlaceholderContext`] (implemented by the engine, which knows the task's resolved
//! inputs and output paths) for each value; this module never reads files or the environment.

use serde_json::Value;

/// Why a container argument or constant string could not be parsed or expanded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlaceholderError {
    /// A `{"Concat": …}`/`{"IfPresent": …}` argument is not valid JSON.
    #[error("invalid structured placeholder: {0}")]
    InvalidStructured(String),
    #[error("`Concat` must hold a list")]
    ConcatNotList,
    #[error("`IfPresent` needs a string `InputName`")]
    IfPresentInputName,
    #[error("unknown structured placeholder `{0}`")]
    UnknownStructured(String),
    /// A `{{$` without its closing `}}` (the whole string).
    #[error("unterminated placeholder in `{0}`")]
    Unterminated(String),
    /// The body after `{{$` names no known placeholder.
    #[error("unknown placeholder `{{{{${0}}}}}`")]
    Unknown(String),
    /// The [`PlaceholderContext`] could not supply a value.
    #[error("{0}")]
    Value(String),
}

impl PlaceholderError {
    /// `InvalidInput` for a bad placeholder in the spec; `Internal` when the context failed.
    pub fn kind(&self) -> secondrow_error::ErrorKind {
        match self {
            PlaceholderError::Value(_) => secondrow_error::ErrorKind::Internal,
            _ => secondrow_error::ErrorKind::InvalidInput,
        }
    }
}

/// One argument of a container's `command` or `args`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgTemplate {
    /// A string with zero or more embedded placeholders; always expands to exactly one argument.
    Text(Vec<Segment>),
    /// Parts joined into one argument.
    Concat(Vec<ArgTemplate>),
    /// `Then` when the input has a value, `Else` otherwise; expands to zero or more arguments.
    IfPresent { input: String, then: Vec<ArgTemplate>, otherwise: Vec<ArgTemplate> },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Lit(String),
    Ph(Placeholder),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Placeholder {
    /// `{{$}}`: the executor input as compact JSON.
    ExecutorInput,
    InputParameter(String),
    InputArtifact {
        name: String,
        field: ArtifactField,
    },
    /// `{{$.outputs.parameters['y'].output_file}}`.
    OutputParameterFile(String),
    OutputArtifact {
        name: String,
        field: ArtifactField,
    },
    /// `{{$.outputs.output_file}}` and `{{$.outputMetadataUri}}`.
    OutputsFile,
    PipelineJobName,
    PipelineJobResourceName,
    PipelineJobUuid,
    PipelineTaskName,
    PipelineTaskUuid,
    PipelineRoot,
    PipelineJobCreateTime,
    PipelineJobScheduleTime,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactField {
    Whole,
    Path,
    Uri,
    Metadata,
    MetadataKey(String),
}

/// Supplies values while expanding; `Ok(None)` means "this input has no value".
pub trait PlaceholderContext {
    fn value(&self, placeholder: &Placeholder) -> Result<Option<String>, PlaceholderError>;
    fn is_present(&self, input: &str) -> bool;
}

/// Parses one container argument (plain, with placeholders, or a structured placeholder).
pub fn parse_arg(arg: &str) -> Result<ArgTemplate, PlaceholderError> {
    let trimmed = arg.trim_start();
    if trimmed.starts_with("{\"Concat\"") || trimmed.starts_with("{\"IfPresent\"") {
        let json: Value = serde_json::from_str(arg).map_err(|e| PlaceholderError::InvalidStructured(e.to_string()))?;
        return parse_structured(&json);
    }
    Ok(ArgTemplate::Text(parse_text(arg)?))
}

fn parse_structured(v: &Value) -> Result<ArgTemplate, PlaceholderError> {
    match v {
        Value::String(s) => parse_arg(s),
        Value::Object(o) if o.len() == 1 && o.contains_key("Concat") => {
            let Some(parts) = o["Concat"].as_array() else {
                return Err(PlaceholderError::ConcatNotList);
            };
            Ok(ArgTemplate::Concat(parts.iter().map(parse_structured).collect::<Result<_, _>>()?))
        }
        Value::Object(o) if o.len() == 1 && o.contains_key("IfPresent") => {
            let body = &o["IfPresent"];
            let Some(input) = body.get("InputName").and_then(Value::as_str) else {
                return Err(PlaceholderError::IfPresentInputName);
            };
            let branch = |key: &str| -> Result<Vec<ArgTemplate>, PlaceholderError> {
                match body.get(key) {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(Value::Array(items)) => items.iter().map(parse_structured).collect(),
                    Some(other) => Ok(vec![parse_structured(other)?]),
                }
            };
            Ok(ArgTemplate::IfPresent { input: input.to_owned(), then: branch("Then")?, otherwise: branch("Else")? })
        }
        other => Err(PlaceholderError::UnknownStructured(other.to_string())),
    }
}

/// Parses a string with embedded `{{$...}}` placeholders.
pub fn parse_text(s: &str) -> Result<Vec<Segment>, PlaceholderError> {
    let mut segments = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{$") {
        let Some(len) = rest[start..].find("}}") else {
            return Err(PlaceholderError::Unterminated(s.to_owned()));
        };
        if start > 0 {
            segments.push(Segment::Lit(rest[..start].to_owned()));
        }
        let body = &rest[start + 3..start + len];
        segments.push(Segment::Ph(parse_placeholder(body)?));
        rest = &rest[start + len + 2..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Lit(rest.to_owned()));
    }
    Ok(segments)
}

fn parse_placeholder(body: &str) -> Result<Placeholder, PlaceholderError> {
    let bad = || PlaceholderError::Unknown(body.to_owned());
    if body.is_empty() {
        return Ok(Placeholder::ExecutorInput);
    }
    let simple = match body {
        ".outputs.output_file" | ".outputMetadataUri" => Some(Placeholder::OutputsFile),
        ".pipeline_job_name" => Some(Placeholder::PipelineJobName),
        ".pipeline_job_resource_name" => Some(Placeholder::PipelineJobResourceName),
        ".pipeline_job_uuid" => Some(Placeholder::PipelineJobUuid),
        ".pipeline_task_name" => Some(Placeholder::PipelineTaskName),
        ".pipeline_task_uuid" => Some(Placeholder::PipelineTaskUuid),
        ".pipeline_root" => Some(Placeholder::PipelineRoot),
        ".pipeline_job_create_time_utc" => Some(Placeholder::PipelineJobCreateTime),
        ".pipeline_job_schedule_time_utc" => Some(Placeholder::PipelineJobScheduleTime),
        _ => None,
    };
    if let Some(p) = simple {
        return Ok(p);
    }
    let (kind, rest) = if let Some(r) = body.strip_prefix(".inputs.parameters[") {
        ("in-param", r)
    } else if let Some(r) = body.strip_prefix(".inputs.artifacts[") {
        ("in-art", r)
    } else if let Some(r) = body.strip_prefix(".outputs.parameters[") {
        ("out-param", r)
    } else if let Some(r) = body.strip_prefix(".outputs.artifacts[") {
        ("out-art", r)
    } else {
        return Err(bad());
    };
    let (name, tail) = quoted_key(rest).ok_or_else(bad)?;
    let tail = tail.strip_prefix(']').ok_or_else(bad)?;
    match kind {
        "in-param" if tail.is_empty() => Ok(Placeholder::InputParameter(name)),
        "out-param" if tail == ".output_file" => Ok(Placeholder::OutputParameterFile(name)),
        "in-art" => Ok(Placeholder::InputArtifact { name, field: artifact_field(tail).ok_or_else(bad)? }),
        "out-art" => Ok(Placeholder::OutputArtifact { name, field: artifact_field(tail).ok_or_else(bad)? }),
        _ => Err(bad()),
    }
}

/// Reads `'name'` or `"name"` at the start of `s`; returns the name and what follows.
fn quoted_key(s: &str) -> Option<(String, &str)> {
    let q = s.chars().next()?;
    if q != '\'' && q != '"' {
        return None;
    }
    let end = s[1..].find(q)? + 1;
    Some((s[1..end].to_owned(), &s[end + 1..]))
}

fn artifact_field(tail: &str) -> Option<ArtifactField> {
    match tail {
        "" => Some(ArtifactField::Whole),
        ".path" => Some(ArtifactField::Path),
        ".uri" => Some(ArtifactField::Uri),
        ".metadata" => Some(ArtifactField::Metadata),
        _ => {
            let rest = tail.strip_prefix(".metadata[")?;
            let (key, after) = quoted_key(rest)?;
            (after == "]").then_some(ArtifactField::MetadataKey(key))
        }
    }
}

/// Every placeholder an argument refers to, for validation.
pub fn placeholders(arg: &ArgTemplate) -> Vec<&Placeholder> {
    let mut out = Vec::new();
    collect(arg, &mut out);
    out
}

fn collect<'a>(arg: &'a ArgTemplate, out: &mut Vec<&'a Placeholder>) {
    match arg {
        ArgTemplate::Text(segs) => out.extend(segs.iter().filter_map(|s| match s {
            Segment::Ph(p) => Some(p),
            Segment::Lit(_) => None,
        })),
        ArgTemplate::Concat(parts) => parts.iter().for_each(|p| collect(p, out)),
        ArgTemplate::IfPresent { then, otherwise, .. } => {
            then.iter().chain(otherwise).for_each(|p| collect(p, out));
        }
    }
}

/// Input names that `IfPresent` placeholders test.
pub fn if_present_inputs(arg: &ArgTemplate) -> Vec<&str> {
    match arg {
        ArgTemplate::Text(_) => Vec::new(),
        ArgTemplate::Concat(parts) => parts.iter().flat_map(if_present_inputs).collect(),
        ArgTemplate::IfPresent { input, then, otherwise } => {
            let mut v = vec![input.as_str()];
            v.extend(then.iter().chain(otherwise).flat_map(if_present_inputs));
            v
        }
    }
}

/// Expands arguments into the final argv entries.
pub fn expand(args: &[ArgTemplate], ctx: &dyn PlaceholderContext) -> Result<Vec<String>, PlaceholderError> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        expand_into(a, ctx, &mut out)?;
    }
    Ok(out)
}

fn expand_into(arg: &ArgTemplate, ctx: &dyn PlaceholderContext, out: &mut Vec<String>) -> Result<(), PlaceholderError> {
    match arg {
        ArgTemplate::Text(segs) => out.push(expand_text(segs, ctx)?),
        ArgTemplate::Concat(parts) => {
            let mut pieces = Vec::new();
            for p in parts {
                expand_into(p, ctx, &mut pieces)?;
            }
            out.push(pieces.concat());
        }
        ArgTemplate::IfPresent { input, then, otherwise } => {
            let branch = if ctx.is_present(input) { then } else { otherwise };
            for p in branch {
                expand_into(p, ctx, out)?;
            }
        }
    }
    Ok(())
}

/// Expands a string's placeholders; an absent optional input becomes the empty string.
pub fn expand_text(segs: &[Segment], ctx: &dyn PlaceholderContext) -> Result<String, PlaceholderError> {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Segment::Lit(l) => s.push_str(l),
            Segment::Ph(p) => s.push_str(&ctx.value(p)?.unwrap_or_default()),
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests;
