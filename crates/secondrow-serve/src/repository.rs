//! The model repository: which models and versions are loaded, which version takes a request (the
//! default, a pinned version, or a canary share), and the inference path around a runtime (input
//! checks, concurrency limit, batching, metrics).
//!
//! Readers never lock: the model table and each model's traffic table sit behind `ArcSwap`, and a
//! change (load, unload, default switch, canary) builds a new table and swaps it in. A request holds
//! the `Arc` of the version it resolved, so a version swapped out or unloaded finishes its in-flight
//! requests. Changes are serialised by one writer mutex; loading a file happens before the swap, so a
//! file that fails to load changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;

use crate::batch::Batcher;
use crate::error::{Error, ModelError, Result};
use crate::metrics::{Metrics, VersionMetrics};
use crate::observer::{InferenceObserver, ObservedInference, ObservedRows};
use crate::runtime::{self, Runtime};
use crate::tensor::{Tensor, TensorData};

/// Requests with at most this many input elements are predicted on the async worker (a few
/// microseconds); larger ones go to the blocking pool.
pub const INLINE_ELEMENTS: usize = 4096;

/// Per-model serving options.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    /// Dynamic batching: rows per batch; 0 or 1 turns batching off.
    pub max_batch_size: usize,
    /// Dynamic batching: how long the first request of a batch waits for others.
    pub max_queue_delay: Duration,
    /// Requests of this model predicted at once (all versions together); 0 means no limit.
    pub max_concurrency: usize,
}

/// Default [`ModelOptions::max_concurrency`]: one prediction per core (large ones run on the blocking
/// pool; more at once only queue there while holding their inputs in memory).
pub fn default_max_concurrency() -> usize {
    std::thread::available_parallelism().map_or(4, usize::from)
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions { max_batch_size: 0, max_queue_delay: Duration::ZERO, max_concurrency: default_max_concurrency() }
    }
}

/// One loaded version of a model.
pub struct Version {
    pub version: String,
    pub path: PathBuf,
    pub runtime: Arc<dyn Runtime>,
    metrics: Arc<VersionMetrics>,
    batcher: Option<Batcher>,
}

/// State of one version, as listed by the repository index.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionStatus {
    pub model: String,
    pub version: String,
    pub path: PathBuf,
    pub is_default: bool,
    /// Percent of unpinned requests sent to this version when it is the canary.
    pub canary_percent: Option<u32>,
}

/// Which versions exist and how unpinned requests are split between them.
#[derive(Clone)]
struct Traffic {
    versions: BTreeMap<String, Arc<Version>>,
    default: String,
    canary: Option<(String, u32)>,
}

struct ModelEntry {
    options: ModelOptions,
    traffic: ArcSwap<Traffic>,
    limit: Option<Arc<Semaphore>>,
    counter: AtomicU64,
}

/// Outputs of one inference and the version that computed them.
pub struct Inference {
    pub version: String,
    pub outputs: Vec<Tensor>,
    /// The request id under which the request was logged, when the observer sampled it.
    pub logged_id: Option<String>,
}

/// The set of served models.
pub struct Repository {
    models: ArcSwap<HashMap<String, Arc<ModelEntry>>>,
    writer: Mutex<()>,
    metrics: Metrics,
    default_options: ModelOptions,
    observer: OnceLock<Arc<dyn InferenceObserver>>,
}

