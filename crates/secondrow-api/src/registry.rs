//! The Kubeflow Model Registry REST API (`/api/model_registry/v1/…`, with `v1alpha3` as an alias), so that
//! the official `model-registry` Python client works unchanged. The served contract is written down in
//! `docs/model-registry.md`; the records live in `secondrow_store::registry`.
//!
//! Wire JSON is built here by hand: ids and times are decimal strings, names are camelCase, custom
//! properties are echoed as stored, and every error is the registry's `{"code", "message"}` body. A model
//! belongs to the caller's namespace (a namespace token's own; `""` for the admin and anonymous); names are
//! looked up there, ids are checked against it. Lists of a namespace token show its namespace only.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use secondrow_store::registry::{
    Lookup, ModelArtifact, ModelVersion, OrderBy, Page, RegisteredModel, RegistryError, ARCHIVED, MAX_ID,
};

use crate::auth::Caller;
use crate::error::{status_of, ApiError};
use crate::AppState;

/// The base path the 0.3.18 client calls, and the one the upstream OpenAPI document names.
pub const PREFIXES: &[&str] = &["/api/model_registry/v1", "/api/model_registry/v1alpha3"];
/// The `artifactType` of model artifacts (the discriminator of the client's artifact union).
pub const MODEL_ARTIFACT: &str = "model-artifact";
/// Largest page a listing returns.
const MAX_PAGE: i64 = 1000;
const DEFAULT_PAGE: i64 = 100;

/// A registry error: an [`ApiError`] sent as `{"code": "<status name>", "message": "…"}`.
#[derive(Debug)]
pub struct MrError(pub ApiError);

type MrResult<T> = Result<T, MrError>;

impl<E: Into<ApiError>> From<E> for MrError {
    fn from(e: E) -> MrError {
        MrError(e.into())
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        match e {
            RegistryError::Store(s) => s.into(),
            other => ApiError::from_kind(other.kind(), other.to_string()),
        }
    }
}

fn invalid(msg: impl Into<String>) -> MrError {
    MrError(ApiError::invalid(msg))
}

/// The registry's error body for `e` (also used by the auth middleware for registry paths).
pub fn error_response(e: ApiError) -> Response {
    let (status, _, name) = status_of(e.kind());
    let message = match &e {
        ApiError::Internal(detail) => {
            tracing::error!(error = %detail, "internal error");
            "internal error".to_owned()
        }
        other => other.to_string(),
    };
    (status, Json(json!({"code": name, "message": message}))).into_response()
}

impl IntoResponse for MrError {
    fn into_response(self) -> Response {
        error_response(self.0)
    }
}

/// Whether `path` is under one of the registry's prefixes.
pub fn is_registry_path(path: &str) -> bool {
    PREFIXES.iter().any(|p| path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/registered_models", get(list_models).post(create_model))
        .route("/registered_model", get(find_model))
        .route("/registered_models/{id}", get(get_model).patch(update_model))
        .route("/registered_models/{id}/versions", get(list_model_versions).post(create_model_version))
        .route("/model_versions", get(list_versions).post(create_version))
        .route("/model_version", get(find_version))
        .route("/model_versions/{id}", get(get_version).patch(update_version))
        .route("/model_versions/{id}/artifacts", get(list_version_artifacts).post(create_version_artifact))
        .route("/model_artifacts", get(list_artifacts).post(create_artifact))
        .route("/model_artifact", get(find_artifact))
        .route("/model_artifacts/{id}", get(get_artifact).patch(update_artifact))
        .fallback(|| async { MrError(ApiError::NotFound("no such model registry endpoint".into())) })
}

// ---------------------------------------------------------------- request parsing

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;
type IdPath = Result<Path<String>, PathRejection>;

fn params(q: Params) -> MrResult<HashMap<String, String>> {
    q.map(|Query(m)| m).map_err(|e| invalid(format!("query: {}", e.body_text())))
}

/// An id as the wire format writes it: `^[1-9][0-9]{0,8}$`.
fn parse_id(field: &str, s: &str) -> MrResult<i64> {
    let ok = (1..=9).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
    match s.parse::<i64>() {
        Ok(n) if ok && n <= MAX_ID => Ok(n),
        _ => Err(invalid(format!("{field}: `{}` is not an id (1 to 9 digits)", s.escape_debug()))),
    }
}

fn path_id(p: IdPath) -> MrResult<i64> {
    let Path(id) = p.map_err(|e| invalid(format!("path: {}", e.body_text())))?;
    parse_id("id", &id)
}

fn body(bytes: &Bytes) -> MrResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(invalid(format!("malformed JSON body: expected an object, got {}", kind_of(&other)))),
        Err(e) => Err(invalid(format!("malformed JSON body: {e}"))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Fields every object has, read-only ones ignored on input.
const READ_ONLY: &[&str] = &["id", "createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"];
/// Optional descriptive fields of registered models (strings, or lists of strings for the two lists).
const MODEL_EXTRA: &[&str] =
    &["readme", "maturity", "language", "tasks", "provider", "logo", "license", "licenseLink", "libraryName"];
/// Optional fields of model artifacts kept as given.
const ARTIFACT_EXTRA: &[&str] = &[
    "storageKey",
    "storagePath",
    "serviceAccountName",
    "modelSourceKind",
    "modelSourceClass",
    "modelSourceGroup",
    "modelSourceId",
    "modelSourceName",
];

/// A request body's fields, checked against what the resource accepts.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    fn new(map: Map<String, Value>, kind: &str, known: &[&str], extra: &[&str]) -> MrResult<Fields> {
        for key in map.keys() {
            if !(known.contains(&key.as_str()) || extra.contains(&key.as_str()) || READ_ONLY.contains(&key.as_str())) {
                return Err(invalid(format!("{kind}: unknown field `{}`", key.escape_debug())));
            }
        }
        Ok(Fields { map })
    }

    /// An optional string field (`null` counts as absent).
    fn string(&self, key: &str) -> MrResult<Option<String>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(format!("{key}: expected a string, got {}", kind_of(other)))),
        }
    }

    fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    /// The descriptive fields among `keys`: strings, or (for `language` and `tasks`) lists of strings.
    fn extra(&self, keys: &[&str], into: &mut Value) -> MrResult<()> {
        let Value::Object(target) = into else {
            *into = json!({});
            return self.extra(keys, into);
        };
        for key in keys {
            match self.map.get(*key) {
                None | Some(Value::Null) => {}
                Some(v @ Value::String(_)) => {
                    target.insert((*key).to_owned(), v.clone());
                }
                Some(v @ Value::Array(items)) if items.iter().all(Value::is_string) => {
                    target.insert((*key).to_owned(), v.clone());
                }
                Some(other) => return Err(invalid(format!("{key}: expected a string, got {}", kind_of(other)))),
            }
        }
        Ok(())
    }

    /// `customProperties`, checked (see [`check_properties`]), when present.
    fn properties(&self) -> MrResult<Option<Value>> {
        match self.map.get("customProperties") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => check_properties(v).map(Some),
        }
    }

    /// `name` on an update: absent, or the same as stored (names are immutable).
    fn same_name(&self, stored: &str) -> MrResult<()> {
        match self.string("name")? {
            Some(n) if n != stored => {
                Err(invalid(format!("name: `{}` cannot be changed (it is `{stored}`)", n.escape_debug())))
            }
            _ => Ok(()),
        }
    }
}

