//! Model monitoring on the serving path: the prediction log of deployments that ask for it
//! (`log_sample`), written as Parquet batches (see `secondrow_monitor::log`) under
//! `<work dir>/monitoring/<deployment>/<version>/`.
//!
//! [`PredictionLog`] is the serving repository's [`InferenceObserver`]: it samples each deployment's
//! share of requests, and hands a sampled request to a bounded queue without waiting: when the queue is
//! full the request is dropped and counted (`secondrow_monitor_log_dropped_total` on the serving port's
//! `/metrics`), so logging never slows inference down. One writer task drains the queue and writes a
//! file per deployment version every [`FLUSH_INTERVAL`] or [`FLUSH_ROWS`] rows.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use secondrow_monitor::log::{self as plog, Column, LoggedRequest, Values};
use secondrow_serve::metrics::escape;
use secondrow_serve::observer::{InferenceObserver, ObservedInference, ObservedValues};
use tokio::sync::mpsc;

pub mod export;
pub mod rules;
pub mod status;

pub use status::watch;

/// The monitoring routes: the monitor, feedback and rules.
pub fn routes() -> axum::Router<crate::AppState> {
    status::routes().merge(rules::routes()).merge(export::routes())
}

/// Requests waiting to be written, all deployments together; more are dropped.
pub const QUEUE_CAPACITY: usize = 4096;
/// A deployment version's pending rows are written at least this often.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// ... and as soon as this many rows are pending.
pub const FLUSH_ROWS: usize = 4096;

/// Counters of one deployment's log.
#[derive(Default)]
struct LogCounters {
    /// Requests sampled and queued.
    queued: AtomicU64,
    /// Sampled requests dropped because the queue was full.
    dropped: AtomicU64,
    /// Rows written to files.
    written_rows: AtomicU64,
}

/// The prediction log: sampling, the bounded queue and its counters.
pub struct PredictionLog {
    root: PathBuf,
    /// Deployment → share of requests logged; read on every inference without a lock (the serving path's
    /// rule), replaced whole on a change.
    rates: ArcSwap<HashMap<String, f64>>,
    draws: AtomicU64,
    queue: mpsc::Sender<ObservedInference>,
    counters: Mutex<HashMap<String, Arc<LogCounters>>>,
    /// Training sides of model artifacts, by artifact id.
    references: Mutex<HashMap<String, status::LoadedReference>>,
    /// The latest figures per deployment, for `/metrics` (see [`status::watch`]).
    snapshot: Mutex<Vec<(String, Vec<status::VersionStatus>)>>,
    /// Serialises appends to feedback files.
    pub(crate) feedback_lock: tokio::sync::Mutex<()>,
    /// Monitoring passes (snapshot and rules) done.
    evaluations: AtomicU64,
}

impl PredictionLog {
    /// A log writing under `root` (`<work dir>/monitoring`) with a queue of `capacity` requests, and the
    /// queue's receiving end for [`PredictionLog::write_forever`].
    pub fn new(root: PathBuf, capacity: usize) -> (Arc<PredictionLog>, mpsc::Receiver<ObservedInference>) {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let log = PredictionLog {
            root,
            rates: ArcSwap::default(),
            draws: AtomicU64::new(0),
            queue,
            counters: Mutex::new(HashMap::new()),
            references: Mutex::new(HashMap::new()),
            snapshot: Mutex::new(Vec::new()),
            feedback_lock: tokio::sync::Mutex::new(()),
            evaluations: AtomicU64::new(0),
        };
        (Arc::new(log), receiver)
    }

    /// Where deployment `name`'s version `version` is logged.
    pub fn dir(&self, name: &str, version: &str) -> PathBuf {
        dir_of(&self.root, name, version)
    }

    /// The folder holding every deployment's log.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Sets the share of `name`'s requests that is logged (`None`: none).
    pub fn set_rate(&self, name: &str, share: Option<f64>) {
        let share = share.filter(|s| *s > 0.0).map(|s| s.min(1.0));
        self.rates.rcu(|rates| {
            let mut rates = HashMap::clone(rates);
            match share {
                Some(s) => rates.insert(name.to_owned(), s),
                None => rates.remove(name),
            };
            rates
        });
    }

    pub(crate) fn cached_reference(&self, artifact_id: &str) -> Option<status::LoadedReference> {
        self.references.lock().unwrap_or_else(|e| e.into_inner()).get(artifact_id).cloned()
    }

    pub(crate) fn cache_reference(&self, artifact_id: &str, reference: status::LoadedReference) {
        self.references.lock().unwrap_or_else(|e| e.into_inner()).insert(artifact_id.to_owned(), reference);
    }

    /// Whether this process logged requests of `name` (its log may still be read after logging stopped).
    pub(crate) fn has_logged(&self, name: &str) -> bool {
        self.counters.lock().unwrap_or_else(|e| e.into_inner()).contains_key(name)
    }

