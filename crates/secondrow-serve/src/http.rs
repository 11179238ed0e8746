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

// ---------------------------------------------------------------------------------------------- V2

fn metadata(state: &AppState, name: &str, version: Option<&str>) -> Result<Response> {
    let loaded = state.repo.resolve(name, version)?;
    let specs = |specs: &[crate::tensor::TensorSpec]| -> Vec<Value> {
        specs.iter().map(|s| json!({"name": s.name, "datatype": s.datatype.name(), "shape": s.shape})).collect()
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({"name": name, "versions": state.repo.versions(name)?, "platform": loaded.runtime.platform(),
                "inputs": specs(loaded.runtime.inputs()), "outputs": specs(loaded.runtime.outputs())}),
    ))
}

async fn model_metadata(State(state): AppStateRef, Path(name): Path<String>) -> Result<Response> {
    metadata(&state, &name, None)
}

async fn version_metadata(
    State(state): AppStateRef,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response> {
    metadata(&state, &name, Some(&version))
}

async fn model_ready(State(state): AppStateRef, Path(name): Path<String>) -> Result<Response> {
    state.repo.resolve(&name, None)?;
    Ok(json_response(StatusCode::OK, &json!({"name": name, "ready": true})))
}

async fn version_ready(State(state): AppStateRef, Path((name, version)): Path<(String, String)>) -> Result<Response> {
    state.repo.resolve(&name, Some(&version))?;
    Ok(json_response(StatusCode::OK, &json!({"name": name, "version": version, "ready": true})))
}

async fn infer(State(state): AppStateRef, Path(name): Path<String>, request: Request) -> Result<Response> {
    let (parts, body) = request.into_parts();
    infer_common(&state, &name, None, &parts.headers, body).await
}

async fn version_infer(
    State(state): AppStateRef,
    Path((name, version)): Path<(String, String)>,
    request: Request,
) -> Result<Response> {
    let (parts, body) = request.into_parts();
    infer_common(&state, &name, Some(&version), &parts.headers, body).await
}

/// A requested output: its name and whether it goes back as binary.
struct RequestedOutput {
    name: String,
    binary: Option<bool>,
}

/// A decoded V2 inference request.
struct InferRequest {
    id: Option<String>,
    inputs: Vec<Tensor>,
    outputs: Option<Vec<RequestedOutput>>,
    binary_output: bool,
}

async fn infer_common(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    // Unknown model or version is a 404 before the body is looked at.
    state.repo.resolve(name, version)?;
    let body = read_body(state, headers, body).await?;
    let request = parse_infer_request(headers, &body)?;
    let result = state.repo.infer(name, version, request.inputs).await?;
    build_infer_response(name, &result.version, request.id, request.outputs, request.binary_output, result.outputs)
}

fn parse_infer_request(headers: &HeaderMap, body: &[u8]) -> Result<InferRequest> {
    let header_length =
        match headers.get(HEADER_LENGTH) {
            None => None,
            Some(v) => Some(
                v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()).filter(|&n| n <= body.len()).ok_or_else(
                    || Error::invalid(format!("header `{HEADER_LENGTH}` must be a length within the body")),
                )?,
            ),
        };
    let (json_part, binary) = match header_length {
        Some(n) => (&body[..n], &body[n..]),
        None => (body, &body[body.len()..]),
    };
    if let Some(request) = parse_infer_typed(json_part, binary) {
        return request;
    }
    parse_infer_value(headers, header_length, json_part, binary)
}

/// The V2 request as typed structs, borrowing from the body: the fast path. It answers `None` for
/// anything it does not take as is (a field of an unexpected type, an unknown datatype, a missing
/// field); the `Value`-based parser then reads the body again and names the problem.
#[derive(Deserialize)]
struct WireRequest<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    parameters: Option<WireParameters>,
    #[serde(borrow)]
    inputs: Vec<WireInput<'a>>,
    #[serde(default, borrow)]
    outputs: Option<Vec<WireOutput<'a>>>,
}

