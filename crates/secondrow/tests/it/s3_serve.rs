//! Serving models from the artifact store, against moto on loopback (see `s3`): `secondrow serve --model
//! NAME=s3://…` downloads the file into the model cache and answers V2 infer; a restart reuses the cached
//! copy, a replaced object is fetched again, a missing object or bucket is a caller error naming it with
//! nothing served. A server with an S3 artifact root serves a run's model output and registry versions at
//! `s3://…`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::s3::{Moto, S3Server, AWS_ENV};
use crate::support::*;

const MODEL_URI: &str = "s3://models/churn/v1/model.json";

/// `secondrow ARGS…` reaching moto (endpoint and credentials), without an artifact root.
fn cmd(h: &Home, moto: &Moto) -> Command {
    let mut c = h.cmd();
    c.env("SECONDROW_S3_ENDPOINT", &moto.endpoint).envs(AWS_ENV);
    c
}

/// A running `secondrow serve`, its address and what it printed while starting.
struct Serve {
    child: Child,
    addr: String,
    log: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `secondrow serve ARGS` and reads its stderr up to the `serving` line.
fn serve(h: &Home, moto: &Moto, args: &[&str]) -> Serve {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = cmd(h, moto)
        .args(["serve", "--port", &port.to_string()])
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut log = String::new();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("serve ended before serving: {log}");
        }
        log.push_str(&line);
        if line.starts_with("serving ") {
            break;
        }
    }
    Serve { child, addr: format!("http://127.0.0.1:{port}"), log }
}

/// The `label` answers of a V2 infer of rows (a, b) at `base`/v2/models/`model`.
fn labels(base: &str, model: &str, rows: &[[f64; 2]]) -> (u16, Vec<String>, Value) {
    labels_as(base, model, rows, None)
}

/// [`labels`] with a bearer token.
fn labels_as(base: &str, model: &str, rows: &[[f64; 2]], token: Option<&str>) -> (u16, Vec<String>, Value) {
    let data: Vec<f64> = rows.iter().flatten().copied().collect();
    let body = json!({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [rows.len(), 2], "data": data}]});
    let (status, text) =
        raw_http(base, "POST", &format!("/v2/models/{model}/infer"), token, "application/json", &body.to_string());
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let labels = answer["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == "label"))
        .and_then(|o| o["data"].as_array())
        .map(|d| d.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect())
        .unwrap_or_default();
    (status, labels, answer)
}

/// The single cached copy of `MODEL_URI` under the home's model cache.
fn cached_files(h: &Home) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
    let mut out = Vec::new();
    walk(&h.path().join("home/model-cache"), &mut out);
    out
}

const ROWS: [[f64; 2]; 4] = [[0.2, 3.8], [0.5, 3.5], [3.5, 0.5], [3.9, 0.1]];

