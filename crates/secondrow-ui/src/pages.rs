//! Page handlers: the runs list, a run (graph, parameters, artifacts) with an optional side panel (a task
//! with its logs, or an artifact with its visualization), the live-update stream, actions and downloads.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::Duration;

use askama::Template;
use axum::body::Body;
use axum::extract::{Extension, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use futures::Stream;
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt as _;

use secondrow_api::auth::Caller;
use secondrow_spec::PipelineSpec;
use secondrow_store::{
    ArtifactRecord, CmpOp, Cursor, EventRecord, RunColumn, RunFilter, RunListQuery, RunRecord, RunSort, RunState,
    SqlValue, TaskKind, TaskRecord,
};

use crate::graph::{self, url_part, Target};
use crate::viz::{self, esc};
use crate::{csrf_refusal, error_page, html, Chrome, Csrf, Ui, UiError};

type UiResult<T> = Result<T, UiError>;

const PAGE_SIZE: i64 = 50;
const CSV_PAGE: usize = 50;
/// The most of a log or text artifact shown inline (the tail for logs).
const MAX_INLINE: usize = 512 * 1024;

/// Epoch ms as RFC 3339 (the browser shows it in its own time zone).
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn duration(start: Option<i64>, end: Option<i64>) -> String {
    let (Some(s), end) = (start, end) else { return String::new() };
    let ms = end.unwrap_or_else(secondrow_store::now_ms) - s;
    let secs = ms.max(0) / 1000;
    let text = if secs >= 3600 {
        format!("{}h {:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", ms.max(0) as f64 / 1000.0)
    };
    if end.is_none() {
        format!("{text}…")
    } else {
        text
    }
}

// ------------------------------------------------------------------ runs list

#[derive(Deserialize, Default)]
pub struct RunsQuery {
    q: Option<String>,
    state: Option<String>,
    experiment: Option<String>,
    archived: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    after: Option<String>,
}

pub struct RunRow {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub duration: String,
    pub pipeline: String,
    pub experiment: String,
    pub experiment_id: String,
    pub created: String,
    pub finished: String,
}

pub struct SortLink {
    pub label: &'static str,
    pub href: String,
    pub mark: &'static str,
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    c: Chrome,
    rows: Vec<RunRow>,
    q: String,
    state: String,
    states: Vec<&'static str>,
    experiment: String,
    experiments: Vec<(String, String)>,
    archived: bool,
    sorts: Vec<SortLink>,
    next: Option<String>,
    first: Option<String>,
    filtered: bool,
}

const STATES: &[RunState] = &[
    RunState::Pending,
    RunState::Running,
    RunState::Succeeded,
    RunState::Failed,
    RunState::Canceling,
    RunState::Canceled,
    RunState::Skipped,
    RunState::Paused,
];

pub async fn runs(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    Query(q): Query<RunsQuery>,
) -> UiResult<Response> {
    let s = &ui.app;
    let mut filters = Vec::new();
    if let Some(ns) = caller.list_namespace(None)? {
        filters.push(RunFilter::eq(RunColumn::Namespace, ns));
    }
    let archived = q.archived.as_deref().is_some_and(|a| !a.is_empty() && a != "0");
    filters.push(RunFilter::eq(RunColumn::StorageState, if archived { "ARCHIVED" } else { "AVAILABLE" }));
    let state = q.state.clone().unwrap_or_default();
    if !state.is_empty() {
        let st: RunState =
            state.parse().map_err(|e: secondrow_store::UnknownName| UiError::BadRequest(e.to_string()))?;
        filters.push(RunFilter::eq(RunColumn::State, st.as_str()));
    }
    let experiment = q.experiment.clone().unwrap_or_default();
    if !experiment.is_empty() {
        caller.experiment(s, &experiment).await?;
        filters.push(RunFilter::eq(RunColumn::ExperimentId, experiment.as_str()));
    }
    let text = q.q.clone().unwrap_or_default();
    if !text.trim().is_empty() {
        filters.push(RunFilter {
            column: RunColumn::DisplayName,
            op: CmpOp::ContainsIgnoreCase,
            values: vec![SqlValue::Text(text.trim().to_owned())],
        });
    }
    let (sort_key, column) = match q.sort.as_deref().unwrap_or("created") {
        "created" => ("created", RunColumn::CreatedAt),
        "name" => ("name", RunColumn::DisplayName),
        "state" => ("state", RunColumn::State),
        "finished" => ("finished", RunColumn::FinishedAt),
        other => return Err(UiError::BadRequest(format!("unknown sort `{other}` (created, name, state, finished)"))),
    };
    let descending = match q.dir.as_deref() {
        Some("asc") => false,
        Some("desc") => true,
        None | Some("") => column == RunColumn::CreatedAt || column == RunColumn::FinishedAt,
        Some(other) => return Err(UiError::BadRequest(format!("unknown direction `{other}` (asc, desc)"))),
    };
    let after = match q.after.as_deref().filter(|a| !a.is_empty()) {
        Some(t) => Some(Cursor::decode(t)?),
        None => None,
    };
    let page = s
        .store()
        .list_run_page(&RunListQuery {
            filters,
            sort: RunSort { column, descending },
            after: after.clone(),
            limit: PAGE_SIZE,
            ..RunListQuery::default()
        })
        .await?;
    let rows = page
        .runs
        .iter()
        .map(|r| RunRow {
            id: r.id.clone(),
            name: r.display_name.clone(),
            state: r.state.as_str(),
            duration: duration(r.started_at, r.finished_at),
            pipeline: match &r.pipeline_version_name {
                Some(v) if v != &r.pipeline_name => format!("{} ({v})", r.pipeline_name),
                _ => r.pipeline_name.clone(),
            },
            experiment: r.experiment_name.clone().unwrap_or_default(),
            experiment_id: r.experiment_id.clone().unwrap_or_default(),
            created: rfc3339(r.created_at),
            finished: r.finished_at.map(rfc3339).unwrap_or_default(),
        })
        .collect();
    let base = |sort: &str, dir: &str, after: Option<&str>| {
        let mut u = format!(
            "/runs?q={}&state={}&experiment={}&sort={sort}&dir={dir}",
            url_part(&text, false),
            url_part(&state, false),
            url_part(&experiment, false)
        );
        if archived {
            u.push_str("&archived=1");
        }
        if let Some(a) = after {
            u.push_str("&after=");
            u.push_str(a);
        }
        u
    };
    let dir_now = if descending { "desc" } else { "asc" };
    let sorts = [("Name", "name"), ("State", "state"), ("Created", "created"), ("Finished", "finished")]
        .into_iter()
        .map(|(label, key)| {
            let active = key == sort_key;
            let dir = if active && !descending {
                "desc"
            } else if active {
                "asc"
            } else {
                "desc"
            };
            SortLink {
                label,
                href: base(key, dir, None),
                mark: match (active, descending) {
                    (false, _) => "",
                    (true, true) => " ▼",
                    (true, false) => " ▲",
                },
            }
        })
        .collect();
    let experiments = s
        .store()
        .list_experiments(caller.list_namespace(None)?)
        .await?
        .into_iter()
        .map(|e| (e.id, e.display_name))
        .collect();
    let page_view = RunsPage {
        c: Chrome::new("Runs", &csrf, Some(&caller), "runs"),
        rows,
        q: text.clone(),
        state: state.clone(),
        states: STATES.iter().map(|s| s.as_str()).collect(),
        experiment: experiment.clone(),
        experiments,
        archived,
        sorts,
        next: page.next.map(|c| base(sort_key, dir_now, Some(&c.encode()))),
        first: after.map(|_| base(sort_key, dir_now, None)),
        filtered: !text.trim().is_empty() || !state.is_empty() || !experiment.is_empty() || archived,
    };
    Ok(html(page_view.render()))
}

// ------------------------------------------------------------------ one run

#[derive(Deserialize, Default)]
pub struct RunQuery {
    dag: Option<String>,
    page: Option<usize>,
}

pub struct Crumb {
    pub label: String,
    pub href: String,
}

pub struct ArtifactRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub producer: String,
    pub producer_href: String,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    c: Chrome,
    run: RunRecord,
    state: &'static str,
    created: String,
    duration: String,
    experiment: String,
    params: Vec<(String, String)>,
    crumbs: Vec<Crumb>,
    view: String,
    events: String,
    live: bool,
    artifacts: Vec<ArtifactRow>,
    panel: String,
    panel_title: String,
    can_terminate: bool,
    can_retry: bool,
}

