//! A small async client for a running `secondrow server` (the KFP v2beta1 API) over HTTP or HTTPS.
//!
//! Paths given to the methods are relative to the API base `/apis/v2beta1` (`client.get_json("/runs/ID")`).
//! Every request carries `authorization: Bearer TOKEN` when a token is set. A non-2xx answer becomes
//! [`ClientError::Api`] with the status and the message from KFP's error JSON (`{"error", "code", "message"}`).
//! `https://` uses rustls with the system's trusted roots; `SSL_CERT_FILE` / `SSL_CERT_DIR` name other roots
//! (a private CA), as for most TLS clients.

use std::path::Path;
use std::time::Duration;

use secondrow_error::ErrorKind;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

/// The API base every path is appended to.
pub const API_BASE: &str = "/apis/v2beta1";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL is malformed or uses an unsupported scheme.
    #[error("server URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    /// No answer: connection refused, reset, timed out.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server answered with a non-2xx status.
    #[error("server answered {status} for {method} {path}: {message}")]
    Api { method: String, path: String, status: u16, message: String },
    /// A 2xx answer that is not what was expected (not JSON, or a broken stream).
    #[error("reading the answer to {method} {path}: {reason}")]
    BadAnswer { method: String, path: String, reason: String },
    /// A local file could not be read or written.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

impl ClientError {
    /// The HTTP status of an API error (400, 404, …); `None` for transport and local errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The class of the error: an API answer by its status, a bad URL the user's, no answer `Unavailable`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::BadUrl { .. } => ErrorKind::InvalidInput,
            ClientError::Unreachable { .. } => ErrorKind::Unavailable,
            ClientError::Api { status, .. } => match status {
                401 => ErrorKind::Unauthenticated,
                403 => ErrorKind::PermissionDenied,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::AlreadyExists,
                413 => ErrorKind::TooLarge,
                503 => ErrorKind::Unavailable,
                400..=499 => ErrorKind::InvalidInput,
                _ => ErrorKind::Internal,
            },
            ClientError::BadAnswer { .. } | ClientError::File { .. } => ErrorKind::Internal,
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

/// A connection to one server. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `http://host:port` without a trailing slash.
    root: String,
    token: Option<String>,
}

impl Client {
    /// `server`: `http://host:port` (a path prefix is kept) or `host:port`. `token`: sent as a bearer token.
    pub fn new(server: &str, token: Option<String>) -> ClientResult<Client> {
        let bad = |reason: &str| ClientError::BadUrl { url: server.to_owned(), reason: reason.to_owned() };
        let with_scheme = if server.contains("://") { server.to_owned() } else { format!("http://{server}") };
        let url = url::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(bad(&format!("unsupported scheme `{other}`; use http:// or https://"))),
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host"))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a query or fragment is not allowed"));
        }
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        let loopback = host == "localhost"
            || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if loopback {
            // An HTTP proxy from the environment must not intercept loopback traffic.
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| bad(&e.to_string()))?;
        let root = with_scheme.trim_end_matches('/').to_owned();
        Ok(Client { http, root, token: token.filter(|t| !t.is_empty()) })
    }

    /// The server URL as given (without a trailing slash).
    pub fn server(&self) -> &str {
        &self.root
    }

    /// The absolute URL of an API path (`/runs/ID` → `http://host:port/apis/v2beta1/runs/ID`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{API_BASE}{path}", self.root)
    }

    /// `GET path` → JSON.
    pub async fn get_json(&self, path: &str) -> ClientResult<Value> {
        self.json_call(reqwest::Method::GET, path, &[], None).await
    }

    /// `GET path?query` → JSON.
    pub async fn get_json_query(&self, path: &str, query: &[(&str, String)]) -> ClientResult<Value> {
        self.json_call(reqwest::Method::GET, path, query, None).await
    }

    /// `POST path` with a JSON body → JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> ClientResult<Value> {
        self.json_call(reqwest::Method::POST, path, &[], Some(body)).await
    }

    /// `PATCH path` with a JSON body → JSON.
    pub async fn patch_json(&self, path: &str, body: &Value) -> ClientResult<Value> {
        self.json_call(reqwest::Method::PATCH, path, &[], Some(body)).await
    }

    /// `DELETE path` → JSON (KFP answers `{}`).
    pub async fn delete(&self, path: &str) -> ClientResult<Value> {
        self.json_call(reqwest::Method::DELETE, path, &[], None).await
    }

    /// `GET path?query` → the body as bytes (log text, small files).
    pub async fn get_bytes(&self, path: &str, query: &[(&str, String)]) -> ClientResult<Vec<u8>> {
        let response = self.send(reqwest::Method::GET, path, query, |r| r).await?;
        let bytes = response.bytes().await.map_err(|e| bad_answer("GET", path, e))?;
        Ok(bytes.to_vec())
    }

    /// `GET path` streamed into the file `dest` (parent folders created); returns the response's
    /// `content-type` and the number of bytes written. A failed transfer removes the partial file.
    pub async fn download(&self, path: &str, dest: &Path) -> ClientResult<(String, u64)> {
        let mut response = self.send(reqwest::Method::GET, path, &[], |r| r).await?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let file_err =
            |e: std::io::Error| ClientError::File { path: dest.display().to_string(), reason: e.to_string() };
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(file_err)?;
        }
        let mut file = tokio::fs::File::create(dest).await.map_err(file_err)?;
        let mut written = 0u64;
        let result: ClientResult<()> = async {
            while let Some(chunk) = response.chunk().await.map_err(|e| bad_answer("GET", path, e))? {
                file.write_all(&chunk).await.map_err(file_err)?;
                written += chunk.len() as u64;
            }
            file.flush().await.map_err(file_err)
        }
        .await;
        if let Err(e) = result {
            drop(file);
            let _ = tokio::fs::remove_file(dest).await;
            return Err(e);
        }
        Ok((content_type, written))
    }

    #[allow(dead_code)] // no caller in the CLI yet; part of the client's API
    /// `POST path?query` as `multipart/form-data` with one file part (`field`, `file_name`, `bytes`), as
    /// kfp's `upload_pipeline` sends it → JSON.
    pub async fn upload(
        &self,
        path: &str,
        query: &[(&str, String)],
        field: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> ClientResult<Value> {
        let (content_type, body) = multipart_body(field, file_name, bytes);
        let response = self
            .send(reqwest::Method::POST, path, query, |r| {
                r.header(reqwest::header::CONTENT_TYPE, content_type).body(body)
            })
            .await?;
        read_json("POST", path, response).await
    }

    async fn json_call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> ClientResult<Value> {
        let name = method.to_string();
        let response = self
            .send(method, path, query, |r| match body {
                Some(b) => r.json(b),
                None => r,
            })
            .await?;
        read_json(&name, path, response).await
    }

    /// Sends one request; a non-2xx status becomes [`ClientError::Api`].
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> ClientResult<reqwest::Response> {
        let mut request =
            self.http.request(method.clone(), self.url(path)).header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let response = build(request)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable { url: self.root.clone(), reason: error_chain(&e) })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(ClientError::Api {
            method: method.to_string(),
            path: path.to_owned(),
            status: status.as_u16(),
            message: error_message(&text, status),
        })
    }
}

