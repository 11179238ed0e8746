//! HTML-level tests of the UI's views: live log streaming, the compare page's parallel coordinates and
//! confusion matrices, Parquet datasets and statistics reports. The real router over a real SQLite store,
//! artifact and log folders; requests sent in-process, pages parsed with an HTML parser, SSE read as bytes.

mod support;
use support::{env, Env};

use std::io::Write as _;
use std::time::{Duration, Instant};

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
            "train": {"taskInfo": {"name": "train"}, "componentRef": {"name": "comp-a"}}
        }}},
        "components": {"comp-a": {"executorLabel": "exec-a"}}
    })
}

/// A running run with one running container task `train`; returns the run id and the task id.
async fn running(e: &Env, name: &str, parameters: Value) -> (String, String) {
    let store = e.state.store();
    let exp = store.ensure_experiment("Default", "").await.unwrap();
    let run = store
        .create_run(&NewRun {
            display_name: name.into(),
            experiment_id: Some(exp.id),
            pipeline_name: "demo".into(),
            spec: spec(),
            parameters: parameters.as_object().cloned().unwrap_or_default(),
            options: json!({}),
            ..NewRun::default()
        })
        .await
        .unwrap();
    store.set_run_state(&run.id, RunState::Running, None).await.unwrap();
    let task = store
        .start_task(&TaskStart {
            run_id: &run.id,
            parent_id: None,
            path: "train",
            task_key: "train",
            display_name: "train",
            kind: TaskKind::Container,
            state: TaskState::Running,
            attempt: 1,
            cache_key: None,
            inputs: None,
        })
        .await
        .unwrap();
    (run.id, task)
}

async fn finish(e: &Env, run_id: &str, task_id: &str, artifacts: Vec<NewArtifact>) {
    e.state
        .store()
        .finish_task(&TaskFinish {
            run_id,
            task_id,
            state: TaskState::Succeeded,
            error: None,
            cached: false,
            outputs: None,
            new_artifacts: &artifacts,
            output_artifact_refs: &[],
            input_artifact_refs: &[],
            cache_key_to_record: None,
        })
        .await
        .unwrap();
}

struct Resp {
    status: StatusCode,
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

async fn get(app: &Router, uri: &str) -> Resp {
    let r = app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap();
    Resp { status, body: String::from_utf8_lossy(&bytes).into_owned() }
}

/// An open SSE response, read event by event.
struct Events {
    body: axum::body::BodyDataStream,
    text: String,
}

impl Events {
    async fn open(app: &Router, uri: &str) -> Events {
        let resp = app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers().get(header::CONTENT_TYPE).unwrap(), "text/event-stream");
        Events { body: resp.into_body().into_data_stream(), text: String::new() }
    }

    /// The next event (name, JSON data), skipping keep-alive comments; `None` when the stream has ended.
    async fn next(&mut self) -> Option<(String, Value)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let ev: String = self.text.drain(..end + 2).collect();
                let name = ev.lines().find_map(|l| l.strip_prefix("event:")).map(|s| s.trim().to_owned());
                let data: String = ev.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                if let Some(name) = name {
                    return Some((name, serde_json::from_str(&data).unwrap()));
                }
            }
            let left = deadline.checked_duration_since(Instant::now()).expect("no event within 20 s");
            match tokio::time::timeout(left, self.body.next()).await.expect("no event within 20 s") {
                Some(chunk) => self.text.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
                None => return None,
            }
        }
    }

    /// Events until the text of `stream` received so far (in `got`, per stream) ends with `want`.
    async fn until_text(&mut self, got: &mut std::collections::HashMap<String, String>, stream: &str, want: &str) {
        while !got.get(stream).is_some_and(|t| t.ends_with(want)) {
            let (name, data) = self.next().await.expect("the stream ended early");
            assert_eq!(name, "log");
            let text = got.entry(data["stream"].as_str().unwrap().to_owned()).or_default();
            if data["reset"] == true {
                text.clear();
            }
            text.push_str(data["text"].as_str().unwrap());
        }
    }
}

