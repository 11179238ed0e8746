//! The HTTP edge: KServe V1, Open Inference Protocol V2 (JSON and binary tensors), the model
//! repository extension, SecondRow's traffic call, and `/metrics`. It owns the wire formats and the one
//! table mapping [`ErrorKind`] to a status; everything else is in [`Repository`].

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::repository::Repository;
use crate::runtime::Runtime;
use crate::tensor::{self, Datatype, Tensor, TensorData};

mod v1;
mod v2;

use v1::*;
use v2::*;

/// Default request body limit: 64 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 << 20;

const HEADER_LENGTH: &str = "inference-header-content-length";

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Largest accepted request body in bytes; larger ones get 413.
    pub body_limit: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions { body_limit: DEFAULT_BODY_LIMIT }
    }
}

struct AppState {
    repo: Arc<Repository>,
    options: HttpOptions,
}

type AppStateRef = State<Arc<AppState>>;

/// The whole server as an axum router.
pub fn router(repo: Arc<Repository>, options: HttpOptions) -> Router {
    let state = Arc::new(AppState { repo, options });
    Router::new()
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
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    repo: Arc<Repository>,
    options: HttpOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Responses are written whole; Nagle would only hold the last segment back.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(repo, options)).with_graceful_shutdown(shutdown).await
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

/// Reads the body up to the limit.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes> {
    let limit = state.options.body_limit;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Error::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| Error::PayloadTooLarge { limit })
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
    let text = state.repo.metrics().render();
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
        .map_err(|e| Error::Internal(format!("load task failed: {e}")))??;
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
