//! Notebooks: managed JupyterLab servers per namespace (Kubeflow Notebooks without Kubernetes).
//!
//! REST resource `/apis/v2beta1/notebooks` (namespace-scoped like runs: a namespace token sees and changes
//! its own namespace's notebooks only):
//! - `GET  /notebooks[?namespace=NS]`: `{"notebooks": [...]}`;
//! - `POST /notebooks` `{"name", "namespace"?, "packages"?: [..], "python"?}`: makes the environment (once per
//!   package set), records the notebook and starts it; answers the notebook in `Starting`;
//! - `GET  /notebooks/{ns}/{name}`, `POST .../stop`, `POST .../start`, `GET .../logs` (text),
//!   `DELETE /notebooks/{ns}/{name}[?keep_workspace=true]`.
//!
//! Each notebook answers at `/notebook/NS/NAME/` through the proxy ([`proxy`]); its processes are the
//! [`supervisor`]'s.

pub mod proxy;
pub mod supervisor;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use secondrow_store::notebooks::{validate_notebook_name, NewNotebook, NotebookRecord, NotebookState};
use secondrow_store::validate_namespace;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub use supervisor::{culler, recover, NotebookSettings, Notebooks};

/// The namespace of a notebook made by the admin (or with auth off) without naming one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The REST routes (under `/apis/v2beta1`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/notebooks", get(list).post(create))
        .route("/notebooks/{namespace}/{name}", get(get_one).delete(delete))
        .route("/notebooks/{namespace}/{name}/stop", post(stop))
        .route("/notebooks/{namespace}/{name}/start", post(start))
        .route("/notebooks/{namespace}/{name}/logs", get(logs))
}

/// The proxy routes (at the root): the notebooks themselves and the KFP endpoint inside them.
pub fn proxy_routes() -> Router<AppState> {
    Router::new()
        .route("/notebook/{namespace}/{name}", any(proxy::forward))
        .route("/notebook/{namespace}/{name}/{*rest}", any(proxy::forward))
        .route("/kfp-notebook/{namespace}/{name}/{secret}/{*rest}", any(proxy::kfp_api))
}

/// What `KF_PIPELINES_ENDPOINT` holds inside a notebook.
pub(crate) fn kfp_endpoint(api_url: &str, nb: &NotebookRecord) -> String {
    proxy::kfp_endpoint(api_url, &nb.namespace, &nb.name, &nb.secret)
}

/// The wire form: the record (never its secret) and its URL path.
fn wire(nb: &NotebookRecord) -> Value {
    let mut v = serde_json::to_value(nb).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("url".into(), json!(supervisor::base_url(&nb.namespace, &nb.name)));
    }
    v
}

#[derive(Deserialize)]
struct ListQuery {
    namespace: Option<String>,
}

async fn list(State(s): State<AppState>, caller: Caller, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let ns = caller.list_namespace(q.namespace.as_deref())?;
    let all = s.store().list_notebooks(ns).await?;
    Ok(Json(json!({ "notebooks": all.iter().map(wire).collect::<Vec<_>>() })))
}

