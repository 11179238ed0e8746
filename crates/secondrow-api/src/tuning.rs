//! Hyperparameter tuning over HTTP, at Katib's Kubernetes path (`/apis/kubeflow.org/v1beta1`):
//!
//! - `POST   /namespaces/{ns}/experiments` — body: a Katib Experiment (JSON or YAML); validated (400 naming
//!   the field), recorded and started here; answers the experiment (`experiment`, `status`).
//! - `GET    /namespaces/{ns}/experiments` — `{experiments: [...]}`.
//! - `GET    /namespaces/{ns}/experiments/{name}` — `{experiment, status, trials}`.
//! - `GET    /namespaces/{ns}/experiments/{name}/trials` — `{trials: [...]}` (each names its run, whose logs
//!   and artifacts are under `/apis/v2beta1/runs/{run_id}`).
//! - `POST   /namespaces/{ns}/experiments/{name}/stop` and `/resume`.
//!
//! The same namespace checks as runs: a namespace token reaches only its namespace (403 otherwise, before
//! anything is written). A pipeline trial must carry its pipeline inline (`pipelineSpec`).

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use secondrow_engine::tune::{self, TuneOptions, TuneStatus, TuningError};
use secondrow_store::tuning::TuningExperiment;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiPath;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/namespaces/{ns}/experiments", post(create).get(list))
        .route("/namespaces/{ns}/experiments/{name}", get(get_one))
        .route("/namespaces/{ns}/experiments/{name}/trials", get(trials))
        .route("/namespaces/{ns}/experiments/{name}/stop", post(stop))
        .route("/namespaces/{ns}/experiments/{name}/resume", post(resume))
}

fn api_error(e: TuningError) -> ApiError {
    ApiError::from_kind(e.kind(), e.to_string())
}

/// Experiments this process is running (by id), so a resume never starts a second runner.
static ACTIVE: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

fn start(s: &AppState, record: TuningExperiment) {
    {
        let mut active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        if !active.insert(record.id.clone()) {
            return;
        }
    }
    let engine = s.engine.clone();
    tokio::spawn(async move {
        let id = record.id.clone();
        let name = record.name.clone();
        match tune::run_experiment(&engine, record, TuneOptions::default()).await {
            Ok(e) => tracing::info!(experiment = %name, state = %e.state, "experiment finished"),
            Err(e) => tracing::warn!(experiment = %name, error = %e, "experiment ended with an error"),
        }
        ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    });
}

async fn document(s: &AppState, e: &TuningExperiment, with_trials: bool) -> ApiResult<Value> {
    let trials = s.store().list_tuning_trials(&e.id).await?;
    let direction = tune::parse_experiment(&e.spec).map_err(api_error)?.direction();
    let status = TuneStatus::of(&trials, direction);
    let mut doc = json!({"experiment": e, "status": status});
    if with_trials {
        doc["trials"] = serde_json::to_value(&trials).map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    Ok(doc)
}

/// The experiment `ns/name`, after the caller's namespace check (403 before a lookup for another namespace).
async fn reach(s: &AppState, caller: &Caller, ns: &str, name: &str) -> ApiResult<TuningExperiment> {
    caller.check("experiment", name, ns)?;
    Ok(s.store().get_tuning_experiment(ns, name).await?)
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(ns): ApiPath<String>,
    body: String,
) -> ApiResult<Json<Value>> {
    let ns = caller.namespace_for_new(Some(&ns))?;
    let record = tune::create_experiment(s.store(), Some(&ns), &body).await.map_err(api_error)?;
    start(&s, record.clone());
    Ok(Json(document(&s, &record, false).await?))
}

async fn list(State(s): State<AppState>, caller: Caller, ApiPath(ns): ApiPath<String>) -> ApiResult<Json<Value>> {
    let ns = caller.list_namespace(Some(&ns))?.map(str::to_owned);
    let list = s.store().list_tuning_experiments(ns.as_deref()).await?;
    Ok(Json(json!({ "experiments": list })))
}

async fn get_one(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let e = reach(&s, &caller, &ns, &name).await?;
    Ok(Json(document(&s, &e, true).await?))
}

async fn trials(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let e = reach(&s, &caller, &ns, &name).await?;
    Ok(Json(json!({ "trials": s.store().list_tuning_trials(&e.id).await? })))
}

async fn stop(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let e = reach(&s, &caller, &ns, &name).await?;
    let Some(stopped) = s.store().stop_tuning_experiment(&e.id, "stopped through the API").await? else {
        return Err(ApiError::FailedPrecondition(format!("experiment `{name}` has already ended ({})", e.state)));
    };
    Ok(Json(document(&s, &stopped, false).await?))
}

async fn resume(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let e = reach(&s, &caller, &ns, &name).await?;
    if e.state.is_final() {
        return Err(ApiError::FailedPrecondition(format!("experiment `{name}` has already ended ({})", e.state)));
    }
    start(&s, e.clone());
    Ok(Json(document(&s, &e, false).await?))
}
