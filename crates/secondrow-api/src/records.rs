//! SecondRow's own read endpoints (not KFP): the store records exactly as the CLI prints them with
//! `--json`, so `secondrow --server URL runs list|get` prints what local mode prints.
//!
//! - `GET /apis/v2beta1/secondrow/runs?limit=N` → `runs list --json` (newest first);
//! - `GET /apis/v2beta1/secondrow/runs/ID` → `runs get --json` (`ID` may be a unique prefix).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use secondrow_store::{Store, StoreError};

use crate::artifacts::{check_id, load_run};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiPath, ApiQuery};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/secondrow/runs", get(list)).route("/secondrow/runs/{id}", get(get_one))
}

/// The `runs get --json` document: the run, its state history, tasks, artifacts and lineage events.
pub async fn run_document(store: &Store, run_id: &str) -> Result<Value, StoreError> {
    let run = store.get_run(run_id).await?;
    let tasks = store.list_tasks(run_id).await?;
    let artifacts = store.list_artifacts(run_id).await?;
    let events = store.list_events(run_id).await?;
    let history = store.run_state_history(run_id).await?;
    Ok(json!({
        "run": run,
        "state_history": history.iter().map(|(s, at)| json!({"state": s, "at": at})).collect::<Vec<_>>(),
        "tasks": tasks,
        "artifacts": artifacts,
        "events": events,
        // The registry versions registered from this run (model name, version).
        "model_versions": store
            .model_versions_of_run(run_id)
            .await
            .map_err(|e| match e {
                secondrow_store::registry::RegistryError::Store(s) => s,
                other => StoreError::Corrupt(other.to_string()),
            })?
            .into_iter()
            .map(|(model, v)| json!({"model": model, "version": v.name, "id": v.id, "state": v.state}))
            .collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    50
}

async fn list(State(s): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<Json<Value>> {
    if q.limit < 0 {
        return Err(crate::ApiError::invalid(format!("limit: must be 0 or more, got {}", q.limit)));
    }
    // A namespace token lists only its own runs (of the newest `limit`).
    let runs: Vec<_> =
        s.store().list_runs(q.limit).await?.into_iter().filter(|r| caller.sees(&r.namespace, false)).collect();
    Ok(Json(json!(runs)))
}

async fn get_one(State(s): State<AppState>, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    check_id("run id", &id)?;
    let run_id = s.store().resolve_run_id(&id).await?;
    load_run(&s, &caller, &run_id).await?;
    Ok(Json(run_document(s.store(), &run_id).await?))
}
