//! The model registry through the official Kubeflow Model Registry client (`model-registry`, from
//! `.venv-registry`): registering with metadata, lookups, updates, archiving, paging, bad input; and namespace
//! tokens seeing only their namespace's models.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::api::{last_json, Server};
use crate::support::*;

/// The Python with the model-registry client: `.venv-registry` at the repo root (made by scripts/test).
fn registry_python() -> PathBuf {
    let p = repo_root().join(".venv-registry/bin/python");
    assert!(p.exists(), "{} is missing: run ./scripts/test (it creates the registry venv)", p.display());
    p
}

fn client(h: &Home, args: &[&str]) -> Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/registry_client/client.py");
    Command::new(registry_python())
        .arg(script)
        .args(args)
        .current_dir(h.path())
        .env("HOME", h.path())
        .env_remove("KF_PIPELINES_SA_TOKEN_PATH")
        .output()
        .unwrap()
}

fn check(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "client.py failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    last_json(out)
}

per_backend!(registry_official_client_registers_lists_updates_and_refuses_bad_input);

fn registry_official_client_registers_lists_updates_and_refuses_bad_input(h: &Home) {
    let server = Server::start(h, &[]);
    let summary = check(&client(h, &[&server.url]));
    assert_eq!(summary["versions"], serde_json::json!(["v1", "v2"]), "{summary}");
    assert_eq!(summary["models"].as_array().unwrap().len(), 7, "{summary}");
}

