//! HTML-level tests of the management pages: pipeline upload, versions and delete; experiments create,
//! archive/restore and their page; recurring runs' form and page; cloning a run; deployments with their
//! traffic forms and request rates. The real router over a real SQLite store, requests in-process, pages
//! parsed with an HTML parser; every action checked for CSRF, namespaces (403) and escaping.

mod support;
use support::env;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use scraper::{Html, Selector};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use secondrow_store::NewRun;

const XSS: &str = "<script>alert(1)</script>";
const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ADMIN: &str = "admin-token-0123456789";

/// A pipeline with typed parameters and one quick container step.
fn spec(name: &str) -> Value {
    json!({
        "pipelineInfo": {"name": name}, "schemaVersion": "2.1.0", "sdkVersion": "kfp-2.14.6",
        "root": {
            "inputDefinitions": {"parameters": {
                "n": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3},
                "flag": {"parameterType": "BOOLEAN", "defaultValue": false},
                "msg": {"parameterType": "STRING", "defaultValue": "hi"}}},
            "dag": {"tasks": {"echo": {"taskInfo": {"name": "echo"}, "componentRef": {"name": "comp-echo"},
                    "inputs": {"parameters": {"msg": {"componentInputParameter": "msg"}}}}}}},
        "components": {"comp-echo": {"executorLabel": "exec-echo",
                       "inputDefinitions": {"parameters": {"msg": {"parameterType": "STRING"}}}}},
        "deploymentSpec": {"executors": {"exec-echo": {"container": {"image": "alpine",
                           "command": ["sh", "-c", "true"], "args": ["{{$.inputs.parameters['msg']}}"]}}}}
    })
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Resp {
    fn doc(&self) -> Html {
        Html::parse_document(&self.body)
    }
    fn select(&self, css: &str) -> Vec<String> {
        let doc = self.doc();
        let sel = Selector::parse(css).unwrap();
        doc.select(&sel).map(|e| e.text().collect::<String>()).collect()
    }
    fn attrs(&self, css: &str, attr: &str) -> Vec<String> {
        let doc = self.doc();
        let sel = Selector::parse(css).unwrap();
        doc.select(&sel).filter_map(|e| e.value().attr(attr).map(str::to_owned)).collect()
    }
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    /// A `<tbody>` fragment, parsed inside a table (where a parser keeps it).
    fn in_table(self) -> Resp {
        Resp { body: format!("<table>{}</table>", self.body), ..self }
    }
    fn error(&self) -> String {
        [self.select("#error-message"), self.select("#form-error")].concat().concat()
    }
}

