//! Moving artifact bytes between a remote artifact root (`s3://bucket/prefix`) and the local folder a task's
//! process reads and writes.
//!
//! kfp's convention decides the local paths: its executor (`kfp/dsl/types/artifact_types.py`) reads and
//! writes the artifact with URI `s3://b/k` at `/s3/b/k`. Here that `/` is a *mount* folder: a launcher in a
//! Pod passes `/` and lightweight components see exactly Kubeflow's paths; the local engine passes its
//! artifact store's mirror folder ([`ArtifactStore::mount`]).
//!
//! Two layers:
//! - [`stage_in`] / [`stage_out`] work on kfp's executor input JSON (docs/kfp-contract.md): download the
//!   input artifacts, rewrite every artifact URI to its local path, and after the command upload the
//!   outputs, `executor_output.json` and the output-parameter files, turning the local paths in
//!   `executor_output.json` back into `s3://` URIs. This is the launcher's API (a task Pod under an S3 root,
//!   `kubernetes::launch`), which has nothing but its executor input and the store; the engine then reads
//!   the task's outputs from the store ([`read_remote_outputs`]).
//! - [`localize`] / [`fetch_inputs`] / [`publish_outputs`] work on the engine's own [`IoValues`], for local
//!   tasks under an S3 root: URIs stay `s3://` in the store and between tasks, and only the process sees
//!   local paths.
//!
//! A local path already present is trusted (artifacts are written once per task attempt, and a retry of
//! the producer rewrites its local copy first), so tasks on the engine's machine read their upstream
//! outputs without a round trip.

use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use secondrow_store::{ArtifactStore, StoreError, Uploaded};

use crate::task::IoValues;

#[derive(Debug, Error)]
pub enum StagingError {
    #[error("input artifact `{name}` ({uri}): {source}")]
    Input {
        name: String,
        uri: String,
        #[source]
        source: StoreError,
    },
    #[error("output artifact `{name}` ({uri}): {source}")]
    Output {
        name: String,
        uri: String,
        #[source]
        source: StoreError,
    },
    #[error("executor input: {0}")]
    ExecutorInput(String),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("executor output {path}: {error}")]
    ExecutorOutput {
        path: PathBuf,
        #[source]
        error: serde_json::Error,
    },
}

impl StagingError {
    pub fn kind(&self) -> secondrow_error::ErrorKind {
        use secondrow_error::ErrorKind;
        match self {
            StagingError::Input { source, .. } | StagingError::Output { source, .. } => source.kind(),
            StagingError::ExecutorInput(_) | StagingError::ExecutorOutput { .. } => ErrorKind::InvalidInput,
            StagingError::Io { .. } => ErrorKind::Internal,
        }
    }
}

type Result<T, E = StagingError> = std::result::Result<T, E>;

/// kfp's local path of a remote URI under `mount`: `s3://b/k` → `<mount>/s3/b/k`; `None` for any other
/// URI, or one with `..`.
pub fn local_path(mount: &Path, uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("s3://")?;
    if rest.split('/').any(|p| p == ".." || p == ".") {
        return None;
    }
    Some(rest.split('/').filter(|p| !p.is_empty()).fold(mount.join("s3"), |p, part| p.join(part)))
}

/// The inverse of [`local_path`]: `<mount>/s3/b/k` → `s3://b/k`; `None` for a path elsewhere.
pub fn remote_uri(mount: &Path, path: &str) -> Option<String> {
    let rel = Path::new(path).strip_prefix(mount.join("s3")).ok()?;
    if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) || rel.as_os_str().is_empty() {
        return None;
    }
    Some(format!("s3://{}", rel.to_string_lossy()))
}

/// The outputs of one staged executor input, to upload after the command.
#[derive(Debug, Clone, Default)]
pub struct Staged {
    /// (output name, local path, remote URI) of every output artifact.
    pub outputs: Vec<(String, PathBuf, String)>,
    /// `outputs.outputFile`: where the command writes `executor_output.json`.
    pub output_file: Option<PathBuf>,
    /// (local path, remote URI) of `executor_output.json` and of every output-parameter file under the
    /// mount: uploaded after the command, so that whoever started the task reads its outputs from the store.
    pub files: Vec<(PathBuf, String)>,
}