#[test]
fn registry_namespace_tokens_see_their_own_models() {
    let h = Home::new();
    let token = |ns: &str| {
        let out = h.output(&["tokens", "create", "--namespace", ns, "--name", "t"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).split_whitespace().find(|w| w.starts_with("sr_")).unwrap().to_owned()
    };
    let (a, b) = (token("team-a"), token("team-b"));
    let server = Server::start(&h, &[]);
    // Each namespace registers `churn` of its own; the full client run passes in each, unaffected by the other.
    let first = check(&client(&h, &[&server.url, &a]));
    let second = check(&client(&h, &[&server.url, &b]));
    assert_ne!(first["churn_id"], second["churn_id"]);
    // Another namespace's model by id: 403 in the registry's error shape; by name: not there (404).
    let a_model = format!("/registered_models/{}", first["churn_id"].as_str().unwrap());
    let (status, body) = rest(&server.url, "GET", &a_model, Some(&b), "");
    assert_eq!(status, 403, "{body}");
    assert!(body["code"].is_string() && body["message"].as_str().unwrap().contains("team-a"), "{body}");
    let (status, _) = rest(&server.url, "PATCH", &a_model, Some(&b), r#"{"state":"ARCHIVED"}"#);
    assert_eq!(status, 403);
    let (status, body) = rest(&server.url, "GET", &a_model, Some(&a), "");
    assert_eq!((status, body["state"].as_str()), (200, Some("LIVE")), "the refused PATCH changed nothing");
    // Deploying another namespace's registered version: 403 before anything is looked up or loaded.
    let deploy = r#"{"name":"stolen","source":{"registered_model":"churn","model_version":"v2","namespace":"team-a"}}"#;
    let (status, body) = http(&server.url, "POST", "/apis/v2beta1/deployments", Some(&b), deploy);
    assert_eq!(status, 403, "{body}");
    for t in [&a, &b] {
        let (status, listed) = http(&server.url, "GET", "/apis/v2beta1/deployments", Some(t), "");
        assert_eq!((status, listed["deployments"].as_array().map(Vec::len)), (200, Some(0)), "{listed}");
    }
    let (status, listed) = rest(&server.url, "GET", "/registered_models?pageSize=100", Some(&b), "");
    assert_eq!(status, 200);
    assert!(listed["items"].as_array().unwrap().iter().all(|m| m["id"] != first["churn_id"]), "{listed}");
    // Locally, `--namespace` picks the namespace; the admin's (`""`) has no `churn`.
    let local = h.output(&["models", "--namespace", "team-a", "get", "churn", "--json"]);
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));
    let doc: Value = serde_json::from_slice(&local.stdout).unwrap();
    assert_eq!(doc["model"]["id"].as_i64().unwrap().to_string(), first["churn_id"].as_str().unwrap());
    assert_eq!(h.output(&["models", "get", "churn"]).status.code(), Some(2));
    let all = h.output(&["models", "list", "--json"]);
    let all: Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2 * 7, "both namespaces' models: {all}");
    // Without a token: 401 in the registry's error shape.
    let out = client(&h, &[&server.url]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A pipeline of built-in components: ingest, split, train a logistic regression, evaluate it, register it
/// (the built-in `register_model`) as `churn-pipe`.
fn compile_training(h: &Home) -> std::path::PathBuf {
    h.compile_with_builtins(
        "registry_pipeline",
        r#"ingest, split, train, evaluate = load("ingest"), load("split"), load("train_logistic_regression"), load("evaluate")
register = load("register_model")

@dsl.pipeline(name="registry-test")
def pipeline(source: str):
    data = ingest(source=source)
    parts = split(data=data.outputs["dataset"])
    model = train(train_data=parts.outputs["train"], label="label")
    scored = evaluate(data=parts.outputs["test"], model=model.outputs["model"])
    register(model=model.outputs["model"], model_name="churn-pipe").after(scored)
"#,
    )
}

/// One JSON request to the registry API (`/api/model_registry/v1…`) with an optional bearer token.
fn rest(url: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    http(url, method, &format!("/api/model_registry/v1{path}"), token, body)
}

/// One JSON request to any path of the server with an optional bearer token.
fn http(url: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let (status, body) = raw_http(url, method, path, token, "application/json", body);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// One HTTP/1.1 request to the web UI (with a CSRF cookie): status, `Location` and body text.
fn ui(url: &str, method: &str, path: &str, form: &str) -> (u16, String, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let csrf = "e".repeat(64);
    let body = if form.is_empty() { String::new() } else { format!("{form}&csrf={csrf}") };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncookie: secondrow_csrf={csrf}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let location = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("location: ").map(|_| l[10..].trim().to_owned()))
        .unwrap_or_default();
    (status, location, body.to_owned())
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
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn registry_lineage_cli_and_deploy_from_a_registered_version() {
    let h = Home::new();
    let csv = h.path().join("train.csv");
    let mut text = String::from("a,b,label\n");
    for i in 0..120 {
        let x = f64::from(i % 40) / 10.0;
        text.push_str(&format!("{x},{},{}\n", 4.0 - x + f64::from(i % 3) / 10.0, u8::from(i % 40 >= 20)));
    }
    std::fs::write(&csv, text).unwrap();
    let yaml = compile_training(&h);
    let (code, run) = h.run(&yaml, &["-p", &format!("source={}", csv.display())]);
    assert_eq!(code, 0, "pipeline run: {}", run.0);
    let run_id = run.id();

    // Locally: register from the run's task output; lineage and the evaluator's metrics are recorded.
    let reg = json_of(&h.output(&[
        "models",
        "register",
        "churn",
        "--version",
        "v1",
        "--run",
        &run_id[..8],
        "--task",
        "train-logistic-regression",
        "--output",
        "model",
        "--json",
    ]));
    let lineage = &reg["version"]["lineage"];
    assert_eq!(lineage["run_id"], run_id.as_str(), "{reg}");
    assert_eq!(lineage["task"], "train-logistic-regression", "{reg}");
    assert!(lineage["metrics"]["accuracy"].as_f64().is_some(), "the evaluator's metrics: {reg}");
    assert_eq!(reg["artifact"]["model_format_name"], "secondrow");
    // The pipeline's `register_model` step registered `churn-pipe` with the same lineage.
    let piped = json_of(&h.output(&["models", "get", "churn-pipe", "--json"]));
    let v = &piped["versions"][0];
    assert_eq!(v["name"], format!("run-{}", &run_id[..8]).as_str(), "{piped}");
    assert_eq!(v["lineage"]["task"], "train-logistic-regression", "{piped}");
    assert!(v["lineage"]["metrics"]["accuracy"].as_f64().is_some(), "{piped}");
    // The run shows the versions it produced.
    let doc = h.get_json(&run_id);
    let produced: Vec<&str> =
        doc["model_versions"].as_array().unwrap().iter().map(|v| v["model"].as_str().unwrap()).collect();
    assert_eq!(produced, ["churn-pipe", "churn"], "{}", doc["model_versions"]);
    // Bad input: a taken version, a local file outside the artifact root, an unknown run: exit 2, nothing written.
    for (args, message) in [
        (vec!["--version", "v1", "--uri", "s3://b/m.onnx"], "already exists"),
        (vec!["--version", "v9", "--uri", "/etc/passwd"], "outside the artifact root"),
        (vec!["--version", "v9", "--run", "nope", "--task", "t", "--output", "model"], "not found"),
    ] {
        let out = h.output(&[&["models", "register", "churn"][..], &args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Through the server: list, register from a URI, deploy a registered version, refuse archiving it.
    let server = Server::start(&h, &[]);
    let remote = |args: &[&str]| h.cmd().args(args).args(["--server", &server.url]).output().unwrap();
    let listed = json_of(&remote(&["models", "list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    ok(&remote(&["models", "register", "churn", "--version", "v2", "--uri", "s3://bucket/churn.onnx"]));
    let deployed =
        json_of(&remote(&["deploy", "create", "churn-svc", "--model", "churn", "--version", "v1", "--json"]));
    assert_eq!(
        (deployed["default_version"].as_str(), deployed["state"].as_str()),
        (Some("v1"), Some("SERVING")),
        "{deployed}"
    );
    let model = json_of(&remote(&["models", "get", "churn", "--json"]));
    let versions = model["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{model}");
    assert_eq!(versions[0]["deployments"][0]["deployment"], "churn-svc", "{model}");
    assert_eq!(versions[1]["artifacts"][0]["uri"], "s3://bucket/churn.onnx", "{model}");
    // The web UI: the models list, the model's versions with metrics, lineage and deployments, the deploy button.
    let model_id = model["model"]["id"].as_i64().unwrap();
    let (status, _, page) = ui(&server.url, "GET", "/models", "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("href=\"/models/{model_id}\"")) && page.contains(">churn<"), "{page}");
    let (status, _, page) = ui(&server.url, "GET", &format!("/models/{model_id}"), "");
    assert_eq!(status, 200, "{page}");
    for want in ["churn-svc:v1", "accuracy=", &format!("/runs/{run_id}"), "s3://bucket/churn.onnx", "ARCHIVED"] {
        if want == "ARCHIVED" {
            assert!(!page.contains(want), "nothing is archived yet");
        } else {
            assert!(page.contains(want), "{want} missing from the model page:\n{page}");
        }
    }
    let v1_id = versions[0]["id"].as_i64().unwrap();
    let (status, location, page) =
        ui(&server.url, "POST", &format!("/models/{model_id}/versions/{v1_id}/deploy"), "deployment=churn-ui");
    assert_eq!((status, location.as_str()), (303, format!("/models/{model_id}").as_str()), "{page}");
    // Without the CSRF token the button does nothing.
    let (status, _, page) = ui(&server.url, "POST", &format!("/models/{model_id}/versions/{v1_id}/deploy"), "");
    assert_eq!(status, 403, "{page}");
    let model = json_of(&remote(&["models", "get", "churn", "--json"]));
    let deployed_as: Vec<&str> = model["versions"][0]["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deployment"].as_str().unwrap())
        .collect();
    assert!(deployed_as.contains(&"churn-ui") && deployed_as.contains(&"churn-svc"), "{model}");
    ok(&remote(&["deploy", "delete", "churn-ui"]));

    // The official client archives by PATCHing the state: refused while deployed, in the registry's shape.
    let (status, body) = rest(
        &server.url,
        "PATCH",
        &format!("/model_versions/{v1_id}"),
        None,
        r#"{"state":"ARCHIVED","author":"alice"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("is deployed"), "{body}");
    let refused = remote(&["models", "archive", "churn", "--version", "v1"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is deployed (churn-svc version v1)"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let refused_all = h.output(&["models", "archive", "churn"]);
    assert_eq!(refused_all.status.code(), Some(2), "archiving the model archives its deployed version: refused");
    ok(&remote(&["models", "archive", "churn", "--version", "v2"]));
    let model = json_of(&h.output(&["models", "get", "churn", "--json"]));
    let states: Vec<&str> =
        model["versions"].as_array().unwrap().iter().map(|v| v["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["LIVE", "ARCHIVED"], "{model}");
    assert_eq!(model["model"]["state"], "LIVE", "the refused model archive changed nothing");
    // A deployment version gone: the registered version may be archived.
    ok(&remote(&["deploy", "delete", "churn-svc"]));
    ok(&remote(&["models", "archive", "churn"]));
}
