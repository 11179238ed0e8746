//! `--executor kubernetes` against a real kube-apiserver (see `kube_support`): pipelines run as one Pod per
//! task attempt, the Pods' specs are what the components ask for, and bad input (no kubeconfig, no API
//! server, a token without rights, an invalid image, a Pod that never starts) fails clearly.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::kube_support::{Cluster, NODE, WEAK_TOKEN};
use crate::support::{raw_http, samples_dir, wait_for, Home};

/// The executor flags for `cluster` (Pods bound to the test kubelet's node, kept for inspection).
pub(crate) fn kube_flags(kubeconfig: &Path) -> Vec<String> {
    [
        "--executor",
        "kubernetes",
        "--kubeconfig",
        &kubeconfig.to_string_lossy(),
        "--kube-node-name",
        NODE,
        "--pod-deletion",
        "never",
        "--parallelism",
        "8",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn run(home: &Home, yaml: &Path, flags: &[String], extra: &[&str]) -> (i32, crate::support::RunDoc) {
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    home.run(yaml, &args)
}

fn container(pod: &Value) -> &Value {
    &pod["spec"]["containers"][0]
}

#[test]
fn samples_and_quickstart_run_as_pods() {
    let Some(cluster) = Cluster::start() else { return };
    let home = Home::new();
    let flags = kube_flags(&cluster.kubeconfig);

    // Container components (shell in `alpine`): every placeholder kind, resources and env.
    let yaml = home.compile_sample("container_shell");
    let (code, doc) = run(&home, &yaml, &flags, &[]);
    assert_eq!(code, 0, "{:#}\n{}", doc.0, cluster.logs());
    assert_eq!(doc.state(), "SUCCEEDED");
    assert_eq!(doc.output("text"), "ababab");
    let pods = cluster.pods(&format!("secondrow.dev/run={}", doc.id()));
    assert!(pods.len() >= 6, "one Pod per task: {}", pods.len());
    for pod in &pods {
        assert_eq!(container(pod)["image"], "alpine");
        assert_eq!(pod["spec"]["nodeName"], NODE);
        assert_eq!(pod["status"]["phase"], "Succeeded");
        assert_eq!(pod["metadata"]["labels"]["secondrow.dev/attempt"], "1");
        assert_eq!(pod["metadata"]["labels"]["app.kubernetes.io/managed-by"], "secondrow");
    }
    let env_pod = pods
        .iter()
        .find(|p| p["metadata"]["annotations"]["secondrow.dev/task-path"] == "env-echo")
        .unwrap_or_else(|| panic!("no Pod for env-echo: {pods:#?}"));
    let limits = &container(env_pod)["resources"]["limits"];
    assert_eq!(limits["cpu"], "1");
    assert_eq!(limits["memory"], "256M");
    assert_eq!(limits["nvidia.com/gpu"], "1");
    let env = container(env_pod)["env"].as_array().unwrap();
    assert!(env.iter().any(|e| e["name"] == "GREETING" && e["value"] == "hola"), "{env:?}");

    // Built-in components (the quickstart), the loops and conditions samples: the same driver on Pods.
    let quickstart = crate::support::repo_root().join("examples/quickstart");
    let source = format!("source={}", quickstart.join("data/customers.csv").display());
    let (code, doc) = run(&home, &quickstart.join("pipeline.yaml"), &flags, &["-p", &source]);
    assert_eq!(code, 0, "{:#}\n{}", doc.0, cluster.logs());
    assert_eq!(doc.state(), "SUCCEEDED");
    for name in ["conditions", "loops"] {
        let yaml = home.compile(&samples_dir().join(format!("{name}.py")));
        let (_, doc) = run(&home, &yaml, &flags, &[]);
        assert_eq!(doc.state(), "SUCCEEDED", "{name}: {:#}\n{}", doc.0, cluster.logs());
    }
}

/// A pipeline spec of one task running `script` with `sh -c` in `image`.
fn one_task_spec(image: &str, script: &str) -> Value {
    serde_json::json!({
        "pipelineInfo": {"name": "one-task"},
        "root": {"dag": {"tasks": {"hello": {"taskInfo": {"name": "hello"}, "componentRef": {"name": "comp-hello"}}}}},
        "components": {"comp-hello": {"executorLabel": "exec-hello"}},
        "deploymentSpec": {"executors": {"exec-hello": {"container": {
            "image": image, "command": ["sh", "-c", script]
        }}}},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.7.0"
    })
}

/// A pipeline file of one shell task in `image` (JSON is YAML).
fn one_task(home: &Home, image: &str) -> std::path::PathBuf {
    let path = home.path().join(format!("one-task-{}.yaml", image.len()));
    std::fs::write(&path, one_task_spec(image, "echo hello from the pod").to_string()).unwrap();
    path
}

#[test]
fn bad_cluster_settings_fail_clearly() {
    let home = Home::new();
    let yaml = one_task(&home, "alpine");
    // No kubeconfig where one is named: a caller error (exit 2), before any run is recorded.
    let missing = home.path().join("no-such-kubeconfig");
    let (code, out) = {
        let out = home.output(&[
            "run",
            &yaml.to_string_lossy(),
            "--executor",
            "kubernetes",
            "--kubeconfig",
            &missing.to_string_lossy(),
        ]);
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no-such-kubeconfig") && out.contains("no such file"), "{out}");
    // No API server at the configured address.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = home.path().join("dead-kubeconfig");
    std::fs::write(&dead, crate::kube_support::kubeconfig_text(&format!("https://127.0.0.1:{port}"), "x")).unwrap();
    let out = home.output(&[
        "run",
        &yaml.to_string_lossy(),
        "--executor",
        "kubernetes",
        "--kubeconfig",
        &dead.to_string_lossy(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("unreachable") && err.contains(&port.to_string()), "{err}");
    assert_eq!(home.runs_json().as_array().map(Vec::len).unwrap_or(0), 0, "no run was recorded");
}

#[test]
fn bad_input_on_a_real_api_server_fails_the_run_with_the_reason() {
    let Some(cluster) = Cluster::start() else { return };
    let home = Home::new();
    let flags = kube_flags(&cluster.kubeconfig);

    // A token without rights: the run fails and says the API server refused.
    let weak = kube_flags(&cluster.kubeconfig_for(WEAK_TOKEN));
    let (code, doc) = run(&home, &one_task(&home, "alpine"), &weak, &[]);
    assert_ne!(code, 0);
    assert_eq!(doc.state(), "FAILED");
    let err = doc.task("hello")["error"].as_str().unwrap_or_default().to_owned();
    assert!(err.contains("refused") && err.contains("forbidden"), "{err}");

    // An invalid image name: refused before a Pod is made.
    let (_, doc) = run(&home, &one_task(&home, "Not A Valid/Image"), &flags, &[]);
    assert_eq!(doc.state(), "FAILED");
    let err = doc.task("hello")["error"].as_str().unwrap_or_default().to_owned();
    assert!(err.contains("invalid image name `Not A Valid/Image`"), "{err}");

    // A Pod no node runs: pending past the timeout, then the run fails with the reason; the Pod is gone.
    let mut nowhere = flags.clone();
    let i = nowhere.iter().position(|f| f == NODE).unwrap();
    nowhere[i] = "no-such-node".into();
    nowhere.extend(["--pod-pending-timeout".into(), "2".into()]);
    let (_, doc) = run(&home, &one_task(&home, "alpine"), &nowhere, &[]);
    assert_eq!(doc.state(), "FAILED");
    let err = doc.task("hello")["error"].as_str().unwrap_or_default().to_owned();
    assert!(err.contains("still pending after 2s"), "{err}");

    // Other runs are unaffected: the same pipeline with good settings succeeds.
    let (code, doc) = run(&home, &one_task(&home, "alpine"), &flags, &[]);
    assert_eq!(code, 0, "{:#}\n{}", doc.0, cluster.logs());
    // The log came through the API (the API server proxies pods/log to the test kubelet's endpoint).
    let logs = home.output(&["logs", &doc.id()]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("hello from the pod"));
    // Finished Pods were kept (`--pod-deletion never`), except the pending one, which was deleted.
    assert_eq!(cluster.pods(&format!("secondrow.dev/run={}", doc.id())).len(), 1);
}

/// The deploy manifests (`deploy/kubernetes`, rendered by kustomize): valid against the Kubernetes schema
/// and accepted by the API server's validation and admission (server-side dry run).
#[test]
fn deploy_manifests_validate_and_apply() {
    let root = crate::support::repo_root();
    let validate = root.join(".venv-k8s/bin/kubernetes-validate");
    if !validate.exists() {
        eprintln!("note: .venv-k8s is missing; the manifest test is skipped (scripts/test makes it)");
        return;
    }
    let Some(cluster) = Cluster::start() else { return };
    let rendered = cluster.dir.path().join("secondrow.yaml");
    let out =
        std::process::Command::new("kubectl").arg("kustomize").arg(root.join("deploy/kubernetes")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&rendered, &out.stdout).unwrap();
    let kinds = String::from_utf8_lossy(&out.stdout).matches("\nkind: ").count() + 1;
    assert!(kinds >= 6, "{kinds} objects");
    let out = std::process::Command::new(&validate).arg("--strict").arg(&rendered).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let out = cluster.kubectl(&["apply", "--dry-run=server", "-f", &rendered.to_string_lossy()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for object in
        ["deployment.apps/secondrow", "service/secondrow", "role.rbac.authorization.k8s.io/secondrow-executor"]
    {
        assert!(text.contains(object), "{text}");
    }
    // The same check refuses a broken manifest (a quantity that is not one).
    let broken = cluster.dir.path().join("broken.yaml");
    std::fs::write(&broken, std::fs::read_to_string(&rendered).unwrap().replace("memory: 256Mi", "memory: lots"))
        .unwrap();
    let out = cluster.kubectl(&["apply", "--dry-run=server", "-f", &broken.to_string_lossy()]);
    assert!(!out.status.success(), "a bad quantity was accepted");
}

/// Submits a run of `spec` to the server; its id.
fn submit(server: &crate::api::Server, spec: &Value) -> String {
    let body = serde_json::json!({"display_name": "k8s", "pipeline_spec": spec}).to_string();
    let (status, text) = raw_http(&server.url, "POST", "/apis/v2beta1/runs", None, "application/json", &body);
    assert_eq!(status, 200, "{text}");
    let run: Value = serde_json::from_str(&text).unwrap();
    run["run_id"].as_str().unwrap().to_owned()
}

fn run_state(server: &crate::api::Server, id: &str) -> String {
    let (_, text) = raw_http(&server.url, "GET", &format!("/apis/v2beta1/runs/{id}"), None, "application/json", "");
    let run: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    run["state"].as_str().unwrap_or_default().to_owned()
}

fn running_pod(cluster: &Cluster, run_id: &str) -> Value {
    wait_for(Duration::from_secs(60), || {
        cluster.pods(&format!("secondrow.dev/run={run_id}")).into_iter().find(|p| p["status"]["phase"] == "Running")
    })
}

/// A server killed with a task's Pod running: the next server adopts that Pod (the command runs once) and
/// the run succeeds. Terminating a run deletes its Pods.
#[test]
fn a_restarted_server_adopts_running_pods_and_terminate_deletes_them() {
    let Some(cluster) = Cluster::start() else { return };
    let home = Home::new();
    let flags = kube_flags(&cluster.kubeconfig);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let marker = home.path().join("started.txt");
    let script = format!("echo started >> {}; sleep 3; echo finished", marker.display());

    let server = crate::api::Server::start(&home, &flags);
    let id = submit(&server, &one_task_spec("alpine", &script));
    let pod = running_pod(&cluster, &id);
    drop(server); // SIGKILL, with the Pod running
    let server = crate::api::Server::start(&home, &flags);
    wait_for(Duration::from_secs(60), || (run_state(&server, &id) == "SUCCEEDED").then_some(()));
    let started = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(started.lines().count(), 1, "the command ran once: {started:?}");
    let pods = cluster.pods(&format!("secondrow.dev/run={id}"));
    assert_eq!(pods.len(), 1, "no second Pod was made");
    assert_eq!(pods[0]["metadata"]["uid"], pod["metadata"]["uid"]);
    assert_eq!(pods[0]["status"]["phase"], "Succeeded");

    let id = submit(&server, &one_task_spec("alpine", "sleep 120"));
    running_pod(&cluster, &id);
    let (status, text) =
        raw_http(&server.url, "POST", &format!("/apis/v2beta1/runs/{id}:terminate"), None, "application/json", "{}");
    assert_eq!(status, 200, "{text}");
    wait_for(Duration::from_secs(60), || (run_state(&server, &id) == "CANCELED").then_some(()));
    // Deleted through the kubelet (the process is killed, then the Pod removed).
    wait_for(Duration::from_secs(60), || cluster.pods(&format!("secondrow.dev/run={id}")).is_empty().then_some(()));
}

/// `deploy manifest`: a deployment's Deployment + Service running `secondrow serve`, valid against the schema
/// and accepted by the API server (server-side dry run); a name Kubernetes refuses is a caller error.
#[test]
fn serving_manifests_validate_and_apply() {
    let root = crate::support::repo_root();
    let validate = root.join(".venv-k8s/bin/kubernetes-validate");
    if !validate.exists() {
        eprintln!("note: .venv-k8s is missing; the manifest test is skipped (scripts/test makes it)");
        return;
    }
    let Some(cluster) = Cluster::start() else { return };
    let home = Home::new();
    let model = crate::support::trained_model(&home);
    let out = home.output(&["deploy", "create", "churn", "--path", &model.to_string_lossy()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let data_path = home.path().to_string_lossy().into_owned();
    let claim = ["--data-claim", "secondrow-data"];
    let out = home.output(
        &[&["deploy", "manifest", "churn", "--image", "secondrow:1", "--data-path", &data_path][..], &claim].concat(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("kind: Deployment") && text.contains("kind: Service"), "{text}");
    assert!(text.contains(&format!("--model=churn={}:1", model.display())), "{text}");
    let file = cluster.dir.path().join("serve.yaml");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new(&validate).arg("--strict").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let out = cluster.kubectl(&["apply", "--dry-run=server", "-f", &file.to_string_lossy()]);
    let applied = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{applied}{}", String::from_utf8_lossy(&out.stderr));
    assert!(applied.contains("deployment.apps/serve-churn") && applied.contains("service/serve-churn"), "{applied}");
    // A model outside the data volume cannot be served from it: exit 2, naming the flag.
    let out = home.output(&[&["deploy", "manifest", "churn", "--data-path", "/elsewhere"][..], &claim].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data-path"));
}

/// With `--launcher-image`, each Pod's init container copies the SecondRow binary into an emptyDir and the
/// task runs under `secondrow launch run`: the quickstart's built-in components call that copy.
#[test]
fn the_launcher_runs_built_in_components_in_pods() {
    let Some(cluster) = Cluster::start() else { return };
    let home = Home::new();
    let mut flags = kube_flags(&cluster.kubeconfig);
    flags.extend(["--launcher-image".to_owned(), "secondrow:test".to_owned()]);
    let quickstart = crate::support::repo_root().join("examples/quickstart");
    let source = format!("source={}", quickstart.join("data/customers.csv").display());
    let (code, doc) = run(&home, &quickstart.join("pipeline.yaml"), &flags, &["-p", &source]);
    assert_eq!(code, 0, "{:#}\n{}", doc.0, cluster.logs());
    let pods = cluster.pods(&format!("secondrow.dev/run={}", doc.id()));
    assert!(!pods.is_empty());
    for pod in &pods {
        assert_eq!(pod["spec"]["initContainers"][0]["image"], "secondrow:test");
        let command = &pod["spec"]["containers"][0]["command"];
        assert_eq!(command[0], "/secondrow-bin/secondrow");
        assert_eq!(command[1], "launch");
        assert_eq!(command[4], "/secondrow-bin/secondrow", "the built-in component calls the copy");
    }
}

/// kfp-kubernetes settings are applied by Kubernetes: a Secret of the cluster as env (the test kubelet reads
/// it through the API), the node selector on the Pod; a missing Secret fails the run.
#[test]
fn kfp_kubernetes_settings_use_the_clusters_objects() {
    let Some(cluster) = Cluster::start() else { return };
    let home = Home::new();
    let flags = kube_flags(&cluster.kubeconfig);
    let out = cluster.kubectl(&["create", "secret", "generic", "db", "--from-literal=password=s3cret"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let platform = serde_json::json!({"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-hello": {
        "secretAsEnv": [{"secretName": "db", "keyToEnv": [{"secretKey": "password", "envVar": "PW"}]}],
        "nodeSelector": {"labels": {"kubernetes.io/hostname": NODE}}
    }}}}}});
    let spec = one_task_spec("alpine", "test \"$PW\" = s3cret && echo secret-ok");
    let yaml = home.path().join("with-secret.yaml");
    std::fs::write(&yaml, format!("{spec}\n---\n{platform}\n")).unwrap();
    let (code, doc) = run(&home, &yaml, &flags, &[]);
    assert_eq!(code, 0, "{:#}\n{}", doc.0, cluster.logs());
    let pods = cluster.pods(&format!("secondrow.dev/run={}", doc.id()));
    let pod = &pods[0];
    assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/hostname"], NODE);
    let env = container(pod)["env"].as_array().unwrap();
    let pw = env.iter().find(|e| e["name"] == "PW").unwrap();
    assert_eq!(pw["valueFrom"]["secretKeyRef"]["name"], "db");
    let logs = home.output(&["logs", &doc.id()]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("secret-ok"));

    let out = cluster.kubectl(&["delete", "secret", "db"]);
    assert!(out.status.success());
    let (code, doc) = run(&home, &yaml, &flags, &["--no-cache"]);
    assert_ne!(code, 0);
    assert_eq!(doc.state(), "FAILED");
}

/// SecondRow's PersistentVolumeClaims in the `default` namespace.
fn claims(cluster: &Cluster) -> Vec<Value> {
    let path =
        "/api/v1/namespaces/default/persistentvolumeclaims?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dsecondrow";
    cluster.get_json(path).and_then(|v| v["items"].as_array().cloned()).unwrap_or_default()
}

/// kfp-kubernetes' CreatePVC makes a real PersistentVolumeClaim with the spec it asks for, the tasks that
/// mount it get it by claim name (the test kubelet gives both the same folder), DeletePVC deletes it; a
/// size that is not a quantity fails the task naming the field, and no claim is made.
#[test]
fn create_pvc_and_delete_pvc_are_real_claims() {
    let Some(cluster) = Cluster::start() else { return };
    let home = Home::new();
    let flags = kube_flags(&cluster.kubeconfig);
    let yaml = crate::support::repo_root().join("testdata/k8s/pvc_claim.yaml");
    let gate = home.path().join("gate");
    let gate_arg = format!("gate={}", gate.display());
    let (code, doc) = std::thread::scope(|s| {
        let running = s.spawn(|| run(&home, &yaml, &flags, &["-p", &gate_arg]));
        // While the writer runs (it waits for the gate), the claim exists with CreatePVC's spec.
        let claim = wait_for(Duration::from_secs(120), || claims(&cluster).into_iter().next());
        std::fs::write(&gate, "").unwrap();
        let done = running.join().unwrap();
        assert_eq!(claim["spec"]["accessModes"], serde_json::json!(["ReadWriteOnce"]), "{claim:#}");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
        assert_eq!(claim["spec"]["storageClassName"], "standard");
        assert_eq!(claim["metadata"]["annotations"]["team"], "ml");
        assert_eq!(claim["metadata"]["labels"]["secondrow.dev/run"], done.1.id().as_str());
        assert_eq!(claim["metadata"]["name"], format!("{}-scratch", done.1.id()));
        done
    });
    assert_eq!(code, 0, "{:#}\n{}", doc.0, cluster.logs());
    assert_eq!(doc.output("Output"), "hello claim\n", "the reader saw what the writer wrote in the claim");
    let name = doc.task_output("createpvc", "name").as_str().unwrap().to_owned();
    assert_eq!(doc.task_state("deletepvc"), "SUCCEEDED");
    let pods = cluster.pods(&format!("secondrow.dev/run={}", doc.id()));
    assert_eq!(pods.len(), 2, "only the writer and the reader are Pods");
    for pod in &pods {
        let volumes = pod["spec"]["volumes"].as_array().unwrap();
        assert!(volumes.iter().any(|v| v["persistentVolumeClaim"]["claimName"] == name.as_str()), "{volumes:?}");
    }
    // Deleted: gone, or (the API server's `kubernetes.io/pvc-protection` finalizer, which only a
    // controller-manager removes, and none runs here) marked for deletion.
    let left = cluster.get_json(&format!("/api/v1/namespaces/default/persistentvolumeclaims/{name}"));
    if let Some(claim) = left {
        assert!(claim["metadata"]["deletionTimestamp"].is_string(), "DeletePVC deleted the claim: {claim:#}");
    }

    let (code, doc) = run(&home, &yaml, &flags, &["-p", "size=lots", "-p", &gate_arg]);
    assert_ne!(code, 0);
    assert_eq!(doc.state(), "FAILED");
    let err = doc.task("createpvc")["error"].as_str().unwrap_or_default().to_owned();
    assert!(err.contains("`size`") && err.contains("lots"), "{err}");
    let live = claims(&cluster).into_iter().filter(|c| c["metadata"]["deletionTimestamp"].is_null()).count();
    assert_eq!(live, 0, "no claim for a bad size");
}

/// The API server stopped while a Pod runs and started again on the same port (etcd keeps the state): the
/// run carries on and succeeds, the command ran once, one Pod. A run submitted to the server while the API
/// server is down waits for it (its calls are repeated) and runs once; one terminated while it is down has its
/// Pod deleted once it is back. Left down past
/// `--kube-unreachable-timeout`, the run fails with a reason naming the API server.
#[test]
fn runs_outlast_an_api_server_restart_and_fail_clearly_when_it_stays_down() {
    let Some(mut cluster) = Cluster::start() else { return };
    let home = Home::new();
    let flags = kube_flags(&cluster.kubeconfig);
    let task = |name: &str| {
        let (marker, gate) = (home.path().join(format!("{name}.started")), home.path().join(format!("{name}.gate")));
        let script = format!(
            "echo started >> {m}; i=0; while [ ! -e {g} ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done; echo finished",
            m = marker.display(),
            g = gate.display()
        );
        let yaml = home.path().join(format!("{name}.yaml"));
        std::fs::write(&yaml, one_task_spec("alpine", &script).to_string()).unwrap();
        (yaml, marker, gate)
    };

    let (yaml, marker, gate) = task("restart");
    let (code, doc) = std::thread::scope(|s| {
        let running = s.spawn(|| run(&home, &yaml, &flags, &[]));
        wait_for(Duration::from_secs(60), || marker.exists().then_some(()));
        cluster.stop_apiserver();
        // The command ends while the API server is away; the kubelet reports it once it is back.
        std::fs::write(&gate, "").unwrap();
        cluster.start_apiserver();
        running.join().unwrap()
    });
    assert_eq!(code, 0, "{:#}\n{}", doc.0, cluster.logs());
    assert_eq!(doc.state(), "SUCCEEDED");
    assert_eq!(std::fs::read_to_string(&marker).unwrap().lines().count(), 1, "the command ran once");
    assert_eq!(cluster.pods(&format!("secondrow.dev/run={}", doc.id())).len(), 1, "no second Pod");

    // A run submitted while the API server is down: its first calls (list, create) are repeated until the
    // API server is back, then its Pod is made once.
    let server_flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = crate::api::Server::start(&home, &server_flags);
    cluster.stop_apiserver();
    let marker = home.path().join("submitted.started");
    let id = submit(&server, &one_task_spec("alpine", &format!("echo started >> {}", marker.display())));
    let server_log = home.path().join("server.log");
    wait_for(Duration::from_secs(60), || {
        std::fs::read_to_string(&server_log).unwrap_or_default().contains("trying again in").then_some(())
    });
    cluster.start_apiserver();
    wait_for(Duration::from_secs(120), || (run_state(&server, &id) == "SUCCEEDED").then_some(()));
    assert_eq!(std::fs::read_to_string(&marker).unwrap().lines().count(), 1, "the command ran once");
    assert_eq!(cluster.pods(&format!("secondrow.dev/run={id}")).len(), 1, "no second Pod");
    // Terminated while the API server is down: the run is canceled, and its Pod deleted once it is back.
    let id = submit(&server, &one_task_spec("alpine", "sleep 120"));
    running_pod(&cluster, &id);
    cluster.stop_apiserver();
    let (status, text) =
        raw_http(&server.url, "POST", &format!("/apis/v2beta1/runs/{id}:terminate"), None, "application/json", "{}");
    assert_eq!(status, 200, "{text}");
    cluster.start_apiserver();
    wait_for(Duration::from_secs(120), || (run_state(&server, &id) == "CANCELED").then_some(()));
    wait_for(Duration::from_secs(60), || cluster.pods(&format!("secondrow.dev/run={id}")).is_empty().then_some(()));
    drop(server);

    let (yaml, marker, _gate) = task("down");
    let mut short = flags.clone();
    short.extend(["--kube-unreachable-timeout".to_owned(), "3".to_owned()]);
    let (code, doc) = std::thread::scope(|s| {
        let running = s.spawn(|| run(&home, &yaml, &short, &[]));
        wait_for(Duration::from_secs(60), || marker.exists().then_some(()));
        cluster.stop_apiserver();
        running.join().unwrap()
    });
    assert_ne!(code, 0);
    assert_eq!(doc.state(), "FAILED");
    let err = doc.task("hello")["error"].as_str().unwrap_or_default().to_owned();
    assert!(err.contains(&format!("API server at {}", cluster.url)) && err.contains("unreachable for 3s"), "{err}");
}

/// Secret values the engine knows are `***` in the log kept in the log store: a literal env value under
/// a credential's name, a Secret's key given as env (the engine may read the Secret), the engine's own
/// object-store key. Other output is kept.
#[test]
fn pod_logs_are_redacted() {
    let Some(cluster) = Cluster::start() else { return };
    let home = Home::new();
    let flags = kube_flags(&cluster.kubeconfig);
    let out = cluster.kubectl(&["create", "secret", "generic", "api", "--from-literal=password=pw-from-secret-77"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut spec = one_task_spec("alpine", "echo \"token=$API_TOKEN pw=$PW key=own-s3-key-99 plain=visible\"");
    spec["deploymentSpec"]["executors"]["exec-hello"]["container"]["env"] =
        serde_json::json!([{"name": "API_TOKEN", "value": "literal-token-55"}]);
    let platform = serde_json::json!({"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-hello": {
        "secretAsEnv": [{"secretName": "api", "keyToEnv": [{"secretKey": "password", "envVar": "PW"}]}]
    }}}}}});
    let yaml = home.path().join("redact.yaml");
    std::fs::write(&yaml, format!("{spec}\n---\n{platform}\n")).unwrap();
    let mut args: Vec<&str> = vec!["run", yaml.to_str().unwrap(), "--json"];
    args.extend(flags.iter().map(String::as_str));
    let out = home.cmd().args(&args).env("AWS_SECRET_ACCESS_KEY", "own-s3-key-99").output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), cluster.logs());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = doc["run"]["id"].as_str().unwrap();
    let logs = home.output(&["logs", id]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("token=*** pw=*** key=*** plain=visible"), "{text}");
    for secret in ["literal-token-55", "pw-from-secret-77", "own-s3-key-99"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}
