//! One run: the graph, parameters and artifacts, the task panel and its logs fragment (followed live over SSE
//! by `live.rs` while the task runs).

use askama::Template;
use axum::extract::{Extension, Path as UrlPath, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use secondrow_api::auth::Caller;
use secondrow_spec::PipelineSpec;
use secondrow_store::{ArtifactRecord, EventRecord, RunRecord, RunState, TaskKind, TaskRecord};

use crate::graph::{self, url_part, Target};
use crate::viz::esc;
use crate::{html, Chrome, Csrf, Ui, UiError};

use super::artifacts::artifact_panel;
use super::{duration, json_text, rfc3339, UiResult};

/// The most of a log or text artifact shown inline (the tail for logs).
pub(super) const MAX_INLINE: usize = 512 * 1024;

#[derive(Deserialize, Default)]
pub struct RunQuery {
    pub(super) dag: Option<String>,
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
    /// While the run runs: its start and the server's clock (epoch ms), for the browser to count on from.
    started_ms: Option<i64>,
    now_ms: i64,
    experiment: String,
    params: Vec<(String, String)>,
    crumbs: Vec<Crumb>,
    view: String,
    events: String,
    live: bool,
    artifacts: Vec<ArtifactRow>,
    /// The data commits the run's importers read.
    data_reads: Vec<crate::data::DataRead>,
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

pub(super) fn parse_spec(run: &RunRecord) -> Result<PipelineSpec, String> {
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
        started_ms: run.started_at.filter(|_| !run.state.is_terminal()),
        now_ms: secondrow_store::now_ms(),
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
        data_reads: crate::data::data_reads(&run.id, &run.namespace, &artifacts, &tasks),
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
    /// While the task runs: the SSE stream that continues each stream's text from where it ends here.
    events: String,
    streams: Vec<LiveStream>,
}

struct LiveStream {
    name: &'static str,
    text: String,
    clipped: bool,
}

fn logs_fragment(ui: &Ui, run: &RunRecord, tasks: &[TaskRecord], t: &TaskRecord) -> UiResult<String> {
    let root = ui.app.engine.config().logs_root.clone();
    let url = format!("/runs/{}/logs?task={}", url_part(&run.id, false), url_part(&t.path, false));
    let f = if t.state.is_terminal() {
        // Only the end of each file is read: a 200 MB log costs the page MAX_INLINE bytes, not 200 MB.
        let (mut text, mut clipped) =
            secondrow_api::logs::render_tail(&root, &run.id, tasks, Some(&t.path), MAX_INLINE as u64)?;
        if text.len() > MAX_INLINE {
            clipped = true;
            let mut cut = text.len() - MAX_INLINE;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            text = text[cut..].to_owned();
        }
        LogsFragment { url, live: false, text, clipped, events: String::new(), streams: Vec::new() }
    } else {
        // Each stream's tail now, and its length: the live stream sends what is written after it.
        let mut streams = Vec::new();
        let mut events = format!("/runs/{}/logs/events?task={}", url_part(&run.id, false), url_part(&t.path, false));
        for name in ["stdout", "stderr"] {
            let chunk = match secondrow_api::logs::stream_path(&root, &run.id, &t.path, name)? {
                Some(path) => super::live::read_log(&path, 0, true).unwrap_or_default(),
                None => super::live::LogChunk::default(),
            };
            events.push_str(&format!("&{name}={}", chunk.end));
            streams.push(LiveStream { name, text: chunk.text, clipped: chunk.reset && chunk.start > 0 });
        }
        LogsFragment { url, live: true, text: String::new(), clipped: false, events, streams }
    };
    f.render().map_err(|e| UiError::Api(secondrow_api::ApiError::Internal(e.to_string())))
}

#[derive(Deserialize)]
pub struct LogsQuery {
    task: String,
}

/// The logs fragment of one task (fetched again when its live stream ends).
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
