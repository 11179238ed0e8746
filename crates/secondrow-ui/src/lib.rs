//! The web UI that `secondrow server` serves at `/`, beside the KFP API on the same port.
//!
//! Server-rendered HTML (askama templates, checked at compile time), htmx (vendored, pinned) for partial
//! updates, Server-Sent Events for a run's live graph; the DAG is laid out here ([`layout`]) and sent as SVG,
//! charts are SVG too ([`viz`]). Pages read the metadata store; actions (terminate, retry, archive, delete)
//! and downloads are forwarded to the API router in-process, so they go through exactly the API's checks.
//!
//! Access: the same callers as the API. A browser signs in with a token on `/login` (kept in an HttpOnly,
//! SameSite=Strict cookie and presented to the API's auth middleware as `Authorization: Bearer`); with no
//! token anywhere the server is anonymous, as the API is. Every page checks the namespace of what it shows
//! through [`secondrow_api::auth::Caller`]. State-changing requests need a CSRF token (double submit: a
//! random cookie and the same value in a form field or the `X-CSRF-Token` header) and a same-origin
//! `Origin` when the browser sends one.
//!
//! Adding a page: a handler in [`pages`] (or a module of its own), a template in `templates/`, one line in
//! [`router`], and a link in `templates/base.html`'s navigation.

mod catalog;
mod clone;
mod compare;
mod data;
mod dataset;
pub mod deployments;
mod experiments;
mod forms;
pub mod graph;
mod jobs;
pub mod layout;
mod models;
mod monitoring;
mod notebooks;
mod pages;
mod recurring;
mod tuning;
mod uploads;
pub mod viz;

use askama::Template;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use secondrow_api::auth::Caller;
use secondrow_api::{ApiError, AppState};

/// The cookie holding the signed-in token.
pub const TOKEN_COOKIE: &str = "secondrow_token";
/// The cookie holding the CSRF secret (double submit).
pub const CSRF_COOKIE: &str = "secondrow_csrf";

/// The UI's state: the API's, plus the API router that actions are forwarded to.
#[derive(Clone)]
pub struct Ui {
    pub app: AppState,
    pub api: Router,
    /// Samples of the serving counters, for the deployments page's request rates.
    pub rates: std::sync::Arc<deployments::Rates>,
}

/// Vendored third-party files: name, bytes, SHA-256 (checked by a test) and content type.
pub const VENDORED: &[(&str, &[u8], &str)] = &[(
    "htmx-2.0.4.min.js",
    include_bytes!("static/htmx-2.0.4.min.js"),
    "e209dda5c8235479f3166defc7750e1dbcd5a5c1808b7792fc2e6733768fb447",
)];

const APP_CSS: &str = include_str!("static/app.css");
const APP_JS: &str = include_str!("static/app.js");

