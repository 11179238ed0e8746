//! HTML-level tests of the UI: the real router over a real SQLite store and artifact folder, requests sent
//! in-process, pages parsed with an HTML parser. Covers every page and panel, escaping of user content,
//! namespaces through tokens, CSRF, and the live-update stream.

mod support;
use support::{env, Env};

use std::path::Path;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use futures::StreamExt as _;
use scraper::{Html, Selector};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use secondrow_store::{NewArtifact, NewRun, RunState, TaskFinish, TaskKind, TaskStart, TaskState};

const XSS: &str = "<script>alert(1)</script>";

fn spec() -> Value {
    json!({
        "pipelineInfo": {"name": "demo"},
        "deploymentSpec": {"executors": {}},
        "root": {"dag": {"tasks": {
            "ingest": {"taskInfo": {"name": "ingest"}, "componentRef": {"name": "comp-a"}},
            "evaluate": {"taskInfo": {"name": "evaluate"}, "componentRef": {"name": "comp-a"}, "dependentTasks": ["ingest"]},
            "for-loop-1": {"taskInfo": {"name": "for-loop-1"}, "componentRef": {"name": "comp-loop"},
                           "dependentTasks": ["ingest"],
                           "parameterIterator": {"itemInput": "x", "items": {"raw": "[1,2]"}}}
        }}},
        "components": {
            "comp-a": {"executorLabel": "exec-a"},
            "comp-loop": {"dag": {"tasks": {"sq": {"taskInfo": {"name": "sq"}, "componentRef": {"name": "comp-a"}}}}}
        }
    })
}

struct Seeded {
    run_id: String,
    artifacts: Vec<(String, &'static str)>,
}

/// A finished run in `namespace` with tasks, a loop, logs (with a script payload) and one artifact of each
/// visualized kind.
async fn seed(e: &Env, name: &str, namespace: &str) -> Seeded {
    let store = e.state.store();
    let exp = store.ensure_experiment("Default", namespace).await.unwrap();
    let run = store
        .create_run(&NewRun {
            display_name: name.into(),
            namespace: namespace.into(),
            experiment_id: Some(exp.id),
            pipeline_name: "demo".into(),
            spec: spec(),
            parameters: json!({"n": 3, "label": XSS}).as_object().cloned().unwrap(),
            options: json!({}),
            ..NewRun::default()
        })
        .await
        .unwrap();
    store.set_run_state(&run.id, RunState::Running, None).await.unwrap();
    let start = |path: &'static str, parent: Option<String>, kind: TaskKind| {
        let run_id = run.id.clone();
        async move {
            let key = path.rsplit('/').next().unwrap();
            store
                .start_task(&TaskStart {
                    run_id: &run_id,
                    parent_id: parent.as_deref(),
                    path,
                    task_key: key,
                    display_name: key,
                    kind,
                    state: TaskState::Running,
                    attempt: 1,
                    cache_key: None,
                    inputs: Some(&json!({"parameters": {"msg": XSS}})),
                })
                .await
                .unwrap()
        }
    };
    let ingest = start("ingest", None, TaskKind::Container).await;
    let evaluate = start("evaluate", None, TaskKind::Container).await;
    let lp = start("for-loop-1", None, TaskKind::Loop).await;
    let it0 = start("for-loop-1/0", Some(lp.clone()), TaskKind::Iteration).await;
    let it1 = start("for-loop-1/1", Some(lp.clone()), TaskKind::Iteration).await;
    let art_dir = e.root.join("artifacts").join(&run.id);
    std::fs::create_dir_all(&art_dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = art_dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let mut artifacts = Vec::new();
    let mut new = Vec::new();
    for (kind, file, text, metadata) in [
        ("system.Dataset", "data.csv", "a,b\n1,x\n2,<b>y</b>\n".to_owned(), json!({})),
        ("system.Markdown", "report.md", format!("# Report\n\n{XSS}\n\n[x](javascript:alert(1))"), json!({})),
        ("system.HTML", "report.html", format!("<h1>hi</h1>{XSS}"), json!({})),
        ("system.Metrics", "metrics", String::new(), json!({"accuracy": 0.9, "f1": 0.875})),
        (
            "system.ClassificationMetrics",
            "cm",
            String::new(),
            json!({"confusionMatrix": {"annotationSpecs": [{"displayName": "no"}, {"displayName": XSS}],
                                       "rows": [{"row": [8, 2]}, {"row": [1, 9]}]},
                   "confidenceMetrics": [{"confidenceThreshold": 0.5, "recall": 0.9, "falsePositiveRate": 0.2}]}),
        ),
    ] {
        let uri = if text.is_empty() { art_dir.join(file).display().to_string() } else { write(file, &text) };
        let id = secondrow_store::new_id();
        artifacts.push((id.clone(), kind));
        new.push(NewArtifact {
            id,
            output_name: file.into(),
            name: file.into(),
            uri,
            schema_title: kind.into(),
            schema_version: "0.0.1".into(),
            metadata,
        });
    }
    let finish = |task_id: String, state: TaskState, new_artifacts: Vec<NewArtifact>, inputs: Vec<(String, String)>| {
        let run_id = run.id.clone();
        async move {
            store
                .finish_task(&TaskFinish {
                    run_id: &run_id,
                    task_id: &task_id,
                    state,
                    error: None,
                    cached: false,
                    outputs: Some(&json!({"parameters": {"out": 1}})),
                    new_artifacts: &new_artifacts,
                    output_artifact_refs: &[],
                    input_artifact_refs: &inputs,
                    cache_key_to_record: None,
                })
                .await
                .unwrap()
        }
    };
    finish(ingest, TaskState::Succeeded, new, Vec::new()).await;
    finish(evaluate, TaskState::Succeeded, Vec::new(), vec![("data".into(), artifacts[0].0.clone())]).await;
    finish(it0, TaskState::Succeeded, Vec::new(), Vec::new()).await;
    finish(it1, TaskState::Failed, Vec::new(), Vec::new()).await;
    finish(lp, TaskState::Failed, Vec::new(), Vec::new()).await;
    let logs = e.root.join("logs").join(&run.id).join("ingest");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("stdout.log"), format!("loading rows\n{XSS}\n")).unwrap();
    store.set_run_state(&run.id, RunState::Failed, Some(&format!("task failed {XSS}"))).await.unwrap();
    Seeded { run_id: run.id, artifacts }
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
}