/// The message of KFP's error JSON (`message`, else `error`), else the body text, else the status reason.
fn error_message(body: &str, status: reqwest::StatusCode) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        ["message", "error"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str).filter(|m| !m.is_empty()).map(str::to_owned))
    });
    from_json
        .or_else(|| Some(body.trim().to_owned()).filter(|b| !b.is_empty()))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned())
}

async fn read_json(method: &str, path: &str, response: reqwest::Response) -> ClientResult<Value> {
    let bytes = response.bytes().await.map_err(|e| bad_answer(method, path, e))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&bytes).map_err(|e| ClientError::BadAnswer {
        method: method.to_owned(),
        path: path.to_owned(),
        reason: format!("not JSON: {e}"),
    })
}

fn bad_answer(method: &str, path: &str, e: reqwest::Error) -> ClientError {
    ClientError::BadAnswer { method: method.to_owned(), path: path.to_owned(), reason: error_chain(&e) }
}

/// reqwest's top-level message hides the cause ("error sending request"); include the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[allow(dead_code)]
/// A `multipart/form-data` body with one file part; the boundary is chosen not to occur in the file.
fn multipart_body(field: &str, file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let mut n = 0u32;
    let boundary = loop {
        let b = format!("secondrow-boundary-{n:08x}");
        if !bytes.windows(b.len()).any(|w| w == b.as_bytes()) {
            break b;
        }
        n += 1;
    };
    let quote = |s: &str| s.replace(['"', '\r', '\n'], "_");
    let mut body = Vec::with_capacity(bytes.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            quote(field),
            quote(file_name)
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_schemes() {
        let c = Client::new("127.0.0.1:8888/", None).unwrap();
        assert_eq!(c.url("/runs/x"), "http://127.0.0.1:8888/apis/v2beta1/runs/x");
        let c = Client::new("http://localhost:1/prefix/", Some(String::new())).unwrap();
        assert_eq!(c.url("/healthz"), "http://localhost:1/prefix/apis/v2beta1/healthz");
        assert!(c.token.is_none());
        let c = Client::new("https://kubeflow.example.org/pipeline", None).unwrap();
        assert_eq!(c.url("/runs"), "https://kubeflow.example.org/pipeline/apis/v2beta1/runs");
        assert!(Client::new("ftp://h", None).is_err());
        assert!(Client::new("http://h:1/?a=b", None).is_err());
    }

    #[test]
    fn kfp_error_json_message() {
        let body = r#"{"error":"run `x` not found","code":5,"message":"run `x` not found","details":[]}"#;
        assert_eq!(error_message(body, reqwest::StatusCode::NOT_FOUND), "run `x` not found");
        assert_eq!(error_message("plain text\n", reqwest::StatusCode::BAD_GATEWAY), "plain text");
        assert_eq!(error_message("", reqwest::StatusCode::BAD_GATEWAY), "Bad Gateway");
    }

    #[test]
    fn multipart_boundary_avoids_the_content() {
        let content = b"a --secondrow-boundary-00000000 b";
        let (ct, body) = multipart_body("uploadfile", "p.yaml", content);
        assert!(ct.ends_with("secondrow-boundary-00000001"), "{ct}");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("name=\"uploadfile\"; filename=\"p.yaml\""));
        assert!(text.ends_with("--secondrow-boundary-00000001--\r\n"));
    }
}