/// Artifact types that carry only metadata: their input may have no bytes in the store.
const METADATA_ONLY: &[&str] =
    &["system.Metrics", "system.ClassificationMetrics", "system.SlicedClassificationMetrics"];

/// Every `s3://` artifact URI of an executor input (inputs and outputs) as its local path under `mount`
/// (what the command is given); other URIs unchanged.
pub fn localize_executor_input(mount: &Path, executor_input: &mut Value) {
    map_artifact_uris(executor_input, &|uri| local_path(mount, uri).map(|p| p.to_string_lossy().into_owned()));
}

/// The inverse of [`localize_executor_input`]: every artifact path under `mount/s3` back to its `s3://` URI.
pub fn remote_executor_input(mount: &Path, executor_input: &mut Value) {
    map_artifact_uris(executor_input, &|path| remote_uri(mount, path));
}

fn map_artifact_uris(executor_input: &mut Value, f: &dyn Fn(&str) -> Option<String>) {
    for side in ["/inputs/artifacts", "/outputs/artifacts"] {
        let Some(map) = executor_input.pointer_mut(side).and_then(Value::as_object_mut) else { continue };
        for list in map.values_mut() {
            let Some(items) = list.get_mut("artifacts").and_then(Value::as_array_mut) else { continue };
            for a in items {
                if let Some(new) = a.get("uri").and_then(Value::as_str).and_then(f) {
                    a["uri"] = Value::String(new);
                }
            }
        }
    }
}

/// Downloads every remote input artifact of `executor_input` to its local path under `mount` and rewrites
/// the URIs of inputs and outputs to local paths (creating the outputs' parent folders).
pub async fn stage_in(store: &ArtifactStore, mount: &Path, executor_input: &mut Value) -> Result<Staged> {
    let mut staged = Staged {
        output_file: executor_input.pointer("/outputs/outputFile").and_then(Value::as_str).map(PathBuf::from),
        ..Staged::default()
    };
    if let Some(inputs) = executor_input.pointer_mut("/inputs/artifacts").and_then(Value::as_object_mut) {
        for (name, list) in inputs {
            for a in artifacts_of(name, list)? {
                let Some(uri) = a.get("uri").and_then(Value::as_str).map(str::to_owned) else { continue };
                let Some(local) = local_path(mount, &uri) else { continue };
                let schema = a.pointer("/type/schemaTitle").and_then(Value::as_str).unwrap_or_default();
                let fetched = if METADATA_ONLY.contains(&schema) {
                    fetch(store, &uri, &local).await
                } else {
                    fetch_required(store, &uri, &local).await
                };
                fetched.map_err(|source| StagingError::Input { name: name.clone(), uri: uri.clone(), source })?;
                a["uri"] = Value::String(local.to_string_lossy().into_owned());
            }
        }
    }
    let mut files: Vec<PathBuf> = staged.output_file.iter().cloned().collect();
    if let Some(params) = executor_input.pointer("/outputs/parameters").and_then(Value::as_object) {
        files.extend(params.values().filter_map(|p| p.get("outputFile")?.as_str().map(PathBuf::from)));
    }
    for path in files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| StagingError::Io { path: parent.to_path_buf(), error })?;
        }
        let Some(uri) = remote_uri(mount, &path.to_string_lossy()) else { continue };
        // What an earlier attempt uploaded must not pass for this attempt's result.
        store.delete(&uri).await.map_err(|source| StagingError::Output {
            name: file_name(&path),
            uri: uri.clone(),
            source,
        })?;
        staged.files.push((path, uri));
    }
    if let Some(outputs) = executor_input.pointer_mut("/outputs/artifacts").and_then(Value::as_object_mut) {
        for (name, list) in outputs {
            for a in artifacts_of(name, list)? {
                let Some(uri) = a.get("uri").and_then(Value::as_str).map(str::to_owned) else { continue };
                let Some(local) = local_path(mount, &uri) else { continue };
                if let Some(parent) = local.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|error| StagingError::Io { path: parent.to_path_buf(), error })?;
                }
                a["uri"] = Value::String(local.to_string_lossy().into_owned());
                staged.outputs.push((name.clone(), local, uri));
            }
        }
    }
    Ok(staged)
}

