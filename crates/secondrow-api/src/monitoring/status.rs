//! The monitor of a deployment: drift of its logged window against the training data, performance
//! against ground-truth labels posted by request id (`POST /deployments/NAME/feedback`), and the
//! snapshot the serving port's `/metrics` exposes (refreshed by [`watch`]).
//!
//! The training side of a version is found through lineage: the model artifact's producing task and that
//! task's input `system.Dataset` (the training table itself), else the run's `statistics` output (the
//! `statistics` component's JSON).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use secondrow_monitor::drift::{self, FeatureDrift, Reference};
use secondrow_monitor::log::{self as plog, Column, Values};
use secondrow_monitor::performance::{self, Labels, Performance};
use secondrow_monitor::timeline::{self, Bucket};
use secondrow_store::deployments::DeploymentRecord;
use secondrow_store::Store;

use super::PredictionLog;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::AppState;

/// Rows of the window when none is asked for.
pub const DEFAULT_WINDOW: usize = 1000;
/// The largest window a request may ask for.
pub const MAX_WINDOW: usize = 1_000_000;
/// How often [`watch`] refreshes the `/metrics` snapshot.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// The feedback file in a deployment's log folder.
const FEEDBACK: &str = "feedback.jsonl";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/deployments/{name}/monitor", get(monitor))
        .route("/deployments/{name}/feedback", post(feedback))
}

/// The training side of a version, with where it came from.
#[derive(Clone)]
pub struct LoadedReference {
    pub reference: Arc<Reference>,
    pub description: String,
}

/// Monitoring figures of one deployment version over its window.
#[derive(Debug, Clone, Serialize)]
pub struct VersionStatus {
    pub version: String,
    pub rows: usize,
    pub first_time_ms: Option<i64>,
    pub last_time_ms: Option<i64>,
    /// Where the training side comes from (`None`: no training data found, no drift).
    pub reference: Option<String>,
    pub features: Vec<FeatureDrift>,
    pub schema_violation_rate: Option<f64>,
    pub performance: Option<Performance>,
    /// The same figures per time span of the window, when asked for (`?buckets=N`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<Bucket>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorParams {
    #[serde(default)]
    window: Option<usize>,
    #[serde(default)]
    bins: Option<usize>,
    #[serde(default)]
    buckets: Option<usize>,
}

fn log_of(s: &AppState) -> ApiResult<&Arc<PredictionLog>> {
    s.deployments.log().ok_or_else(|| {
        ApiError::FailedPrecondition("monitoring needs the model serving listener of `secondrow server`".into())
    })
}

async fn reachable(s: &AppState, caller: &Caller, name: &str) -> ApiResult<DeploymentRecord> {
    let d = s.store().get_deployment(name).await?;
    caller.check("deployment", name, &d.namespace)?;
    Ok(d)
}

/// `GET /deployments/NAME/monitor?window=N&bins=B[&buckets=T]`: with `buckets`, each version also has a
/// `timeline`, the figures of T equal time spans of its window.
async fn monitor(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<MonitorParams>,
) -> ApiResult<Json<Value>> {
    let window = q.window.unwrap_or(DEFAULT_WINDOW);
    if window == 0 || window > MAX_WINDOW {
        return Err(ApiError::invalid(format!("window: must be between 1 and {MAX_WINDOW}, got {window}")));
    }
    let bins = q.bins.unwrap_or(drift::DEFAULT_BINS);
    if !(2..=1000).contains(&bins) {
        return Err(ApiError::invalid(format!("bins: must be between 2 and 1000, got {bins}")));
    }
    if let Some(b) = q.buckets.filter(|b| !(1..=timeline::MAX_BUCKETS).contains(b)) {
        return Err(ApiError::invalid(format!("buckets: must be between 1 and {}, got {b}", timeline::MAX_BUCKETS)));
    }
    let d = reachable(&s, &caller, &name).await?;
    let log = log_of(&s)?;
    let versions = status_of(s.store(), log, &d, window, bins, q.buckets).await?;
    Ok(Json(json!({
        "deployment": d.name,
        "log_sample": d.log_sample,
        "window": window,
        "versions": versions,
    })))
}

