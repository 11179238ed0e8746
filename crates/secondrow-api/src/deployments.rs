//! Model deployments (a SecondRow extension, not part of KFP): the REST resource
//! `/apis/v2beta1/deployments` and [`Deployments`], which keeps the model server's
//! [`Repository`] in step with the `deployments` table.
//!
//! The store is the source of truth. A change through this API loads the new file first, then writes
//! the store, then routes traffic, so a file that does not load changes nothing and the previous
//! version keeps serving. Changes made elsewhere (the CLI on the local store) arrive through [`watch`],
//! which reconciles every [`POLL_INTERVAL`]. Models loaded through the serving port's repository
//! extension under other names are left alone.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use secondrow_serve::http::access::AuthFuture;
use secondrow_serve::http::{Access, Authorizer};
use secondrow_serve::{Error as ServeError, ModelOptions, Repository};
use secondrow_store::deployments::{
    apply_traffic, check_log_sample, check_name, next_version, Canary, DeploymentRecord, ModelSource,
    NewDeploymentVersion, TrafficUpdate,
};
use secondrow_store::model_cache::{is_remote_model, ModelCache};
use secondrow_store::Store;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ts, AppState};

/// How often [`watch`] reconciles the served models with the store.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/deployments", get(list).post(create))
        .route("/deployments/{name}", get(get_one).patch(update).delete(delete))
        .route("/deployments/{name}/versions/{version}", axum::routing::delete(delete_version))
}

/// The served side of the deployments: the model repository and what this server loaded into it.
pub struct Deployments {
    repo: Arc<Repository>,
    /// Serialises changes: API calls and the reconciler.
    lock: tokio::sync::Mutex<()>,
    /// Base URL of the serving listener, once it is bound.
    url: OnceLock<String>,
    /// Model names loaded from the store.
    managed: Mutex<BTreeSet<String>>,
    /// Versions whose file failed to load: (name, version) → (path, message). Not retried until the
    /// path changes.
    failures: Mutex<HashMap<(String, String), (String, String)>>,
    /// The prediction log, once serving started (`secondrow server`).
    log: OnceLock<Arc<crate::monitoring::PredictionLog>>,
    /// Where versions in an object store (`s3://…`) are downloaded to, once serving started.
    model_cache: OnceLock<ModelCache>,
    /// Object-store URIs of loaded versions → their local copies (what the repository records).
    fetched: Mutex<HashMap<String, PathBuf>>,
}

impl Default for Deployments {
    fn default() -> Self {
        Deployments::new(Arc::new(Repository::new(ModelOptions::default())))
    }
}

impl Deployments {
    /// The serving listener's base URL, once it is bound.
    pub fn url(&self) -> Option<&str> {
        self.url.get().map(String::as_str)
    }

    pub fn new(repo: Arc<Repository>) -> Deployments {
        Deployments {
            repo,
            lock: tokio::sync::Mutex::new(()),
            url: OnceLock::new(),
            managed: Mutex::new(BTreeSet::new()),
            failures: Mutex::new(HashMap::new()),
            log: OnceLock::new(),
            model_cache: OnceLock::new(),
            fetched: Mutex::new(HashMap::new()),
        }
    }

    /// Serves versions stored in an object store from local copies kept in `cache` (once).
    pub fn install_model_cache(&self, cache: ModelCache) {
        let _ = self.model_cache.set(cache);
    }

    /// The file the repository loads for a recorded version path: an `s3://` URI's local copy.
    fn served_path(&self, recorded: &str) -> PathBuf {
        lock(&self.fetched).get(recorded).cloned().unwrap_or_else(|| PathBuf::from(recorded))
    }

    /// Logs sampled requests of deployments with a `log_sample` to `log` (once; the repository's observer).
    pub fn install_log(&self, log: Arc<crate::monitoring::PredictionLog>) {
        if self.log.set(log.clone()).is_ok() {
            self.repo.set_observer(log);
        }
    }

