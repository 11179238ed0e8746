//! One run of a component: its arguments parsed and checked against the [`ComponentSpec`] (from
//! `--key value` pairs and/or a kfp executor input), and its outputs staged in temporary files that are
//! renamed into place only when the whole step has succeeded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::spec::{ComponentSpec, Kind};
use crate::error::{Error, Result};
use crate::params::Params;
use crate::table::{Table, TableFormat};

/// An output artifact: where to write it, and what kfp knows it as.
#[derive(Debug, Clone)]
pub struct OutputTarget {
    pub path: PathBuf,
    pub uri: String,
    pub name: String,
}

/// Parsed, validated arguments of one component run.
#[derive(Debug)]
pub struct Invocation {
    pub spec: ComponentSpec,
    /// Parameters with defaults filled in.
    pub params: Params,
    /// Input artifacts given.
    pub inputs: BTreeMap<String, PathBuf>,
    /// Output artifacts requested.
    pub outputs: BTreeMap<String, OutputTarget>,
    /// `executor_output.json` path when run by a kfp backend.
    pub executor_output: Option<PathBuf>,
}

/// Maps an artifact URI to a local path the way kfp's SDK does (`gs://b/k` → `/gcs/b/k`, …).
pub fn uri_to_path(uri: &str) -> PathBuf {
    for (scheme, mount) in [("gs://", "/gcs/"), ("s3://", "/s3/"), ("minio://", "/minio/")] {
        if let Some(rest) = uri.strip_prefix(scheme) {
            return PathBuf::from(format!("{mount}{rest}"));
        }
    }
    PathBuf::from(uri)
}

impl Invocation {
    /// Parses `--key value` / `--key=value` pairs (dashes and underscores are interchangeable in keys);
    /// `--executor-input JSON` supplies everything a kfp backend passes.
    pub fn parse(spec: ComponentSpec, args: &[String]) -> Result<Invocation> {
        let mut raw: BTreeMap<String, Value> = BTreeMap::new();
        let mut inputs = BTreeMap::new();
        let mut outputs = BTreeMap::new();
        let mut executor_output = None;
        let mut i = 0;
        let mut seen = std::collections::BTreeSet::new();
        while i < args.len() {
            let arg = &args[i];
            let Some(stripped) = arg.strip_prefix("--") else {
                return Err(Error::arg(
                    arg,
                    format!("component `{}`: expected `--name value`, got `{arg}`", spec.name),
                ));
            };
            let (key, value) = match stripped.split_once('=') {
                Some((k, v)) => (k.replace('-', "_"), v.to_string()),
                None => {
                    let key = stripped.replace('-', "_");
                    let value = args.get(i + 1).cloned().ok_or_else(|| Error::arg(&key, "expects a value"))?;
                    i += 1;
                    (key, value)
                }
            };
            i += 1;
            if !seen.insert(key.clone()) {
                return Err(Error::arg(&key, "given more than once"));
            }
            if key == "executor_input" {
                let executor: Value = serde_json::from_str(&value)
                    .map_err(|e| Error::arg("executor_input", format!("not valid JSON: {e}")))?;
                executor_output = read_executor_input(&spec, &executor, &mut raw, &mut inputs, &mut outputs)?;
                continue;
            }
            if let Some(port) = spec.inputs.iter().find(|p| p.name == key) {
                if port.kind.is_artifact() {
                    inputs.insert(key, PathBuf::from(value));
                } else {
                    raw.insert(key, Value::String(value));
                }
            } else if spec.outputs.iter().any(|p| p.name == key) {
                outputs.insert(key.clone(), OutputTarget { path: PathBuf::from(&value), uri: value, name: key });
            } else {
                return Err(Error::UnknownArgument {
                    component: spec.name.to_string(),
                    argument: key.replace('_', "-"),
                });
            }
        }
        let mut params = Params::new();
        for port in spec.inputs.iter().filter(|p| !p.kind.is_artifact()) {
            match raw.remove(port.name) {
                Some(value) => {
                    params.values.insert(port.name.to_string(), typed(port.name, port.kind, value)?);
                }
                None => match &port.default {
                    Some(d) => {
                        params.values.insert(port.name.to_string(), d.clone());
                    }
                    None if !port.optional => {
                        return Err(Error::MissingArgument {
                            component: spec.name.to_string(),
                            argument: port.name.replace('_', "-"),
                        })
                    }
                    None => {}
                },
            }
        }
        for port in spec.inputs.iter().filter(|p| p.kind.is_artifact() && !p.optional) {
            if !inputs.contains_key(port.name) {
                return Err(Error::MissingArgument {
                    component: spec.name.to_string(),
                    argument: port.name.replace('_', "-"),
                });
            }
        }
        Ok(Invocation { spec, params, inputs, outputs, executor_output })
    }