/// The UI's routes (`/`, `/login`, `/runs…`, `/artifacts…`, `/ui/static/…`); merge with the API router.
pub fn router(app: AppState) -> Router {
    let ui = Ui { api: secondrow_api::router(app.clone()), app: app.clone(), rates: Default::default() };
    // Uploads take pipeline files as large as the API does.
    let uploads = Router::new()
        .route("/pipelines/upload", post(uploads::upload))
        .route("/pipelines/{id}/versions", post(uploads::upload_version))
        .layer(axum::extract::DefaultBodyLimit::max(secondrow_api::BODY_LIMIT));
    let protected = Router::new()
        .route("/", get(|| async { Redirect::to("/runs") }))
        .route("/runs", get(pages::runs))
        .route("/compare", get(compare::compare))
        .route("/experiments", get(experiments::experiments).post(experiments::create))
        .route("/experiments/{id}", get(experiments::experiment))
        .route("/experiments/{id}/do/{action}", post(experiments::action))
        .route("/pipelines", get(catalog::pipelines))
        .route("/pipelines/{id}", get(catalog::pipeline))
        .route("/pipelines/{id}/run", post(catalog::create_run))
        .route("/pipelines/{id}/do/{action}", post(uploads::delete))
        .route("/pipelines/{id}/schedule", get(recurring::new_form).post(recurring::create))
        .merge(uploads)
        .route("/recurring", get(catalog::recurring))
        .route("/recurring/{id}", get(recurring::page))
        .route("/recurring/{id}/do/{action}", post(recurring::action))
        .route("/deployments", get(deployments::list))
        .route("/deployments/{name}/rows", get(deployments::rows))
        .route("/deployments/{name}/traffic", post(deployments::traffic))
        .route("/deployments/{name}/monitoring", get(monitoring::page))
        .route("/tuning", get(tuning::list))
        .route("/tuning/{ns}/{name}", get(tuning::page))
        .route("/jobs", get(jobs::jobs))
        .route("/jobs/{ns}/{name}", get(jobs::job))
        .route("/notebooks", get(notebooks::list).post(notebooks::create))
        .route("/notebooks/{ns}/{name}/do/{action}", post(notebooks::action))
        .route("/data", get(data::repos))
        .route("/data/{ns}/{repo}", get(data::repo))
        .route("/data/{ns}/{repo}/commits/{reference}", get(data::commit))
        .route("/data/{ns}/{repo}/diff", get(data::diff))
        .route("/models", get(models::models))
        .route("/models/{id}", get(models::model))
        .route("/models/{id}/versions/{version}/deploy", post(models::deploy))
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/tasks/{*path}", get(pages::task))
        .route("/runs/{id}/artifacts/{aid}", get(pages::artifact))
        .route("/runs/{id}/logs", get(pages::logs))
        .route("/runs/{id}/logs/events", get(pages::log_events))
        .route("/runs/{id}/events", get(pages::events))
        .route("/runs/{id}/do/{action}", post(pages::action))
        .route("/runs/{id}/clone", get(clone::form).post(clone::create))
        .route("/artifacts/{aid}/view", get(pages::artifact_html))
        .route("/artifacts/{aid}/download", get(pages::download))
        .route("/logout", post(logout))
        .with_state(ui.clone())
        .layer(axum::middleware::from_fn_with_state(app.clone(), secondrow_api::auth::authenticate))
        .layer(axum::middleware::from_fn(session));
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/ui/static/{file}", get(static_file))
        .with_state(ui)
        .merge(protected)
        .layer(axum::middleware::from_fn(headers_and_csrf))
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Presents the session cookie to the API's auth middleware as a bearer token; a 401 on a page becomes the
/// login page (a rejected cookie is cleared).
async fn session(mut req: Request, next: Next) -> Response {
    let token = cookie(req.headers(), TOKEN_COOKIE).map(str::to_owned);
    if let Some(t) = &token {
        if !req.headers().contains_key(header::AUTHORIZATION) {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}")) {
                req.headers_mut().insert(header::AUTHORIZATION, v);
            }
        }
    }
    let target = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    let resp = next.run(req).await;
    if resp.status() != StatusCode::UNAUTHORIZED {
        return resp;
    }
    let mut location = format!("/login?next={}", graph::url_part(&target, false));
    if token.is_some() {
        location.push_str("&invalid=1");
    }
    let mut r = Redirect::to(&location).into_response();
    if token.is_some() {
        r.headers_mut().append(header::SET_COOKIE, HeaderValue::from_static(CLEAR_TOKEN));
    }
    r
}

const CLEAR_TOKEN: &str = "secondrow_token=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict";

/// The CSRF value a page embeds: the cookie's (set here when missing).
#[derive(Clone)]
pub struct Csrf(pub String);

/// Security headers on every UI response; the CSRF cookie set when missing; state-changing requests checked
/// (same-origin `Origin`, and for everything but `/login`, the double-submitted token).
async fn headers_and_csrf(mut req: Request, next: Next) -> Response {
    let existing = cookie(req.headers(), CSRF_COOKIE).map(str::to_owned);
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if let Err(msg) = check_origin(req.headers()) {
            return error_page(StatusCode::FORBIDDEN, &msg, None);
        }
    }
    let csrf = existing.clone().unwrap_or_else(|| hex::encode(Sha256::digest(uuid::Uuid::new_v4().as_bytes())));
    req.extensions_mut().insert(Csrf(csrf.clone()));
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if existing.is_none() {
        if let Ok(v) = HeaderValue::from_str(&format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict; HttpOnly")) {
            h.append(header::SET_COOKIE, v);
        }
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.entry(header::X_FRAME_OPTIONS).or_insert(HeaderValue::from_static("SAMEORIGIN"));
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'",
    ));
    h.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("same-origin"));
    resp
}