/// Checks a custom-properties map: each value an object tagged by `metadataType` with its value field.
fn check_properties(v: &Value) -> MrResult<Value> {
    let Value::Object(map) = v else {
        return Err(invalid(format!("customProperties: expected an object, got {}", kind_of(v))));
    };
    for (name, prop) in map {
        let bad = |why: &str| invalid(format!("customProperties.{}: {why}", name.escape_debug()));
        let Value::Object(p) = prop else { return Err(bad("expected an object with `metadataType`")) };
        let ty = p.get("metadataType").and_then(Value::as_str).ok_or_else(|| bad("`metadataType` is missing"))?;
        let ok = match ty {
            "MetadataStringValue" => p.get("string_value").is_some_and(Value::is_string),
            "MetadataDoubleValue" => p.get("double_value").is_some_and(Value::is_number),
            "MetadataIntValue" => p.get("int_value").and_then(Value::as_str).is_some_and(|s| {
                let digits = s.strip_prefix('-').unwrap_or(s);
                (1..=19).contains(&digits.len())
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && s.parse::<i64>().is_ok()
            }),
            "MetadataBoolValue" => p.get("bool_value").is_some_and(Value::is_boolean),
            "MetadataStructValue" => p.get("struct_value").is_some_and(Value::is_string),
            "MetadataProtoValue" => p.get("proto_value").is_some_and(Value::is_string),
            other => return Err(bad(&format!("unknown metadataType `{}`", other.escape_debug()))),
        };
        if !ok {
            return Err(bad(&format!("a {ty} needs its value field of the right type")));
        }
    }
    Ok(v.clone())
}

/// A page request from `pageSize`, `orderBy`, `sortOrder` and `nextPageToken` (an offset, opaque to
/// clients; empty means the first page, which the client's pager relies on).
fn page(q: &HashMap<String, String>) -> MrResult<Page> {
    let limit = match q.get("pageSize").map(String::as_str) {
        None | Some("") => DEFAULT_PAGE,
        Some(s) => parse_id("pageSize", s)?.min(MAX_PAGE),
    };
    let order = match q.get("orderBy").map(String::as_str) {
        None | Some("") | Some("ID") => OrderBy::Id,
        Some("CREATE_TIME") => OrderBy::CreateTime,
        Some("LAST_UPDATE_TIME") => OrderBy::LastUpdateTime,
        Some(other) => {
            return Err(invalid(format!(
                "orderBy: `{}` (expected CREATE_TIME, LAST_UPDATE_TIME or ID)",
                other.escape_debug()
            )))
        }
    };
    let descending = match q.get("sortOrder").map(String::as_str) {
        None | Some("") | Some("ASC") => false,
        Some("DESC") => true,
        Some(other) => return Err(invalid(format!("sortOrder: `{}` (expected ASC or DESC)", other.escape_debug()))),
    };
    let offset = match q.get("nextPageToken").map(String::as_str) {
        None | Some("") => 0,
        Some(t) => decode_token(t)
            .ok_or_else(|| invalid(format!("nextPageToken: `{}` is not a page token", t.escape_debug())))?,
    };
    // One more than asked, to know whether a next page exists.
    Ok(Page { order, descending, limit: limit + 1, offset })
}

fn encode_token(offset: i64) -> String {
    hex::encode(format!("offset:{offset}"))
}