async fn send(app: &Router, req: Request<Body>) -> Resp {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap();
    Resp { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

fn cookies(token: Option<&str>) -> String {
    match token {
        Some(t) => format!("secondrow_csrf={CSRF}; secondrow_token={t}"),
        None => format!("secondrow_csrf={CSRF}"),
    }
}

async fn get(app: &Router, uri: &str, token: Option<&str>) -> Resp {
    send(app, Request::get(uri).header(header::COOKIE, cookies(token)).body(Body::empty()).unwrap()).await
}

/// A urlencoded form post with the session's cookies; `csrf` is the form's token (`None`: left out).
async fn post(app: &Router, uri: &str, token: Option<&str>, csrf: Option<&str>, fields: &[(&str, &str)]) -> Resp {
    let mut body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    if let Some(c) = csrf {
        body.push(format!("csrf={c}"));
    }
    let req = Request::post(uri)
        .header(header::COOKIE, cookies(token))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.join("&")))
        .unwrap();
    send(app, req).await
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A multipart upload as a browser sends the upload forms.
async fn upload(app: &Router, uri: &str, token: Option<&str>, csrf: Option<&str>, name: &str, file: &[u8]) -> Resp {
    let b = "----boundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    let mut text = |k: &str, v: &str| {
        body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        )
    };
    if let Some(c) = csrf {
        text("csrf", c);
    }
    text("name", name);
    text("description", "uploaded from the form");
    body.extend_from_slice(
        format!("--{b}\r\nContent-Disposition: form-data; name=\"uploadfile\"; filename=\"p.yaml\"\r\nContent-Type: application/x-yaml\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    let req = Request::post(uri)
        .header(header::COOKIE, cookies(token))
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={b}"))
        .body(Body::from(body))
        .unwrap();
    send(app, req).await
}

/// No element of the page is a script other than the UI's own files, and no event-handler attribute exists.
fn assert_no_injected_markup(r: &Resp) {
    let doc = r.doc();
    for s in doc.select(&Selector::parse("script").unwrap()) {
        let src = s.value().attr("src").unwrap_or("");
        assert!(src.starts_with("/ui/static/"), "unexpected script element: {}", s.html());
    }
    for el in doc.select(&Selector::parse("*").unwrap()) {
        for (name, _) in el.value().attrs() {
            assert!(!name.starts_with("on"), "event handler attribute {name}");
        }
    }
    assert!(!r.body.contains(XSS), "an unescaped payload");
}

#[tokio::test]
async fn pipelines_upload_new_version_and_delete() {
    let e = env(None).await;
    let store = e.state.store();
    // The empty list opens the upload form.
    let r = get(&e.app, "/pipelines", None).await;
    assert_eq!(r.attrs("details.create", "open").len(), 1);
    assert_eq!(r.attrs("#upload-pipeline", "enctype"), ["multipart/form-data"]);
    assert_eq!(r.attrs("#upload-pipeline input[name=csrf]", "value"), [CSRF]);
    let yaml = serde_yaml_ng::to_string(&spec("uploaded")).unwrap();
    // Without the CSRF token, or with a wrong one: refused, nothing stored.
    for csrf in [None, Some("f".repeat(64))] {
        let r = upload(&e.app, "/pipelines/upload", None, csrf.as_deref(), XSS, yaml.as_bytes()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    assert!(store.list_pipelines(None).await.unwrap().is_empty());
    // The token must come before the file (the form's order), so nothing is read without it.
    let b = "----late";
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"uploadfile\"; filename=\"p.yaml\"\r\n\r\n{yaml}\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{CSRF}\r\n--{b}--\r\n"
    );
    let req = Request::post("/pipelines/upload")
        .header(header::COOKIE, cookies(None))
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={b}"))
        .body(Body::from(body))
        .unwrap();
    assert_eq!(send(&e.app, req).await.status, StatusCode::FORBIDDEN);
    assert!(store.list_pipelines(None).await.unwrap().is_empty());
    // A file that is not a pipeline: the API's message, nothing stored.
    let r = upload(&e.app, "/pipelines/upload", None, Some(CSRF), "bad", b"just: [text").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(!r.error().is_empty());
    assert!(store.list_pipelines(None).await.unwrap().is_empty());
    // Uploaded with a script for a name: stored as given, shown escaped.
    let r = upload(&e.app, "/pipelines/upload", None, Some(CSRF), XSS, yaml.as_bytes()).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let p = store.list_pipelines(None).await.unwrap().pop().unwrap();
    assert_eq!(p.display_name, XSS);
    assert_eq!(r.location(), format!("/pipelines/{}", p.id));
    let page = get(&e.app, r.location(), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_no_injected_markup(&page);
    assert_eq!(page.select("h1"), [XSS]);
    assert_eq!(page.attrs("#create-run input[name='p.n']", "value"), ["3"]);
    // A new version of it.
    let mut v2 = spec("uploaded");
    v2["root"]["inputDefinitions"]["parameters"]["n"]["defaultValue"] = json!(7);
    let uri = format!("/pipelines/{}/versions", p.id);
    let r = upload(&e.app, &uri, None, Some(CSRF), "second", serde_yaml_ng::to_string(&v2).unwrap().as_bytes()).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let versions = store.list_pipeline_versions(&p.id).await.unwrap();
    assert_eq!(versions.len(), 2);
    let second = versions.iter().find(|v| v.display_name == "second").unwrap();
    assert_eq!(r.location(), format!("/pipelines/{}?version={}", p.id, second.id));
    let page = get(&e.app, r.location(), None).await;
    assert_eq!(page.select("ul.versions li a").len(), 2);
    assert_eq!(page.attrs("#create-run input[name='p.n']", "value"), ["7"]);
    // Delete that version, then the pipeline.
    let r = post(&e.app, &format!("/pipelines/{}/do/delete", p.id), None, Some(CSRF), &[("version", &second.id)]).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, format!("/pipelines/{}", p.id).as_str()));
    assert_eq!(store.list_pipeline_versions(&p.id).await.unwrap().len(), 1);
    let r = post(&e.app, &format!("/pipelines/{}/do/delete", p.id), None, None, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post(&e.app, &format!("/pipelines/{}/do/delete", p.id), None, Some(CSRF), &[]).await;
    assert_eq!(r.location(), "/pipelines");
    assert!(store.list_pipelines(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn pipeline_changes_are_confined_to_the_namespace() {
    let e = env(Some(ADMIN)).await;
    let store = e.state.store();
    let (_, a) = store.create_api_token("team-a", "ui").await.unwrap();
    let (pb, _) = store.create_pipeline_with_version("b-only", "", "team-b", "v1", &spec("b"), "d").await.unwrap();
    let yaml = serde_yaml_ng::to_string(&spec("x")).unwrap();
    // team-a cannot add a version to, or delete, team-b's pipeline.
    let r =
        upload(&e.app, &format!("/pipelines/{}/versions", pb.id), Some(&a), Some(CSRF), "v2", yaml.as_bytes()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = post(&e.app, &format!("/pipelines/{}/do/delete", pb.id), Some(&a), Some(CSRF), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(store.list_pipeline_versions(&pb.id).await.unwrap().len(), 1);
    // Its own upload goes into its namespace.
    let r = upload(&e.app, "/pipelines/upload", Some(&a), Some(CSRF), "mine", yaml.as_bytes()).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let mine = store.list_pipelines(None).await.unwrap().into_iter().find(|p| p.display_name == "mine").unwrap();
    assert_eq!(mine.namespace, "team-a");
    // A schedule form of the other namespace's pipeline is refused too.
    let r = get(&e.app, &format!("/pipelines/{}/schedule", pb.id), Some(&a)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let versions = store.list_pipeline_versions(&pb.id).await.unwrap();
    let fields = [
        ("version", versions[0].id.as_str()),
        ("name", "x"),
        ("kind", "cron"),
        ("cron", "0 0 * * * *"),
        ("max_concurrency", "1"),
    ];
    let r = post(&e.app, &format!("/pipelines/{}/schedule", pb.id), Some(&a), Some(CSRF), &fields).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(store.list_recurring_runs(false).await.unwrap().is_empty());
    // Through htmx (the token in a header), an action answers with HX-Redirect.
    let req = Request::post(format!("/pipelines/{}/do/delete", mine.id))
        .header(header::COOKIE, cookies(Some(&a)))
        .header("hx-request", "true")
        .header("x-csrf-token", CSRF)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    let r = send(&e.app, req).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.headers.get("hx-redirect").unwrap(), "/pipelines");
    assert!(store.get_pipeline(&mine.id).await.is_err());
}

#[tokio::test]
async fn experiments_create_archive_restore_and_page() {
    let e = env(Some(ADMIN)).await;
    let store = e.state.store();
    let (_, a) = store.create_api_token("team-a", "ui").await.unwrap();
    let (_, b) = store.create_api_token("team-b", "ui").await.unwrap();
    let r = get(&e.app, "/experiments", Some(&a)).await;
    assert_eq!(r.attrs("#create-experiment input[name=name]", "required"), [""]);
    // CSRF refused; an empty name is the API's message.
    let r = post(&e.app, "/experiments", Some(&a), None, &[("name", "x")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post(&e.app, "/experiments", Some(&a), Some(CSRF), &[("name", "  "), ("description", XSS)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("display_name"), "{}", r.error());
    assert_no_injected_markup(&r);
    assert_eq!(r.select("#create-experiment textarea[name=description]"), [XSS]);
    assert_eq!(r.attrs("details.create", "open").len(), 1);
    assert!(store.list_experiments(None).await.unwrap().is_empty());
    // Created in the caller's namespace, with a script name and description shown escaped.
    let r = post(&e.app, "/experiments", Some(&a), Some(CSRF), &[("name", XSS), ("description", XSS)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let exp = store.list_experiments(None).await.unwrap().pop().unwrap();
    assert_eq!((exp.display_name.as_str(), exp.namespace.as_str()), (XSS, "team-a"));
    assert_eq!(r.location(), format!("/experiments/{}", exp.id));
    let page = get(&e.app, r.location(), Some(&a)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_no_injected_markup(&page);
    assert_eq!(page.select("#description"), [XSS]);
    assert!(page.select("p.empty").concat().contains("No runs in this experiment"));
    // Another namespace sees a 403 and cannot archive it.
    let r = get(&e.app, &format!("/experiments/{}", exp.id), Some(&b)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post(&e.app, &format!("/experiments/{}/do/archive", exp.id), Some(&b), Some(CSRF), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(store.get_experiment(&exp.id).await.unwrap().storage_state, "AVAILABLE");
    // Archive from the list (back to the list), restore from its page (back to the page).
    let r =
        post(&e.app, &format!("/experiments/{}/do/archive", exp.id), Some(&a), Some(CSRF), &[("back", "list")]).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/experiments"));
    assert_eq!(store.get_experiment(&exp.id).await.unwrap().storage_state, "ARCHIVED");
    let list = get(&e.app, "/experiments", Some(&a)).await;
    assert_eq!(list.select("table.experiments tbody tr td .badge"), ["ARCHIVED"]);
    assert_eq!(list.select("table.experiments tbody tr button"), ["Restore"]);
    let page = get(&e.app, &format!("/experiments/{}", exp.id), Some(&a)).await;
    assert_eq!(page.select("#restore"), ["Restore"]);
    let r = post(&e.app, &format!("/experiments/{}/do/unarchive", exp.id), Some(&a), Some(CSRF), &[]).await;
    assert_eq!(r.location(), format!("/experiments/{}", exp.id));
    assert_eq!(store.get_experiment(&exp.id).await.unwrap().storage_state, "AVAILABLE");
    let r = post(&e.app, &format!("/experiments/{}/do/bogus", exp.id), Some(&a), Some(CSRF), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Its runs are listed on its page.
    store
        .create_run(&NewRun {
            display_name: XSS.into(),
            namespace: "team-a".into(),
            experiment_id: Some(exp.id.clone()),
            pipeline_name: "p".into(),
            spec: spec("p"),
            options: json!({}),
            ..NewRun::default()
        })
        .await
        .unwrap();
    let page = get(&e.app, &format!("/experiments/{}", exp.id), Some(&a)).await;
    assert_no_injected_markup(&page);
    assert_eq!(page.select("table.runs tbody tr td:nth-child(2) a"), [XSS]);
    // Archived, it can be deleted (after a confirmation in the browser).
    post(&e.app, &format!("/experiments/{}/do/archive", exp.id), Some(&a), Some(CSRF), &[]).await;
    let page = get(&e.app, &format!("/experiments/{}", exp.id), Some(&a)).await;
    assert_eq!(page.attrs("form[data-confirm] button.danger", "class"), ["danger"]);
    let r = post(&e.app, &format!("/experiments/{}/do/delete", exp.id), Some(&a), Some(CSRF), &[]).await;
    assert_eq!(r.location(), "/experiments");
    assert!(store.get_experiment(&exp.id).await.is_err());
}

#[tokio::test]
async fn recurring_run_form_validation_page_and_toggle() {
    let e = env(None).await;
    let store = e.state.store();
    let (p, v) = store.create_pipeline_with_version("sched", "", "", "v1", &spec("sched"), "d").await.unwrap();
    // The pipeline page links to the form, which has the version's parameter inputs.
    let page = get(&e.app, &format!("/pipelines/{}", p.id), None).await;
    assert_eq!(page.attrs("#schedule", "href"), [format!("/pipelines/{}/schedule?version={}", p.id, v.id)]);
    let form = get(&e.app, &format!("/pipelines/{}/schedule?version={}", p.id, v.id), None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(form.attrs("#create-recurring input[name='p.n']", "value"), ["3"]);
    assert_eq!(form.attrs("#create-recurring input[name=cron]", "value"), ["0 0 * * * *"]);
    let uri = format!("/pipelines/{}/schedule", p.id);
    let base = [("version", v.id.as_str()), ("name", XSS), ("max_concurrency", "2"), ("enabled", "on")];
    // Refusals come back on the form with the values kept: a bad cron, a mistyped parameter, a bad limit.
    for (extra, message) in [
        (vec![("kind", "cron"), ("cron", "every minute"), ("p.n", "4")], "cron `every minute`"),
        (vec![("kind", "cron"), ("cron", "0 * * * * *"), ("p.n", "four")], "`four` is not an integer"),
        (vec![("kind", "periodic"), ("interval", "0"), ("p.n", "4")], "interval_second must be between"),
    ] {
        let fields: Vec<(&str, &str)> = base.iter().copied().chain(extra).collect();
        let r = post(&e.app, &uri, None, Some(CSRF), &fields).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert!(r.error().contains(message), "{} (wanted {message})", r.error());
        assert_no_injected_markup(&r);
        assert_eq!(r.attrs("#create-recurring input[name=name]", "value"), [XSS]);
        assert_eq!(r.attrs("#create-recurring input[name=max_concurrency]", "value"), ["2"]);
    }
    let r = post(
        &e.app,
        &uri,
        None,
        Some(CSRF),
        &[("version", &v.id), ("name", "bad"), ("kind", "cron"), ("cron", "0 * * * * *"), ("max_concurrency", "11")],
    )
    .await;
    assert!(r.error().contains("max_concurrency must be between 1 and 10"), "{}", r.error());
    let r = post(&e.app, &uri, None, None, &[("version", &v.id), ("name", "x")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(store.list_recurring_runs(false).await.unwrap().is_empty());
    // A periodic one, disabled, without catchup.
    let fields = [
        ("version", v.id.as_str()),
        ("name", XSS),
        ("kind", "periodic"),
        ("interval", "90"),
        ("cron", "ignored"),
        ("max_concurrency", "3"),
        ("p.n", "5"),
        ("p.flag", "on"),
        ("p.msg", XSS),
    ];
    let r = post(&e.app, &uri, None, Some(CSRF), &fields).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let rr = store.list_recurring_runs(false).await.unwrap().pop().unwrap();
    assert_eq!(r.location(), format!("/recurring/{}", rr.id));
    assert_eq!(rr.trigger, json!({"periodic_schedule": {"interval_second": "90"}}));
    assert_eq!((rr.max_concurrency, rr.no_catchup, rr.enabled), (3, true, false));
    assert_eq!(rr.parameters, json!({"n": 5, "flag": true, "msg": XSS}));
    assert_eq!(rr.pipeline_version_id.as_deref(), Some(v.id.as_str()));
    // Its page: trigger, parameters, no runs yet; the runs it starts are listed.
    let page = get(&e.app, r.location(), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_no_injected_markup(&page);
    assert_eq!(page.select("h1").concat().trim_end(), format!("{XSS} DISABLED"));
    assert_eq!(page.select("#trigger"), ["every 90 s"]);
    assert!(page.select("table.params td").contains(&XSS.to_owned()));
    assert!(page.select("p.empty").concat().contains("once the recurring run is enabled"));
    store
        .create_run(&NewRun {
            display_name: "fired".into(),
            pipeline_name: "sched".into(),
            spec: spec("sched"),
            options: json!({}),
            recurring_run_id: Some(rr.id.clone()),
            ..NewRun::default()
        })
        .await
        .unwrap();
    // Enable from its page: back to the page.
    let r = post(&e.app, &format!("/recurring/{}/do/enable", rr.id), None, Some(CSRF), &[("back", "page")]).await;
    assert_eq!(r.location(), format!("/recurring/{}", rr.id));
    let page = get(&e.app, r.location(), None).await;
    assert_eq!(page.select("#toggle"), ["Disable"]);
    assert_eq!(page.select("table.runs tbody tr td:nth-child(2) a"), ["fired"]);
    // The list links to it; delete goes back to the list.
    let list = get(&e.app, "/recurring", None).await;
    assert_eq!(list.attrs("table.recurring tbody tr td a", "href"), [format!("/recurring/{}", rr.id)]);
    let r = post(&e.app, &format!("/recurring/{}/do/delete", rr.id), None, Some(CSRF), &[]).await;
    assert_eq!(r.location(), "/recurring");
    assert!(store.list_recurring_runs(false).await.unwrap().is_empty());
}

#[tokio::test]
async fn recurring_runs_of_another_namespace_are_refused() {
    let e = env(Some(ADMIN)).await;
    let store = e.state.store();
    let (_, a) = store.create_api_token("team-a", "ui").await.unwrap();
    let exp = store.ensure_experiment("Default", "team-b").await.unwrap();
    let rr = store
        .create_recurring_run(&secondrow_store::NewRecurringRun {
            display_name: "theirs".into(),
            description: String::new(),
            namespace: "team-b".into(),
            experiment_id: Some(exp.id),
            pipeline_id: None,
            pipeline_version_id: None,
            spec: spec("x"),
            parameters: json!({}),
            runtime_config: json!({}),
            trigger: json!({"cron_schedule": {"cron": "0 0 * * * *"}}),
            max_concurrency: 1,
            no_catchup: false,
            enabled: true,
        })
        .await
        .unwrap();
    let r = get(&e.app, &format!("/recurring/{}", rr.id), Some(&a)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for action in ["disable", "delete"] {
        let r = post(&e.app, &format!("/recurring/{}/do/{action}", rr.id), Some(&a), Some(CSRF), &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{action}");
    }
    assert!(store.get_recurring_run(&rr.id).await.unwrap().enabled);
    let r = get(&e.app, &format!("/recurring/{}", rr.id), Some(ADMIN)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.select("#trigger"), ["cron 0 0 * * * *"]);
}

#[tokio::test]
async fn clone_prefills_the_form_and_starts_a_new_run() {
    let e = env(Some(ADMIN)).await;
    let store = e.state.store();
    let (_, a) = store.create_api_token("team-a", "ui").await.unwrap();
    let (_, b) = store.create_api_token("team-b", "ui").await.unwrap();
    let exp = store.create_experiment("exp-a", "", "team-a").await.unwrap();
    let (p, v) = store.create_pipeline_with_version("clonable", "", "", "v1", &spec("clonable"), "d").await.unwrap();
    let source = store
        .create_run(&NewRun {
            display_name: XSS.into(),
            namespace: "team-a".into(),
            experiment_id: Some(exp.id.clone()),
            pipeline_id: Some(p.id.clone()),
            pipeline_version_id: Some(v.id.clone()),
            pipeline_name: "clonable".into(),
            spec: spec("clonable"),
            parameters: json!({"n": 9, "flag": true, "msg": XSS}).as_object().cloned().unwrap(),
            options: json!({}),
            ..NewRun::default()
        })
        .await
        .unwrap();
    // The run page links to the form.
    let page = get(&e.app, &format!("/runs/{}", source.id), Some(&a)).await;
    assert_eq!(page.attrs("#clone", "href"), [format!("/runs/{}/clone", source.id)]);
    let form = get(&e.app, &format!("/runs/{}/clone", source.id), Some(&a)).await;
    assert_eq!(form.status, StatusCode::OK);
    assert_no_injected_markup(&form);
    assert_eq!(form.attrs("#clone-run input[name=run_name]", "value"), [format!("Clone of {XSS}")]);
    assert_eq!(form.attrs("#clone-run input[name='p.n']", "value"), ["9"]);
    assert_eq!(form.attrs("#clone-run input[name='p.flag']", "checked"), [""]);
    assert_eq!(form.attrs("#clone-run input[name='p.msg']", "value"), [XSS]);
    assert_eq!(form.attrs("#clone-run select[name=experiment] option[selected]", "value"), [exp.id.as_str()]);
    // Another namespace: 403 for the form and the post.
    let r = get(&e.app, &format!("/runs/{}/clone", source.id), Some(&b)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post(&e.app, &format!("/runs/{}/clone", source.id), Some(&b), Some(CSRF), &[("p.n", "1")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post(&e.app, &format!("/runs/{}/clone", source.id), Some(&a), None, &[("p.n", "1")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A mistyped value comes back on the form.
    let r = post(
        &e.app,
        &format!("/runs/{}/clone", source.id),
        Some(&a),
        Some(CSRF),
        &[("p.n", "x1"), ("run_name", "again")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("`x1` is not an integer"), "{}", r.error());
    assert_eq!(r.attrs("#clone-run input[name=run_name]", "value"), ["again"]);
    assert_eq!(r.attrs("#clone-run input[name='p.n']", "value"), ["x1"]);
    // Changed and started: same version, new parameters, the chosen experiment.
    let fields = [("run_name", "again"), ("experiment", exp.id.as_str()), ("p.n", "10"), ("p.msg", "changed")];
    let r = post(&e.app, &format!("/runs/{}/clone", source.id), Some(&a), Some(CSRF), &fields).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id = r.location().strip_prefix("/runs/").unwrap().to_owned();
    let run = store.get_run(&id).await.unwrap();
    assert_eq!(run.display_name, "again");
    assert_eq!(run.namespace, "team-a");
    assert_eq!(run.experiment_id.as_deref(), Some(exp.id.as_str()));
    assert_eq!(run.pipeline_version_id.as_deref(), Some(v.id.as_str()));
    assert_eq!(run.parameters, json!({"n": 10, "flag": false, "msg": "changed"}));
    e.state.supervisor.wait_idle(&id, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn clone_of_a_run_from_a_package_uses_its_spec() {
    let e = env(None).await;
    let store = e.state.store();
    let source = store
        .create_run(&NewRun {
            display_name: "from a package".into(),
            pipeline_name: "pkg".into(),
            spec: spec("pkg"),
            parameters: json!({"n": 2, "flag": false, "msg": "a"}).as_object().cloned().unwrap(),
            options: json!({}),
            ..NewRun::default()
        })
        .await
        .unwrap();
    let form = get(&e.app, &format!("/runs/{}/clone", source.id), None).await;
    assert!(form.select("main p").concat().contains("from its own pipeline spec"));
    assert_eq!(form.attrs("#clone-run input[name='p.n']", "value"), ["2"]);
    let r =
        post(&e.app, &format!("/runs/{}/clone", source.id), None, Some(CSRF), &[("p.n", "4"), ("p.msg", "b")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id = r.location().strip_prefix("/runs/").unwrap().to_owned();
    let run = store.get_run(&id).await.unwrap();
    assert_eq!(run.parameters, json!({"n": 4, "flag": false, "msg": "b"}));
    assert_eq!(run.pipeline_name, "pkg");
    e.state.supervisor.wait_idle(&id, Duration::from_secs(30)).await;
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

#[tokio::test]
async fn deployments_page_traffic_forms_and_rates() {
    let e = env(None).await;
    let r = get(&e.app, "/deployments", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.select("p.empty").concat().contains("No deployments"));
    assert_eq!(r.attrs("nav a[aria-current=page]", "href"), ["/deployments"]);
    // Two versions through the API (the first is the default).
    for (version, file) in [("1", "m1.json"), ("2", "m2.json")] {
        let body = json!({"name": "prices", "version": version, "source": {"path": model_file(&e.root, file)},
                          "make_default": false});
        let req = Request::post("/apis/v2beta1/deployments")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let r = send(&e.app, req).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = get(&e.app, "/deployments", None).await;
    assert_eq!(r.attrs("section.deployment", "data-deployment"), ["prices"]);
    assert_eq!(r.attrs("section.deployment tbody tr", "data-version"), ["1", "2"]);
    assert_eq!(r.select("tr[data-version='1'] .badge"), ["default"]);
    assert_eq!(r.attrs("section.deployment tbody", "hx-get"), ["/deployments/prices/rows"]);
    assert_eq!(r.attrs("section.deployment tbody", "hx-trigger"), ["every 2s"]);
    // Set the default and a canary share through the forms.
    let r = post(&e.app, "/deployments/prices/traffic", None, None, &[("default", "2")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post(&e.app, "/deployments/prices/traffic", None, Some(CSRF), &[("default", "2")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = post(&e.app, "/deployments/prices/traffic", None, Some(CSRF), &[("canary", "1"), ("percent", "25")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let d = e.state.store().get_deployment("prices").await.unwrap();
    assert_eq!(d.default_version, "2");
    assert_eq!(d.canary.as_ref().map(|c| (c.version.as_str(), c.percent)), Some(("1", 25)));
    let r = get(&e.app, "/deployments/prices/rows", None).await.in_table();
    assert_eq!(r.select("tr[data-version='1'] .badge"), ["canary 25%"]);
    assert_eq!(r.select("tr[data-version='2'] .badge"), ["default"]);
    let r = get(&e.app, "/deployments", None).await;
    assert_eq!(r.attrs(".canary-form input[name=percent]", "value"), ["25"]);
    assert_eq!(r.attrs(".canary-form option[selected]", "value"), ["1"]);
    let r = get(&e.app, "/deployments/missing/rows", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Refusals are messages: a share over 100, an unknown version.
    let r = post(&e.app, "/deployments/prices/traffic", None, Some(CSRF), &[("canary", "1"), ("percent", "101")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("`101`"), "{}", r.error());
    let r = post(&e.app, "/deployments/prices/traffic", None, Some(CSRF), &[("default", XSS)]).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_no_injected_markup(&r);
    assert!(!r.error().is_empty());
    // Remove the canary.
    let r = post(&e.app, "/deployments/prices/traffic", None, Some(CSRF), &[("canary", ""), ("percent", "0")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(e.state.store().get_deployment("prices").await.unwrap().canary, None);
    // Served requests show as a count, a rate and a latency.
    let metrics = e.state.deployments.repository().metrics().version("prices", "2");
    let r = get(&e.app, "/deployments/prices/rows", None).await.in_table();
    assert_eq!(r.select("tr[data-version='2'] td.requests"), ["0"]);
    for _ in 0..10 {
        metrics.observe(Duration::from_micros(400), false);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let r = get(&e.app, "/deployments/prices/rows", None).await.in_table();
        let rate = r.select("tr[data-version='2'] td.rate").concat();
        if rate != "measuring…" || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(shown.select("tr[data-version='2'] td.requests"), ["10"]);
    assert!(shown.select("tr[data-version='2'] td.rate").concat().ends_with("/s"));
    assert_eq!(shown.select("tr[data-version='2'] td.latency"), ["0.40 ms mean, p95 ≤ 0.5 ms"]);
}

#[tokio::test]
async fn every_page_is_in_the_top_bar() {
    let e = env(None).await;
    let r = get(&e.app, "/runs", None).await;
    assert_eq!(
        r.attrs("header.top nav a", "href"),
        [
            "/runs",
            "/experiments",
            "/pipelines",
            "/recurring",
            "/tuning",
            "/jobs",
            "/models",
            "/deployments",
            "/notebooks",
            "/data"
        ]
    );
    assert_eq!(r.attrs("a.skip", "href"), ["#main"]);
}
