//! `--executor kubernetes` with an `s3://` artifact root, against a real kube-apiserver (`kube_support`) and a
//! real S3-protocol server (moto, `s3`) together: no Pod mounts a host folder; each Pod's launcher downloads
//! its inputs from the bucket into an `emptyDir` and uploads its outputs, and the engine reads the outputs
//! back from the bucket. Credentials reach the launcher as values or from a Secret; a failed download fails
//! the task naming the artifact.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::kube::kube_flags;
use crate::kube_support::Cluster;
use crate::s3::{objects, Moto, AWS_ENV};
use crate::support::{repo_root, samples_dir, Home, RunDoc};

const BUCKET: &str = "k8s-artifacts";
const ROOT: &str = "s3://k8s-artifacts/runs";

/// `secondrow ARGS…` with the S3 root and its credentials (the server's own `AWS_*`).
fn cmd(home: &Home, moto: &Moto) -> Command {
    let mut c = home.cmd();
    c.env("SECONDROW_ARTIFACT_ROOT", ROOT).env("SECONDROW_S3_ENDPOINT", &moto.endpoint).envs(AWS_ENV);
    c
}

fn run(home: &Home, moto: &Moto, yaml: &Path, flags: &[String], extra: &[&str]) -> (i32, RunDoc, String) {
    let out = cmd(home, moto).arg("run").arg(yaml).arg("--json").args(flags).args(extra).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no run JSON ({e}): {stderr}"));
    (out.status.code().unwrap_or(-1), RunDoc(doc), stderr)
}

/// Every Pod of the run: no host path among its volumes, the staging emptyDir mounted, the launcher staging.
fn assert_staged_pods(cluster: &Cluster, run_id: &str) -> Vec<Value> {
    let pods = cluster.pods(&format!("secondrow.dev/run={run_id}"));
    assert!(!pods.is_empty(), "no Pods for run {run_id}");
    for pod in &pods {
        let volumes = pod["spec"]["volumes"].as_array().cloned().unwrap_or_default();
        assert!(volumes.iter().all(|v| v.get("hostPath").is_none()), "a host path in {volumes:#?}");
        assert!(volumes.iter().any(|v| v["name"] == "secondrow-staging" && v["emptyDir"].is_object()), "{volumes:#?}");
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["command"][3], "--mount", "{}", c["command"]);
        assert_eq!(c["command"][4], "/secondrow/staging");
        assert!(c.get("workingDir").is_none(), "{c}");
    }
    pods
}