fn decode_token(t: &str) -> Option<i64> {
    let text = String::from_utf8(hex::decode(t).ok()?).ok()?;
    text.strip_prefix("offset:")?.parse::<i64>().ok().filter(|n| *n >= 0)
}

/// The list body: `items`, `size`, `pageSize`, `nextPageToken` (`""` on the last page).
fn list_body(mut items: Vec<Value>, page: &Page) -> Json<Value> {
    let limit = page.limit - 1;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let token = if more { encode_token(page.offset + limit) } else { String::new() };
    Json(json!({"items": items, "size": items.len(), "pageSize": limit, "nextPageToken": token}))
}

/// The namespace a caller registers into and looks names up in.
fn home(caller: &Caller) -> String {
    caller.confined_to().unwrap_or("").to_owned()
}

/// A lookup by `name` or `externalId` (one of them required).
fn lookup(q: &HashMap<String, String>) -> MrResult<Lookup<'_>> {
    match (q.get("name").filter(|s| !s.is_empty()), q.get("externalId").filter(|s| !s.is_empty())) {
        (_, Some(x)) => Ok(Lookup::ExternalId(x)),
        (Some(n), None) => Ok(Lookup::Name(n)),
        (None, None) => Err(invalid("give `name` or `externalId`")),
    }
}

fn parent(q: &HashMap<String, String>) -> MrResult<Option<i64>> {
    q.get("parentResourceId").filter(|s| !s.is_empty()).map(|s| parse_id("parentResourceId", s)).transpose()
}

fn not_found(kind: &str, what: String) -> MrError {
    MrError(ApiError::NotFound(format!("{kind} {what} not found")))
}

// ---------------------------------------------------------------- wire JSON

fn common(
    id: i64,
    name: &str,
    description: &Option<String>,
    external_id: &Option<String>,
    props: &Value,
    created: i64,
    updated: i64,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(id.to_string()));
    m.insert("name".into(), json!(name));
    if let Some(d) = description {
        m.insert("description".into(), json!(d));
    }
    if let Some(x) = external_id {
        m.insert("externalId".into(), json!(x));
    }
    m.insert("customProperties".into(), if props.is_object() { props.clone() } else { json!({}) });
    m.insert("createTimeSinceEpoch".into(), json!(created.to_string()));
    m.insert("lastUpdateTimeSinceEpoch".into(), json!(updated.to_string()));
    m
}

