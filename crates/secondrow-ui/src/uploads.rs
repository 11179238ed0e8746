//! Pipelines managed from the UI: upload a pipeline (the compiled YAML, or a `.zip`/`.tar.gz` holding it)
//! or a new version of one, and delete a pipeline or a version. The browser posts a multipart form; its
//! CSRF token is checked, then the file is posted to the API's own upload endpoints, which validate it.

use axum::body::Body;
use axum::extract::{Extension, Multipart, Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Form;
use serde_json::Value;

use crate::forms::{call, done, read, text, FormMap};
use crate::graph::url_part;
use crate::{csrf_refusal, error_page, Csrf, Ui};

/// An upload form as posted.
#[derive(Default)]
struct Upload {
    name: String,
    description: String,
    file: Option<(String, Vec<u8>)>,
}

/// Reads the form, checking its CSRF token as soon as it arrives: the token field comes before the file in
/// the form, so a request without a valid token is refused before any file byte is read.
async fn read_form(headers: &HeaderMap, csrf: &Csrf, mut multipart: Multipart) -> Result<Upload, Response> {
    let bad = |m: String| error_page(StatusCode::BAD_REQUEST, &m, None);
    let mut out = Upload::default();
    // htmx sends the token as a header instead.
    let mut checked = headers.contains_key("x-csrf-token") && csrf_refusal(headers, csrf, None).is_none();
    while let Some(field) = multipart.next_field().await.map_err(|e| bad(format!("reading the form: {e}")))? {
        let name = field.name().unwrap_or("").to_owned();
        if name == "uploadfile" {
            if !checked {
                return Err(
                    csrf_refusal(headers, csrf, None).unwrap_or_else(|| bad("the form has no CSRF field".into()))
                );
            }
            let file_name = field.file_name().unwrap_or("pipeline.yaml").to_owned();
            let bytes = field.bytes().await.map_err(|e| bad(format!("reading the file: {e}")))?;
            if !bytes.is_empty() {
                out.file = Some((file_name, bytes.to_vec()));
            }
            continue;
        }
        let value = field.text().await.map_err(|e| bad(format!("reading the form: {e}")))?;
        match name.as_str() {
            "csrf" => {
                if let Some(r) = csrf_refusal(headers, csrf, Some(&value)) {
                    return Err(r);
                }
                checked = true;
            }
            "name" => out.name = value.trim().to_owned(),
            "description" => out.description = value.trim().to_owned(),
            _ => {}
        }
    }
    if !checked {
        return Err(csrf_refusal(headers, csrf, None).unwrap_or_else(|| bad("the form has no CSRF field".into())));
    }
    Ok(out)
}

/// A multipart body with one `uploadfile` part, as the API reads it.
fn multipart_body(file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("secondrow-{}", uuid::Uuid::new_v4().simple());
    // The file name is only informative to the API; keep it to safe characters inside the quotes.
    let safe: String =
        file_name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).take(128).collect();
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"uploadfile\"; filename=\"{safe}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Posts the file to an API upload endpoint; its JSON answer.
async fn post_file(ui: &Ui, uri: &str, headers: &HeaderMap, file: &(String, Vec<u8>)) -> Result<Value, Response> {
    let (ctype, body) = multipart_body(&file.0, &file.1);
    // As `forward_body`, with the multipart type instead of JSON.
    let mut req = axum::extract::Request::new(Body::from(body));
    *req.method_mut() = Method::POST;
    match uri.parse() {
        Ok(u) => *req.uri_mut() = u,
        Err(_) => return Err(error_page(StatusCode::BAD_REQUEST, "bad upload address", None)),
    }
    if let Ok(v) = HeaderValue::from_str(&ctype) {
        req.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if let Some(a) = headers.get(header::AUTHORIZATION) {
        req.headers_mut().insert(header::AUTHORIZATION, a.clone());
    }
    let r = match tower::ServiceExt::oneshot(ui.api.clone(), req).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    read(r).await.map_err(|f| f.page())
}

fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_part(v, true)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The parsed form with its file, its CSRF token checked.
async fn checked(
    headers: &HeaderMap,
    csrf: &Csrf,
    multipart: Multipart,
) -> Result<(Upload, (String, Vec<u8>)), Response> {
    let mut form = read_form(headers, csrf, multipart).await?;
    let file = form.file.take().ok_or_else(|| {
        error_page(
            StatusCode::BAD_REQUEST,
            "choose a pipeline file (the compiled YAML, or a .zip/.tar.gz holding it)",
            None,
        )
    })?;
    Ok((form, file))
}

/// `POST /pipelines/upload`: a new pipeline from the file; then its page.
pub async fn upload(
    State(ui): State<Ui>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    let (form, file) = match checked(&headers, &csrf, multipart).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let uri = format!(
        "/apis/v2beta1/pipelines/upload?{}",
        query(&[("name", &form.name), ("description", &form.description)])
    );
    match post_file(&ui, &uri, &headers, &file).await {
        Ok(p) => {
            let id = p.get("pipeline_id").and_then(Value::as_str).unwrap_or_default();
            done(&headers, &format!("/pipelines/{}", url_part(id, false)))
        }
        Err(r) => r,
    }
}

/// `POST /pipelines/ID/versions`: a new version of the pipeline from the file; then that version.
pub async fn upload_version(
    State(ui): State<Ui>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    multipart: Multipart,
) -> Response {
    let (form, file) = match checked(&headers, &csrf, multipart).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let uri = format!(
        "/apis/v2beta1/pipelines/upload_version?{}",
        query(&[("pipelineid", &id), ("name", &form.name), ("description", &form.description)])
    );
    match post_file(&ui, &uri, &headers, &file).await {
        Ok(v) => {
            let vid = v.get("pipeline_version_id").and_then(Value::as_str).unwrap_or_default();
            done(&headers, &format!("/pipelines/{}?version={}", url_part(&id, false), url_part(vid, true)))
        }
        Err(r) => r,
    }
}

/// `POST /pipelines/ID/do/delete` (the pipeline, with its versions) or, with a `version` field, that version.
pub async fn delete(
    State(ui): State<Ui>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    UrlPath((id, action)): UrlPath<(String, String)>,
    Form(form): Form<FormMap>,
) -> Response {
    if let Some(r) = csrf_refusal(&headers, &csrf, form.get("csrf").map(String::as_str)) {
        return r;
    }
    if action != "delete" {
        return error_page(StatusCode::NOT_FOUND, &format!("unknown action `{action}`"), None);
    }
    let pid = url_part(&id, false);
    let version = text(&form, "version");
    let (uri, to) = if version.is_empty() {
        (format!("/apis/v2beta1/pipelines/{pid}"), "/pipelines".to_owned())
    } else {
        (format!("/apis/v2beta1/pipelines/{pid}/versions/{}", url_part(version, false)), format!("/pipelines/{pid}"))
    };
    match call(&ui, Method::DELETE, &uri, &headers, None).await {
        Ok(_) => done(&headers, &to),
        Err(f) => f.page(),
    }
}
