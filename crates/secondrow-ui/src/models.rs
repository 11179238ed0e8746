//! The model registry's pages: registered models, one model's versions with their metrics, lineage (the run
//! and task that produced them) and deployments, and a deploy button (forwarded to the deployments API).

use std::collections::HashMap;

use askama::Template;
use axum::body::Body;
use axum::extract::{Extension, Path as UrlPath, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde_json::json;

use secondrow_api::auth::Caller;
use secondrow_store::registry::{Page, RegisteredModel, MAX_ID};

use crate::pages::{api_message, forward_body, rfc3339};
use crate::{csrf_refusal, error_page, html, Chrome, Csrf, Ui, UiError};

pub struct ModelRow {
    pub id: i64,
    pub name: String,
    pub state: String,
    pub namespace: String,
    pub description: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    c: Chrome,
    rows: Vec<ModelRow>,
}

pub async fn models(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
) -> Result<Response, UiError> {
    let all = Page { limit: MAX_ID, ..Page::default() };
    let list = ui.app.store().list_registered_models(caller.list_namespace(None)?, &all).await.map_err(api)?;
    let rows = list
        .into_iter()
        .map(|m| ModelRow {
            id: m.id,
            name: m.name,
            state: m.state,
            namespace: m.namespace,
            description: m.description.unwrap_or_default(),
            created: rfc3339(m.created_at),
        })
        .collect();
    Ok(html(ModelsPage { c: Chrome::new("Models", &csrf, Some(&caller), "models"), rows }.render()))
}

pub struct VersionRow {
    pub id: i64,
    pub name: String,
    pub state: String,
    pub author: String,
    pub created: String,
    /// `name=value` pairs.
    pub metrics: Vec<String>,
    pub run_id: String,
    pub task: String,
    pub uris: Vec<String>,
    /// `deployment:version` pairs.
    pub deployments: Vec<String>,
}

#[derive(Template)]
#[template(path = "model.html")]
struct ModelPage {
    c: Chrome,
    model: RegisteredModel,
    versions: Vec<VersionRow>,
}

fn api(e: secondrow_store::registry::RegistryError) -> UiError {
    UiError::Api(e.into())
}

async fn model_for(ui: &Ui, caller: &Caller, id: &str) -> Result<RegisteredModel, UiError> {
    let id: i64 = id.parse().map_err(|_| UiError::BadRequest(format!("`{id}` is not a model id")))?;
    let m = ui.app.store().get_registered_model(id).await.map_err(api)?;
    caller.check("registered model", &id.to_string(), &m.namespace)?;
    Ok(m)
}

pub async fn model(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, UiError> {
    let model = model_for(&ui, &caller, &id).await?;
    let store = ui.app.store();
    let all = Page { limit: MAX_ID, ..Page::default() };
    let mut versions = Vec::new();
    for v in store.list_model_versions(Some(&model.namespace), Some(model.id), &all).await.map_err(api)? {
        let v = store.get_model_version(v.id).await.map_err(api)?;
        let artifacts =
            store.list_model_artifacts(Some(&model.namespace), Some(v.id), None, &all).await.map_err(api)?;
        let lineage = v.lineage.clone();
        let metrics = lineage
            .as_ref()
            .and_then(|l| l.metrics.as_object().cloned())
            .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default();
        versions.push(VersionRow {
            id: v.id,
            name: v.name,
            state: v.state,
            author: v.author.unwrap_or_default(),
            created: rfc3339(v.created_at),
            metrics,
            run_id: lineage.as_ref().map(|l| l.run_id.clone()).unwrap_or_default(),
            task: lineage.and_then(|l| l.task).unwrap_or_default(),
            uris: artifacts.into_iter().map(|a| a.uri).collect(),
            deployments: v.deployments.iter().map(|d| format!("{}:{}", d.deployment, d.version)).collect(),
        });
    }
    let title = format!("Model {}", model.name);
    Ok(html(ModelPage { c: Chrome::new(title, &csrf, Some(&caller), "models"), model, versions }.render()))
}

/// The deploy button: `POST /models/{id}/versions/{version id}/deploy` with `deployment` (the deployment name),
/// forwarded to `POST /apis/v2beta1/deployments` with the caller's credentials (deployments need the admin).
pub async fn deploy(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    UrlPath((id, version)): UrlPath<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = csrf_refusal(&headers, &csrf, form.get("csrf").map(String::as_str)) {
        return r;
    }
    let model = match model_for(&ui, &caller, &id).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let version = match version.parse::<i64>().map(|v| (v, ui.app.store())) {
        Ok((v, store)) => match store.get_model_version(v).await {
            Ok(v) if v.registered_model_id == model.id => v.name,
            Ok(_) => return error_page(axum::http::StatusCode::NOT_FOUND, "no such version of this model", None),
            Err(e) => return api(e).into_response(),
        },
        Err(_) => return error_page(axum::http::StatusCode::BAD_REQUEST, "bad version id", None),
    };
    let name = form.get("deployment").map(|s| s.trim()).filter(|s| !s.is_empty()).unwrap_or(&model.name).to_owned();
    let body = json!({
        "name": name,
        "source": {"registered_model": model.name, "model_version": version, "namespace": model.namespace},
    });
    let r = forward_body(&ui, Method::POST, "/apis/v2beta1/deployments", &headers, Body::from(body.to_string())).await;
    if !r.status().is_success() {
        let status = r.status();
        return error_page(status, &api_message(r).await, None);
    }
    Redirect::to(&format!("/models/{}", model.id)).into_response()
}
