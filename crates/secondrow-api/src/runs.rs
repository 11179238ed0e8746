//! Runs: create (from a spec or a pipeline version), get (with task details), list, terminate, retry,
//! archive/unarchive, delete. Creation validates everything before anything is written.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use secondrow_engine::{RunOptions, Submission};
use secondrow_spec::{ParameterType, Pipeline};
use secondrow_store::{EventRecord, RunColumn, RunFilter, RunListRow, RunRecord, RunState, TaskRecord, TaskState};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{split_action, ApiJson, ApiPath, ApiQuery};
use crate::list::{page_json, run_list_query, sql_page, ListQuery};
use crate::{ts, validation, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/runs", post(create).get(list)).route("/runs/{id}", get(get_one).delete(delete).post(action))
}

pub const KEYS: &[&str] = &[
    "run_id",
    "display_name",
    "description",
    "experiment_id",
    "namespace",
    "state",
    "storage_state",
    "created_at",
    "scheduled_at",
    "finished_at",
    "recurring_run_id",
];

/// `{pipeline_id, pipeline_version_id}`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct VersionRef {
    #[serde(default)]
    pub pipeline_id: Option<String>,
    #[serde(default)]
    pub pipeline_version_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default)]
    pub pipeline_root: Option<String>,
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(default)]
    experiment_id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    pipeline_spec: Option<Value>,
    #[serde(default)]
    pipeline_version_reference: Option<VersionRef>,
    #[serde(default)]
    runtime_config: Option<RuntimeConfig>,
}

/// The pipeline a run or recurring run is made from: its spec, or a stored version the caller may read.
pub async fn resolve_pipeline(
    s: &AppState,
    caller: &Caller,
    spec: Option<&Value>,
    version: Option<&VersionRef>,
) -> ApiResult<(Pipeline, Option<(String, String)>)> {
    match (spec.filter(|v| !v.is_null()), version) {
        (Some(spec), _) => {
            if !spec.is_object() {
                return Err(ApiError::invalid("pipeline_spec must be an object"));
            }
            Ok((validation::from_json(spec.clone()).await?, None))
        }
        (None, Some(VersionRef { pipeline_id: Some(p), pipeline_version_id: Some(v) }))
            if !p.is_empty() && !v.is_empty() =>
        {
            caller.pipeline(s, p, false).await?;
            let version = s.store().get_pipeline_version(p, v).await?;
            let pipeline = validation::from_json(version.spec).await?;
            Ok((pipeline, Some((p.clone(), v.clone()))))
        }
        (None, Some(_)) => {
            Err(ApiError::invalid("pipeline_version_reference needs both pipeline_id and pipeline_version_id"))
        }
        (None, None) => Err(ApiError::invalid("a run needs pipeline_spec or pipeline_version_reference")),
    }
}

/// The experiment a new run goes into (and its namespace): the given one, or `Default` of the caller's
/// namespace.
pub async fn resolve_experiment(
    s: &AppState,
    caller: &Caller,
    experiment_id: Option<&str>,
) -> ApiResult<(String, String)> {
    match experiment_id.filter(|e| !e.is_empty()) {
        Some(id) => {
            let e = caller.experiment(s, id).await?;
            if e.storage_state == "ARCHIVED" {
                return Err(ApiError::FailedPrecondition(format!("experiment `{id}` is archived")));
            }
            Ok((e.id, e.namespace))
        }
        None => {
            let e = s.store().ensure_experiment("Default", &caller.namespace_for_new(None)?).await?;
            Ok((e.id, e.namespace))
        }
    }
}

