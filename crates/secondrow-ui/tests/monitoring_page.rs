//! HTML-level tests of a deployment's monitoring page: a real prediction log (Parquet batches written by
//! `secondrow_monitor::log`, labels posted through the feedback API), read through the real router over a
//! real SQLite store; the page's time spans and chart points carry exactly the figures of the monitor API
//! (`GET /apis/v2beta1/deployments/NAME/monitor?buckets=N`, what `secondrow monitor --json --buckets N`
//! prints), another namespace is refused, and bad parameters get 4xx JSON errors.

mod support;
use support::{env, Env};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use scraper::{Html, Selector};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use secondrow_monitor::log::{write_batch, Column, LoggedRequest, Values};

const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ADMIN: &str = "admin-token-0123456789";
const T0: i64 = 1_700_000_000_000;

struct Resp {
    status: StatusCode,
    body: String,
}

impl Resp {
    fn attrs(&self, css: &str, attr: &str) -> Vec<String> {
        let doc = Html::parse_document(&self.body);
        let sel = Selector::parse(css).unwrap();
        doc.select(&sel).filter_map(|e| e.value().attr(attr).map(str::to_owned)).collect()
    }
    fn select(&self, css: &str) -> Vec<String> {
        let doc = Html::parse_document(&self.body);
        let sel = Selector::parse(css).unwrap();
        doc.select(&sel).map(|e| e.text().collect::<String>()).collect()
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn send(app: &Router, req: Request<Body>) -> Resp {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap();
    Resp { status, body: String::from_utf8_lossy(&bytes).into_owned() }
}

/// A UI page with the session's cookies.
async fn page(app: &Router, uri: &str, token: &str) -> Resp {
    let cookies = format!("secondrow_csrf={CSRF}; secondrow_token={token}");
    send(app, Request::get(uri).header(header::COOKIE, cookies).body(Body::empty()).unwrap()).await
}

/// An API call with a bearer token.
async fn api(app: &Router, method: &str, uri: &str, token: &str, body: Option<Value>) -> Resp {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty))
        .unwrap();
    send(app, req).await
}

