//! The HTTP edge: KServe V1, Open Inference Protocol V2 (JSON and binary tensors), the model
//! repository extension, SecondRow's traffic call, and `/metrics`. It owns the wire formats and the one
//! table mapping [`ErrorKind`] to a status; everything else is in [`Repository`].

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::repository::Repository;
use crate::runtime::Runtime;
use crate::tensor::{self, Datatype, Tensor, TensorData};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub mod access;
pub mod listen;
mod v1;
mod v2;

pub use access::{Access, Authorizer, SingleToken};
pub use listen::{serve_router, ConnectionLimits};

use v1::*;
use v2::*;

/// Default request body limit: 64 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 << 20;
/// Default budget of request bodies held at once, all models together: one body of the default limit.
/// Decoding and predicting take several times a body's size, so this bounds the server's memory.
pub const DEFAULT_BODY_BUDGET: usize = 64 << 20;
/// How long a request waits for room in the body budget before it is answered 503.
const BUDGET_WAIT: Duration = Duration::from_secs(30);

const HEADER_LENGTH: &str = "inference-header-content-length";
/// The request id of a V1 request (V2 has `id` in the body): read from the request, and sent back when
/// the request was logged.
pub const REQUEST_ID: &str = "x-request-id";

/// Settings of the HTTP layer.
#[derive(Clone)]
pub struct HttpOptions {
    /// Largest accepted request body in bytes; larger ones get 413.
    pub body_limit: usize,
    /// Bytes of request bodies held at once (at least `body_limit`); a request waits for room (up to
    /// 30 s, then 503), its body still in the kernel's buffers.
    pub body_budget: usize,
    /// Who may call (None: everyone).
    pub auth: Option<Arc<dyn Authorizer>>,
    /// Header-read timeout and connection cap of the listener.
    pub connections: ConnectionLimits,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("body_limit", &self.body_limit)
            .field("body_budget", &self.body_budget)
            .field("auth", &self.auth.is_some())
            .field("connections", &self.connections)
            .finish()
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            body_limit: DEFAULT_BODY_LIMIT,
            body_budget: DEFAULT_BODY_BUDGET,
            auth: None,
            connections: ConnectionLimits::default(),
        }
    }
}

struct AppState {
    repo: Arc<Repository>,
    options: HttpOptions,
    /// The body budget in KiB permits.
    budget: Arc<Semaphore>,
    budget_kib: u32,
}

type AppStateRef = State<Arc<AppState>>;

/// The whole server as an axum router.
pub fn router(repo: Arc<Repository>, options: HttpOptions) -> Router {
    let budget_kib = u32::try_from(options.body_budget.max(options.body_limit).div_ceil(1024)).unwrap_or(u32::MAX);
    let auth = options.auth.clone();
    let state = Arc::new(AppState { repo, options, budget: Arc::new(Semaphore::new(budget_kib as usize)), budget_kib });
    let router = Router::new()
        .route("/", get(|| async { json_response(StatusCode::OK, &json!({"status": "alive"})) }))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{name}", get(v1_model_ready).post(v1_predict))
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(|| async { json_response(StatusCode::OK, &json!({"live": true})) }))
        .route("/v2/health/ready", get(|| async { json_response(StatusCode::OK, &json!({"ready": true})) }))
        .route("/v2/models", get(list_models))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(version_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(version_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(version_infer))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{name}/load", post(repository_load))
        .route("/v2/repository/models/{name}/unload", post(repository_unload))
        .route("/v2/repository/models/{name}/traffic", post(repository_traffic))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    let router = match auth {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(auth, access::authorize)),
        None => router,
    };
    router.layer(axum::middleware::from_fn(close_after_refusal))
}

/// A refusal that comes before the body is read (401, 403, 404, 405, 413, 503) of a request that may
/// carry one (anything but GET and HEAD) closes the connection: the client must not send its next
/// request behind the unread bytes. A 400 comes after the body was read and keeps the connection.
async fn close_after_refusal(req: axum::extract::Request, next: Next) -> Response {
    let may_have_body = !matches!(*req.method(), Method::GET | Method::HEAD);
    let mut resp = next.run(req).await;
    let refused_unread = matches!(
        resp.status(),
        StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::SERVICE_UNAVAILABLE
    );
    if may_have_body && refused_unread {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    repo: Arc<Repository>,
    options: HttpOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = options.connections.clone();
    serve_router(listener, router(repo, options), &limits, shutdown).await
}

/// The one mapping from error kind to HTTP status.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists => StatusCode::CONFLICT,
        ErrorKind::FailedPrecondition => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = status_of(self.kind());
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        error_response(status, &self.to_string())
    }
}

fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({"error": message}))
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error_response(StatusCode::NOT_FOUND, &format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, &format!("method {method} is not allowed on {}", uri.path()))
}

/// A request body read whole, holding its share of the body budget until dropped (after the answer
/// is built, so decoded inputs and outputs are covered too).
struct ReadBody {
    bytes: Bytes,
    _budget: OwnedSemaphorePermit,
}

impl std::ops::Deref for ReadBody {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads the body up to the limit, after reserving its size (the declared length, else the limit) in
/// the body budget.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<ReadBody> {
    let limit = state.options.body_limit;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Error::PayloadTooLarge { limit });
    }
    let kib = u32::try_from(declared.unwrap_or(limit).div_ceil(1024)).unwrap_or(u32::MAX).clamp(1, state.budget_kib);
    let budget = match tokio::time::timeout(BUDGET_WAIT, state.budget.clone().acquire_many_owned(kib)).await {
        Ok(Ok(permit)) => permit,
        _ => {
            return Err(Error::Overloaded(format!(
                "the server is busy: request bodies in flight fill the budget of {} MiB; retry later",
                state.budget_kib / 1024
            )))
        }
    };
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| Error::PayloadTooLarge { limit })?;
    Ok(ReadBody { bytes, _budget: budget })
}