/// Binds a request's `runtime_config.parameters` to the pipeline. A STRING parameter given `null` takes
/// its default (or is missing), as if not given; given a number, boolean, list or object it is a 400 (a
/// JSON value where text was declared is a client mistake, not text to invent).
pub(crate) fn bind_wire_parameters(
    pipeline: &Pipeline,
    mut given: Map<String, Value>,
) -> ApiResult<Map<String, Value>> {
    let declared = &pipeline.spec.root.input_definitions.parameters;
    let mut problems = Vec::new();
    given.retain(|name, value| {
        let is_string = declared.get(name).is_some_and(|d| d.parameter_type == ParameterType::String);
        match value {
            Value::Null if is_string => false,
            Value::String(_) | Value::Null => true,
            other if is_string => {
                let what = match other {
                    Value::Bool(_) => "a boolean",
                    Value::Number(_) => "a number",
                    Value::Array(_) => "a list",
                    _ => "an object",
                };
                problems.push(format!("parameter `{name}` is a STRING, got {what}"));
                true
            }
            _ => true,
        }
    });
    if !problems.is_empty() {
        return Err(ApiError::invalid(format!("runtime_config.parameters: {}", problems.join("; "))));
    }
    Ok(pipeline.bind_parameters(&given)?)
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Json<Value>> {
    let (pipeline, version) =
        resolve_pipeline(&s, &caller, body.pipeline_spec.as_ref(), body.pipeline_version_reference.as_ref()).await?;
    let rc = body.runtime_config.unwrap_or_default();
    let params = bind_wire_parameters(&pipeline, rc.parameters.unwrap_or_default())?;
    let (experiment_id, namespace) = resolve_experiment(&s, &caller, body.experiment_id.as_deref()).await?;
    let (pipeline_id, pipeline_version_id) = match version {
        Some((p, v)) => (Some(p), Some(v)),
        None => (None, None),
    };
    let sub = Submission {
        display_name: body.display_name.filter(|n| !n.is_empty()),
        description: body.description.unwrap_or_default(),
        namespace,
        experiment_id: Some(experiment_id),
        pipeline_id,
        pipeline_version_id,
        recurring_run_id: None,
        options: RunOptions::default(),
    };
    let run = s.submit(&pipeline, params, sub).await?;
    s.supervisor.start(&run.id, false);
    tracing::info!(run_id = %run.id, pipeline = %pipeline.name(), "run created");
    let history = s.store().run_state_history(&run.id).await?;
    Ok(Json(wire(&run, &history, None, true)))
}

/// The fields of a run that both a listed run and a fetched one carry (from a [`RunRecord`] or a
/// [`RunListRow`]), as the client reads them.
struct RunHead<'a> {
    id: &'a str,
    experiment_id: Option<&'a str>,
    display_name: &'a str,
    description: &'a str,
    namespace: &'a str,
    storage_state: &'a str,
    parameters: &'a Value,
    created_at: i64,
    finished_at: Option<i64>,
    state: RunState,
    pipeline: Option<(&'a str, &'a str)>,
    recurring_run_id: Option<&'a str>,
    error: Option<&'a str>,
}

impl RunHead<'_> {
    fn json(&self, state_history: Value) -> Value {
        let mut out = json!({
            "run_id": self.id,
            "experiment_id": self.experiment_id,
            "display_name": self.display_name,
            "description": self.description,
            "namespace": self.namespace,
            "storage_state": self.storage_state,
            "runtime_config": {"parameters": self.parameters},
            "service_account": "",
            "created_at": ts(Some(self.created_at)),
            "scheduled_at": ts(Some(self.created_at)),
            "finished_at": ts(self.finished_at),
            "state": self.state.as_str(),
            "state_history": state_history,
        });
        if let Some((p, v)) = self.pipeline {
            out["pipeline_version_reference"] = json!({"pipeline_id": p, "pipeline_version_id": v});
        }
        if let Some(rr) = self.recurring_run_id {
            out["recurring_run_id"] = json!(rr);
        }
        if let Some(e) = self.error {
            out["error"] = json!({"code": if self.state == RunState::Canceled { 1 } else { 2 }, "message": e});
        }
        out
    }
}