/// Deploys version 1 of `name` (a linear regression over `a` and `b`) into `namespace`.
async fn deploy(e: &Env, name: &str, namespace: &str) {
    let path = e.root.join(format!("{name}.json"));
    let model = json!({
        "format": "secondrow-model", "version": 1, "kind": "linear_regression", "task": "regression",
        "label": "y", "feature_names": ["a", "b"], "classes": [], "transformer": null, "params": {}, "training": {},
        "estimator": {"algorithm": "linear", "coef": [1.0, 2.0], "intercept": 0.5, "alpha": 0.0}
    });
    std::fs::write(&path, model.to_string()).unwrap();
    let body = json!({"name": name, "version": "1", "source": {"path": path.display().to_string()},
                      "namespace": namespace, "log_sample": 1.0});
    let r = api(&e.app, "POST", "/apis/v2beta1/deployments", ADMIN, Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Request `i`: two rows, logged at `time_ms`, every prediction `prediction`.
fn request(i: usize, time_ms: i64, prediction: f64) -> LoggedRequest {
    LoggedRequest {
        id: format!("r{i}"),
        time_ms,
        len: 2,
        features: vec![
            Column { name: "a".into(), values: Values::Number(vec![Some(i as f64), None]) },
            Column { name: "b".into(), values: Values::Number(vec![Some(1.0), Some(2.0)]) },
        ],
        prediction: Some(Values::Number(vec![Some(prediction); 2])),
    }
}

#[tokio::test]
async fn the_monitoring_page_shows_the_monitor_apis_series_to_its_namespace_only() {
    let e = env(Some(ADMIN)).await;
    let (log, _queue) = secondrow_api::monitoring::PredictionLog::new(e.root.join("work").join("monitoring"), 16);
    e.state.deployments.install_log(log.clone());
    let (_, a) = e.state.store().create_api_token("team-a", "ui").await.unwrap();
    deploy(&e, "alpha", "team-a").await;
    deploy(&e, "bravo", "team-b").await;

    // Two batches a minute apart: four requests predicting 1, then four predicting 3.
    let dir = log.dir("alpha", "1");
    let early: Vec<LoggedRequest> = (0..4).map(|i| request(i, T0 + i as i64 * 1000, 1.0)).collect();
    let late: Vec<LoggedRequest> = (4..8).map(|i| request(i, T0 + 57_000 + (i as i64 - 4) * 1000, 3.0)).collect();
    write_batch(&dir, T0 + 3000, 1, &early).unwrap();
    write_batch(&dir, T0 + 60_000, 2, &late).unwrap();
    write_batch(&log.dir("bravo", "1"), T0, 1, &early).unwrap();
    // Labels through the feedback API: 2 for the early ones (error 1), 3 for two late ones (error 0).
    for (i, label) in [(0, 2.0), (1, 2.0), (2, 2.0), (3, 2.0), (4, 3.0), (5, 3.0)] {
        let body = json!({"id": format!("r{i}"), "labels": [label, label]});
        let r = api(&e.app, "POST", "/apis/v2beta1/deployments/alpha/feedback", &a, Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    // The monitor API's series (what `secondrow monitor --json --buckets 2` prints).
    let doc = api(&e.app, "GET", "/apis/v2beta1/deployments/alpha/monitor?buckets=2", &a, None).await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.body);
    let doc = doc.json();
    let version = &doc["versions"][0];
    assert_eq!(version["rows"], 16, "{doc}");
    let timeline = version["timeline"].as_array().unwrap_or_else(|| panic!("no timeline: {doc}"));
    assert_eq!(timeline.len(), 2, "{doc}");
    assert_eq!((timeline[0]["start_ms"].as_i64(), timeline[1]["end_ms"].as_i64()), (Some(T0), Some(T0 + 60_000)));
    assert_eq!((timeline[0]["rows"].as_u64(), timeline[1]["rows"].as_u64()), (Some(8), Some(8)));
    assert_eq!(timeline[0]["performance"], json!({"metric": "rmse", "value": 1.0, "labelled": 8}), "{doc}");
    assert_eq!(timeline[1]["performance"], json!({"metric": "rmse", "value": 0.0, "labelled": 4}), "{doc}");
    // No training data behind a model file: no drift, performance only.
    assert!(version["reference"].is_null() && version["features"].as_array().unwrap().is_empty(), "{doc}");
    // Without `buckets` the answer is as before (no timeline).
    let plain = api(&e.app, "GET", "/apis/v2beta1/deployments/alpha/monitor", &a, None).await.json();
    assert!(plain["versions"][0].get("timeline").is_none(), "{plain}");

    // The deployments page links to the page.
    let r = page(&e.app, "/deployments", &a).await;
    assert_eq!(r.attrs("a.monitoring-link", "href"), ["/deployments/alpha/monitoring"]);

    // The page: the same spans, rows and performance points as the API.
    let r = page(&e.app, "/deployments/alpha/monitoring?buckets=2", &a).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.attrs("section.monitor-version", "data-version"), ["1"]);
    assert_eq!(r.select("section.monitor-version p .rows"), ["16"]);
    assert_eq!(r.select("table.monitor-buckets td.rows"), ["8", "8"]);
    assert_eq!(r.select("table.monitor-buckets td.labelled"), ["8", "4"]);
    let points: Vec<f64> = r
        .attrs(".performance-chart svg circle.point[data-series=performance]", "data-value")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    let expected: Vec<f64> = timeline.iter().map(|b| b["performance"]["value"].as_f64().unwrap()).collect();
    assert_eq!(points, expected);
    assert_eq!(r.select("section.monitor-version .performance"), ["rmse 0.816497 over 12 labelled rows"]);
    // Missing values: `a` is missing in every second row, `b` never: a quarter of the values of each span.
    let missing: Vec<String> = r.attrs(".quality-chart circle.point[data-series=missing_rate]", "data-value");
    assert_eq!(missing, ["0.25", "0.25"].map(String::from).to_vec(), "{}", r.body);
    assert!(r.body.contains("No rule has started a run."));

    // Another namespace's deployment: refused, nothing of it shown; an unknown one is a 404.
    let r = page(&e.app, "/deployments/bravo/monitoring", &a).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(!r.body.contains("monitor-version") && !r.body.contains("rows logged"), "{}", r.body);
    let r = api(&e.app, "GET", "/apis/v2beta1/deployments/bravo/monitor?buckets=2", &a, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.json()["error"].is_string());
    let r = page(&e.app, "/deployments/nope/monitoring", &a).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // The admin sees any namespace's.
    let r = page(&e.app, "/deployments/bravo/monitoring?buckets=3", ADMIN).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.select("table.monitor-buckets td.rows").len(), 3, "{}", r.body);

    // Bad parameters: a 4xx with a JSON error naming the field (the page: an error page).
    for (uri, status, message) in [
        ("/apis/v2beta1/deployments/nope/monitor?buckets=2", StatusCode::NOT_FOUND, "deployment `nope` not found"),
        (
            "/apis/v2beta1/deployments/alpha/monitor?buckets=0",
            StatusCode::BAD_REQUEST,
            "buckets: must be between 1 and 100",
        ),
        (
            "/apis/v2beta1/deployments/alpha/monitor?buckets=101",
            StatusCode::BAD_REQUEST,
            "buckets: must be between 1 and 100",
        ),
        ("/apis/v2beta1/deployments/alpha/monitor?buckets=two", StatusCode::BAD_REQUEST, "buckets"),
    ] {
        let r = api(&e.app, "GET", uri, &a, None).await;
        assert_eq!(r.status, status, "{uri}: {}", r.body);
        let error = r.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains(message), "{uri}: {error}");
    }
    let r = page(&e.app, "/deployments/alpha/monitoring?buckets=0", &a).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("buckets: must be between 1 and 100"), "{}", r.body);
    let r = page(&e.app, "/deployments/alpha/monitoring?psi_threshold=-1", &a).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}