fn append(path: &std::path::Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[tokio::test]
async fn running_task_logs_stream_over_sse_until_the_task_ends() {
    let e = env(None).await;
    let (run, task) = running(&e, "logs", json!({})).await;
    let dir = e.root.join("logs").join(&run).join("train");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("stdout.log");
    append(&out, b"first line\n");
    // The panel shows what is there and where the live stream continues; no polling.
    let r = get(&e.app, &format!("/runs/{run}/tasks/train")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.select("#logs pre[data-stream=stdout]"), ["first line\n"]);
    let url = r.attrs("#logs", "data-log-events").pop().expect("a live log stream");
    assert_eq!(url, format!("/runs/{run}/logs/events?task=train&stdout=11&stderr=0"));
    assert_eq!(r.attrs("#logs", "data-final"), [format!("/runs/{run}/logs?task=train")]);
    assert!(r.attrs("#logs", "hx-trigger").is_empty());

    let mut ev = Events::open(&e.app, &url).await;
    // New bytes arrive as they are written, escaped by the page's textContent (JSON here), and a character
    // split across two writes arrives whole.
    let mut got = std::collections::HashMap::new();
    append(&out, format!("second {XSS}\n").as_bytes());
    ev.until_text(&mut got, "stdout", &format!("second {XSS}\n")).await;
    assert_eq!(got["stdout"], format!("second {XSS}\n"), "only the bytes after the offset");
    let e_acute = "é".as_bytes();
    append(&out, &[b'a', e_acute[0]]);
    append(&dir.join("stderr.log"), b"warning\n");
    ev.until_text(&mut got, "stderr", "warning\n").await;
    append(&out, &[e_acute[1], b'\n']);
    ev.until_text(&mut got, "stdout", "aé\n").await;
    assert!(!got["stdout"].contains('\u{fffd}'), "{got:?}");
    // Bytes written just before the end still arrive, then `end`, then the stream closes.
    append(&out, b"last words\n");
    finish(&e, &run, &task, Vec::new()).await;
    let mut rest = String::new();
    loop {
        match ev.next().await {
            Some((name, data)) if name == "log" => rest.push_str(data["text"].as_str().unwrap()),
            Some((name, _)) => {
                assert_eq!(name, "end");
                break;
            }
            None => panic!("closed without `end`"),
        }
    }
    assert!(rest.ends_with("last words\n"), "{rest:?}");
    assert!(ev.next().await.is_none(), "the stream closes after `end`");
    // The finished task's panel is static again.
    let r = get(&e.app, &format!("/runs/{run}/logs?task=train")).await;
    assert!(r.attrs("#logs", "data-log-events").is_empty());
    assert!(r.select("#logs pre").concat().contains("last words"));
}

#[tokio::test]
async fn a_big_running_log_shows_and_streams_only_its_tail() {
    let e = env(None).await;
    let (run, task) = running(&e, "big", json!({})).await;
    let dir = e.root.join("logs").join(&run).join("train");
    std::fs::create_dir_all(&dir).unwrap();
    let line = format!("{}\n", "x".repeat(99));
    let big = line.repeat(20_000); // 2 MB
    std::fs::write(dir.join("stdout.log"), &big).unwrap();
    let r = get(&e.app, &format!("/runs/{run}/tasks/train")).await;
    let shown = r.select("#logs pre[data-stream=stdout]").concat();
    assert!(shown.len() <= 512 * 1024 && shown.len() > 500 * 1024 && shown.starts_with('x'), "{}", shown.len());
    assert_eq!(r.select("#logs .note").iter().filter(|n| n.contains("512 KiB")).count(), 1);
    // A reader far behind (offset 0) is sent the tail only, marked as a reset.
    let mut ev = Events::open(&e.app, &format!("/runs/{run}/logs/events?task=train")).await;
    let (name, first) = ev.next().await.unwrap();
    assert_eq!((name.as_str(), first["reset"].as_bool()), ("log", Some(true)));
    let mut got = std::collections::HashMap::from([("stdout".to_owned(), first["text"].as_str().unwrap().to_owned())]);
    append(&dir.join("stdout.log"), b"tail end\n");
    ev.until_text(&mut got, "stdout", "tail end\n").await;
    assert!(got["stdout"].len() <= 512 * 1024 + 9 + 100, "{}", got["stdout"].len());
    finish(&e, &run, &task, Vec::new()).await;
    while ev.next().await.is_some() {}
    // Unknown tasks and paths leaving the logs root are refused before anything is read.
    assert_eq!(get(&e.app, &format!("/runs/{run}/logs/events?task=nope")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&e.app, &format!("/runs/{run}/logs/events?task=..%2F..")).await.status.as_u16() / 100, 4);
}

/// A finished run whose `train` task logged metrics and a classification result.
async fn evaluated(e: &Env, name: &str, lr: f64, accuracy: f64) -> String {
    let (run, task) = running(e, name, json!({"lr": lr, "epochs": 5, "label": format!("{name} {XSS}")})).await;
    let dir = e.root.join("artifacts").join(&run);
    std::fs::create_dir_all(&dir).unwrap();
    let artifact = |kind: &str, file: &str, metadata: Value| NewArtifact {
        id: secondrow_store::new_id(),
        output_name: file.into(),
        name: file.into(),
        uri: dir.join(file).display().to_string(),
        schema_title: kind.into(),
        schema_version: "0.0.1".into(),
        metadata,
    };
    let tp = (accuracy * 10.0).round();
    let artifacts = vec![
        artifact("system.Metrics", "metrics", json!({"accuracy": accuracy, "f1": accuracy - 0.05})),
        artifact(
            "system.ClassificationMetrics",
            "cm",
            json!({"confusionMatrix": {"annotationSpecs": [{"displayName": "no"}, {"displayName": XSS}],
                                       "rows": [{"row": [tp, 10.0 - tp]}, {"row": [1, 9]}]},
                   "confidenceMetrics": [{"confidenceThreshold": 0.5, "recall": accuracy, "falsePositiveRate": 0.2}]}),
        ),
    ];
    finish(e, &run, &task, artifacts).await;
    e.state.store().set_run_state(&run, RunState::Succeeded, None).await.unwrap();
    run
}

#[tokio::test]
async fn compare_plots_parallel_coordinates_and_confusion_matrices_in_run_colours() {
    let e = env(None).await;
    let mut ids = vec![
        evaluated(&e, "slow", 0.1, 0.7).await,
        evaluated(&e, "fast", 0.3, 0.9).await,
        evaluated(&e, XSS, 0.2, 0.8).await,
    ];
    ids.sort();
    let uri = format!("/compare?runs={}&runs={}&runs={}", ids[0], ids[1], ids[2]);
    let r = get(&e.app, &uri).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.assert_no_injected_markup();
    // One axis per differing numeric parameter (lr; not the equal `epochs`, not the text `label`), plus the
    // first numeric metric; one line per run, in the compared order.
    let names = r.select("#parallel svg.parallel text.pc-name");
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("lr") && names[1].starts_with("train / accuracy"), "{names:?}");
    assert_eq!(r.select("#parallel text.pc-metric").len(), 1);
    assert_eq!(r.attrs("#parallel polyline.pc-line", "data-run"), ids);
    // Each run has one colour: its line, its ROC curve, its confusion matrix's swatch and its column's swatch.
    let line_colours = r.attrs("#parallel polyline.pc-line", "stroke");
    let roc_colours = r.attrs("#roc-overlay path.roc-line", "stroke");
    let cm_colours = r.attrs("#confusions figcaption svg.swatch rect", "fill");
    let head_colours = r.attrs("table.compare thead svg.swatch rect", "fill");
    assert_eq!(line_colours.len(), 3);
    assert_eq!(roc_colours, line_colours);
    assert_eq!(cm_colours, line_colours);
    assert_eq!(head_colours, line_colours);
    assert_eq!(line_colours.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "distinct colours");
    // The confusion matrices side by side, captions escaped.
    assert_eq!(r.select("#confusions figure svg.confusion").len(), 3);
    assert!(r.select("#confusions figcaption").iter().any(|c| c.contains(XSS)));
    assert!(!r.body.contains(XSS), "user text is escaped everywhere");
    // Another metric, chosen in the form (a GET keeping the runs).
    assert_eq!(r.attrs("form.metric-choice input[name=runs]", "value"), ids);
    assert_eq!(r.select("form.metric-choice option"), ["train / accuracy", "train / f1"]);
    let r = get(&e.app, &format!("{uri}&metric=train+%2F+f1")).await;
    let names = r.select("#parallel text.pc-name");
    assert!(names[1].starts_with("train / f1"), "{names:?}");
    assert_eq!(r.attrs("form.metric-choice option[selected]", "value"), ["train / f1"]);
    // The metric's axis runs from the lowest to the highest value: the best run's line ends at the top.
    let best =
        ids.iter().position(|id| r.attrs(&format!("polyline[data-run=\"{id}\"]"), "points")[0].ends_with(",44.00"));
    assert!(best.is_some(), "{:?}", r.attrs("polyline.pc-line", "points"));
    // A run without metrics (or without a parameter) still shows the values it has: here a dot on its one
    // axis, no line.
    let partial = running(&e, "partial", json!({"lr": 0.5})).await.0;
    let r = get(&e.app, &format!("/compare?runs={},{},{partial}", ids[0], ids[1])).await;
    assert_eq!(r.select("#parallel text.pc-name").len(), 2, "{}", r.body);
    assert!(r.attrs(&format!("polyline[data-run=\"{partial}\"]"), "points").is_empty());
    assert_eq!(r.attrs(&format!("circle.pc-dot[data-run=\"{partial}\"]"), "cx"), ["70.00"]);
    // Runs without numeric differences or metrics say so.
    let plain: Vec<String> = {
        let mut v = Vec::new();
        for n in ["a", "b"] {
            v.push(running(&e, n, json!({"x": "same"})).await.0);
        }
        v
    };
    let r = get(&e.app, &format!("/compare?runs={},{}", plain[0], plain[1])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.select("p.empty").iter().any(|p| p.contains("No numeric parameter differs")), "{}", r.body);
    assert!(r.select("#parallel").is_empty() && r.select("#confusions").is_empty());
}

