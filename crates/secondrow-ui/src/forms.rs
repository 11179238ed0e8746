//! What the management pages share: reading a form's CSRF token, calling the API in-process with the
//! caller's credentials and reading its JSON answer or its error message, the parameter inputs of a
//! run form (prefilled from defaults or from a run being cloned) and turning their values into typed
//! parameters.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value};

use secondrow_spec::PipelineSpec;

use crate::catalog::{fields, typed, Field};
use crate::pages::{api_message, forward_body};
use crate::Ui;

/// A form as posted (urlencoded), by field name.
pub type FormMap = HashMap<String, String>;

/// An API call's outcome: its JSON answer, or its status and message.
pub struct ApiFailure {
    pub status: StatusCode,
    pub message: String,
}

/// Calls the API router in-process with the caller's credentials and a JSON body.
pub async fn call(
    ui: &Ui,
    method: Method,
    uri: &str,
    headers: &HeaderMap,
    body: Option<Value>,
) -> Result<Value, ApiFailure> {
    let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
    let r = forward_body(ui, method, uri, headers, body).await;
    read(r).await
}

/// The JSON of a successful API response, or its status and message.
pub async fn read(r: Response) -> Result<Value, ApiFailure> {
    let status = r.status();
    if !status.is_success() {
        return Err(ApiFailure { status, message: api_message(r).await });
    }
    let bytes = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap_or_default();
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

impl ApiFailure {
    /// The failure as an error page.
    pub fn page(&self) -> Response {
        crate::error_page(self.status, &self.message, None)
    }
}

/// After a form's action: a redirect (htmx gets `HX-Redirect`, a plain form a 303).
pub fn done(headers: &HeaderMap, to: &str) -> Response {
    if headers.contains_key("hx-request") {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = HeaderValue::from_str(to) {
            r.headers_mut().insert("hx-redirect", v);
        }
        return r;
    }
    Redirect::to(to).into_response()
}

/// A form's text value, trimmed (empty when absent).
pub fn text<'a>(form: &'a FormMap, name: &str) -> &'a str {
    form.get(name).map(|s| s.trim()).unwrap_or("")
}

/// The parameter inputs of a run form for `spec`, prefilled from `values` (a run's parameters, or what a
/// refused form posted) where given, else from the defaults.
pub fn param_fields(spec: &PipelineSpec, values: Option<&Map<String, Value>>) -> Vec<Field> {
    let mut out = fields(spec);
    let Some(values) = values else { return out };
    for f in &mut out {
        let Some(v) = values.get(&f.name) else { continue };
        match v {
            Value::Bool(b) => f.checked = *b,
            Value::String(s) => f.value = s.clone(),
            Value::Null => {}
            other => f.value = other.to_string(),
        }
    }
    out
}

/// What a refused form posted, as values [`param_fields`] shows again (`p.NAME` fields; unchecked boxes false).
pub fn posted_params(spec: &PipelineSpec, form: &FormMap) -> Map<String, Value> {
    spec.root
        .input_definitions
        .parameters
        .iter()
        .map(|(name, d)| {
            let raw = form.get(&format!("p.{name}"));
            let v = if d.parameter_type == secondrow_spec::ParameterType::Boolean {
                Value::Bool(raw.is_some())
            } else {
                Value::String(raw.cloned().unwrap_or_default())
            };
            (name.clone(), v)
        })
        .collect()
}

/// The typed parameters of a posted run form (`p.NAME` fields); empty optional values are left out.
pub fn params(spec: &PipelineSpec, form: &FormMap) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (name, d) in &spec.root.input_definitions.parameters {
        if let Some(v) = typed(d.parameter_type, name, form.get(&format!("p.{name}")).map(String::as_str))? {
            out.insert(name.clone(), v);
        }
    }
    Ok(out)
}

/// The pipeline spec inside a stored spec document (`{pipeline_spec, platform_spec}` or the spec itself).
pub fn spec_of(doc: &Value) -> Result<PipelineSpec, String> {
    let inner = doc.get("pipeline_spec").filter(|v| v.is_object()).unwrap_or(doc);
    serde_json::from_value(inner.clone()).map_err(|e| format!("the stored pipeline spec does not parse: {e}"))
}
