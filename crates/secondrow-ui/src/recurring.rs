//! Recurring runs from the UI: a recurring run's page (trigger, parameters, the runs it started,
//! enable/disable, delete) and the form that schedules one from a pipeline version (the version's
//! parameter inputs plus a cron or periodic trigger, max concurrency and catchup). The form is posted to
//! the API; what it refuses comes back on the form, with the values kept.

use askama::Template;
use axum::extract::{Extension, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

use secondrow_api::auth::Caller;
use secondrow_store::{RunColumn, RunFilter, RunListQuery};

use crate::catalog::Field;
use crate::forms::{call, done, param_fields, params, posted_params, spec_of, text, FormMap};
use crate::graph::url_part;
use crate::pages::rfc3339;
use crate::{csrf_refusal, error_page, html, Chrome, Csrf, Ui, UiError};

/// Runs listed on a recurring run's page.
const RUNS_SHOWN: i64 = 50;

/// A trigger in words.
pub fn describe_trigger(trigger: &Value) -> String {
    let num = |v: Option<&Value>| v.map(|v| v.to_string().trim_matches('"').to_owned()).unwrap_or_default();
    match (trigger.get("cron_schedule"), trigger.get("periodic_schedule")) {
        (Some(c), _) => format!("cron {}", c.get("cron").and_then(Value::as_str).unwrap_or("?")),
        (_, Some(p)) => format!("every {} s", num(p.get("interval_second"))),
        _ => trigger.to_string(),
    }
}

pub struct RunRow {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub created: String,
}

#[derive(Template)]
#[template(path = "recurring_run.html")]
struct RecurringRunPage {
    c: Chrome,
    id: String,
    name: String,
    description: String,
    trigger: String,
    enabled: bool,
    max_concurrency: i64,
    catchup: bool,
    experiment: Option<(String, String)>,
    pipeline: Option<(String, String)>,
    params: Vec<(String, String)>,
    last_fired: String,
    created: String,
    runs: Vec<RunRow>,
}

/// `GET /recurring/ID`.
pub async fn page(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, UiError> {
    let r = caller.recurring_run(&ui.app, &id).await?;
    let store = ui.app.store();
    let experiment = match &r.experiment_id {
        Some(e) => store.get_experiment(e).await.ok().map(|x| (x.id, x.display_name)),
        None => None,
    };
    let pipeline = match (&r.pipeline_id, &r.pipeline_version_id) {
        (Some(p), Some(v)) => {
            let name = store.get_pipeline(p).await.map(|x| x.display_name).unwrap_or_else(|_| p.clone());
            Some((format!("/pipelines/{}?version={}", url_part(p, false), url_part(v, true)), name))
        }
        _ => None,
    };
    let runs = store
        .list_run_page(&RunListQuery {
            filters: vec![RunFilter::eq(RunColumn::RecurringRunId, r.id.as_str())],
            limit: RUNS_SHOWN,
            ..RunListQuery::default()
        })
        .await?
        .runs
        .into_iter()
        .map(|x| RunRow { state: x.state.as_str(), created: rfc3339(x.created_at), id: x.id, name: x.display_name })
        .collect();
    let params = r
        .parameters
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), value_text(v))).collect())
        .unwrap_or_default();
    let view = RecurringRunPage {
        c: Chrome::new(format!("Recurring run {}", r.display_name), &csrf, Some(&caller), "recurring"),
        trigger: describe_trigger(&r.trigger),
        enabled: r.enabled,
        max_concurrency: r.max_concurrency,
        catchup: !r.no_catchup,
        experiment,
        pipeline,
        params,
        last_fired: r.last_fire_at.map(rfc3339).unwrap_or_default(),
        created: rfc3339(r.created_at),
        runs,
        id: r.id,
        name: r.display_name,
        description: r.description,
    };
    Ok(html(view.render()))
}

/// `POST /recurring/ID/do/enable|disable|delete`, through the API; back to the list, or to the recurring
/// run when the form says `back=page`.
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
    let rid = url_part(&id, false);
    let (method, uri) = match action.as_str() {
        "enable" | "disable" => (Method::POST, format!("/apis/v2beta1/recurringruns/{rid}:{action}")),
        "delete" => (Method::DELETE, format!("/apis/v2beta1/recurringruns/{rid}")),
        other => return error_page(StatusCode::NOT_FOUND, &format!("unknown action `{other}`"), None),
    };
    if let Err(f) = call(&ui, method, &uri, &headers, None).await {
        return f.page();
    }
    if action != "delete" && text(&form, "back") == "page" {
        done(&headers, &format!("/recurring/{rid}"))
    } else {
        done(&headers, "/recurring")
    }
}

#[derive(Template)]
#[template(path = "recurring_new.html")]
struct NewPage {
    c: Chrome,
    pipeline_id: String,
    pipeline: String,
    version: String,
    version_name: String,
    error: String,
    name: String,
    description: String,
    experiment: String,
    experiments: Vec<(String, String)>,
    fields: Vec<Field>,
    /// `cron` or `periodic`.
    kind: String,
    cron: String,
    interval: String,
    max_concurrency: String,
    catchup: bool,
    enabled: bool,
}

#[derive(Deserialize)]
pub struct NewQuery {
    version: Option<String>,
}

/// The experiments a caller may put a run into (not archived).
pub(crate) async fn experiment_choices(ui: &Ui, caller: &Caller) -> Result<Vec<(String, String)>, UiError> {
    Ok(ui
        .app
        .store()
        .list_experiments(caller.list_namespace(None)?)
        .await?
        .into_iter()
        .filter(|e| e.storage_state != "ARCHIVED")
        .map(|e| (e.id, e.display_name))
        .collect())
}

