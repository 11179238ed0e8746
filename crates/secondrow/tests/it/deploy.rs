//! `secondrow deploy` against a running `secondrow server`: models trained by a real pipeline run are
//! deployed through the CLI (REST and local store), served on the serving port and checked with real
//! Open Inference Protocol V2 requests against `secondrow component predict`; default switch under load,
//! canary split, bad sources, restart and delete.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::Server;
use crate::support::*;

/// One HTTP/1.1 request over a fresh connection: status and JSON body.
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    // Bodies come with a content-length here (no chunking) from both servers.
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A V2 infer request for `rows` (FP64, shape [n, 3]).
fn infer_body(rows: &[[f64; 3]]) -> Value {
    let data: Vec<f64> = rows.iter().flatten().copied().collect();
    json!({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [rows.len(), 3], "data": data}]})
}

fn infer(models: &str, name: &str, rows: &[[f64; 3]]) -> (u16, Value) {
    http(models, "POST", &format!("/v2/models/{name}/infer"), Some(&infer_body(rows)))
}

/// The `label` output of a V2 answer.
fn labels(answer: &Value) -> Vec<String> {
    let outputs = answer["outputs"].as_array().unwrap_or_else(|| panic!("no outputs: {answer}"));
    let label = outputs.iter().find(|o| o["name"] == "label").unwrap_or_else(|| panic!("no label output: {answer}"));
    label["data"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

/// A separable-with-noise table: label 1 when 2·x1 − x2 + 0.5·x3 + noise > 0.
pub(crate) fn make_rows(n: usize, seed: u64) -> Vec<([f64; 3], u8)> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    (0..n)
        .map(|_| {
            let x = [next() * 3.0, next() * 2.0, next() * 5.0];
            let label = u8::from(2.0 * x[0] - x[1] + 0.5 * x[2] + next() > 0.0);
            (x, label)
        })
        .collect()
}

pub(crate) fn write_csv(path: &Path, rows: &[([f64; 3], u8)], with_label: bool) {
    let mut text = String::from(if with_label { "x1,x2,x3,label\n" } else { "x1,x2,x3\n" });
    for (x, label) in rows {
        text += &format!("{},{},{}", x[0], x[1], x[2]);
        text += &if with_label { format!(",{label}\n") } else { "\n".to_owned() };
    }
    std::fs::write(path, text).unwrap();
}

/// A pipeline of built-in components: ingest, then two classifiers on the same data.
pub(crate) fn compile_pipeline(home: &Home) -> PathBuf {
    home.compile_with_builtins(
        "deploy_pipeline",
        r#"ingest, logistic, forest = load("ingest"), load("train_logistic_regression"), load("train_random_forest")

@dsl.pipeline(name="deploy-test")
def pipeline(source: str):
    data = ingest(source=source)
    logistic(train_data=data.outputs["dataset"], label="label")
    forest(train_data=data.outputs["dataset"], label="label", n_estimators=15, max_depth=3)
"#,
    )
}

/// `secondrow component predict` on a CSV without labels: the `prediction` column.
fn batch_predict(home: &Home, model: &str, data: &Path) -> Vec<String> {
    let out_path = home.path().join("predictions.csv");
    let out = home.output(&[
        "component",
        "predict",
        "--data",
        &data.display().to_string(),
        "--model",
        model,
        "--predictions",
        &out_path.display().to_string(),
    ]);
    assert!(out.status.success(), "predict: {}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&out_path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col =
        header.iter().position(|h| *h == "prediction").unwrap_or_else(|| panic!("no prediction column in {header:?}"));
    lines.map(|l| l.split(',').nth(col).unwrap().to_owned()).collect()
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

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

fn version_names(d: &Value) -> Vec<String> {
    d["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn deployments_from_a_pipeline_run_serve_switch_canary_survive_restart_and_delete() {
    let home = Home::new();
    let train = home.path().join("train.csv");
    write_csv(&train, &make_rows(240, 7), true);
    let test_rows: Vec<[f64; 3]> = make_rows(40, 99).into_iter().map(|(x, _)| x).collect();
    let test_csv = home.path().join("test.csv");
    write_csv(&test_csv, &test_rows.iter().map(|x| (*x, 0)).collect::<Vec<_>>(), false);

    let yaml = compile_pipeline(&home);
    let (code, run) = home.run(&yaml, &["-p", &format!("source={}", train.display())]);
    assert_eq!(code, 0, "pipeline run: {}", run.0);
    let run_id = run.id();
    let logistic_model = run.task_artifact("train-logistic-regression", "model")["uri"].as_str().unwrap().to_owned();
    let forest_model = run.task_artifact("train-random-forest", "model")["uri"].as_str().unwrap().to_owned();
    let dataset_id = run.task_artifact("ingest", "dataset")["id"].as_str().unwrap().to_owned();
    let expected_logistic = batch_predict(&home, &logistic_model, &test_csv);
    let expected_forest = batch_predict(&home, &forest_model, &test_csv);

    let mut server = Server::start(&home, &[]);
    let remote =
        |args: &[&str]| home.cmd().args(["deploy"]).args(args).args(["--server", &server.url]).output().unwrap();

    // Version 1 from the run's task output, through the REST API.
    let created = json_of(&remote(&[
        "create",
        "churn",
        "--run",
        &run_id[..8],
        "--task",
        "train-logistic-regression",
        "--output",
        "model",
        "--json",
    ]));
    assert_eq!(
        (created["default_version"].as_str(), created["state"].as_str()),
        (Some("1"), Some("SERVING")),
        "{created}"
    );
    assert_eq!(created["versions"][0]["source"]["run_id"], run_id.as_str());
    let (status, answer) = infer(&server.models, "churn", &test_rows);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["model_version"], "1");
    assert_eq!(labels(&answer), expected_logistic, "served predictions equal `secondrow component predict`");

    // Bad sources: 4xx from the server, exit 2, nothing written, version 1 still serving.
    for (args, message) in [
        (vec!["--artifact-id", "no-such-artifact"], "artifact `no-such-artifact` not found"),
        (vec!["--artifact-id", dataset_id.as_str()], "is a system.Dataset, not a system.Model"),
        (vec!["--path", test_csv.to_str().unwrap()], "is not a model this server can load"),
    ] {
        let out = remote(&[&["create", "churn"][..], &args].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(message) && stderr.contains("server answered 4"), "{stderr}");
    }
    let got = json_of(&remote(&["get", "churn", "--json"]));
    assert_eq!(version_names(&got), ["1"]);
    assert_eq!(infer(&server.models, "churn", &test_rows).1["model_version"], "1");

    // Version 2 (the forest) by artifact id, not the default yet: pinned requests reach it.
    let forest_id = run.task_artifact("train-random-forest", "model")["id"].as_str().unwrap().to_owned();
    let second = json_of(&remote(&["create", "churn", "--artifact-id", &forest_id, "--no-default", "--json"]));
    assert_eq!(
        (second["default_version"].as_str(), version_names(&second)),
        (Some("1"), vec!["1".to_owned(), "2".to_owned()])
    );
    let (status, pinned) =
        http(&server.models, "POST", "/v2/models/churn/versions/2/infer", Some(&infer_body(&test_rows)));
    assert_eq!((status, labels(&pinned)), (200, expected_forest.clone()));

    // Switch the default under concurrent load: not one request fails, both versions answer.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new()));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (stop, failures, seen, models, rows) =
                (stop.clone(), failures.clone(), seen.clone(), server.models.clone(), test_rows[..4].to_vec());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (status, answer) = infer(&models, "churn", &rows);
                    if status == 200 {
                        *seen
                            .lock()
                            .unwrap()
                            .entry(answer["model_version"].as_str().unwrap_or("?").to_owned())
                            .or_default() += 1;
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Switch once the load is on (version 1 answered), stop once version 2 has answered as many.
    let answered = |version: &str| seen.lock().unwrap().get(version).copied().unwrap_or(0);
    const UNDER_LOAD: usize = 30;
    wait_for(Duration::from_secs(60), || (answered("1") >= UNDER_LOAD).then_some(()));
    let switched = json_of(&remote(&["update", "churn", "--default-version", "2", "--json"]));
    assert_eq!(switched["default_version"], "2");
    wait_for(Duration::from_secs(60), || (answered("2") >= UNDER_LOAD).then_some(()));
    stop.store(true, Ordering::Relaxed);
    workers.into_iter().for_each(|w| w.join().unwrap());
    let seen = seen.lock().unwrap().clone();
    let total: usize = seen.values().sum();
    eprintln!(
        "default switch under load: {total} requests, by version {seen:?}, {} failed",
        failures.load(Ordering::Relaxed)
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0, "requests failed during the switch ({seen:?})");
    assert!(seen.get("1").is_some_and(|&n| n > 0) && seen.get("2").is_some_and(|&n| n > 0), "{seen:?}");
    assert_eq!(labels(&infer(&server.models, "churn", &test_rows).1), expected_forest);

    // A canary at 30% on version 1, over 2,000 requests.
    let canary = json_of(&remote(&["update", "churn", "--canary", "1", "--percent", "30", "--json"]));
    assert_eq!(canary["canary"], json!({"version": "1", "percent": 30}));
    let to_canary =
        (0..2000).filter(|_| infer(&server.models, "churn", &test_rows[..1]).1["model_version"] == "1").count();
    eprintln!("canary 30%: {to_canary} of 2000 requests ({:.1}%)", to_canary as f64 / 20.0);
    assert!((500..=700).contains(&to_canary), "canary share {to_canary}/2000 is outside 30% ± 5%");
    let bad_percent = remote(&["update", "churn", "--canary", "1", "--percent", "101"]);
    assert_eq!(bad_percent.status.code(), Some(2));

    // Version 3 through the local store (no --server): the running server picks it up by polling.
    let local = home
        .cmd()
        .args(["deploy", "create", "churn", "--path", &logistic_model, "--version", "3", "--no-default", "--json"])
        .output()
        .unwrap();
    assert_eq!(json_of(&local)["versions"][2]["version"], "3");
    wait_for(Duration::from_secs(15), || {
        let (status, _) =
            http(&server.models, "POST", "/v2/models/churn/versions/3/infer", Some(&infer_body(&test_rows)));
        (status == 200).then_some(())
    });

    // Restart: deployments, default and canary come back from the store.
    drop(server);
    server = Server::start(&home, &[]);
    let listed = json_of(&home.cmd().args(["deploy", "list", "--json", "--server", &server.url]).output().unwrap());
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let restored = &listed[0];
    assert_eq!(
        (restored["default_version"].as_str(), restored["state"].as_str()),
        (Some("2"), Some("SERVING")),
        "{restored}"
    );
    assert_eq!(restored["canary"], json!({"version": "1", "percent": 30}));
    assert!(restored["versions"].as_array().unwrap().iter().all(|v| v["loaded"] == true), "{restored}");
    let (status, pinned) =
        http(&server.models, "POST", "/v2/models/churn/versions/2/infer", Some(&infer_body(&test_rows)));
    assert_eq!((status, labels(&pinned)), (200, expected_forest));

    // Delete: the default version is refused, another version goes, then the whole deployment.
    let remote =
        |args: &[&str]| home.cmd().args(["deploy"]).args(args).args(["--server", &server.url]).output().unwrap();
    assert_eq!(remote(&["delete", "churn", "--version", "2"]).status.code(), Some(2));
    ok(&remote(&["delete", "churn", "--version", "1"]));
    let left = json_of(&remote(&["get", "churn", "--json"]));
    assert_eq!((version_names(&left), left["canary"].clone()), (vec!["2".to_owned(), "3".to_owned()], Value::Null));
    assert_eq!(http(&server.models, "POST", "/v2/models/churn/versions/1/infer", Some(&infer_body(&test_rows))).0, 404);
    ok(&remote(&["delete", "churn"]));
    assert_eq!(infer(&server.models, "churn", &test_rows).0, 404);
    assert_eq!(remote(&["get", "churn"]).status.code(), Some(2));
    let (status, body) = http(server.url.trim_start_matches("http://"), "GET", "/apis/v2beta1/deployments/churn", None);
    assert_eq!((status, body["code"].as_i64()), (404, Some(5)), "KFP error JSON: {body}");
}