enum Panel {
    None,
    Task(String),
    Artifact(String, usize),
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_spec(run: &RunRecord) -> Result<PipelineSpec, String> {
    serde_json::from_value(run.spec.clone()).map_err(|e| format!("the run's pipeline spec cannot be drawn: {e}"))
}

/// The graph of one DAG as SVG, or a loop's iterations as a table (escaped HTML either way).
pub(crate) fn view_html(spec: &PipelineSpec, dag: &str, tasks: &[TaskRecord], run_id: &str) -> Result<String, String> {
    match graph::resolve(spec, dag)? {
        Target::Dag(comp) => {
            let v = graph::dag_view(spec, comp, dag, tasks);
            if v.nodes.is_empty() {
                return Ok("<p class=\"empty\">This DAG has no tasks.</p>".into());
            }
            Ok(graph::svg(&v, run_id))
        }
        Target::Loop(_) => {
            let its = graph::iterations(dag, tasks);
            if its.is_empty() {
                return Ok("<p class=\"empty\">No iteration has started yet.</p>".into());
            }
            let mut s = String::from(
                "<table class=\"iterations\"><thead><tr><th>Iteration</th><th>State</th><th>Duration</th></tr></thead><tbody>",
            );
            for t in its {
                let path = format!("{dag}/{}", t.task_key);
                s.push_str(&format!(
                    "<tr data-state=\"{st}\"><td><a href=\"/runs/{rid}?dag={p}\">{key}</a></td><td><span class=\"badge state-{cls}\">{st}</span></td><td>{d}</td></tr>",
                    rid = url_part(run_id, false),
                    p = url_part(&path, false),
                    key = esc(&t.task_key),
                    st = t.state.as_str(),
                    cls = t.state.as_str().to_lowercase(),
                    d = duration(t.started_at, t.finished_at)
                ));
            }
            s.push_str("</tbody></table>");
            Ok(s)
        }
    }
}

fn crumbs(run_id: &str, dag: &str) -> Vec<Crumb> {
    let mut out = vec![Crumb { label: "graph".into(), href: format!("/runs/{}", url_part(run_id, false)) }];
    let mut acc = String::new();
    for seg in dag.split('/').filter(|s| !s.is_empty()) {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(seg);
        out.push(Crumb {
            label: seg.to_owned(),
            href: format!("/runs/{}?dag={}", url_part(run_id, false), url_part(&acc, false)),
        });
    }
    out
}

pub async fn run(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<RunQuery>,
) -> UiResult<Response> {
    render_run(&ui, &caller, &csrf, &id, q.dag, Panel::None).await
}

pub async fn task(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath((id, path)): UrlPath<(String, String)>,
    Query(q): Query<RunQuery>,
) -> UiResult<Response> {
    render_run(&ui, &caller, &csrf, &id, q.dag, Panel::Task(path)).await
}

pub async fn artifact(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath((id, aid)): UrlPath<(String, String)>,
    Query(q): Query<RunQuery>,
) -> UiResult<Response> {
    render_run(&ui, &caller, &csrf, &id, q.dag, Panel::Artifact(aid, q.page.unwrap_or(0))).await
}

async fn render_run(
    ui: &Ui,
    caller: &Caller,
    csrf: &Csrf,
    id: &str,
    dag: Option<String>,
    panel: Panel,
) -> UiResult<Response> {
    let s = &ui.app;
    let run = caller.run(s, id).await?;
    let store = s.store();
    let tasks = store.list_tasks(&run.id).await?;
    let artifacts = store.list_artifacts(&run.id).await?;
    let events = store.list_events(&run.id).await?;
    let dag = dag.unwrap_or_else(|| match &panel {
        Panel::Task(p) => p.rsplit_once('/').map(|(parent, _)| parent.to_owned()).unwrap_or_default(),
        _ => String::new(),
    });
    let view = match parse_spec(&run).and_then(|spec| view_html(&spec, &dag, &tasks, &run.id)) {
        Ok(v) => v,
        Err(e) => format!("<p class=\"error\">{}</p>", esc(&e)),
    };
    let (panel_title, panel) = match panel {
        Panel::None => (String::new(), String::new()),
        Panel::Task(path) => (format!("Task {path}"), task_panel(ui, &run, &tasks, &artifacts, &events, &path)?),
        Panel::Artifact(aid, page) => {
            let a = artifacts
                .iter()
                .find(|a| a.id == aid)
                .ok_or_else(|| secondrow_api::ApiError::NotFound(format!("run `{id}` has no artifact `{aid}`")))?;
            (format!("Artifact {}", a.name), artifact_panel(ui, &run, a, &tasks, &events, page).await)
        }
    };
    let experiment = match &run.experiment_id {
        Some(e) => store.get_experiment(e).await.map(|e| e.display_name).unwrap_or_default(),
        None => String::new(),
    };
    let task_path = |tid: &Option<String>| {
        tid.as_ref().and_then(|t| tasks.iter().find(|x| &x.id == t)).map(|t| t.path.clone()).unwrap_or_default()
    };
    let page = RunPage {
        c: Chrome::new(format!("Run {}", run.display_name), csrf, Some(caller), "runs"),
        state: run.state.as_str(),
        created: rfc3339(run.created_at),
        duration: duration(run.started_at, run.finished_at),
        experiment,
        params: run
            .parameters
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), json_text(v))).collect())
            .unwrap_or_default(),
        crumbs: crumbs(&run.id, &dag),
        view,
        events: format!("/runs/{}/events?dag={}", url_part(&run.id, false), url_part(&dag, false)),
        live: !run.state.is_terminal(),
        artifacts: artifacts
            .iter()
            .map(|a| ArtifactRow {
                id: a.id.clone(),
                name: a.name.clone(),
                kind: a.schema_title.clone(),
                producer: task_path(&a.task_id),
                producer_href: format!(
                    "/runs/{}/tasks/{}",
                    url_part(&run.id, false),
                    url_part(&task_path(&a.task_id), true)
                ),
            })
            .collect(),
        panel,
        panel_title,
        can_terminate: matches!(run.state, RunState::Pending | RunState::Running | RunState::Paused),
        can_retry: matches!(run.state, RunState::Failed | RunState::Canceled),
        run,
    };
    Ok(html(page.render()))
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPanel {
    run_id: String,
    path: String,
    found: bool,
    state: &'static str,
    kind: &'static str,
    attempts: i64,
    started: String,
    finished: String,
    duration: String,
    error: String,
    inputs: Vec<(String, String)>,
    outputs: Vec<(String, String)>,
    consumed: Vec<(String, String, String)>,
    produced: Vec<(String, String, String)>,
    logs: String,
    is_container: bool,
}