    pub(crate) fn set_snapshot(&self, snapshot: Vec<(String, Vec<status::VersionStatus>)>) {
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
        self.evaluations.fetch_add(1, Ordering::Relaxed);
    }

    fn counters(&self, name: &str) -> Arc<LogCounters> {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.entry(name.to_owned()).or_default().clone()
    }

    /// (queued, dropped, written rows) of deployment `name` so far.
    pub fn counts(&self, name: &str) -> (u64, u64, u64) {
        let c = self.counters(name);
        (c.queued.load(Ordering::Relaxed), c.dropped.load(Ordering::Relaxed), c.written_rows.load(Ordering::Relaxed))
    }

    /// Drains the queue until every sender is gone: groups requests per deployment version and writes
    /// a file per group when it is due (spawn it).
    pub async fn write_forever(self: Arc<Self>, mut receiver: mpsc::Receiver<ObservedInference>) {
        let mut pending: HashMap<(String, String), Vec<LoggedRequest>> = HashMap::new();
        let mut seq: u64 = 0;
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let flush_all = tokio::select! {
                received = receiver.recv() => match received {
                    Some(observed) => {
                        let key = (observed.model.clone(), observed.version.clone());
                        let group = pending.entry(key).or_default();
                        group.push(logged(observed));
                        group.iter().map(|r| r.len).sum::<usize>() >= FLUSH_ROWS
                    }
                    None => {
                        self.flush(&mut pending, &mut seq).await;
                        return;
                    }
                },
                _ = tick.tick() => true,
            };
            if flush_all {
                self.flush(&mut pending, &mut seq).await;
            }
        }
    }

    async fn flush(&self, pending: &mut HashMap<(String, String), Vec<LoggedRequest>>, seq: &mut u64) {
        for ((name, version), requests) in pending.drain() {
            *seq += 1;
            let (dir, n) = (self.dir(&name, &version), *seq);
            let time_ms = requests.last().map_or(0, |r| r.time_ms);
            let written = tokio::task::spawn_blocking(move || plog::write_batch(&dir, time_ms, n, &requests)).await;
            match written {
                Ok(Ok(Some((_, rows)))) => {
                    self.counters(&name).written_rows.fetch_add(rows as u64, Ordering::Relaxed);
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::warn!(deployment = %name, %version, error = %e, "writing the prediction log"),
                Err(e) => tracing::warn!(deployment = %name, %version, error = %e, "prediction log task failed"),
            }
        }
    }
}

/// `<root>/<deployment>/<version>` (names are checked to be plain file names when deployed).
pub fn dir_of(root: &Path, name: &str, version: &str) -> PathBuf {
    root.join(name).join(version)
}

impl InferenceObserver for PredictionLog {
    fn sample(&self, model: &str) -> bool {
        let share = match self.rates.load().get(model) {
            Some(s) => *s,
            None => return false,
        };
        share >= 1.0 || unit_draw(self.draws.fetch_add(1, Ordering::Relaxed)) < share
    }

