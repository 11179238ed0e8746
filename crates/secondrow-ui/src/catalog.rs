//! Pipelines: the list, and a pipeline's versions with the static graph, the spec as YAML and the create-run
//! form; the recurring-runs list.

use askama::Template;
use axum::extract::{Extension, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

use secondrow_api::auth::Caller;
use secondrow_spec::{ParameterType, PipelineSpec};

use crate::forms::{call, done, param_fields, params, posted_params, spec_of, text, FormMap};
use crate::graph::{self, url_part, Target};
use crate::pages::rfc3339;
use crate::recurring::experiment_choices;
use crate::viz::esc;
use crate::{csrf_refusal, error_page, html, Chrome, Csrf, Ui, UiError};

pub struct PipelineRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub shared: bool,
    pub created: String,
}

#[derive(Template)]
#[template(path = "pipelines.html")]
struct PipelinesPage {
    c: Chrome,
    rows: Vec<PipelineRow>,
}

pub async fn pipelines(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
) -> Result<Response, UiError> {
    let list = ui.app.store().list_pipelines(None).await?;
    let rows = list
        .into_iter()
        .rev()
        .filter(|p| caller.sees(&p.namespace, true))
        .map(|p| PipelineRow {
            shared: p.namespace.is_empty(),
            id: p.id,
            name: p.display_name,
            description: p.description,
            created: rfc3339(p.created_at),
        })
        .collect();
    Ok(html(PipelinesPage { c: Chrome::new("Pipelines", &csrf, Some(&caller), "pipelines"), rows }.render()))
}

#[derive(Deserialize, Default)]
pub struct PipelineQuery {
    version: Option<String>,
}

/// One input of the create-run form, from a parameter definition.
pub struct Field {
    pub name: String,
    pub kind: &'static str,
    /// `number`, `checkbox`, `text` or `json` (a textarea).
    pub input: &'static str,
    pub step: &'static str,
    pub value: String,
    pub checked: bool,
    pub required: bool,
}

pub(crate) fn fields(spec: &PipelineSpec) -> Vec<Field> {
    spec.root
        .input_definitions
        .parameters
        .iter()
        .map(|(name, d)| {
            let default = d.default_value.as_ref();
            let (input, step) = match d.parameter_type {
                ParameterType::NumberInteger => ("number", "1"),
                ParameterType::NumberDouble => ("number", "any"),
                ParameterType::Boolean => ("checkbox", ""),
                ParameterType::List | ParameterType::Struct => ("json", ""),
                _ => ("text", ""),
            };
            let value = match default {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) if d.parameter_type == ParameterType::NumberInteger => {
                    n.as_f64().map(|f| format!("{}", f as i64)).unwrap_or_default()
                }
                Some(v) if input != "checkbox" => v.to_string(),
                _ => String::new(),
            };
            Field {
                name: name.clone(),
                kind: d.parameter_type.as_str(),
                input,
                step,
                checked: default.and_then(Value::as_bool).unwrap_or(false),
                required: default.is_none() && !d.is_optional && input != "checkbox",
                value,
            }
        })
        .collect()
}

/// A form value as the parameter's type; `None` for an empty optional value (the default applies).
pub(crate) fn typed(t: ParameterType, name: &str, raw: Option<&str>) -> Result<Option<Value>, String> {
    let raw = raw.map(str::trim).unwrap_or("");
    if t == ParameterType::Boolean {
        return Ok(Some(Value::Bool(!raw.is_empty())));
    }
    if raw.is_empty() {
        return Ok(None);
    }
    let bad = |what: &str| format!("parameter `{name}`: `{raw}` is not {what}");
    Ok(Some(match t {
        ParameterType::NumberInteger => Value::from(raw.parse::<i64>().map_err(|_| bad("an integer"))?),
        ParameterType::NumberDouble => serde_json::Number::from_f64(raw.parse::<f64>().map_err(|_| bad("a number"))?)
            .map(Value::Number)
            .ok_or_else(|| bad("a finite number"))?,
        ParameterType::List | ParameterType::Struct => serde_json::from_str(raw).map_err(|_| bad("JSON"))?,
        _ => Value::String(raw.to_owned()),
    }))
}

