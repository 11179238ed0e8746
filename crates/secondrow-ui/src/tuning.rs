//! Hyperparameter tuning pages: the experiments (`secondrow tune`, the tuning API) and one experiment's page —
//! its trials table (parameters, state, objective, run), the objective of each trial in creation order with
//! the best so far, and a parallel-coordinates plot of the parameters against the objective.

use askama::Template;
use axum::extract::{Extension, Path as UrlPath, State};
use axum::response::Response;

use secondrow_api::auth::Caller;
use secondrow_engine::tune::{self, TuneStatus};
use secondrow_store::tuning::{TrialState, TuningExperiment, TuningTrial};
use secondrow_tune::Direction;

use crate::pages::rfc3339;
use crate::viz::{self, esc, format_number, PcAxis, PcLine};
use crate::{html, Chrome, Csrf, Ui, UiError};

#[derive(Template)]
#[template(path = "tuning_list.html")]
struct ListPage {
    c: Chrome,
    rows: Vec<(TuningExperiment, String)>,
}

pub async fn list(State(ui): State<Ui>, caller: Caller, Extension(csrf): Extension<Csrf>) -> Result<Response, UiError> {
    let list = ui.app.store().list_tuning_experiments(caller.list_namespace(None)?).await?;
    let rows = list.into_iter().map(|e| (e.clone(), rfc3339(e.created_at))).collect();
    Ok(html(ListPage { c: Chrome::new("Tuning", &csrf, Some(&caller), "tuning"), rows }.render()))
}

pub struct TrialRow {
    pub seq: i64,
    pub name: String,
    pub state: String,
    pub objective: String,
    pub parameters: String,
    pub run_id: String,
    pub message: String,
    pub best: bool,
}

#[derive(Template)]
#[template(path = "tuning.html")]
struct ExperimentPage {
    c: Chrome,
    e: TuningExperiment,
    status: TuneStatus,
    metric: String,
    trials: Vec<TrialRow>,
    objective_svg: String,
    parallel_svg: String,
}

pub async fn page(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
) -> Result<Response, UiError> {
    caller.check("experiment", &name, &ns)?;
    let store = ui.app.store();
    let e = store.get_tuning_experiment(&ns, &name).await?;
    let trials = store.list_tuning_trials(&e.id).await?;
    let exp = tune::parse_experiment(&e.spec).map_err(|err| UiError::BadRequest(err.to_string()))?;
    let direction = exp.direction();
    let metric = exp.spec.objective.objective_metric_name.clone();
    let status = TuneStatus::of(&trials, direction);
    let rows = trials
        .iter()
        .map(|t| TrialRow {
            seq: t.seq,
            name: t.name.clone(),
            state: t.state.as_str().to_owned(),
            objective: t.objective.map(format_number).unwrap_or_else(|| "-".into()),
            parameters: tune::assignments_text(&t.assignments),
            run_id: t.run_id.clone().unwrap_or_default(),
            message: if t.state == TrialState::Succeeded {
                String::new()
            } else {
                t.message.clone().unwrap_or_default()
            },
            best: Some(&t.name) == e.optimal_trial.as_ref(),
        })
        .collect();
    let page = ExperimentPage {
        c: Chrome::new(format!("Experiment {name}"), &csrf, Some(&caller), "tuning"),
        objective_svg: objective_svg(&trials, direction, &metric),
        parallel_svg: parallel(&trials, &metric),
        e,
        status,
        metric,
        trials: rows,
    };
    Ok(html(page.render()))
}

/// The objective of each finished trial by creation order (dots), and the best so far (a step line).
fn objective_svg(trials: &[TuningTrial], direction: Direction, metric: &str) -> String {
    let points: Vec<(i64, f64)> = trials.iter().filter_map(|t| Some((t.seq, t.objective?))).collect();
    if points.is_empty() {
        return String::new();
    }
    let (w, h, pad) = (640.0, 260.0, 48.0);
    let max_seq = trials.iter().map(|t| t.seq).max().unwrap_or(1).max(2) as f64;
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x = |s: f64| pad + (s - 1.0) / (max_seq - 1.0) * (w - 2.0 * pad);
    let y = |v: f64| h - pad - (v - lo) / span * (h - 2.0 * pad);
    let mut svg = format!(
        r#"<svg class="tuning-objective" viewBox="0 0 {w} {h}" role="img" aria-label="{} by trial"><line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="currentColor"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="currentColor"/><text x="{pad}" y="{t}" font-size="11">{}</text><text x="{pad}" y="{lt}" font-size="11">{}</text><text x="{r}" y="{lt}" font-size="11" text-anchor="end">trial</text>"#,
        esc(metric),
        esc(&format_number(hi)),
        esc(&format_number(lo)),
        b = h - pad,
        r = w - pad,
        t = pad - 8.0,
        lt = h - pad + 16.0,
    );
    let mut best: Option<f64> = None;
    let mut path = String::new();
    for (s, v) in &points {
        let better = best.is_none_or(|b| direction.loss(*v) < direction.loss(b));
        if better {
            best = Some(*v);
        }
        let b = best.unwrap_or(*v);
        path.push_str(&format!("{}{:.1},{:.1} ", if path.is_empty() { "M" } else { "L" }, x(*s as f64), y(b)));
        svg.push_str(&format!(
            r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"><title>trial {s}: {}</title></circle>"#,
            x(*s as f64),
            y(*v),
            viz::colour(0),
            esc(&format_number(*v))
        ));
    }
    svg.push_str(&format!(r#"<path d="{path}" fill="none" stroke="{}" stroke-width="1.5"/></svg>"#, viz::colour(1)));
    svg
}

/// Parameters (numbers as they are, other values by their order of appearance) against the objective.
fn parallel(trials: &[TuningTrial], metric: &str) -> String {
    let done: Vec<&TuningTrial> = trials.iter().filter(|t| t.objective.is_some()).collect();
    let Some(first) = done.first() else { return String::new() };
    let names: Vec<String> = first.assignments.iter().map(|a| a.name.clone()).collect();
    let mut categories: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    let mut lines = Vec::new();
    for (i, t) in done.iter().enumerate() {
        let mut values = Vec::new();
        for (k, n) in names.iter().enumerate() {
            let v = t.assignments.iter().find(|a| &a.name == n).map(|a| a.value.clone()).unwrap_or_default();
            values.push(v.parse::<f64>().unwrap_or_else(|_| {
                let c = &mut categories[k];
                let at = c.iter().position(|x| x == &v).unwrap_or_else(|| {
                    c.push(v.clone());
                    c.len() - 1
                });
                at as f64
            }));
        }
        values.push(t.objective.unwrap_or(f64::NAN));
        lines.push(PcLine { id: t.name.clone(), label: t.name.clone(), colour: viz::colour(i), values });
    }
    let mut axes: Vec<PcAxis> = names.into_iter().map(|name| PcAxis { name, metric: false }).collect();
    axes.push(PcAxis { name: metric.to_owned(), metric: true });
    viz::parallel_svg(&axes, &lines)
}
