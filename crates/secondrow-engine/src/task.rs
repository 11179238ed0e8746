//! One container task: its executor input, its command line, and reading its outputs back.
//!
//! Given a task's resolved inputs, [`prepare`] builds the executor input JSON (docs/kfp-contract.md §2.2), lays
//! out the task folder (output paths, `executor_output.json`) and expands every placeholder of the command.
//! [`collect_outputs`] reads `executor_output.json` and output-parameter files after a successful exit
//! (§2.4). Neither decides anything about scheduling.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use secondrow_spec::ir::{ArtifactTypeSchema, ComponentSpec, ContainerSpec};
use secondrow_spec::placeholder::{self, ArtifactField, Placeholder, PlaceholderContext, PlaceholderError};
use secondrow_spec::value::{self, ValueError};
use secondrow_spec::ParsedExecutor;

/// Why a task's command line could not be built or its outputs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Placeholder(#[from] PlaceholderError),
    #[error("the container has no command")]
    NoCommand,
    #[error("executor_output.json is not valid JSON: {0}")]
    ExecutorOutputJson(serde_json::Error),
    #[error("reading executor_output.json: {0}")]
    ReadExecutorOutput(std::io::Error),
    /// A value in `executor_output.json` does not fit the declared type.
    #[error("output parameter `{name}`: {error}")]
    OutputValue { name: String, error: ValueError },
    /// An output-parameter file does not hold a value of the declared type.
    #[error("output parameter `{name}` ({path}): {error}")]
    OutputFile { name: String, path: PathBuf, error: ValueError },
    #[error("reading output parameter `{name}`: {error}")]
    ReadOutputParameter { name: String, error: std::io::Error },
}

impl TaskError {
    /// `InvalidInput` for a bad spec or bad component output; `Internal` for IO on the task folder.
    pub fn kind(&self) -> secondrow_error::ErrorKind {
        match self {
            TaskError::Placeholder(e) => e.kind(),
            TaskError::NoCommand
            | TaskError::ExecutorOutputJson(_)
            | TaskError::OutputValue { .. }
            | TaskError::OutputFile { .. } => secondrow_error::ErrorKind::InvalidInput,
            TaskError::ReadExecutorOutput(_) | TaskError::ReadOutputParameter { .. } => {
                secondrow_error::ErrorKind::Internal
            }
        }
    }
}

/// An artifact as it travels between tasks (and is stored in task outputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// The store's artifact id.
    pub id: String,
    pub name: String,
    pub uri: String,
    #[serde(rename = "type")]
    pub schema: ArtifactTypeSchema,
    #[serde(default)]
    pub metadata: Value,
}

impl ArtifactRef {
    /// The runtime-artifact JSON the executor input carries.
    pub fn runtime_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": {"schemaTitle": self.schema.schema_title, "schemaVersion": self.schema.schema_version},
            "uri": self.uri,
            "metadata": if self.metadata.is_null() { json!({}) } else { self.metadata.clone() },
        })
    }
}

/// Parameter values and artifacts by name: one side (inputs or outputs) of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IoValues {
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, Vec<ArtifactRef>>,
}

impl IoValues {
    /// (name, artifact id) for every stored artifact, as lineage events name them.
    pub fn artifact_refs(&self) -> Vec<(String, String)> {
        self.artifacts
            .iter()
            .flat_map(|(n, l)| l.iter().filter(|a| !a.id.is_empty()).map(move |a| (n.clone(), a.id.clone())))
            .collect()
    }
}

/// Values of the pipeline-level placeholders.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub job_name: String,
    pub job_resource_name: String,
    pub job_uuid: String,
    pub pipeline_root: String,
    pub create_time: String,
    /// When a recurring run's schedule fired; the create time for a run nobody scheduled (as kfp does).
    pub schedule_time: String,
}

/// A container task ready to spawn.
#[derive(Debug, Clone)]
pub struct PreparedContainer {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub task_root: PathBuf,
    pub executor_output: PathBuf,
    /// Declared output parameters → the file a component may write them to.
    pub output_parameter_files: BTreeMap<String, PathBuf>,
    /// Declared output artifacts → (default artifact, as handed to the executor).
    pub output_artifacts: BTreeMap<String, ArtifactRef>,
    pub executor_input: Value,
}

struct Ctx<'a> {
    inputs: &'a IoValues,
    prepared: &'a PreparedContainer,
    job: &'a JobContext,
    task_key: &'a str,
    task_id: &'a str,
}