/// Refuses a cross-site request: `Sec-Fetch-Site: cross-site`, or an `Origin` whose host is not `Host`.
fn check_origin(headers: &HeaderMap) -> Result<(), String> {
    if headers.get("sec-fetch-site").is_some_and(|v| v == "cross-site") {
        return Err("cross-site request refused".into());
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    if origin == "null" || origin_host != host {
        return Err(format!("request from origin `{origin}` refused (this UI is `{host}`)"));
    }
    Ok(())
}

/// Checks the double-submitted CSRF token of a state-changing request.
pub fn csrf_refusal(headers: &HeaderMap, csrf: &Csrf, form_value: Option<&str>) -> Option<Response> {
    let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).or(form_value);
    let cookie_value = cookie(headers, CSRF_COOKIE);
    match (sent, cookie_value) {
        (Some(s), Some(c)) if s == c && c == csrf.0 => None,
        _ => Some(error_page(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or stale: reload the page and try again",
            None,
        )),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    c: Chrome,
    status: u16,
    message: &'a str,
}

/// What every full page's frame shows.
pub struct Chrome {
    pub title: String,
    pub csrf: String,
    pub who: String,
    pub nav: &'static str,
    /// Signed in with a token (anonymous callers have nothing to sign out of).
    pub signed_in: bool,
}

impl Chrome {
    pub fn new(title: impl Into<String>, csrf: &Csrf, caller: Option<&Caller>, nav: &'static str) -> Chrome {
        let who = match caller {
            Some(Caller::Admin) => "admin".to_owned(),
            Some(Caller::Namespace(ns)) => format!("namespace {ns}"),
            Some(Caller::Anonymous) => "anonymous (no tokens set)".to_owned(),
            None => String::new(),
        };
        let signed_in = matches!(caller, Some(Caller::Admin | Caller::Namespace(_)));
        Chrome { title: title.into(), csrf: csrf.0.clone(), who, nav, signed_in }
    }
}

/// An error as a page: the message for 4xx, a generic text for 5xx (details go to the log).
pub fn error_page(status: StatusCode, message: &str, c: Option<Chrome>) -> Response {
    let shown = if status.is_server_error() {
        tracing::warn!(%status, error = %message, "UI request failed");
        "internal error (see the server log)"
    } else {
        message
    };
    let c = c.unwrap_or(Chrome {
        title: "Error".into(),
        csrf: String::new(),
        who: String::new(),
        nav: "",
        signed_in: false,
    });
    let page = ErrorPage { c, status: status.as_u16(), message: shown };
    (status, html(page.render())).into_response()
}

/// A rendered template as an HTML response.
pub fn html(r: Result<String, askama::Error>) -> Response {
    match r {
        Ok(s) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], s).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// Errors of UI handlers.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{0}")]
    BadRequest(String),
}

impl From<secondrow_store::StoreError> for UiError {
    fn from(e: secondrow_store::StoreError) -> UiError {
        UiError::Api(e.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::Api(e) => {
                // Internal errors are logged by the API's response and never shown, as in the API.
                let msg = match e.kind() {
                    secondrow_store::ErrorKind::Internal => {
                        "internal error; the server log has the details".to_string()
                    }
                    _ => e.to_string(),
                };
                let status = e.into_response().status();
                error_page(status, &msg, None)
            }
            UiError::BadRequest(m) => error_page(StatusCode::BAD_REQUEST, &m, None),
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    next: String,
    invalid: bool,
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
    invalid: Option<String>,
}

/// Only local paths are followed after login (`/x`, never `//host` or a URL).
fn local_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/runs".to_owned(),
    }
}

async fn login_page(
    axum::extract::Extension(csrf): axum::extract::Extension<Csrf>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    let page = LoginPage {
        c: Chrome::new("Sign in", &csrf, None, ""),
        next: local_next(q.next.as_deref()),
        invalid: q.invalid.is_some(),
    };
    html(page.render())
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
    csrf: Option<String>,
}

/// Sets the token cookie and goes on; a wrong token comes back here through [`session`].
async fn login(
    axum::extract::Extension(csrf): axum::extract::Extension<Csrf>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&headers, &csrf, f.csrf.as_deref()) {
        return r;
    }
    let token = f.token.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b',') {
        return Redirect::to("/login?invalid=1").into_response();
    }
    let mut r = Redirect::to(&local_next(f.next.as_deref())).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn logout(
    axum::extract::Extension(csrf): axum::extract::Extension<Csrf>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&headers, &csrf, f.csrf.as_deref()) {
        return r;
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(header::SET_COOKIE, HeaderValue::from_static(CLEAR_TOKEN));
    r
}

async fn static_file(State(_): State<Ui>, axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, ctype): (&'static [u8], &str) = match file.as_str() {
        "app.css" => (APP_CSS.as_bytes(), "text/css; charset=utf-8"),
        "app.js" => (APP_JS.as_bytes(), "text/javascript; charset=utf-8"),
        other => match VENDORED.iter().find(|(n, _, _)| *n == other) {
            Some((_, b, _)) => (b, "text/javascript; charset=utf-8"),
            None => return error_page(StatusCode::NOT_FOUND, "no such file", None),
        },
    };
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_str(ctype).unwrap_or(HeaderValue::from_static("text/plain")));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_files_match_their_checksums() {
        for (name, bytes, sum) in VENDORED {
            assert_eq!(hex::encode(Sha256::digest(bytes)), *sum, "{name}");
        }
    }

    #[test]
    fn origins_and_next_paths() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8888"));
        assert!(check_origin(&h).is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8888"));
        assert!(check_origin(&h).is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(check_origin(&h).is_err());
        assert_eq!(local_next(Some("//evil.example/x")), "/runs");
        assert_eq!(local_next(Some("https://evil.example")), "/runs");
        assert_eq!(local_next(Some("/runs/abc?dag=x")), "/runs/abc?dag=x");
    }
}