    /// The prediction log, when installed.
    pub fn log(&self) -> Option<&Arc<crate::monitoring::PredictionLog>> {
        self.log.get()
    }

    /// The repository to serve (KServe V1 / V2) on the serving listener.
    pub fn repository(&self) -> Arc<Repository> {
        self.repo.clone()
    }

    /// Records where the repository is served (`http://host:port`), for the `url` of each deployment.
    pub fn set_url(&self, url: String) {
        let _ = self.url.set(url);
    }

    /// Makes the repository match every stored deployment: loads missing versions, routes traffic,
    /// unloads versions and deployments that are gone. Load failures are logged and reported per version.
    pub async fn sync(&self, store: &Store) -> ApiResult<()> {
        let _guard = self.lock.lock().await;
        let records = store.list_deployments(None).await?;
        let stored: BTreeSet<String> = records.iter().map(|d| d.name.clone()).collect();
        for record in &records {
            self.reconcile(record).await;
        }
        let gone: Vec<String> = lock(&self.managed).difference(&stored).cloned().collect();
        for name in gone {
            self.forget(&name);
        }
        Ok(())
    }

    /// Reconciles one deployment (the caller holds `lock`).
    async fn reconcile(&self, d: &DeploymentRecord) {
        lock(&self.managed).insert(d.name.clone());
        if let Some(log) = self.log.get() {
            log.set_rate(&d.name, d.log_sample);
        }
        let loaded = self.loaded_paths(&d.name);
        for v in &d.versions {
            let key = (d.name.clone(), v.version.clone());
            if loaded.get(&v.version) == Some(&self.served_path(&v.path)) {
                continue;
            }
            if lock(&self.failures).get(&key).is_some_and(|(path, _)| *path == v.path) {
                continue;
            }
            if let Err(message) = self.load(&d.name, &v.version, Path::new(&v.path)).await {
                tracing::warn!(deployment = %d.name, version = %v.version, error = %message, "deployment version failed to load");
                lock(&self.failures).insert(key, (v.path.clone(), message));
            }
        }
        let loaded = self.loaded_paths(&d.name);
        if loaded.is_empty() {
            return;
        }
        // Route traffic to the stored versions that are loaded; a version that failed keeps its predecessor.
        let default = loaded.contains_key(&d.default_version).then_some(d.default_version.as_str());
        let canary =
            d.canary.as_ref().filter(|c| loaded.contains_key(&c.version)).map(|c| (c.version.as_str(), c.percent));
        if let Err(e) = self.repo.set_traffic(&d.name, default, Some(canary)) {
            tracing::warn!(deployment = %d.name, error = %e, "routing deployment traffic");
        }
        let current_default = self.repo.resolve(&d.name, None).ok().map(|v| v.version.clone());
        for version in loaded.keys() {
            if d.version(version).is_none() && current_default.as_deref() != Some(version.as_str()) {
                let _ = self.repo.unload(&d.name, Some(version));
            }
        }
        lock(&self.failures).retain(|(name, version), _| *name != d.name || d.version(version).is_some());
    }

    /// Unloads a deployment that no longer exists.
    fn forget(&self, name: &str) {
        let _ = self.repo.unload(name, None);
        if let Some(log) = self.log.get() {
            log.set_rate(name, None);
        }
        lock(&self.managed).remove(name);
        lock(&self.failures).retain(|(n, _), _| n != name);
    }