fn merge_extra(m: &mut Map<String, Value>, extra: &Value) {
    if let Value::Object(e) = extra {
        for (k, v) in e {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

pub fn model_json(r: &RegisteredModel) -> Value {
    let mut m = common(r.id, &r.name, &r.description, &r.external_id, &r.custom_properties, r.created_at, r.updated_at);
    if let Some(o) = &r.owner {
        m.insert("owner".into(), json!(o));
    }
    m.insert("state".into(), json!(r.state));
    merge_extra(&mut m, &r.extra);
    Value::Object(m)
}

pub fn version_json(v: &ModelVersion) -> Value {
    let mut m = common(v.id, &v.name, &v.description, &v.external_id, &v.custom_properties, v.created_at, v.updated_at);
    m.insert("registeredModelId".into(), json!(v.registered_model_id.to_string()));
    if let Some(a) = &v.author {
        m.insert("author".into(), json!(a));
    }
    m.insert("state".into(), json!(v.state));
    merge_extra(&mut m, &v.extra);
    // SecondRow's own: where the version came from and where it is served (clients ignore unknown keys).
    m.insert("secondrow".into(), json!({"lineage": v.lineage, "deployments": v.deployments}));
    Value::Object(m)
}

pub fn artifact_json(a: &ModelArtifact) -> Value {
    let mut m = common(a.id, &a.name, &a.description, &a.external_id, &a.custom_properties, a.created_at, a.updated_at);
    m.insert("artifactType".into(), json!(MODEL_ARTIFACT));
    m.insert("uri".into(), json!(a.uri));
    m.insert("state".into(), json!(a.state));
    if let Some(f) = &a.model_format_name {
        m.insert("modelFormatName".into(), json!(f));
    }
    if let Some(f) = &a.model_format_version {
        m.insert("modelFormatVersion".into(), json!(f));
    }
    merge_extra(&mut m, &a.extra);
    Value::Object(m)
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

// ---------------------------------------------------------------- access

async fn model_for(s: &AppState, caller: &Caller, id: i64) -> MrResult<RegisteredModel> {
    let m = s.store().get_registered_model(id).await?;
    caller.check("registered model", &id.to_string(), &m.namespace)?;
    Ok(m)
}

async fn version_for(s: &AppState, caller: &Caller, id: i64) -> MrResult<ModelVersion> {
    let v = s.store().get_model_version(id).await?;
    caller.check("model version", &id.to_string(), &v.namespace)?;
    Ok(v)
}

async fn artifact_for(s: &AppState, caller: &Caller, id: i64) -> MrResult<ModelArtifact> {
    let a = s.store().get_model_artifact(id).await?;
    caller.check("model artifact", &id.to_string(), &a.namespace)?;
    Ok(a)
}

// ---------------------------------------------------------------- registered models

const MODEL_FIELDS: &[&str] = &["name", "description", "externalId", "customProperties", "owner", "state"];

fn apply_model(f: &Fields, m: &mut RegisteredModel) -> MrResult<()> {
    if f.has("description") {
        m.description = f.string("description")?;
    }
    if f.has("externalId") {
        m.external_id = f.string("externalId")?;
    }
    if f.has("owner") {
        m.owner = f.string("owner")?;
    }
    if let Some(state) = f.string("state")? {
        m.state = state;
    }
    if let Some(p) = f.properties()? {
        m.custom_properties = p;
    }
    f.extra(MODEL_EXTRA, &mut m.extra)
}

async fn list_models(State(s): State<AppState>, caller: Caller, q: Params) -> MrResult<Json<Value>> {
    let q = params(q)?;
    let page = page(&q)?;
    let ns = caller.list_namespace(None)?;
    let items = s.store().list_registered_models(ns, &page).await?;
    Ok(list_body(items.iter().map(model_json).collect(), &page))
}

async fn create_model(State(s): State<AppState>, caller: Caller, bytes: Bytes) -> MrResult<Response> {
    let f = Fields::new(body(&bytes)?, "registered model", MODEL_FIELDS, MODEL_EXTRA)?;
    let name = f.string("name")?.ok_or_else(|| invalid("name: required"))?;
    let mut m = RegisteredModel::new(&home(&caller), &name);
    apply_model(&f, &mut m)?;
    let m = s.store().create_registered_model(&m).await?;
    Ok(created(model_json(&m)))
}

async fn find_model(State(s): State<AppState>, caller: Caller, q: Params) -> MrResult<Json<Value>> {
    let q = params(q)?;
    let by = lookup(&q)?;
    let m = s.store().find_registered_model(&home(&caller), by).await?;
    m.map(|m| Json(model_json(&m))).ok_or_else(|| not_found("registered model", describe(by)))
}

fn describe(by: Lookup<'_>) -> String {
    match by {
        Lookup::Name(n) => format!("named `{n}`"),
        Lookup::ExternalId(x) => format!("with external id `{x}`"),
    }
}

async fn get_model(State(s): State<AppState>, caller: Caller, id: IdPath) -> MrResult<Json<Value>> {
    Ok(Json(model_json(&model_for(&s, &caller, path_id(id)?).await?)))
}

async fn update_model(State(s): State<AppState>, caller: Caller, id: IdPath, bytes: Bytes) -> MrResult<Json<Value>> {
    let id = path_id(id)?;
    let f = Fields::new(body(&bytes)?, "registered model", MODEL_FIELDS, MODEL_EXTRA)?;
    let mut m = model_for(&s, &caller, id).await?;
    f.same_name(&m.name)?;
    apply_model(&f, &mut m)?;
    Ok(Json(model_json(&s.store().update_registered_model(&m).await?)))
}

// ---------------------------------------------------------------- model versions

const VERSION_FIELDS: &[&str] =
    &["name", "description", "externalId", "customProperties", "author", "state", "registeredModelId"];

fn apply_version(f: &Fields, v: &mut ModelVersion) -> MrResult<()> {
    if f.has("description") {
        v.description = f.string("description")?;
    }
    if f.has("externalId") {
        v.external_id = f.string("externalId")?;
    }
    if f.has("author") {
        v.author = f.string("author")?;
    }
    if let Some(state) = f.string("state")? {
        v.state = state;
    }
    if let Some(p) = f.properties()? {
        v.custom_properties = p;
    }
    Ok(())
}

async fn new_version(s: &AppState, caller: &Caller, parent: Option<i64>, bytes: &Bytes) -> MrResult<Response> {
    let f = Fields::new(body(bytes)?, "model version", VERSION_FIELDS, &[])?;
    let name = f.string("name")?.ok_or_else(|| invalid("name: required"))?;
    let in_body = f.string("registeredModelId")?.map(|id| parse_id("registeredModelId", &id)).transpose()?;
    let model_id = match (parent, in_body) {
        (Some(p), Some(b)) if p != b => {
            return Err(invalid(format!("registeredModelId: `{b}` differs from the path's model `{p}`")))
        }
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => return Err(invalid("registeredModelId: required")),
    };
    let model = model_for(s, caller, model_id).await?;
    if model.state == ARCHIVED {
        return Err(MrError(ApiError::FailedPrecondition(format!("registered model `{}` is archived", model.name))));
    }
    let mut v = ModelVersion::new(model_id, &name);
    apply_version(&f, &mut v)?;
    let v = s.store().create_model_version(&v).await?;
    Ok(created(version_json(&v)))
}

async fn create_version(State(s): State<AppState>, caller: Caller, bytes: Bytes) -> MrResult<Response> {
    new_version(&s, &caller, None, &bytes).await
}

async fn create_model_version(
    State(s): State<AppState>,
    caller: Caller,
    id: IdPath,
    bytes: Bytes,
) -> MrResult<Response> {
    let id = path_id(id)?;
    new_version(&s, &caller, Some(id), &bytes).await
}

async fn list_versions(State(s): State<AppState>, caller: Caller, q: Params) -> MrResult<Json<Value>> {
    let q = params(q)?;
    let page = page(&q)?;
    let items = s.store().list_model_versions(caller.list_namespace(None)?, None, &page).await?;
    Ok(list_body(items.iter().map(version_json).collect(), &page))
}

async fn list_model_versions(
    State(s): State<AppState>,
    caller: Caller,
    id: IdPath,
    q: Params,
) -> MrResult<Json<Value>> {
    let id = path_id(id)?;
    let q = params(q)?;
    let page = page(&q)?;
    let model = model_for(&s, &caller, id).await?;
    let items = s.store().list_model_versions(Some(&model.namespace), Some(id), &page).await?;
    Ok(list_body(items.iter().map(version_json).collect(), &page))
}

async fn find_version(State(s): State<AppState>, caller: Caller, q: Params) -> MrResult<Json<Value>> {
    let q = params(q)?;
    let by = lookup(&q)?;
    let parent = parent(&q)?;
    if matches!(by, Lookup::Name(_)) && parent.is_none() {
        return Err(invalid("parentResourceId: required with `name` (the registered model's id)"));
    }
    let v = s.store().find_model_version(&home(&caller), parent, by).await?;
    v.map(|v| Json(version_json(&v))).ok_or_else(|| not_found("model version", describe(by)))
}

async fn get_version(State(s): State<AppState>, caller: Caller, id: IdPath) -> MrResult<Json<Value>> {
    Ok(Json(version_json(&version_for(&s, &caller, path_id(id)?).await?)))
}

async fn update_version(State(s): State<AppState>, caller: Caller, id: IdPath, bytes: Bytes) -> MrResult<Json<Value>> {
    let id = path_id(id)?;
    let f = Fields::new(body(&bytes)?, "model version", VERSION_FIELDS, &[])?;
    let mut v = version_for(&s, &caller, id).await?;
    f.same_name(&v.name)?;
    if let Some(rm) = f.string("registeredModelId")? {
        if parse_id("registeredModelId", &rm)? != v.registered_model_id {
            return Err(invalid("registeredModelId: a version cannot move to another model"));
        }
    }
    apply_version(&f, &mut v)?;
    Ok(Json(version_json(&s.store().update_model_version(&v).await?)))
}

// ---------------------------------------------------------------- model artifacts

const ARTIFACT_FIELDS: &[&str] = &[
    "name",
    "description",
    "externalId",
    "customProperties",
    "uri",
    "state",
    "modelFormatName",
    "modelFormatVersion",
    "artifactType",
];

/// Local URIs (absolute paths and `file://`) must lie under the artifact root; other schemes are kept.
fn check_uri(s: &AppState, uri: &str) -> MrResult<()> {
    Ok(check_local_uri(s.engine.artifacts(), uri)?)
}

fn apply_artifact(s: &AppState, f: &Fields, a: &mut ModelArtifact) -> MrResult<()> {
    match f.string("artifactType")? {
        None => {}
        Some(t) if t == MODEL_ARTIFACT => {}
        Some(t) => {
            return Err(invalid(format!("artifactType: `{}` (only `{MODEL_ARTIFACT}` is served)", t.escape_debug())))
        }
    }
    if f.has("description") {
        a.description = f.string("description")?;
    }
    if f.has("externalId") {
        a.external_id = f.string("externalId")?;
    }
    if let Some(uri) = f.string("uri")? {
        check_uri(s, &uri)?;
        a.uri = uri;
    }
    if let Some(state) = f.string("state")? {
        a.state = state;
    }
    if f.has("modelFormatName") {
        a.model_format_name = f.string("modelFormatName")?;
    }
    if f.has("modelFormatVersion") {
        a.model_format_version = f.string("modelFormatVersion")?;
    }
    if let Some(p) = f.properties()? {
        a.custom_properties = p;
    }
    f.extra(ARTIFACT_EXTRA, &mut a.extra)
}

async fn new_artifact(s: &AppState, caller: &Caller, version: Option<i64>, bytes: &Bytes) -> MrResult<Response> {
    let mut fields = ARTIFACT_FIELDS.to_vec();
    if version.is_none() {
        fields.push("modelVersionId");
    }
    let f = Fields::new(body(bytes)?, "model artifact", &fields, ARTIFACT_EXTRA)?;
    let version_id = match version {
        Some(v) => v,
        None => match f.string("modelVersionId")? {
            Some(v) => parse_id("modelVersionId", &v)?,
            None => return Err(invalid("modelVersionId: required (or POST to /model_versions/{id}/artifacts)")),
        },
    };
    let v = version_for(s, caller, version_id).await?;
    let name = f.string("name")?.unwrap_or_else(|| v.name.clone());
    if f.string("uri")?.is_none() {
        return Err(invalid("uri: required"));
    }
    let mut a = ModelArtifact::new(version_id, &name, "");
    apply_artifact(s, &f, &mut a)?;
    let a = s.store().create_model_artifact(&a).await?;
    Ok(created(artifact_json(&a)))
}

async fn create_version_artifact(
    State(s): State<AppState>,
    caller: Caller,
    id: IdPath,
    bytes: Bytes,
) -> MrResult<Response> {
    let id = path_id(id)?;
    new_artifact(&s, &caller, Some(id), &bytes).await
}

async fn create_artifact(State(s): State<AppState>, caller: Caller, bytes: Bytes) -> MrResult<Response> {
    new_artifact(&s, &caller, None, &bytes).await
}

fn artifact_filter(q: &HashMap<String, String>) -> MrResult<Option<Lookup<'_>>> {
    if let Some(t) = q.get("artifactType").filter(|t| !t.is_empty()) {
        if t != MODEL_ARTIFACT {
            return Err(invalid(format!("artifactType: `{}` (only `{MODEL_ARTIFACT}` is served)", t.escape_debug())));
        }
    }
    Ok(match (q.get("name").filter(|s| !s.is_empty()), q.get("externalId").filter(|s| !s.is_empty())) {
        (_, Some(x)) => Some(Lookup::ExternalId(x)),
        (Some(n), None) => Some(Lookup::Name(n)),
        (None, None) => None,
    })
}

async fn list_version_artifacts(
    State(s): State<AppState>,
    caller: Caller,
    id: IdPath,
    q: Params,
) -> MrResult<Json<Value>> {
    let id = path_id(id)?;
    let q = params(q)?;
    let page = page(&q)?;
    let v = version_for(&s, &caller, id).await?;
    let items = s.store().list_model_artifacts(Some(&v.namespace), Some(id), artifact_filter(&q)?, &page).await?;
    Ok(list_body(items.iter().map(artifact_json).collect(), &page))
}

async fn list_artifacts(State(s): State<AppState>, caller: Caller, q: Params) -> MrResult<Json<Value>> {
    let q = params(q)?;
    let page = page(&q)?;
    let items = s.store().list_model_artifacts(caller.list_namespace(None)?, None, None, &page).await?;
    Ok(list_body(items.iter().map(artifact_json).collect(), &page))
}

async fn find_artifact(State(s): State<AppState>, caller: Caller, q: Params) -> MrResult<Json<Value>> {
    let q = params(q)?;
    let by = lookup(&q)?;
    let parent = parent(&q)?;
    if matches!(by, Lookup::Name(_)) && parent.is_none() {
        return Err(invalid("parentResourceId: required with `name` (the model version's id)"));
    }
    let a = s.store().find_model_artifact(&home(&caller), parent, by).await?;
    a.map(|a| Json(artifact_json(&a))).ok_or_else(|| not_found("model artifact", describe(by)))
}

async fn get_artifact(State(s): State<AppState>, caller: Caller, id: IdPath) -> MrResult<Json<Value>> {
    Ok(Json(artifact_json(&artifact_for(&s, &caller, path_id(id)?).await?)))
}

async fn update_artifact(State(s): State<AppState>, caller: Caller, id: IdPath, bytes: Bytes) -> MrResult<Json<Value>> {
    let id = path_id(id)?;
    let f = Fields::new(body(&bytes)?, "model artifact", ARTIFACT_FIELDS, ARTIFACT_EXTRA)?;
    let mut a = artifact_for(&s, &caller, id).await?;
    f.same_name(&a.name)?;
    apply_artifact(&s, &f, &mut a)?;
    Ok(Json(artifact_json(&s.store().update_model_artifact(&a).await?)))
}

// ---------------------------------------------------------------- SecondRow's own: lineage, CLI, deployments

/// Where a version registered by SecondRow comes from.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum RegisterSource {
    /// A `system.Model` artifact of a run.
    Artifact { artifact_id: String },
    /// A run's task output (task by path, key or display name).
    TaskOutput { run_id: String, task: String, output: String },
    /// Any URI (local paths must lie under the artifact root); no lineage.
    Uri { uri: String },
}

/// A registration request: `secondrow models register`, `POST /apis/v2beta1/secondrow/models/{name}/versions`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct RegisterRequest {
    pub version: String,
    pub source: RegisterSource,
    #[serde(default)]
    pub model_format_name: Option<String>,
    #[serde(default)]
    pub model_format_version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
}

/// Registers version `req.version` of model `name` in `namespace` (the model is created when missing),
/// recording lineage (run, task, artifact and the task's metrics) for run sources. `may_read_run` says
/// whether the caller may read a run of the given namespace; a run it may not read is refused before
/// anything is written. Model, version and artifact are written in one transaction.
pub async fn register(
    store: &secondrow_store::Store,
    artifacts: &secondrow_store::ArtifactStore,
    namespace: &str,
    name: &str,
    req: &RegisterRequest,
    may_read_run: impl Fn(&str, &str) -> Result<(), ApiError>,
) -> Result<secondrow_store::registry::Registration, ApiError> {
    use secondrow_store::deployments::ModelSource;
    use secondrow_store::registry::Lineage;
    let (uri, lineage) = match &req.source {
        RegisterSource::Uri { uri } => {
            check_local_uri(artifacts, uri)?;
            (uri.clone(), None)
        }
        other => {
            let source = match other {
                RegisterSource::Artifact { artifact_id } => ModelSource::Artifact { artifact_id: artifact_id.clone() },
                RegisterSource::TaskOutput { run_id, task, output } => {
                    ModelSource::TaskOutput { run_id: run_id.clone(), task: task.clone(), output: output.clone() }
                }
                RegisterSource::Uri { .. } => unreachable_source()?,
            };
            let resolved = store.resolve_model_source(&source).await?;
            let artifact_id = resolved.artifact_id.clone().ok_or_else(|| ApiError::invalid("source: no artifact"))?;
            let artifact = store.get_artifact(&artifact_id).await?;
            let run = store.get_run(&artifact.run_id).await?;
            may_read_run(&run.id, &run.namespace)?;
            let task = match &artifact.task_id {
                Some(task_id) => {
                    store.list_tasks(&run.id).await?.into_iter().find(|t| &t.id == task_id).map(|t| t.path)
                }
                None => None,
            };
            let metrics = store.artifact_metrics(&artifact_id, artifact.task_id.as_deref()).await?;
            let lineage = Lineage { run_id: run.id.clone(), task, artifact_id: Some(artifact_id), metrics };
            (artifact.uri.clone(), Some(lineage))
        }
    };
    let format = req.model_format_name.clone().or_else(|| Some(guess_format(&uri).to_owned()));
    let mut model = RegisteredModel::new(namespace, name);
    model.owner = req.author.clone();
    let mut version = ModelVersion::new(0, &req.version);
    version.description = req.description.clone();
    version.author = req.author.clone();
    if let Some(l) = &lineage {
        // The metrics as custom properties too, so the official client sees them.
        if let Value::Object(m) = &l.metrics {
            let props: Map<String, Value> = m
                .iter()
                .map(|(k, v)| (k.clone(), json!({"double_value": v, "metadataType": "MetadataDoubleValue"})))
                .collect();
            version.custom_properties = Value::Object(props);
        }
    }
    version.lineage = lineage;
    let mut artifact = ModelArtifact::new(0, name, &uri);
    artifact.model_format_name = format;
    artifact.model_format_version = req.model_format_version.clone();
    Ok(store.register_model_version(&model, &version, &artifact).await?)
}

fn unreachable_source<T>() -> Result<T, ApiError> {
    Err(ApiError::Internal("a URI source reached the run branch".into()))
}

/// `onnx` for `.onnx` files, else `secondrow` (SecondRow's model file).
fn guess_format(uri: &str) -> &'static str {
    if uri.to_ascii_lowercase().ends_with(".onnx") {
        "onnx"
    } else {
        "secondrow"
    }
}