/// Packages as a list, or as one string of space-separated requirements.
#[derive(Deserialize)]
#[serde(untagged)]
enum Packages {
    List(Vec<String>),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    packages: Option<Packages>,
    #[serde(default)]
    python: Option<String>,
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(body) = body.map_err(|e| ApiError::invalid(format!("notebook: {}", e.body_text())))?;
    let ns = caller.namespace_for_new(body.namespace.as_deref())?;
    let ns = if ns.is_empty() { DEFAULT_NAMESPACE.to_owned() } else { ns };
    validate_namespace(&ns)?;
    validate_notebook_name(&body.name)?;
    let packages: Vec<String> = match body.packages {
        None => Vec::new(),
        Some(Packages::List(l)) => l,
        Some(Packages::Text(t)) => t.split_whitespace().map(str::to_owned).collect(),
    };
    if let Some(bad) = packages.iter().find(|p| p.trim().is_empty() || p.starts_with('-')) {
        return Err(ApiError::invalid(format!("packages: `{bad}` is not a requirement (options are not accepted)")));
    }
    let _guard = s.notebooks.lock.lock().await;
    if s.store().get_notebook(&ns, &body.name).await.is_ok() {
        return Err(ApiError::AlreadyExists(format!("notebook `{ns}/{}` already exists", body.name)));
    }
    let dir = s.notebooks.dir(&ns, &body.name)?;
    // The environment first: a package that does not exist fails here, before anything is recorded.
    let python = supervisor::notebook_python(&s, body.python.as_deref(), &packages).await?;
    let scratch = s.notebooks.settings()?.root.clone();
    std::fs::create_dir_all(&scratch).map_err(|e| ApiError::Internal(format!("{}: {e}", scratch.display())))?;
    supervisor::check_python(&s, &python, &scratch).await?;
    let workspace = dir.join("workspace");
    let secret = format!("{}{}", uuid_hex(), uuid_hex());
    let nb = s
        .store()
        .create_notebook(&NewNotebook {
            namespace: &ns,
            name: &body.name,
            python: body.python.as_deref(),
            packages: &packages,
            secret: &secret,
            workspace: &workspace.to_string_lossy(),
        })
        .await?;
    match supervisor::launch(&s, &nb, true).await {
        Ok(nb) => Ok(Json(wire(&nb))),
        Err(e) => {
            // Nothing half-created: the row and the folder go (a kept workspace of an earlier notebook stays).
            s.notebooks.kill(&ns, &body.name).await;
            let _ = s.store().delete_notebook(&ns, &body.name).await;
            let _ = std::fs::remove_dir_all(dir.join("home"));
            let _ = std::fs::remove_file(dir.join("jupyter.log"));
            Err(e)
        }
    }
}

fn uuid_hex() -> String {
    secondrow_store::new_id().replace('-', "")
}

/// The notebook `ns/name`, if the caller may reach it.
async fn reach(s: &AppState, caller: &Caller, ns: &str, name: &str) -> ApiResult<NotebookRecord> {
    caller.check("notebook", &format!("{ns}/{name}"), ns)?;
    Ok(s.store().get_notebook(ns, name).await?)
}

async fn get_one(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(wire(&reach(&s, &caller, &ns, &name).await?)))
}

async fn stop(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    reach(&s, &caller, &ns, &name).await?;
    let _guard = s.notebooks.lock.lock().await;
    let nb = supervisor::stop(&s, &ns, &name, NotebookState::Stopped, None).await?;
    Ok(Json(wire(&nb)))
}

async fn start(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let nb = reach(&s, &caller, &ns, &name).await?;
    let _guard = s.notebooks.lock.lock().await;
    if nb.state.is_up() {
        return Err(ApiError::FailedPrecondition(format!("notebook `{ns}/{name}` is already {}", nb.state)));
    }
    let nb = supervisor::launch(&s, &nb, false).await?;
    Ok(Json(wire(&nb)))
}

#[derive(Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    keep_workspace: bool,
}

async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<Value>> {
    reach(&s, &caller, &ns, &name).await?;
    let _guard = s.notebooks.lock.lock().await;
    s.notebooks.kill(&ns, &name).await;
    let nb = s.store().delete_notebook(&ns, &name).await?;
    let dir = s.notebooks.dir(&ns, &name)?;
    if q.keep_workspace {
        let _ = std::fs::remove_dir_all(dir.join("home"));
        let _ = std::fs::remove_file(dir.join("jupyter.log"));
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(Json(json!({ "deleted": wire(&nb), "workspace_kept": q.keep_workspace })))
}

/// The Jupyter server's log (its last MiB).
async fn logs(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    reach(&s, &caller, &ns, &name).await?;
    let path = s.notebooks.dir(&ns, &name)?.join("jupyter.log");
    let text = std::fs::read(&path).unwrap_or_default();
    let tail = text[text.len().saturating_sub(1 << 20)..].to_vec();
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], tail))
}