    /// Path of input artifact `name`, which the spec requires.
    pub fn input(&self, name: &str) -> Result<&Path> {
        self.inputs.get(name).map(PathBuf::as_path).ok_or_else(|| Error::MissingArgument {
            component: self.spec.name.to_string(),
            argument: name.replace('_', "-"),
        })
    }

    pub fn optional_input(&self, name: &str) -> Option<&Path> {
        self.inputs.get(name).map(PathBuf::as_path)
    }

    /// Reads input table `name`, returning its format too.
    pub fn table(&self, name: &str) -> Result<(Table, TableFormat)> {
        Table::read_with_format(self.input(name)?)
    }
}

fn typed(name: &str, kind: Kind, value: Value) -> Result<Value> {
    let text = match &value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(match kind {
        Kind::Integer => match value {
            Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => json!(n.as_f64().unwrap_or(0.0) as i64),
            _ => json!(text
                .trim()
                .parse::<i64>()
                .map_err(|_| Error::arg(name, format!("`{text}` is not an integer")))?),
        },
        Kind::Float => match value {
            Value::Number(n) => Value::Number(n),
            _ => {
                json!(text.trim().parse::<f64>().map_err(|_| Error::arg(name, format!("`{text}` is not a number")))?)
            }
        },
        Kind::Boolean => match value {
            Value::Bool(b) => json!(b),
            _ => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => json!(true),
                "false" | "0" | "no" => json!(false),
                _ => return Err(Error::arg(name, format!("`{text}` is not a boolean (true or false)"))),
            },
        },
        _ => Value::String(text),
    })
}

fn read_executor_input(
    spec: &ComponentSpec,
    executor: &Value,
    raw: &mut BTreeMap<String, Value>,
    inputs: &mut BTreeMap<String, PathBuf>,
    outputs: &mut BTreeMap<String, OutputTarget>,
) -> Result<Option<PathBuf>> {
    let unknown =
        |name: &str| Error::UnknownArgument { component: spec.name.to_string(), argument: name.replace('_', "-") };
    if let Some(values) = executor.pointer("/inputs/parameterValues").and_then(Value::as_object) {
        for (name, value) in values {
            if !spec.inputs.iter().any(|p| p.name == name && !p.kind.is_artifact()) {
                return Err(unknown(name));
            }
            raw.insert(name.clone(), value.clone());
        }
    }
    let first_uri = |entry: &Value| -> Option<(String, String)> {
        let artifact = entry.get("artifacts")?.as_array()?.first()?;
        let uri = artifact.get("uri")?.as_str()?.to_string();
        let name = artifact.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        Some((uri, name))
    };
    if let Some(artifacts) = executor.pointer("/inputs/artifacts").and_then(Value::as_object) {
        for (name, entry) in artifacts {
            if !spec.inputs.iter().any(|p| p.name == name && p.kind.is_artifact()) {
                return Err(unknown(name));
            }
            let (uri, _) = first_uri(entry)
                .ok_or_else(|| Error::arg("executor_input", format!("input artifact `{name}` has no uri")))?;
            inputs.insert(name.clone(), uri_to_path(&uri));
        }
    }
    if let Some(artifacts) = executor.pointer("/outputs/artifacts").and_then(Value::as_object) {
        for (name, entry) in artifacts {
            if !spec.outputs.iter().any(|p| p.name == name) {
                return Err(unknown(name));
            }
            let (uri, artifact_name) = first_uri(entry)
                .ok_or_else(|| Error::arg("executor_input", format!("output artifact `{name}` has no uri")))?;
            let artifact_name = if artifact_name.is_empty() { name.clone() } else { artifact_name };
            outputs.insert(name.clone(), OutputTarget { path: uri_to_path(&uri), uri, name: artifact_name });
        }
    }
    Ok(executor.pointer("/outputs/outputFile").and_then(Value::as_str).map(PathBuf::from))
}

