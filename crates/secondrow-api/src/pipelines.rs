//! Pipelines and their versions: multipart upload (YAML as the compiler writes it), get, list, delete.

use axum::extract::{Multipart, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use secondrow_spec::Pipeline;
use secondrow_store::{PipelineRecord, PipelineVersionRecord};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::list::{page_json, paginate, ListQuery};
use crate::{ts, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pipelines", get(list))
        .route("/pipelines/upload", post(upload))
        .route("/pipelines/upload_version", post(upload_version))
        .route("/pipelines/{id}", get(get_one).delete(delete))
        .route("/pipelines/{id}/versions", get(list_versions))
        .route("/pipelines/{id}/versions/{vid}", get(get_version).delete(delete_version))
}

const KEYS: &[&str] = &["pipeline_id", "display_name", "description", "namespace", "created_at"];
const VERSION_KEYS: &[&str] = &["pipeline_version_id", "pipeline_id", "display_name", "description", "created_at"];

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
    while let Some(field) = multipart.next_field().await.map_err(|e| ApiError::invalid(format!("multipart body: {e}")))? {
        let is_file = field.name() == Some("uploadfile") || field.file_name().is_some();
        if !is_file {
            continue;
        }
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(|e| ApiError::invalid(format!("multipart body: {e}")))?;
        if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&[0x1f, 0x8b]) {
            return Err(ApiError::invalid("archives (.zip, .tar.gz) are not supported; upload the pipeline YAML"));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::invalid("the uploaded file is not UTF-8 text"))?;
        let pipeline = Pipeline::from_yaml(text)?;
        return Ok((pipeline, file_name));
    }
    Err(ApiError::invalid("multipart body has no `uploadfile` part"))
}

async fn upload(State(s): State<AppState>, ApiQuery(q): ApiQuery<UploadQuery>, multipart: Multipart) -> ApiResult<Json<Value>> {
    let (pipeline, _) = read_upload(multipart).await?;
    let name = q.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| pipeline.name().to_owned());
    let description = q
        .description
        .or_else(|| pipeline.spec.pipeline_info.description.clone())
        .unwrap_or_default();
    let doc = spec_document(&pipeline);
    let (p, _) = s
        .store()
        .create_pipeline_with_version(&name, &description, q.namespace.as_deref().unwrap_or(""), &name, &doc, &digest(&doc))
        .await?;
    Ok(Json(wire(&p)))
}

async fn upload_version(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    multipart: Multipart,
) -> ApiResult<Json<Value>> {
    let pipeline_id = q.pipelineid.filter(|p| !p.is_empty()).ok_or_else(|| ApiError::invalid("query parameter `pipelineid` is required"))?;
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

async fn get_one(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    Ok(Json(wire(&s.store().get_pipeline(&id).await?)))
}

async fn list(State(s): State<AppState>, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<Json<Value>> {
    let ns = q.namespace.as_deref().filter(|n| !n.is_empty());
    let items = s.store().list_pipelines(ns).await?.iter().map(wire).collect();
    Ok(Json(page_json("pipelines", paginate(items, &q, KEYS)?)))
}

async fn delete(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    s.store().delete_pipeline(&id).await?;
    Ok(Json(json!({})))
}

async fn list_versions(State(s): State<AppState>, ApiPath(id): ApiPath<String>, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<Json<Value>> {
    s.store().get_pipeline(&id).await?;
    let items = s.store().list_pipeline_versions(&id).await?.iter().map(wire_version).collect();
    Ok(Json(page_json("pipeline_versions", paginate(items, &q, VERSION_KEYS)?)))
}

async fn get_version(State(s): State<AppState>, ApiPath((id, vid)): ApiPath<(String, String)>) -> ApiResult<Json<Value>> {
    Ok(Json(wire_version(&s.store().get_pipeline_version(&id, &vid).await?)))
}

async fn delete_version(State(s): State<AppState>, ApiPath((id, vid)): ApiPath<(String, String)>) -> ApiResult<Json<Value>> {
    s.store().delete_pipeline_version(&id, &vid).await?;
    Ok(Json(json!({})))
}