/// `{parameters: {...}, artifacts: {...}}` (or a flat object) as name → text rows.
fn io_rows(v: Option<&Value>) -> Vec<(String, String)> {
    let Some(Value::Object(m)) = v else { return Vec::new() };
    let mut out = Vec::new();
    for (k, val) in m {
        match (k.as_str(), val) {
            ("parameters" | "parameter_values" | "artifacts", Value::Object(inner)) => {
                for (name, x) in inner {
                    out.push((name.clone(), json_text(x)));
                }
            }
            _ => out.push((k.clone(), json_text(val))),
        }
    }
    out
}

fn task_panel(
    ui: &Ui,
    run: &RunRecord,
    tasks: &[TaskRecord],
    artifacts: &[ArtifactRecord],
    events: &[EventRecord],
    path: &str,
) -> UiResult<String> {
    let t = tasks.iter().find(|t| t.path == path);
    let Some(t) = t else {
        let p = TaskPanel {
            run_id: run.id.clone(),
            path: path.to_owned(),
            found: false,
            state: "NOT_STARTED",
            kind: "",
            attempts: 0,
            started: String::new(),
            finished: String::new(),
            duration: String::new(),
            error: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            consumed: Vec::new(),
            produced: Vec::new(),
            logs: String::new(),
            is_container: false,
        };
        return p.render().map_err(|e| UiError::Api(secondrow_api::ApiError::Internal(e.to_string())));
    };
    let lineage = |kind: &str| {
        events
            .iter()
            .filter(|e| e.task_id == t.id && e.kind == kind)
            .filter_map(|e| {
                artifacts
                    .iter()
                    .find(|a| a.id == e.artifact_id)
                    .map(|a| (a.id.clone(), e.name.clone(), a.schema_title.clone()))
            })
            .collect::<Vec<_>>()
    };
    let is_container = t.kind == TaskKind::Container;
    let p = TaskPanel {
        run_id: run.id.clone(),
        path: path.to_owned(),
        found: true,
        state: if t.cached { "CACHED" } else { t.state.as_str() },
        kind: t.kind.as_str(),
        attempts: t.attempts,
        started: t.started_at.map(rfc3339).unwrap_or_default(),
        finished: t.finished_at.map(rfc3339).unwrap_or_default(),
        duration: duration(t.started_at, t.finished_at),
        error: t.error.clone().unwrap_or_default(),
        inputs: io_rows(t.inputs.as_ref()),
        outputs: io_rows(t.outputs.as_ref()),
        consumed: lineage("INPUT"),
        produced: lineage("OUTPUT"),
        logs: if is_container { logs_fragment(ui, run, tasks, t)? } else { String::new() },
        is_container,
    };
    p.render().map_err(|e| UiError::Api(secondrow_api::ApiError::Internal(e.to_string())))
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsFragment {
    url: String,
    live: bool,
    text: String,
    clipped: bool,
}

fn logs_fragment(ui: &Ui, run: &RunRecord, tasks: &[TaskRecord], t: &TaskRecord) -> UiResult<String> {
    let root = ui.app.engine.config().logs_root.clone();
    let mut text = secondrow_api::logs::render(&root, &run.id, tasks, Some(&t.path))?;
    let clipped = text.len() > MAX_INLINE;
    if clipped {
        let mut cut = text.len() - MAX_INLINE;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text = text[cut..].to_owned();
    }
    let f = LogsFragment {
        url: format!("/runs/{}/logs?task={}", url_part(&run.id, false), url_part(&t.path, false)),
        live: !t.state.is_terminal(),
        text,
        clipped,
    };
    f.render().map_err(|e| UiError::Api(secondrow_api::ApiError::Internal(e.to_string())))
}

#[derive(Deserialize)]
pub struct LogsQuery {
    task: String,
}

/// The logs `<pre>` of one task (htmx polls it while the task runs).
pub async fn logs(
    State(ui): State<Ui>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<LogsQuery>,
) -> UiResult<Response> {
    let run = caller.run(&ui.app, &id).await?;
    let tasks = ui.app.store().list_tasks(&run.id).await?;
    let t = tasks
        .iter()
        .find(|t| t.path == q.task)
        .ok_or_else(|| secondrow_api::ApiError::NotFound(format!("run `{id}` has no task `{}`", q.task)))?;
    let frag = logs_fragment(&ui, &run, &tasks, t)?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], frag).into_response())
}

