//! The deployments page: each deployment's versions, default and canary traffic and what is served, with
//! its live request rate and latency, and forms that change the default version and the canary share.
//! Deployments are read and changed through the API's `/deployments` resource (so its access checks
//! apply); the numbers come from the model server's counters, sampled here: a rate is the change between
//! this look and one [`WINDOW`] earlier, and the page refreshes its figures every two seconds.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Extension, Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::Form;
use serde_json::{json, Value};

use secondrow_api::auth::Caller;

use crate::forms::{call, done, text, FormMap};
use crate::graph::url_part;
use crate::{csrf_refusal, error_page, html, Chrome, Csrf, Ui};

/// How far back a rate looks.
pub const WINDOW: Duration = Duration::from_secs(30);
/// Samples of a version not looked at for this long are dropped.
const FORGET: Duration = Duration::from_secs(300);
/// The shortest interval a rate is computed over.
const MIN_SPAN: Duration = Duration::from_millis(500);

/// One version's counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub requests: u64,
    pub errors: u64,
    pub latency_count: u64,
    pub latency_sum: f64,
    /// Latency bucket bounds (seconds) with their cumulative counts.
    pub buckets: Vec<(f64, u64)>,
}

/// What a version served over the last window.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub error_ratio: f64,
    /// Mean latency, ms (`None` without requests in the window).
    pub mean_ms: Option<f64>,
    /// The 95th percentile's bucket bound, ms.
    pub p95_ms: Option<f64>,
}

/// Samples of one version, oldest first.
type History = VecDeque<(Instant, Sample)>;

/// Samples of each (deployment, version) over the last [`WINDOW`].
#[derive(Default)]
pub struct Rates {
    samples: Mutex<HashMap<(String, String), History>>,
}

impl Rates {
    /// Records `sample` of `model`/`version` at `now`; the rate since the oldest sample in the window
    /// (`None` until two samples are [`MIN_SPAN`] apart).
    pub fn observe(&self, model: &str, version: &str, now: Instant, sample: Sample) -> Option<Rate> {
        let mut all = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        // Versions nobody looked at for a while (or that are gone) are forgotten.
        all.retain(|_, q| q.back().is_some_and(|(t, _)| now.saturating_duration_since(*t) < FORGET));
        let q = all.entry((model.to_owned(), version.to_owned())).or_default();
        // Keep one sample older than the window as the baseline, drop the rest of the old ones.
        while q.len() > 1 && q.get(1).is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        let rate = q.front().and_then(|(t, base)| rate(now.duration_since(*t), base, &sample));
        // Keep at most one sample per MIN_SPAN so frequent looks do not grow the queue.
        if q.back().is_none_or(|(t, _)| now.duration_since(*t) >= MIN_SPAN) {
            q.push_back((now, sample));
        }
        rate
    }
}

/// The rate between two samples `span` apart; `None` when the span is too short or counters went back
/// (a restarted version).
pub fn rate(span: Duration, base: &Sample, now: &Sample) -> Option<Rate> {
    if span < MIN_SPAN || now.requests < base.requests || now.latency_count < base.latency_count {
        return None;
    }
    let requests = now.requests - base.requests;
    let count = now.latency_count - base.latency_count;
    let mean_ms = (count > 0).then(|| (now.latency_sum - base.latency_sum).max(0.0) / count as f64 * 1000.0);
    let p95_ms = (count > 0)
        .then(|| {
            let target = (count as f64 * 0.95).ceil() as u64;
            now.buckets
                .iter()
                .zip(base.buckets.iter())
                .find(|((_, n), (_, b))| n.saturating_sub(*b) >= target)
                .map(|((bound, _), _)| bound * 1000.0)
        })
        .flatten();
    Some(Rate {
        per_second: requests as f64 / span.as_secs_f64(),
        error_ratio: if requests == 0 {
            0.0
        } else {
            (now.errors - base.errors.min(now.errors)) as f64 / requests as f64
        },
        mean_ms,
        p95_ms,
    })
}

pub struct VersionRow {
    pub version: String,
    pub source: String,
    pub loaded: bool,
    pub error: String,
    pub is_default: bool,
    pub is_canary: bool,
    pub requests: u64,
    pub rate: String,
    pub latency: String,
}