impl Repository {
    /// An empty repository; models loaded later get `default_options` unless given their own.
    pub fn new(default_options: ModelOptions) -> Repository {
        Repository {
            models: ArcSwap::from_pointee(HashMap::new()),
            writer: Mutex::new(()),
            metrics: Metrics::default(),
            default_options,
            observer: OnceLock::new(),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Installs the observer that sees sampled inferences (once; a second call is refused with `false`).
    pub fn set_observer(&self, observer: Arc<dyn InferenceObserver>) -> bool {
        self.observer.set(observer).is_ok()
    }

    /// The installed observer, if any.
    pub fn observer(&self) -> Option<&Arc<dyn InferenceObserver>> {
        self.observer.get()
    }

    /// Names of loaded models, sorted.
    pub fn model_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.models.load().keys().cloned().collect();
        names.sort();
        names
    }

    /// Loads `path` as `version` of `name` (the next number when `None`) and returns the version.
    /// The new version becomes the default when `make_default` is set or the model is new. Loading
    /// blocks (tract optimises the graph): call it from a blocking context. On failure nothing changes.
    pub fn load(&self, name: &str, version: Option<&str>, path: &Path, make_default: bool) -> Result<String> {
        self.load_with_options(name, version, path, make_default, None)
    }

    /// [`Repository::load`] with options for a model that is not loaded yet.
    pub fn load_with_options(
        &self,
        name: &str,
        version: Option<&str>,
        path: &Path,
        make_default: bool,
        options: Option<ModelOptions>,
    ) -> Result<String> {
        if name.is_empty() || name.contains('/') {
            return Err(Error::invalid(format!("invalid model name `{name}`")));
        }
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let existing = self.models.load().get(name).cloned();
        let version = match version {
            Some(v) if v.is_empty() || v.contains('/') => return Err(Error::invalid(format!("invalid version `{v}`"))),
            Some(v) => v.to_owned(),
            None => next_version(existing.as_ref().map(|e| e.traffic.load_full())),
        };
        let runtime = runtime::load(path).map_err(|e| Error::Load {
            model: name.to_owned(),
            version: version.clone(),
            path: path.display().to_string(),
            message: e.0,
        })?;
        let options =
            existing.as_ref().map(|e| e.options.clone()).or(options).unwrap_or_else(|| self.default_options.clone());
        let batcher = (options.max_batch_size > 1)
            .then(|| Batcher::start(runtime.clone(), options.max_batch_size, options.max_queue_delay));
        let loaded = Arc::new(Version {
            version: version.clone(),
            path: path.to_path_buf(),
            runtime,
            metrics: self.metrics.version(name, &version),
            batcher,
        });
        match existing {
            Some(entry) => {
                let mut traffic = Traffic::clone(&entry.traffic.load());
                traffic.versions.insert(version.clone(), loaded);
                if make_default {
                    traffic.default = version.clone();
                    if traffic.canary.as_ref().is_some_and(|(v, _)| *v == version) {
                        traffic.canary = None;
                    }
                }
                entry.traffic.store(Arc::new(traffic));
            }
            None => {
                let traffic = Traffic {
                    versions: BTreeMap::from([(version.clone(), loaded)]),
                    default: version.clone(),
                    canary: None,
                };
                let limit = (options.max_concurrency > 0).then(|| Arc::new(Semaphore::new(options.max_concurrency)));
                let entry = Arc::new(ModelEntry {
                    options,
                    traffic: ArcSwap::from_pointee(traffic),
                    limit,
                    counter: AtomicU64::new(0),
                });
                let mut models = HashMap::clone(&self.models.load());
                models.insert(name.to_owned(), entry);
                self.models.store(Arc::new(models));
            }
        }
        tracing::info!(model = name, version = version.as_str(), path = %path.display(), "model version loaded");
        Ok(version)
    }

    /// Unloads one version, or the whole model when `version` is `None`. Unloading the default version
    /// makes the highest remaining one the default; unloading the last version removes the model.
    pub fn unload(&self, name: &str, version: Option<&str>) -> Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let entry = self.entry(name)?;
        let remove_model = match version {
            None => true,
            Some(v) => {
                let mut traffic = Traffic::clone(&entry.traffic.load());
                if traffic.versions.remove(v).is_none() {
                    return Err(Error::VersionNotFound { model: name.to_owned(), version: v.to_owned() });
                }
                if traffic.canary.as_ref().is_some_and(|(c, _)| c == v) {
                    traffic.canary = None;
                }
                match traffic.versions.keys().next_back().cloned() {
                    None => true,
                    Some(last) => {
                        if traffic.default == v {
                            traffic.default = last;
                        }
                        entry.traffic.store(Arc::new(traffic));
                        false
                    }
                }
            }
        };
        if remove_model {
            let mut models = HashMap::clone(&self.models.load());
            models.remove(name);
            self.models.store(Arc::new(models));
        }
        Ok(())
    }

