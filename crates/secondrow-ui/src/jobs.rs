//! The training jobs pages: every job the caller may see (kind, state, replicas), and one job with its
//! replicas (state, process, restarts, exit code), its conditions as the operator writes them, and the tail
//! of each replica's log. Jobs are read from the store with the API's namespace checks.

use askama::Template;
use axum::extract::{Extension, Path as UrlPath, State};
use axum::response::Response;

use secondrow_api::auth::Caller;

use crate::pages::rfc3339;
use crate::{html, Chrome, Csrf, Ui, UiError};

/// The most of each replica's log a job page shows (its end).
const LOG_TAIL: usize = 32 * 1024;

pub struct JobRow {
    pub name: String,
    pub namespace: String,
    /// The namespace in URLs (`default` for the default namespace).
    pub ns_url: String,
    pub kind: String,
    pub state: String,
    pub replicas: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    c: Chrome,
    rows: Vec<JobRow>,
}

fn ns_url(ns: &str) -> String {
    if ns.is_empty() {
        "default".into()
    } else {
        ns.into()
    }
}

pub async fn jobs(State(ui): State<Ui>, caller: Caller, Extension(csrf): Extension<Csrf>) -> Result<Response, UiError> {
    let list = ui.app.store().list_training_jobs(caller.list_namespace(None)?).await?;
    let rows = list
        .into_iter()
        .map(|j| {
            let running = j.replicas.iter().filter(|r| r.state == secondrow_store::ReplicaState::Running).count();
            JobRow {
                ns_url: ns_url(&j.namespace),
                replicas: format!("{running}/{} running", j.replicas.len()),
                name: j.name,
                namespace: j.namespace,
                kind: j.kind,
                state: j.state.as_str().to_owned(),
                created: rfc3339(j.created_at),
            }
        })
        .collect();
    Ok(html(JobsPage { c: Chrome::new("Training jobs", &csrf, Some(&caller), "jobs"), rows }.render()))
}

pub struct ReplicaRow {
    pub name: String,
    pub state: String,
    pub pid: String,
    pub port: String,
    pub restarts: i64,
    pub exit_code: String,
    pub log: String,
}

pub struct ConditionRow {
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub time: String,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    c: Chrome,
    name: String,
    kind: String,
    state: String,
    namespace: String,
    replicas: Vec<ReplicaRow>,
    conditions: Vec<ConditionRow>,
}

fn tail(path: &str) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(LOG_TAIL);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

pub async fn job(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
) -> Result<Response, UiError> {
    let ns = if ns == "default" { String::new() } else { ns };
    caller.check("training job", &name, &ns)?;
    let j = ui.app.store().get_training_job(&ns, &name).await?;
    let text = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_owned();
    let conditions = j
        .status
        .get("conditions")
        .and_then(|c| c.as_array())
        .map(|list| {
            list.iter()
                .map(|c| ConditionRow {
                    kind: text(c, "type"),
                    status: text(c, "status"),
                    reason: text(c, "reason"),
                    message: text(c, "message"),
                    time: text(c, "lastTransitionTime"),
                })
                .collect()
        })
        .unwrap_or_default();
    let replicas = j
        .replicas
        .iter()
        .map(|r| ReplicaRow {
            name: format!("{}-{}", r.replica_type.to_ascii_lowercase(), r.index),
            state: r.state.as_str().to_owned(),
            pid: r.pid.map(|p| p.to_string()).unwrap_or_default(),
            port: r.port.map(|p| p.to_string()).unwrap_or_default(),
            restarts: r.restarts,
            exit_code: r.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            log: tail(&r.log_path),
        })
        .collect();
    let page = JobPage {
        c: Chrome::new(format!("Job {}", j.name), &csrf, Some(&caller), "jobs"),
        name: j.name,
        kind: j.kind,
        state: j.state.as_str().to_owned(),
        namespace: ns_url(&j.namespace),
        replicas,
        conditions,
    };
    Ok(html(page.render()))
}
