//! Access control: who is calling ([`Caller`]), resolved once per request by [`authenticate`], and the one
//! set of checks every handler applies to the namespaces of what it reads, creates, changes or deletes.
//!
//! Auth is enforced when the server has an admin token (`--auth-token`) or the store holds at least one
//! API token (`secondrow tokens create`; revoked tokens count, so revoking the last token never opens the
//! server). Otherwise every caller is [`Caller::Anonymous`] with full access, as without auth.
//! `healthz` (kfp.Client calls it in its constructor), `openapi.json` (a static description) and `/metrics`
//! (aggregate counts and latencies for scrapers, no names or ids) stay open.
//!
//! Namespaces follow KFP multi-user mode: experiments carry one, runs and recurring runs belong to their
//! experiment's, pipelines are shared (namespace `""`, readable by all) or private to one namespace, model
//! deployments carry one (`""`: the admin's).
//! A namespace token reaches only its namespace (plus reading shared pipelines); anything else is a 403
//! naming the namespace, refused before anything is written.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use secondrow_store::{token_digest, Experiment, PipelineRecord, RecurringRunRecord, RunRecord, Store};

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Paths served without a token.
const OPEN_PATHS: &[&str] = &["/apis/v2beta1/healthz", "/apis/v2beta1/openapi.json", "/metrics"];

/// The server's auth settings.
#[derive(Default)]
pub struct Auth {
    /// Digest of the admin token; compared as digests, so comparison time says nothing about the token.
    admin_digest: Option<String>,
    /// Set once the store was seen holding a token; tokens are revoked, never deleted, so it stays set.
    tokens_exist: AtomicBool,
}

impl Auth {
    pub fn new(admin_token: Option<&str>) -> Auth {
        Auth { admin_digest: admin_token.map(token_digest), tokens_exist: AtomicBool::new(false) }
    }

    /// Whether requests need a token now.
    pub async fn enforced(&self, store: &Store) -> ApiResult<bool> {
        if self.admin_digest.is_some() || self.tokens_exist.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let exist = store.has_api_tokens().await?;
        if exist {
            self.tokens_exist.store(true, Ordering::Relaxed);
        }
        Ok(exist)
    }

    pub(crate) fn is_admin(&self, token: &str) -> bool {
        self.admin_digest.as_deref() == Some(token_digest(token).as_str())
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The `--auth-token` holder: every namespace.
    Admin,
    /// A token created for one namespace.
    Namespace(String),
    /// Auth is off: every namespace.
    Anonymous,
}

/// Middleware: resolves the [`Caller`] from `Authorization: Bearer …` (401 when auth is on and the token is
/// missing, unknown or revoked) and hands it to the handlers as a request extension.
pub async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    // A notebook's KFP endpoint checks the notebook's secret itself, then calls the API again with the caller
    // already resolved (a request extension, which no client can send).
    if OPEN_PATHS.contains(&req.uri().path())
        || req.uri().path().starts_with("/kfp-notebook/")
        || req.extensions().get::<Caller>().is_some()
    {
        return next.run(req).await;
    }
    // A browser opening a notebook sends the web UI's session cookie, not a header.
    if req.uri().path().starts_with("/notebook/") && !req.headers().contains_key(header::AUTHORIZATION) {
        if let Some(bearer) =
            session_cookie(req.headers()).and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok())
        {
            req.headers_mut().insert(header::AUTHORIZATION, bearer);
        }
    }
    let registry_path = crate::registry::is_registry_path(req.uri().path());
    match resolve(&s, req.headers()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => {
            let unauthenticated = matches!(e, ApiError::Unauthenticated(_));
            let mut resp = if registry_path { crate::registry::error_response(e) } else { e.into_response() };
            if unauthenticated {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            resp
        }
    }
}

/// The web UI's session cookie (`secondrow_token`, set by its `/login`; HttpOnly, SameSite=Strict).
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "secondrow_token")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// What the `Authorization` header holds.
enum Presented<'a> {
    Nothing,
    Bearer(&'a str),
    Malformed,
}