fn check_local_uri(artifacts: &secondrow_store::ArtifactStore, uri: &str) -> Result<(), ApiError> {
    let local = uri.strip_prefix("file://").or_else(|| uri.starts_with('/').then_some(uri));
    if let Some(path) = local {
        artifacts.relative(path).map_err(|e| ApiError::invalid(format!("uri: {}", ApiError::from(e))))?;
    } else if uri.trim().is_empty() || !uri.contains(':') {
        return Err(ApiError::invalid(format!("uri: `{}` is neither an absolute path nor a URI", uri.escape_debug())));
    }
    Ok(())
}

/// A model with its versions (each with its artifacts, lineage and deployments), as `models get --json` prints it.
pub async fn model_document(store: &secondrow_store::Store, model: &RegisteredModel) -> Result<Value, ApiError> {
    let all = Page { limit: MAX_ID, ..Page::default() };
    let mut versions = Vec::new();
    for v in store.list_model_versions(Some(&model.namespace), Some(model.id), &all).await? {
        let v = store.get_model_version(v.id).await?;
        let artifacts = store.list_model_artifacts(Some(&model.namespace), Some(v.id), None, &all).await?;
        let mut doc = serde_json::to_value(&v).map_err(|e| ApiError::Internal(e.to_string()))?;
        doc["artifacts"] = serde_json::to_value(&artifacts).map_err(|e| ApiError::Internal(e.to_string()))?;
        versions.push(doc);
    }
    Ok(json!({"model": model, "versions": versions}))
}