/// Monitoring figures of every version of `d` with logged rows (with `buckets`: per time span too).
pub async fn status_of(
    store: &Store,
    log: &PredictionLog,
    d: &DeploymentRecord,
    window: usize,
    bins: usize,
    buckets: Option<usize>,
) -> ApiResult<Vec<VersionStatus>> {
    let labels = Arc::new(read_labels(&log.root().join(&d.name)).await?);
    let mut out = Vec::new();
    for v in &d.versions {
        let dir = log.dir(&d.name, &v.version);
        let read = tokio::task::spawn_blocking(move || plog::read_window(&dir, Some(window)))
            .await
            .map_err(|e| ApiError::Internal(format!("reading the prediction log: {e}")))?
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        if read.is_empty() {
            continue;
        }
        let reference = match &v.artifact_id {
            Some(id) => reference_of(store, log, id).await,
            None => None,
        };
        let (features, schema_violation_rate) = match &reference {
            Some(r) => {
                let (reference, columns) = (r.reference.clone(), read.features.clone());
                tokio::task::spawn_blocking(move || {
                    (drift::drift(&reference, &columns, bins), drift::schema_violations(&reference, &columns))
                })
                .await
                .map(|(f, v)| (f, Some(v)))
                .map_err(|e| ApiError::Internal(format!("computing drift: {e}")))?
            }
            None => (Vec::new(), None),
        };
        let timeline = match buckets {
            Some(n) => {
                let (reference, read, labels) =
                    (reference.as_ref().map(|r| r.reference.clone()), read.clone(), labels.clone());
                let series = tokio::task::spawn_blocking(move || {
                    timeline::timeline(reference.as_deref(), &read, &labels, n, bins)
                })
                .await
                .map_err(|e| ApiError::Internal(format!("computing the timeline: {e}")))?;
                Some(series)
            }
            None => None,
        };
        out.push(VersionStatus {
            version: v.version.clone(),
            rows: read.len(),
            first_time_ms: read.time_ms.first().copied(),
            last_time_ms: read.time_ms.last().copied(),
            reference: reference.map(|r| r.description),
            features,
            schema_violation_rate,
            performance: performance::performance(&read, &labels),
            timeline,
        });
    }
    Ok(out)
}

/// The training side of model artifact `artifact_id`, loaded once and cached.
async fn reference_of(store: &Store, log: &PredictionLog, artifact_id: &str) -> Option<LoadedReference> {
    if let Some(found) = log.cached_reference(artifact_id) {
        return Some(found);
    }
    let loaded = match load_reference(store, artifact_id).await {
        Ok(found) => found?,
        Err(e) => {
            tracing::warn!(artifact = artifact_id, error = %e, "loading the training data of a deployed model");
            return None;
        }
    };
    log.cache_reference(artifact_id, loaded.clone());
    Some(loaded)
}

async fn load_reference(store: &Store, artifact_id: &str) -> ApiResult<Option<LoadedReference>> {
    let model = store.get_artifact(artifact_id).await?;
    let events = store.list_events(&model.run_id).await?;
    let producer = events.iter().find(|e| e.kind == "OUTPUT" && e.artifact_id == artifact_id).map(|e| &e.task_id);
    if let Some(producer) = producer {
        for e in events.iter().filter(|e| e.kind == "INPUT" && &e.task_id == producer) {
            let data = store.get_artifact(&e.artifact_id).await?;
            let Some(path) = local_file(&data.uri) else { continue };
            if data.schema_title != "system.Dataset" {
                continue;
            }
            let table = tokio::task::spawn_blocking(move || secondrow_ml::Table::read(&path))
                .await
                .map_err(|e| ApiError::Internal(format!("reading training data: {e}")))?;
            match table {
                Ok(table) => {
                    let columns = columns_of(&table);
                    return Ok(Some(LoadedReference {
                        reference: Arc::new(Reference::from_columns(&columns)),
                        description: format!("training data `{}` (artifact {})", e.name, data.id),
                    }));
                }
                Err(err) => tracing::warn!(artifact = %data.id, error = %err, "training data is not a table"),
            }
        }
    }
    let artifacts = store.list_artifacts(&model.run_id).await?;
    if let Some(stats) = artifacts.iter().find(|a| a.name == "statistics") {
        if let Some(path) = local_file(&stats.uri) {
            let text = tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| ApiError::Internal(format!("reading statistics {}: {e}", path.display())))?;
            let json: Value = serde_json::from_str(&text)
                .map_err(|e| ApiError::Internal(format!("statistics {} is not JSON: {e}", path.display())))?;
            let reference = Reference::from_statistics(&json).map_err(|e| ApiError::Internal(e.to_string()))?;
            return Ok(Some(LoadedReference {
                reference: Arc::new(reference),
                description: format!("training statistics (artifact {})", stats.id),
            }));
        }
    }
    Ok(None)
}

fn local_file(uri: &str) -> Option<PathBuf> {
    let path = PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri));
    (path.is_absolute() && path.is_file()).then_some(path)
}

/// A secondrow-ml table as monitor columns (NaN is a missing number).
pub fn columns_of(table: &secondrow_ml::Table) -> Vec<Column> {
    table
        .columns
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            values: match &c.values {
                secondrow_ml::table::ColumnValues::Number(v) => {
                    Values::Number(v.iter().map(|x| (!x.is_nan()).then_some(*x)).collect())
                }
                secondrow_ml::table::ColumnValues::Text(v) => Values::Text(v.clone()),
            },
        })
        .collect()
}