/// Output files written to temporary names and renamed into place by [`Outputs::commit`]; dropped
/// uncommitted, they are removed, so a failed step leaves no partial artifacts.
pub struct Outputs {
    targets: BTreeMap<String, OutputTarget>,
    executor_output: Option<PathBuf>,
    staged: Vec<(PathBuf, PathBuf)>,
    metadata: BTreeMap<String, Value>,
    committed: bool,
}

impl Outputs {
    pub fn new(invocation: &Invocation) -> Outputs {
        Outputs {
            targets: invocation.outputs.clone(),
            executor_output: invocation.executor_output.clone(),
            staged: Vec::new(),
            metadata: BTreeMap::new(),
            committed: false,
        }
    }

    /// Whether output `name` was requested.
    pub fn wants(&self, name: &str) -> bool {
        self.targets.contains_key(name)
    }

    fn stage_path(&mut self, name: &str) -> Result<Option<PathBuf>> {
        let Some(target) = self.targets.get(name) else { return Ok(None) };
        let final_path = target.path.clone();
        if let Some(parent) = final_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let file_name =
            final_path.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_else(|| name.to_string());
        let temp = final_path.with_file_name(format!(".{file_name}.partial-{}", std::process::id()));
        self.staged.push((temp.clone(), final_path));
        Ok(Some(temp))
    }

    /// Stages bytes for output `name` (ignored when not requested).
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        if let Some(temp) = self.stage_path(name)? {
            std::fs::write(&temp, bytes).map_err(|e| Error::io(&temp, e))?;
        }
        Ok(())
    }

    /// Stages a table for output `name`.
    pub fn write_table(&mut self, name: &str, table: &Table, format: TableFormat) -> Result<()> {
        if let Some(temp) = self.stage_path(name)? {
            table.write(&temp, format)?;
        }
        Ok(())
    }

    /// Records kfp artifact metadata for output `name` (written to `executor_output.json`).
    pub fn set_metadata(&mut self, name: &str, metadata: Value) {
        self.metadata.insert(name.to_string(), metadata);
    }

    /// Renames every staged file into place and writes `executor_output.json`.
    pub fn commit(mut self) -> Result<()> {
        let mut artifacts = serde_json::Map::new();
        for (name, target) in &self.targets {
            let metadata = self.metadata.get(name).cloned().unwrap_or_else(|| json!({}));
            artifacts.insert(
                name.clone(),
                json!({"artifacts": [{"name": target.name, "uri": target.uri, "metadata": metadata}]}),
            );
        }
        if let Some(path) = self.executor_output.clone() {
            let document = json!({"artifacts": artifacts});
            let text = serde_json::to_string(&document).map_err(|e| Error::InvalidData(e.to_string()))?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            let temp = path.with_file_name(format!(".executor_output.json.partial-{}", std::process::id()));
            std::fs::write(&temp, text).map_err(|e| Error::io(&temp, e))?;
            self.staged.push((temp, path));
        }
        for (temp, final_path) in &self.staged {
            std::fs::rename(temp, final_path).map_err(|e| Error::io(final_path, e))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        if !self.committed {
            for (temp, _) in &self.staged {
                let _ = std::fs::remove_file(temp);
            }
        }
    }
}