#[derive(Deserialize)]
struct WireInput<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    shape: Vec<usize>,
    #[serde(borrow)]
    datatype: Cow<'a, str>,
    #[serde(default)]
    parameters: Option<WireParameters>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireOutput<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    parameters: Option<WireParameters>,
}

/// The request, input and output parameters this server reads; others are ignored.
#[derive(Deserialize, Default)]
struct WireParameters {
    #[serde(default)]
    binary_data_output: Option<bool>,
    #[serde(default)]
    binary_data_size: Option<usize>,
    #[serde(default)]
    binary_data: Option<bool>,
}

fn parse_infer_typed(json_part: &[u8], mut binary: &[u8]) -> Option<Result<InferRequest>> {
    let wire: WireRequest = serde_json::from_slice(json_part).ok()?;
    if wire.inputs.is_empty() {
        return None;
    }
    let mut specs = Vec::with_capacity(wire.inputs.len());
    for input in &wire.inputs {
        specs.push(Datatype::parse(&input.datatype)?);
        let size = input.parameters.as_ref().and_then(|p| p.binary_data_size);
        if size.is_none() && input.data.is_none() {
            return None;
        }
    }
    let binary_output = wire.parameters.as_ref().and_then(|p| p.binary_data_output).unwrap_or(false);
    let mut inputs = Vec::with_capacity(wire.inputs.len());
    for (input, datatype) in wire.inputs.into_iter().zip(specs) {
        let name = input.name.into_owned();
        let size = input.parameters.as_ref().and_then(|p| p.binary_data_size);
        let decoded = match (size, input.data) {
            (Some(size), _) => {
                if size > binary.len() {
                    return Some(Err(Error::invalid(format!(
                        "input `{name}`: binary_data_size {size} is more than the {} bytes left in the body",
                        binary.len()
                    ))));
                }
                let (mine, rest) = binary.split_at(size);
                binary = rest;
                tensor::decode_binary(&name, datatype, &input.shape, mine)
            }
            (None, Some(raw)) => decode_json_raw(&name, datatype, &input.shape, raw),
            (None, None) => return None,
        };
        match decoded {
            Ok(data) => inputs.push(Tensor { name, shape: input.shape, data }),
            Err(e) => return Some(Err(e)),
        }
    }
    if !binary.is_empty() {
        return Some(Err(Error::invalid(format!(
            "{} bytes of binary data are not claimed by any input",
            binary.len()
        ))));
    }
    let outputs = wire.outputs.map(|outputs| {
        outputs
            .into_iter()
            .map(|o| RequestedOutput { name: o.name.into_owned(), binary: o.parameters.and_then(|p| p.binary_data) })
            .collect()
    });
    Some(Ok(InferRequest { id: wire.id.map(Cow::into_owned), inputs, outputs, binary_output }))
}

/// Decodes JSON `data`: flat lists of the common numeric types straight into their vectors, anything
/// else (nested lists, "NaN" strings, other datatypes) through [`tensor::decode_json`].
fn decode_json_raw(name: &str, datatype: Datatype, shape: &[usize], raw: &RawValue) -> Result<TensorData> {
    let text = raw.get();
    let fast = match datatype {
        Datatype::Fp32 => serde_json::from_str::<Vec<f32>>(text).ok().map(TensorData::Fp32),
        Datatype::Fp64 => serde_json::from_str::<Vec<f64>>(text).ok().map(TensorData::Fp64),
        Datatype::Int64 => serde_json::from_str::<Vec<i64>>(text).ok().map(TensorData::Int64),
        Datatype::Int32 => serde_json::from_str::<Vec<i32>>(text).ok().map(TensorData::Int32),
        _ => None,
    };
    match fast {
        Some(data) if tensor::element_count(shape) == Some(data.len()) => Ok(data),
        _ => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| Error::invalid(format!("input `{name}`: `data` is not valid JSON: {e}")))?;
            tensor::decode_json(name, datatype, shape, &value)
        }
    }
}