    fn record(&self, record: ObservedInference) {
        let counters = self.counters(&record.model);
        match self.queue.try_send(record) {
            Ok(()) => counters.queued.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn render_metrics(&self, out: &mut String) {
        let mut counters: Vec<(String, Arc<LogCounters>)> = self
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        counters.sort_by(|a, b| a.0.cmp(&b.0));
        type Counter = fn(&LogCounters) -> u64;
        let series: [(&str, &str, Counter); 3] = [
            ("secondrow_monitor_logged_requests_total", "Sampled requests queued for the prediction log.", |c| {
                c.queued.load(Ordering::Relaxed)
            }),
            (
                "secondrow_monitor_log_dropped_total",
                "Sampled requests dropped because the prediction log queue was full.",
                |c| c.dropped.load(Ordering::Relaxed),
            ),
            ("secondrow_monitor_logged_rows_total", "Rows written to the prediction log.", |c| {
                c.written_rows.load(Ordering::Relaxed)
            }),
        ];
        for (name, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (model, c) in &counters {
                let _ = writeln!(out, "{name}{{model=\"{}\"}} {}", escape(model), value(c));
            }
        }
        let name = "secondrow_monitor_evaluations_total";
        let _ =
            writeln!(out, "# HELP {name} Monitoring passes (drift, performance, rules) done.\n# TYPE {name} counter");
        let _ = writeln!(out, "{name} {}", self.evaluations.load(Ordering::Relaxed));
        render_snapshot(out, &self.snapshot.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// The drift and performance gauges of the latest snapshot.
fn render_snapshot(out: &mut String, snapshot: &[(String, Vec<status::VersionStatus>)]) {
    type Gauge = fn(&secondrow_monitor::drift::FeatureDrift) -> Option<f64>;
    let features: [(&str, &str, Gauge); 4] = [
        ("secondrow_monitor_feature_psi", "Population stability index of a feature's window against training.", |f| {
            Some(f.psi)
        }),
        ("secondrow_monitor_feature_ks", "Kolmogorov-Smirnov statistic of a numeric feature against training.", |f| {
            f.ks
        }),
        ("secondrow_monitor_feature_chi_square_p_value", "Chi-square p-value of a categorical feature.", |f| {
            f.chi_square_p_value
        }),
        ("secondrow_monitor_feature_missing_rate", "Share of missing values of a feature in the window.", |f| {
            Some(f.missing_rate)
        }),
    ];
    let labels = |m: &str, v: &str| format!("model=\"{}\",version=\"{}\"", escape(m), escape(v));
    for (name, help, value) in features {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (model, versions) in snapshot {
            for v in versions {
                for f in &v.features {
                    if let Some(x) = value(f) {
                        let _ = writeln!(
                            out,
                            "{name}{{{},feature=\"{}\"}} {x}",
                            labels(model, &v.version),
                            escape(&f.feature)
                        );
                    }
                }
            }
        }
    }
    type VersionGauge = fn(&status::VersionStatus) -> Option<f64>;
    let versions: [(&str, &str, VersionGauge); 4] = [
        ("secondrow_monitor_window_rows", "Logged rows in the monitoring window.", |v| Some(v.rows as f64)),
        ("secondrow_monitor_schema_violation_rate", "Share of window rows that break the training schema.", |v| {
            v.schema_violation_rate
        }),
        ("secondrow_monitor_accuracy", "Accuracy of labelled window rows (classifiers).", |v| {
            v.performance.as_ref().filter(|p| p.metric == "accuracy").map(|p| p.value)
        }),
        ("secondrow_monitor_rmse", "Root mean squared error of labelled window rows (regressors).", |v| {
            v.performance.as_ref().filter(|p| p.metric == "rmse").map(|p| p.value)
        }),
    ];
    for (name, help, value) in versions {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (model, vs) in snapshot {
            for v in vs {
                if let Some(x) = value(v) {
                    let _ = writeln!(out, "{name}{{{}}} {x}", labels(model, &v.version));
                }
            }
        }
    }
}

/// A well-mixed number in [0, 1) for draw `n` (splitmix64).
fn unit_draw(n: u64) -> f64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn values(v: ObservedValues) -> Values {
    match v {
        ObservedValues::Number(v) => Values::Number(v),
        ObservedValues::Text(v) => Values::Text(v),
    }
}

fn logged(o: ObservedInference) -> LoggedRequest {
    LoggedRequest {
        id: o.id,
        time_ms: o.time_ms,
        len: o.rows.len,
        features: o.rows.features.into_iter().map(|c| Column { name: c.name, values: values(c.values) }).collect(),
        prediction: o.rows.prediction.map(values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secondrow_serve::observer::{ObservedColumn, ObservedRows};

    fn observed(model: &str, id: &str) -> ObservedInference {
        ObservedInference {
            model: model.into(),
            version: "1".into(),
            id: id.into(),
            time_ms: 5,
            rows: ObservedRows {
                len: 1,
                features: vec![ObservedColumn { name: "x".into(), values: ObservedValues::Number(vec![Some(2.0)]) }],
                prediction: Some(ObservedValues::Number(vec![Some(4.0)])),
            },
        }
    }

    #[test]
    fn sampling_follows_the_share_and_a_full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _receiver) = PredictionLog::new(dir.path().to_path_buf(), 2);
        assert!(!log.sample("m"));
        log.set_rate("m", Some(0.1));
        let sampled = (0..10_000).filter(|_| log.sample("m")).count();
        assert!((800..1200).contains(&sampled), "{sampled} of 10000 at 10%");
        log.set_rate("m", Some(1.0));
        assert!((0..100).all(|_| log.sample("m")));
        log.set_rate("m", None);
        assert!(!log.sample("m"));

        // Nobody drains the queue: the third request is dropped, at once.
        for i in 0..3 {
            log.record(observed("m", &i.to_string()));
        }
        assert_eq!(log.counts("m"), (2, 1, 0));
        let mut text = String::new();
        log.render_metrics(&mut text);
        assert!(text.contains("secondrow_monitor_log_dropped_total{model=\"m\"} 1\n"), "{text}");
        assert!(text.contains("secondrow_monitor_logged_requests_total{model=\"m\"} 2\n"), "{text}");
    }

    #[tokio::test]
    async fn the_writer_drains_the_queue_into_parquet_files() {
        let dir = tempfile::tempdir().unwrap();
        let (log, receiver) = PredictionLog::new(dir.path().to_path_buf(), 16);
        log.record(observed("m", "a"));
        log.record(observed("m", "b"));
        let writer = tokio::spawn(log.clone().write_forever(receiver));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while log.counts("m").2 < 2 {
            assert!(tokio::time::Instant::now() < deadline, "rows not written: {:?}", log.counts("m"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let window = plog::read_window(&log.dir("m", "1"), None).unwrap();
        assert_eq!(window.request_ids, ["a", "b"]);
        assert_eq!(window.feature("x"), Some(&Values::Number(vec![Some(2.0), Some(2.0)])));
        drop(log);
        writer.abort();
    }
}