pub struct DeploymentRow {
    pub name: String,
    pub namespace: String,
    pub state: String,
    pub url: String,
    pub default_version: String,
    pub canary_version: String,
    pub canary_percent: u32,
    pub versions: Vec<VersionRow>,
}

#[derive(Template)]
#[template(path = "deployments.html")]
struct DeploymentsPage {
    c: Chrome,
    rows: Vec<DeploymentRow>,
    csrf: String,
    /// Whether the caller sees every namespace (the admin): each deployment then names its namespace.
    all_namespaces: bool,
}

#[derive(Template)]
#[template(path = "deployment_rows.html")]
struct RowsFragment {
    d: DeploymentRow,
}

fn version_row(ui: &Ui, name: &str, d: &Value, v: &Value, now: Instant) -> VersionRow {
    let s = |x: &Value, k: &str| x.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let version = s(v, "version");
    let counters = ui
        .app
        .deployments
        .repository()
        .metrics()
        .series()
        .into_iter()
        .find(|(m, ver, _)| m == name && *ver == version)
        .map(|(_, _, c)| Sample {
            requests: c.requests(),
            errors: c.errors(),
            latency_count: c.latency().count(),
            latency_sum: c.latency().sum_seconds(),
            buckets: c.latency().cumulative(),
        });
    let (requests, rate, latency) = match counters {
        Some(sample) => {
            let total = sample.requests;
            let r = ui.rates.observe(name, &version, now, sample);
            let rate = r.as_ref().map(|r| format!("{:.2}/s", r.per_second)).unwrap_or_else(|| "measuring…".into());
            let latency = match r.as_ref().and_then(|r| r.mean_ms.map(|m| (m, r.p95_ms))) {
                Some((mean, Some(p95))) => format!("{mean:.2} ms mean, p95 ≤ {p95} ms"),
                Some((mean, None)) => format!("{mean:.2} ms mean"),
                None => "—".into(),
            };
            (total, rate, latency)
        }
        None => (0, "0.00/s".into(), "—".into()),
    };
    let canary = d.get("canary").filter(|c| !c.is_null());
    VersionRow {
        is_default: s(d, "default_version") == version,
        is_canary: canary.is_some_and(|c| s(c, "version") == version),
        source: v.get("source").map(|x| x.to_string()).unwrap_or_default(),
        loaded: v.get("loaded").and_then(Value::as_bool).unwrap_or(false),
        error: s(v, "error"),
        requests,
        rate,
        latency,
        version,
    }
}

fn row_of(ui: &Ui, d: &Value, now: Instant) -> DeploymentRow {
    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let name = s("name");
    let canary = d.get("canary").filter(|c| !c.is_null());
    DeploymentRow {
        versions: d
            .get("versions")
            .and_then(Value::as_array)
            .map(|vs| vs.iter().map(|v| version_row(ui, &name, d, v, now)).collect())
            .unwrap_or_default(),
        namespace: s("namespace"),
        state: s("state"),
        url: s("url"),
        default_version: s("default_version"),
        canary_version: canary.and_then(|c| c.get("version").and_then(Value::as_str)).unwrap_or("").to_owned(),
        canary_percent: canary
            .and_then(|c| c.get("percent").and_then(Value::as_u64))
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0),
        name,
    }
}

/// `GET /deployments`: the deployments the caller may see (a namespace token: its namespace's, through the
/// API's list), each with its namespace for the admin.
pub async fn list(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
) -> Response {
    let list = match call(&ui, Method::GET, "/apis/v2beta1/deployments", &headers, None).await {
        Ok(l) => l,
        Err(f) => return f.page(),
    };
    let now = Instant::now();
    let rows = list
        .get("deployments")
        .and_then(Value::as_array)
        .map(|ds| ds.iter().map(|d| row_of(&ui, d, now)).collect())
        .unwrap_or_default();
    let page = DeploymentsPage {
        c: Chrome::new("Deployments", &csrf, Some(&caller), "deployments"),
        rows,
        csrf: csrf.0,
        all_namespaces: caller.confined_to().is_none(),
    };
    html(page.render())
}