/// After the command: uploads every output artifact that has a local file or folder, and rewrites the
/// artifact URIs in `executor_output.json` from local paths under `mount` back to `s3://` URIs (the file is
/// written in place; one that does not exist is left so).
pub async fn stage_out(store: &ArtifactStore, mount: &Path, staged: &Staged) -> Result<Uploaded> {
    let mut total = Uploaded::default();
    let mut extra = Vec::new();
    if let Some(path) = &staged.output_file {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut out: Value = serde_json::from_str(&text)
                    .map_err(|error| StagingError::ExecutorOutput { path: path.clone(), error })?;
                if let Some(arts) = out.get_mut("artifacts").and_then(Value::as_object_mut) {
                    for (name, list) in arts {
                        for a in artifacts_of(name, list)? {
                            let Some(given) = a.get("uri").and_then(Value::as_str).map(str::to_owned) else {
                                continue;
                            };
                            if let Some(remote) = remote_uri(mount, &given) {
                                a["uri"] = Value::String(remote.clone());
                                if !staged.outputs.iter().any(|(_, l, _)| l.as_os_str() == given.as_str()) {
                                    extra.push((name.clone(), PathBuf::from(&given), remote));
                                }
                            }
                        }
                    }
                }
                let text = serde_json::to_string(&out)
                    .map_err(|error| StagingError::ExecutorOutput { path: path.clone(), error })?;
                std::fs::write(path, text).map_err(|error| StagingError::Io { path: path.clone(), error })?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(StagingError::Io { path: path.clone(), error }),
        }
    }
    for (name, local, uri) in staged.outputs.iter().chain(&extra) {
        total += publish(store, name, local, uri).await?;
    }
    for (local, uri) in &staged.files {
        total += publish(store, &file_name(local), local, uri).await?;
    }
    Ok(total)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Reads the task files a launcher uploaded (`executor_output.json`, output-parameter files) from the
/// store: each local `path` under `mount` → its text, or `None` when the task did not write it.
pub async fn read_remote_outputs(
    store: &ArtifactStore,
    mount: &Path,
    paths: &[&Path],
) -> Result<std::collections::BTreeMap<PathBuf, String>> {
    let mut out = std::collections::BTreeMap::new();
    for path in paths {
        let Some(uri) = remote_uri(mount, &path.to_string_lossy()) else { continue };
        match store.read(&uri).await {
            Ok(bytes) => {
                out.insert(path.to_path_buf(), String::from_utf8_lossy(&bytes).into_owned());
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(source) => return Err(StagingError::Output { name: file_name(path), uri, source }),
        }
    }
    Ok(out)
}

/// The runtime artifacts of one input or output (`{"artifacts": [...]}`).
fn artifacts_of<'a>(name: &str, list: &'a mut Value) -> Result<&'a mut Vec<Value>> {
    list.get_mut("artifacts")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| StagingError::ExecutorInput(format!("artifact `{name}` has no `artifacts` list")))
}

