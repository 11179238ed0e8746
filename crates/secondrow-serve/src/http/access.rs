//! Who may use the serving port. With an [`Authorizer`] set (`secondrow serve --auth-token`, or
//! `secondrow server` with access control on), every request but the liveness probes (`/`,
//! `/v2/health/live`, `/v2/health/ready`) presents `Authorization: Bearer <token>`, and the authorizer
//! decides per [`Access`]: reading what is served, using one model, or managing the repository.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// Listing models, server metadata, `/metrics`.
    Read,
    /// Metadata, readiness and inference of one model (its name as it appears in the path).
    Model(&'a str),
    /// `/v2/repository/*`: index, load, unload, traffic.
    Manage,
}

/// A boxed future, as an object-safe trait returns one.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// Decides whether `token` (None: no `Authorization` header) grants `access`: `Ok`, or
/// [`Error::Unauthenticated`] / [`Error::PermissionDenied`].
pub trait Authorizer: Send + Sync + 'static {
    fn authorize<'a>(&'a self, token: Option<&'a str>, access: Access<'a>) -> AuthFuture<'a>;
}

/// One token that grants everything (`secondrow serve --auth-token`). Compared as SHA-256 digests, so
/// the comparison's time says nothing about the token.
pub struct SingleToken {
    digest: [u8; 32],
}

impl SingleToken {
    pub fn new(token: &str) -> SingleToken {
        SingleToken { digest: Sha256::digest(token.as_bytes()).into() }
    }
}

impl Authorizer for SingleToken {
    fn authorize<'a>(&'a self, token: Option<&'a str>, _access: Access<'a>) -> AuthFuture<'a> {
        let granted = token.is_some_and(|t| <[u8; 32]>::from(Sha256::digest(t.as_bytes())) == self.digest);
        Box::pin(async move {
            match token {
                _ if granted => Ok(()),
                None => Err(Error::Unauthenticated(MISSING.into())),
                Some(_) => Err(Error::Unauthenticated(INVALID.into())),
            }
        })
    }
}

/// The message of a request without a token.
pub const MISSING: &str = "authentication required: send `Authorization: Bearer <token>`";
/// The message of a request with a token that is not valid.
pub const INVALID: &str = "the bearer token is not valid";

/// The [`Access`] a path needs; `None` for the open liveness probes.
pub fn access_of(path: &str) -> Option<Access<'_>> {
    if matches!(path, "/" | "/v2/health/live" | "/v2/health/ready") {
        return None;
    }
    if path == "/v2/repository" || path.starts_with("/v2/repository/") {
        return Some(Access::Manage);
    }
    if let Some(rest) = path.strip_prefix("/v2/models/") {
        return Some(Access::Model(rest.split('/').next().unwrap_or(rest)));
    }
    if let Some(rest) = path.strip_prefix("/v1/models/") {
        return Some(Access::Model(rest.rsplit_once(':').map_or(rest, |(name, _)| name)));
    }
    Some(Access::Read)
}

/// The bearer token of a request: `Ok(None)` without an `Authorization` header.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let malformed = || Error::Unauthenticated("authorization header: expected `Bearer <token>`".into());
    let value = value.to_str().map_err(|_| malformed())?;
    match value.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(malformed()),
    }
}

/// Middleware: refuses requests the authorizer does not grant (401 with `WWW-Authenticate: Bearer`, or
/// 403), before any body is read (the router's error answers to requests with a body close the connection).
pub(super) async fn authorize(State(authorizer): State<Arc<dyn Authorizer>>, req: Request, next: Next) -> Response {
    let Some(access) = access_of(req.uri().path()) else { return next.run(req).await };
    let verdict = match bearer(req.headers()) {
        Ok(token) => authorizer.authorize(token, access).await,
        Err(e) => Err(e),
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err(e) => {
            let unauthenticated = matches!(e, Error::Unauthenticated(_));
            let mut resp = e.into_response();
            if unauthenticated {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_need_the_access_they_name() {
        assert_eq!(access_of("/v2/health/ready"), None);
        assert_eq!(access_of("/"), None);
        assert_eq!(access_of("/v2/repository/models/m/load"), Some(Access::Manage));
        assert_eq!(access_of("/v2/repository/index"), Some(Access::Manage));
        assert_eq!(access_of("/v2/models/m/versions/2/infer"), Some(Access::Model("m")));
        assert_eq!(access_of("/v1/models/m:predict"), Some(Access::Model("m")));
        assert_eq!(access_of("/v2/models"), Some(Access::Read));
        assert_eq!(access_of("/metrics"), Some(Access::Read));
    }

    #[tokio::test]
    async fn a_single_token_grants_only_itself() {
        let auth = SingleToken::new("a-long-enough-token");
        assert!(auth.authorize(Some("a-long-enough-token"), Access::Manage).await.is_ok());
        assert!(matches!(auth.authorize(Some("wrong"), Access::Read).await, Err(Error::Unauthenticated(_))));
        assert!(matches!(auth.authorize(None, Access::Model("m")).await, Err(Error::Unauthenticated(_))));
    }
}
