//! Model monitoring end to end: a model trained by a real pipeline run, deployed with prediction logging
//! on a real `secondrow server`, real V2 requests with shifted data, drift on `/metrics` and through
//! `secondrow monitor`, ground-truth feedback by request id, and bad input.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::Server;
use crate::deploy::{compile_pipeline, make_rows, write_csv};
use crate::support::*;

/// One HTTP/1.1 request over a fresh connection: status, head and body text.
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn json_body(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn api_addr(server: &Server) -> String {
    server.url.trim_start_matches("http://").trim_end_matches('/').to_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of one Prometheus series line (`name{labels} value`).
fn series(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn logged_traffic_drifts_gets_feedback_and_bad_input_is_refused() {
    let home = Home::new();
    let train = home.path().join("train.csv");
    let training_rows = make_rows(240, 7);
    write_csv(&train, &training_rows, true);
    let yaml = compile_pipeline(&home);
    let (code, run) = home.run(&yaml, &["-p", &format!("source={}", train.display())]);
    assert_eq!(code, 0, "pipeline run: {}", run.0);
    let run_id = run.id();

    // No import root: a rule's window lands in its namespace's own files, which its runs may import.
    let server = Server::start(&home, &[]);
    let cli = |args: &[&str]| home.cmd().args(args).args(["--server", &server.url]).output().unwrap();

    // Deployed with every request logged.
    let created = json_body(&ok(&cli(&[
        "deploy",
        "create",
        "churn",
        "--run",
        &run_id,
        "--task",
        "train-logistic-regression",
        "--output",
        "model",
        "--log-sample",
        "1",
        "--json",
    ])));
    assert_eq!(created["log_sample"], 1.0, "{created}");

    // Traffic like the training data, then shifted: x1 moves by +6 (its training range is -3..3).
    let send = |id: Option<&str>, rows: &[[f64; 3]]| {
        let data: Vec<f64> = rows.iter().flatten().copied().collect();
        let mut body =
            json!({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [rows.len(), 3], "data": data}]});
        if let Some(id) = id {
            body["id"] = json!(id);
        }
        let (status, _, text) = http(&server.models, "POST", "/v2/models/churn/infer", &[], Some(&body));
        assert_eq!(status, 200, "{text}");
        json_body(&text)
    };
    let normal = make_rows(100, 99);
    let mut shifted = make_rows(300, 5);
    for (x, _) in &mut shifted {
        x[0] += 6.0;
    }
    for (i, chunk) in normal.chunks(10).enumerate() {
        let rows: Vec<[f64; 3]> = chunk.iter().map(|(x, _)| *x).collect();
        assert_eq!(send(Some(&format!("normal-{i}")), &rows)["id"], format!("normal-{i}"));
    }
    let mut shifted_ids = Vec::new();
    for chunk in shifted.chunks(10) {
        let rows: Vec<[f64; 3]> = chunk.iter().map(|(x, _)| *x).collect();
        // No id given: the server makes one and returns it.
        let answer = send(None, &rows);
        let id = answer["id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 36, "a generated id: {answer}");
        shifted_ids.push((id, chunk.iter().map(|(_, label)| json!(label.to_string())).collect::<Vec<_>>()));
    }

    // The log is written in the background; the drift gauges follow on /metrics.
    let metrics = wait_for(Duration::from_secs(30), || {
        let (_, _, text) = http(&server.models, "GET", "/metrics", &[], None);
        let rows = series(&text, "secondrow_monitor_window_rows{model=\"churn\",version=\"1\"}")?;
        (rows >= 400.0).then_some(text)
    });
    assert_eq!(series(&metrics, "secondrow_monitor_logged_requests_total{model=\"churn\"}"), Some(40.0), "{metrics}");
    assert_eq!(series(&metrics, "secondrow_monitor_log_dropped_total{model=\"churn\"}"), Some(0.0), "{metrics}");
    let psi = |feature: &str| {
        series(
            &metrics,
            &format!("secondrow_monitor_feature_psi{{model=\"churn\",version=\"1\",feature=\"{feature}\"}}"),
        )
        .unwrap_or_else(|| panic!("no PSI of {feature}: {metrics}"))
    };
    assert!(psi("x1") > 0.2, "x1 drifted: {metrics}");
    assert!(psi("x2") < psi("x1") && psi("x3") < psi("x1"), "{metrics}");

    // Feedback by request id: the true labels of the shifted requests.
    let api = api_addr(&server);
    for (id, labels) in &shifted_ids {
        let (status, _, text) = http(
            &api,
            "POST",
            "/apis/v2beta1/deployments/churn/feedback",
            &[],
            Some(&json!({"id": id, "labels": labels})),
        );
        assert_eq!(status, 200, "{text}");
    }
    let (status, _, text) = http(
        &api,
        "POST",
        "/apis/v2beta1/deployments/churn/feedback",
        &[],
        Some(&json!({"id": "no-such-request", "label": "1"})),
    );
    assert_eq!(status, 404, "{text}");
    assert!(json_body(&text)["error"].as_str().unwrap().contains("`no-such-request` is not in the prediction log"));
    let (status, _, text) = http(
        &api,
        "POST",
        "/apis/v2beta1/deployments/churn/feedback",
        &[],
        Some(&json!({"id": "normal-0", "labels": ["1"]})),
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("has 10 rows, got 1 labels"), "{text}");

    // `secondrow monitor`: the same figures as JSON, with performance over the labelled rows.
    let doc = json_body(&ok(&cli(&["monitor", "churn", "--window", "1000", "--json"])));
    let version = &doc["versions"][0];
    assert_eq!((version["version"].as_str(), version["rows"].as_u64()), (Some("1"), Some(400)), "{doc}");
    assert!(version["reference"].as_str().unwrap().starts_with("training data"), "{doc}");
    let x1 = version["features"].as_array().unwrap().iter().find(|f| f["feature"] == "x1").unwrap();
    assert!(x1["psi"].as_f64().unwrap() > 0.2 && x1["ks"].as_f64().unwrap() > 0.5, "{x1}");
    assert!(x1["ks_p_value"].as_f64().unwrap() < 1e-6, "{x1}");
    assert_eq!(version["schema_violation_rate"], 0.0, "{doc}");
    assert_eq!(version["performance"]["metric"], "accuracy", "{doc}");
    assert_eq!(version["performance"]["labelled"], 300, "{doc}");
    let accuracy = version["performance"]["value"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy), "{doc}");

    // The log as CloudEvents in KServe's logger layout: a request and a response event per logged request.
    let exported = ok(&cli(&["monitor", "export", "churn", "--format", "cloudevents"]));
    let events: Vec<Value> = exported.lines().map(json_body).collect();
    assert_eq!(events.len(), 80, "{exported}");
    let first = &events[0];
    assert_eq!(
        (first["type"].as_str(), first["id"].as_str()),
        (Some("org.kubeflow.serving.inference.request"), Some("normal-0"))
    );
    assert_eq!(events[1]["type"], "org.kubeflow.serving.inference.response");
    assert_eq!((events[1]["id"].as_str(), first["specversion"].as_str()), (Some("normal-0"), Some("1.0")));
    assert_eq!(first["source"], "/deployments/churn/versions/1");
    assert_eq!(first["data"]["inputs"][0]["name"], "x1");
    assert_eq!(first["data"]["inputs"][0]["data"].as_array().unwrap().len(), 10);
    assert_eq!(first["data"]["inputs"][0]["data"][0].as_f64(), Some(normal[0].0[0]));
    let rows: u64 = events
        .iter()
        .filter(|e| e["type"] == "org.kubeflow.serving.inference.response")
        .map(|e| e["data"]["outputs"][0]["shape"][0].as_u64().unwrap())
        .sum();
    assert_eq!(rows, 400);
    // The same without --server; `--since` keeps the later requests; bad input exits 2.
    let local = home.cmd().args(["monitor", "export", "churn"]).output().unwrap();
    assert_eq!(ok(&local), exported);
    let since = events[40]["time"].as_str().unwrap().to_owned();
    let later = ok(&cli(&["monitor", "export", "churn", "--since", &since]));
    let later: Vec<Value> = later.lines().map(json_body).collect();
    // Requests logged in the same instant share a time, so the count is that of the events at or after it.
    let expected = events.iter().filter(|e| e["time"].as_str().unwrap() >= since.as_str()).count();
    assert!(expected < events.len() && later.len() == expected, "{} of {expected}", later.len());
    assert!(later.iter().all(|e| e["time"].as_str().unwrap() >= since.as_str()));
    for (args, message) in [
        (vec!["monitor", "export", "churn", "--since", "yesterday"], "since: `yesterday` is not an RFC 3339 time"),
        (vec!["monitor", "export", "nope"], "deployment `nope` not found"),
        (vec!["monitor", "export", "churn", "--format", "csv"], "invalid value 'csv'"),
    ] {
        let out = cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }

    // A smaller window holds only the shifted rows; the table and the report name the drift.
    let table =
        ok(&cli(&["monitor", "churn", "--window", "300", "--report", home.path().join("reports").to_str().unwrap()]));
    assert!(table.contains("300 rows") && table.contains("DRIFT"), "{table}");
    let md = std::fs::read_to_string(home.path().join("reports/drift-report-1.md")).unwrap();
    assert!(md.contains("| x1 | number |") && md.contains("| drift |"), "{md}");
    let html = std::fs::read_to_string(home.path().join("reports/drift-report-1.html")).unwrap();
    assert!(html.contains("<td class=\"drift\">drift</td>"), "{html}");

    // Bad input: an unknown deployment, a bad window, a bad sample share: exit 2, nothing changed.
    for (args, message) in [
        (vec!["monitor", "nope"], "deployment `nope` not found"),
        (vec!["monitor", "churn", "--window", "0"], "--window must be between 1"),
        (vec!["deploy", "update", "churn", "--log-sample", "1.5"], "--log-sample: must be between 0 and 1"),
    ] {
        let out = cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }

    // A rule: drift starts a run of a pipeline on the logged window, once per cool-down.
    let version_id = upload_window_pipeline(&home, &server);
    let rule_cli = |args: &[&str]| cli(&[&["monitor", "rule"][..], args].concat());
    for (args, message) in [
        (vec!["--deployment", "churn", "--when", "psi(x1) >"], "column 10: expected a number, found the end"),
        (
            vec!["--deployment", "churn", "--when", "psi(nope) > 0.2"],
            "unknown feature `nope`: deployment `churn` takes x1, x2, x3",
        ),
        (vec!["--deployment", "nope", "--when", "psi(x1) > 0.2"], "deployment `nope` not found"),
    ] {
        let out = rule_cli(&[&["create"][..], &args, &["--run", &version_id]].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let rule = json_body(&ok(&rule_cli(&[
        "create",
        "--deployment",
        "churn",
        "--when",
        "psi(x1) > 0.2 or accuracy < 0.1",
        "--run",
        &version_id,
        "--cooldown",
        "1h",
        "--json",
    ])));
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    let rules = |server: &Server| {
        let (status, _, text) =
            http(&api_addr(server), "GET", "/apis/v2beta1/deployments/churn/monitor/rules", &[], None);
        assert_eq!(status, 200, "{text}");
        json_body(&text)
    };
    let started = wait_for(Duration::from_secs(60), || {
        let doc = rules(&server);
        (!doc["runs"].as_array().unwrap().is_empty()).then_some(doc)
    });
    // Two more monitoring passes with the drift still there: still one run (the cool-down).
    let evaluations = || {
        let (_, _, text) = http(&server.models, "GET", "/metrics", &[], None);
        series(&text, "secondrow_monitor_evaluations_total").unwrap_or(0.0)
    };
    let now = evaluations();
    wait_for(Duration::from_secs(30), || (evaluations() >= now + 2.0).then_some(()));
    let after = rules(&server);
    assert_eq!(after["runs"].as_array().unwrap().len(), 1, "{after}");
    let link = &started["runs"][0];
    assert_eq!((link["rule_id"].as_str(), link["version"].as_str()), (Some(rule_id.as_str()), Some("1")), "{link}");
    let window_file = link["window_uri"].as_str().unwrap().to_owned();
    let own = home.path().join("home").join("artifacts").join("_namespaces").join("ns-");
    assert!(
        std::fs::canonicalize(&window_file)
            .unwrap()
            .starts_with(std::fs::canonicalize(own).unwrap().join("monitor-windows").join("churn")),
        "the window is in the namespace's own files: {window_file}"
    );
    let window_text = std::fs::read_to_string(&window_file).unwrap();
    assert_eq!(window_text.lines().next(), Some("x1,x2,x3,prediction"));
    assert_eq!(window_text.lines().count(), 401, "a header and the 400 logged rows");
    let run_id = link["run_id"].as_str().unwrap().to_owned();
    let finished = wait_for(Duration::from_secs(120), || {
        let (_, _, text) = http(&api_addr(&server), "GET", &format!("/apis/v2beta1/runs/{run_id}"), &[], None);
        let run = json_body(&text);
        matches!(run["state"].as_str(), Some("SUCCEEDED" | "FAILED")).then_some(run)
    });
    assert_eq!(finished["state"], "SUCCEEDED", "{finished}");
    assert_eq!(finished["runtime_config"]["parameters"]["source"], window_file.as_str(), "{finished}");

    // The monitoring page: per feature, the drift series of `secondrow monitor --json --buckets 4`; the
    // rule and the run it started, linked.
    let doc = json_body(&ok(&cli(&["monitor", "churn", "--window", "1000", "--buckets", "4", "--json"])));
    let timeline = doc["versions"][0]["timeline"].as_array().unwrap_or_else(|| panic!("no timeline: {doc}")).clone();
    assert_eq!(timeline.len(), 4, "{doc}");
    // Without --server, `secondrow monitor` reads the home's store and prediction log itself: the same figures.
    let local = home.cmd().args(["monitor", "churn", "--window", "1000", "--buckets", "4", "--json"]).output().unwrap();
    assert_eq!(json_body(&ok(&local)), doc, "the local reading differs from the server's");
    let local = home.cmd().args(["monitor", "churn", "--buckets", "0"]).output().unwrap();
    assert_eq!(local.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&local.stderr).contains("--buckets must be between 1 and 100"));
    assert_eq!(timeline.iter().map(|b| b["rows"].as_u64().unwrap()).sum::<u64>(), 400, "{doc}");
    let (status, _, page) =
        http(&api_addr(&server), "GET", "/deployments/churn/monitoring?buckets=4&window=1000", &[], None);
    assert_eq!(status, 200, "{page}");
    for feature in ["x1", "x2", "x3"] {
        let figure = page
            .split(&format!("<figure class=\"drift-chart\" data-feature=\"{feature}\">"))
            .nth(1)
            .and_then(|rest| rest.split("</figure>").next())
            .unwrap_or_else(|| panic!("no chart of {feature}: {page}"));
        assert!(figure.contains("class=\"threshold\" data-value=\"0.2\""), "{figure}");
        for key in ["psi", "ks"] {
            let shown = points(figure, key);
            let expected: Vec<(usize, f64)> = timeline
                .iter()
                .enumerate()
                .filter_map(|(k, b)| {
                    let f = b["features"].as_array()?.iter().find(|f| f["feature"] == feature)?;
                    Some((k, f[key].as_f64()?))
                })
                .collect();
            assert!(!expected.is_empty(), "{doc}");
            assert_eq!(shown, expected, "{feature} {key}: {figure}");
        }
    }
    assert!(page.contains("<tr data-feature=\"x1\">") && page.contains("DRIFT"), "{page}");
    // The rule's condition, escaped (askama writes `<` and `>` as character references).
    assert!(page.contains("psi(x1) &#62; 0.2 or accuracy &#60; 0.1"), "{page}");
    assert!(page.contains(&format!("<a href=\"/runs/{run_id}\">{run_id}</a>")), "{page}");
    assert!(page.contains("<td class=\"state\">SUCCEEDED</td>"), "{page}");
    if std::env::var_os("SECONDROW_SKIP_BROWSER").is_none() {
        // The same page in chromium: three charts, the rule's run link followed to its run page.
        let seen = crate::ui::browser_script(
            &home,
            &server,
            "ui_monitoring.py",
            &["churn".into(), "3".into(), run_id.clone().into()],
        );
        assert_eq!((seen["charts"].as_u64(), seen["run_page"].as_str()), (Some(3), Some(run_id.as_str())), "{seen}");
        assert_eq!(seen["run_state"], "SUCCEEDED", "{seen}");
        assert!(seen["drift_flags"].as_u64().unwrap() >= 1, "{seen}");
    } else {
        eprintln!("SECONDROW_SKIP_BROWSER is set: the monitoring page's browser check skipped");
    }
    ok(&rule_cli(&["delete", &rule_id]));
    assert!(rules(&server)["rules"].as_array().unwrap().is_empty());

    // Logging off: requests are answered, no longer logged.
    let off = json_body(&ok(&cli(&["deploy", "update", "churn", "--log-sample", "0", "--json"])));
    assert!(off["log_sample"].is_null(), "{off}");
    send(Some("after"), &[[0.0, 0.0, 0.0]]);
    let (_, _, text) = http(&server.models, "GET", "/metrics", &[], None);
    assert_eq!(series(&text, "secondrow_monitor_logged_requests_total{model=\"churn\"}"), Some(40.0), "{text}");
}

/// The points of series `key` in a chart's SVG: (time span, exact value).
fn points(svg: &str, key: &str) -> Vec<(usize, f64)> {
    let marker = format!("<circle class=\"point\" data-series=\"{key}\" data-bucket=\"");
    svg.split(&marker)
        .skip(1)
        .map(|rest| {
            let (bucket, rest) = rest.split_once('"').unwrap();
            let value = rest.split("data-value=\"").nth(1).and_then(|v| v.split('"').next()).unwrap();
            (bucket.parse().unwrap(), value.parse().unwrap())
        })
        .collect()
}

/// Uploads a pipeline that imports a CSV (`source`) and describes it; returns its version id.
fn upload_window_pipeline(home: &Home, server: &Server) -> String {
    let compiled = home.compile_with_builtins(
        "window_pipeline",
        r#"statistics = load("statistics")

@dsl.pipeline(name="monitor-window")
def pipeline(source: str):
    # Under the task sandbox a task reads files it is given as artifacts: the window comes in by an importer.
    window = dsl.importer(artifact_uri=source, artifact_class=dsl.Dataset)
    statistics(data=window.output)
"#,
    );
    let yaml = std::fs::read_to_string(compiled).unwrap();
    let boundary = "secondrow-monitor-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"uploadfile\"; filename=\"p.yaml\"\r\nContent-Type: application/octet-stream\r\n\r\n{yaml}\r\n--{boundary}--\r\n"
    );
    let addr = api_addr(server);
    let mut stream = TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /apis/v2beta1/pipelines/upload?name=monitor-window HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (_, text) = response.split_once("\r\n\r\n").unwrap();
    let pipeline = json_body(text);
    let pipeline_id = pipeline["pipeline_id"].as_str().unwrap_or_else(|| panic!("{pipeline}")).to_owned();
    let (status, _, text) = http(&addr, "GET", &format!("/apis/v2beta1/pipelines/{pipeline_id}/versions"), &[], None);
    assert_eq!(status, 200, "{text}");
    json_body(&text)["pipeline_versions"][0]["pipeline_version_id"].as_str().unwrap().to_owned()
}
