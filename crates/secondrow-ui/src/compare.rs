//! Comparing 2–10 runs: parameters side by side (differences marked), every scalar metric of every
//! `system.Metrics` artifact, a parallel-coordinates plot of the differing numeric parameters against a chosen
//! metric, the ROC curves of their `system.ClassificationMetrics` overlaid and their confusion matrices side by
//! side. Each run keeps one colour (its place in the comparison) in every chart.

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

/// The metric chosen for the parallel-coordinates plot (`metric=…`), if any.
fn chosen_metric(query: Option<&str>) -> Option<String> {
    query.unwrap_or("").split('&').find_map(|p| p.strip_prefix("metric=")).map(percent_decode).filter(|m| !m.is_empty())
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
    /// Id, name, state and colour of each run.
    runs: Vec<(String, String, &'static str, &'static str)>,
    params: Vec<Row>,
    metrics: Vec<Row>,
    roc: String,
    /// The parallel-coordinates plot (empty when no numeric parameter differs and no metric is numeric).
    parallel: String,
    /// The metrics the plot may use (numeric in every run), and the one it uses.
    metric_choices: Vec<String>,
    metric: String,
    /// Per run and classification artifact: (run colour, caption, confusion matrix SVG).
    confusions: Vec<(&'static str, String, String)>,
}

/// The number a compared value holds, if it is one.
fn number(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// The axes of the parallel-coordinates plot: every parameter that is a number in at least two runs (in every
/// run that has it) and differs, then the chosen metric (or the first metric that is a number in at least two
/// runs). A run without a value on an axis skips it.
fn parallel(
    ids: &[String],
    names: &[String],
    params: &[Row],
    metrics: &[Row],
    metric: Option<&str>,
) -> (String, Vec<String>, String) {
    // A row can be an axis when at least two runs have a value and every value there is a number.
    let numeric = |r: &&Row| {
        let present: Vec<&String> = r.values.iter().filter(|v| !v.is_empty()).collect();
        present.len() >= 2 && present.iter().all(|v| number(v).is_some())
    };
    let varies = |r: &&Row| {
        let mut present = r.values.iter().filter(|v| !v.is_empty()).filter_map(|v| number(v));
        present.next().is_some_and(|first| present.any(|v| v != first))
    };
    let choices: Vec<String> = metrics.iter().filter(numeric).map(|r| r.name.clone()).collect();
    let chosen: Option<String> =
        metric.filter(|m| choices.iter().any(|c| c == m)).or(choices.first().map(String::as_str)).map(str::to_owned);
    let mut axes: Vec<(&Row, bool)> = params.iter().filter(numeric).filter(varies).map(|r| (r, false)).collect();
    if let Some(m) = chosen.as_deref().and_then(|m| metrics.iter().find(|r| r.name == m)) {
        axes.push((m, true));
    }
    if axes.is_empty() {
        return (String::new(), choices, String::new());
    }
    let lines = (0..ids.len())
        .map(|i| viz::PcLine {
            id: ids[i].clone(),
            label: names[i].clone(),
            colour: viz::colour(i),
            values: axes.iter().map(|(r, _)| number(&r.values[i]).unwrap_or(f64::NAN)).collect(),
        })
        .collect::<Vec<_>>();
    let axes: Vec<viz::PcAxis> = axes.iter().map(|(r, m)| viz::PcAxis { name: r.name.clone(), metric: *m }).collect();
    (viz::parallel_svg(&axes, &lines), choices, chosen.unwrap_or_default())
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

/// What the compare page says when fewer than two runs are chosen.
#[derive(Template)]
#[template(path = "compare_pick.html")]
struct ComparePick {
    c: Chrome,
    message: String,
}

/// `GET /compare?runs=…`: the comparison of 2–10 runs; fewer is a page saying how to choose them.
pub async fn compare(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    RawQuery(query): RawQuery,
) -> Result<Response, UiError> {
    let ids = run_ids(query.as_deref());
    if ids.len() < 2 {
        // Not an error: the page says how to pick runs, with the way back.
        let message = match ids.len() {
            0 => "No runs chosen: tick two to ten runs on the runs list and press Compare.".to_owned(),
            _ => "Only one run chosen: a comparison needs at least two. Tick two to ten runs on the runs list and press Compare.".to_owned(),
        };
        let page = ComparePick { c: Chrome::new("Compare runs", &csrf, Some(&caller), "runs"), message };
        return Ok(html(page.render()));
    }
    if ids.len() > 10 {
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
    let mut confusions = Vec::new();
    let (mut param_names, mut metric_names) = (BTreeSet::new(), BTreeSet::new());
    for (i, id) in ids.iter().enumerate() {
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
                    let label = format!("{} · {}", task_path(&a.task_id), run.display_name);
                    let pts = viz::roc_points(&a.metadata);
                    if !pts.is_empty() {
                        // A run's second and later curves share its colour, dashed.
                        let dashed = roc.iter().any(|r: &viz::RocSeries| r.colour == viz::colour(i));
                        roc.push(viz::RocSeries { label: label.clone(), colour: viz::colour(i), points: pts, dashed });
                    }
                    if let Some(c) = viz::confusion(&a.metadata) {
                        confusions.push((viz::colour(i), label, viz::confusion_svg(&c)));
                    }
                }
                _ => {}
            }
        }
        metric_names.extend(metrics.keys().cloned());
        metric_cols.push(metrics);
        runs.push((run.id.clone(), run.display_name.clone(), run.state.as_str(), viz::colour(i)));
    }
    let params = rows(param_names, &param_cols);
    let metrics = rows(metric_names, &metric_cols);
    let names: Vec<String> = runs.iter().map(|r| r.1.clone()).collect();
    let (parallel, metric_choices, metric) =
        parallel(&ids, &names, &params, &metrics, chosen_metric(query.as_deref()).as_deref());
    let page = ComparePage {
        c: Chrome::new("Compare runs", &csrf, Some(&caller), "runs"),
        runs,
        params,
        metrics,
        roc: if roc.is_empty() { String::new() } else { viz::roc_svg_coloured(&roc) },
        parallel,
        metric_choices,
        metric,
        confusions,
    };
    Ok(html(page.render()))
}