/// A run as the client reads it; `tasks` adds `run_details.task_details`.
pub fn wire(
    r: &RunRecord,
    history: &[(RunState, i64)],
    tasks: Option<(&[TaskRecord], &[EventRecord])>,
    with_spec: bool,
) -> Value {
    let head = RunHead {
        id: &r.id,
        experiment_id: r.experiment_id.as_deref(),
        display_name: &r.display_name,
        description: &r.description,
        namespace: &r.namespace,
        storage_state: &r.storage_state,
        parameters: &r.parameters,
        created_at: r.created_at,
        finished_at: r.finished_at,
        state: r.state,
        pipeline: r.pipeline_id.as_deref().zip(r.pipeline_version_id.as_deref()),
        recurring_run_id: r.recurring_run_id.as_deref(),
        error: r.error.as_deref(),
    };
    let history: Vec<Value> =
        history.iter().map(|(s, at)| json!({"update_time": ts(Some(*at)), "state": s.as_str()})).collect();
    let mut out = head.json(json!(history));
    if with_spec && !r.spec.is_null() {
        out["pipeline_spec"] = r.spec.clone();
    }
    if let Some((tasks, events)) = tasks {
        out["run_details"] = json!({"task_details": task_details(r, tasks, events)});
    }
    out
}

fn task_details(r: &RunRecord, tasks: &[TaskRecord], events: &[EventRecord]) -> Vec<Value> {
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for t in tasks {
        if let Some(p) = &t.parent_id {
            children.entry(p.as_str()).or_default().push(t.id.as_str());
        }
    }
    let mut io: HashMap<(&str, &str), Map<String, Value>> = HashMap::new();
    for e in events {
        let side = io.entry((e.task_id.as_str(), if e.kind == "INPUT" { "inputs" } else { "outputs" })).or_default();
        let entry = side.entry(e.name.clone()).or_insert_with(|| json!({"artifact_ids": []}));
        if let Some(ids) = entry["artifact_ids"].as_array_mut() {
            ids.push(json!(e.artifact_id));
        }
    }
    tasks
        .iter()
        .map(|t| {
            let state = t.state.as_str();
            let mut history = vec![json!({"update_time": ts(Some(t.created_at)), "state": "PENDING"})];
            if let Some(s) = t.started_at {
                if t.state != TaskState::Skipped {
                    history.push(json!({"update_time": ts(Some(s)), "state": "RUNNING"}));
                }
            }
            if t.state.is_terminal() {
                history.push(json!({"update_time": ts(t.finished_at), "state": state}));
            }
            let mut d = json!({
                "run_id": r.id,
                "task_id": t.id,
                "display_name": t.display_name,
                "create_time": ts(Some(t.created_at)),
                "start_time": ts(t.started_at),
                "end_time": ts(t.finished_at),
                "state": state,
                "pod_name": t.path,
                "parent_task_id": t.parent_id,
                "child_tasks": children.get(t.id.as_str()).map(|c| c.iter().map(|id| json!({"task_id": id})).collect::<Vec<_>>()).unwrap_or_default(),
                "state_history": history,
                "inputs": io.get(&(t.id.as_str(), "inputs")).cloned().unwrap_or_default(),
                "outputs": io.get(&(t.id.as_str(), "outputs")).cloned().unwrap_or_default(),
            });
            if let Some(e) = &t.error {
                d["error"] = json!({"code": 2, "message": e});
            }
            d
        })
        .collect()
}

/// The full run document, with task details, if the caller may read it.
pub async fn full(s: &AppState, caller: &Caller, id: &str) -> ApiResult<Value> {
    let store = s.store();
    // Four independent reads on the store's read pool, concurrently.
    let (run, history, tasks, events) =
        tokio::try_join!(store.get_run(id), store.run_state_history(id), store.list_tasks(id), store.list_events(id))?;
    caller.check("run", id, &run.namespace)?;
    Ok(wire(&run, &history, Some((&tasks, &events)), true))
}