/// The artifact list the executor input carries for one input or output (`{"artifacts": [...]}`).
fn artifact_list_json(list: &[ArtifactRef]) -> Value {
    json!({"artifacts": list.iter().map(ArtifactRef::runtime_json).collect::<Vec<_>>()})
}

/// One field of an artifact list: the whole list, or a field of its first artifact (kfp's launcher resolves
/// `.path`, `.uri` and metadata of the first one, as a single-artifact input has exactly one).
///
/// The whole list (`{{$.inputs.artifacts['x']}}`, what kfp writes for an `Input[List[Dataset]]` passed to a
/// container component) is a JSON array of runtime artifacts (`name`, `type`, `uri`, `metadata`), every
/// artifact in order, the shape kfp's own container-component examples parse (`[d['uri'] for d in ...]`).
fn artifact_field(list: &[ArtifactRef], field: &ArtifactField) -> Option<String> {
    Some(match field {
        ArtifactField::Whole => Value::Array(list.iter().map(ArtifactRef::runtime_json).collect()).to_string(),
        ArtifactField::Path | ArtifactField::Uri => list.first()?.uri.clone(),
        ArtifactField::Metadata => {
            let a = list.first()?;
            if a.metadata.is_null() {
                "{}".into()
            } else {
                a.metadata.to_string()
            }
        }
        ArtifactField::MetadataKey(k) => value::placeholder_text(list.first()?.metadata.get(k)?),
    })
}

impl PlaceholderContext for Ctx<'_> {
    fn value(&self, p: &Placeholder) -> Result<Option<String>, PlaceholderError> {
        Ok(match p {
            Placeholder::ExecutorInput => Some(self.prepared.executor_input.to_string()),
            Placeholder::InputParameter(n) => self.inputs.parameters.get(n).map(value::channel_text),
            Placeholder::InputArtifact { name, field } => {
                self.inputs.artifacts.get(name).and_then(|l| artifact_field(l, field))
            }
            Placeholder::OutputParameterFile(n) => {
                self.prepared.output_parameter_files.get(n).map(|p| p.to_string_lossy().into_owned())
            }
            Placeholder::OutputArtifact { name, field } => {
                self.prepared.output_artifacts.get(name).and_then(|a| artifact_field(std::slice::from_ref(a), field))
            }
            Placeholder::OutputsFile => Some(self.prepared.executor_output.to_string_lossy().into_owned()),
            Placeholder::PipelineJobName => Some(self.job.job_name.clone()),
            Placeholder::PipelineJobResourceName => Some(self.job.job_resource_name.clone()),
            Placeholder::PipelineJobUuid => Some(self.job.job_uuid.clone()),
            Placeholder::PipelineTaskName => Some(self.task_key.to_owned()),
            Placeholder::PipelineTaskUuid => Some(self.task_id.to_owned()),
            Placeholder::PipelineRoot => Some(self.job.pipeline_root.clone()),
            Placeholder::PipelineJobCreateTime => Some(self.job.create_time.clone()),
            Placeholder::PipelineJobScheduleTime => Some(self.job.schedule_time.clone()),
        })
    }

    fn is_present(&self, input: &str) -> bool {
        self.inputs.parameters.contains_key(input) || self.inputs.artifacts.contains_key(input)
    }
}

/// `{{$.pipeline_task_uuid}}` as it stays in a formatted constant until the task has its id.
pub const TASK_UUID_PLACEHOLDER: &str = "{{$.pipeline_task_uuid}}";

/// Puts the task's id where a constant input held `{{$.pipeline_task_uuid}}` (the id exists only once
/// the task is recorded, after its inputs were resolved).
pub fn fill_task_uuid(inputs: &mut IoValues, task_id: &str) {
    fn fill(v: &mut Value, task_id: &str) {
        match v {
            Value::String(s) if s.contains(TASK_UUID_PLACEHOLDER) => *s = s.replace(TASK_UUID_PLACEHOLDER, task_id),
            Value::Array(items) => items.iter_mut().for_each(|i| fill(i, task_id)),
            Value::Object(o) => o.values_mut().for_each(|i| fill(i, task_id)),
            _ => {}
        }
    }
    inputs.parameters.values_mut().for_each(|v| fill(v, task_id));
}