/// `POST /pipelines/ID/run`: a run of a version from the form, created through the API (which validates the
/// parameters again and starts the run); then its page. A refusal (a mistyped value, a parameter the API
/// rejects) comes back on the pipeline's page with the message and the values as typed.
pub async fn create_run(
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
    let p = match caller.pipeline(&ui.app, &id, false).await {
        Ok(p) => p,
        Err(e) => return UiError::from(e).into_response(),
    };
    let version_id = text(&form, "version").to_owned();
    let version = match ui.app.store().get_pipeline_version(&p.id, &version_id).await {
        Ok(v) => v,
        Err(e) => return UiError::from(e).into_response(),
    };
    let outcome = async {
        let spec = spec_of(&version.spec).map_err(|m| (StatusCode::BAD_REQUEST, m))?;
        let parameters = params(&spec, &form).map_err(|m| (StatusCode::BAD_REQUEST, m))?;
        let name = text(&form, "run_name");
        let mut body = json!({
            "display_name": if name.is_empty() { p.display_name.as_str() } else { name },
            "pipeline_version_reference": {"pipeline_id": p.id, "pipeline_version_id": version.id},
            "runtime_config": {"parameters": Value::Object(parameters)},
        });
        let experiment = text(&form, "experiment");
        if !experiment.is_empty() {
            body["experiment_id"] = json!(experiment);
        }
        call(&ui, Method::POST, "/apis/v2beta1/runs", &headers, Some(body)).await.map_err(|f| (f.status, f.message))
    }
    .await;
    let (status, message) = match outcome {
        Ok(r) => {
            let rid = r.get("run_id").and_then(Value::as_str).unwrap_or_default();
            return done(&headers, &format!("/runs/{}", url_part(rid, false)));
        }
        Err(e) => e,
    };
    if status != StatusCode::BAD_REQUEST {
        return error_page(status, &message, None);
    }
    let posted = Posted { form: &form, error: message };
    match pipeline_page(&ui, &caller, &csrf, &id, Some(version_id), Some(posted)).await {
        Ok(page) => (StatusCode::BAD_REQUEST, page).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A create-run form that the API refused: what was posted and why.
struct Posted<'a> {
    form: &'a FormMap,
    error: String,
}

pub struct VersionRow {
    pub id: String,
    pub name: String,
    pub created: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "pipeline.html")]
struct PipelinePage {
    c: Chrome,
    id: String,
    name: String,
    description: String,
    versions: Vec<VersionRow>,
    graph: String,
    params: Vec<(String, String, String)>,
    yaml: String,
    version: String,
    fields: Vec<Field>,
    experiments: Vec<(String, String)>,
    /// The create-run form's values: its run name, experiment and (after a refusal) the message.
    run_name: String,
    experiment: String,
    error: String,
}

pub async fn pipeline(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<PipelineQuery>,
) -> Result<Response, UiError> {
    pipeline_page(&ui, &caller, &csrf, &id, q.version, None).await
}

