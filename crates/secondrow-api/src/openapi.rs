//! `GET /apis/v2beta1/openapi.json`: an OpenAPI 3 document listing exactly the operations this server
//! serves (paths, methods, parameters); bodies follow KFP's v2beta1 schema (see the kfp-server-api package).

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::AppState;

/// (method, path, operation id, summary, query parameters).
const OPERATIONS: &[(&str, &str, &str, &str, &[&str])] = &[
    ("get", "/healthz", "get_healthz", "Health and multi-user mode", &[]),
    ("post", "/experiments", "create_experiment", "Create an experiment", &[]),
    ("get", "/experiments", "list_experiments", "List experiments", LIST),
    ("get", "/experiments/{id}", "get_experiment", "Get an experiment", &[]),
    ("delete", "/experiments/{id}", "delete_experiment", "Delete an experiment", &[]),
    ("post", "/experiments/{id}:archive", "archive_experiment", "Archive an experiment and its runs", &[]),
    ("post", "/experiments/{id}:unarchive", "unarchive_experiment", "Unarchive an experiment", &[]),
    (
        "post",
        "/pipelines/upload",
        "upload_pipeline",
        "Upload a pipeline (multipart `uploadfile`)",
        &["name", "description", "namespace"],
    ),
    (
        "post",
        "/pipelines/upload_version",
        "upload_pipeline_version",
        "Upload a pipeline version (multipart)",
        &["name", "pipelineid", "description"],
    ),
    ("get", "/pipelines", "list_pipelines", "List pipelines", LIST),
    ("get", "/pipelines/{id}", "get_pipeline", "Get a pipeline", &[]),
    ("delete", "/pipelines/{id}", "delete_pipeline", "Delete a pipeline and its versions", &[]),
    ("get", "/pipelines/{id}/versions", "list_pipeline_versions", "List a pipeline's versions", LIST),
    ("get", "/pipelines/{id}/versions/{vid}", "get_pipeline_version", "Get a pipeline version", &[]),
    ("delete", "/pipelines/{id}/versions/{vid}", "delete_pipeline_version", "Delete a pipeline version", &[]),
    ("post", "/runs", "create_run", "Create and start a run", &[]),
    ("get", "/runs", "list_runs", "List runs", LIST),
    ("get", "/runs/{id}", "get_run", "Get a run with task details", &[]),
    ("delete", "/runs/{id}", "delete_run", "Delete a run (terminating it first)", &[]),
    ("post", "/runs/{id}:terminate", "terminate_run", "Terminate a run", &[]),
    ("post", "/runs/{id}:retry", "retry_run", "Retry a failed or canceled run, keeping finished tasks", &[]),
    ("post", "/runs/{id}:archive", "archive_run", "Archive a run", &[]),
    ("post", "/runs/{id}:unarchive", "unarchive_run", "Unarchive a run", &[]),
    ("post", "/recurringruns", "create_recurring_run", "Create a recurring run (cron or periodic)", &[]),
    ("get", "/recurringruns", "list_recurring_runs", "List recurring runs (`recurringRuns`)", LIST),
    ("get", "/recurringruns/{id}", "get_recurring_run", "Get a recurring run", &[]),
    ("delete", "/recurringruns/{id}", "delete_recurring_run", "Delete a recurring run", &[]),
    ("post", "/recurringruns/{id}:enable", "enable_recurring_run", "Enable scheduling", &[]),
    ("post", "/recurringruns/{id}:disable", "disable_recurring_run", "Disable scheduling", &[]),
    ("post", "/deployments", "create_deployment", "Deploy a model version (SecondRow extension)", &[]),
    ("get", "/deployments", "list_deployments", "List model deployments (of one namespace)", &["namespace"]),
    ("get", "/deployments/{name}", "get_deployment", "Get a deployment with its versions and serving state", &[]),
    ("patch", "/deployments/{name}", "update_deployment", "Change the default version or the canary", &[]),
    ("delete", "/deployments/{name}", "delete_deployment", "Delete a deployment", &[]),
    (
        "delete",
        "/deployments/{name}/versions/{version}",
        "delete_deployment_version",
        "Delete a deployment version",
        &[],
    ),
    ("post", "/notebooks", "create_notebook", "Create and start a JupyterLab notebook (SecondRow extension)", &[]),
    ("get", "/notebooks", "list_notebooks", "List notebooks (of one namespace)", &["namespace"]),
    ("get", "/notebooks/{namespace}/{name}", "get_notebook", "Get a notebook: state, reason, URL", &[]),
    ("delete", "/notebooks/{namespace}/{name}", "delete_notebook", "Delete a notebook", &["keep_workspace"]),
    ("post", "/notebooks/{namespace}/{name}/stop", "stop_notebook", "Stop a notebook (workspace kept)", &[]),
    ("post", "/notebooks/{namespace}/{name}/start", "start_notebook", "Start a stopped notebook", &[]),
    ("get", "/notebooks/{namespace}/{name}/logs", "notebook_logs", "The Jupyter server's log (text)", &[]),
    ("get", "/openapi.json", "get_openapi", "This document", &[]),
];

const LIST: &[&str] = &["page_token", "page_size", "sort_by", "filter", "namespace", "experiment_id"];

pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(document()) }))
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, op, summary, query) in OPERATIONS {
        let mut params: Vec<Value> = Vec::new();
        for seg in path.split('/') {
            let seg = seg.split(':').next().unwrap_or(seg);
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        for q in *query {
            params.push(json!({"name": q, "in": "query", "required": false, "schema": {"type": "string"}}));
        }
        let entry = paths.entry(format!("/apis/v2beta1{path}")).or_insert_with(|| json!({}));
        entry[*method] = json!({
            "operationId": op,
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK (JSON, snake_case fields as in KFP v2beta1)"},
                "default": {"description": "Error: {error, code, message, details}"},
            },
        });
    }
    paths.insert(
        "/metrics".into(),
        json!({"get": {"operationId": "metrics", "summary": "Prometheus metrics", "responses": {"200": {"description": "text/plain"}}}}),
    );
    json!({
        "openapi": "3.0.3",
        "info": {"title": "SecondRow KFP v2beta1 API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
    })
}
