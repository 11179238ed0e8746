//! The Kubeflow Pipelines v2beta1 REST API over the SecondRow engine, so that `kfp.Client` works unchanged.
//!
//! One module per resource ([`healthz`], [`experiments`], [`pipelines`], [`runs`], [`recurring_runs`]) holds
//! its routes, handlers and wire types; wire JSON is built by hand from store records and never leaks into
//! the engine. Errors map to HTTP statuses and KFP's grpc-gateway error JSON in one place ([`error`]).
//! Runs execute inside the server: the [`Supervisor`] owns one tokio task per executing run and its cancel
//! switch; the recurring-run scheduler ([`recurring_runs::scheduler`]) starts runs on their triggers.

pub mod artifacts;
pub mod auth;
pub mod data;
pub mod deployments;
pub mod error;
pub mod experiments;
mod extract;
pub mod healthz;
pub mod list;
pub mod logs;
pub mod metrics;
pub mod monitoring;
pub mod notebooks;
pub mod openapi;
pub mod pipelines;
pub mod records;
pub mod recurring_runs;
pub mod registry;
pub mod runs;
pub mod training_jobs;
pub mod tuning;
pub mod validation;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;

use secondrow_engine::{CancellationToken, Engine, EngineError, RunControl, Submission};
use secondrow_spec::Pipeline;
use secondrow_store::{RunRecord, RunState, Store, StoreError, TaskState};
use serde_json::{Map, Value};

pub use error::{ApiError, ApiResult};

/// Shared server state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub supervisor: Arc<Supervisor>,
    pub metrics: Arc<metrics::Metrics>,
    /// Model deployments served on the serving listener (`secondrow server --serve-port`).
    pub deployments: Arc<deployments::Deployments>,
    pub auth: Arc<auth::Auth>,
    /// Managed JupyterLab servers (`notebooks`): their processes and settings.
    pub notebooks: Arc<notebooks::Notebooks>,
    /// Supervisors of the training jobs this server runs (`training_jobs.rs`).
    pub training_jobs: Arc<training_jobs::Supervisors>,
    /// Submissions are serialized: each one reads then writes (pipeline, version, experiment, run), and
    /// SQLite refuses to upgrade a reader to a writer when another writer got in between.
    submit_lock: Arc<tokio::sync::Mutex<()>>,
}

impl AppState {
    pub fn new(engine: Engine) -> AppState {
        AppState {
            supervisor: Arc::new(Supervisor::new(engine.clone())),
            engine,
            metrics: Arc::new(metrics::Metrics::default()),
            deployments: Arc::new(deployments::Deployments::default()),
            auth: Arc::new(auth::Auth::default()),
            notebooks: Arc::new(notebooks::Notebooks::default()),
            training_jobs: Arc::new(training_jobs::Supervisors::default()),
            submit_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// With an admin token (`--auth-token`): auth is enforced and this token reaches every namespace.
    pub fn with_admin_token(mut self, token: Option<&str>) -> AppState {
        self.auth = Arc::new(auth::Auth::new(token));
        self
    }

    pub fn store(&self) -> &Store {
        self.engine.store()
    }

    /// Records a new run (see [`Engine::submit`]), retrying when the database was busy (each attempt is
    /// transactional, so a retry never duplicates anything).
    pub async fn submit(
        &self,
        pipeline: &Pipeline,
        params: Map<String, Value>,
        sub: Submission,
    ) -> ApiResult<RunRecord> {
        let _guard = self.submit_lock.lock().await;
        let mut attempt = 0;
        loop {
            match self.engine.submit(pipeline, params.clone(), sub.clone()).await {
                Err(EngineError::Store(StoreError::Database(e))) if attempt < 8 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "database busy; retrying the submission");
                    tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
                }
                other => return Ok(other?),
            }
        }
    }
}

/// Largest request body the API reads (a pipeline upload is the largest); larger ones are a 413.
pub const BODY_LIMIT: usize = 64 << 20;

/// Every route under `/apis/v2beta1`, the model registry's (`/api/model_registry/…`), plus `/metrics`.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(healthz::routes())
        .merge(experiments::routes())
        .merge(pipelines::routes())
        .merge(runs::routes())
        .merge(recurring_runs::routes())
        .merge(deployments::routes())
        .merge(monitoring::routes())
        .merge(artifacts::routes())
        .merge(logs::routes())
        .merge(records::routes())
        .merge(registry::records_routes())
        .merge(notebooks::routes())
        .merge(openapi::routes());
    let mut app = Router::new().nest("/apis/v2beta1", api).nest("/apis/kubeflow.org/v1beta1", tuning::routes());
    // The Kubeflow Model Registry REST API, under its own prefixes.
    for prefix in registry::PREFIXES {
        app = app.nest(prefix, registry::routes());
    }
    app = app.nest(data::PREFIX, data::routes());
    app.merge(metrics::routes())
        .merge(training_jobs::routes())
        .merge(notebooks::proxy_routes())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::observe))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .with_state(state)
}

