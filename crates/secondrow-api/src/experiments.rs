//! Experiments: create, get, list, archive/unarchive, delete.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use secondrow_store::{Experiment, ListFilter};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{split_action, ApiJson, ApiPath, ApiQuery};
use crate::list::{list_request, page_json, sql_page, ListQuery};
use crate::{ts, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/experiments", post(create).get(list))
        .route("/experiments/{id}", get(get_one).delete(delete).post(action))
}

pub const KEYS: &[&str] = &["experiment_id", "display_name", "description", "namespace", "storage_state", "created_at"];

/// The store column of a listing key (the others are named alike).
fn column(key: &str) -> Option<&'static str> {
    (key == "experiment_id").then_some("id")
}

pub fn wire(e: &Experiment) -> Value {
    json!({
        "experiment_id": e.id,
        "display_name": e.display_name,
        "description": e.description,
        "namespace": e.namespace,
        "storage_state": e.storage_state,
        "created_at": ts(Some(e.created_at)),
    })
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Json<Value>> {
    if body.display_name.trim().is_empty() {
        return Err(ApiError::invalid("experiment display_name must not be empty"));
    }
    let namespace = caller.namespace_for_new(body.namespace.as_deref())?;
    let e =
        s.store().create_experiment(&body.display_name, body.description.as_deref().unwrap_or(""), &namespace).await?;
    Ok(Json(wire(&e)))
}

async fn get_one(State(s): State<AppState>, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    Ok(Json(wire(&caller.experiment(&s, &id).await?)))
}

async fn list(State(s): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<Json<Value>> {
    let ns = caller.list_namespace(q.namespace.as_deref())?;
    let scope = ns.map(|ns| ListFilter::eq("namespace", ns)).into_iter().collect();
    let (request, offset) = list_request(&q, KEYS, column, scope)?;
    let page = s.store().list_page::<Experiment>(&request).await?;
    let items = page.items.iter().map(wire).collect();
    Ok(Json(page_json("experiments", sql_page(items, offset, page.more, page.total))))
}

async fn delete(State(s): State<AppState>, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    caller.experiment(&s, &id).await?;
    s.store().delete_experiment(&id).await?;
    Ok(Json(json!({})))
}

async fn action(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id_action): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let (id, action) = split_action(&id_action)?;
    caller.experiment(&s, id).await?;
    let storage = match action {
        "archive" => "ARCHIVED",
        "unarchive" => "AVAILABLE",
        other => return Err(ApiError::NotFound(format!("unknown experiment method `{other}`"))),
    };
    s.store().set_experiment_storage_state(id, storage).await?;
    Ok(Json(json!({})))
}