async fn send(app: &Router, req: Request<Body>) -> Resp {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap();
    Resp { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

async fn get(app: &Router, uri: &str, cookie: Option<&str>) -> Resp {
    let mut b = Request::get(uri);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    send(app, b.body(Body::empty()).unwrap()).await
}

/// No element of the page is a script other than the UI's own files, and no event-handler attribute exists.
fn assert_no_injected_markup(r: &Resp) {
    let doc = r.doc();
    for s in doc.select(&Selector::parse("script").unwrap()) {
        let src = s.value().attr("src").unwrap_or("");
        assert!(src.starts_with("/ui/static/"), "unexpected script element: {}", s.html());
    }
    for el in doc.select(&Selector::parse("*").unwrap()) {
        for (name, value) in el.value().attrs() {
            assert!(!name.starts_with("on"), "event handler attribute {name}");
            assert!(!value.trim_start().to_ascii_lowercase().starts_with("javascript:"), "{name}={value}");
        }
    }
}

#[tokio::test]
async fn runs_page_lists_filters_sorts_pages_and_escapes() {
    let e = env(None).await;
    seed(&e, XSS, "").await;
    for i in 0..55 {
        let store = e.state.store();
        let r = store
            .create_run(&NewRun {
                display_name: format!("bulk {i:02}"),
                pipeline_name: "demo".into(),
                spec: spec(),
                options: json!({}),
                ..NewRun::default()
            })
            .await
            .unwrap();
        if i % 5 == 0 {
            store.set_run_state(&r.id, RunState::Succeeded, None).await.unwrap();
        }
    }
    let r = get(&e.app, "/", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/runs");
    let r = get(&e.app, "/runs", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_no_injected_markup(&r);
    assert_eq!(r.select("table.runs tbody tr").len(), 50);
    assert!(r.headers.get(header::CONTENT_SECURITY_POLICY).is_some());
    // Page 2 through the keyset link holds the rest, none repeated.
    let next = r.attrs("a[rel=next]", "href");
    assert_eq!(next.len(), 1);
    let first: Vec<String> = r.attrs("table.runs tbody tr", "data-run");
    let r2 = get(&e.app, &next[0], None).await;
    let second: Vec<String> = r2.attrs("table.runs tbody tr", "data-run");
    assert_eq!(second.len(), 6);
    assert!(second.iter().all(|id| !first.contains(id)));
    assert!(r2.attrs("a[rel=next]", "href").is_empty());
    // The script-named run shows as text.
    let r = get(&e.app, "/runs?q=script", None).await;
    assert_eq!(r.select("table.runs tbody tr td:nth-child(2) a"), [XSS]);
    assert_no_injected_markup(&r);
    // State filter and name sort.
    let r = get(&e.app, "/runs?state=SUCCEEDED&sort=name&dir=asc", None).await;
    let names = r.select("table.runs tbody tr td:nth-child(2) a");
    assert_eq!(
        names,
        [
            "bulk 00", "bulk 05", "bulk 10", "bulk 15", "bulk 20", "bulk 25", "bulk 30", "bulk 35", "bulk 40",
            "bulk 45", "bulk 50"
        ]
    );
    assert!(r.select("span.badge").iter().all(|s| s == "SUCCEEDED"));
    // Empty states say what to do next; bad input is a message, not a blank page.
    let r = get(&e.app, "/runs?q=nothing-matches", None).await;
    assert!(r.select("p.empty").concat().contains("No run matches"));
    let r = get(&e.app, "/runs?sort=bogus", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.select("#error-message").concat().contains("unknown sort"));
    let r = get(&e.app, "/runs?after=zz", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn empty_store_says_how_to_start() {
    let e = env(None).await;
    let r = get(&e.app, "/runs", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.select("p.empty").concat().contains("No runs yet"));
}

#[tokio::test]
async fn run_page_graph_task_panel_and_logs() {
    let e = env(None).await;
    let s = seed(&e, "graph run", "").await;
    let r = get(&e.app, &format!("/runs/{}", s.run_id), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_no_injected_markup(&r);
    assert_eq!(r.select("#run-state"), ["FAILED"]);
    let paths = r.attrs("svg.dag a.node", "data-path");
    assert_eq!(paths, ["evaluate", "for-loop-1", "ingest"]);
    assert_eq!(r.attrs("svg.dag a.node", "data-state"), ["SUCCEEDED", "FAILED", "SUCCEEDED"]);
    assert!(r.select("svg.dag a.kind-loop text.sub").concat().contains("×2: 1 ✓ 1 ✗"));
    assert_eq!(r.select("svg.dag path.edge").len(), 2);
    // A finished run has no live stream attached; parameters and the error are text.
    assert!(r.attrs("#graph", "data-events").is_empty());
    assert!(r.select("table.kv td code").contains(&XSS.to_owned()));
    assert!(r.select("dd.error").concat().contains(XSS));
    assert_eq!(r.select("#retry").len(), 1);
    // The loop opens to its iterations; an iteration to its body.
    let r = get(&e.app, &format!("/runs/{}?dag=for-loop-1", s.run_id), None).await;
    assert_eq!(r.attrs("table.iterations tbody tr", "data-state"), ["SUCCEEDED", "FAILED"]);
    let r = get(&e.app, &format!("/runs/{}?dag=for-loop-1/0", s.run_id), None).await;
    assert_eq!(r.attrs("svg.dag a.node", "data-path"), ["for-loop-1/0/sq"]);
    assert_eq!(r.select("nav.crumbs a"), ["graph", "for-loop-1", "0"]);
    let r = get(&e.app, &format!("/runs/{}?dag=nope", s.run_id), None).await;
    assert!(r.select("#graph p.error").concat().contains("no group `nope`"));
    // Task panel (a deep link): inputs, outputs, lineage, logs, all escaped.
    let r = get(&e.app, &format!("/runs/{}/tasks/ingest", s.run_id), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_no_injected_markup(&r);
    assert_eq!(r.select("#task-state"), ["SUCCEEDED"]);
    assert!(r.select("#logs pre").concat().contains(XSS));
    assert!(r.attrs("#logs", "hx-get").is_empty(), "finished task logs are not polled");
    assert_eq!(r.select("aside.panel ul li a").len(), 5);
    let r = get(&e.app, &format!("/runs/{}/tasks/evaluate", s.run_id), None).await;
    assert_eq!(r.select("aside.panel ul li a"), ["data"]);
    let r = get(&e.app, &format!("/runs/{}/tasks/not-started", s.run_id), None).await;
    assert!(r.select("aside.panel p.empty").concat().contains("not started"));
    // The logs fragment alone.
    let r = get(&e.app, &format!("/runs/{}/logs?task=ingest", s.run_id), None).await;
    assert!(!r.body.contains(XSS) && r.select("pre").concat().contains(XSS), "{}", r.body);
    let r = get(&e.app, "/runs/no-such-run", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.select("#error-message").concat().contains("no-such-run"));
}

#[tokio::test]
async fn artifact_visualizations() {
    let e = env(None).await;
    let s = seed(&e, "viz run", "").await;
    let id_of = |kind: &str| s.artifacts.iter().find(|(_, k)| *k == kind).unwrap().0.clone();
    let page = |kind: &str| format!("/runs/{}/artifacts/{}", s.run_id, id_of(kind));

    let r = get(&e.app, &page("system.ClassificationMetrics"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_no_injected_markup(&r);
    assert_eq!(r.select("svg.confusion rect.cm-cell").len(), 4);
    assert_eq!(r.select("svg.roc path.roc-line").len(), 1);
    assert!(r.select("svg.confusion text").contains(&"<script>ale…".to_owned()));

    let r = get(&e.app, &page("system.Metrics"), None).await;
    assert_eq!(r.select("table.metrics tbody tr td"), ["accuracy", "0.9", "f1", "0.875"]);

    let r = get(&e.app, &page("system.Markdown"), None).await;
    assert_no_injected_markup(&r);
    assert_eq!(r.select(".markdown h1"), ["Report"]);
    assert!(r.select(".markdown").concat().contains(XSS));

    let r = get(&e.app, &page("system.Dataset"), None).await;
    assert_eq!(r.select("table.dataset thead th"), ["anumber", "btext"]);
    assert_eq!(r.select("table.dataset tbody td"), ["1", "x", "2", "<b>y</b>"]);
    assert!(r.select("#panel dd").concat().contains("evaluate"), "consumer listed");

    let r = get(&e.app, &page("system.HTML"), None).await;
    let frames = r.attrs("iframe.html-artifact", "sandbox");
    assert_eq!(frames, [""]);
    let src = r.attrs("iframe.html-artifact", "src");
    let raw = get(&e.app, &src[0], None).await;
    assert_eq!(raw.status, StatusCode::OK);
    let csp = raw.headers.get(header::CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap();
    assert!(csp.starts_with("sandbox;") && csp.contains("default-src 'none'"), "{csp}");
    assert!(raw.body.contains("<h1>hi</h1>"));
    // The HTML viewer serves only HTML artifacts.
    let r = get(&e.app, &format!("/artifacts/{}/view", id_of("system.Markdown")), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Download goes through the API.
    let r = get(&e.app, &format!("/artifacts/{}/download", id_of("system.Dataset")), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "a,b\n1,x\n2,<b>y</b>\n");
}

#[tokio::test]
async fn tokens_namespaces_and_login() {
    let e = env(Some("admin-token-0123456789")).await;
    let mine = seed(&e, "mine", "team-a").await;
    let theirs = seed(&e, "theirs", "team-b").await;
    let (_, secret) = e.state.store().create_api_token("team-a", "ui").await.unwrap();
    // No cookie: the login page, remembering where to go.
    let r = get(&e.app, &format!("/runs/{}", mine.run_id), None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with("/login?next=%2Fruns%2F"), "{}", r.location());
    let login = get(&e.app, r.location(), None).await;
    assert_eq!(login.attrs("input[name=token]", "type"), ["password"]);
    // A wrong token: back to login, cookie cleared.
    let r = get(&e.app, "/runs", Some("secondrow_token=wrong")).await;
    assert!(r.location().contains("invalid=1"));
    assert!(r.headers.get_all(header::SET_COOKIE).iter().any(|v| v.to_str().unwrap().contains("Max-Age=0")));
    // The namespace token sees its own runs only; another namespace's run is 403.
    let cookie = format!("secondrow_token={secret}");
    let r = get(&e.app, "/runs", Some(&cookie)).await;
    assert_eq!(r.select("table.runs tbody tr td:nth-child(2) a"), ["mine"]);
    assert!(r.select(".who").concat().contains("team-a"));
    let r = get(&e.app, &format!("/runs/{}", mine.run_id), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    for uri in [
        format!("/runs/{}", theirs.run_id),
        format!("/runs/{}/tasks/ingest", theirs.run_id),
        format!("/runs/{}/logs?task=ingest", theirs.run_id),
        format!("/runs/{}/events", theirs.run_id),
        format!("/artifacts/{}/view", theirs.artifacts[2].0),
    ] {
        let r = get(&e.app, &uri, Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
    }
    let r = get(&e.app, &format!("/artifacts/{}/download", theirs.artifacts[0].0), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The admin token sees both.
    let r = get(&e.app, "/runs", Some("secondrow_token=admin-token-0123456789")).await;
    assert_eq!(r.select("table.runs tbody tr").len(), 2);
    // Signing in sets an HttpOnly, SameSite=Strict cookie and follows only local paths.
    let csrf = "c".repeat(64);
    let req = Request::post("/login")
        .header(header::COOKIE, format!("secondrow_csrf={csrf}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={secret}&next=%2F%2Fevil.example&csrf={csrf}")))
        .unwrap();
    let r = send(&e.app, req).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/runs");
    let set = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
}

#[tokio::test]
async fn actions_need_csrf_and_same_origin() {
    let e = env(None).await;
    let s = seed(&e, "act", "").await;
    let csrf = "d".repeat(64);
    let post = |uri: String, cookie: Option<String>, body: String, origin: Option<&'static str>| {
        let mut b = Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o).header(header::HOST, "127.0.0.1:8888");
        }
        b.body(Body::from(body)).unwrap()
    };
    let uri = format!("/runs/{}/do/archive", s.run_id);
    // No token, a wrong token, a foreign origin: refused, nothing changed.
    for req in [
        post(uri.clone(), None, String::new(), None),
        post(uri.clone(), Some(format!("secondrow_csrf={csrf}")), format!("csrf={}", "e".repeat(64)), None),
        post(uri.clone(), Some(format!("secondrow_csrf={csrf}")), format!("csrf={csrf}"), Some("http://evil.example")),
    ] {
        let r = send(&e.app, req).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    assert_eq!(e.state.store().get_run(&s.run_id).await.unwrap().storage_state, "AVAILABLE");
    // With the double-submitted token (same origin): archived through the API, back to the run.
    let r = send(
        &e.app,
        post(uri, Some(format!("secondrow_csrf={csrf}")), format!("csrf={csrf}"), Some("http://127.0.0.1:8888")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(e.state.store().get_run(&s.run_id).await.unwrap().storage_state, "ARCHIVED");
    let r = get(&e.app, "/runs?archived=1", None).await;
    assert_eq!(r.select("table.runs tbody tr").len(), 1);
    // An API refusal is shown as a message: terminating a finished run.
    let r = send(
        &e.app,
        post(
            format!("/runs/{}/do/bogus", s.run_id),
            Some(format!("secondrow_csrf={csrf}")),
            format!("csrf={csrf}"),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Delete.
    let r = send(
        &e.app,
        post(
            format!("/runs/{}/do/delete", s.run_id),
            Some(format!("secondrow_csrf={csrf}")),
            format!("csrf={csrf}"),
            None,
        ),
    )
    .await;
    assert_eq!(r.location(), "/runs");
    assert!(e.state.store().get_run(&s.run_id).await.is_err());
}

#[tokio::test]
async fn live_stream_sends_the_graph_and_follows_changes() {
    let e = env(None).await;
    let s = seed(&e, "live", "").await;
    let store = e.state.store();
    store.set_run_state(&s.run_id, RunState::Running, None).await.unwrap();
    let r = get(&e.app, &format!("/runs/{}", s.run_id), None).await;
    assert_eq!(r.attrs("#graph", "data-events"), [format!("/runs/{}/events?dag=", s.run_id)]);
    // The duration of a running run: its start and the server's clock, for the page to count on from.
    let started = store.get_run(&s.run_id).await.unwrap().started_at.unwrap();
    assert_eq!(r.attrs("#run-duration", "data-started-ms"), [started.to_string()]);
    let now: i64 = r.attrs("#run-duration", "data-now-ms")[0].parse().unwrap();
    assert!(now >= started, "{now} < {started}");
    assert!(r.select("#run-duration").concat().ends_with('…'), "{:?}", r.select("#run-duration"));
    let js = get(&e.app, "/ui/static/app.js", None).await.body;
    assert!(js.contains("dataset.startedMs") && js.contains("setInterval(tickDuration, 1000)"));
    let resp = e
        .app
        .clone()
        .oneshot(Request::get(format!("/runs/{}/events", s.run_id)).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.headers().get(header::CONTENT_TYPE).unwrap(), "text/event-stream");
    let mut body = resp.into_body().into_data_stream();
    let mut text = String::new();
    let next_event = |text: &mut String| {
        let end = text.find("\n\n")?;
        let ev: String = text.drain(..end + 2).collect();
        let data: String =
            ev.lines().filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:"))).collect();
        Some(serde_json::from_str::<Value>(&data).unwrap())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut events = Vec::new();
    let mut changed = false;
    while events.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no event; got {events:?}");
        let chunk =
            tokio::time::timeout(std::time::Duration::from_secs(10), body.next()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(ev) = next_event(&mut text) {
            events.push(ev);
        }
        if !events.is_empty() && !changed {
            store.set_run_state(&s.run_id, RunState::Succeeded, None).await.unwrap();
            changed = true;
        }
    }
    assert_eq!(events[0]["state"], "RUNNING");
    assert_eq!(events[0]["done"], false);
    assert_eq!(events[0]["started_ms"], started);
    assert!(events[0]["now_ms"].as_i64().unwrap() >= started);
    assert!(events[0]["duration"].as_str().unwrap().ends_with('…'), "{}", events[0]["duration"]);
    assert!(events[0]["view"].as_str().unwrap().contains("data-path=\"ingest\""));
    assert_eq!(events[1]["state"], "SUCCEEDED");
    assert_eq!(events[1]["done"], true);
    // Finished: the final duration, nothing left to count on from; the page says the same.
    assert_eq!(events[1]["started_ms"], Value::Null);
    let last = events[1]["duration"].as_str().unwrap();
    assert!(last.ends_with('s') && !last.ends_with('…'), "{last}");
    let r = get(&e.app, &format!("/runs/{}", s.run_id), None).await;
    assert!(r.attrs("#run-duration", "data-started-ms").is_empty());
    assert!(!r.select("#run-duration").concat().contains('…'));
}

#[test]
fn vendored_htmx_has_its_licence() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/static");
    assert!(std::fs::read_to_string(dir.join("htmx-LICENSE.txt")).unwrap().contains("Zero-Clause BSD"));
}

#[tokio::test]
async fn experiments_and_pipelines_pages() {
    let e = env(Some("admin-token-0123456789")).await;
    seed(&e, "r", "team-a").await;
    let store = e.state.store();
    let mut spec = spec();
    spec["root"]["inputDefinitions"] =
        json!({"parameters": {"n": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3}}});
    let (shared, _) = store.create_pipeline_with_version(XSS, "shared one", "", "v1", &spec, "d1").await.unwrap();
    let (private_b, _) = store.create_pipeline_with_version("b-only", "", "team-b", "v1", &spec, "d2").await.unwrap();
    let (_, secret) = store.create_api_token("team-a", "ui").await.unwrap();
    let cookie = format!("secondrow_token={secret}");

    let r = get(&e.app, "/experiments", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.select("table.experiments tbody tr td:first-child a"), ["Default"]);
    let r = get(&e.app, "/pipelines", Some(&cookie)).await;
    assert_no_injected_markup(&r);
    assert_eq!(r.attrs("table.pipelines tbody tr", "data-pipeline"), [shared.id.as_str()]);
    assert_eq!(r.select("table.pipelines tbody tr td:first-child a"), [XSS]);
    let r = get(&e.app, &format!("/pipelines/{}", shared.id), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_no_injected_markup(&r);
    assert_eq!(r.attrs("svg.dag g.node", "data-path"), ["evaluate", "for-loop-1", "ingest"]);
    assert!(r.select("svg.dag a").is_empty(), "the static graph links nowhere");
    assert_eq!(r.select("table.kv tbody tr td"), ["NUMBER_INTEGER", "3"]);
    assert!(r.select("pre.yaml").concat().contains("pipelineInfo:"));
    assert_eq!(r.select("ul.versions li a"), ["v1"]);
    let r = get(&e.app, &format!("/pipelines/{}", private_b.id), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn compare_runs_side_by_side() {
    let e = env(None).await;
    let a = seed(&e, "run a", "").await;
    let b = seed(&e, XSS, "").await;
    let store = e.state.store();
    let c = store
        .create_run(&NewRun {
            display_name: "run c".into(),
            pipeline_name: "demo".into(),
            spec: spec(),
            parameters: json!({"n": 4}).as_object().cloned().unwrap(),
            options: json!({}),
            ..NewRun::default()
        })
        .await
        .unwrap();
    // The runs list's checkboxes post `runs=…&runs=…`.
    let r = get(&e.app, &format!("/compare?runs={}&runs={}&runs={}", a.run_id, b.run_id, c.id), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_no_injected_markup(&r);
    assert_eq!(r.select("table.compare thead th a").len(), 3);
    // `n` differs (3, 3, 4): marked; `label` is missing in run c: marked too.
    let diff = r.select("table.compare tr.diff th");
    assert!(diff.contains(&"n".to_owned()) && diff.contains(&"label".to_owned()), "{diff:?}");
    let metrics = r.select("table.compare tbody tr th");
    assert!(metrics.contains(&"ingest / accuracy".to_owned()), "{metrics:?}");
    assert_eq!(r.select("#roc-overlay svg.roc path.roc-line").len(), 2);
    // One run is not a comparison: a page that says so, with the way back to the runs list.
    let r = get(&e.app, &format!("/compare?runs={}", a.run_id), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.select("#compare-message").concat().contains("at least two"), "{}", r.body);
    assert_eq!(r.attrs("a#back-to-runs", "href"), ["/runs"]);
    assert!(r.select("table.compare").is_empty());
    assert_eq!(r.attrs("nav a[aria-current=page]", "href"), ["/runs"]);
    let r = get(&e.app, "/compare", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.select("#compare-message").concat().contains("No runs chosen"), "{}", r.body);
    assert_eq!(r.attrs("a#back-to-runs", "href"), ["/runs"]);
    // The runs list offers the selection.
    let r = get(&e.app, "/runs", None).await;
    assert_eq!(r.attrs("#compare-form input[type=checkbox]", "name").len(), 3);
}

#[tokio::test]
async fn create_run_form_from_parameter_definitions() {
    let e = env(None).await;
    let spec = json!({
        "pipelineInfo": {"name": "form"}, "schemaVersion": "2.1.0", "sdkVersion": "kfp-2.14.6",
        "root": {
            "inputDefinitions": {"parameters": {
                "n": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3},
                "flag": {"parameterType": "BOOLEAN", "defaultValue": false},
                "items": {"parameterType": "LIST", "isOptional": true},
                "msg": {"parameterType": "STRING"}}},
            "dag": {"tasks": {"echo": {"taskInfo": {"name": "echo"}, "componentRef": {"name": "comp-echo"},
                    "inputs": {"parameters": {"msg": {"componentInputParameter": "msg"}}}}}}},
        "components": {"comp-echo": {"executorLabel": "exec-echo",
                       "inputDefinitions": {"parameters": {"msg": {"parameterType": "STRING"}}}}},
        "deploymentSpec": {"executors": {"exec-echo": {"container": {"image": "alpine",
                           "command": ["sh", "-c", "true"], "args": ["{{$.inputs.parameters['msg']}}"]}}}}
    });
    let (p, v) = e.state.store().create_pipeline_with_version("form", "", "", "v1", &spec, "d").await.unwrap();
    let r = get(&e.app, &format!("/pipelines/{}", p.id), None).await;
    assert_eq!(r.attrs("#create-run input[name='p.n']", "value"), ["3"]);
    assert_eq!(r.attrs("#create-run input[name='p.n']", "step"), ["1"]);
    assert_eq!(r.attrs("#create-run input[name='p.flag']", "type"), ["checkbox"]);
    assert_eq!(r.select("#create-run textarea[name='p.items']").len(), 1);
    assert_eq!(r.attrs("#create-run input[name='p.msg'][required]", "type"), ["text"]);
    let csrf = "f".repeat(64);
    let post = |body: String| {
        Request::post(format!("/pipelines/{}/run", p.id))
            .header(header::COOKIE, format!("secondrow_csrf={csrf}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}&version={}&{body}", v.id)))
            .unwrap()
    };
    // A mistyped value is a message, and nothing is created.
    let r = send(&e.app, post("p.n=abc&p.msg=x".into())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.select("#form-error").concat().contains("`abc` is not an integer"));
    let r = send(&e.app, post("p.n=5&p.msg=%3Cscript%3E&p.flag=on&p.items=%5B1%2C2%5D&run_name=from+the+form".into()))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id = r.location().strip_prefix("/runs/").unwrap().to_owned();
    let run = e.state.store().get_run(&id).await.unwrap();
    assert_eq!(run.display_name, "from the form");
    assert_eq!(run.parameters, json!({"n": 5, "flag": true, "items": [1, 2], "msg": "<script>"}));
    assert_eq!(run.pipeline_version_id.as_deref(), Some(v.id.as_str()));
    e.state.supervisor.wait_idle(&id, std::time::Duration::from_secs(30)).await;
}

#[tokio::test]
async fn recurring_runs_list_and_enable() {
    let e = env(None).await;
    let store = e.state.store();
    let exp = store.ensure_experiment("Default", "").await.unwrap();
    let rr = store
        .create_recurring_run(&secondrow_store::NewRecurringRun {
            display_name: XSS.into(),
            description: String::new(),
            namespace: String::new(),
            experiment_id: Some(exp.id),
            pipeline_id: None,
            pipeline_version_id: None,
            spec: spec(),
            parameters: json!({}),
            runtime_config: json!({}),
            trigger: json!({"cron_schedule": {"cron": "0 0 * * * *"}}),
            max_concurrency: 1,
            no_catchup: true,
            enabled: false,
        })
        .await
        .unwrap();
    let r = get(&e.app, "/recurring", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_no_injected_markup(&r);
    assert_eq!(r.select("table.recurring tbody tr td:first-child"), [XSS]);
    assert_eq!(r.select("table.recurring tbody tr td code"), ["cron 0 0 * * * *"]);
    assert_eq!(r.select("table.recurring button"), ["Enable"]);
    let csrf = "a".repeat(64);
    let req = Request::post(format!("/recurring/{}/do/enable", rr.id))
        .header(header::COOKIE, format!("secondrow_csrf={csrf}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}")))
        .unwrap();
    let r = send(&e.app, req).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(store.get_recurring_run(&rr.id).await.unwrap().enabled);
    let r = get(&e.app, "/recurring", None).await;
    assert_eq!(r.select("table.recurring button"), ["Disable"]);
}