/// The V2 request read through a `serde_json::Value`: slower, and precise about what is wrong.
fn parse_infer_value(
    headers: &HeaderMap,
    header_length: Option<usize>,
    json_part: &[u8],
    mut binary: &[u8],
) -> Result<InferRequest> {
    let mut object = parse_json_object(json_part).map_err(|e| {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
        if header_length.is_none() && !is_json {
            Error::invalid(format!("{e} (binary tensor requests need the `{HEADER_LENGTH}` header)"))
        } else {
            e
        }
    })?;
    let id = match object.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => return Err(Error::invalid(format!("`id` must be a string, got {other}"))),
    };
    let binary_output = bool_param(object.get("parameters"), "binary_data_output")?.unwrap_or(false);
    let inputs_json = match object.remove("inputs") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) => return Err(Error::invalid("`inputs` is empty")),
        Some(_) => return Err(Error::invalid("`inputs` must be a list")),
        None => return Err(Error::invalid("missing `inputs`")),
    };
    let mut inputs = Vec::with_capacity(inputs_json.len());
    for (i, item) in inputs_json.into_iter().enumerate() {
        let Value::Object(mut item) = item else {
            return Err(Error::invalid(format!("inputs[{i}] must be an object")));
        };
        let name = match item.remove("name") {
            Some(Value::String(s)) => s,
            _ => return Err(Error::invalid(format!("inputs[{i}]: missing string `name`"))),
        };
        let shape = match item.get("shape") {
            Some(Value::Array(dims)) => dims
                .iter()
                .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| {
                    Error::invalid(format!("input `{name}`: `shape` must be a list of non-negative integers"))
                })?,
            _ => return Err(Error::invalid(format!("input `{name}`: missing `shape`"))),
        };
        let datatype = match item.get("datatype") {
            Some(Value::String(s)) => {
                Datatype::parse(s).ok_or_else(|| Error::invalid(format!("input `{name}`: unknown datatype `{s}`")))?
            }
            _ => return Err(Error::invalid(format!("input `{name}`: missing `datatype`"))),
        };
        let binary_size = int_param(item.get("parameters"), "binary_data_size")
            .map_err(|e| Error::invalid(format!("input `{name}`: {e}")))?;
        let data = match binary_size {
            Some(size) => {
                if size > binary.len() {
                    return Err(Error::invalid(format!(
                        "input `{name}`: binary_data_size {size} is more than the {} bytes left in the body",
                        binary.len()
                    )));
                }
                let (mine, rest) = binary.split_at(size);
                binary = rest;
                tensor::decode_binary(&name, datatype, &shape, mine)?
            }
            None => match item.get("data") {
                Some(data) => tensor::decode_json(&name, datatype, &shape, data)?,
                None => return Err(Error::invalid(format!("input `{name}`: missing `data`"))),
            },
        };
        inputs.push(Tensor { name, shape, data });
    }
    if !binary.is_empty() {
        return Err(Error::invalid(format!("{} bytes of binary data are not claimed by any input", binary.len())));
    }
    let outputs = match object.remove("outputs") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let name = item
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| Error::invalid(format!("outputs[{i}]: missing string `name`")))?
                        .to_owned();
                    let binary = bool_param(item.get("parameters"), "binary_data")?;
                    Ok(RequestedOutput { name, binary })
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(_) => return Err(Error::invalid("`outputs` must be a list")),
    };
    Ok(InferRequest { id, inputs, outputs, binary_output })
}

fn bool_param(parameters: Option<&Value>, key: &str) -> Result<Option<bool>> {
    match parameters.and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(Error::invalid(format!("parameter `{key}` must be a boolean, got {other}"))),
    }
}

fn int_param(parameters: Option<&Value>, key: &str) -> Result<Option<usize>> {
    match parameters.and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("parameter `{key}` must be a non-negative integer, got {v}"))),
    }
}

