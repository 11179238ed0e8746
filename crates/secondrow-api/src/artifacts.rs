//! Artifacts over HTTP: a run's artifacts, one artifact in KFP's ArtifactService shape, and its bytes
//! (a file as is, a directory as `.tar.gz`, streamed).
//!
//! Downloads never leave the artifact root: the URI must lie under the root lexically
//! ([`ArtifactStore::relative`]) *and* its real path (symlinks followed) must too, for the artifact and for
//! every entry of a directory, all checked before the first byte is sent. User code can point an output's
//! `uri` anywhere (executor_output.json) or leave a symlink in an output folder: both are refused with 403.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use secondrow_store::{ArtifactRecord, RunRecord, TaskRecord};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{split_action, ApiPath, ApiQuery};
use crate::{ts, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/runs/{id}/artifacts", get(list_for_run)).route("/artifacts/{id}", get(get_or_download))
}

/// Loads the run a request is about, if the caller may reach its namespace.
pub async fn load_run(s: &AppState, caller: &Caller, run_id: &str) -> ApiResult<RunRecord> {
    check_id("run id", run_id)?;
    caller.run(s, run_id).await
}

/// Refuses ids that could only be an attempt to name a path (`..`, `a/b`, `\`); such ids never exist.
pub fn check_id(field: &str, id: &str) -> ApiResult<()> {
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\\', '\0']) {
        return Err(ApiError::invalid(format!("{field} `{id}` is not an id")));
    }
    Ok(())
}

/// One artifact as listed for a run: what the store knows plus its producing task.
fn wire(a: &ArtifactRecord, tasks: &[TaskRecord]) -> Value {
    let producer = a.task_id.as_ref().and_then(|id| tasks.iter().find(|t| &t.id == id));
    json!({
        "artifact_id": a.id,
        "run_id": a.run_id,
        "name": a.name,
        "type": a.schema_title,
        "schema_version": a.schema_version,
        "uri": a.uri,
        "metadata": a.metadata,
        "producer": producer.map(|t| json!({"task_id": t.id, "task_name": t.path, "display_name": t.display_name})),
        "created_at": ts(Some(a.created_at)),
    })
}

async fn list_for_run(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let run = load_run(&s, &caller, &id).await?;
    let store = s.store();
    let tasks = store.list_tasks(&run.id).await?;
    let artifacts = store.list_artifacts(&run.id).await?;
    Ok(Json(json!({"artifacts": artifacts.iter().map(|a| wire(a, &tasks)).collect::<Vec<_>>()})))
}

#[derive(Deserialize, Default)]
struct GetQuery {
    view: Option<String>,
}

/// `GET /artifacts/ID` (KFP's GetArtifact) or `GET /artifacts/ID:download` (the bytes).
async fn get_or_download(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id_action): ApiPath<String>,
    ApiQuery(q): ApiQuery<GetQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (id, download) = match id_action.rsplit_once(':') {
        Some(_) => match split_action(&id_action)? {
            (id, "download") => (id, true),
            (_, other) => return Err(ApiError::NotFound(format!("unknown artifact method `{other}`"))),
        },
        None => (id_action.as_str(), false),
    };
    check_id("artifact id", id)?;
    let artifact = s.store().get_artifact(id).await?;
    let run = load_run(&s, &caller, &artifact.run_id).await?;
    if download {
        return download_response(&s, &artifact).await;
    }
    let view = q.view.as_deref().unwrap_or("BASIC");
    if !matches!(view, "ARTIFACT_VIEW_UNSPECIFIED" | "BASIC" | "DOWNLOAD" | "RENDER") {
        return Err(ApiError::invalid(format!("view: unknown value `{view}` (BASIC, DOWNLOAD, RENDER)")));
    }
    if s.engine.artifacts().is_remote() {
        return Ok(Json(remote_artifact_json(&s, &artifact, &run.namespace, view, &headers).await?).into_response());
    }
    let root = s.engine.artifacts().root().to_path_buf();
    let located = locate(&root, &artifact);
    let mut out = json!({
        "artifact_id": artifact.id,
        "storage_provider": "local",
        "storage_path": Path::new(&artifact.uri).strip_prefix(&root).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default(),
        "uri": artifact.uri,
        "namespace": run.namespace,
        "artifact_type": artifact.schema_title,
        "created_at": ts(Some(artifact.created_at)),
        "last_updated_at": ts(Some(artifact.created_at)),
    });
    match located {
        Ok(real) => {
            let size = tokio::task::spawn_blocking(move || tree_size(&root, &real)).await.unwrap_or(0);
            out["artifact_size"] = json!(size.to_string());
            if view == "DOWNLOAD" {
                out["download_url"] = json!(download_url(&headers, &artifact.id));
            }
        }
        Err(e) => out["error"] = json!({"message": e.to_string()}),
    }
    Ok(Json(out).into_response())
}