fn presented(headers: &HeaderMap) -> Presented<'_> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Presented::Nothing };
    let Ok(value) = value.to_str() else { return Presented::Malformed };
    match value.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Presented::Bearer(token.trim())
        }
        _ => Presented::Malformed,
    }
}

async fn resolve(s: &AppState, headers: &HeaderMap) -> ApiResult<Caller> {
    let presented = presented(headers);
    if let Presented::Bearer(token) = presented {
        if s.auth.is_admin(token) {
            return Ok(Caller::Admin);
        }
        if let Some(t) = s.store().find_api_token(token).await? {
            return Ok(Caller::Namespace(t.namespace));
        }
    }
    if !s.auth.enforced(s.store()).await? {
        return Ok(Caller::Anonymous);
    }
    Err(ApiError::Unauthenticated(match presented {
        Presented::Nothing => {
            "authentication required: send `Authorization: Bearer <token>` (kfp.Client(existing_token=...))".to_owned()
        }
        Presented::Malformed => "authorization header: expected `Bearer <token>`".to_owned(),
        Presented::Bearer(_) => "the bearer token is not valid (unknown or revoked)".to_owned(),
    }))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("no caller on the request: the auth middleware did not run".into()))
    }
}

impl Caller {
    /// The one namespace a namespace token is confined to; `None` for every namespace.
    pub fn confined_to(&self) -> Option<&str> {
        match self {
            Caller::Namespace(ns) => Some(ns),
            Caller::Admin | Caller::Anonymous => None,
        }
    }

    /// Refuses (403) reading or changing the `kind` `id` of `namespace` unless the caller may.
    pub fn check(&self, kind: &str, id: &str, namespace: &str) -> ApiResult<()> {
        match self.confined_to() {
            Some(mine) if mine != namespace => Err(ApiError::PermissionDenied(if namespace.is_empty() {
                format!("permission denied: {kind} `{id}` is shared; only the admin token may change it")
            } else {
                format!("permission denied: {kind} `{id}` is in namespace `{namespace}`; this token is for namespace `{mine}`")
            })),
            _ => Ok(()),
        }
    }

    /// Refuses (403) a request naming another namespace than the token's.
    fn check_namespace(&self, requested: &str) -> ApiResult<()> {
        match self.confined_to() {
            Some(mine) if mine != requested => Err(ApiError::PermissionDenied(format!(
                "permission denied: namespace `{requested}`; this token is for namespace `{mine}`"
            ))),
            _ => Ok(()),
        }
    }

    /// The namespace of a new object: the requested one; when none (or `""`) is requested, the token's own
    /// (for the admin and anonymous, `""`: shared).
    pub fn namespace_for_new(&self, requested: Option<&str>) -> ApiResult<String> {
        match (requested.filter(|n| !n.is_empty()), self.confined_to()) {
            (Some(ns), _) => {
                self.check_namespace(ns)?;
                Ok(ns.to_owned())
            }
            (None, Some(mine)) => Ok(mine.to_owned()),
            (None, None) => Ok(String::new()),
        }
    }

    /// The namespace a listing is limited to: a token's own when none (or `""`) is requested, 403 for
    /// another; for the admin and anonymous, what was requested (`None`: every namespace).
    pub fn list_namespace<'a>(&'a self, requested: Option<&'a str>) -> ApiResult<Option<&'a str>> {
        match (requested.filter(|n| !n.is_empty()), self.confined_to()) {
            (Some(ns), Some(_)) => self.check_namespace(ns).map(|()| Some(ns)),
            (None, Some(mine)) => Ok(Some(mine)),
            (_, None) => Ok(requested),
        }
    }

