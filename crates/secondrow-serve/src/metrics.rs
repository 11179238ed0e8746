//! Prometheus metrics: per model and version, a request counter, an error counter and a latency
//! histogram; rendered as Prometheus text for `GET /metrics`. Counters are atomics owned by each loaded
//! version, so the request path takes no lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (prometheus_client's defaults, as KServe uses,
/// with finer steps below 5 ms where a Rust server lives).
pub const BUCKETS: [f64; 17] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0];

/// Counters of one model version.
#[derive(Debug, Default)]
pub struct VersionMetrics {
    requests: AtomicU64,
    errors: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    sum_nanos: AtomicU64,
}

impl VersionMetrics {
    /// Records one finished request.
    pub fn observe(&self, elapsed: Duration, failed: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| seconds <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add(elapsed.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

/// Every version's counters ever created in this process, unloaded ones included (Prometheus counters
/// must not go backwards).
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<Vec<(String, String, Arc<VersionMetrics>)>>,
}

impl Metrics {
    /// The counters of `model`/`version`, created on first use.
    pub fn version(&self, model: &str, version: &str) -> Arc<VersionMetrics> {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, m)) = series.iter().find(|(m, v, _)| m == model && v == version) {
            return m.clone();
        }
        let m = Arc::new(VersionMetrics::default());
        series.push((model.to_owned(), version.to_owned(), m.clone()));
        m
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = String::new();
        let label = |m: &str, v: &str| format!("model=\"{}\",version=\"{}\"", escape(m), escape(v));
        out.push_str("# HELP secondrow_serve_requests_total Inference requests (V1 predict and V2 infer).\n");
        out.push_str("# TYPE secondrow_serve_requests_total counter\n");
        for (m, v, s) in &series {
            let _ = writeln!(out, "secondrow_serve_requests_total{{{}}} {}", label(m, v), s.requests());
        }
        out.push_str("# HELP secondrow_serve_request_errors_total Inference requests that failed (4xx and 5xx).\n");
        out.push_str("# TYPE secondrow_serve_request_errors_total counter\n");
        for (m, v, s) in &series {
            let _ = writeln!(out, "secondrow_serve_request_errors_total{{{}}} {}", label(m, v), s.errors());
        }
        out.push_str("# HELP secondrow_serve_request_duration_seconds Inference latency inside the server.\n");
        out.push_str("# TYPE secondrow_serve_request_duration_seconds histogram\n");
        for (m, v, s) in &series {
            let l = label(m, v);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += s.buckets[i].load(Ordering::Relaxed);
                let _ =
                    writeln!(out, "secondrow_serve_request_duration_seconds_bucket{{{l},le=\"{bound}\"}} {cumulative}");
            }
            let count = s.requests();
            let _ = writeln!(out, "secondrow_serve_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {count}");
            let sum = s.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "secondrow_serve_request_duration_seconds_sum{{{l}}} {sum}");
            let _ = writeln!(out, "secondrow_serve_request_duration_seconds_count{{{l}}} {count}");
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
