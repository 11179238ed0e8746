//! Pipelines and their versions: multipart upload (the YAML as the compiler writes it, or a `.zip` /
//! `.tar.gz` holding exactly one), creation from JSON bodies (`POST /pipelines`, `POST /pipelines/create`,
//! `POST /pipelines/{id}/versions`), get, list, delete. Every spec is validated before anything is written.

use std::io::Read;

use axum::extract::{Multipart, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use secondrow_spec::Pipeline;
use secondrow_store::{CmpOp, ListFilter, PipelineRecord, PipelineVersionRecord, SqlValue};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::list::{list_request, page_json, sql_page, ListQuery};
use crate::{ts, validation, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pipelines", get(list).post(create))
        .route("/pipelines/create", post(create_with_version))
        .route("/pipelines/upload", post(upload))
        .route("/pipelines/upload_version", post(upload_version))
        .route("/pipelines/{id}", get(get_one).delete(delete))
        .route("/pipelines/{id}/versions", get(list_versions).post(create_version))
        .route("/pipelines/{id}/versions/{vid}", get(get_version).delete(delete_version))
}

const KEYS: &[&str] = &["pipeline_id", "display_name", "description", "namespace", "created_at"];
const VERSION_KEYS: &[&str] = &["pipeline_version_id", "pipeline_id", "display_name", "description", "created_at"];

/// The store column of a listing key (the others are named alike).
fn column(key: &str) -> Option<&'static str> {
    (key == "pipeline_id").then_some("id")
}

fn version_column(key: &str) -> Option<&'static str> {
    (key == "pipeline_version_id").then_some("id")
}

fn wire(p: &PipelineRecord) -> Value {
    json!({
        "pipeline_id": p.id,
        "display_name": p.display_name,
        "name": p.name,
        "description": p.description,
        "namespace": p.namespace,
        "created_at": ts(Some(p.created_at)),
    })
}

fn wire_version(v: &PipelineVersionRecord) -> Value {
    let mut out = json!({
        "pipeline_id": v.pipeline_id,
        "pipeline_version_id": v.id,
        "display_name": v.display_name,
        "name": v.name,
        "description": v.description,
        "created_at": ts(Some(v.created_at)),
    });
    if !v.spec.is_null() {
        out["pipeline_spec"] = v.spec.clone();
    }
    out
}

/// The spec document as stored: the first YAML document, or `{pipeline_spec, platform_spec}`.
pub fn spec_document(p: &Pipeline) -> Value {
    match &p.platform_spec {
        Some(platform) => json!({"pipeline_spec": p.document, "platform_spec": platform}),
        None => p.document.clone(),
    }
}

pub fn digest(doc: &Value) -> String {
    hex::encode(Sha256::digest(doc.to_string().as_bytes()))
}

#[derive(Deserialize, Default)]
struct UploadQuery {
    name: Option<String>,
    description: Option<String>,
    namespace: Option<String>,
    pipelineid: Option<String>,
}

/// Reads the `uploadfile` part (any file part is accepted) and validates it as a pipeline.
async fn read_upload(mut multipart: Multipart) -> ApiResult<(Pipeline, Option<String>)> {
    while let Some(field) = multipart.next_field().await.map_err(crate::extract::multipart_error)? {
        let is_file = field.name() == Some("uploadfile") || field.file_name().is_some();
        if !is_file {
            continue;
        }
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(crate::extract::multipart_error)?;
        // Decompressing and validating are CPU work: off the async workers.
        let text = tokio::task::spawn_blocking(move || pipeline_text(&bytes))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
        let pipeline = validation::from_yaml(text).await?;
        return Ok((pipeline, file_name));
    }
    Err(ApiError::invalid("multipart body has no `uploadfile` part"))
}

async fn upload(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UploadQuery>,
    multipart: Multipart,
) -> ApiResult<Json<Value>> {
    let namespace = caller.namespace_for_new(q.namespace.as_deref())?;
    let (pipeline, _) = read_upload(multipart).await?;
    let name = q.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| pipeline.name().to_owned());
    let description = q.description.or_else(|| pipeline.spec.pipeline_info.description.clone()).unwrap_or_default();
    let doc = spec_document(&pipeline);
    let (p, _) =
        s.store().create_pipeline_with_version(&name, &description, &namespace, &name, &doc, &digest(&doc)).await?;
    Ok(Json(wire(&p)))
}

