//! The runs list.

use askama::Template;
use axum::extract::{Extension, Query, State};
use axum::response::Response;
use serde::Deserialize;

use secondrow_api::auth::Caller;
use secondrow_store::{CmpOp, Cursor, RunColumn, RunFilter, RunListQuery, RunSort, RunState, SqlValue};

use crate::graph::url_part;
use crate::{html, Chrome, Csrf, Ui, UiError};

use super::{duration, rfc3339, UiResult};

const PAGE_SIZE: i64 = 50;

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
