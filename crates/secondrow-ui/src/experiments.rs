//! Experiments: the list with its create form (name, description), archive/restore and delete, and an
//! experiment's page with its latest runs and its recurring runs. Every change goes through the API; a
//! refused create comes back on the form.

use askama::Template;
use axum::extract::{Extension, Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde_json::{json, Value};

use secondrow_api::auth::Caller;
use secondrow_store::{RunColumn, RunFilter, RunListQuery};

use crate::forms::{call, done, text, FormMap};
use crate::graph::url_part;
use crate::pages::rfc3339;
use crate::{csrf_refusal, error_page, html, Chrome, Csrf, Ui, UiError};

/// Latest runs shown on an experiment's page (the runs page lists them all).
const LATEST_RUNS: i64 = 20;

pub struct ExperimentRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub archived: bool,
    pub created: String,
}

#[derive(Template)]
#[template(path = "experiments.html")]
struct ExperimentsPage {
    c: Chrome,
    rows: Vec<ExperimentRow>,
    /// A refused create: the message and what was typed.
    error: String,
    name: String,
    description: String,
}

async fn list_page(
    ui: &Ui,
    caller: &Caller,
    csrf: &Csrf,
    refused: Option<(&FormMap, String)>,
) -> Result<Response, UiError> {
    let list = ui.app.store().list_experiments(caller.list_namespace(None)?).await?;
    let rows = list
        .into_iter()
        .rev()
        .map(|e| ExperimentRow {
            archived: e.storage_state == "ARCHIVED",
            id: e.id,
            name: e.display_name,
            description: e.description,
            namespace: e.namespace,
            created: rfc3339(e.created_at),
        })
        .collect();
    let (error, name, description) = match refused {
        Some((f, m)) => (m, text(f, "name").to_owned(), text(f, "description").to_owned()),
        None => Default::default(),
    };
    let c = Chrome::new("Experiments", csrf, Some(caller), "experiments");
    Ok(html(ExperimentsPage { c, rows, error, name, description }.render()))
}

/// `GET /experiments`.
pub async fn experiments(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
) -> Result<Response, UiError> {
    list_page(&ui, &caller, &csrf, None).await
}

/// `POST /experiments`: a new experiment from the form, then its page; a refusal comes back on the form.
pub async fn create(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    Form(form): Form<FormMap>,
) -> Response {
    if let Some(r) = csrf_refusal(&headers, &csrf, form.get("csrf").map(String::as_str)) {
        return r;
    }
    let body = json!({"display_name": text(&form, "name"), "description": text(&form, "description")});
    match call(&ui, Method::POST, "/apis/v2beta1/experiments", &headers, Some(body)).await {
        Ok(e) => {
            let id = e.get("experiment_id").and_then(Value::as_str).unwrap_or_default();
            done(&headers, &format!("/experiments/{}", url_part(id, false)))
        }
        Err(f) if f.status == StatusCode::BAD_REQUEST || f.status == StatusCode::CONFLICT => {
            match list_page(&ui, &caller, &csrf, Some((&form, f.message))).await {
                Ok(page) => (f.status, page).into_response(),
                Err(e) => e.into_response(),
            }
        }
        Err(f) => f.page(),
    }
}

/// `POST /experiments/ID/do/archive|unarchive|delete`, through the API; back to the list when the form
/// says `back=list`, else to the experiment (the list after a delete).
pub async fn action(
    State(ui): State<Ui>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    UrlPath((id, action)): UrlPath<(String, String)>,
    Form(form): Form<FormMap>,
) -> Response {
    if let Some(r) = csrf_refusal(&headers, &csrf, form.get("csrf").map(String::as_str)) {
        return r;
    }
    let eid = url_part(&id, false);
    let (method, uri) = match action.as_str() {
        "archive" | "unarchive" => (Method::POST, format!("/apis/v2beta1/experiments/{eid}:{action}")),
        "delete" => (Method::DELETE, format!("/apis/v2beta1/experiments/{eid}")),
        other => return error_page(StatusCode::NOT_FOUND, &format!("unknown action `{other}`"), None),
    };
    if let Err(f) = call(&ui, method, &uri, &headers, None).await {
        return f.page();
    }
    if action == "delete" || text(&form, "back") == "list" {
        done(&headers, "/experiments")
    } else {
        done(&headers, &format!("/experiments/{eid}"))
    }
}

pub struct RunRow {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub created: String,
}

pub struct RecurringRow {
    pub id: String,
    pub name: String,
    pub enabled: bool,
}

#[derive(Template)]
#[template(path = "experiment.html")]
struct ExperimentPage {
    c: Chrome,
    id: String,
    name: String,
    description: String,
    namespace: String,
    archived: bool,
    created: String,
    runs: Vec<RunRow>,
    more_runs: bool,
    recurring: Vec<RecurringRow>,
}

/// `GET /experiments/ID`.
pub async fn experiment(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, UiError> {
    let e = caller.experiment(&ui.app, &id).await?;
    let store = ui.app.store();
    let page = store
        .list_run_page(&RunListQuery {
            filters: vec![RunFilter::eq(RunColumn::ExperimentId, e.id.as_str())],
            limit: LATEST_RUNS,
            ..RunListQuery::default()
        })
        .await?;
    let recurring = store
        .list_recurring_runs(false)
        .await?
        .into_iter()
        .rev()
        .filter(|r| r.experiment_id.as_deref() == Some(e.id.as_str()))
        .map(|r| RecurringRow { id: r.id, name: r.display_name, enabled: r.enabled })
        .collect();
    let view = ExperimentPage {
        c: Chrome::new(format!("Experiment {}", e.display_name), &csrf, Some(&caller), "experiments"),
        archived: e.storage_state == "ARCHIVED",
        created: rfc3339(e.created_at),
        more_runs: page.next.is_some(),
        runs: page
            .runs
            .into_iter()
            .map(|r| RunRow { state: r.state.as_str(), created: rfc3339(r.created_at), id: r.id, name: r.display_name })
            .collect(),
        recurring,
        id: e.id,
        name: e.display_name,
        description: e.description,
        namespace: e.namespace,
    };
    Ok(html(view.render()))
}
