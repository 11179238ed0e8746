//! Pipelines: the list, and a pipeline's versions with the static graph, the spec as YAML and the create-run
//! form; the recurring-runs list.

use askama::Template;
use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Extension, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use secondrow_api::auth::Caller;
use secondrow_spec::{ParameterType, PipelineSpec};

use crate::graph::{self, url_part, Target};
use crate::pages::{api_message, forward_body, rfc3339};
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
/// parameters again and starts the run); then its page.
pub async fn create_run(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = csrf_refusal(&headers, &csrf, form.get("csrf").map(String::as_str)) {
        return r;
    }
    let result: Result<Value, UiError> = async {
        let p = caller.pipeline(&ui.app, &id, false).await?;
        let version_id = form.get("version").cloned().unwrap_or_default();
        let version = ui.app.store().get_pipeline_version(&p.id, &version_id).await?;
        let spec: PipelineSpec =
            serde_json::from_value(version.spec).map_err(|e| UiError::BadRequest(e.to_string()))?;
        let mut params = Map::new();
        for (name, d) in &spec.root.input_definitions.parameters {
            if let Some(v) = typed(d.parameter_type, name, form.get(&format!("p.{name}")).map(String::as_str))
                .map_err(UiError::BadRequest)?
            {
                params.insert(name.clone(), v);
            }
        }
        let mut body = json!({
            "display_name": form.get("run_name").map(|s| s.trim()).filter(|s| !s.is_empty()).unwrap_or(&p.display_name),
            "pipeline_version_reference": {"pipeline_id": p.id, "pipeline_version_id": version.id},
            "runtime_config": {"parameters": params},
        });
        if let Some(e) = form.get("experiment").filter(|e| !e.is_empty()) {
            body["experiment_id"] = json!(e);
        }
        Ok(body)
    }
    .await;
    let body = match result {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let r = forward_body(&ui, Method::POST, "/apis/v2beta1/runs", &headers, Body::from(body.to_string())).await;
    if !r.status().is_success() {
        let status = r.status();
        return error_page(status, &api_message(r).await, None);
    }
    let bytes = axum::body::to_bytes(r.into_body(), 16 << 20).await.unwrap_or_default();
    let run_id = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("run_id").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    Redirect::to(&format!("/runs/{}", url_part(&run_id, false))).into_response()
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
}

pub async fn pipeline(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<PipelineQuery>,
) -> Result<Response, UiError> {
    let p = caller.pipeline(&ui.app, &id, false).await?;
    let store = ui.app.store();
    let mut versions = store.list_pipeline_versions(&p.id).await?;
    versions.reverse();
    let chosen = q.version.clone().or_else(|| versions.first().map(|v| v.id.clone()));
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
                    form_fields = fields(&spec);
                    (graph_html, params, yaml)
                }
                Err(e) => (format!("<p class=\"error\">{}</p>", esc(&e.to_string())), Vec::new(), yaml),
            }
        }
        None => ("<p class=\"empty\">This pipeline has no versions yet.</p>".to_owned(), Vec::new(), String::new()),
    };
    let page = PipelinePage {
        c: Chrome::new(format!("Pipeline {}", p.display_name), &csrf, Some(&caller), "pipelines"),
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
        experiments: store
            .list_experiments(caller.list_namespace(None)?)
            .await?
            .into_iter()
            .filter(|e| e.storage_state != "ARCHIVED")
            .map(|e| (e.id, e.display_name))
            .collect(),
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