async fn upload_version(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UploadQuery>,
    multipart: Multipart,
) -> ApiResult<Json<Value>> {
    let pipeline_id = q
        .pipelineid
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::invalid("query parameter `pipelineid` is required"))?;
    caller.pipeline(&s, &pipeline_id, true).await?;
    let (pipeline, file_name) = read_upload(multipart).await?;
    let name = q
        .name
        .filter(|n| !n.trim().is_empty())
        .or(file_name)
        .unwrap_or_else(|| format!("{}-{}", pipeline.name(), chrono::Utc::now().format("%Y%m%d%H%M%S")));
    let doc = spec_document(&pipeline);
    let v = s
        .store()
        .create_pipeline_version(&pipeline_id, &name, q.description.as_deref().unwrap_or(""), &doc, &digest(&doc))
        .await?;
    Ok(Json(wire_version(&v)))
}

async fn get_one(State(s): State<AppState>, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    Ok(Json(wire(&caller.pipeline(&s, &id, false).await?)))
}

async fn list(State(s): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<Json<Value>> {
    let ns = caller.list_namespace(q.namespace.as_deref())?.filter(|n| !n.is_empty());
    // A namespace token sees its own pipelines and the shared ones.
    let scope = match (caller.confined_to(), ns) {
        (Some(mine), _) => vec![ListFilter {
            column: "namespace".into(),
            op: CmpOp::In,
            values: vec![SqlValue::Text(mine.to_owned()), SqlValue::Text(String::new())],
        }],
        (None, Some(ns)) => vec![ListFilter::eq("namespace", ns)],
        (None, None) => Vec::new(),
    };
    let (request, offset) = list_request(&q, KEYS, column, scope)?;
    let page = s.store().list_page::<PipelineRecord>(&request).await?;
    let items = page.items.iter().map(wire).collect();
    Ok(Json(page_json("pipelines", sql_page(items, offset, page.more, page.total))))
}

async fn delete(State(s): State<AppState>, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    caller.pipeline(&s, &id, true).await?;
    s.store().delete_pipeline(&id).await?;
    Ok(Json(json!({})))
}

async fn list_versions(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.pipeline(&s, &id, false).await?;
    let (request, offset) = list_request(&q, VERSION_KEYS, version_column, vec![ListFilter::eq("pipeline_id", id)])?;
    let page = s.store().list_page::<PipelineVersionRecord>(&request).await?;
    let items = page.items.iter().map(wire_version).collect();
    Ok(Json(page_json("pipeline_versions", sql_page(items, offset, page.more, page.total))))
}

async fn get_version(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((id, vid)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.pipeline(&s, &id, false).await?;
    Ok(Json(wire_version(&s.store().get_pipeline_version(&id, &vid).await?)))
}

async fn delete_version(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((id, vid)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.pipeline(&s, &id, true).await?;
    s.store().delete_pipeline_version(&id, &vid).await?;
    Ok(Json(json!({})))
}

/// Largest pipeline file taken out of an archive, and most bytes decompressed from one archive in all.
const MAX_PIPELINE_BYTES: u64 = 32 * 1024 * 1024;
const MAX_ARCHIVE_BYTES: u64 = 256 * 1024 * 1024;
/// Most entries an archive may hold.
const MAX_ARCHIVE_ENTRIES: usize = 10_000;

/// The pipeline text of an upload: the file itself, or the one `.yaml`/`.yml`/`.json` inside a `.zip` or
/// `.tar.gz` (recognized by their magic bytes, whatever the file name says).
pub fn pipeline_text(bytes: &[u8]) -> ApiResult<String> {
    let (name, content) = if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        from_zip(bytes)?
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        from_tar_gz(bytes)?
    } else {
        return String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::invalid("the uploaded file is not UTF-8 text"));
    };
    String::from_utf8(content).map_err(|_| ApiError::invalid(format!("`{name}` in the archive is not UTF-8 text")))
}

fn is_pipeline_file(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    let lower = base.to_ascii_lowercase();
    // Not macOS resource forks (`__MACOSX/`, `._x.yaml`) nor other hidden files.
    !base.starts_with('.')
        && !name.starts_with("__MACOSX/")
        && (lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json"))
}

/// Picks the single pipeline file among an archive's files, or explains what was found.
fn single_pipeline(files: &[String], kind: &str) -> ApiResult<usize> {
    let candidates: Vec<usize> = (0..files.len()).filter(|i| is_pipeline_file(&files[*i])).collect();
    match candidates.as_slice() {
        [one] => Ok(*one),
        [] => Err(ApiError::invalid(format!(
            "the {kind} archive holds no .yaml, .yml or .json file (entries: {})",
            list_names(files)
        ))),
        many => Err(ApiError::invalid(format!(
            "the {kind} archive must hold exactly one pipeline file; found {}: {}",
            many.len(),
            list_names(&many.iter().map(|i| files[*i].clone()).collect::<Vec<_>>())
        ))),
    }
}

fn list_names(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    let shown: Vec<String> = names.iter().take(20).map(|n| format!("`{n}`")).collect();
    let more = names.len().saturating_sub(20);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Reads at most `limit` bytes; more is an error naming the entry (sizes in headers are not trusted).
fn read_limited(r: impl Read, name: &str, limit: u64) -> ApiResult<Vec<u8>> {
    let mut out = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::invalid(format!("reading `{name}` from the archive: {e}")))?;
    if out.len() as u64 > limit {
        return Err(ApiError::invalid(format!("`{name}` in the archive is larger than {} MiB", limit / (1024 * 1024))));
    }
    Ok(out)
}

fn from_zip(bytes: &[u8]) -> ApiResult<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| ApiError::invalid(format!("not a valid .zip: {e}")))?;
    if zip.len() > MAX_ARCHIVE_ENTRIES {
        return Err(ApiError::invalid(format!(
            "the .zip archive has {} entries (at most {MAX_ARCHIVE_ENTRIES})",
            zip.len()
        )));
    }
    let mut files = Vec::new();
    let mut indices = Vec::new();
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|e| ApiError::invalid(format!("not a valid .zip: {e}")))?;
        if !entry.is_dir() {
            files.push(entry.name().to_owned());
            indices.push(i);
        }
    }
    let pick = single_pipeline(&files, ".zip")?;
    let entry =
        zip.by_index(indices[pick]).map_err(|e| ApiError::invalid(format!("`{}` in the .zip: {e}", files[pick])))?;
    let content = read_limited(entry, &files[pick], MAX_PIPELINE_BYTES)?;
    Ok((files[pick].clone(), content))
}