fn parse_json_object(bytes: &[u8]) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::invalid("request body must be a JSON object")),
        Err(e) => Err(Error::invalid(format!("request body is not valid JSON: {e}"))),
    }
}

/// An optional JSON body (empty means an empty object).
fn parse_optional_object(bytes: &[u8]) -> Result<Map<String, Value>> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        Ok(Map::new())
    } else {
        parse_json_object(bytes)
    }
}

async fn list_models(State(state): AppStateRef) -> Response {
    json_response(StatusCode::OK, &json!({"models": state.repo.model_names()}))
}

async fn server_metadata() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"name": "secondrow", "version": env!("CARGO_PKG_VERSION"),
                "extensions": ["model_repository_extension", "binary_tensor_data"]}),
    )
}

async fn metrics(State(state): AppStateRef) -> Response {
    let mut text = state.repo.metrics().render();
    if let Some(observer) = state.repo.observer() {
        observer.render_metrics(&mut text);
    }
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))], text).into_response()
}

// ------------------------------------------------------------------------------------ repository

async fn repository_index(State(state): AppStateRef, headers: HeaderMap, body: Body) -> Result<Response> {
    let body = read_body(&state, &headers, body).await?;
    parse_optional_object(&body)?;
    let entries: Vec<Value> = state
        .repo
        .index()
        .into_iter()
        .map(|s| {
            json!({"name": s.model, "version": s.version, "state": "READY", "reason": "",
                   "default": s.is_default, "canary_percent": s.canary_percent})
        })
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(entries)))
}

fn parameters(object: &Map<String, Value>) -> Result<Map<String, Value>> {
    match object.get("parameters") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(p)) => Ok(p.clone()),
        Some(_) => Err(Error::invalid("`parameters` must be an object")),
    }
}

fn string_param(parameters: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match parameters.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(Error::invalid(format!("parameter `{key}` must be a string, got {other}"))),
    }
}

/// `POST /v2/repository/models/NAME/load`, body `{"parameters": {"path", "version", "default"}}`; without
/// a path the model's default version is reloaded from its file.
async fn repository_load(
    State(state): AppStateRef,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let body = read_body(&state, &headers, body).await?;
    let params = parameters(&parse_optional_object(&body)?)?;
    let mut version = string_param(&params, "version")?;
    let make_default = bool_param(Some(&Value::Object(params.clone())), "default")?.unwrap_or(true);
    let path = match string_param(&params, "path")? {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let current = state.repo.resolve(&name, version.as_deref())?;
            version = Some(current.version.clone());
            current.path.clone()
        }
    };
    let repo = state.repo.clone();
    let model = name.clone();
    let loaded = tokio::task::spawn_blocking(move || repo.load(&model, version.as_deref(), &path, make_default))
        .await
        .map_err(|e| Error::Internal(format!("load task failed: {e}")))?
        .map_err(|e| match e {
            // The runtime's words would tell a missing file from an unreadable or a malformed one, and so
            // whether a path exists: the caller gets one answer for all, the log the details.
            Error::Load { model, version, path, message } => {
                tracing::warn!(%model, %version, %path, %message, "loading a model from a requested path failed");
                Error::invalid(format!(
                    "model `{model}` version `{version}`: cannot load `{path}`: not a readable model file"
                ))
            }
            other => other,
        })?;
    Ok(json_response(StatusCode::OK, &json!({"name": name, "version": loaded, "load": true})))
}

/// `POST /v2/repository/models/NAME/unload`, body optionally `{"parameters": {"version": "2"}}`.
async fn repository_unload(
    State(state): AppStateRef,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let body = read_body(&state, &headers, body).await?;
    let params = parameters(&parse_optional_object(&body)?)?;
    let version = string_param(&params, "version")?;
    state.repo.unload(&name, version.as_deref())?;
    Ok(json_response(StatusCode::OK, &json!({"name": name, "unload": true})))
}

/// `POST /v2/repository/models/NAME/traffic` (SecondRow's own call), body
/// `{"default": "2", "canary": {"version": "3", "percent": 10}}`; `"canary": null` removes the canary.
async fn repository_traffic(
    State(state): AppStateRef,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let body = read_body(&state, &headers, body).await?;
    let object = parse_json_object(&body)?;
    let default = string_param(&object, "default")?;
    let canary = match object.get("canary") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Object(c)) => {
            let version = string_param(c, "version")?.ok_or_else(|| Error::invalid("`canary` needs a `version`"))?;
            let percent = c
                .get("percent")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| Error::invalid("`canary` needs an integer `percent`"))?;
            Some(Some((version, percent)))
        }
        Some(_) => return Err(Error::invalid("`canary` must be an object or null")),
    };
    state.repo.set_traffic(
        &name,
        default.as_deref(),
        canary.as_ref().map(|c| c.as_ref().map(|(v, p)| (v.as_str(), *p))),
    )?;
    let entries: Vec<Value> = state
        .repo
        .index()
        .into_iter()
        .filter(|s| s.model == name)
        .map(|s| json!({"version": s.version, "default": s.is_default, "canary_percent": s.canary_percent}))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"name": name, "versions": entries})))
}