fn build_infer_response(
    model: &str,
    version: &str,
    id: Option<String>,
    requested: Option<Vec<RequestedOutput>>,
    binary_output: bool,
    outputs: Vec<Tensor>,
) -> Result<Response> {
    let selected: Vec<(Tensor, bool)> = match requested {
        None => outputs.into_iter().map(|t| (t, binary_output)).collect(),
        Some(requested) => {
            let mut outputs: Vec<Option<Tensor>> = outputs.into_iter().map(Some).collect();
            let mut selected = Vec::with_capacity(requested.len());
            for r in requested {
                let position = outputs.iter().position(|o| o.as_ref().is_some_and(|t| t.name == r.name));
                let tensor = position.and_then(|i| outputs[i].take()).ok_or_else(|| {
                    Error::invalid(format!("model `{model}` has no output `{}` (or it was requested twice)", r.name))
                })?;
                selected.push((tensor, r.binary.unwrap_or(binary_output)));
            }
            selected
        }
    };
    let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut binary_tail: Vec<u8> = Vec::new();
    let elements: usize = selected.iter().map(|(t, binary)| if *binary { 0 } else { t.data.len() }).sum();
    let mut bytes = Vec::with_capacity(128 + model.len() + id.len() + 96 * selected.len() + 24 * elements);
    bytes.extend_from_slice(b"{\"model_name\":");
    write_json(&mut bytes, model);
    bytes.extend_from_slice(b",\"model_version\":");
    write_json(&mut bytes, version);
    bytes.extend_from_slice(b",\"id\":");
    write_json(&mut bytes, &id);
    bytes.extend_from_slice(b",\"outputs\":[");
    for (i, (t, binary)) in selected.iter().enumerate() {
        if i > 0 {
            bytes.push(b',');
        }
        bytes.extend_from_slice(b"{\"name\":");
        write_json(&mut bytes, &t.name);
        bytes.extend_from_slice(b",\"datatype\":\"");
        bytes.extend_from_slice(t.datatype().name().as_bytes());
        bytes.extend_from_slice(b"\",\"shape\":");
        write_json(&mut bytes, &t.shape);
        if *binary {
            let start = binary_tail.len();
            t.write_binary(&mut binary_tail);
            bytes.extend_from_slice(b",\"parameters\":{\"binary_data_size\":");
            write_json(&mut bytes, &(binary_tail.len() - start));
            bytes.push(b'}');
        } else {
            bytes.extend_from_slice(b",\"data\":");
            t.write_data_json(&mut bytes);
        }
        bytes.push(b'}');
    }
    bytes.extend_from_slice(b"]}");
    if binary_tail.is_empty() {
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes)
            .into_response());
    }
    let json_length = bytes.len();
    bytes.extend_from_slice(&binary_tail);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
            (header::HeaderName::from_static(HEADER_LENGTH), HeaderValue::from(json_length)),
        ],
        bytes,
    )
        .into_response())
}

/// Appends `value` as JSON (writing to a `Vec` cannot fail, nor can these plain values).
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(out, value);
}

// ---------------------------------------------------------------------------------------------- V1

/// `GET /v1/models/NAME`.
async fn v1_model_ready(State(state): AppStateRef, Path(name): Path<String>) -> Result<Response> {
    state.repo.resolve(&name, None)?;
    Ok(json_response(StatusCode::OK, &json!({"name": name, "ready": true})))
}

/// `POST /v1/models/NAME:predict` (and `:explain`, which has no explainer here).
async fn v1_predict(State(state): AppStateRef, Path(target): Path<String>, request: Request) -> Result<Response> {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let (name, verb) = match target.rsplit_once(':') {
        Some((name, verb)) => (name, verb),
        None => return Ok(error_response(StatusCode::METHOD_NOT_ALLOWED, "use POST /v1/models/NAME:predict")),
    };
    let loaded = state.repo.resolve(name, None)?;
    match verb {
        "predict" => {}
        "explain" => {
            return Ok(error_response(StatusCode::NOT_IMPLEMENTED, &format!("model `{name}` has no explainer")))
        }
        other => return Err(Error::ModelNotFound(format!("{name}:{other}"))),
    }
    let body = read_body(&state, &headers, body).await?;
    let inputs = v1_inputs(loaded.runtime.as_ref(), name, &body)?;
    let result = state.repo.infer(name, None, inputs).await?;
    let first = result
        .outputs
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal(format!("model `{name}` returned no output")))?;
    let predictions = v1_predictions(&first);
    let mut bytes = Vec::with_capacity(32 + 24 * first.data.len());
    bytes.extend_from_slice(b"{\"predictions\":");
    write_json(&mut bytes, &predictions);
    bytes.push(b'}');
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response())
}