/// A body whose declared length is over [`BODY_LIMIT`] is refused (413) before a byte of it is read,
/// and the connection closed (the unread bytes must not be taken for the next request).
async fn refuse_declared_oversize(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        let mut resp = extract::too_large().into_response();
        resp.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        return resp;
    }
    next.run(req).await
}

/// Owns the executing runs: one tokio task each, with its cancel switch.
pub struct Supervisor {
    engine: Engine,
    active: Mutex<HashMap<String, CancellationToken>>,
}

impl Supervisor {
    fn new(engine: Engine) -> Supervisor {
        Supervisor { engine, active: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts executing a run (`resume`: keep tasks that already succeeded). No-op if it is executing.
    pub fn start(self: &Arc<Self>, run_id: &str, resume: bool) {
        let cancel = CancellationToken::new();
        {
            let mut active = self.lock();
            if active.contains_key(run_id) {
                return;
            }
            active.insert(run_id.to_owned(), cancel.clone());
        }
        let this = self.clone();
        let id = run_id.to_owned();
        tokio::spawn(async move {
            let control = RunControl::new(cancel);
            let result = if resume {
                this.engine.resume(&id, control, true).await
            } else {
                this.engine.execute(&id, control).await
            };
            match result {
                Ok(run) => tracing::info!(run_id = %id, state = %run.state, "run finished"),
                Err(e) => tracing::warn!(run_id = %id, error = %e, "run ended with an engine error"),
            }
            this.lock().remove(&id);
        });
    }

    pub fn is_active(&self, run_id: &str) -> bool {
        self.lock().contains_key(run_id)
    }

    pub fn active_count(&self) -> usize {
        self.lock().len()
    }

    /// Asks an executing run to stop; false when it is not executing here.
    pub fn cancel(&self, run_id: &str) -> bool {
        match self.lock().get(run_id) {
            Some(cancel) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Waits until a run is no longer executing (bounded).
    pub async fn wait_idle(&self, run_id: &str, timeout: Duration) {
        let start = std::time::Instant::now();
        while self.is_active(run_id) && start.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Restart recovery: runs left PENDING or RUNNING by a previous process are resumed (their completed tasks
/// are kept), runs left CANCELING become CANCELED. Returns how many runs were resumed.
pub async fn recover(state: &AppState) -> ApiResult<usize> {
    let store = state.store();
    for run in store.list_runs_in_states(&[RunState::Canceling]).await? {
        store.close_open_tasks(&run.id, TaskState::Canceled, "canceled").await?;
        store.set_run_state(&run.id, RunState::Canceled, Some("canceled")).await?;
    }
    let unfinished = store.list_runs_in_states(&[RunState::Pending, RunState::Running]).await?;
    for run in &unfinished {
        tracing::info!(run_id = %run.id, state = %run.state, "resuming run after restart");
        state.supervisor.start(&run.id, true);
    }
    training_jobs::recover(state).await?;
    Ok(unfinished.len())
}

/// RFC 3339 (UTC, milliseconds) for store times; KFP's `1970-01-01T00:00:00Z` for "not yet".
pub fn ts(ms: Option<i64>) -> String {
    match ms.and_then(chrono::DateTime::from_timestamp_millis) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => "1970-01-01T00:00:00Z".to_owned(),
    }
}

/// Parses an RFC 3339 time from a request into epoch ms.
pub fn parse_ts(field: &str, s: &str) -> ApiResult<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| ApiError::invalid(format!("{field}: `{s}` is not an RFC 3339 time: {e}")))
}

/// Serves the API on `listener` until `shutdown` completes, with the recurring-run scheduler running.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    serve_app(listener, state, app, &secondrow_serve::http::ConnectionLimits::default(), shutdown).await
}

/// [`serve`] with another router in front of the API's (the web UI's routes merged with [`router`]).
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    state: AppState,
    app: Router,
    limits: &secondrow_serve::http::ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let scheduler = tokio::spawn(recurring_runs::scheduler(state));
    // The model server's accept loop: header-read timeout and connection cap (slow clients cannot pin
    // the port).
    let result = secondrow_serve::http::serve_router(listener, app, limits, shutdown).await;
    scheduler.abort();
    result
}