#[test]
fn s3_root_on_kubernetes_stages_artifacts_through_the_launcher() {
    let Some(cluster) = Cluster::start() else { return };
    let home = Home::new();
    let moto = Moto::start(home.path());
    moto.s3(&["create", BUCKET]);
    let mut flags = kube_flags(&cluster.kubeconfig);
    flags.extend(["--launcher-image".to_owned(), "secondrow:test".to_owned()]);

    // Without the launcher nothing could move the artifacts: a caller error before any run.
    let yaml = home.compile(&samples_dir().join("artifacts.py"));
    let (code, _, stderr) = {
        let out = cmd(&home, &moto).arg("run").arg(&yaml).args(&flags[..flags.len() - 2]).output().unwrap();
        (out.status.code(), (), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("needs --launcher-image"), "{stderr}");

    // Lightweight components (their own base_image) passing typed artifacts, credentials as values.
    let (code, doc, stderr) = run(&home, &moto, &yaml, &flags, &[]);
    assert_eq!(code, 0, "{:#}\n{stderr}\n{}", doc.0, cluster.logs());
    assert_eq!(doc.state(), "SUCCEEDED");
    let run_id = doc.id();
    assert_eq!(doc.output("total"), 15);
    let pods = assert_staged_pods(&cluster, &run_id);
    let make_data = pods
        .iter()
        .find(|p| p["metadata"]["annotations"]["secondrow.dev/task-path"] == "make-data")
        .unwrap_or_else(|| panic!("no Pod for make-data"));
    // The component's base_image, and the IR's command with kfp's install prelude, as upstream runs it.
    let c = &make_data["spec"]["containers"][0];
    assert_eq!(c["image"], "python:3.11");
    let command: Vec<String> =
        c["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap_or_default().to_owned()).collect();
    let user = &command[command.iter().position(|a| a == "--").unwrap() + 1..];
    let ir: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&yaml).unwrap()).unwrap();
    let ir_command = ir["deploymentSpec"]["executors"]["exec-make-data"]["container"]["command"].as_array().unwrap();
    assert_eq!(&user[..ir_command.len()], ir_command.iter().map(|a| a.as_str().unwrap()).collect::<Vec<_>>());
    assert!(user.iter().any(|a| a.contains("pip install") && a.contains("kfp==")), "{user:?}");
    let env = c["env"].as_array().unwrap();
    let value_of = |name: &str| env.iter().find(|e| e["name"] == name).map(|e| e["value"].clone());
    assert_eq!(value_of("SECONDROW_ARTIFACT_ROOT"), Some(Value::from(ROOT)));
    assert_eq!(value_of("SECONDROW_S3_ACCESS_KEY_ID"), Some(Value::from("testing")));

    // URIs are `s3://` in the store, for outputs and the inputs downstream tasks got (lineage).
    let data_uri = format!("{ROOT}/{run_id}/make-data/data");
    assert_eq!(doc.task_artifact("make-data", "data")["uri"], data_uri.as_str());
    assert_eq!(doc.task_artifact("make-data", "data")["metadata"]["rows"], 5);
    assert_eq!(doc.task("train")["inputs"]["artifacts"]["data"][0]["uri"], data_uri.as_str());
    let model_uri = doc.task_artifact("train", "model")["uri"].as_str().unwrap().to_owned();
    assert_eq!(model_uri, format!("{ROOT}/{run_id}/train/model"));
    assert_eq!(doc.task("evaluate")["inputs"]["artifacts"]["model"][0]["uri"], model_uri.as_str());
    assert_eq!(doc.output_artifact("model")["uri"], model_uri.as_str());
    // The bytes are in the bucket, with each task's executor output; the server's mirror holds no copy.
    let keys = objects(&moto, BUCKET, &format!("runs/{run_id}/"));
    let has = |suffix: &str| keys.iter().any(|(k, _, _)| k.ends_with(suffix));
    for suffix in ["make-data/data", "copy-data/dst", "train/model", "evaluate/html", "evaluate/md"] {
        assert!(has(suffix), "no {suffix} in {keys:?}");
    }
    assert!(has("evaluate/executor_output.json"), "{keys:?}");
    let mirror = home.path().join("home/artifacts-mirror/s3").join(BUCKET).join("runs").join(&run_id);
    assert!(!mirror.join("make-data/data").exists(), "the server downloaded an artifact it does not need");
    // The API streams an artifact from the bucket.
    let out =
        cmd(&home, &moto).args(["artifacts", &run_id, "--download"]).arg(home.path().join("dl")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(home.path().join("dl/train/model")).unwrap(), "15");

    // Built-in components (the quickstart), credentials from a Secret: no key in any Pod spec.
    let out = cluster.kubectl(&[
        "create",
        "secret",
        "generic",
        "s3-creds",
        "--from-literal=AWS_ACCESS_KEY_ID=testing",
        "--from-literal=AWS_SECRET_ACCESS_KEY=testing",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut with_secret = flags.clone();
    with_secret.extend(["--s3-credentials-secret".to_owned(), "s3-creds".to_owned()]);
    let quickstart = repo_root().join("examples/quickstart");
    let source = format!("source={}", quickstart.join("data/customers.csv").display());
    let (code, doc, stderr) = run(&home, &moto, &quickstart.join("pipeline.yaml"), &with_secret, &["-p", &source]);
    assert_eq!(code, 0, "{:#}\n{stderr}\n{}", doc.0, cluster.logs());
    for pod in assert_staged_pods(&cluster, &doc.id()) {
        let env = pod["spec"]["containers"][0]["env"].as_array().cloned().unwrap_or_default();
        assert!(env.iter().all(|e| e["value"] != "testing"), "a credential in the Pod spec: {env:#?}");
        let key = env.iter().find(|e| e["name"] == "SECONDROW_S3_SECRET_ACCESS_KEY").unwrap();
        assert_eq!(key["valueFrom"]["secretKeyRef"]["name"], "s3-creds");
    }
    let model = doc.task_artifact("train-random-forest", "model")["uri"].as_str().unwrap().to_owned();
    assert!(model.starts_with(&format!("{ROOT}/{}/", doc.id())), "{model}");

    // The task's command sees none of the launcher's variables (the store's credentials least of all).
    let script = "env | grep -q '^SECONDROW_' && exit 3; echo clean-env";
    let spec = serde_json::json!({
        "pipelineInfo": {"name": "env-check"},
        "root": {"dag": {"tasks": {"check": {"taskInfo": {"name": "check"}, "componentRef": {"name": "comp-check"}}}}},
        "components": {"comp-check": {"executorLabel": "exec-check"}},
        "deploymentSpec": {"executors": {"exec-check": {"container": {"image": "alpine", "command": ["sh", "-c", script]}}}},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.7.0"
    });
    let env_check = home.path().join("env-check.yaml");
    std::fs::write(&env_check, spec.to_string()).unwrap();
    let (code, doc, stderr) = run(&home, &moto, &env_check, &flags, &[]);
    assert_eq!(code, 0, "{:#}\n{stderr}", doc.0);
    let logs = cmd(&home, &moto).args(["logs", &doc.id()]).output().unwrap();
    assert!(String::from_utf8_lossy(&logs.stdout).contains("clean-env"));

    // An input whose object is not in the bucket: the download fails, and the task's error names it.
    let yaml = home.compile(&repo_root().join("testdata/k8s/missing_input.py"));
    let (code, doc, _) = run(&home, &moto, &yaml, &flags, &[]);
    assert_ne!(code, 0);
    assert_eq!(doc.state(), "FAILED");
    let err = doc.task("show")["error"].as_str().unwrap_or_default().to_owned();
    assert!(err.contains("input artifact `data`") && err.contains("s3://k8s-artifacts/runs/no-such-object"), "{err}");
}