/// Options that shape the command line.
pub struct LaunchOptions {
    /// Drop the `pip install` prelude of lightweight components (the Python already has kfp).
    pub skip_pip_prelude: bool,
}

/// Puts `prefix` first on the task's PATH (where the chosen `python3` is).
pub fn with_path_prefix(env: &mut Vec<(String, String)>, prefix: &Path) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut joined = prefix.as_os_str().to_owned();
    if !path.is_empty() {
        joined.push(":");
        joined.push(path);
    }
    env.retain(|(k, _)| k != "PATH");
    env.push(("PATH".into(), joined.to_string_lossy().into_owned()));
}

/// Builds the executor input, output layout and argv for one attempt of a container task.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    component: &ComponentSpec,
    container: &ContainerSpec,
    parsed: &ParsedExecutor,
    inputs: &IoValues,
    task_root: &Path,
    job: &JobContext,
    task_key: &str,
    task_id: &str,
    launch: &LaunchOptions,
) -> Result<PreparedContainer, TaskError> {
    let executor_output = task_root.join("executor_output.json");
    let mut output_parameter_files = BTreeMap::new();
    for name in component.output_definitions.parameters.keys() {
        output_parameter_files.insert(name.clone(), task_root.join(name));
    }
    let mut output_artifacts = BTreeMap::new();
    for (name, def) in &component.output_definitions.artifacts {
        let uri = task_root.join(name).to_string_lossy().into_owned();
        output_artifacts.insert(
            name.clone(),
            ArtifactRef {
                id: String::new(),
                name: name.clone(),
                uri,
                schema: def.artifact_type.clone(),
                metadata: json!({}),
            },
        );
    }
    let mut in_params = Map::new();
    for (name, v) in &inputs.parameters {
        in_params.insert(name.clone(), v.clone());
    }
    let mut in_arts = Map::new();
    for (name, list) in &inputs.artifacts {
        in_arts.insert(name.clone(), artifact_list_json(list));
    }
    let out_params: Map<String, Value> =
        output_parameter_files.iter().map(|(n, p)| (n.clone(), json!({"outputFile": p.to_string_lossy()}))).collect();
    let out_arts: Map<String, Value> =
        output_artifacts.iter().map(|(n, a)| (n.clone(), artifact_list_json(std::slice::from_ref(a)))).collect();
    let mut inputs_json = Map::new();
    if !in_params.is_empty() {
        inputs_json.insert("parameterValues".into(), Value::Object(in_params));
    }
    if !in_arts.is_empty() {
        inputs_json.insert("artifacts".into(), Value::Object(in_arts));
    }
    let mut outputs_json = Map::new();
    if !out_params.is_empty() {
        outputs_json.insert("parameters".into(), Value::Object(out_params));
    }
    if !out_arts.is_empty() {
        outputs_json.insert("artifacts".into(), Value::Object(out_arts));
    }
    outputs_json.insert("outputFile".into(), json!(executor_output.to_string_lossy()));
    let executor_input = json!({"inputs": inputs_json, "outputs": outputs_json});

    let mut prepared = PreparedContainer {
        argv: Vec::new(),
        env: container.env.iter().map(|e| (e.name.clone(), e.value.clone())).collect(),
        task_root: task_root.to_path_buf(),
        executor_output,
        output_parameter_files,
        output_artifacts,
        executor_input,
    };
    let skip = if launch.skip_pip_prelude { parsed.pip_prelude_len } else { 0 };
    let ctx = Ctx { inputs, prepared: &prepared, job, task_key, task_id };
    let mut argv = placeholder::expand(&parsed.command[skip..], &ctx)?;
    argv.extend(placeholder::expand(&parsed.args, &ctx)?);
    if argv.is_empty() {
        return Err(TaskError::NoCommand);
    }
    prepared.argv = argv;
    Ok(prepared)
}

/// Bash-only commands a POSIX `/bin/sh` (dash) does not have; it reports them as `NAME: not found`.
const BASH_ONLY_COMMANDS: &[&str] =
    &["[[", "source", "declare", "shopt", "let", "mapfile", "readarray", "pushd", "popd", "complete"];