    /// The namespace filter of a run or recurring-run listing: none when it is limited to an experiment the
    /// caller may reach, else [`Caller::list_namespace`].
    pub async fn list_scope<'a>(
        &'a self,
        s: &AppState,
        experiment_id: Option<&str>,
        namespace: Option<&'a str>,
    ) -> ApiResult<Option<&'a str>> {
        match experiment_id {
            Some(e) => self.experiment(s, e).await.map(|_| None),
            None => self.list_namespace(namespace),
        }
    }

    /// Whether a listed object of `namespace` is visible (pipelines: shared ones too when `shared_ok`).
    pub fn sees(&self, namespace: &str, shared_ok: bool) -> bool {
        self.confined_to().is_none_or(|mine| mine == namespace || (shared_ok && namespace.is_empty()))
    }

    /// The experiment `id`, if the caller may reach it.
    pub async fn experiment(&self, s: &AppState, id: &str) -> ApiResult<Experiment> {
        let e = s.store().get_experiment(id).await?;
        self.check("experiment", id, &e.namespace)?;
        Ok(e)
    }

    /// The run `id`, if the caller may reach it.
    pub async fn run(&self, s: &AppState, id: &str) -> ApiResult<RunRecord> {
        let r = s.store().get_run(id).await?;
        self.check("run", id, &r.namespace)?;
        Ok(r)
    }

    /// The recurring run `id`, if the caller may reach it.
    pub async fn recurring_run(&self, s: &AppState, id: &str) -> ApiResult<RecurringRunRecord> {
        let r = s.store().get_recurring_run(id).await?;
        self.check("recurring run", id, &r.namespace)?;
        Ok(r)
    }

    /// The pipeline `id`, if the caller may read it (`change`: change it; shared pipelines need the admin).
    pub async fn pipeline(&self, s: &AppState, id: &str, change: bool) -> ApiResult<PipelineRecord> {
        let p = s.store().get_pipeline(id).await?;
        if change || !p.namespace.is_empty() {
            self.check("pipeline", id, &p.namespace)?;
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(n: &str) -> Caller {
        Caller::Namespace(n.to_owned())
    }

    #[test]
    fn namespace_tokens_stay_in_their_namespace() {
        let a = ns("a");
        assert!(a.check("run", "r1", "a").is_ok());
        let err = a.check("run", "r1", "b").unwrap_err();
        assert!(matches!(&err, ApiError::PermissionDenied(m) if m.contains("namespace `b`")), "{err}");
        assert!(matches!(a.check("pipeline", "p", ""), Err(ApiError::PermissionDenied(m)) if m.contains("shared")));
        for all in [Caller::Admin, Caller::Anonymous] {
            assert!(all.check("run", "r1", "b").is_ok());
            assert_eq!(all.namespace_for_new(None).unwrap(), "");
            assert_eq!(all.namespace_for_new(Some("b")).unwrap(), "b");
            assert_eq!(all.list_namespace(Some("")).unwrap(), Some(""));
            assert_eq!(all.list_namespace(None).unwrap(), None);
        }
        assert_eq!(a.namespace_for_new(None).unwrap(), "a");
        assert_eq!(a.namespace_for_new(Some("")).unwrap(), "a");
        assert!(matches!(a.namespace_for_new(Some("b")), Err(ApiError::PermissionDenied(m)) if m.contains("`b`")));
        assert_eq!(a.list_namespace(Some("")).unwrap(), Some("a"));
        assert_eq!(a.list_namespace(None).unwrap(), Some("a"));
        assert!(a.list_namespace(Some("b")).is_err());
        assert!(a.sees("a", false) && a.sees("", true) && !a.sees("", false) && !a.sees("b", true));
    }

    #[test]
    fn bearer_header_forms() {
        let mut h = HeaderMap::new();
        assert!(matches!(presented(&h), Presented::Nothing));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert!(matches!(presented(&h), Presented::Bearer("abc")));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(matches!(presented(&h), Presented::Malformed));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(matches!(presented(&h), Presented::Malformed));
    }
}