fn from_tar_gz(bytes: &[u8]) -> ApiResult<(String, Vec<u8>)> {
    let invalid = |e: std::io::Error| ApiError::invalid(format!("reading the .tar.gz: {e}"));
    // Bounded decompression: a gzip bomb stops at MAX_ARCHIVE_BYTES.
    let decoded = Capped { inner: flate2::read::GzDecoder::new(bytes), left: MAX_ARCHIVE_BYTES };
    let mut archive = tar::Archive::new(decoded);
    let mut files = Vec::new();
    let mut found: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in archive.entries().map_err(invalid)? {
        let entry = entry.map_err(invalid)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(invalid)?.to_string_lossy().trim_start_matches("./").to_owned();
        if files.len() >= MAX_ARCHIVE_ENTRIES {
            return Err(ApiError::invalid(format!("the .tar.gz archive has more than {MAX_ARCHIVE_ENTRIES} files")));
        }
        if is_pipeline_file(&name) && found.is_empty() {
            let content = read_limited(entry, &name, MAX_PIPELINE_BYTES)?;
            found.push((name.clone(), content));
        }
        files.push(name);
    }
    single_pipeline(&files, ".tar.gz")?;
    found.pop().ok_or_else(|| ApiError::Internal("pipeline entry not read".into()))
}

/// A reader that fails once more than `left` bytes come out of `inner`.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(format!(
                    "larger than {} MiB decompressed",
                    MAX_ARCHIVE_BYTES / (1024 * 1024)
                ))),
            };
        }
        let max = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// `{display_name | name, description, namespace}` of a pipeline in a request body.