#[tokio::test]
async fn parquet_datasets_page_with_schema_and_statistics_reports_render() {
    use secondrow_ml::table::{Column, Table, TableFormat};
    let e = env(None).await;
    let (run, task) = running(&e, "data", json!({})).await;
    let dir = e.root.join("artifacts").join(&run);
    std::fs::create_dir_all(&dir).unwrap();
    // What the built-in components write: a Parquet dataset (ingest with format=parquet) and statistics.
    let n = 120;
    let table = Table::new(vec![
        Column::number("age", (0..n).map(|i| 20.0 + (i % 50) as f64).collect()),
        Column::text(
            "city",
            (0..n).map(|i| (i % 7 != 0).then(|| if i % 2 == 0 { XSS.to_owned() } else { "Oslo".into() })).collect(),
        ),
    ]);
    table.write(&dir.join("data.parquet"), TableFormat::Parquet).unwrap();
    let stats = secondrow_ml::stats::compute(&table, 5);
    std::fs::write(dir.join("statistics"), serde_json::to_vec(&stats).unwrap()).unwrap();
    let art = |kind: &str, file: &str, metadata: Value| NewArtifact {
        id: secondrow_store::new_id(),
        output_name: file.into(),
        name: file.into(),
        uri: dir.join(file).display().to_string(),
        schema_title: kind.into(),
        schema_version: "0.0.1".into(),
        metadata,
    };
    let dataset = art("system.Dataset", "data.parquet", json!({"format": "parquet"}));
    let report = art("system.Artifact", "statistics", json!({"rows": n, "columns": 2}));
    let (dataset_id, report_id) = (dataset.id.clone(), report.id.clone());
    finish(&e, &run, &task, vec![dataset, report]).await;

    let r = get(&e.app, &format!("/runs/{run}/artifacts/{dataset_id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.assert_no_injected_markup();
    assert!(r.select("details.schema summary").concat().contains("2 columns, 120 rows"));
    assert_eq!(r.select("details.schema td code"), ["Int64", "Utf8"]);
    assert_eq!(r.select("table.dataset thead th small"), ["Int64", "Utf8"]);
    assert_eq!(r.select("table.dataset tbody tr").len(), 50);
    let first: Vec<String> = r.select("table.dataset tbody tr:first-child td");
    assert_eq!(first, ["20", ""], "row 0: age 20, city missing");
    assert!(r.select("table.dataset tbody td").contains(&XSS.to_owned()), "shown as text");
    assert_eq!(r.attrs("nav.pager a", "href"), [format!("/runs/{run}/artifacts/{dataset_id}?page=1")]);
    let r = get(&e.app, &format!("/runs/{run}/artifacts/{dataset_id}?page=2")).await;
    assert_eq!(r.select("table.dataset tbody tr").len(), 20);
    assert_eq!(r.select("table.dataset tbody tr:first-child td")[0], "20", "row 100: 20 + 100 % 50");
    assert!(r.select("nav.pager span").concat().contains("rows 101–120"));

    let r = get(&e.app, &format!("/runs/{run}/artifacts/{report_id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.assert_no_injected_markup();
    assert!(r.select(".stats-size").concat().contains("120 rows · 2 columns"));
    assert_eq!(r.attrs("table.stats tbody tr", "data-column"), ["age", "city"]);
    let age = r.select("table.stats tbody tr[data-column=age] td");
    assert_eq!(&age[..3], ["number", "120", "0"]);
    assert_eq!(r.select("table.stats tr[data-column=age] svg.histogram rect.bar").len(), 5);
    assert!(r.select("table.stats tr[data-column=city] svg").is_empty());
    assert!(r.select("table.stats tr[data-column=city] td").concat().contains(&format!("{XSS} (")));
}