/// Downloads the artifact at `uri` to `local` unless something is there already. An artifact with no
/// bytes (a metrics artifact carries only metadata) is not an error: nothing is written.
pub async fn fetch(store: &ArtifactStore, uri: &str, local: &Path) -> Result<(), StoreError> {
    if std::fs::symlink_metadata(local).is_ok() {
        return Ok(());
    }
    match store.download(uri, local).await {
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Downloads the artifact at `uri` to `local` unless something is there already; an artifact with no bytes
/// in the store is an error (the launcher's inputs: the task would otherwise fail later, on a missing file).
async fn fetch_required(store: &ArtifactStore, uri: &str, local: &Path) -> Result<(), StoreError> {
    if std::fs::symlink_metadata(local).is_ok() {
        return Ok(());
    }
    store.download(uri, local).await.map(|_| ())
}

/// Uploads output `name`'s local file or folder at `local` (when it exists) to `uri`.
async fn publish(store: &ArtifactStore, name: &str, local: &Path, uri: &str) -> Result<Uploaded> {
    if std::fs::symlink_metadata(local).is_err() {
        return Ok(Uploaded::default());
    }
    store.upload(local, uri).await.map_err(|source| StagingError::Output {
        name: name.to_owned(),
        uri: uri.to_owned(),
        source,
    })
}

/// The engine's inputs as the process sees them: every `s3://` URI under the store's root becomes its
/// local path (a no-op for a local root).
pub fn localize(store: &ArtifactStore, inputs: &IoValues) -> IoValues {
    let mut out = inputs.clone();
    if store.is_remote() {
        for a in out.artifacts.values_mut().flatten() {
            if let Some(p) = store.local_path(&a.uri) {
                a.uri = p.to_string_lossy().into_owned();
            }
        }
    }
    out
}

/// `inputs` as a Pod's launcher lays them out under `mount`: every `s3://` artifact at kfp's local path.
pub fn localize_under(mount: &Path, inputs: &IoValues) -> IoValues {
    let mut out = inputs.clone();
    for a in out.artifacts.values_mut().flatten() {
        if let Some(p) = local_path(mount, &a.uri) {
            a.uri = p.to_string_lossy().into_owned();
        }
    }
    out
}

/// Downloads the remote input artifacts of a local task that are not on this machine yet.
pub async fn fetch_inputs(store: &ArtifactStore, inputs: &IoValues) -> Result<()> {
    if !store.is_remote() {
        return Ok(());
    }
    for (name, list) in &inputs.artifacts {
        for a in list {
            let Some(local) = store.local_path(&a.uri) else { continue };
            fetch(store, &a.uri, &local).await.map_err(|source| StagingError::Input {
                name: name.clone(),
                uri: a.uri.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

/// Uploads a finished local task's output artifacts written under the store's local mirror and gives
/// them their `s3://` URIs (a no-op for a local root).
pub async fn publish_outputs(store: &ArtifactStore, outputs: &mut IoValues) -> Result<Uploaded> {
    let mut total = Uploaded::default();
    if !store.is_remote() {
        return Ok(total);
    }
    for (name, list) in outputs.artifacts.iter_mut() {
        for a in list {
            let Some(uri) = store.uri_of_local(Path::new(&a.uri)) else { continue };
            total += publish(store, name, Path::new(&a.uri), &uri).await?;
            a.uri = uri;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_follow_kfps_mount_convention() {
        let mount = Path::new("/");
        assert_eq!(local_path(mount, "s3://b/run/task/model"), Some(PathBuf::from("/s3/b/run/task/model")));
        assert_eq!(remote_uri(mount, "/s3/b/run/task/model").as_deref(), Some("s3://b/run/task/model"));
        let mount = Path::new("/tmp/m");
        assert_eq!(local_path(mount, "s3://b/k"), Some(PathBuf::from("/tmp/m/s3/b/k")));
        assert_eq!(remote_uri(mount, "/tmp/m/s3/b/k").as_deref(), Some("s3://b/k"));
        assert_eq!(local_path(mount, "s3://b/../../etc/passwd"), None);
        assert_eq!(local_path(mount, "gs://b/k"), None);
        assert_eq!(remote_uri(mount, "/tmp/other/s3/b/k"), None);
        assert_eq!(remote_uri(mount, "/tmp/m/s3/b/../../x"), None);
    }

    #[test]
    fn executor_input_uris_map_to_the_mount_and_back() {
        let mount = Path::new("/secondrow/staging");
        let original = serde_json::json!({
            "inputs": {"artifacts": {"data": {"artifacts": [{"uri": "s3://b/r/t/data"}, {"uri": "gs://x/y"}]}}},
            "outputs": {"artifacts": {"model": {"artifacts": [{"uri": "s3://b/r/u/model"}]}},
                        "outputFile": "/secondrow/staging/s3/b/r/u/executor_output.json"}
        });
        let mut v = original.clone();
        localize_executor_input(mount, &mut v);
        assert_eq!(v.pointer("/inputs/artifacts/data/artifacts/0/uri").unwrap(), "/secondrow/staging/s3/b/r/t/data");
        assert_eq!(v.pointer("/inputs/artifacts/data/artifacts/1/uri").unwrap(), "gs://x/y");
        assert_eq!(v.pointer("/outputs/artifacts/model/artifacts/0/uri").unwrap(), "/secondrow/staging/s3/b/r/u/model");
        remote_executor_input(mount, &mut v);
        assert_eq!(v, original);
    }
}
