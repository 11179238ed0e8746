//! Comparing 2–10 runs: parameters side by side (differences marked), every scalar metric of every
//! `system.Metrics` artifact, and the ROC curves of their `system.ClassificationMetrics` overlaid.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::extract::{Extension, RawQuery, State};
use axum::response::Response;

use secondrow_api::auth::Caller;

use crate::viz;
use crate::{html, Chrome, Csrf, Ui, UiError};

/// The run ids of `runs=a&runs=b` (the runs list's checkboxes) or `runs=a,b` (a link), in any mix.
fn run_ids(query: Option<&str>) -> Vec<String> {
    let mut ids = BTreeSet::new();
    for pair in query.unwrap_or("").split('&') {
        if let Some(v) = pair.strip_prefix("runs=") {
            for id in percent_decode(v).split(',').map(str::trim).filter(|s| !s.is_empty()) {
                ids.insert(id.to_owned());
            }
        }
    }
    ids.into_iter().collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct Row {
    pub name: String,
    pub values: Vec<String>,
    pub differs: bool,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    c: Chrome,
    runs: Vec<(String, String, &'static str)>,
    params: Vec<Row>,
    metrics: Vec<Row>,
    roc: String,
}

fn rows(names: BTreeSet<String>, columns: &[BTreeMap<String, String>]) -> Vec<Row> {
    names
        .into_iter()
        .map(|name| {
            let values: Vec<String> = columns.iter().map(|c| c.get(&name).cloned().unwrap_or_default()).collect();
            let differs = values.iter().any(|v| v != &values[0]);
            Row { name, values, differs }
        })
        .collect()
}

pub async fn compare(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    RawQuery(query): RawQuery,
) -> Result<Response, UiError> {
    let ids = run_ids(query.as_deref());
    if !(2..=10).contains(&ids.len()) {
        return Err(UiError::BadRequest(format!(
            "compare 2 to 10 runs (got {}): tick them on the runs page and press Compare",
            ids.len()
        )));
    }
    let store = ui.app.store();
    let mut runs = Vec::new();
    let mut param_cols = Vec::new();
    let mut metric_cols = Vec::new();
    let mut roc = Vec::new();
    let (mut param_names, mut metric_names) = (BTreeSet::new(), BTreeSet::new());
    for id in &ids {
        let run = caller.run(&ui.app, id).await?;
        let params: BTreeMap<String, String> = run
            .parameters
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        param_names.extend(params.keys().cloned());
        param_cols.push(params);
        let tasks = store.list_tasks(&run.id).await?;
        let task_path = |tid: &Option<String>| {
            tid.as_ref().and_then(|t| tasks.iter().find(|x| &x.id == t)).map(|t| t.path.clone()).unwrap_or_default()
        };
        let mut metrics = BTreeMap::new();
        for a in store.list_artifacts(&run.id).await? {
            match a.schema_title.as_str() {
                "system.Metrics" => {
                    for (k, v) in viz::scalar_metrics(&a.metadata) {
                        metrics.insert(format!("{} / {k}", task_path(&a.task_id)), v);
                    }
                }
                "system.ClassificationMetrics" => {
                    let pts = viz::roc_points(&a.metadata);
                    if !pts.is_empty() {
                        roc.push((format!("{} · {}", task_path(&a.task_id), run.display_name), pts));
                    }
                }
                _ => {}
            }
        }
        metric_names.extend(metrics.keys().cloned());
        metric_cols.push(metrics);
        runs.push((run.id.clone(), run.display_name.clone(), run.state.as_str()));
    }
    let page = ComparePage {
        c: Chrome::new("Compare runs", &csrf, Some(&caller), "runs"),
        runs,
        params: rows(param_names, &param_cols),
        metrics: rows(metric_names, &metric_cols),
        roc: if roc.is_empty() { String::new() } else { viz::roc_svg(&roc) },
    };
    Ok(html(page.render()))
}