/// Messages a POSIX `/bin/sh` (dash, busybox) gives for bash syntax: arrays and `<(…)` (`"("`), `function f { … }`
/// (`"}"`), `<<<` (redirection), `${x,,}` and `${x//a/b}` (substitution), `set -o pipefail` (older dash).
const BASH_SYNTAX_ERRORS: &[&str] = &[
    ": Syntax error: \"(\" unexpected",
    ": Syntax error: \"}\" unexpected",
    ": Syntax error: redirection unexpected",
    ": Bad substitution",
    ": Illegal option -o pipefail",
    // busybox ash, the /bin/sh of Alpine.
    ": syntax error: unexpected \"(\"",
    ": syntax error: bad substitution",
];

/// A hint for a failed `sh -c SCRIPT` whose error output shows bash-only constructs while `/bin/sh` here is
/// `sh_name` (what `/bin/sh` resolves to, such as `dash`), not bash: images such as `python:3.x` or `ubuntu`
/// have the same `/bin/sh`, but scripts written against a bash `sh` are common. `None` when the command is not
/// an `sh -c`, `/bin/sh` is bash, or nothing in `stderr` looks like a bash construct.
pub fn bash_hint(argv: &[String], stderr: &str, sh_name: &str) -> Option<String> {
    let program = argv.first().map(|p| p.rsplit('/').next().unwrap_or(p))?;
    let inline = argv.get(1).is_some_and(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('c'));
    if program != "sh" || !inline || sh_name == "bash" {
        return None;
    }
    let line = stderr.lines().find(|l| {
        BASH_SYNTAX_ERRORS.iter().any(|e| l.contains(e))
            || BASH_ONLY_COMMANDS.iter().any(|c| l.ends_with(&format!(": {c}: not found")))
    })?;
    let line: String = line.trim().chars().take(200).collect();
    Some(format!(
        "hint: `{line}` looks like bash syntax, but /bin/sh here is {sh_name}, not bash; run the script with \
         `bash -c` (command: [bash, -c, ...]) or write it for POSIX sh"
    ))
}

/// Creates the task folder and the parent folders of every output path; removes stale outputs of an
/// earlier attempt so that nothing from it can be mistaken for this attempt's result.
pub fn lay_out(prepared: &PreparedContainer) -> std::io::Result<()> {
    std::fs::create_dir_all(&prepared.task_root)?;
    let _ = std::fs::remove_file(&prepared.executor_output);
    for p in prepared.output_parameter_files.values() {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let _ = std::fs::remove_file(p);
    }
    for a in prepared.output_artifacts.values() {
        if let Some(parent) = Path::new(&a.uri).parent() {
            std::fs::create_dir_all(parent)?;
        }
    }
    Ok(())
}

/// Reads a finished task's outputs: `executor_output.json` first, then output-parameter files.
pub fn collect_outputs(component: &ComponentSpec, prepared: &PreparedContainer) -> Result<IoValues, TaskError> {
    collect_outputs_with(component, prepared, &|path| match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    })
}