/// `GET /deployments/NAME/rows`: one deployment's version rows, which its table polls (the traffic forms
/// are outside it, so a refresh never resets what is being typed).
pub async fn rows(State(ui): State<Ui>, headers: HeaderMap, UrlPath(name): UrlPath<String>) -> Response {
    let uri = format!("/apis/v2beta1/deployments/{}", url_part(&name, false));
    match call(&ui, Method::GET, &uri, &headers, None).await {
        Ok(d) => html(RowsFragment { d: row_of(&ui, &d, Instant::now()) }.render()),
        Err(f) => f.page(),
    }
}

/// `POST /deployments/NAME/traffic`: `default` (a version) sets the default version; `canary` (a version,
/// empty for none) with `percent` sets or removes the canary. Through the API, which checks that the
/// versions exist and are loaded.
pub async fn traffic(
    State(ui): State<Ui>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
    Form(form): Form<FormMap>,
) -> Response {
    if let Some(r) = csrf_refusal(&headers, &csrf, form.get("csrf").map(String::as_str)) {
        return r;
    }
    let body = if let Some(default) = form.get("default") {
        json!({"default_version": default.trim()})
    } else if form.contains_key("canary") {
        let version = text(&form, "canary");
        if version.is_empty() {
            json!({"canary": null})
        } else {
            let percent: u32 = match text(&form, "percent").parse() {
                Ok(p) if p <= 100 => p,
                _ => {
                    return error_page(
                        StatusCode::BAD_REQUEST,
                        &format!("canary share: `{}` is not a whole percentage (0–100)", text(&form, "percent")),
                        None,
                    )
                }
            };
            json!({"canary": {"version": version, "percent": percent}})
        }
    } else {
        return error_page(StatusCode::BAD_REQUEST, "the form names no default version and no canary", None);
    };
    let uri = format!("/apis/v2beta1/deployments/{}", url_part(&name, false));
    match call(&ui, Method::PATCH, &uri, &headers, Some(body)).await {
        Ok(_) => done(&headers, &format!("/deployments#deployment-{}", url_part(&name, false))),
        Err(f) => f.page(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(requests: u64, errors: u64, sum: f64, buckets: &[(f64, u64)]) -> Sample {
        Sample { requests, errors, latency_count: requests, latency_sum: sum, buckets: buckets.to_vec() }
    }

    #[test]
    fn rates_are_differences_over_the_window() {
        let rates = Rates::default();
        let t0 = Instant::now();
        let b0 = [(0.001, 0), (0.01, 0), (0.1, 0)];
        assert_eq!(rates.observe("m", "1", t0, sample(0, 0, 0.0, &b0)), None, "one sample is no rate");
        // 20 requests in 2 s, 19 under 1 ms and one at 50 ms, one failed.
        let b1 = [(0.001, 19), (0.01, 19), (0.1, 20)];
        let r = rates.observe("m", "1", t0 + Duration::from_secs(2), sample(20, 1, 19.0 * 0.0005 + 0.05, &b1)).unwrap();
        assert!((r.per_second - 10.0).abs() < 1e-9, "{r:?}");
        assert!((r.error_ratio - 0.05).abs() < 1e-9);
        assert!((r.mean_ms.unwrap() - 2.975).abs() < 1e-6, "{r:?}");
        assert_eq!(r.p95_ms, Some(1.0));
        // Nothing new since: once the first sample leaves the window, a rate of zero and no latency.
        let r = rates.observe("m", "1", t0 + Duration::from_secs(40), sample(20, 1, 0.0595, &b1)).unwrap();
        assert_eq!((r.per_second, r.mean_ms, r.p95_ms), (0.0, None, None));
        // Another version has its own samples; counters going back (a reload) give no rate.
        assert_eq!(rates.observe("m", "2", t0, sample(5, 0, 0.0, &b0)), None);
        assert_eq!(rate(Duration::from_secs(5), &sample(5, 0, 0.0, &b0), &sample(1, 0, 0.0, &b0)), None);
        // Versions not looked at for five minutes are forgotten: the next look starts measuring again.
        let later = t0 + Duration::from_secs(400);
        assert_eq!(rates.observe("m", "2", later, sample(9, 0, 0.0, &b0)), None);
        assert_eq!(rates.samples.lock().unwrap().len(), 1);
    }
}