// ------------------------------------------------------------------ artifacts

#[derive(Template)]
#[template(path = "artifact.html")]
struct ArtifactPanel {
    id: String,
    name: String,
    kind: String,
    uri: String,
    metadata: String,
    producer: Vec<(String, String, String)>,
    consumers: Vec<(String, String, String)>,
    viz: String,
}

/// The artifact's file, if it lies under the artifact root (symlinks followed); a folder yields its first
/// regular file by name.
fn artifact_file(root: &Path, a: &ArtifactRecord) -> Result<PathBuf, String> {
    let root = root.canonicalize().map_err(|_| "no artifact folder yet".to_owned())?;
    let real = Path::new(&a.uri).canonicalize().map_err(|_| "the artifact has no file".to_owned())?;
    if !real.starts_with(&root) {
        return Err("the artifact's file is outside the artifact root".into());
    }
    if real.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&real)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        let first = entries.into_iter().next().ok_or("the artifact folder is empty")?;
        let first = first.canonicalize().map_err(|e| e.to_string())?;
        if !first.starts_with(&root) {
            return Err("the artifact's file is outside the artifact root".into());
        }
        return Ok(first);
    }
    Ok(real)
}

async fn read_text(ui: &Ui, a: &ArtifactRecord, max: u64) -> Result<String, String> {
    let root = ui.app.engine.artifacts().root().to_path_buf();
    let a = a.clone();
    tokio::task::spawn_blocking(move || {
        let path = artifact_file(&root, &a)?;
        let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
        if len > max {
            return Err(format!("the file is {len} bytes; shown up to {max}: download it instead"));
        }
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn artifact_panel(
    ui: &Ui,
    run: &RunRecord,
    a: &ArtifactRecord,
    tasks: &[TaskRecord],
    events: &[EventRecord],
    page: usize,
) -> String {
    let path_of = |tid: &str| tasks.iter().find(|t| t.id == tid).map(|t| t.path.clone()).unwrap_or_default();
    let lineage = |kind: &str| {
        events
            .iter()
            .filter(|e| e.artifact_id == a.id && e.kind == kind)
            .map(|e| {
                let p = path_of(&e.task_id);
                (format!("/runs/{}/tasks/{}", url_part(&run.id, false), url_part(&p, true)), p, e.name.clone())
            })
            .collect::<Vec<_>>()
    };
    let viz = match a.schema_title.as_str() {
        "system.Metrics" => {
            let rows = viz::scalar_metrics(&a.metadata);
            if rows.is_empty() {
                "<p class=\"empty\">No scalar metrics were logged.</p>".to_owned()
            } else {
                let mut s = String::from("<table class=\"metrics\"><thead><tr><th>Metric</th><th>Value</th></tr></thead><tbody>");
                for (k, v) in rows {
                    s.push_str(&format!("<tr><td>{}</td><td class=\"num\">{}</td></tr>", esc(&k), esc(&v)));
                }
                s.push_str("</tbody></table>");
                s
            }
        }
        "system.ClassificationMetrics" => {
            let mut s = String::new();
            if let Some(c) = viz::confusion(&a.metadata) {
                s.push_str("<figure><figcaption>Confusion matrix</figcaption>");
                s.push_str(&viz::confusion_svg(&c));
                s.push_str("</figure>");
            }
            let pts = viz::roc_points(&a.metadata);
            if !pts.is_empty() {
                s.push_str("<figure><figcaption>ROC curve</figcaption>");
                s.push_str(&viz::roc_svg(&[(a.name.clone(), pts)]));
                s.push_str("</figure>");
            }
            if s.is_empty() {
                s.push_str("<p class=\"empty\">No confusion matrix or ROC points in this artifact.</p>");
            }
            format!("<div class=\"charts\">{s}</div>")
        }
        "system.HTML" => format!(
            "<iframe class=\"html-artifact\" sandbox=\"\" referrerpolicy=\"no-referrer\" src=\"/artifacts/{}/view\" title=\"{}\"></iframe>",
            url_part(&a.id, false),
            esc(&a.name)
        ),
        "system.Markdown" => match read_text(ui, a, 4 << 20).await {
            Ok(text) => format!("<div class=\"markdown\">{}</div>", viz::markdown(&text)),
            Err(e) => format!("<p class=\"error\">{}</p>", esc(&e)),
        },
        "system.Dataset" => match read_text(ui, a, 64 << 20).await {
            Ok(text) if text.contains(',') && !text.starts_with("PAR1") => {
                let p = viz::csv_page(&text, page * CSV_PAGE, CSV_PAGE);
                csv_table(&run.id, &a.id, &p, page)
            }
            Ok(_) => "<p class=\"empty\">Not a CSV file: download it to look inside.</p>".to_owned(),
            Err(e) => format!("<p class=\"error\">{}</p>", esc(&e)),
        },
        _ => String::new(),
    };
    let p = ArtifactPanel {
        id: a.id.clone(),
        name: a.name.clone(),
        kind: a.schema_title.clone(),
        uri: a.uri.clone(),
        metadata: serde_json::to_string_pretty(&a.metadata).unwrap_or_default(),
        producer: lineage("OUTPUT"),
        consumers: lineage("INPUT"),
        viz,
    };
    p.render().unwrap_or_else(|e| format!("<p class=\"error\">{}</p>", esc(&e.to_string())))
}

fn csv_table(run_id: &str, aid: &str, p: &viz::CsvPage, page: usize) -> String {
    let mut s = String::from("<table class=\"dataset\"><thead><tr>");
    for (h, t) in p.header.iter().zip(&p.types) {
        s.push_str(&format!("<th>{}<small>{t}</small></th>", esc(h)));
    }
    s.push_str("</tr></thead><tbody>");
    for row in &p.rows {
        s.push_str("<tr>");
        for v in row {
            s.push_str(&format!("<td>{}</td>", esc(v)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table><nav class=\"pager\">");
    let link = |n: usize| format!("/runs/{}/artifacts/{}?page={n}", url_part(run_id, false), url_part(aid, false));
    if page > 0 {
        s.push_str(&format!("<a href=\"{}\">← previous</a> ", link(page - 1)));
    }
    s.push_str(&format!("<span>rows {}–{}</span>", page * CSV_PAGE + 1, page * CSV_PAGE + p.rows.len()));
    if p.more {
        s.push_str(&format!(" <a href=\"{}\">next →</a>", link(page + 1)));
    }
    s.push_str("</nav>");
    s
}

/// An HTML artifact's own bytes, for the sandboxed iframe: `sandbox` CSP (an opaque origin that cannot reach
/// the UI's cookies or pages), no scripts, no network.
pub async fn artifact_html(State(ui): State<Ui>, caller: Caller, UrlPath(aid): UrlPath<String>) -> UiResult<Response> {
    let a = ui.app.store().get_artifact(&aid).await?;
    caller.run(&ui.app, &a.run_id).await?;
    if a.schema_title != "system.HTML" {
        return Err(UiError::BadRequest(format!("artifact `{aid}` is {}, not system.HTML", a.schema_title)));
    }
    let text = read_text(&ui, &a, 16 << 20).await.map_err(UiError::BadRequest)?;
    let mut r = Response::new(Body::from(text));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:",
        ),
    );
    Ok(r)
}

/// Forwards a request to the API router in-process with the caller's credentials.
pub(crate) async fn forward(ui: &Ui, method: Method, uri: &str, headers: &HeaderMap) -> Response {
    forward_body(ui, method, uri, headers, Body::empty()).await
}

/// [`forward`] with a JSON body.
pub(crate) async fn forward_body(ui: &Ui, method: Method, uri: &str, headers: &HeaderMap, body: Body) -> Response {
    let mut req = Request::new(body);
    req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    *req.method_mut() = method;
    match uri.parse() {
        Ok(u) => *req.uri_mut() = u,
        Err(_) => return error_page(StatusCode::BAD_REQUEST, "bad id", None),
    }
    if let Some(a) = headers.get(header::AUTHORIZATION) {
        req.headers_mut().insert(header::AUTHORIZATION, a.clone());
    }
    match ui.api.clone().oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    }
}

pub async fn download(State(ui): State<Ui>, headers: HeaderMap, UrlPath(aid): UrlPath<String>) -> Response {
    forward(&ui, Method::GET, &format!("/apis/v2beta1/artifacts/{}:download", url_part(&aid, false)), &headers).await
}

/// The message of an API error response.
pub(crate) async fn api_message(r: Response) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap_or_default();
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned())
}

#[derive(Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
}