/// [`collect_outputs`] with the task's files read by `read` (`None`: the task did not write it), such as
/// from the artifact store where a Pod's launcher uploaded them.
pub fn collect_outputs_with(
    component: &ComponentSpec,
    prepared: &PreparedContainer,
    read: &dyn Fn(&Path) -> std::io::Result<Option<String>>,
) -> Result<IoValues, TaskError> {
    let exec_out: Value = match read(&prepared.executor_output) {
        Ok(Some(text)) => serde_json::from_str(&text).map_err(TaskError::ExecutorOutputJson)?,
        Ok(None) => json!({}),
        Err(e) => return Err(TaskError::ReadExecutorOutput(e)),
    };
    let mut out = IoValues::default();
    for (name, def) in &component.output_definitions.parameters {
        if let Some(v) = exec_out.get("parameterValues").and_then(|p| p.get(name)) {
            let v = value::coerce(v, def.parameter_type)
                .map_err(|error| TaskError::OutputValue { name: name.clone(), error })?;
            out.parameters.insert(name.clone(), v);
            continue;
        }
        let Some(path) = prepared.output_parameter_files.get(name) else { continue };
        match read(path) {
            Ok(Some(text)) => {
                let v = value::parse_output_file(&text, def.parameter_type).map_err(|error| TaskError::OutputFile {
                    name: name.clone(),
                    path: path.clone(),
                    error,
                })?;
                out.parameters.insert(name.clone(), v);
            }
            Ok(None) => {}
            Err(e) => return Err(TaskError::ReadOutputParameter { name: name.clone(), error: e }),
        }
    }
    for (name, default) in &prepared.output_artifacts {
        let mut a = default.clone();
        if let Some(given) =
            exec_out.get("artifacts").and_then(|x| x.get(name)).and_then(|x| x.get("artifacts")).and_then(|x| x.get(0))
        {
            if let Some(uri) = given.get("uri").and_then(Value::as_str) {
                a.uri = uri.to_owned();
            }
            if let Some(md) = given.get("metadata") {
                a.metadata = md.clone();
            }
        }
        out.artifacts.insert(name.clone(), vec![a]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(root: &Path) -> PreparedContainer {
        PreparedContainer {
            argv: vec![],
            env: vec![],
            task_root: root.to_path_buf(),
            executor_output: root.join("executor_output.json"),
            output_parameter_files: BTreeMap::from([("n".to_owned(), root.join("n"))]),
            output_artifacts: BTreeMap::new(),
            executor_input: Value::Null,
        }
    }

    #[test]
    fn bad_outputs_are_typed_errors_with_the_same_wording() {
        let dir = tempfile::tempdir().unwrap();
        let component: ComponentSpec = serde_json::from_value(json!({
            "outputDefinitions": {"parameters": {"n": {"parameterType": "NUMBER_INTEGER"}}}
        }))
        .unwrap();
        let p = prepared(dir.path());

        std::fs::write(dir.path().join("n"), "seven").unwrap();
        let e = collect_outputs(&component, &p).unwrap_err();
        assert!(matches!(e, TaskError::OutputFile { ref name, .. } if name == "n"), "{e:?}");
        assert!(e
            .to_string()
            .starts_with(&format!("output parameter `n` ({}): not valid JSON (", p.task_root.join("n").display())));
        assert_eq!(e.kind(), secondrow_error::ErrorKind::InvalidInput);

        std::fs::write(&p.executor_output, r#"{"parameterValues": {"n": 2.5}}"#).unwrap();
        let e = collect_outputs(&component, &p).unwrap_err();
        assert_eq!(e.to_string(), "output parameter `n`: expected NUMBER_INTEGER but got a non-integer number `2.5`");

        std::fs::write(&p.executor_output, "{").unwrap();
        let e = collect_outputs(&component, &p).unwrap_err();
        assert!(e.to_string().starts_with("executor_output.json is not valid JSON: "), "{e}");

        std::fs::write(&p.executor_output, r#"{"parameterValues": {"n": 3.0}}"#).unwrap();
        assert_eq!(collect_outputs(&component, &p).unwrap().parameters["n"], json!(3));
    }

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn bash_constructs_under_a_posix_sh_get_a_hint() {
        let sh = argv(&["sh", "-c", "arr=(a b)"]);
        let hint = bash_hint(&sh, "sh: 1: Syntax error: \"(\" unexpected\n", "dash").expect("a hint");
        assert!(hint.contains("`sh: 1: Syntax error: \"(\" unexpected`"), "{hint}");
        assert!(hint.contains("/bin/sh here is dash, not bash") && hint.contains("bash -c"), "{hint}");
        // `$0` names the script in dash's messages; the construct may be followed by other output.
        let ec = argv(&["/bin/sh", "-ec", "[[ -f x ]]", "prog"]);
        assert!(bash_hint(&ec, "prog: 1: [[: not found\nlater\n", "dash").is_some());
        assert!(bash_hint(&sh, "sh: 3: source: not found", "dash").is_some());
        assert!(bash_hint(&sh, "sh: 1: Bad substitution", "dash").is_some());
        assert!(bash_hint(&sh, "sh: 1: set: Illegal option -o pipefail", "dash").is_some());
        assert!(bash_hint(&sh, "sh: syntax error: unexpected \"(\"", "busybox").is_some());
        // A plain POSIX syntax error is the script's own.
        assert_eq!(bash_hint(&sh, "sh: 1: Syntax error: Unterminated quoted string", "dash"), None);
        // Not sh -c, bash as /bin/sh, or an ordinary failure: no hint.
        assert_eq!(bash_hint(&argv(&["bash", "-c", "x"]), "bash: Syntax error: x", "dash"), None);
        assert_eq!(bash_hint(&argv(&["sh", "script.sh"]), "sh: 1: [[: not found", "dash"), None);
        assert_eq!(bash_hint(&sh, "sh: 1: [[: not found", "bash"), None);
        assert_eq!(bash_hint(&sh, "sh: 1: curl: not found", "dash"), None);
        assert_eq!(bash_hint(&[], "", "dash"), None);
    }
}