#[test]
fn s3_models_are_served_from_the_bucket_cached_and_missing_ones_refused() {
    let h = Home::new();
    let moto = Moto::start(h.path());
    moto.s3(&["create", "models"]);
    let model = trained_model(&h);
    moto.s3(&["put", "models", "churn/v1/model.json", &model.to_string_lossy()]);

    // The same model served from its local file and from the bucket answers the same.
    let local = serve(&h, &moto, &["--model", &format!("churn={}", model.display())]);
    let (status, expected, answer) = labels(&local.addr, "churn", &ROWS);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(expected, ["0", "0", "1", "1"], "{answer}");
    drop(local);
    let remote = serve(&h, &moto, &["--model", &format!("churn={MODEL_URI}:7")]);
    assert!(remote.log.contains(&format!("from {MODEL_URI} (downloaded")), "{}", remote.log);
    let (status, got, answer) = labels(&remote.addr, "churn", &ROWS);
    assert_eq!((status, got), (200, expected.clone()), "{answer}");
    assert_eq!(answer["model_version"], "7");
    let cached = cached_files(&h);
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(std::fs::read(&cached[0]).unwrap(), std::fs::read(&model).unwrap());
    let modified = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
    drop(remote);

    // A restart finds the cached copy (same ETag and size): nothing is downloaded again. Here the bucket's
    // copy is version 2 (the default, listed last) and the local file version 1, the canary of every request.
    let local_v1 = format!("churn={}:1", model.display());
    let again = serve(
        &h,
        &moto,
        &["--model", &local_v1, "--model", &format!("churn={MODEL_URI}:2"), "--canary", "churn=1:100"],
    );
    assert!(again.log.contains("(cached: "), "{}", again.log);
    assert_eq!(cached_files(&h), cached);
    assert_eq!(std::fs::metadata(&cached[0]).unwrap().modified().unwrap(), modified);
    let (_, got, answer) = labels(&again.addr, "churn", &ROWS);
    assert_eq!((got, answer["model_version"].as_str()), (expected.clone(), Some("1")), "{answer}");
    drop(again);

    // A replaced object (new ETag) is fetched anew and the stale copy removed.
    let replaced = h.path().join("replaced.json");
    let mut bytes = std::fs::read(&model).unwrap();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&replaced, &bytes).unwrap();
    moto.s3(&["put", "models", "churn/v1/model.json", &replaced.to_string_lossy()]);
    let fresh = serve(&h, &moto, &["--model", &format!("churn={MODEL_URI}")]);
    assert!(fresh.log.contains("(downloaded: "), "{}", fresh.log);
    let now = cached_files(&h);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, cached);
    assert_eq!(std::fs::read(&now[0]).unwrap(), bytes);
    drop(fresh);

    // A missing object or bucket: exit 2, naming it; nothing is served.
    for (uri, message) in [
        ("s3://models/churn/v2/model.json", "model object `s3://models/churn/v2/model.json` not found"),
        ("s3://no-such-bucket/model.json", "S3 bucket `no-such-bucket` not found"),
        ("s3://models/churn/v1", "is a folder; name the model file inside it"),
    ] {
        let out = cmd(&h, &moto).args(["serve", "--port", "0", "--model", &format!("churn={uri}")]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{uri}: {stderr}");
        assert!(stderr.contains(message) && stderr.contains("loading model `churn`"), "{uri}: {stderr}");
        assert!(!stderr.contains("serving "), "{stderr}");
    }
    assert_eq!(cached_files(&h).len(), 1, "a failed fetch leaves nothing behind");
}

