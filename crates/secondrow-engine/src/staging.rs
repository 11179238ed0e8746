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
//!   outputs and turn the local paths in `executor_output.json` back into `s3://` URIs. This is the
//!   launcher's API (a task that runs elsewhere, with nothing but its executor input).
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
                fetch(store, &uri, &local).await.map_err(|source| StagingError::Input {
                    name: name.clone(),
                    uri: uri.clone(),
                    source,
                })?;
                a["uri"] = Value::String(local.to_string_lossy().into_owned());
            }
        }
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
    Ok(total)
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
}