/// The model `name` of `namespace`, or 404.
pub async fn model_named(
    store: &secondrow_store::Store,
    namespace: &str,
    name: &str,
) -> Result<RegisteredModel, ApiError> {
    store
        .find_registered_model(namespace, Lookup::Name(name))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("registered model `{name}` not found")))
}

/// The version `version` of model `name` in `namespace`, or 404.
pub async fn version_named(
    store: &secondrow_store::Store,
    namespace: &str,
    name: &str,
    version: &str,
) -> Result<(RegisteredModel, ModelVersion), ApiError> {
    let model = model_named(store, namespace, name).await?;
    let v = store
        .find_model_version(namespace, Some(model.id), Lookup::Name(version))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("model `{name}` has no version `{version}`")))?;
    Ok((model, v))
}

/// Archives model `name` (every version when `version` is `None`, the model itself too) or one version.
/// A deployed version is refused (400, naming the deployments); nothing is changed then.
pub async fn archive(
    store: &secondrow_store::Store,
    namespace: &str,
    name: &str,
    version: Option<&str>,
) -> Result<Value, ApiError> {
    match version {
        Some(v) => {
            let (_, mut mv) = version_named(store, namespace, name, v).await?;
            mv.state = ARCHIVED.to_owned();
            Ok(version_json(&store.update_model_version(&mv).await?))
        }
        None => {
            let mut model = model_named(store, namespace, name).await?;
            let all = Page { limit: MAX_ID, ..Page::default() };
            let versions = store.list_model_versions(Some(namespace), Some(model.id), &all).await?;
            // Refuse before changing anything when any version is deployed.
            for v in &versions {
                let v = store.get_model_version(v.id).await?;
                if !v.deployments.is_empty() {
                    let mut archived = v.clone();
                    archived.state = ARCHIVED.to_owned();
                    // Refused by the store, naming the deployments.
                    return Err(store.update_model_version(&archived).await.err().map(ApiError::from).unwrap_or_else(
                        || ApiError::Internal(format!("model version {} was archived while deployed", v.id)),
                    ));
                }
            }
            for v in versions {
                let mut v = store.get_model_version(v.id).await?;
                v.state = ARCHIVED.to_owned();
                store.update_model_version(&v).await?;
            }
            model.state = ARCHIVED.to_owned();
            Ok(model_json(&store.update_registered_model(&model).await?))
        }
    }
}