async fn get_one(State(s): State<AppState>, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    Ok(Json(full(&s, &caller, &id).await?))
}

async fn list(State(s): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<Json<Value>> {
    let experiment = q.experiment_id.as_deref().filter(|e| !e.is_empty());
    let namespace = caller.list_scope(&s, experiment, q.namespace.as_deref()).await?;
    // Filtered, sorted and paged in SQL: one query for the page (plus one COUNT), whatever the store holds.
    let mut scope = Vec::new();
    if let Some(ns) = namespace {
        scope.push(RunFilter::eq(RunColumn::Namespace, ns));
    }
    if let Some(e) = experiment {
        scope.push(RunFilter::eq(RunColumn::ExperimentId, e));
    }
    let (query, offset) = run_list_query(&q, KEYS, scope)?;
    let page = s.store().list_run_page(&query).await?;
    let items = page.runs.iter().map(list_wire).collect();
    Ok(Json(page_json("runs", sql_page(items, offset, page.next.is_some(), page.total))))
}

/// A listed run as the client reads it (what [`wire`] writes for a run without spec, tasks or history).
fn list_wire(r: &RunListRow) -> Value {
    RunHead {
        id: &r.id,
        experiment_id: r.experiment_id.as_deref(),
        display_name: &r.display_name,
        description: &r.description,
        namespace: &r.namespace,
        storage_state: &r.storage_state,
        parameters: &r.parameters,
        created_at: r.created_at,
        finished_at: r.finished_at,
        state: r.state,
        pipeline: r.pipeline_id.as_deref().zip(r.pipeline_version_id.as_deref()),
        recurring_run_id: r.recurring_run_id.as_deref(),
        error: r.error.as_deref(),
    }
    .json(json!([]))
}

async fn delete(State(s): State<AppState>, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    caller.run(&s, &id).await?;
    if s.supervisor.cancel(&id) {
        s.supervisor.wait_idle(&id, Duration::from_secs(15)).await;
    }
    s.store().delete_run(&id).await?;
    Ok(Json(json!({})))
}

async fn action(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id_action): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let (id, action) = split_action(&id_action)?;
    let store = s.store();
    let run = caller.run(&s, id).await?;
    match action {
        "terminate" => terminate(&s, &run).await?,
        "retry" => {
            // A just-terminated run may still be closing its tasks.
            s.supervisor.wait_idle(id, Duration::from_secs(5)).await;
            let run = store.get_run(id).await?;
            if !matches!(run.state, RunState::Failed | RunState::Canceled) {
                return Err(ApiError::FailedPrecondition(format!(
                    "run `{id}` is {}; only FAILED or CANCELED runs can be retried",
                    run.state
                )));
            }
            if s.supervisor.is_active(id) {
                return Err(ApiError::FailedPrecondition(format!("run `{id}` is still stopping; retry in a moment")));
            }
            store.set_run_state(id, RunState::Pending, None).await?;
            s.supervisor.start(id, true);
        }
        "archive" => store.set_run_storage_state(id, "ARCHIVED").await?,
        "unarchive" => store.set_run_storage_state(id, "AVAILABLE").await?,
        other => return Err(ApiError::NotFound(format!("unknown run method `{other}`"))),
    }
    Ok(Json(json!({})))
}

/// Stops a run: CANCELING now, CANCELED once its task processes are killed.
pub async fn terminate(s: &AppState, run: &RunRecord) -> ApiResult<()> {
    if run.state.is_terminal() {
        return Ok(());
    }
    let store = s.store();
    if s.supervisor.is_active(&run.id) {
        store.set_run_state(&run.id, RunState::Canceling, None).await?;
        s.supervisor.cancel(&run.id);
    } else {
        store.close_open_tasks(&run.id, TaskState::Canceled, "canceled").await?;
        store.set_run_state(&run.id, RunState::Canceled, Some("canceled")).await?;
    }
    Ok(())
}
