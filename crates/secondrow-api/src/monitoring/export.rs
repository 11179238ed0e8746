//! The prediction log exported as CloudEvents in KServe's inference logger layout
//! (`GET /deployments/NAME/monitor/events?since=RFC3339`), for tools that consume KServe's logger.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use secondrow_monitor::cloudevents::{self, Origin};
use secondrow_monitor::log as plog;
use secondrow_store::deployments::DeploymentRecord;

use super::PredictionLog;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::AppState;

/// The most events one export answers with (the newest ones); a later `since` pages on.
pub const MAX_EVENTS: usize = 200_000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/deployments/{name}/monitor/events", get(export))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportParams {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

/// `GET /deployments/NAME/monitor/events[?since=RFC3339][&format=cloudevents]`: `{"events": [...]}`.
async fn export(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ExportParams>,
) -> ApiResult<Json<Value>> {
    if let Some(f) = q.format.as_deref().filter(|f| *f != "cloudevents") {
        return Err(ApiError::invalid(format!("format: only `cloudevents` is known, got `{f}`")));
    }
    let since = q.since.as_deref().map(|t| crate::parse_ts("since", t)).transpose()?;
    let d = s.store().get_deployment(&name).await?;
    caller.check("deployment", &name, &d.namespace)?;
    let log = s.deployments.log().ok_or_else(|| {
        ApiError::FailedPrecondition("monitoring needs the model serving listener of `secondrow server`".into())
    })?;
    Ok(Json(json!({"events": events_of(log, &d, since).await?})))
}

/// The CloudEvents of every version of `d` logged at or after `since` (epoch ms), each version's oldest
/// first; at most [`MAX_EVENTS`] (the newest).
pub async fn events_of(log: &PredictionLog, d: &DeploymentRecord, since: Option<i64>) -> ApiResult<Vec<Value>> {
    let mut out = Vec::new();
    for v in &d.versions {
        let dir = log.dir(&d.name, &v.version);
        // Two events per request, and a request has at least one row.
        let window = tokio::task::spawn_blocking(move || plog::read_window(&dir, Some(MAX_EVENTS)))
            .await
            .map_err(|e| ApiError::Internal(format!("reading the prediction log: {e}")))?
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let origin = Origin { deployment: &d.name, version: &v.version, namespace: &d.namespace };
        out.extend(cloudevents::events(&window, &origin, since));
    }
    if out.len() > MAX_EVENTS {
        out.drain(..out.len() - MAX_EVENTS);
    }
    Ok(out)
}
