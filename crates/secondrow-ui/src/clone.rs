//! Cloning a run: the create-run form prefilled with the run's pipeline version (or, for a run submitted
//! from a package, its own spec), experiment and parameters; posting it creates a new run through the API.

use askama::Template;
use axum::extract::{Extension, Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde_json::{json, Value};

use secondrow_api::auth::Caller;
use secondrow_spec::PipelineSpec;
use secondrow_store::RunRecord;

use crate::catalog::Field;
use crate::forms::{call, done, param_fields, params, posted_params, spec_of, text, FormMap};
use crate::graph::url_part;
use crate::recurring::experiment_choices;
use crate::{csrf_refusal, error_page, html, Chrome, Csrf, Ui, UiError};

#[derive(Template)]
#[template(path = "clone.html")]
struct ClonePage {
    c: Chrome,
    run_id: String,
    source_name: String,
    /// Link and name of the pipeline version, when the run has one.
    pipeline: Option<(String, String)>,
    error: String,
    name: String,
    experiment: String,
    experiments: Vec<(String, String)>,
    fields: Vec<Field>,
}

/// The spec a clone runs: the run's pipeline version's, else the run's own; and the version's link and name.
async fn source(ui: &Ui, run: &RunRecord) -> Result<(PipelineSpec, Value, Option<(String, String)>), UiError> {
    if let (Some(p), Some(v)) = (&run.pipeline_id, &run.pipeline_version_id) {
        if let Ok(version) = ui.app.store().get_pipeline_version(p, v).await {
            let spec = spec_of(&version.spec).map_err(UiError::BadRequest)?;
            let href = format!("/pipelines/{}?version={}", url_part(p, false), url_part(v, true));
            let name = format!("{} ({})", run.pipeline_name, version.display_name);
            return Ok((spec, json!({"pipeline_id": p, "pipeline_version_id": v}), Some((href, name))));
        }
    }
    Ok((spec_of(&run.spec).map_err(UiError::BadRequest)?, Value::Null, None))
}

async fn form_page(
    ui: &Ui,
    caller: &Caller,
    csrf: &Csrf,
    id: &str,
    posted: Option<(&FormMap, String)>,
) -> Result<ClonePage, UiError> {
    let run = caller.run(&ui.app, id).await?;
    let (spec, _, pipeline) = source(ui, &run).await?;
    let c = Chrome::new(format!("Clone {}", run.display_name), csrf, Some(caller), "runs");
    let experiments = experiment_choices(ui, caller).await?;
    Ok(match posted {
        None => ClonePage {
            c,
            error: String::new(),
            name: format!("Clone of {}", run.display_name),
            experiment: run.experiment_id.clone().unwrap_or_default(),
            experiments,
            fields: param_fields(&spec, run.parameters.as_object()),
            pipeline,
            source_name: run.display_name,
            run_id: run.id,
        },
        Some((f, error)) => ClonePage {
            c,
            error,
            name: text(f, "run_name").to_owned(),
            experiment: text(f, "experiment").to_owned(),
            experiments,
            fields: param_fields(&spec, Some(&posted_params(&spec, f))),
            pipeline,
            source_name: run.display_name,
            run_id: run.id,
        },
    })
}

/// `GET /runs/ID/clone`.
pub async fn form(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, UiError> {
    Ok(html(form_page(&ui, &caller, &csrf, &id, None).await?.render()))
}

/// `POST /runs/ID/clone`: the new run through the API, then its page; a refusal comes back on the form.
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
    let run = match caller.run(&ui.app, &id).await {
        Ok(r) => r,
        Err(e) => return UiError::from(e).into_response(),
    };
    let outcome = async {
        let (spec, reference, _) = source(&ui, &run).await.map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        let parameters = params(&spec, &form).map_err(|m| (StatusCode::BAD_REQUEST, m))?;
        let name = text(&form, "run_name");
        let mut body = json!({
            "display_name": if name.is_empty() { run.display_name.as_str() } else { name },
            "runtime_config": {"parameters": Value::Object(parameters)},
        });
        if reference.is_null() {
            body["pipeline_spec"] = run.spec.clone();
        } else {
            body["pipeline_version_reference"] = reference;
        }
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
    match form_page(&ui, &caller, &csrf, &id, Some((&form, message))).await {
        Ok(p) => (StatusCode::BAD_REQUEST, html(p.render())).into_response(),
        Err(e) => e.into_response(),
    }
}
