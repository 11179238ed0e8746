//! HTML-level tests of the notebooks page under namespaces: a namespace token sees only its namespace's
//! notebooks (state and reason shown), its buttons cannot stop another namespace's notebook (403, nothing
//! changed), and the proxy at `/notebook/…` takes the signed-in session cookie with the same checks. The
//! real routers over a real SQLite store, requests in-process.

mod support;
use support::env;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use scraper::{Html, Selector};
use tower::ServiceExt as _;

use secondrow_store::notebooks::{NewNotebook, NotebookState};

const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ADMIN: &str = "admin-token-0123456789";

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn cookies(token: &str) -> String {
    format!("secondrow_csrf={CSRF}; secondrow_token={token}")
}

fn texts(body: &str, css: &str) -> Vec<String> {
    let doc = Html::parse_document(body);
    doc.select(&Selector::parse(css).unwrap()).map(|e| e.text().collect::<String>()).collect()
}

#[tokio::test]
async fn a_namespace_sees_and_changes_only_its_notebooks() {
    let e = env(Some(ADMIN)).await;
    let store = e.state.store();
    for (ns, name) in [("ns-a", "nb1"), ("ns-b", "nb2")] {
        store
            .create_notebook(&NewNotebook {
                namespace: ns,
                name,
                python: None,
                packages: &["pandas".to_owned()],
                secret: "s",
                workspace: "/w",
            })
            .await
            .unwrap();
    }
    store.notebook_down("ns-a", "nb1", NotebookState::Failed, Some("JupyterLab exited with code 1")).await.unwrap();
    let (_, token_a) = store.create_api_token("ns-a", "t").await.unwrap();

    let get = |uri: &str| Request::get(uri).header(header::COOKIE, cookies(&token_a)).body(Body::empty()).unwrap();
    let (status, body) = send(&e.app, get("/notebooks")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows = texts(&body, "tr[data-notebook]");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].contains("nb1") && rows[0].contains("Failed") && rows[0].contains("exited with code 1"),
        "{rows:?}"
    );
    assert!(!body.contains("nb2"));

    let stop = Request::post("/notebooks/ns-b/nb2/do/stop")
        .header(header::COOKIE, cookies(&token_a))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={CSRF}")))
        .unwrap();
    let (status, _) = send(&e.app, stop).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(store.get_notebook("ns-b", "nb2").await.unwrap().state, NotebookState::Starting);

    // The proxy takes the session cookie: another namespace's notebook is refused, the own one answers with
    // its state (not running, so no Jupyter behind it).
    let (status, _) = send(&e.app, get("/notebook/ns-b/nb2/lab")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = send(&e.app, get("/notebook/ns-a/nb1/lab")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("is Failed"), "{body}");
    let anonymous = Request::get("/notebook/ns-a/nb1/lab").body(Body::empty()).unwrap();
    assert_eq!(send(&e.app, anonymous).await.0, StatusCode::UNAUTHORIZED);
}