/// The form for `version` (the pipeline's newest when absent), filled from `form` when it came back refused.
async fn new_page(
    ui: &Ui,
    caller: &Caller,
    csrf: &Csrf,
    pipeline_id: &str,
    version: Option<&str>,
    form: Option<(&FormMap, String)>,
) -> Result<NewPage, UiError> {
    let p = caller.pipeline(&ui.app, pipeline_id, false).await?;
    let store = ui.app.store();
    let version = match version.filter(|v| !v.is_empty()) {
        Some(v) => store.get_pipeline_version(&p.id, v).await?,
        None => store
            .list_pipeline_versions(&p.id)
            .await?
            .pop()
            .ok_or_else(|| UiError::BadRequest("this pipeline has no versions: upload one first".into()))?,
    };
    let spec = spec_of(&version.spec).map_err(UiError::BadRequest)?;
    let experiments = experiment_choices(ui, caller).await?;
    let c = Chrome::new(format!("Schedule {}", p.display_name), csrf, Some(caller), "recurring");
    let page = match form {
        None => NewPage {
            c,
            error: String::new(),
            name: format!("{} (recurring)", p.display_name),
            description: String::new(),
            experiment: String::new(),
            experiments,
            fields: param_fields(&spec, None),
            kind: "cron".into(),
            cron: "0 0 * * * *".into(),
            interval: "3600".into(),
            max_concurrency: "1".into(),
            catchup: true,
            enabled: true,
            pipeline_id: p.id,
            pipeline: p.display_name,
            version: version.id,
            version_name: version.display_name,
        },
        Some((f, error)) => NewPage {
            c,
            error,
            name: text(f, "name").to_owned(),
            description: text(f, "description").to_owned(),
            experiment: text(f, "experiment").to_owned(),
            experiments,
            fields: param_fields(&spec, Some(&posted_params(&spec, f))),
            kind: if text(f, "kind") == "periodic" { "periodic" } else { "cron" }.into(),
            cron: text(f, "cron").to_owned(),
            interval: text(f, "interval").to_owned(),
            max_concurrency: text(f, "max_concurrency").to_owned(),
            catchup: f.contains_key("catchup"),
            enabled: f.contains_key("enabled"),
            pipeline_id: p.id,
            pipeline: p.display_name,
            version: version.id,
            version_name: version.display_name,
        },
    };
    Ok(page)
}

/// `GET /pipelines/ID/schedule?version=V`.
pub async fn new_form(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<NewQuery>,
) -> Result<Response, UiError> {
    Ok(html(new_page(&ui, &caller, &csrf, &id, q.version.as_deref(), None).await?.render()))
}

/// The API body of a posted form, or what is wrong with it.
async fn body(ui: &Ui, pipeline_id: &str, form: &FormMap) -> Result<Value, String> {
    let version_id = text(form, "version");
    let version = ui.app.store().get_pipeline_version(pipeline_id, version_id).await.map_err(|e| e.to_string())?;
    let spec = spec_of(&version.spec)?;
    let parameters = params(&spec, form)?;
    let trigger = if text(form, "kind") == "periodic" {
        let secs: i64 = text(form, "interval")
            .parse()
            .map_err(|_| format!("interval: `{}` is not a whole number of seconds", text(form, "interval")))?;
        json!({"periodic_schedule": {"interval_second": secs.to_string()}})
    } else {
        json!({"cron_schedule": {"cron": text(form, "cron")}})
    };
    let max_concurrency: i64 = text(form, "max_concurrency")
        .parse()
        .map_err(|_| format!("max concurrency: `{}` is not a whole number", text(form, "max_concurrency")))?;
    let mut body = json!({
        "display_name": text(form, "name"),
        "description": text(form, "description"),
        "pipeline_version_reference": {"pipeline_id": pipeline_id, "pipeline_version_id": version.id},
        "runtime_config": {"parameters": Value::Object(parameters)},
        "trigger": trigger,
        "max_concurrency": max_concurrency.to_string(),
        "no_catchup": !form.contains_key("catchup"),
        "mode": if form.contains_key("enabled") { "ENABLE" } else { "DISABLE" },
    });
    let experiment = text(form, "experiment");
    if !experiment.is_empty() {
        body["experiment_id"] = json!(experiment);
    }
    Ok(body)
}

/// `POST /pipelines/ID/schedule`: creates the recurring run through the API; its page, or the form again
/// with the API's (or the form's own) complaint.
pub async fn create(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Form(form): Form<FormMap>,
) -> Response {
    if let Some(r) = csrf_refusal(&headers, &csrf, form.get("csrf").map(String::as_str)) {
        return r;
    }
    // The pipeline's access check comes first: a refused caller learns nothing from the form.
    if let Err(e) = caller.pipeline(&ui.app, &id, false).await {
        return UiError::from(e).into_response();
    }
    let outcome = match body(&ui, &id, &form).await {
        Ok(b) => call(&ui, Method::POST, "/apis/v2beta1/recurringruns", &headers, Some(b))
            .await
            .map_err(|f| (f.status, f.message)),
        Err(m) => Err((StatusCode::BAD_REQUEST, m)),
    };
    let (status, message) = match outcome {
        Ok(r) => {
            let rid = r.get("recurring_run_id").and_then(Value::as_str).unwrap_or_default();
            return done(&headers, &format!("/recurring/{}", url_part(rid, false)));
        }
        Err(e) => e,
    };
    if status != StatusCode::BAD_REQUEST {
        return error_page(status, &message, None);
    }
    let version = text(&form, "version").to_owned();
    match new_page(&ui, &caller, &csrf, &id, Some(&version), Some((&form, message))).await {
        Ok(p) => (StatusCode::BAD_REQUEST, html(p.render())).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A bound parameter's value as text.
pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
