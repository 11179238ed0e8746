//! `deploy manifest` for a deployment whose versions live in S3 (moto on loopback, see `s3`), applied for real
//! to the test kube-apiserver (see `kube_support`) and read back: the image, the `serve` arguments (every
//! version, the default last, the canary share), the S3 endpoint and credentials from a Secret, the V2 health
//! probes, resources, labels and a Service selecting the Deployment's Pods. A change of traffic re-applies
//! as an update. The API server runs no controller manager, so no Pods are made from the Deployment: this
//! proves the objects are accepted and stored as written, not that the Pods start.

use serde_json::Value;

use crate::kube_support::Cluster;
use crate::s3::{Moto, AWS_ENV};
use crate::support::{repo_root, trained_model, Home};

/// Secret values the test puts into the cluster: they must never appear in a manifest.
const KEY_ID: &str = "key-id-only-in-the-secret";
const SECRET_KEY: &str = "secret-key-only-in-the-secret";

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get_json(cluster: &Cluster, kind: &str, name: &str) -> Value {
    serde_json::from_str(&ok(&cluster.kubectl(&["get", kind, name, "-o", "json"]))).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

#[test]
fn serving_manifests_from_s3_apply_for_real_and_read_back() {
    let validate = repo_root().join(".venv-k8s/bin/kubernetes-validate");
    if !validate.exists() || !repo_root().join(".venv-s3").exists() {
        eprintln!(
            "note: .venv-k8s or .venv-s3 is missing; the serving manifest test is skipped (scripts/test makes them)"
        );
        return;
    }
    let Some(cluster) = Cluster::start() else { return };
    let home = Home::new();
    let moto = Moto::start(home.path());
    moto.s3(&["create", "models"]);
    let model = trained_model(&home);
    for key in ["churn/v1/model.json", "churn/v2/model.json"] {
        moto.s3(&["put", "models", key, &model.to_string_lossy()]);
    }
    let cli = |args: &[&str]| {
        home.cmd().env("SECONDROW_S3_ENDPOINT", &moto.endpoint).envs(AWS_ENV).args(args).output().unwrap()
    };
    // Two versions from the bucket (each fetched and loaded once to check it), version 2 the canary.
    ok(&cli(&["deploy", "create", "churn", "--path", "s3://models/churn/v1/model.json"]));
    ok(&cli(&["deploy", "create", "churn", "--path", "s3://models/churn/v2/model.json", "--no-default"]));
    ok(&cli(&["deploy", "update", "churn", "--canary", "2", "--percent", "20"]));

    let manifest = |extra: &[&str]| {
        let base =
            ["deploy", "manifest", "churn", "--image", "secondrow:test", "--s3-credentials-secret", "model-store"];
        let args = [&base[..], &["--pod-s3-endpoint", "http://minio.storage:9000", "--replicas", "2"], extra].concat();
        let text = ok(&cli(&args));
        let file = cluster.dir.path().join("serve-churn.yaml");
        std::fs::write(&file, &text).unwrap();
        (text, file)
    };
    let (text, file) = manifest(&["--memory", "1Gi"]);
    assert!(!text.contains(KEY_ID) && !text.contains(SECRET_KEY) && !text.contains("testing"), "{text}");
    let out = std::process::Command::new(&validate).arg("--strict").arg(&file).output().unwrap();
    ok(&out);

    // Applied for real (the Secret first, as a user would), then read back from the API server.
    ok(&cluster.kubectl(&[
        "create",
        "secret",
        "generic",
        "model-store",
        &format!("--from-literal=AWS_ACCESS_KEY_ID={KEY_ID}"),
        &format!("--from-literal=AWS_SECRET_ACCESS_KEY={SECRET_KEY}"),
    ]));
    let applied = ok(&cluster.kubectl(&["apply", "-f", &file.to_string_lossy()]));
    assert!(applied.contains("deployment.apps/serve-churn created"), "{applied}");
    assert!(applied.contains("service/serve-churn created"), "{applied}");

    let dep = get_json(&cluster, "deployment", "serve-churn");
    assert_eq!(dep["spec"]["replicas"], 2);
    let pod = &dep["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["image"], "secondrow:test");
    assert_eq!(
        strings(&c["args"]),
        [
            "serve",
            "--host=0.0.0.0",
            "--port=8080",
            "--model=churn=s3://models/churn/v2/model.json:2",
            "--model=churn=s3://models/churn/v1/model.json:1",
            "--canary=churn=2:20",
        ],
        "the default (1) last, version 2 the canary"
    );
    let env = c["env"].as_array().unwrap();
    let named = |n: &str| env.iter().find(|e| e["name"] == n).unwrap_or_else(|| panic!("no {n}: {env:?}"));
    assert_eq!(named("SECONDROW_S3_ENDPOINT")["value"], "http://minio.storage:9000");
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        let from = &named(key)["valueFrom"]["secretKeyRef"];
        assert_eq!((from["name"].as_str(), from["key"].as_str()), (Some("model-store"), Some(key)));
        assert!(named(key).get("value").is_none());
    }
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/v2/health/ready");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/v2/health/live");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["resources"]["requests"]["cpu"], "250m");
    assert_eq!(c["resources"]["limits"]["memory"], "1Gi");
    let labels = pod["metadata"]["labels"].as_object().unwrap();
    assert_eq!(labels["secondrow.dev/deployment"], "churn");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "secondrow");
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    assert!(volumes.iter().all(|v| v.get("persistentVolumeClaim").is_none()), "no claim for S3 models: {volumes:?}");

    // The Service selects exactly the Deployment's Pods.
    let svc = get_json(&cluster, "service", "serve-churn");
    let selector = svc["spec"]["selector"].as_object().unwrap();
    assert_eq!(Value::Object(selector.clone()), dep["spec"]["selector"]["matchLabels"]);
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)), "{selector:?} vs {labels:?}");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    // No controller manager runs beside this API server: the Deployment makes no Pods here.
    let pods = ok(&cluster.kubectl(&["get", "pods", "-l", "secondrow.dev/deployment=churn", "-o", "name"]));
    assert_eq!(pods.trim(), "");

    // Traffic changes re-apply as an update of the same objects.
    ok(&cli(&["deploy", "update", "churn", "--no-canary", "--default-version", "2"]));
    let (_, file) = manifest(&[]);
    let applied = ok(&cluster.kubectl(&["apply", "-f", &file.to_string_lossy()]));
    assert!(applied.contains("deployment.apps/serve-churn configured"), "{applied}");
    let dep = get_json(&cluster, "deployment", "serve-churn");
    let args = strings(&dep["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert_eq!(args.last().map(String::as_str), Some("--model=churn=s3://models/churn/v2/model.json:2"), "{args:?}");
    assert!(!args.iter().any(|a| a.starts_with("--canary")), "{args:?}");

    // A version that is a file on this machine cannot reach a Pod without a claim: exit 2, saying why.
    ok(&cli(&["deploy", "create", "local-churn", "--path", &model.to_string_lossy()]));
    let out = cli(&["deploy", "manifest", "local-churn"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("a Pod cannot read this server's disk") && stderr.contains("--data-claim"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing printed to apply");
}

/// `deploy apply` sends the same objects through kube-rs server-side apply (field manager `secondrow`), again
/// as an update; `deploy delete --kubeconfig` removes them before the record. Without rights, without an API
/// server or without a kubeconfig: a clear error, a non-zero exit and nothing changed.
#[test]
fn deploy_apply_and_delete_go_through_the_api_server() {
    let Some(cluster) = Cluster::start() else { return };
    let home = Home::new();
    let model = trained_model(&home);
    ok(&home.output(&["deploy", "create", "churn", "--path", &model.to_string_lossy()]));
    let kubeconfig = cluster.kubeconfig.to_string_lossy().into_owned();
    let data_path = home.path().to_string_lossy().into_owned();
    let apply = |kubeconfig: &str, replicas: &str| {
        home.output(&[
            "deploy",
            "apply",
            "churn",
            "--kubeconfig",
            kubeconfig,
            "--data-claim",
            "secondrow-data",
            "--data-path",
            &data_path,
            "--replicas",
            replicas,
        ])
    };

    // Refused by RBAC, no API server, no kubeconfig: exit non-zero naming the problem, nothing created.
    let weak = cluster.kubeconfig_for(crate::kube_support::WEAK_TOKEN);
    let out = apply(&weak.to_string_lossy(), "1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refused to apply Deployment serve-churn in namespace default"), "{stderr}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = cluster.dir.path().join("kubeconfig-nowhere");
    std::fs::write(
        &nowhere,
        crate::kube_support::kubeconfig_text(&format!("https://127.0.0.1:{closed}"), "any-token-0123456789"),
    )
    .unwrap();
    let out = apply(&nowhere.to_string_lossy(), "1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("the Kubernetes API server at https://127.0.0.1:{closed}")), "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
    let out = apply(&cluster.dir.path().join("no-such-kubeconfig").to_string_lossy(), "1");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
    assert!(!cluster.kubectl(&["get", "deployment", "serve-churn"]).status.success(), "nothing was created");

    // Applied, then applied again with a change: the same objects, updated, managed by `secondrow`.
    let out = apply(&kubeconfig, "1");
    let stderr = ok(&out) + &String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("deployment.apps/serve-churn applied (namespace default)"), "{stderr}");
    assert!(stderr.contains("service/serve-churn applied"), "{stderr}");
    let first = get_json(&cluster, "deployment", "serve-churn");
    ok(&apply(&kubeconfig, "3"));
    let shown = ok(&cluster.kubectl(&["get", "deployment", "serve-churn", "-o", "json", "--show-managed-fields"]));
    let dep: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(dep["metadata"]["uid"], first["metadata"]["uid"], "updated in place");
    assert_eq!(dep["spec"]["replicas"], 3);
    let managers: Vec<&str> = dep["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["operation"] == "Apply")
        .filter_map(|f| f["manager"].as_str())
        .collect();
    assert_eq!(managers, ["secondrow"]);
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"][3], format!("--model=churn={}:1", model.display()));
    let svc = get_json(&cluster, "service", "serve-churn");
    assert_eq!(svc["spec"]["selector"], dep["spec"]["selector"]["matchLabels"]);

    // Deleted from the cluster first, then from the store; RBAC refusal changes neither.
    let out = home.output(&["deploy", "delete", "churn", "--kubeconfig", &weak.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    ok(&home.output(&["deploy", "get", "churn"]));
    assert!(cluster.kubectl(&["get", "service", "serve-churn"]).status.success());
    let out = home.output(&["deploy", "delete", "churn", "--kubeconfig", &kubeconfig]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("service/serve-churn deleted") && stderr.contains("deleted deployment churn"), "{stderr}");
    assert!(!cluster.kubectl(&["get", "service", "serve-churn"]).status.success());
    crate::support::wait_for(std::time::Duration::from_secs(30), || {
        (!cluster.kubectl(&["get", "deployment", "serve-churn"]).status.success()).then_some(())
    });
    assert_eq!(home.output(&["deploy", "get", "churn"]).status.code(), Some(2));
}