/// A deployment source naming a registry version (`{"registered_model", "model_version"[, "namespace"]}`):
/// the version's model file as a deployment source (its artifact when it has lineage), the version's id
/// and its name (the default deployment version name). `None` for any other source.
pub async fn deployment_source(
    store: &secondrow_store::Store,
    source: &Value,
    default_namespace: &str,
) -> Result<Option<RegistrySource>, ApiError> {
    use secondrow_store::deployments::ModelSource;
    let Some(model) = source.get("registered_model") else { return Ok(None) };
    let text = |key: &str| source.get(key).and_then(Value::as_str);
    let (Some(model), Some(version)) = (model.as_str(), text("model_version")) else {
        return Err(ApiError::invalid("source: `registered_model` and `model_version` must both be strings"));
    };
    if source
        .as_object()
        .is_some_and(|o| o.keys().any(|k| !["registered_model", "model_version", "namespace"].contains(&k.as_str())))
    {
        return Err(ApiError::invalid(
            "source: a registry source has only `registered_model`, `model_version` and `namespace`",
        ));
    }
    let (_, v) = version_named(store, text("namespace").unwrap_or(default_namespace), model, version).await?;
    if v.state == ARCHIVED {
        return Err(ApiError::FailedPrecondition(format!("model `{model}` version `{version}` is archived")));
    }
    let artifacts = store.list_model_artifacts(Some(&v.namespace), Some(v.id), None, &Page::default()).await?;
    let first = artifacts.first().ok_or_else(|| {
        ApiError::FailedPrecondition(format!("model `{model}` version `{version}` has no model artifact"))
    })?;
    let from = match v.lineage.as_ref().and_then(|l| l.artifact_id.clone()) {
        Some(artifact_id) => ModelSource::Artifact { artifact_id },
        None => ModelSource::Path { path: first.uri.strip_prefix("file://").unwrap_or(&first.uri).to_owned() },
    };
    Ok(Some(RegistrySource { source: from, version_id: v.id, version: v.name.clone(), namespace: v.namespace.clone() }))
}

