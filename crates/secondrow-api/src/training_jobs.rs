//! Training Operator jobs over HTTP, on the Kubernetes API's paths for the `kubeflow.org/v1` resources:
//!
//! - `POST   /apis/kubeflow.org/v1/namespaces/{ns}/{plural}` — body: the job's YAML (or JSON); 201 with
//!   the object. The server runs it (`secondrow_engine::training::supervise`).
//! - `GET    /apis/kubeflow.org/v1/namespaces/{ns}/{plural}` — `{kind: <Kind>List, items}`.
//! - `GET    /apis/kubeflow.org/v1/namespaces/{ns}/{plural}/{name}` — the object with its `status`.
//! - `DELETE /apis/kubeflow.org/v1/namespaces/{ns}/{plural}/{name}` — stops its processes, deletes it.
//! - `GET    /apis/kubeflow.org/v1/namespaces/{ns}/{plural}/{name}/log?replica=worker-1` — logs (text).
//!
//! `{plural}` is `pytorchjobs`, `tfjobs`, `mpijobs`, `jaxjobs` or `xgboostjobs`; namespace `default` is the
//! default namespace. Namespace tokens reach their own namespace only, as for runs (`auth.rs`).

use std::path::PathBuf;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use secondrow_engine::training::{self, JobError, JobKind};
use secondrow_engine::CancellationToken;
use secondrow_store::TrainingJobRecord;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::{ApiError, ApiResult, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/apis/kubeflow.org/v1/namespaces/{ns}/{plural}", get(list).post(create))
        .route("/apis/kubeflow.org/v1/namespaces/{ns}/{plural}/{name}", get(read).delete(delete))
        .route("/apis/kubeflow.org/v1/namespaces/{ns}/{plural}/{name}/log", get(log))
}

/// The server's training job supervisors: each runs as a task here, and [`Supervisors::stop`] (the server's
/// graceful stop) cancels them all and waits until each has killed its replicas and recorded the job
/// (`training::supervise` on cancel), so a stopping server leaves no orphan process and no unrecorded kill.
#[derive(Default)]
pub struct Supervisors {
    cancel: CancellationToken,
    tasks: std::sync::Mutex<tokio::task::JoinSet<()>>,
}

impl Supervisors {
    fn spawn(&self, store: secondrow_store::Store, id: String) {
        let cancel = self.cancel.clone();
        let mut tasks = self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Finished supervisors' results are dropped as new ones start (the set stays small).
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            if let Err(e) = training::supervise(&store, &id, cancel, None).await {
                tracing::warn!(job = %id, error = %e, "training job supervisor stopped");
            }
        });
    }

    /// Cancels every supervisor and waits for them (at most `limit`); supervisors started after this are
    /// cancelled before they claim their job, which the next server start then runs.
    pub async fn stop(&self, limit: std::time::Duration) {
        self.cancel.cancel();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!("training job supervisors did not stop in time");
        }
    }
}

/// On server start: jobs whose supervisor is gone are restarted per policy (supervised here) or failed
/// (`training::recover`).
pub async fn recover(s: &AppState) -> ApiResult<usize> {
    let again = training::recover(s.store()).await.map_err(job_error)?;
    for id in &again {
        tracing::info!(job = %id, "restarting training job after its supervisor stopped");
        spawn_supervisor(s, id.clone());
    }
    Ok(again.len())
}

fn spawn_supervisor(s: &AppState, id: String) {
    s.training_jobs.spawn(s.store().clone(), id);
}

fn job_error(e: JobError) -> ApiError {
    ApiError::from_kind(e.kind(), e.to_string())
}

/// The store's namespace for a path's: `default` is the default namespace `""`.
fn namespace(ns: &str) -> &str {
    if ns == "default" {
        ""
    } else {
        ns
    }
}

fn kind_of(plural: &str) -> ApiResult<JobKind> {
    JobKind::from_plural(plural).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no resource {plural:?} in kubeflow.org/v1 (pytorchjobs, tfjobs, mpijobs, jaxjobs, xgboostjobs)"
        ))
    })
}

fn jobs_dir(s: &AppState) -> PathBuf {
    let logs = &s.engine.config().logs_root;
    logs.parent().map_or_else(|| logs.join("jobs"), |home| home.join("jobs"))
}

/// The job `name` of kind `plural` in `ns`, if the caller may reach it.
async fn find(s: &AppState, caller: &Caller, ns: &str, plural: &str, name: &str) -> ApiResult<TrainingJobRecord> {
    let kind = kind_of(plural)?;
    let ns = namespace(ns);
    caller.check("training job", name, ns)?;
    let rec = s.store().get_training_job(ns, name).await?;
    if rec.kind != kind.as_str() {
        return Err(ApiError::NotFound(format!("{plural} {name:?} not found")));
    }
    Ok(rec)
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, plural)): Path<(String, String)>,
    body: String,
) -> ApiResult<impl IntoResponse> {
    let kind = kind_of(&plural)?;
    let ns = caller.namespace_for_new(Some(namespace(&ns)))?;
    let job = training::parse(&body).map_err(job_error)?;
    if job.kind != kind {
        return Err(ApiError::invalid(format!("kind: a {} posted to {plural}", job.kind)));
    }
    let doc_ns = job.namespace.as_deref().map(namespace);
    if doc_ns.is_some_and(|d| d != ns) {
        return Err(ApiError::invalid(format!(
            "metadata.namespace {:?} does not match the namespace of the path",
            job.namespace.unwrap_or_default()
        )));
    }
    let rec = training::submit(s.store(), &jobs_dir(&s), &body, Some(&ns)).await.map_err(job_error)?;
    spawn_supervisor(&s, rec.id.clone());
    Ok((StatusCode::CREATED, Json(training::document(&rec))))
}

async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, plural)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let kind = kind_of(&plural)?;
    let scope = caller.list_namespace(Some(namespace(&ns)))?;
    let jobs = s.store().list_training_jobs(Some(scope.unwrap_or(""))).await?;
    let items: Vec<Value> = jobs.iter().filter(|j| j.kind == kind.as_str()).map(training::document).collect();
    Ok(Json(json!({"apiVersion": "kubeflow.org/v1", "kind": format!("{kind}List"), "items": items})))
}

async fn read(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, plural, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let rec = find(&s, &caller, &ns, &plural, &name).await?;
    Ok(Json(training::document(&rec)))
}

async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, plural, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let rec = find(&s, &caller, &ns, &plural, &name).await?;
    training::delete(s.store(), &rec).await.map_err(job_error)?;
    Ok(Json(
        json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name, "kind": plural}}),
    ))
}

#[derive(Deserialize)]
struct LogQuery {
    replica: Option<String>,
}

async fn log(
    State(s): State<AppState>,
    caller: Caller,
    Path((ns, plural, name)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> ApiResult<String> {
    let rec = find(&s, &caller, &ns, &plural, &name).await?;
    training::render_logs(&rec, q.replica.as_deref()).map_err(job_error)
}