/// Run actions (`terminate`, `retry`, `archive`, `unarchive`, `delete`), through the API.
pub async fn action(
    State(ui): State<Ui>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    UrlPath((id, action)): UrlPath<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&headers, &csrf, f.csrf.as_deref()) {
        return r;
    }
    let rid = url_part(&id, false);
    let (method, uri) = match action.as_str() {
        "terminate" | "retry" | "archive" | "unarchive" => (Method::POST, format!("/apis/v2beta1/runs/{rid}:{action}")),
        "delete" => (Method::DELETE, format!("/apis/v2beta1/runs/{rid}")),
        other => return error_page(StatusCode::NOT_FOUND, &format!("unknown action `{other}`"), None),
    };
    let r = forward(&ui, method, &uri, &headers).await;
    if !r.status().is_success() {
        let status = r.status();
        return error_page(status, &api_message(r).await, None);
    }
    let to = if action == "delete" { "/runs".to_owned() } else { format!("/runs/{rid}") };
    if headers.contains_key("hx-request") {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = HeaderValue::from_str(&to) {
            r.headers_mut().insert("hx-redirect", v);
        }
        return r;
    }
    Redirect::to(&to).into_response()
}

// ------------------------------------------------------------------ live updates

struct Live {
    ui: Ui,
    id: String,
    dag: String,
    spec: Option<PipelineSpec>,
    last: Option<(RunState, Vec<(String, i64)>)>,
    done: bool,
}

