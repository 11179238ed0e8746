//! Prometheus metrics: per model and version, a request counter, an error counter and a latency
//! histogram; rendered as Prometheus text for `GET /metrics`. Counters are atomics owned by each loaded
//! version, so the request path takes no lock.
//!
//! [`Histogram`] is SecondRow's one latency histogram (the KFP API's `/metrics` uses it too).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (prometheus_client's defaults, as KServe uses,
/// with finer steps below 5 ms where a Rust server lives).
pub const BUCKETS: [f64; 17] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0];

/// A lock-free Prometheus latency histogram over fixed bucket bounds (seconds).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative): observations in (previous bound, bound].
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// A histogram with upper bounds `bounds` (ascending, seconds); `+Inf` is implied.
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|&b| seconds <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of the observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// Each bound with the observations at or below it (cumulative), as the `_bucket` series.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.bounds
            .iter()
            .zip(self.buckets.iter())
            .map(|(b, n)| {
                total += n.load(Ordering::Relaxed);
                (*b, total)
            })
            .collect()
    }

    /// Writes the `_bucket` (cumulative), `_sum` and `_count` series of `name`; `labels` (`a="x",b="y"`,
    /// escaped with [`escape`]) go in front of `le`. The `# HELP`/`# TYPE` lines are the caller's.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(self.buckets.iter()) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = |l: &str| if l.is_empty() { String::new() } else { format!("{{{l}}}") };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// Counters of one model version.
#[derive(Debug)]
pub struct VersionMetrics {
    requests: AtomicU64,
    errors: AtomicU64,
    latency: Histogram,
}

impl Default for VersionMetrics {
    fn default() -> VersionMetrics {
        VersionMetrics { requests: AtomicU64::new(0), errors: AtomicU64::new(0), latency: Histogram::new(&BUCKETS) }
    }
}

impl VersionMetrics {
    /// Records one finished request.
    pub fn observe(&self, elapsed: Duration, failed: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.observe(elapsed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The latency histogram.
    pub fn latency(&self) -> &Histogram {
        &self.latency
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

    /// Every series so far as (model, version, counters), without creating any.
    pub fn series(&self) -> Vec<(String, String, Arc<VersionMetrics>)> {
        self.series.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
            s.latency.render(&mut out, "secondrow_serve_request_duration_seconds", &label(m, v));
        }
        out
    }
}

/// A Prometheus label value, escaped.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        static BOUNDS: [f64; 2] = [0.001, 0.1];
        let h = Histogram::new(&BOUNDS);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_secs(2));
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "");
        assert_eq!(
            out,
            "x_seconds_bucket{le=\"0.001\"} 1\nx_seconds_bucket{le=\"0.1\"} 2\nx_seconds_bucket{le=\"+Inf\"} 3\n\
             x_seconds_sum 2.0505\nx_seconds_count 3\n"
        );
        let mut labelled = String::new();
        h.render(&mut labelled, "x_seconds", "model=\"m\"");
        assert!(labelled.starts_with("x_seconds_bucket{model=\"m\",le=\"0.001\"} 1\n"), "{labelled}");
        assert!(labelled.contains("x_seconds_count{model=\"m\"} 3\n"), "{labelled}");
    }
}
