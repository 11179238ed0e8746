//! The two ways in to and out of a notebook.
//!
//! In: `/notebook/NS/NAME/...` is forwarded, HTTP and WebSocket alike (an `Upgrade` request is sent on and,
//! once the notebook answers 101, both connections are joined byte for byte), to the notebook's loopback
//! port, after the API's token and namespace checks; the caller's `Authorization` is replaced by the
//! notebook's secret, which no client ever sees.
//!
//! Out: kfp.Client() inside a notebook reads only `KF_PIPELINES_ENDPOINT` (with a host set, kfp 2.14 sends
//! no token of its own), so that endpoint is `/kfp-notebook/NS/NAME/SECRET`: requests under it are the API's,
//! made as the notebook's namespace once the secret is checked.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tower::ServiceExt as _;

use secondrow_store::notebooks::NotebookState;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Sends `req` to the notebook on `port` over a new loopback connection (upgrades allowed).
async fn send(port: u16, req: hyper::Request<Body>) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "notebook connection ended with an error");
        }
    });
    sender.send_request(req).await.map_err(|e| e.to_string())
}

/// `GET path` on a notebook with its secret: (status, body).
pub(crate) async fn get(port: u16, path: &str, secret: &str) -> Result<(u16, Vec<u8>), String> {
    use http_body_util::BodyExt as _;
    let req = hyper::Request::get(path)
        .header(header::HOST, format!("127.0.0.1:{port}"))
        .header(header::AUTHORIZATION, format!("token {secret}"))
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), send(port, req))
        .await
        .map_err(|_| "timed out".to_owned())??;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes().to_vec();
    Ok((status, body))
}

/// `/notebook/NS/NAME[/...]`: the caller must reach namespace NS; the notebook must be running.
pub async fn forward(
    State(s): State<AppState>,
    caller: Caller,
    Path(params): Path<Vec<(String, String)>>,
    mut req: Request,
) -> ApiResult<Response> {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or_default();
    let (ns, name) = (param("namespace"), param("name"));
    caller.check("notebook", &format!("{ns}/{name}"), ns)?;
    let nb = s.store().get_notebook(ns, name).await?;
    let port = match (nb.state, nb.port) {
        (NotebookState::Running, Some(port)) => port,
        (NotebookState::Starting, _) => {
            return Err(ApiError::Unavailable(format!("notebook `{ns}/{name}` is starting; try again shortly")))
        }
        (state, _) => {
            return Err(ApiError::FailedPrecondition(format!(
                "notebook `{ns}/{name}` is {state}{}",
                nb.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            )))
        }
    };
    let headers = req.headers_mut();
    headers.remove(header::AUTHORIZATION);
    // SecondRow's own cookies (the UI's session token, its CSRF secret) stay here; Jupyter's travel.
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| !kv.is_empty() && !kv.starts_with("secondrow_"))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
        if !kept.is_empty() {
            headers.insert(header::COOKIE, v);
        }
    }
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("token {}", nb.secret)).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&format!("127.0.0.1:{port}")).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    // Only the path and query travel: the notebook serves the same base path.
    let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".to_owned());
    *req.uri_mut() = path.parse::<Uri>().map_err(|e| ApiError::invalid(e.to_string()))?;
    let mut resp = send(port, req)
        .await
        .map_err(|e| ApiError::Unavailable(format!("notebook `{ns}/{name}` did not answer: {e}")))?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(ApiError::Internal("the notebook switched protocols unasked".into()));
        };
        let server_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match (client_upgrade.await, server_upgrade.await) {
                (Ok(client), Ok(server)) => {
                    let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(server)).await;
                }
                (c, n) => tracing::debug!(client = c.is_ok(), notebook = n.is_ok(), "a WebSocket upgrade failed"),
            }
        });
    }
    let (parts, body) = resp.into_parts();
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// `/kfp-notebook/NS/NAME/SECRET/apis/...`: the API, as namespace NS, for a caller holding the notebook's
/// secret (kfp.Client() inside the notebook). Anything else is a 401.
pub async fn kfp_api(
    State(s): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    mut req: Request,
) -> Response {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or_default();
    let (ns, name, secret, rest) = (param("namespace"), param("name"), param("secret"), param("rest"));
    let known = s.store().get_notebook(ns, name).await.ok();
    // Compared as digests: the comparison's time says nothing about the secret.
    let digest = |t: &str| Sha256::digest(t.as_bytes());
    if known.is_none_or(|nb| digest(&nb.secret) != digest(secret)) {
        return ApiError::Unauthenticated("unknown notebook or wrong notebook secret".into()).into_response();
    }
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    match format!("/{rest}{query}").parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(e) => return ApiError::invalid(e.to_string()).into_response(),
    }
    req.headers_mut().remove(header::AUTHORIZATION);
    req.extensions_mut().insert(Caller::Namespace(ns.to_owned()));
    match crate::router(s.clone()).oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// The KFP endpoint a notebook's kfp.Client() uses.
pub fn kfp_endpoint(api_url: &str, ns: &str, name: &str, secret: &str) -> String {
    format!("{}/kfp-notebook/{ns}/{name}/{secret}", api_url.trim_end_matches('/'))
}