/// The common V1 body, `{"instances": [[numbers], ...]}` (or `inputs`), read without a `Value`.
#[derive(Deserialize)]
struct V1NumericRows {
    #[serde(alias = "inputs")]
    instances: Vec<Vec<f64>>,
}

/// Turns a V1 body into the model's input tensors. An instance is a number or a (nested) list of
/// numbers (a model with one input), a string (one BYTES input), or an object: keyed by input name
/// (TensorFlow Serving's row format) or, for a model that knows its column names, by column (a
/// DataFrame row, as KServe's scikit-learn server reads it). All instances have one form.
fn v1_inputs(runtime: &dyn Runtime, model: &str, body: &[u8]) -> Result<Vec<Tensor>> {
    let specs = runtime.inputs();
    if let [spec] = specs {
        if let Ok(wire) = serde_json::from_slice::<V1NumericRows>(body) {
            let width = wire.instances.first().map_or(0, Vec::len);
            if !wire.instances.is_empty() && wire.instances.iter().all(|r| r.len() == width) {
                let values: Vec<f64> = wire.instances.iter().flatten().copied().collect();
                return Ok(vec![numeric_tensor(spec, vec![wire.instances.len(), width], values)]);
            }
        }
    }
    let mut object =
        parse_json_object(body).map_err(|e| Error::invalid(format!("unrecognized request format: {e}")))?;
    let rows = match object.remove("instances").or_else(|| object.remove("inputs")) {
        Some(Value::Array(rows)) => rows,
        Some(_) => return Err(Error::invalid("`instances` must be a list")),
        None => return Err(Error::invalid("unrecognized request format: expected `instances` or `inputs`")),
    };
    let kind = |v: &Value| match v {
        Value::Object(_) => "an object",
        Value::String(_) => "a string",
        _ => "a number or list",
    };
    if let Some(first) = rows.first() {
        if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| kind(r) != kind(first)) {
            return Err(Error::invalid(format!(
                "instances[{i}] is {}, but instances[0] is {}; every instance must have the same form",
                kind(row),
                kind(first)
            )));
        }
    }
    match rows.first() {
        Some(Value::Object(_)) => v1_object_rows(runtime, model, &rows),
        Some(Value::String(_)) => {
            let [spec] = specs else {
                return Err(Error::invalid(format!(
                    "string instances need a model with one input; `{model}` has {}",
                    specs.len()
                )));
            };
            let strings: Vec<Vec<u8>> =
                rows.iter().map(|r| r.as_str().unwrap_or_default().as_bytes().to_vec()).collect();
            string_tensor(spec, model, strings, "instances[0] is a string")
        }
        _ => {
            let [spec] = specs else {
                return Err(Error::invalid(format!(
                    "V1 predict with lists needs a model with one input; `{model}` has {} (send objects keyed by input name)",
                    specs.len()
                )));
            };
            let (row_shape, values) = collect_rows(rows.iter(), |i| format!("instances[{i}]"))?;
            let mut shape = vec![rows.len()];
            shape.extend(row_shape.unwrap_or_else(|| spec.shape.iter().skip(1).map(|&d| d.max(0) as usize).collect()));
            Ok(vec![numeric_tensor(spec, shape, values)])
        }
    }
}

