//! A deployment's monitoring page (`/deployments/NAME/monitoring`): per served version, drift per feature
//! over time (PSI and KS for equal time spans of the logged window, as SVG line charts with the drift
//! threshold), the window's latest figures with drift flags, missing and schema-violation rates and
//! performance over time, and the deployment's monitor rules with the runs they started. Everything is
//! read through the API (`/deployments/NAME/monitor?buckets=N`, `/deployments/NAME/monitor/rules`,
//! `/runs/ID`), so its access checks apply: a namespace sees only its own deployments.

use std::collections::HashMap;
use std::fmt::Write as _;

use askama::Template;
use axum::extract::{Extension, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use secondrow_api::auth::Caller;

use crate::forms::call;
use crate::graph::url_part;
use crate::viz::{colour, esc, format_number};
use crate::{error_page, html, Chrome, Csrf, Ui};

/// Time spans the window is split into when the page is not asked for another number.
pub const DEFAULT_BUCKETS: usize = 10;
/// PSI above this is drift (the line drawn on the charts).
pub const DEFAULT_PSI_THRESHOLD: f64 = 0.2;

/// One feature's window figures.
pub struct FeatureRow {
    pub feature: String,
    pub kind: String,
    pub psi: String,
    /// KS for numbers, chi-square for categories.
    pub statistic: String,
    pub p_value: String,
    pub missing: String,
    /// PSI of the newest time span with rows.
    pub latest_psi: String,
    pub drift: bool,
}

/// One time span's figures.
pub struct BucketRow {
    pub index: usize,
    pub start: String,
    pub end: String,
    pub rows: u64,
    pub schema_violation_rate: String,
    pub missing_rate: String,
    pub metric: String,
    pub labelled: u64,
}

pub struct Chart {
    pub title: String,
    pub feature: String,
    pub svg: String,
}

pub struct VersionView {
    pub version: String,
    pub rows: u64,
    pub first: String,
    pub last: String,
    pub reference: String,
    pub schema_violation_rate: String,
    pub performance: String,
    pub features: Vec<FeatureRow>,
    pub drift_charts: Vec<Chart>,
    pub quality_svg: String,
    pub performance_svg: String,
    pub buckets: Vec<BucketRow>,
}

pub struct RuleRow {
    pub id: String,
    pub condition: String,
    pub cooldown: String,
    pub last_fired: String,
    pub pipeline_version: String,
}

pub struct RunRow {
    pub run_id: String,
    pub rule_id: String,
    pub version: String,
    pub fired_at: String,
    pub state: String,
}

#[derive(Template)]
#[template(path = "monitoring.html")]
struct MonitoringPage {
    c: Chrome,
    name: String,
    window: u64,
    buckets: usize,
    log_sample: String,
    threshold: String,
    versions: Vec<VersionView>,
    rules: Vec<RuleRow>,
    runs: Vec<RunRow>,
}

fn number(v: &Value) -> String {
    v.as_f64().map(format_number).unwrap_or_else(|| "—".into())
}

fn time(v: &Value) -> String {
    v.as_i64().map(|t| secondrow_api::ts(Some(t))).unwrap_or_default()
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// `GET /deployments/NAME/monitoring[?buckets=N&window=W&psi_threshold=T]`.
pub async fn page(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| q.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let buckets = match field("buckets").map(str::parse::<usize>) {
        None => DEFAULT_BUCKETS,
        Some(Ok(b)) => b,
        Some(Err(_)) => return error_page(StatusCode::BAD_REQUEST, "buckets: expected a whole number", None),
    };
    let threshold = match field("psi_threshold").map(str::parse::<f64>) {
        None => DEFAULT_PSI_THRESHOLD,
        Some(Ok(t)) if t.is_finite() && t >= 0.0 => t,
        Some(_) => return error_page(StatusCode::BAD_REQUEST, "psi_threshold: expected a number ≥ 0", None),
    };
    let mut uri = format!("/apis/v2beta1/deployments/{}/monitor?buckets={buckets}", url_part(&name, false));
    if let Some(w) = field("window") {
        let _ = write!(uri, "&window={}", url_part(w, false));
    }
    // The API checks the caller may see the deployment (and the parameters) first.
    let doc = match call(&ui, Method::GET, &uri, &headers, None).await {
        Ok(d) => d,
        Err(f) => return f.page(),
    };
    let rules_uri = format!("/apis/v2beta1/deployments/{}/monitor/rules", url_part(&name, false));
    let rules_doc = match call(&ui, Method::GET, &rules_uri, &headers, None).await {
        Ok(d) => d,
        Err(f) => return f.page(),
    };
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let rules = list(&rules_doc["rules"])
        .iter()
        .map(|r| RuleRow {
            id: s(&r["id"]),
            condition: s(&r["condition"]),
            cooldown: format!("{} s", r["cooldown_seconds"].as_i64().unwrap_or(0)),
            last_fired: r["last_fired_at"].as_str().unwrap_or("never").to_owned(),
            pipeline_version: s(&r["pipeline_version_id"]),
        })
        .collect();
    let mut runs = Vec::new();
    for r in list(&rules_doc["runs"]) {
        let run_id = s(&r["run_id"]);
        let run_uri = format!("/apis/v2beta1/runs/{}", url_part(&run_id, false));
        let state = match call(&ui, Method::GET, &run_uri, &headers, None).await {
            Ok(run) => run["state"].as_str().unwrap_or("").to_owned(),
            Err(f) if f.status == StatusCode::NOT_FOUND => "deleted".to_owned(),
            Err(f) => return f.page(),
        };
        runs.push(RunRow {
            run_id,
            rule_id: s(&r["rule_id"]),
            version: s(&r["version"]),
            fired_at: time(&r["fired_at"]),
            state,
        });
    }
    let versions = list(&doc["versions"]).iter().map(|v| version_view(v, threshold)).collect();
    let page = MonitoringPage {
        c: Chrome::new(format!("Monitoring {name}"), &csrf, Some(&caller), "deployments"),
        window: doc["window"].as_u64().unwrap_or(0),
        buckets,
        log_sample: doc["log_sample"].as_f64().map(format_number).unwrap_or_else(|| "off".into()),
        threshold: format_number(threshold),
        versions,
        rules,
        runs,
        name,
    };
    html(page.render())
}

fn version_view(v: &Value, threshold: f64) -> VersionView {
    let timeline = list(&v["timeline"]);
    let latest = timeline.iter().rev().find(|b| b["rows"].as_u64().unwrap_or(0) > 0);
    let features: Vec<FeatureRow> = list(&v["features"])
        .iter()
        .map(|f| {
            let feature = f["feature"].as_str().unwrap_or("").to_owned();
            let latest_psi = latest
                .and_then(|b| list(&b["features"]).iter().find(|x| x["feature"] == f["feature"]))
                .map(|x| number(&x["psi"]))
                .unwrap_or_else(|| "—".into());
            let statistic = if f["ks"].is_null() { &f["chi_square"] } else { &f["ks"] };
            let p_value = if f["ks_p_value"].is_null() { &f["chi_square_p_value"] } else { &f["ks_p_value"] };
            FeatureRow {
                kind: f["kind"].as_str().unwrap_or("").to_owned(),
                psi: number(&f["psi"]),
                statistic: number(statistic),
                p_value: number(p_value),
                missing: number(&f["missing_rate"]),
                latest_psi,
                drift: f["psi"].as_f64().is_some_and(|p| p > threshold),
                feature,
            }
        })
        .collect();
    let labels: Vec<String> = (1..=timeline.len()).map(|k| k.to_string()).collect();
    let drift_charts = features
        .iter()
        .map(|f| {
            let of = |key: &str| -> Vec<Option<f64>> {
                timeline
                    .iter()
                    .map(|b| list(&b["features"]).iter().find(|x| x["feature"] == f.feature.as_str())?[key].as_f64())
                    .collect()
            };
            let second = if f.kind == "number" { ("ks", "KS") } else { ("chi_square_p_value", "chi² p-value") };
            let series = [
                Series { key: "psi", label: "PSI", values: of("psi") },
                Series { key: second.0, label: second.1, values: of(second.0) },
            ];
            Chart {
                title: format!("{} drift", f.feature),
                feature: f.feature.clone(),
                svg: line_chart(&format!("{} drift over time", f.feature), &labels, &series, Some(threshold)),
            }
        })
        .collect();
    let quality = [
        Series {
            key: "schema_violation_rate",
            label: "schema violations",
            values: timeline.iter().map(|b| b["schema_violation_rate"].as_f64()).collect(),
        },
        Series {
            key: "missing_rate",
            label: "missing values",
            values: timeline.iter().map(|b| b["missing_rate"].as_f64()).collect(),
        },
    ];
    let metric = timeline.iter().find_map(|b| b["performance"]["metric"].as_str()).unwrap_or("accuracy").to_owned();
    let performance = [Series {
        key: "performance",
        label: if metric == "rmse" { "RMSE" } else { "accuracy" },
        values: timeline.iter().map(|b| b["performance"]["value"].as_f64()).collect(),
    }];
    let has = |s: &[Series]| s.iter().any(|s| s.values.iter().any(Option::is_some));
    VersionView {
        version: v["version"].as_str().unwrap_or("").to_owned(),
        rows: v["rows"].as_u64().unwrap_or(0),
        first: time(&v["first_time_ms"]),
        last: time(&v["last_time_ms"]),
        reference: v["reference"].as_str().unwrap_or("").to_owned(),
        schema_violation_rate: number(&v["schema_violation_rate"]),
        performance: match v["performance"]["metric"].as_str() {
            Some(m) => format!(
                "{m} {} over {} labelled rows",
                number(&v["performance"]["value"]),
                v["performance"]["labelled"].as_u64().unwrap_or(0)
            ),
            None => String::new(),
        },
        quality_svg: if has(&quality) {
            line_chart("missing and schema-violation rates over time", &labels, &quality, None)
        } else {
            String::new()
        },
        performance_svg: if has(&performance) {
            line_chart(&format!("{metric} over time"), &labels, &performance, None)
        } else {
            String::new()
        },
        buckets: timeline
            .iter()
            .enumerate()
            .map(|(index, b)| BucketRow {
                index: index + 1,
                start: time(&b["start_ms"]),
                end: time(&b["end_ms"]),
                rows: b["rows"].as_u64().unwrap_or(0),
                schema_violation_rate: number(&b["schema_violation_rate"]),
                missing_rate: number(&b["missing_rate"]),
                metric: number(&b["performance"]["value"]),
                labelled: b["performance"]["labelled"].as_u64().unwrap_or(0),
            })
            .collect(),
        features,
        drift_charts,
    }
}

/// One line of a chart: a value per time span (`None`: no value in that span).
pub struct Series<'a> {
    /// Names the series in the markup (`data-series`).
    pub key: &'a str,
    pub label: &'a str,
    pub values: Vec<Option<f64>>,
}

/// A line chart of `series` over the time spans `labels`, from 0 to the largest value (at least 1 and
/// above `threshold`), with `threshold` as a dashed line. Every point is a circle carrying its span and
/// exact value (`data-bucket`, `data-value`) and a tooltip; every text is escaped.
pub fn line_chart(title: &str, labels: &[String], series: &[Series], threshold: Option<f64>) -> String {
    const W: f64 = 360.0;
    const H: f64 = 160.0;
    const LEFT: f64 = 44.0;
    /// Room above the plot for the legend.
    const TOP: f64 = 24.0;
    const BOTTOM: f64 = 34.0;
    let n = labels.len().max(1);
    let top_value = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .chain(threshold.map(|t| t * 1.25))
        .filter(|x| x.is_finite())
        .fold(1.0f64, f64::max);
    let x = |k: usize| if n == 1 { LEFT + W / 2.0 } else { LEFT + W * k as f64 / (n - 1) as f64 };
    let y = |v: f64| TOP + H - (v.clamp(0.0, top_value) / top_value) * H;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="monitor-chart" role="img" aria-label="{t}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = esc(title),
        w = LEFT + W + 16.0,
        h = TOP + H + BOTTOM
    );
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{b}" x2="{r}" y2="{b}" stroke="#8888"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b}" stroke="#8888"/>"##,
        b = TOP + H,
        r = LEFT + W
    );
    for k in 0..=2 {
        let v = top_value * k as f64 / 2.0;
        let _ = write!(
            s,
            r#"<text x="{}" y="{:.1}" class="axis" text-anchor="end">{}</text>"#,
            LEFT - 4.0,
            y(v) + 4.0,
            esc(&format_number((v * 1000.0).round() / 1000.0))
        );
    }
    for (k, label) in labels.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" class="axis" text-anchor="middle">{}</text>"#,
            x(k),
            TOP + H + 14.0,
            esc(label)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" class="axis" text-anchor="middle">time span (oldest first)</text>"#,
        LEFT + W / 2.0,
        TOP + H + 30.0
    );
    if let Some(t) = threshold {
        let _ = write!(
            s,
            r##"<line class="threshold" data-value="{t}" x1="{LEFT}" y1="{yt:.1}" x2="{r}" y2="{yt:.1}" stroke="#b91c1c" stroke-dasharray="5 4"><title>drift threshold {t}</title></line>"##,
            yt = y(t),
            r = LEFT + W
        );
    }
    for (i, line) in series.iter().enumerate() {
        let c = colour(i);
        let mut d = String::new();
        let mut pen_down = false;
        for (k, v) in line.values.iter().enumerate() {
            match v {
                Some(v) if v.is_finite() => {
                    let _ = write!(d, "{}{:.1},{:.1}", if pen_down { " L" } else { " M" }, x(k), y(*v));
                    pen_down = true;
                }
                _ => pen_down = false,
            }
        }
        let _ = write!(
            s,
            r#"<path class="series" data-series="{key}" d="{d}" fill="none" stroke="{c}" stroke-width="2"/>"#,
            key = esc(line.key),
            d = d.trim()
        );
        for (k, v) in line.values.iter().enumerate() {
            let Some(v) = v.filter(|v| v.is_finite()) else { continue };
            let _ = write!(
                s,
                r#"<circle class="point" data-series="{key}" data-bucket="{k}" data-value="{v}" cx="{:.1}" cy="{:.1}" r="3" fill="{c}"><title>{label} {}: {}</title></circle>"#,
                x(k),
                y(v),
                esc(labels.get(k).map(String::as_str).unwrap_or("")),
                esc(&format_number(v)),
                key = esc(line.key),
                label = esc(line.label),
            );
        }
        // The legend: one entry per series in a row above the plot, right-aligned, the last one rightmost.
        let _ = write!(
            s,
            r#"<text x="{}" y="12" class="legend" fill="{c}" text-anchor="end">{}</text>"#,
            LEFT + W - 130.0 * (series.len() - 1 - i) as f64,
            esc(line.label)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_point_per_value_the_threshold_and_escaped_text() {
        let labels: Vec<String> = ["1", "2", "3"].iter().map(|s| (*s).to_owned()).collect();
        let series = [Series { key: "psi", label: "<psi>", values: vec![Some(0.1), None, Some(2.5)] }];
        let svg = line_chart("x & <y>", &labels, &series, Some(0.2));
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(svg.contains(r#"data-bucket="2" data-value="2.5""#), "{svg}");
        assert!(svg.contains(r#"class="threshold" data-value="0.2""#), "{svg}");
        assert!(svg.contains("x &amp; &lt;y&gt;") && svg.contains("&lt;psi&gt;") && !svg.contains("<psi>"), "{svg}");
        // A missing value breaks the line: two moves, no line segment through span 2.
        assert_eq!(svg.matches(" M").count() + svg.matches("\"M").count(), 2, "{svg}");
    }
}