/// A registered model version resolved for a deployment: the model file to serve and where it was registered.
pub struct RegistrySource {
    pub source: secondrow_store::deployments::ModelSource,
    pub version_id: i64,
    /// The version's name (a deployment version takes it when none is given).
    pub version: String,
    /// The registered model's namespace; the caller must reach it.
    pub namespace: String,
}

/// SecondRow's own registry endpoints (records as the CLI prints them), under `/apis/v2beta1/secondrow`.
pub fn records_routes() -> Router<AppState> {
    Router::new()
        .route("/secondrow/models", get(records_list))
        .route("/secondrow/models/{name}", get(records_get))
        .route("/secondrow/models/{name}/versions", axum::routing::post(records_register))
        .route("/secondrow/models/{name}/archive", axum::routing::post(records_archive))
}

async fn records_list(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let all = Page { limit: MAX_ID, ..Page::default() };
    let models = s.store().list_registered_models(caller.list_namespace(None)?, &all).await?;
    Ok(Json(json!(models)))
}

async fn records_get(
    State(s): State<AppState>,
    caller: Caller,
    crate::extract::ApiPath(name): crate::extract::ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let model = model_named(s.store(), &home(&caller), &name).await?;
    Ok(Json(model_document(s.store(), &model).await?))
}

async fn records_register(
    State(s): State<AppState>,
    caller: Caller,
    crate::extract::ApiPath(name): crate::extract::ApiPath<String>,
    crate::extract::ApiJson(req): crate::extract::ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let ns = home(&caller);
    let check = |run_id: &str, run_ns: &str| caller.check("run", run_id, run_ns);
    let reg = register(s.store(), s.engine.artifacts(), &ns, &name, &req, check).await?;
    Ok((StatusCode::CREATED, Json(json!(reg))).into_response())
}

#[derive(serde::Deserialize)]
struct ArchiveBody {
    #[serde(default)]
    version: Option<String>,
}

async fn records_archive(
    State(s): State<AppState>,
    caller: Caller,
    crate::extract::ApiPath(name): crate::extract::ApiPath<String>,
    crate::extract::ApiJson(body): crate::extract::ApiJson<ArchiveBody>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(archive(s.store(), &home(&caller), &name, body.version.as_deref()).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_tokens_and_properties_are_checked() {
        assert_eq!(parse_id("id", "1").unwrap(), 1);
        assert_eq!(parse_id("id", "999999999").unwrap(), 999_999_999);
        for bad in ["", "0", "01", "-1", "1000000000", "1a", "x"] {
            assert!(parse_id("id", bad).is_err(), "{bad}");
        }
        assert_eq!(decode_token(&encode_token(40)), Some(40));
        assert_eq!(decode_token("zz"), None);
        assert!(check_properties(&json!({"a": {"string_value": "x", "metadataType": "MetadataStringValue"}})).is_ok());
        assert!(check_properties(&json!({"a": {"int_value": "7", "metadataType": "MetadataIntValue"}})).is_ok());
        assert!(check_properties(&json!({"a": {"int_value": 7, "metadataType": "MetadataIntValue"}})).is_err());
        assert!(check_properties(&json!({"a": {"string_value": "x"}})).is_err());
        assert!(check_properties(&json!({"a": {"x": 1, "metadataType": "Nope"}})).is_err());
        assert!(check_properties(&json!([1])).is_err());
    }
}