    /// Changes how unpinned requests are routed: the default version, and a canary version receiving
    /// `percent` of them (`Some(None)` removes the canary, `None` leaves it as it is).
    pub fn set_traffic(&self, name: &str, default: Option<&str>, canary: Option<Option<(&str, u32)>>) -> Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let entry = self.entry(name)?;
        let mut traffic = Traffic::clone(&entry.traffic.load());
        let known = |v: &str| {
            if traffic.versions.contains_key(v) {
                Ok(())
            } else {
                Err(Error::VersionNotFound { model: name.to_owned(), version: v.to_owned() })
            }
        };
        if let Some(v) = default {
            known(v)?;
        }
        if let Some(Some((v, percent))) = canary {
            known(v)?;
            if percent > 100 {
                return Err(Error::invalid(format!("canary percent must be between 0 and 100, got {percent}")));
            }
        }
        if let Some(v) = default {
            traffic.default = v.to_owned();
        }
        if let Some(c) = canary {
            traffic.canary = c.map(|(v, p)| (v.to_owned(), p));
        }
        entry.traffic.store(Arc::new(traffic));
        Ok(())
    }

    /// Every loaded version, sorted by model and version.
    pub fn index(&self) -> Vec<VersionStatus> {
        let models = self.models.load();
        let mut out = Vec::new();
        for name in self.model_names() {
            let Some(entry) = models.get(&name) else { continue };
            let traffic = entry.traffic.load();
            for (v, loaded) in &traffic.versions {
                out.push(VersionStatus {
                    model: name.clone(),
                    version: v.clone(),
                    path: loaded.path.clone(),
                    is_default: traffic.default == *v,
                    canary_percent: traffic.canary.as_ref().filter(|(c, _)| c == v).map(|(_, p)| *p),
                });
            }
        }
        out
    }

    /// The version a request would use: `version` when given, otherwise the default (`None` picks by
    /// the canary split, so use it only to describe the model).
    pub fn resolve(&self, name: &str, version: Option<&str>) -> Result<Arc<Version>> {
        let entry = self.entry(name)?;
        let traffic = entry.traffic.load();
        let v = version.unwrap_or(&traffic.default);
        traffic
            .versions
            .get(v)
            .cloned()
            .ok_or_else(|| Error::VersionNotFound { model: name.to_owned(), version: v.to_owned() })
    }

    /// All version names of a model.
    pub fn versions(&self, name: &str) -> Result<Vec<String>> {
        Ok(self.entry(name)?.traffic.load().versions.keys().cloned().collect())
    }

    /// Runs one inference: picks the version (pinned, else canary split, else default), checks the
    /// inputs against it, waits for a concurrency slot, predicts (batched when configured) and
    /// returns every output. Metrics are recorded for the chosen version, failures included.
    pub async fn infer(&self, name: &str, version: Option<&str>, inputs: Vec<Tensor>) -> Result<Inference> {
        self.infer_with_id(name, version, None, inputs).await
    }

    /// [`Repository::infer`] for a request with an id: when the observer samples the request, its inputs
    /// and outputs are handed to it under `id` (generated when `None`), returned in
    /// [`Inference::logged_id`].
    pub async fn infer_with_id(
        &self,
        name: &str,
        version: Option<&str>,
        id: Option<&str>,
        inputs: Vec<Tensor>,
    ) -> Result<Inference> {
        let started = Instant::now();
        let entry = self.entry(name)?;
        let chosen = {
            let traffic = entry.traffic.load();
            let v = match version {
                Some(v) => v,
                None => match &traffic.canary {
                    Some((canary, percent)) if pick_canary(entry.counter.fetch_add(1, Ordering::Relaxed), *percent) => {
                        canary.as_str()
                    }
                    _ => traffic.default.as_str(),
                },
            };
            traffic
                .versions
                .get(v)
                .cloned()
                .ok_or_else(|| Error::VersionNotFound { model: name.to_owned(), version: v.to_owned() })?
        };
        let observer = self.observer.get().filter(|o| o.sample(name));
        let kept = observer.map(|_| inputs.clone());
        let result = self.infer_on(name, &entry, &chosen, inputs).await;
        chosen.metrics.observe(started.elapsed(), result.is_err());
        let outputs = result?;
        let mut logged_id = None;
        if let (Some(observer), Some(inputs)) = (observer, kept) {
            if let Some(rows) = ObservedRows::from_tensors(chosen.runtime.as_ref(), &inputs, &outputs) {
                let id = id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
                let time_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                observer.record(ObservedInference {
                    model: name.to_owned(),
                    version: chosen.version.clone(),
                    id: id.clone(),
                    time_ms,
                    rows,
                });
                logged_id = Some(id);
            }
        }
        Ok(Inference { version: chosen.version.clone(), outputs, logged_id })
    }

    async fn infer_on(
        &self,
        name: &str,
        entry: &ModelEntry,
        chosen: &Arc<Version>,
        inputs: Vec<Tensor>,
    ) -> Result<Vec<Tensor>> {
        let inputs = check_inputs(name, chosen.runtime.as_ref(), inputs)?;
        let _permit = match &entry.limit {
            Some(limit) => Some(limit.clone().acquire_owned().await.map_err(|_| Error::Unavailable {
                model: name.to_owned(),
                message: "the model is shutting down".into(),
            })?),
            None => None,
        };
        let predict_error =
            |e: ModelError| Error::Predict { model: name.to_owned(), version: chosen.version.clone(), message: e.0 };
        let outputs = if let Some(batcher) = &chosen.batcher {
            batcher.predict(inputs).await.map_err(predict_error)?
        } else if inputs.iter().map(|t| t.data.len()).sum::<usize>() <= INLINE_ELEMENTS {
            chosen.runtime.predict(inputs).map_err(predict_error)?
        } else {
            let runtime = chosen.runtime.clone();
            tokio::task::spawn_blocking(move || runtime.predict(inputs))
                .await
                .map_err(|e| Error::Internal(format!("prediction task failed: {e}")))?
                .map_err(predict_error)?
        };
        Ok(outputs)
    }

    fn entry(&self, name: &str) -> Result<Arc<ModelEntry>> {
        self.models.load().get(name).cloned().ok_or_else(|| Error::ModelNotFound(name.to_owned()))
    }
}