    /// Loads a file as a version without routing traffic to it (unless the model is new); a model in an
    /// object store is fetched into the model cache first. Blocking work (tract optimises ONNX graphs)
    /// runs off the async workers.
    async fn load(&self, name: &str, version: &str, path: &Path) -> Result<(), String> {
        let recorded = path.to_string_lossy().into_owned();
        let path = if is_remote_model(&recorded) {
            let cache = self
                .model_cache
                .get()
                .ok_or_else(|| format!("{recorded} is in an object store and this server keeps no model cache"))?;
            let local = cache.fetch(&recorded).await.map_err(|e| e.to_string())?.path;
            lock(&self.fetched).insert(recorded, local.clone());
            local
        } else {
            path.to_path_buf()
        };
        let (repo, name, version) = (self.repo.clone(), name.to_owned(), version.to_owned());
        tokio::task::spawn_blocking(move || {
            repo.load(&name, Some(&version), &path, false).map(|_| ()).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("loading task failed: {e}"))?
    }

    fn loaded_paths(&self, name: &str) -> HashMap<String, PathBuf> {
        self.repo.index().into_iter().filter(|s| s.model == name).map(|s| (s.version, s.path)).collect()
    }

    /// The wire form of a deployment with what is actually served.
    fn wire(&self, d: &DeploymentRecord) -> Value {
        let loaded = self.loaded_paths(&d.name);
        let failures = lock(&self.failures);
        let serving = self.repo.resolve(&d.name, None).ok().map(|v| v.version.clone());
        let versions: Vec<Value> = d
            .versions
            .iter()
            .map(|v| {
                let error = failures
                    .get(&(d.name.clone(), v.version.clone()))
                    .filter(|(p, _)| *p == v.path)
                    .map(|(_, m)| m.clone());
                json!({
                    "version": v.version,
                    "source": v.source,
                    "artifact_id": v.artifact_id,
                    "path": v.path,
                    "created_at": ts(Some(v.created_at)),
                    "loaded": loaded.get(&v.version) == Some(&self.served_path(&v.path)),
                    "error": error,
                })
            })
            .collect();
        let state = if serving.as_deref() == Some(d.default_version.as_str()) {
            "SERVING"
        } else if failures.contains_key(&(d.name.clone(), d.default_version.clone())) {
            "FAILED"
        } else {
            "PENDING"
        };
        json!({
            "name": d.name,
            "namespace": d.namespace,
            "default_version": d.default_version,
            "canary": d.canary,
            "log_sample": d.log_sample,
            "state": state,
            "serving_version": serving,
            "url": self.url.get().map(|u| format!("{u}/v2/models/{}", d.name)),
            "versions": versions,
            "created_at": ts(Some(d.created_at)),
            "updated_at": ts(Some(d.updated_at)),
        })
    }
}

/// Reconciles the served models with the store every [`POLL_INTERVAL`], forever (spawn it).
pub async fn watch(state: AppState) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = state.deployments.sync(state.store()).await {
            tracing::warn!(error = %e, "reconciling deployments with the store");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    source: Value,
    #[serde(default)]
    version: Option<String>,
    /// The namespace of a new deployment: default the token's own (none for the admin). A version added
    /// to an existing deployment stays in its namespace; naming another is a 400.
    #[serde(default)]
    namespace: Option<String>,
    /// Default true; a new deployment's first version is the default regardless.
    #[serde(default)]
    make_default: Option<bool>,
    /// Share of requests logged for monitoring (0-1; 0: off). Applies to the whole deployment.
    #[serde(default)]
    log_sample: Option<f64>,
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Json<Value>> {
    check_name("name", &body.name)?;
    if let Some(v) = &body.version {
        check_name("version", v)?;
    }
    check_log_sample(body.log_sample)?;
    // A registry version (`{"registered_model", "model_version"}`) deploys its model file; the caller must reach
    // the registered model (its file was checked to be in the artifact store when it was registered).
    if let (Some(model), Some(ns)) = (
        body.source.get("registered_model").and_then(Value::as_str),
        body.source.get("namespace").and_then(Value::as_str),
    ) {
        caller.check("registered model", model, ns)?;
    }
    let registry =
        crate::registry::deployment_source(s.store(), &body.source, caller.confined_to().unwrap_or("")).await?;
    let source = match &registry {
        Some(r) => {
            caller.check("registered model", &r.version, &r.namespace)?;
            r.source.clone()
        }
        None => ModelSource::from_json("source", &body.source)?,
    };
    let requested = body.namespace.as_deref().filter(|ns| !ns.is_empty());
    let live = &s.deployments;
    let _guard = live.lock.lock().await;
    let existing = s.store().find_deployment(&body.name).await?;
    let namespace = match &existing {
        Some(d) => {
            caller.check("deployment", &d.name, &d.namespace)?;
            if requested.is_some_and(|ns| ns != d.namespace) {
                return Err(ApiError::invalid(format!(
                    "namespace: deployment `{}` is in namespace `{}`; a new version stays there",
                    d.name, d.namespace
                )));
            }
            d.namespace.clone()
        }
        None => caller.namespace_for_new(requested)?,
    };
    if registry.is_none() || !matches!(source, ModelSource::Path { .. }) {
        authorize_source(&s, &caller, &source).await?;
    }
    let version = body.version.clone().unwrap_or_else(|| match &registry {
        Some(r) if check_name("version", &r.version).is_ok() => r.version.clone(),
        _ => next_version(existing.as_ref()),
    });
    if existing.as_ref().is_some_and(|d| d.version(&version).is_some()) {
        return Err(ApiError::AlreadyExists(format!("deployment `{}` already has a version `{version}`", body.name)));
    }
    let resolved = s.store().resolve_model_source(&source).await?;
    authorize_remote_model(&s, &caller, &resolved.path.to_string_lossy())?;
    // A model the repository extension loaded under this name is replaced by the deployment.
    if existing.is_none()
        && s.deployments.repo.versions(&body.name).is_ok()
        && !lock(&live.managed).contains(&body.name)
    {
        let _ = live.repo.unload(&body.name, None);
    }
    live.load(&body.name, &version, &resolved.path).await.map_err(|message| {
        ApiError::invalid(format!("source: {} is not a model this server can load: {message}", resolved.path.display()))
    })?;
    let make_default = existing.is_none() || body.make_default.unwrap_or(true);
    let new = NewDeploymentVersion {
        name: &body.name,
        namespace: &namespace,
        version: &version,
        resolved: &resolved,
        make_default,
        model_version_id: registry.as_ref().map(|r| r.version_id),
    };
    let mut record = match s.store().add_deployment_version(&new).await {
        Ok(record) => record,
        Err(e) => {
            // Nothing was written: take the loaded file back out.
            let _ = live.repo.unload(&body.name, Some(&version));
            return Err(e.into());
        }
    };
    if body.log_sample.is_some() {
        record = s.store().set_deployment_log_sample(&body.name, body.log_sample).await?;
    }
    live.reconcile(&record).await;
    Ok(Json(live.wire(&record)))
}

/// Who may deploy from a source: an artifact or task output of a run the caller may reach; a file path
/// only with the admin token (a namespace token must not make the server open files of its choosing).
async fn authorize_source(s: &AppState, caller: &Caller, source: &ModelSource) -> ApiResult<()> {
    match source {
        ModelSource::Path { path } => match caller.confined_to() {
            Some(mine) => Err(ApiError::PermissionDenied(format!(
                "permission denied: source.path `{path}`: this token is for namespace `{mine}`; deploy an artifact or a run's output (paths need the admin token)"
            ))),
            None => Ok(()),
        },
        ModelSource::Artifact { artifact_id } => {
            let artifact = s.store().get_artifact(artifact_id).await?;
            caller.run(s, &artifact.run_id).await.map(|_| ())
        }
        ModelSource::TaskOutput { run_id, .. } => {
            let run_id = s.store().resolve_run_id(run_id).await?;
            caller.run(s, &run_id).await.map(|_| ())
        }
    }
}

/// A model in an object store is fetched with the server's credentials: a namespace token may deploy one only
/// under the server's artifact root (where its runs' outputs are), not from any bucket those credentials reach.
fn authorize_remote_model(s: &AppState, caller: &Caller, uri: &str) -> ApiResult<()> {
    match caller.confined_to() {
        Some(mine) if is_remote_model(uri) && s.engine.artifacts().relative(uri).is_err() => {
            Err(ApiError::PermissionDenied(format!(
                "permission denied: `{uri}` is outside the server's artifact root {}; this token is for namespace \
                 `{mine}` (models elsewhere need the admin token)",
                s.engine.artifacts().root_uri()
            )))
        }
        _ => Ok(()),
    }
}

/// A deployment the caller may reach (403 for another namespace's).
async fn reachable(s: &AppState, caller: &Caller, name: &str) -> ApiResult<DeploymentRecord> {
    let d = s.store().get_deployment(name).await?;
    caller.check("deployment", name, &d.namespace)?;
    Ok(d)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    #[serde(default)]
    namespace: Option<String>,
}

async fn list(State(s): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<ListParams>) -> ApiResult<Json<Value>> {
    let namespace = caller.list_namespace(q.namespace.as_deref())?;
    let records = s.store().list_deployments(namespace).await?;
    let items: Vec<Value> = records.iter().map(|d| s.deployments.wire(d)).collect();
    Ok(Json(json!({"deployments": items, "total_size": items.len()})))
}

async fn get_one(State(s): State<AppState>, caller: Caller, ApiPath(name): ApiPath<String>) -> ApiResult<Json<Value>> {
    Ok(Json(s.deployments.wire(&reachable(&s, &caller, &name).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    default_version: Option<String>,
    /// Absent: unchanged; `null`: removed.
    #[serde(default, deserialize_with = "present")]
    canary: Option<Option<Canary>>,
    /// Share of requests logged for monitoring (0-1); 0 or `null` stops logging, absent leaves it.
    #[serde(default, deserialize_with = "present_number")]
    log_sample: Option<Option<f64>>,
}

/// [`present`] for a number.
fn present_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`, by `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Canary>>, D::Error> {
    Option::<Canary>::deserialize(d).map(Some)
}

async fn update(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> ApiResult<Json<Value>> {
    if let Some(share) = body.log_sample {
        check_log_sample(share)?;
    }
    let update = TrafficUpdate { default_version: body.default_version, canary: body.canary };
    let live = &s.deployments;
    let _guard = live.lock.lock().await;
    let current = reachable(&s, &caller, &name).await?;
    if let Some(share) = body.log_sample {
        if update.default_version.is_none() && update.canary.is_none() {
            let record = s.store().set_deployment_log_sample(&name, share).await?;
            live.reconcile(&record).await;
            return Ok(Json(live.wire(&record)));
        }
    }
    let (default, canary) = apply_traffic(&current, &update)?;
    // Only loaded versions may take traffic: check before writing anything.
    let loaded = live.loaded_paths(&name);
    for (field, version) in
        [("default_version", Some(&default)), ("canary.version", canary.as_ref().map(|c| &c.version))]
    {
        let Some(version) = version else { continue };
        if !loaded.contains_key(version) {
            let why = lock(&live.failures)
                .get(&(name.clone(), version.clone()))
                .map(|(_, m)| format!(": {m}"))
                .unwrap_or_default();
            return Err(ApiError::FailedPrecondition(format!(
                "{field}: version `{version}` of deployment `{name}` is not loaded{why}"
            )));
        }
    }
    let mut record = s.store().update_deployment_traffic(&name, &update).await?;
    if let Some(share) = body.log_sample {
        record = s.store().set_deployment_log_sample(&name, share).await?;
    }
    live.reconcile(&record).await;
    Ok(Json(live.wire(&record)))
}

async fn delete(State(s): State<AppState>, caller: Caller, ApiPath(name): ApiPath<String>) -> ApiResult<Json<Value>> {
    let _guard = s.deployments.lock.lock().await;
    reachable(&s, &caller, &name).await?;
    s.store().delete_deployment(&name, None).await?;
    s.deployments.forget(&name);
    Ok(Json(json!({})))
}

async fn delete_version(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let live = &s.deployments;
    let _guard = live.lock.lock().await;
    reachable(&s, &caller, &name).await?;
    match s.store().delete_deployment(&name, Some(&version)).await? {
        Some(record) => {
            live.reconcile(&record).await;
            Ok(Json(live.wire(&record)))
        }
        None => {
            live.forget(&name);
            Ok(Json(json!({})))
        }
    }
}

/// Access control of the serving port under `secondrow server`, the API's rules applied to models:
/// while auth is enforced, a model's inference and metadata need the admin token or the token of the
/// deployment's namespace (a model loaded through the repository extension, outside deployments, is the
/// admin's), listing needs any valid token, and `/v2/repository/*` (load, unload, traffic, index) needs
/// the admin token. With auth off everyone may call, as on the API port.
pub struct ServingAccess {
    state: AppState,
    /// When the store was last seen holding no API token (epoch ms; 0: never): a negative answer is
    /// reused for a second, so an open server does not query the store on every inference.
    open_checked_at: std::sync::atomic::AtomicI64,
}

impl ServingAccess {
    pub fn new(state: AppState) -> ServingAccess {
        ServingAccess { state, open_checked_at: std::sync::atomic::AtomicI64::new(0) }
    }

    async fn enforced(&self) -> Result<bool, ServeError> {
        use std::sync::atomic::Ordering;
        let now = chrono::Utc::now().timestamp_millis();
        if now - self.open_checked_at.load(Ordering::Relaxed) < 1000 {
            return Ok(false);
        }
        let enforced = self
            .state
            .auth
            .enforced(self.state.store())
            .await
            .map_err(|e| ServeError::Internal(format!("reading API tokens: {e}")))?;
        if !enforced {
            self.open_checked_at.store(now, Ordering::Relaxed);
        }
        Ok(enforced)
    }

    async fn check(&self, token: Option<&str>, access: Access<'_>) -> Result<(), ServeError> {
        if let Some(token) = token {
            if self.state.auth.is_admin(token) {
                return Ok(());
            }
            let found = self
                .state
                .store()
                .find_api_token(token)
                .await
                .map_err(|e| ServeError::Internal(format!("reading API tokens: {e}")))?;
            if let Some(found) = found {
                return match access {
                    Access::Manage => Err(ServeError::PermissionDenied(format!(
                        "permission denied: this token is for namespace `{}`; managing the model repository needs the admin token",
                        found.namespace
                    ))),
                    Access::Read => Ok(()),
                    Access::Model(name) => self.model_in(name, &found.namespace).await,
                };
            }
        }
        if !self.enforced().await? {
            return Ok(());
        }
        Err(ServeError::Unauthenticated(
            if token.is_some() {
                secondrow_serve::http::access::INVALID
            } else {
                secondrow_serve::http::access::MISSING
            }
            .to_owned(),
        ))
    }
}

impl ServingAccess {
    /// Whether model `name` is a deployment of `namespace` (403 otherwise, the same for a model of another
    /// namespace, one outside deployments and one that does not exist, so names of others are not probed).
    async fn model_in(&self, name: &str, namespace: &str) -> Result<(), ServeError> {
        let found = self
            .state
            .store()
            .find_deployment(name)
            .await
            .map_err(|e| ServeError::Internal(format!("reading deployments: {e}")))?;
        if found.is_some_and(|d| d.namespace == namespace) {
            return Ok(());
        }
        Err(ServeError::PermissionDenied(format!(
            "permission denied: this token is for namespace `{namespace}`, and `{name}` is not one of its deployments"
        )))
    }
}

impl Authorizer for ServingAccess {
    fn authorize<'a>(&'a self, token: Option<&'a str>, access: Access<'a>) -> AuthFuture<'a> {
        Box::pin(self.check(token, access))
    }
}