#[derive(Deserialize, Default)]
struct PipelineBody {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize, Default)]
struct VersionBody {
    #[serde(default)]
    pipeline_id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    pipeline_spec: Option<Value>,
    #[serde(default)]
    package_url: Option<Value>,
}

#[derive(Deserialize)]
struct CreateWithVersionBody {
    #[serde(default)]
    pipeline: Option<PipelineBody>,
    #[serde(default)]
    pipeline_version: Option<VersionBody>,
}

/// The display name of a body (`display_name`, else `name`), required.
fn body_name(field: &str, display_name: Option<String>, name: Option<String>) -> ApiResult<String> {
    display_name
        .filter(|n| !n.trim().is_empty())
        .or(name.filter(|n| !n.trim().is_empty()))
        .ok_or_else(|| ApiError::invalid(format!("{field}.display_name is required")))
}

/// The validated pipeline of a version body (its inline `pipeline_spec`).
async fn version_pipeline(field: &str, v: &VersionBody) -> ApiResult<Pipeline> {
    if v.package_url.as_ref().is_some_and(|u| !u.is_null()) {
        return Err(ApiError::invalid(format!(
            "{field}.package_url: fetching pipelines from URLs is not supported; send the spec as {field}.pipeline_spec"
        )));
    }
    match &v.pipeline_spec {
        Some(spec) if spec.is_object() => {
            validation::from_json_at(&format!("{field}.pipeline_spec"), spec.clone()).await
        }
        Some(spec) if !spec.is_null() => Err(ApiError::invalid(format!("{field}.pipeline_spec must be an object"))),
        _ => Err(ApiError::invalid(format!("{field}.pipeline_spec is required"))),
    }
}

/// `POST /pipelines`: a pipeline without versions; they come later through `/pipelines/{id}/versions`.
async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(p): ApiJson<PipelineBody>,
) -> ApiResult<Json<Value>> {
    let namespace = caller.namespace_for_new(p.namespace.as_deref())?;
    let name = body_name("pipeline", p.display_name, p.name)?;
    let record = s.store().create_pipeline(&name, p.description.as_deref().unwrap_or(""), &namespace).await?;
    tracing::info!(pipeline_id = %record.id, "pipeline created");
    Ok(Json(wire(&record)))
}

/// `POST /pipelines/create`: a pipeline and its first version in one body and one transaction.
async fn create_with_version(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWithVersionBody>,
) -> ApiResult<Json<Value>> {
    let p = body.pipeline.ok_or_else(|| ApiError::invalid("pipeline is required"))?;
    let namespace = caller.namespace_for_new(p.namespace.as_deref())?;
    let v = body.pipeline_version.ok_or_else(|| ApiError::invalid("pipeline_version is required"))?;
    let name = body_name("pipeline", p.display_name, p.name)?;
    let pipeline = version_pipeline("pipeline_version", &v).await?;
    let version_name = v.display_name.or(v.name).filter(|n| !n.trim().is_empty()).unwrap_or_else(|| name.clone());
    let description = p.description.or_else(|| pipeline.spec.pipeline_info.description.clone()).unwrap_or_default();
    let doc = spec_document(&pipeline);
    let (record, version) = s
        .store()
        .create_pipeline_with_version(&name, &description, &namespace, &version_name, &doc, &digest(&doc))
        .await?;
    tracing::info!(pipeline_id = %record.id, version_id = %version.id, "pipeline created");
    Ok(Json(wire(&record)))
}

/// `POST /pipelines/{id}/versions`: a version from a JSON body with the spec inline.
async fn create_version(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(v): ApiJson<VersionBody>,
) -> ApiResult<Json<Value>> {
    caller.pipeline(&s, &id, true).await?;
    if let Some(other) = v.pipeline_id.as_deref().filter(|p| !p.is_empty() && *p != id) {
        return Err(ApiError::invalid(format!("pipeline_id `{other}` in the body does not match `{id}` in the path")));
    }
    let name = body_name("pipeline_version", v.display_name.clone(), v.name.clone())?;
    let pipeline = version_pipeline("pipeline_version", &v).await?;
    let doc = spec_document(&pipeline);
    let version = s
        .store()
        .create_pipeline_version(&id, &name, v.description.as_deref().unwrap_or(""), &doc, &digest(&doc))
        .await?;
    Ok(Json(wire_version(&version)))
}