/// Checks request tensors against the model's inputs (names, datatypes, ranks, fixed dimensions, one
/// batch size) and returns them in the model's input order. Reports every problem at once.
pub fn check_inputs(model: &str, runtime: &dyn Runtime, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
    let specs = runtime.inputs();
    let mut slots: Vec<Option<Tensor>> = vec![None; specs.len()];
    let mut problems = Vec::new();
    for tensor in inputs {
        let Some(index) = specs.iter().position(|s| s.name == tensor.name) else {
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            problems.push(format!("unknown input `{}` (model `{model}` takes {})", tensor.name, names.join(", ")));
            continue;
        };
        let spec = &specs[index];
        if slots[index].is_some() {
            problems.push(format!("input `{}` given twice", tensor.name));
            continue;
        }
        if !runtime.accepts(index, tensor.datatype()) {
            problems.push(format!(
                "input `{}`: datatype {}, the model expects {}",
                tensor.name,
                tensor.datatype().name(),
                spec.datatype.name()
            ));
        }
        let shape_ok = tensor.shape.len() == spec.shape.len()
            && tensor.shape.iter().zip(&spec.shape).all(|(&got, &want)| want < 0 || got as i64 == want);
        if !shape_ok {
            problems.push(format!(
                "input `{}`: shape {:?}, the model expects {:?} (-1: any size)",
                tensor.name, tensor.shape, spec.shape
            ));
        }
        let columns = tensor.shape.last().copied().unwrap_or(1).max(1);
        let missing_ok = |at: usize| runtime.takes_missing(index, at % columns);
        if let Some((at, value)) = first_non_finite(&tensor.data, missing_ok) {
            problems
                .push(format!("input `{}`: element {at} is {value}; only finite numbers are accepted", tensor.name));
        }
        slots[index] = Some(tensor);
    }
    for (spec, slot) in specs.iter().zip(&slots) {
        if slot.is_none() {
            problems.push(format!("missing input `{}`", spec.name));
        }
    }
    let tensors: Vec<Tensor> = slots.into_iter().flatten().collect();
    if problems.is_empty() && tensors.len() > 1 {
        let rows = tensors[0].rows();
        if tensors.iter().any(|t| t.rows() != rows) {
            problems.push("inputs differ in their first (batch) dimension".to_string());
        }
    }
    if problems.is_empty() {
        Ok(tensors)
    } else {
        Err(Error::invalid(problems.join("; ")))
    }
}

/// The first infinite element of a floating-point tensor (a number too large for FP32 or FP16 arrives as
/// infinity), or NaN where `missing_ok` (given the flat index) does not take it as a missing value, with
/// its flat index.
fn first_non_finite(data: &TensorData, missing_ok: impl Fn(usize) -> bool) -> Option<(usize, String)> {
    fn find<T: Copy + ToString>(
        values: &[T],
        as_f64: impl Fn(T) -> f64,
        missing_ok: impl Fn(usize) -> bool,
    ) -> Option<(usize, String)> {
        values
            .iter()
            .enumerate()
            .find(|&(i, &v)| {
                let x = as_f64(v);
                x.is_infinite() || (x.is_nan() && !missing_ok(i))
            })
            .map(|(i, v)| (i, v.to_string()))
    }
    match data {
        TensorData::Fp16(v) => find(v, f64::from, missing_ok),
        TensorData::Fp32(v) => find(v, f64::from, missing_ok),
        TensorData::Fp64(v) => find(v, |x| x, missing_ok),
        _ => None,
    }
}

/// Deterministic, well-mixed choice for request number `n`: true for `percent` of all `n`.
fn pick_canary(n: u64, percent: u32) -> bool {
    // splitmix64
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % 10_000) < u64::from(percent) * 100
}

fn next_version(traffic: Option<Arc<Traffic>>) -> String {
    let highest =
        traffic.map(|t| t.versions.keys().filter_map(|v| v.parse::<u64>().ok()).max().unwrap_or(0)).unwrap_or(0);
    (highest + 1).to_string()
}