/// A pipeline's page for `version` (the newest when absent); the create-run form filled from `posted` when
/// it came back refused.
async fn pipeline_page(
    ui: &Ui,
    caller: &Caller,
    csrf: &Csrf,
    id: &str,
    version: Option<String>,
    posted: Option<Posted<'_>>,
) -> Result<Response, UiError> {
    let p = caller.pipeline(&ui.app, id, false).await?;
    let store = ui.app.store();
    let mut versions = store.list_pipeline_versions(&p.id).await?;
    versions.reverse();
    let chosen = version.filter(|v| !v.is_empty()).or_else(|| versions.first().map(|v| v.id.clone()));
    let mut form_fields = Vec::new();
    let (graph_html, params, yaml) = match &chosen {
        Some(v) => {
            let version = store.get_pipeline_version(&p.id, v).await?;
            let yaml = serde_yaml_ng::to_string(&version.spec).unwrap_or_default();
            match serde_json::from_value::<PipelineSpec>(version.spec) {
                Ok(spec) => {
                    let graph_html = match graph::resolve(&spec, "") {
                        Ok(Target::Dag(root)) => graph::svg_with(&graph::dag_view(&spec, root, "", &[]), None),
                        _ => String::new(),
                    };
                    let params = spec
                        .root
                        .input_definitions
                        .parameters
                        .iter()
                        .map(|(k, d)| {
                            let default = d.default_value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                            (k.clone(), d.parameter_type.as_str().to_owned(), default)
                        })
                        .collect();
                    form_fields = match &posted {
                        Some(f) => param_fields(&spec, Some(&posted_params(&spec, f.form))),
                        None => fields(&spec),
                    };
                    (graph_html, params, yaml)
                }
                Err(e) => (format!("<p class=\"error\">{}</p>", esc(&e.to_string())), Vec::new(), yaml),
            }
        }
        None => ("<p class=\"empty\" id=\"no-versions\">This pipeline has no versions yet. Upload one (a compiled pipeline \
             YAML) under <a href=\"#upload-version\">Upload a version</a>, or from Python with \
             <code>kfp.Client(host=\"…\").upload_pipeline_version(\"pipeline.yaml\", \"v1\", pipeline_id=…)</code>.</p>".to_owned(), Vec::new(), String::new()),
    };
    let (run_name, experiment, error) = match posted {
        Some(f) => (text(f.form, "run_name").to_owned(), text(f.form, "experiment").to_owned(), f.error),
        None => (p.display_name.clone(), String::new(), String::new()),
    };
    let page = PipelinePage {
        c: Chrome::new(format!("Pipeline {}", p.display_name), csrf, Some(caller), "pipelines"),
        run_name,
        experiment,
        error,
        versions: versions
            .into_iter()
            .map(|v| VersionRow {
                current: chosen.as_deref() == Some(v.id.as_str()),
                id: v.id,
                name: v.display_name,
                created: rfc3339(v.created_at),
            })
            .collect(),
        version: chosen.clone().unwrap_or_default(),
        fields: form_fields,
        experiments: experiment_choices(ui, caller).await?,
        id: p.id,
        name: p.display_name,
        description: p.description,
        graph: graph_html,
        params,
        yaml,
    };
    Ok(html(page.render()))
}

pub struct RecurringRow {
    pub id: String,
    pub name: String,
    pub trigger: String,
    pub enabled: bool,
    pub max_concurrency: i64,
    pub last_fired: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "recurring.html")]
struct RecurringPage {
    c: Chrome,
    rows: Vec<RecurringRow>,
}

/// Recurring runs the caller may see, newest first, with enable/disable.
pub async fn recurring(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
) -> Result<Response, UiError> {
    let list = ui.app.store().list_recurring_runs(false).await?;
    let rows = list
        .into_iter()
        .rev()
        .filter(|r| caller.sees(&r.namespace, false))
        .map(|r| RecurringRow {
            trigger: match (r.trigger.get("cron_schedule"), r.trigger.get("periodic_schedule")) {
                (Some(c), _) => format!("cron {}", c.get("cron").and_then(Value::as_str).unwrap_or("?")),
                (_, Some(p)) => format!(
                    "every {} s",
                    p.get("interval_second").map(|v| v.to_string().trim_matches('"').to_owned()).unwrap_or_default()
                ),
                _ => r.trigger.to_string(),
            },
            last_fired: r.last_fire_at.map(rfc3339).unwrap_or_default(),
            created: rfc3339(r.created_at),
            id: r.id,
            name: r.display_name,
            enabled: r.enabled,
            max_concurrency: r.max_concurrency,
        })
        .collect();
    Ok(html(RecurringPage { c: Chrome::new("Recurring runs", &csrf, Some(&caller), "recurring"), rows }.render()))
}