/// Where a client downloads the artifact: on the host it asked, else a path on this server.
fn download_url(headers: &HeaderMap, id: &str) -> String {
    let path = format!("/apis/v2beta1/artifacts/{id}:download");
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(h) => format!("http://{h}{path}"),
        None => path,
    }
}

/// The artifact's real path, refusing anything outside the artifact root (`root` is canonical).
fn locate(root: &Path, a: &ArtifactRecord) -> ApiResult<PathBuf> {
    let outside =
        || ApiError::PermissionDenied(format!("artifact `{}`: `{}` is outside the artifact root", a.id, a.uri));
    let lexical = Path::new(&a.uri);
    let rel = lexical.strip_prefix(root).map_err(|_| outside())?;
    if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir)) {
        return Err(outside());
    }
    match std::fs::canonicalize(lexical) {
        Ok(real) if real.starts_with(root) => Ok(real),
        Ok(_) => Err(outside()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ApiError::NotFound(format!("artifact `{}` has no file (metrics artifacts carry only metadata)", a.id)))
        }
        Err(e) => Err(ApiError::Internal(format!("resolving {}: {e}", a.uri))),
    }
}

/// Bytes in a file, or in every file under a directory; what resolves outside `root` counts nothing.
fn tree_size(root: &Path, path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if meta.file_type().is_symlink() {
        return match std::fs::canonicalize(path) {
            Ok(real) if real.starts_with(root) && std::fs::metadata(&real).is_ok_and(|m| m.is_file()) => {
                std::fs::metadata(&real).map(|m| m.len()).unwrap_or(0)
            }
            _ => 0,
        };
    }
    if meta.is_file() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.filter_map(Result::ok).map(|e| tree_size(root, &e.path())).sum())
        .unwrap_or(0)
}

/// One entry of a directory download: its real path and its name inside the archive.
struct Entry {
    real: PathBuf,
    name: String,
    is_dir: bool,
}

/// Every entry under `dir` (real paths, all checked to lie under `root`), parents before children.
fn collect_entries(
    root: &Path,
    dir: &Path,
    prefix: &str,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<Entry>,
) -> ApiResult<()> {
    if !seen.insert(dir.to_path_buf()) {
        return Ok(()); // a symlink loop inside the root: each directory once
    }
    let read = std::fs::read_dir(dir).map_err(|e| ApiError::Internal(format!("reading {}: {e}", dir.display())))?;
    let mut children: Vec<_> = read.filter_map(Result::ok).collect();
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let file_name = child.file_name().to_string_lossy().into_owned();
        let name = if prefix.is_empty() { file_name } else { format!("{prefix}/{file_name}") };
        let real = std::fs::canonicalize(child.path())
            .map_err(|e| ApiError::PermissionDenied(format!("`{name}` cannot be resolved: {e}")))?;
        if !real.starts_with(root) {
            return Err(ApiError::PermissionDenied(format!("`{name}` resolves outside the artifact root")));
        }
        if real.is_dir() {
            out.push(Entry { real: real.clone(), name: name.clone(), is_dir: true });
            collect_entries(root, &real, &name, seen, out)?;
        } else {
            out.push(Entry { real, name, is_dir: false });
        }
    }
    Ok(())
}