// ------------------------------------------------------------------------------------------ feedback

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    /// The request id (the V2 answer's `id`, or V1's `x-request-id` header).
    id: String,
    /// One label per row of the request.
    #[serde(default)]
    labels: Option<Vec<Value>>,
    /// The label of a one-row request.
    #[serde(default)]
    label: Option<Value>,
}

/// `POST /deployments/NAME/feedback`, body `{"id": "...", "labels": [...]}` (or `"label"` for one row):
/// the ground truth of a logged request, for the performance figures. An id that was not logged is a 404.
async fn feedback(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<FeedbackBody>,
) -> ApiResult<Json<Value>> {
    let labels = match (body.labels, body.label) {
        (Some(labels), None) => labels,
        (None, Some(label)) => vec![label],
        _ => return Err(ApiError::invalid("give either `labels` (one per row) or `label` (a one-row request)")),
    };
    if let Some(i) = labels.iter().position(|l| !matches!(l, Value::String(_) | Value::Number(_) | Value::Bool(_))) {
        return Err(ApiError::invalid(format!("labels[{i}]: must be a string, number or boolean")));
    }
    let d = reachable(&s, &caller, &name).await?;
    let log = log_of(&s)?.clone();
    let dirs: Vec<PathBuf> = d.versions.iter().map(|v| log.dir(&d.name, &v.version)).collect();
    let id = body.id.clone();
    let rows = tokio::task::spawn_blocking(move || rows_of_request(&dirs, &id))
        .await
        .map_err(|e| ApiError::Internal(format!("searching the prediction log: {e}")))??;
    let Some(rows) = rows else {
        return Err(ApiError::NotFound(format!(
            "request `{}` is not in the prediction log of deployment `{name}` (only sampled requests are logged)",
            body.id
        )));
    };
    if rows != labels.len() {
        return Err(ApiError::invalid(format!(
            "labels: request `{}` has {rows} rows, got {} labels",
            body.id,
            labels.len()
        )));
    }
    let line = json!({"id": body.id, "labels": labels, "time_ms": chrono::Utc::now().timestamp_millis()});
    let path = log.root().join(&d.name).join(FEEDBACK);
    let _guard = log.feedback_lock.lock().await;
    tokio::task::spawn_blocking(move || append_line(&path, &line.to_string()))
        .await
        .map_err(|e| ApiError::Internal(format!("writing feedback: {e}")))?
        .map_err(|e| ApiError::Internal(format!("writing feedback: {e}")))?;
    Ok(Json(json!({"id": body.id, "rows": rows})))
}

/// Rows of request `id` in the logs under `dirs`, `None` when it was not logged.
fn rows_of_request(dirs: &[PathBuf], id: &str) -> ApiResult<Option<usize>> {
    for dir in dirs {
        for file in plog::files(dir).map_err(|e| ApiError::Internal(e.to_string()))?.iter().rev() {
            let window = plog::read_file(file).map_err(|e| ApiError::Internal(e.to_string()))?;
            let rows = window.request_ids.iter().filter(|r| *r == id).count();
            if rows > 0 {
                return Ok(Some(rows));
            }
        }
    }
    Ok(None)
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(format!("{line}\n").as_bytes())?;
    file.sync_data()
}

/// Every label posted for a deployment (a later post for an id replaces an earlier one).
async fn read_labels(dir: &Path) -> ApiResult<Labels> {
    let text = match tokio::fs::read_to_string(dir.join(FEEDBACK)).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Labels::new()),
        Err(e) => return Err(ApiError::Internal(format!("reading feedback: {e}"))),
    };
    let mut labels = HashMap::new();
    for line in text.lines() {
        // A line cut short by a crash is skipped.
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if let (Some(id), Some(l)) = (v["id"].as_str(), v["labels"].as_array()) {
            labels.insert(id.to_owned(), l.clone());
        }
    }
    Ok(labels)
}

// ------------------------------------------------------------------------------------------ /metrics

/// Refreshes the drift and performance snapshot of every logged deployment for `/metrics`, forever
/// (spawn it).
pub async fn watch(state: AppState) {
    let Some(log) = state.deployments.log().cloned() else { return };
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let records = match state.store().list_deployments(None).await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e, "monitor: listing deployments");
                continue;
            }
        };
        let mut snapshot = Vec::new();
        for d in records.iter().filter(|d| d.log_sample.is_some() || log.has_logged(&d.name)) {
            match status_of(state.store(), &log, d, DEFAULT_WINDOW, drift::DEFAULT_BINS, None).await {
                Ok(versions) => {
                    super::rules::evaluate(&state, &log, &d.name, &versions).await;
                    snapshot.push((d.name.clone(), versions));
                }
                Err(e) => tracing::warn!(deployment = %d.name, error = %e, "monitor: computing drift"),
            }
        }
        log.set_snapshot(snapshot);
    }
}
