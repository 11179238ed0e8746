//! `GET /metrics` (Prometheus text): runs by state, task durations, API request latency; and the
//! middleware that measures and logs every request.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use secondrow_serve::metrics::Histogram;

use crate::error::ApiResult;
use crate::AppState;

/// Latency bucket upper bounds, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0];

pub struct Metrics {
    latency: Histogram,
    errors_4xx: AtomicU64,
    errors_5xx: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics { latency: Histogram::new(&BUCKETS), errors_4xx: AtomicU64::new(0), errors_5xx: AtomicU64::new(0) }
    }
}

impl Metrics {
    fn record(&self, elapsed: Duration, status: u16) {
        self.latency.observe(elapsed);
        match status {
            400..=499 => self.errors_4xx.fetch_add(1, Ordering::Relaxed),
            500..=599 => self.errors_5xx.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Measures every request and writes one structured log line for it.
pub async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    s.metrics.record(elapsed, status);
    tracing::info!(target: "secondrow_api::request", %method, %path, status, ms = elapsed.as_secs_f64() * 1000.0, "request");
    resp
}

async fn metrics(State(s): State<AppState>) -> ApiResult<Response> {
    let mut out = String::new();
    let store = s.store();
    let _ = writeln!(out, "# HELP secondrow_runs Runs by state.\n# TYPE secondrow_runs gauge");
    for (state, n) in store.run_state_counts().await? {
        let _ = writeln!(out, "secondrow_runs{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP secondrow_runs_executing Runs executing in this server.\n# TYPE secondrow_runs_executing gauge"
    );
    let _ = writeln!(out, "secondrow_runs_executing {}", s.supervisor.active_count());
    let _ = writeln!(
        out,
        "# HELP secondrow_task_duration_seconds Finished container task durations by state.\n# TYPE secondrow_task_duration_seconds summary"
    );
    for (state, n, sum_ms) in store.task_duration_stats().await? {
        let _ = writeln!(out, "secondrow_task_duration_seconds_count{{state=\"{state}\"}} {n}");
        let _ = writeln!(out, "secondrow_task_duration_seconds_sum{{state=\"{state}\"}} {:.3}", sum_ms as f64 / 1000.0);
    }
    let m = &s.metrics;
    let _ = writeln!(out, "# HELP secondrow_api_request_duration_seconds API request latency.\n# TYPE secondrow_api_request_duration_seconds histogram");
    m.latency.render(&mut out, "secondrow_api_request_duration_seconds", "");
    let _ = writeln!(out, "# HELP secondrow_api_errors_total API responses with an error status.\n# TYPE secondrow_api_errors_total counter");
    let _ = writeln!(out, "secondrow_api_errors_total{{class=\"4xx\"}} {}", m.errors_4xx.load(Ordering::Relaxed));
    let _ = writeln!(out, "secondrow_api_errors_total{{class=\"5xx\"}} {}", m.errors_5xx.load(Ordering::Relaxed));
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