async fn download_response(s: &AppState, a: &ArtifactRecord) -> ApiResult<Response> {
    if s.engine.artifacts().is_remote() {
        return remote_download(s, a).await;
    }
    let root = s.engine.artifacts().root().to_path_buf();
    let real = locate(&root, a)?;
    let file_name: String =
        a.name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    if real.is_file() {
        let file = tokio::fs::File::open(&real)
            .await
            .map_err(|e| ApiError::Internal(format!("opening {}: {e}", real.display())))?;
        let len = file.metadata().await.map(|m| m.len()).ok();
        let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        if let Some(len) = len {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        insert_disposition(h, &file_name);
        return Ok(response);
    }
    // A directory: check every entry first, then stream a .tar.gz built on a blocking thread.
    let entries = {
        let (root, real) = (root.clone(), real.clone());
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            collect_entries(&root, &real, "", &mut HashSet::new(), &mut out).map(|()| out)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let id = a.id.clone();
    tokio::task::spawn_blocking(move || {
        let mut writer = ChunkWriter { tx: tx.clone(), buf: Vec::new() };
        if let Err(e) = write_tar_gz(&entries, &mut writer) {
            tracing::warn!(artifact_id = %id, error = %e, "artifact archive stream ended early");
            let _ = tx.blocking_send(Err(e));
        }
    });
    Ok(tar_gz_response(rx, &file_name))
}

/// The response streaming a folder's `.tar.gz` as a blocking writer sends its chunks into `rx`.
fn tar_gz_response(mut rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>, file_name: &str) -> Response {
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
    insert_disposition(h, &format!("{file_name}.tar.gz"));
    response
}

fn insert_disposition(h: &mut HeaderMap, file_name: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
}

fn write_tar_gz(entries: &[Entry], writer: &mut ChunkWriter) -> std::io::Result<()> {
    let gz = flate2::write::GzEncoder::new(&mut *writer, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for e in entries {
        if e.is_dir {
            tar.append_dir(&e.name, &e.real)?;
        } else {
            // Opened by its checked real path, so a symlink swapped in later is not followed.
            tar.append_path_with_name(&e.real, &e.name)?;
        }
    }
    tar.into_inner()?.finish()?;
    writer.flush()
}

/// Sends what is written as body chunks of about 64 KiB; fails once the client has gone.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

// ------------------------------------------------------------ artifacts in an S3 bucket

/// The artifact's files in the bucket, refusing a URI outside the artifact root (403) and an artifact
/// without bytes (404).
async fn remote_files(s: &AppState, a: &ArtifactRecord) -> ApiResult<Vec<(String, u64)>> {
    let store = s.engine.artifacts();
    store.relative(&a.uri).map_err(|_| {
        ApiError::PermissionDenied(format!("artifact `{}`: `{}` is outside the artifact root", a.id, a.uri))
    })?;
    let files = store.list_files(&a.uri).await?;
    if files.is_empty() {
        return Err(ApiError::NotFound(format!(
            "artifact `{}` has no file (metrics artifacts carry only metadata)",
            a.id
        )));
    }
    Ok(files)
}

/// KFP's GetArtifact for an artifact in S3 (`storage_provider` `s3`, the key under the root as path).
async fn remote_artifact_json(
    s: &AppState,
    a: &ArtifactRecord,
    namespace: &str,
    view: &str,
    headers: &HeaderMap,
) -> ApiResult<Value> {
    let store = s.engine.artifacts();
    let mut out = json!({
        "artifact_id": a.id,
        "storage_provider": "s3",
        "storage_path": store.relative(&a.uri).map(|p| p.to_string()).unwrap_or_default(),
        "uri": a.uri,
        "namespace": namespace,
        "artifact_type": a.schema_title,
        "created_at": ts(Some(a.created_at)),
        "last_updated_at": ts(Some(a.created_at)),
    });
    match remote_files(s, a).await {
        Ok(files) => {
            out["artifact_size"] = json!(files.iter().map(|(_, n)| n).sum::<u64>().to_string());
            if view == "DOWNLOAD" {
                out["download_url"] = json!(download_url(headers, &a.id));
            }
        }
        Err(e) => out["error"] = json!({"message": e.to_string()}),
    }
    Ok(out)
}

/// Streams an artifact from S3: a file as is, a folder as a `.tar.gz` built while its objects stream in.
async fn remote_download(s: &AppState, a: &ArtifactRecord) -> ApiResult<Response> {
    let files = remote_files(s, a).await?;
    let store = s.engine.artifacts().clone();
    let file_name: String =
        a.name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    if files.len() == 1 && files[0].0.is_empty() {
        let (len, stream) = store.stream(&a.uri).await?;
        let mut response = Body::from_stream(stream).into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        insert_disposition(h, &file_name);
        return Ok(response);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let (id, uri, handle) = (a.id.clone(), a.uri.clone(), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || {
        let mut writer = ChunkWriter { tx: tx.clone(), buf: Vec::new() };
        let archive = |writer: &mut ChunkWriter| {
            let gz = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
            let mut tar = tar::Builder::new(gz);
            for (rel, size) in &files {
                let file_uri = format!("{uri}/{rel}");
                let (_, stream) = handle.block_on(store.stream(&file_uri)).map_err(std::io::Error::other)?;
                let mut header = tar::Header::new_gnu();
                header.set_size(*size);
                header.set_mode(0o644);
                header.set_entry_type(tar::EntryType::Regular);
                tar.append_data(
                    &mut header,
                    rel,
                    BlockingStream { stream, handle: handle.clone(), chunk: Bytes::new() },
                )?;
            }
            tar.into_inner()?.finish()?;
            Ok::<(), std::io::Error>(())
        };
        let result = archive(&mut writer).and_then(|()| writer.flush());
        if let Err(e) = result {
            tracing::warn!(artifact_id = %id, error = %e, "artifact archive stream ended early");
            let _ = tx.blocking_send(Err(e));
        }
    });
    Ok(tar_gz_response(rx, &file_name))
}

/// A byte stream read synchronously (on a blocking thread) by waiting on the runtime for each chunk.
struct BlockingStream {
    stream: futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
    handle: tokio::runtime::Handle,
    chunk: Bytes,
}

impl std::io::Read for BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use futures::StreamExt;
        while self.chunk.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                Some(chunk) => self.chunk = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}
