//! Forwarding to the API router in-process, and run actions through it.

use axum::body::Body;
use axum::extract::{Extension, Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::graph::url_part;
use crate::{csrf_refusal, error_page, Csrf, Ui};

/// Forwards a request to the API router in-process with the caller's credentials.
pub(crate) async fn forward(ui: &Ui, method: Method, uri: &str, headers: &HeaderMap) -> Response {
    forward_body(ui, method, uri, headers, Body::empty()).await
}

/// [`forward`] with a JSON body.
pub(crate) async fn forward_body(ui: &Ui, method: Method, uri: &str, headers: &HeaderMap, body: Body) -> Response {
    let mut req = Request::new(body);
    req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    *req.method_mut() = method;
    match uri.parse() {
        Ok(u) => *req.uri_mut() = u,
        Err(_) => return error_page(StatusCode::BAD_REQUEST, "bad id", None),
    }
    if let Some(a) = headers.get(header::AUTHORIZATION) {
        req.headers_mut().insert(header::AUTHORIZATION, a.clone());
    }
    match ui.api.clone().oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    }
}

/// The message of an API error response.
pub(crate) async fn api_message(r: Response) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap_or_default();
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned())
}

#[derive(Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
}

/// Run actions (`terminate`, `retry`, `archive`, `unarchive`, `delete`), through the API.
pub async fn action(
    State(ui): State<Ui>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    UrlPath((id, action)): UrlPath<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&headers, &csrf, f.csrf.as_deref()) {
        return r;
    }
    let rid = url_part(&id, false);
    let (method, uri) = match action.as_str() {
        "terminate" | "retry" | "archive" | "unarchive" => (Method::POST, format!("/apis/v2beta1/runs/{rid}:{action}")),
        "delete" => (Method::DELETE, format!("/apis/v2beta1/runs/{rid}")),
        other => return error_page(StatusCode::NOT_FOUND, &format!("unknown action `{other}`"), None),
    };
    let r = forward(&ui, method, &uri, &headers).await;
    if !r.status().is_success() {
        let status = r.status();
        return error_page(status, &api_message(r).await, None);
    }
    let to = if action == "delete" { "/runs".to_owned() } else { format!("/runs/{rid}") };
    if headers.contains_key("hx-request") {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = HeaderValue::from_str(&to) {
            r.headers_mut().insert("hx-redirect", v);
        }
        return r;
    }
    Redirect::to(&to).into_response()
}
