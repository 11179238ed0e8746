//! HTML-level tests of the deployments page under namespaces: a namespace token sees only its namespace's
//! deployments (and their rates), its version-rows fragment and traffic forms refuse another namespace's
//! deployment (403, nothing changed, even with a valid CSRF token), and the admin sees every deployment with
//! its namespace. The real router over a real SQLite store and the real model repository, requests
//! in-process, pages parsed with an HTML parser.

mod support;
use support::{env, Env};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use scraper::{Html, Selector};
use serde_json::json;
use tower::ServiceExt as _;

const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ADMIN: &str = "admin-token-0123456789";

struct Resp {
    status: StatusCode,
    body: String,
}

impl Resp {
    fn select(&self, css: &str) -> Vec<String> {
        let doc = Html::parse_document(&self.body);
        let sel = Selector::parse(css).unwrap();
        doc.select(&sel).map(|e| e.text().collect::<String>()).collect()
    }
    fn attrs(&self, css: &str, attr: &str) -> Vec<String> {
        let doc = Html::parse_document(&self.body);
        let sel = Selector::parse(css).unwrap();
        doc.select(&sel).filter_map(|e| e.value().attr(attr).map(str::to_owned)).collect()
    }
    /// A `<tbody>` fragment, parsed inside a table (where a parser keeps it).
    fn in_table(self) -> Resp {
        Resp { body: format!("<table>{}</table>", self.body), ..self }
    }
}

async fn send(app: &Router, req: Request<Body>) -> Resp {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap();
    Resp { status, body: String::from_utf8_lossy(&bytes).into_owned() }
}

fn cookies(token: &str) -> String {
    format!("secondrow_csrf={CSRF}; secondrow_token={token}")
}

async fn get(app: &Router, uri: &str, token: &str) -> Resp {
    send(app, Request::get(uri).header(header::COOKIE, cookies(token)).body(Body::empty()).unwrap()).await
}

/// A form post with the session's cookies and a valid CSRF token.
async fn post(app: &Router, uri: &str, token: &str, fields: &[(&str, &str)]) -> Resp {
    let mut body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    body.push(format!("csrf={CSRF}"));
    let req = Request::post(uri)
        .header(header::COOKIE, cookies(token))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.join("&")))
        .unwrap();
    send(app, req).await
}

/// A SecondRow model file the model server loads: linear regression `y = a + 2b + 0.5`.
fn model_file(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    let model = json!({
        "format": "secondrow-model", "version": 1, "kind": "linear_regression", "task": "regression",
        "label": "y", "feature_names": ["a", "b"], "classes": [], "transformer": null, "params": {}, "training": {},
        "estimator": {"algorithm": "linear", "coef": [1.0, 2.0], "intercept": 0.5, "alpha": 0.0}
    });
    std::fs::write(&path, model.to_string()).unwrap();
    path.display().to_string()
}

/// Deploys versions 1 and 2 of `name` into `namespace` with the admin token (paths need it).
async fn deploy(e: &Env, name: &str, namespace: &str) {
    for version in ["1", "2"] {
        let file = model_file(&e.root, &format!("{name}-{version}.json"));
        let body = json!({"name": name, "version": version, "source": {"path": file}, "namespace": namespace,
                          "make_default": false});
        let req = Request::post("/apis/v2beta1/deployments")
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let r = send(&e.app, req).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
}

#[tokio::test]
async fn a_namespace_sees_and_changes_only_its_deployments() {
    let e = env(Some(ADMIN)).await;
    let store = e.state.store();
    let (_, a) = store.create_api_token("team-a", "ui").await.unwrap();
    deploy(&e, "alpha", "team-a").await;
    deploy(&e, "bravo", "team-b").await;
    // Requests served by the other namespace's deployment.
    let theirs = e.state.deployments.repository().metrics().version("bravo", "1");
    for _ in 0..7 {
        theirs.observe(std::time::Duration::from_micros(300), false);
    }

    // team-a's page: its deployment only, nothing of the other's (name, versions, rates), no namespace line.
    let r = get(&e.app, "/deployments", &a).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.attrs("section.deployment", "data-deployment"), ["alpha"]);
    assert!(!r.body.contains("bravo"), "another namespace's deployment shows");
    assert!(r.select(".deployment-namespace").is_empty());
    assert_eq!(r.attrs("section.deployment tbody", "hx-get"), ["/deployments/alpha/rows"]);

    // The rows fragment: its own, not the other's.
    let r = get(&e.app, "/deployments/alpha/rows", &a).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.in_table().attrs("tr", "data-version"), ["1", "2"]);
    let r = get(&e.app, "/deployments/bravo/rows", &a).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.body.contains("td class=\"requests\""), "{}", r.body);
    assert!(!r.body.contains("/s<"), "a rate leaked: {}", r.body);

    // Traffic changes to the other's deployment: 403 with a valid CSRF token, and nothing changes.
    let before = store.get_deployment("bravo").await.unwrap();
    let r = post(&e.app, "/deployments/bravo/traffic", &a, &[("default", "2")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = post(&e.app, "/deployments/bravo/traffic", &a, &[("canary", "2"), ("percent", "50")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = post(&e.app, "/deployments/bravo/traffic", &a, &[("canary", ""), ("percent", "0")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let after = store.get_deployment("bravo").await.unwrap();
    assert_eq!((after.default_version, after.canary), (before.default_version, before.canary));
    // Its own traffic form works.
    let r = post(&e.app, "/deployments/alpha/traffic", &a, &[("canary", "2"), ("percent", "20")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let mine = store.get_deployment("alpha").await.unwrap();
    assert_eq!(mine.canary.as_ref().map(|c| (c.version.as_str(), c.percent)), Some(("2", 20)));
}

#[tokio::test]
async fn the_admin_sees_every_deployment_with_its_namespace() {
    let e = env(Some(ADMIN)).await;
    deploy(&e, "alpha", "team-a").await;
    deploy(&e, "bravo", "team-b").await;
    let r = get(&e.app, "/deployments", ADMIN).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.attrs("section.deployment", "data-deployment"), ["alpha", "bravo"]);
    assert_eq!(r.select("section.deployment .deployment-namespace code.namespace"), ["team-a", "team-b"]);
    // The admin reads and changes any namespace's deployment.
    let r = get(&e.app, "/deployments/bravo/rows", ADMIN).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = post(&e.app, "/deployments/bravo/traffic", ADMIN, &[("default", "2")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(e.state.store().get_deployment("bravo").await.unwrap().default_version, "2");
}