/// A server whose artifact root is in S3 deploys a run's model output and registered versions stored at
/// `s3://…`: it fetches the file into its model cache and serves it; a version whose object is gone is refused
/// (4xx, exit 2); a namespace token may deploy only models under the artifact root.
#[test]
fn s3_server_deployments_serve_run_outputs_and_registry_versions_from_the_bucket() {
    let h = Home::new();
    let moto = Moto::start(h.path());
    moto.s3(&["create", "models"]);
    moto.s3(&["create", "artifacts"]);
    let model = trained_model(&h);
    moto.s3(&["put", "models", "churn/v1/model.json", &model.to_string_lossy()]);

    moto.s3(&["put", "artifacts", "team/models/churn.json", &model.to_string_lossy()]);
    // A pipeline trains a model with the S3 root: its model artifact is recorded as `s3://artifacts/team/…`.
    let train = h.path().join("train.csv");
    crate::deploy::write_csv(&train, &crate::deploy::make_rows(200, 7), true);
    let yaml = crate::deploy::compile_pipeline(&h);
    let out = cmd(&h, &moto)
        .env("SECONDROW_ARTIFACT_ROOT", "s3://artifacts/team")
        .arg("run")
        .arg(&yaml)
        .args(["--json", "-p", &format!("source={}", train.display())])
        .output()
        .unwrap();
    let run = RunDoc(serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("no run JSON: {}", String::from_utf8_lossy(&out.stderr));
    }));
    assert_eq!(run.state(), "SUCCEEDED", "{}", run.0);
    let trained = run.task_artifact("train-logistic-regression", "model")["uri"].as_str().unwrap().to_owned();
    assert!(trained.starts_with("s3://artifacts/team/"), "{trained}");
    // A namespace token (made before the server starts) and the admin token the server is started with.
    let out = h.output(&["tokens", "create", "--namespace", "team-a", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let team_token = serde_json::from_slice::<Value>(&out.stdout).unwrap()["token"].as_str().unwrap().to_owned();
    let admin_token = "admin-token-of-this-test-0123456789";

    let server = S3Server::start_with(&h, &moto, "s3://artifacts/team", &[("SECONDROW_AUTH_TOKEN", admin_token)]);
    let url = server.url.clone();
    let as_token = |token: &str, args: &[&str]| {
        cmd(&h, &moto).args(args).args(["--server", &url]).env("SECONDROW_TOKEN", token).output().unwrap()
    };
    let remote = |args: &[&str]| as_token(admin_token, args);
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };

    ok(remote(&["models", "register", "churn", "--version", "1", "--uri", MODEL_URI, "--json"]));
    let created = ok(remote(&["deploy", "create", "churn", "--model", "churn", "--version", "1", "--json"]));
    assert_eq!(created["state"], "SERVING", "{created}");
    assert_eq!(created["versions"][0]["path"], MODEL_URI);
    assert_eq!(created["versions"][0]["loaded"], true);
    let models = created["url"].as_str().unwrap().trim_end_matches("/v2/models/churn").to_owned();
    let (status, got, answer) = labels_as(&models, "churn", &ROWS, Some(admin_token));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(got, ["0", "0", "1", "1"], "{answer}");
    // The run's model, deployed by task output: fetched from the bucket and served.
    let from_run = ok(remote(&[
        "deploy",
        "create",
        "trained",
        "--run",
        &run.id(),
        "--task",
        "train-logistic-regression",
        "--output",
        "model",
        "--json",
    ]));
    assert_eq!(
        (from_run["state"].as_str(), from_run["versions"][0]["path"].as_str()),
        (Some("SERVING"), Some(trained.as_str()))
    );
    let rows = [[2.0, -1.0, 1.0], [-2.0, 1.5, -3.0]];
    let data: Vec<f64> = rows.iter().flatten().copied().collect();
    let body = json!({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [2, 3], "data": data}]});
    let (status, text) =
        raw_http(&models, "POST", "/v2/models/trained/infer", Some(admin_token), "application/json", &body.to_string());
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let label = answer["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "label").unwrap();
    assert_eq!(label["data"], json!(["1", "0"]), "{answer}");

    // A registered version whose object is gone: refused before anything is recorded.
    ok(remote(&[
        "models",
        "register",
        "churn",
        "--version",
        "2",
        "--uri",
        "s3://models/churn/v2/model.json",
        "--json",
    ]));
    let out = remote(&["deploy", "create", "churn", "--model", "churn", "--version", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("s3://models/churn/v2/model.json"), "{stderr}");
    let doc = ok(remote(&["deploy", "get", "churn", "--json"]));
    assert_eq!(doc["versions"].as_array().unwrap().len(), 1, "{doc}");

    // A namespace token deploys models under the server's artifact root, not from other buckets the
    // server's credentials reach.
    let team = |args: &[&str]| as_token(&team_token, args);
    ok(team(&["models", "register", "elsewhere", "--version", "1", "--uri", MODEL_URI, "--json"]));
    let out = team(&["deploy", "create", "elsewhere", "--model", "elsewhere", "--version", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is outside the server's artifact root s3://artifacts/team"), "{stderr}");
    let inside = "s3://artifacts/team/models/churn.json";
    ok(team(&["models", "register", "mine", "--version", "1", "--uri", inside, "--json"]));
    let mine = ok(team(&["deploy", "create", "mine", "--model", "mine", "--version", "1", "--json"]));
    assert_eq!((mine["state"].as_str(), mine["namespace"].as_str()), (Some("SERVING"), Some("team-a")), "{mine}");
    let (status, got, answer) = labels_as(&models, "mine", &ROWS, Some(&team_token));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(got, ["0", "0", "1", "1"], "{answer}");
    drop(server);
}