/// Object instances: by input name, or by column for a model with named columns.
fn v1_object_rows(runtime: &dyn Runtime, model: &str, rows: &[Value]) -> Result<Vec<Tensor>> {
    let specs = runtime.inputs();
    let objects: Vec<&Map<String, Value>> = rows.iter().filter_map(Value::as_object).collect();
    let is_input = |key: &String| specs.iter().any(|s| s.name == *key);
    let text_columns = runtime.text_columns();
    let by_column = specs.len() == 1 + usize::from(!text_columns.is_empty()) && !objects[0].keys().all(is_input);
    if let (Some(columns), true) = (runtime.column_names(), by_column) {
        let numeric: Vec<&String> = columns.iter().filter(|c| !text_columns.contains(c)).collect();
        let mut values = Vec::with_capacity(objects.len() * numeric.len());
        let mut strings = Vec::with_capacity(objects.len() * text_columns.len());
        for (i, object) in objects.iter().enumerate() {
            if let Some(unknown) = object.keys().find(|k| !columns.contains(*k)) {
                return Err(Error::invalid(format!(
                    "instances[{i}]: unknown column `{unknown}` (model `{model}` takes the columns {})",
                    columns.join(", ")
                )));
            }
            let cell = |column: &String| {
                object.get(column).ok_or_else(|| Error::invalid(format!("instances[{i}]: missing column `{column}`")))
            };
            for column in &numeric {
                values.push(match cell(column)? {
                    Value::Null => f64::NAN,
                    Value::Bool(b) => f64::from(u8::from(*b)),
                    Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                    other => {
                        return Err(Error::invalid(format!(
                            "instances[{i}]: column `{column}` must be a number, got {other}"
                        )))
                    }
                });
            }
            for column in text_columns {
                strings.push(match cell(column)? {
                    Value::Null => Vec::new(),
                    Value::String(s) => s.as_bytes().to_vec(),
                    // A categorical column of numbers, in the form the training table printed it.
                    Value::Number(n) => n.to_string().into_bytes(),
                    other => {
                        return Err(Error::invalid(format!(
                            "instances[{i}]: column `{column}` must be a string, got {other}"
                        )))
                    }
                });
            }
        }
        let mut tensors = vec![numeric_tensor(&specs[0], vec![objects.len(), numeric.len()], values)];
        if let Some(spec) = specs.get(1) {
            tensors.push(Tensor {
                name: spec.name.clone(),
                shape: vec![objects.len(), text_columns.len()],
                data: TensorData::Bytes(strings),
            });
        }
        return Ok(tensors);
    }
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    for (i, object) in objects.iter().enumerate() {
        if let Some(unknown) = object.keys().find(|k| !is_input(*k)) {
            return Err(Error::invalid(format!(
                "instances[{i}]: unknown input `{unknown}` (model `{model}` takes {})",
                names.join(", ")
            )));
        }
    }
    let mut tensors = Vec::with_capacity(specs.len());
    for spec in specs {
        let mut column = Vec::with_capacity(objects.len());
        for (i, object) in objects.iter().enumerate() {
            column.push(
                object
                    .get(&spec.name)
                    .ok_or_else(|| Error::invalid(format!("instances[{i}]: missing input `{}`", spec.name)))?,
            );
        }
        if spec.datatype == Datatype::Bytes {
            let mut strings = Vec::with_capacity(column.len());
            for (i, value) in column.iter().enumerate() {
                match value {
                    Value::String(s) => strings.push(s.as_bytes().to_vec()),
                    other => {
                        return Err(Error::invalid(format!(
                            "instances[{i}].{}: expected a string, got {other}",
                            spec.name
                        )))
                    }
                }
            }
            tensors.extend(string_tensor(spec, model, strings, &format!("instances[0].{} is a string", spec.name))?);
        } else {
            let (row_shape, values) = collect_rows(column.into_iter(), |i| format!("instances[{i}].{}", spec.name))?;
            let mut shape = vec![objects.len()];
            match row_shape {
                // One scalar per row for a [N, 1] input (a DataFrame column).
                Some(dims) if dims.is_empty() && spec.shape.len() == 2 => shape.push(1),
                Some(dims) => shape.extend(dims),
                None => {}
            }
            tensors.push(numeric_tensor(spec, shape, values));
        }
    }
    Ok(tensors)
}

