//! The notebooks page: the caller's notebooks with their state (and the reason of a stop or failure), a
//! link that opens each running one (`/notebook/NS/NAME/lab`, through the server's proxy, which takes the
//! signed-in session), stop/start/delete buttons and a create form (name, packages). Everything goes
//! through the API's `/notebooks` resource, so its namespace checks apply.

use askama::Template;
use axum::extract::{Extension, Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::Form;
use serde_json::{json, Value};

use secondrow_api::auth::Caller;

use crate::forms::{call, done, text, FormMap};
use crate::graph::url_part;
use crate::{csrf_refusal, error_page, html, Chrome, Csrf, Ui};

pub struct NotebookRow {
    pub namespace: String,
    pub name: String,
    pub state: String,
    pub reason: String,
    pub url: String,
    pub packages: String,
}

#[derive(Template)]
#[template(path = "notebooks.html")]
struct NotebooksPage {
    c: Chrome,
    rows: Vec<NotebookRow>,
    csrf: String,
}

fn row(nb: &Value) -> NotebookRow {
    let s = |k: &str| nb.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let packages = nb
        .get("packages")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    NotebookRow {
        namespace: s("namespace"),
        name: s("name"),
        state: s("state"),
        reason: s("reason"),
        url: s("url"),
        packages: if packages.is_empty() { s("python") } else { packages },
    }
}

/// `GET /notebooks`.
pub async fn list(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
) -> Response {
    let list = match call(&ui, Method::GET, "/apis/v2beta1/notebooks", &headers, None).await {
        Ok(l) => l,
        Err(f) => return f.page(),
    };
    let rows = list.get("notebooks").and_then(Value::as_array).map(|a| a.iter().map(row).collect()).unwrap_or_default();
    html(NotebooksPage { c: Chrome::new("Notebooks", &csrf, Some(&caller), "notebooks"), rows, csrf: csrf.0 }.render())
}

/// `POST /notebooks`: `name`, `packages` (space separated), `namespace` (optional).
pub async fn create(
    State(ui): State<Ui>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    Form(form): Form<FormMap>,
) -> Response {
    if let Some(r) = csrf_refusal(&headers, &csrf, form.get("csrf").map(String::as_str)) {
        return r;
    }
    let mut body = json!({"name": text(&form, "name"), "packages": text(&form, "packages")});
    if !text(&form, "namespace").is_empty() {
        body["namespace"] = json!(text(&form, "namespace"));
    }
    match call(&ui, Method::POST, "/apis/v2beta1/notebooks", &headers, Some(body)).await {
        Ok(_) => done(&headers, "/notebooks"),
        Err(f) => f.page(),
    }
}

/// `POST /notebooks/NS/NAME/do/ACTION`: `stop`, `start` or `delete`.
pub async fn action(
    State(ui): State<Ui>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    UrlPath((ns, name, action)): UrlPath<(String, String, String)>,
    Form(form): Form<FormMap>,
) -> Response {
    if let Some(r) = csrf_refusal(&headers, &csrf, form.get("csrf").map(String::as_str)) {
        return r;
    }
    let path = format!("/apis/v2beta1/notebooks/{}/{}", url_part(&ns, false), url_part(&name, false));
    let (method, uri) = match action.as_str() {
        "stop" | "start" => (Method::POST, format!("{path}/{action}")),
        "delete" => (Method::DELETE, path),
        _ => return error_page(StatusCode::NOT_FOUND, &format!("no notebook action `{action}`"), None),
    };
    match call(&ui, method, &uri, &headers, Some(json!({}))).await {
        Ok(_) => done(&headers, "/notebooks"),
        Err(f) => f.page(),
    }
}
