//! HTML-level tests of the UI's finishing touches: the pipeline page's create-run form coming back with the
//! message and the typed values after a refusal; a namespace token refused (403) on another namespace's live
//! logs and artifact views; keyboard, colour-scheme, time-zone and empty-state affordances. The real router
//! over a real SQLite store and artifact folder; requests in-process, pages parsed with an HTML parser.

mod support;
use support::{env, Env};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use scraper::{Html, Selector};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use secondrow_store::{NewArtifact, NewRun, RunState, TaskFinish, TaskKind, TaskStart, TaskState};

const XSS: &str = "<script>alert(1)</script>";
const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ADMIN: &str = "admin-token-0123456789";

/// A pipeline with a required string, an integer, a boolean and an optional list parameter.
fn spec() -> Value {
    json!({
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
    })
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Resp {
    fn select(&self, css: &str) -> Vec<String> {
        let doc = Html::parse_document(&self.body);
        doc.select(&Selector::parse(css).unwrap()).map(|e| e.text().collect::<String>()).collect()
    }
    fn attrs(&self, css: &str, attr: &str) -> Vec<String> {
        let doc = Html::parse_document(&self.body);
        doc.select(&Selector::parse(css).unwrap()).filter_map(|e| e.value().attr(attr).map(str::to_owned)).collect()
    }
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    /// No script element other than the UI's own files, no event-handler attribute.
    fn assert_no_injected_markup(&self) {
        let doc = Html::parse_document(&self.body);
        for s in doc.select(&Selector::parse("script").unwrap()) {
            assert!(s.value().attr("src").unwrap_or("").starts_with("/ui/static/"), "{}", s.html());
        }
        for el in doc.select(&Selector::parse("*").unwrap()) {
            for (name, _) in el.value().attrs() {
                assert!(!name.starts_with("on"), "event handler attribute {name}");
            }
        }
    }
}

fn cookies(token: Option<&str>) -> String {
    match token {
        Some(t) => format!("secondrow_csrf={CSRF}; secondrow_token={t}"),
        None => format!("secondrow_csrf={CSRF}"),
    }
}

async fn send(app: &Router, req: Request<Body>) -> Resp {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap();
    Resp { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

async fn get(app: &Router, uri: &str, token: Option<&str>) -> Resp {
    send(app, Request::get(uri).header(header::COOKIE, cookies(token)).body(Body::empty()).unwrap()).await
}

/// The status of a GET without reading the body (an SSE stream stays open).
async fn status(app: &Router, uri: &str, token: Option<&str>) -> StatusCode {
    let req = Request::get(uri).header(header::COOKIE, cookies(token)).body(Body::empty()).unwrap();
    app.clone().oneshot(req).await.unwrap().status()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn post(app: &Router, uri: &str, fields: &[(&str, &str)]) -> Resp {
    let mut body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    body.push(format!("csrf={CSRF}"));
    let req = Request::post(uri)
        .header(header::COOKIE, cookies(None))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.join("&")))
        .unwrap();
    send(app, req).await
}

#[tokio::test]
async fn create_run_form_comes_back_with_the_message_and_the_typed_values() {
    let e = env(None).await;
    let store = e.state.store();
    let (p, v) = store.create_pipeline_with_version("form", "", "", "v1", &spec(), "d").await.unwrap();
    let exp = store.create_experiment("tuning", "", "").await.unwrap();
    let uri = format!("/pipelines/{}/run", p.id);
    let name = format!("mine {XSS}");
    let form = |n: &'static str, msg: &'static str| {
        let fields = [
            ("version", v.id.clone()),
            ("run_name", name.clone()),
            ("experiment", exp.id.clone()),
            ("p.n", n.to_owned()),
            ("p.msg", msg.to_owned()),
            ("p.flag", "on".to_owned()),
            ("p.items", "[1, 2]".to_owned()),
        ];
        let (app, uri) = (e.app.clone(), uri.clone());
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(&app, &uri, &pairs).await
        }
    };
    // A mistyped integer: the form again, with the message and every value as typed.
    let r = form("abc", "hello").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    r.assert_no_injected_markup();
    assert!(r.select("#form-error").concat().contains("`abc` is not an integer"), "{}", r.body);
    assert_eq!(r.attrs("#create-run input[name=run_name]", "value"), [format!("mine {XSS}")]);
    assert_eq!(r.attrs("#create-run input[name='p.n']", "value"), ["abc"]);
    assert_eq!(r.attrs("#create-run input[name='p.msg']", "value"), ["hello"]);
    assert_eq!(r.attrs("#create-run input[name='p.flag'][checked]", "type"), ["checkbox"]);
    assert_eq!(r.select("#create-run textarea[name='p.items']"), ["[1, 2]"]);
    assert_eq!(r.attrs("#create-run select[name=experiment] option[selected]", "value"), [exp.id.as_str()]);
    assert_eq!(r.attrs("#create-run input[name=version]", "value"), [v.id.as_str()]);
    // A value the API refuses (the required `msg` left empty): its message, the values kept.
    let r = form("7", "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.select("#form-error").concat().contains("msg"), "{}", r.body);
    assert_eq!(r.attrs("#create-run input[name='p.n']", "value"), ["7"]);
    assert_eq!(r.attrs("#create-run input[name=run_name]", "value"), [format!("mine {XSS}")]);
    assert!(store.list_runs(10).await.unwrap().is_empty(), "nothing was created");
    // Corrected, it starts the run in the chosen experiment.
    let r = form("7", "hello").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id = r.location().strip_prefix("/runs/").unwrap().to_owned();
    let run = store.get_run(&id).await.unwrap();
    assert_eq!(run.parameters, json!({"n": 7, "flag": true, "items": [1, 2], "msg": "hello"}));
    assert_eq!(run.experiment_id.as_deref(), Some(exp.id.as_str()));
    assert_eq!(run.display_name, format!("mine {XSS}"));
    e.state.supervisor.wait_idle(&id, std::time::Duration::from_secs(30)).await;
    // The page of an unknown version is still an error page.
    let r = post(&e.app, &uri, &[("version", "nope"), ("p.msg", "x")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A run of `namespace` with a running task `train` (a log line written) and, from a finished task `stats`,
/// a Parquet dataset, a statistics report and an HTML artifact; returns the run id and the artifact ids.
async fn seed(e: &Env, name: &str, namespace: &str) -> (String, [String; 3]) {
    use secondrow_ml::table::{Column, Table, TableFormat};
    let store = e.state.store();
    let exp = store.ensure_experiment("Default", namespace).await.unwrap();
    let run = store
        .create_run(&NewRun {
            display_name: name.into(),
            namespace: namespace.into(),
            experiment_id: Some(exp.id),
            pipeline_name: "demo".into(),
            spec: spec(),
            options: json!({}),
            ..NewRun::default()
        })
        .await
        .unwrap();
    store.set_run_state(&run.id, RunState::Running, None).await.unwrap();
    let start = |path: &'static str| {
        let run_id = run.id.clone();
        async move {
            store
                .start_task(&TaskStart {
                    run_id: &run_id,
                    parent_id: None,
                    path,
                    task_key: path,
                    display_name: path,
                    kind: TaskKind::Container,
                    state: TaskState::Running,
                    attempt: 1,
                    cache_key: None,
                    inputs: None,
                })
                .await
                .unwrap()
        }
    };
    start("train").await;
    let stats_task = start("stats").await;
    let logs = e.root.join("logs").join(&run.id).join("train");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("stdout.log"), "epoch 1\n").unwrap();
    let dir = e.root.join("artifacts").join(&run.id);
    std::fs::create_dir_all(&dir).unwrap();
    let table = Table::new(vec![Column::number("age", (0..10).map(f64::from).collect())]);
    table.write(&dir.join("data.parquet"), TableFormat::Parquet).unwrap();
    let stats = secondrow_ml::stats::compute(&table, 5);
    std::fs::write(dir.join("statistics"), serde_json::to_vec(&stats).unwrap()).unwrap();
    std::fs::write(dir.join("report.html"), "<h1>secret</h1>").unwrap();
    let art = |kind: &str, file: &str, metadata: Value| NewArtifact {
        id: secondrow_store::new_id(),
        output_name: file.into(),
        name: file.into(),
        uri: dir.join(file).display().to_string(),
        schema_title: kind.into(),
        schema_version: "0.0.1".into(),
        metadata,
    };
    let new = vec![
        art("system.Dataset", "data.parquet", json!({"format": "parquet"})),
        art("system.Artifact", "statistics", json!({"rows": 10, "columns": 1})),
        art("system.HTML", "report.html", json!({})),
    ];
    let ids = [new[0].id.clone(), new[1].id.clone(), new[2].id.clone()];
    store
        .finish_task(&TaskFinish {
            run_id: &run.id,
            task_id: &stats_task,
            state: TaskState::Succeeded,
            error: None,
            cached: false,
            outputs: None,
            new_artifacts: &new,
            output_artifact_refs: &[],
            input_artifact_refs: &[],
            cache_key_to_record: None,
        })
        .await
        .unwrap();
    (run.id, ids)
}

#[tokio::test]
async fn live_logs_and_artifact_views_of_another_namespace_are_refused() {
    let e = env(Some(ADMIN)).await;
    let (mine, my_artifacts) = seed(&e, "mine", "team-a").await;
    let (theirs, [dataset, report, page]) = seed(&e, "theirs", "team-b").await;
    let (_, secret) = e.state.store().create_api_token("team-a", "ui").await.unwrap();
    let uris = [
        format!("/runs/{theirs}/logs/events?task=train&stdout=0&stderr=0"),
        format!("/runs/{theirs}/artifacts/{dataset}"),
        format!("/runs/{theirs}/artifacts/{dataset}?page=1"),
        format!("/runs/{theirs}/artifacts/{report}"),
        format!("/artifacts/{page}/view"),
        format!("/artifacts/{dataset}/download"),
        format!("/artifacts/{report}/download"),
    ];
    // Each view works (so the refusal below is the namespace's, not a broken fixture)...
    for uri in &uris {
        assert_eq!(status(&e.app, uri, Some(ADMIN)).await, StatusCode::OK, "admin {uri}");
    }
    // ...and is 403 for team-a's token, with none of the run's content.
    for uri in &uris {
        let r = if uri.contains("/logs/events") {
            Resp { status: status(&e.app, uri, Some(&secret)).await, headers: Default::default(), body: String::new() }
        } else {
            get(&e.app, uri, Some(&secret)).await
        };
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
        assert!(!r.body.contains("secret") && !r.body.contains("epoch 1"), "{uri}: {}", r.body);
    }
    // Another run's artifact under one's own run is not found, not shown.
    let r = get(&e.app, &format!("/runs/{mine}/artifacts/{dataset}"), Some(&secret)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.select("table.dataset").is_empty());
    // Team-a's own views work with its token.
    for uri in [
        format!("/runs/{mine}/logs/events?task=train&stdout=0&stderr=0"),
        format!("/runs/{mine}/artifacts/{}", my_artifacts[0]),
        format!("/runs/{mine}/artifacts/{}", my_artifacts[1]),
        format!("/artifacts/{}/view", my_artifacts[2]),
        format!("/artifacts/{}/download", my_artifacts[0]),
    ] {
        assert_eq!(status(&e.app, &uri, Some(&secret)).await, StatusCode::OK, "{uri}");
    }
}

/// Every form control that a person fills in sits inside a `<label>` (or has an `aria-label`).
fn assert_labelled(r: &Resp, form: &str) {
    let doc = Html::parse_document(&r.body);
    let controls =
        Selector::parse(&format!("{form} input:not([type=hidden]), {form} select, {form} textarea")).unwrap();
    let mut n = 0;
    for c in doc.select(&controls) {
        n += 1;
        let labelled = c.value().attr("aria-label").is_some()
            || c.ancestors().any(|a| a.value().as_element().is_some_and(|e| e.name() == "label"));
        assert!(labelled, "{form}: unlabelled control {}", c.html());
    }
    assert!(n > 0, "{form} has no controls");
}

#[tokio::test]
async fn keyboard_colour_scheme_local_times_and_empty_states() {
    let e = env(None).await;
    let store = e.state.store();
    // Light and dark follow the system; keyboard focus is visible on links, buttons, graph nodes and fields.
    let css = get(&e.app, "/ui/static/app.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.body.contains("@media (prefers-color-scheme: dark)"));
    for sel in [
        "a:focus-visible",
        ".node:focus-visible",
        "input:focus-visible",
        "select:focus-visible",
        "summary:focus-visible",
    ] {
        assert!(css.body.contains(sel), "{sel}");
    }
    // Times are sent as RFC 3339 in <time datetime> and shown in the browser's zone by app.js.
    let js = get(&e.app, "/ui/static/app.js", None).await;
    assert!(js.body.contains("time[datetime]") && js.body.contains("toLocaleString"));

    // A pipeline without versions says how to add one, and links to the form that does.
    let bare = store.create_pipeline("bare", "", "").await.unwrap();
    let r = get(&e.app, &format!("/pipelines/{}", bare.id), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let empty = r.select("#no-versions").concat();
    assert!(empty.contains("Upload one") && empty.contains("upload_pipeline_version"), "{empty}");
    assert_eq!(r.attrs("#no-versions a", "href"), ["#upload-version"]);
    assert_eq!(r.select("#upload-version").len(), 1);
    assert!(r.select("#create-run").is_empty());

    // A pipeline's page: a skip link to the content, labelled fields, times in <time datetime>.
    let (p, _) = store.create_pipeline_with_version("form", "", "", "v1", &spec(), "d").await.unwrap();
    let r = get(&e.app, &format!("/pipelines/{}", p.id), None).await;
    let skip = r.attrs("a.skip", "href");
    assert_eq!(skip.len(), 1);
    assert_eq!(r.attrs(&format!("[id='{}']", skip[0].trim_start_matches('#')), "id").len(), 1, "{skip:?}");
    assert_labelled(&r, "#create-run");
    assert_labelled(&r, "#upload-version");
    let times = r.attrs("time", "datetime");
    assert!(!times.is_empty());
    for t in &times {
        let b = t.as_bytes();
        assert!(b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && (t.ends_with('Z') || t.contains('+')), "{t}");
    }
    for text in r.select("time") {
        assert!(times.contains(&text), "the server writes the RFC 3339 value, the browser localises it: {text}");
    }

    // An artifact's view scrolls sideways from the keyboard (a focusable region).
    let (run, [dataset, _, _]) = seed(&e, "data", "").await;
    let r = get(&e.app, &format!("/runs/{run}/artifacts/{dataset}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.attrs("#viz", "tabindex"), ["0"]);
    assert_eq!(r.attrs("#viz", "role"), ["region"]);
}

#[tokio::test]
async fn artifact_views_say_what_to_do_when_there_is_nothing_to_show() {
    let e = env(None).await;
    let (run, [dataset, _, _]) = seed(&e, "data", "").await;
    // Past the last page of a dataset: a way back, not an empty table.
    let r = get(&e.app, &format!("/runs/{run}/artifacts/{dataset}?page=5"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.select("table.dataset").is_empty());
    assert!(r.select("#no-rows").concat().contains("shorter"), "{}", r.body);
    assert_eq!(r.attrs("#no-rows a", "href"), [format!("/runs/{run}/artifacts/{dataset}?page=0")]);
    // A header-only CSV, a report that is not statistics, a kind without a view: each says so.
    let store = e.state.store();
    let (other, task) = {
        let o = seed(&e, "other", "").await.0;
        let t = store
            .start_task(&TaskStart {
                run_id: &o,
                parent_id: None,
                path: "extra",
                task_key: "extra",
                display_name: "extra",
                kind: TaskKind::Container,
                state: TaskState::Running,
                attempt: 1,
                cache_key: None,
                inputs: None,
            })
            .await
            .unwrap();
        (o, t)
    };
    let dir = e.root.join("artifacts").join(&other);
    std::fs::write(dir.join("empty.csv"), format!("id,{XSS}\n")).unwrap();
    std::fs::write(dir.join("odd"), "not json").unwrap();
    std::fs::write(dir.join("model.bin"), [0u8, 1, 2]).unwrap();
    let art = |kind: &str, file: &str, metadata: Value| NewArtifact {
        id: secondrow_store::new_id(),
        output_name: file.into(),
        name: file.into(),
        uri: dir.join(file).display().to_string(),
        schema_title: kind.into(),
        schema_version: "0.0.1".into(),
        metadata,
    };
    let new = vec![
        art("system.Dataset", "empty.csv", json!({})),
        art("system.Artifact", "odd", json!({"rows": 1, "columns": 1})),
        art("system.Model", "model.bin", json!({})),
    ];
    let ids: Vec<String> = new.iter().map(|a| a.id.clone()).collect();
    store
        .finish_task(&TaskFinish {
            run_id: &other,
            task_id: &task,
            state: TaskState::Succeeded,
            error: None,
            cached: false,
            outputs: None,
            new_artifacts: &new,
            output_artifact_refs: &[],
            input_artifact_refs: &[],
            cache_key_to_record: None,
        })
        .await
        .unwrap();
    let view = |i: usize| {
        let (app, uri) = (e.app.clone(), format!("/runs/{other}/artifacts/{}", ids[i]));
        async move { get(&app, &uri, None).await }
    };
    let r = view(0).await;
    r.assert_no_injected_markup();
    assert_eq!(r.select("#no-rows"), [format!("This dataset has no rows (columns: id, {XSS}).")]);
    let r = view(1).await;
    assert!(r.select("#viz p.empty").concat().contains("download it"), "{}", r.body);
    let r = view(2).await;
    assert!(r.select("#viz p.empty").concat().contains("no view for system.Model artifacts"), "{}", r.body);
}