/// Flattens V1 rows (numbers or nested lists), checking that every row has the first one's shape.
fn collect_rows<'a>(
    rows: impl Iterator<Item = &'a Value>,
    label: impl Fn(usize) -> String,
) -> Result<(Option<Vec<usize>>, Vec<f64>)> {
    let mut row_shape: Option<Vec<usize>> = None;
    let mut values = Vec::new();
    for (i, row) in rows.enumerate() {
        let mut shape = Vec::new();
        let label = label(i);
        collect_row(row, &mut shape, 0, &mut values).map_err(|e| Error::invalid(format!("{label}: {e}")))?;
        match &row_shape {
            None => row_shape = Some(shape),
            Some(first) if *first != shape => {
                return Err(Error::invalid(format!(
                    "{label}: shape {shape:?} differs from the first instance's {first:?}"
                )))
            }
            Some(_) => {}
        }
    }
    Ok((row_shape, values))
}

/// A tensor of V1 numbers in the input's datatype (FP64 when the input is not numeric, which the
/// input check then reports).
fn numeric_tensor(spec: &crate::tensor::TensorSpec, shape: Vec<usize>, values: Vec<f64>) -> Tensor {
    let datatype = if spec.datatype.is_numeric() { spec.datatype } else { Datatype::Fp64 };
    let data = TensorData::Fp64(values).cast_numeric(datatype).unwrap_or(TensorData::Fp64(Vec::new()));
    Tensor { name: spec.name.clone(), shape, data }
}

/// A BYTES tensor of one string per row, shaped [N] or [N, 1] as the input is.
fn string_tensor(
    spec: &crate::tensor::TensorSpec,
    model: &str,
    strings: Vec<Vec<u8>>,
    what: &str,
) -> Result<Vec<Tensor>> {
    if spec.datatype != Datatype::Bytes {
        return Err(Error::invalid(format!(
            "{what}, but input `{}` of model `{model}` takes {} (send numbers)",
            spec.name,
            spec.datatype.name()
        )));
    }
    let mut shape = vec![strings.len()];
    if spec.shape.len() == 2 {
        shape.push(1);
    }
    Ok(vec![Tensor { name: spec.name.clone(), shape, data: TensorData::Bytes(strings) }])
}

/// Flattens one V1 instance (a number or nested lists of numbers), recording its shape.
fn collect_row(
    value: &Value,
    shape: &mut Vec<usize>,
    depth: usize,
    out: &mut Vec<f64>,
) -> std::result::Result<(), String> {
    match value {
        Value::Number(n) => {
            out.push(n.as_f64().ok_or("number out of range")?);
            Ok(())
        }
        Value::Bool(b) => {
            out.push(f64::from(u8::from(*b)));
            Ok(())
        }
        Value::Array(items) => {
            if shape.len() == depth {
                shape.push(items.len());
            } else if shape[depth] != items.len() {
                return Err("ragged nested lists".into());
            }
            items.iter().try_for_each(|item| collect_row(item, shape, depth + 1, out))
        }
        _ => Err("instances must be numbers or lists of numbers".into()),
    }
}

/// One prediction per row of the output: scalars for a [N] output, nested lists otherwise.
fn v1_predictions(output: &Tensor) -> Value {
    let flat = match &output.data {
        TensorData::Bytes(items) => items
            .iter()
            .map(|b| {
                let s = String::from_utf8_lossy(b);
                match s.parse::<i64>() {
                    Ok(n) => json!(n),
                    Err(_) => match s.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                        Some(n) => Value::Number(n),
                        None => Value::String(s.into_owned()),
                    },
                }
            })
            .collect(),
        _ => match output.data_json() {
            Value::Array(items) => items,
            other => vec![other],
        },
    };
    let rows = output.rows();
    if output.shape.len() <= 1 || rows == 0 {
        return Value::Array(flat);
    }
    let per_row = flat.len() / rows;
    let mut iter = flat.into_iter();
    Value::Array((0..rows).map(|_| nest(&mut iter, &output.shape[1..], per_row)).collect())
}

fn nest(iter: &mut impl Iterator<Item = Value>, dims: &[usize], count: usize) -> Value {
    match dims {
        [] | [_] => Value::Array(iter.take(count).collect()),
        [d, rest @ ..] => {
            let inner = if *d == 0 { 0 } else { count / d };
            Value::Array((0..*d).map(|_| nest(iter, rest, inner)).collect())
        }
    }
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