/// Server-Sent Events for an open run page: an `update` (JSON: run state, view HTML, finished flag) whenever
/// the run's state or its tasks' state counts change; the stream ends after the run's final state.
pub async fn events(
    State(ui): State<Ui>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<RunQuery>,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let run = caller.run(&ui.app, &id).await?;
    let live =
        Live { spec: parse_spec(&run).ok(), ui, id: run.id, dag: q.dag.unwrap_or_default(), last: None, done: false };
    let stream = futures::stream::unfold(live, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let store = st.ui.app.store();
            let state = match store.run_state(&st.id).await {
                Ok(s) => s,
                Err(_) => return None,
            };
            let counts = store.task_state_counts(&st.id).await.unwrap_or_default();
            let fp = (state, counts);
            if st.last.as_ref() != Some(&fp) {
                st.last = Some(fp);
                let tasks = store.list_tasks(&st.id).await.unwrap_or_default();
                let view = match &st.spec {
                    Some(spec) => view_html(spec, &st.dag, &tasks, &st.id).unwrap_or_else(|e| esc(&e)),
                    None => String::new(),
                };
                st.done = state.is_terminal();
                let data = serde_json::json!({"state": state.as_str(), "view": view, "done": st.done});
                return Some((Ok(Event::default().event("update").data(data.to_string())), st));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
