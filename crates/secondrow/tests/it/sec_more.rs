//! More of the multi-tenant security of issue 13, attacked through the real binary: deployments that belong
//! to a namespace (REST and the serving port, two namespace tokens against each other); `secondrow serve`'s
//! token from a file, never from argv.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::{kfp_script, last_json, Server};
use crate::deploy::{compile_pipeline, make_rows, write_csv};
use crate::hygiene::{call, infer_body, Answer, Serve};
use crate::support::*;

const ADMIN: &str = "admin-token-sec-more-0123456789";

fn token(h: &Home, namespace: &str) -> String {
    let out = h.output(&["tokens", "create", "--namespace", namespace, "--name", "sec-more"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A server with tokens on (the admin token from a file). Without the task sandbox: the training pipeline
/// reads its CSV from the test's folder by parameter (the sandbox has tests of its own).
fn server_with_tokens(h: &Home) -> Server {
    let admin_file = h.path().join("admin-token");
    std::fs::write(&admin_file, ADMIN).unwrap();
    Server::start(h, &["--auth-token-file", admin_file.to_str().unwrap(), "--no-task-sandbox"])
}

/// Submits the deploy test pipeline as `namespace` and waits for it to succeed: the run id.
fn train_in(h: &Home, server: &Server, token: &str, namespace: &str, yaml: &Path, csv: &Path) -> String {
    let params = json!({"source": csv.to_str().unwrap()}).to_string();
    let out = kfp_script(h, "sandbox.py", &[&server.url, token, namespace, yaml.to_str().unwrap(), &params]);
    let doc = last_json(&out);
    assert_eq!(doc["state"], "SUCCEEDED", "{doc}");
    doc["run_id"].as_str().unwrap().to_owned()
}

fn api(server: &Server, method: &str, path: &str, token: &str, body: &Value) -> Answer {
    call(server.url.trim_start_matches("http://"), method, &format!("/apis/v2beta1{path}"), Some(token), body)
}

fn names(listed: &Answer) -> Vec<String> {
    assert_eq!(listed.status, 200, "{}", listed.text());
    let doc = listed.json();
    doc["deployments"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap().to_owned()).collect()
}

fn from_run(run: &str) -> Value {
    json!({"run_id": run, "task": "train-logistic-regression", "output": "model"})
}

fn deployments_belong_to_namespaces(h: &Home) {
    let team_a = token(h, "team-a");
    let team_b = token(h, "team-b");
    let server = server_with_tokens(h);
    let csv = h.path().join("train.csv");
    write_csv(&csv, &make_rows(120, 3), true);
    let yaml = compile_pipeline(h);
    let run_a = train_in(h, &server, &team_a, "team-a", &yaml, &csv);
    let run_b = train_in(h, &server, &team_b, "team-b", &yaml, &csv);
    let model_file = h.path().join("model.json");
    let artifacts = h.get_json(&run_b);
    let b_model_uri = RunDoc(artifacts).task_artifact("train-logistic-regression", "model")["uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("file://")
        .to_owned();
    std::fs::copy(&b_model_uri, &model_file).unwrap();

    // Team a deploys its own run's model: the deployment is in team-a.
    let created =
        api(&server, "POST", "/deployments", &team_a, &json!({"name": "a-model", "source": from_run(&run_a)}));
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.json()["namespace"], "team-a");
    // Attacks by team a, each refused before anything is written: another namespace's run as the source,
    // a file path of its choosing (the database, say), a deployment in another namespace.
    for (body, what) in [
        (json!({"name": "stolen", "source": from_run(&run_b)}), "team-b's run"),
        (json!({"name": "stolen", "source": {"path": model_file.to_str().unwrap()}}), "a server path"),
        (json!({"name": "stolen", "source": from_run(&run_a), "namespace": "team-b"}), "namespace team-b"),
    ] {
        let refused = api(&server, "POST", "/deployments", &team_a, &body);
        assert_eq!(refused.status, 403, "{what}: {}", refused.text());
    }
    assert_eq!(api(&server, "GET", "/deployments/stolen", ADMIN, &Value::Null).status, 404, "nothing was written");

    let created =
        api(&server, "POST", "/deployments", &team_b, &json!({"name": "b-model", "source": from_run(&run_b)}));
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.json()["namespace"], "team-b");
    // The admin deploys a file (no namespace), and may put a deployment into any namespace.
    let admin_own = json!({"name": "admin-model", "source": {"path": model_file.to_str().unwrap()}});
    assert_eq!(api(&server, "POST", "/deployments", ADMIN, &admin_own).status, 200);
    let for_b = json!({"name": "b-second", "source": {"path": model_file.to_str().unwrap()}, "namespace": "team-b"});
    let answer = api(&server, "POST", "/deployments", ADMIN, &for_b);
    assert_eq!((answer.status, answer.json()["namespace"].clone()), (200, json!("team-b")), "{}", answer.text());

    // Listing: each token its own; the admin everything, or one namespace when asked.
    assert_eq!(names(&api(&server, "GET", "/deployments", &team_a, &Value::Null)), ["a-model"]);
    assert_eq!(names(&api(&server, "GET", "/deployments", &team_b, &Value::Null)), ["b-model", "b-second"]);
    assert_eq!(names(&api(&server, "GET", "/deployments", ADMIN, &Value::Null)).len(), 4);
    assert_eq!(names(&api(&server, "GET", "/deployments?namespace=team-a", ADMIN, &Value::Null)), ["a-model"]);
    assert_eq!(api(&server, "GET", "/deployments?namespace=team-b", &team_a, &Value::Null).status, 403);

    // Team b cannot read, change, add to or delete team a's deployment.
    let canary = json!({"default_version": "1"});
    for (method, path, body) in [
        ("GET", "/deployments/a-model", Value::Null),
        ("PATCH", "/deployments/a-model", canary),
        ("DELETE", "/deployments/a-model/versions/1", Value::Null),
        ("DELETE", "/deployments/a-model", Value::Null),
        ("POST", "/deployments", json!({"name": "a-model", "source": from_run(&run_b)})),
        ("GET", "/deployments/admin-model", Value::Null),
    ] {
        let refused = api(&server, method, path, &team_b, &body);
        assert_eq!(refused.status, 403, "{method} {path}: {}", refused.text());
    }
    let a_model = api(&server, "GET", "/deployments/a-model", &team_a, &Value::Null);
    assert_eq!(a_model.status, 200, "{}", a_model.text());
    assert_eq!(a_model.json()["versions"].as_array().unwrap().len(), 1, "team b added nothing");

    // The serving port: a namespace token infers on its namespace's deployments only; the admin on all.
    let models = server.models.as_str();
    let rows: Vec<f64> = make_rows(3, 11).iter().flat_map(|(x, _)| *x).collect();
    let body = json!({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [3, 3], "data": rows}]});
    let infer =
        |model: &str, token: &str| call(models, "POST", &format!("/v2/models/{model}/infer"), Some(token), &body);
    // Serving follows the store within the reconciler's poll interval.
    wait_for(Duration::from_secs(30), || (infer("b-second", ADMIN).status == 200).then_some(()));
    for (model, token, want) in [
        ("a-model", team_a.as_str(), 200),
        ("a-model", team_b.as_str(), 403),
        ("a-model", ADMIN, 200),
        ("b-model", team_b.as_str(), 200),
        ("b-second", team_b.as_str(), 200),
        ("b-model", team_a.as_str(), 403),
        ("admin-model", team_a.as_str(), 403),
        ("admin-model", ADMIN, 200),
        // The same answer for a model that does not exist: names of others cannot be probed.
        ("no-such-model", team_a.as_str(), 403),
    ] {
        let answer = infer(model, token);
        assert_eq!(answer.status, want, "infer {model} as {}: {}", &token[..6], answer.text());
    }
    let meta = call(models, "GET", "/v2/models/a-model", Some(&team_b), &Value::Null);
    assert_eq!(meta.status, 403, "metadata too: {}", meta.text());

    // Team a deletes its own.
    assert_eq!(api(&server, "DELETE", "/deployments/a-model", &team_a, &Value::Null).status, 200);
    assert_eq!(names(&api(&server, "GET", "/deployments", &team_a, &Value::Null)), Vec::<String>::new());

    // The CLI names the namespace: locally, and through the server as the admin.
    let out = h.output(&[
        "deploy",
        "create",
        "local-b",
        "--path",
        model_file.to_str().unwrap(),
        "--namespace",
        "team-b",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["namespace"], "team-b");
    let remote = h
        .cmd()
        .args(["deploy", "list", "--namespace", "team-b", "--json", "--server", &server.url, "--token", &team_b])
        .output()
        .unwrap();
    assert!(remote.status.success(), "{}", String::from_utf8_lossy(&remote.stderr));
    let listed: Value = serde_json::from_slice(&remote.stdout).unwrap();
    let mut listed: Vec<&str> = listed.as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    listed.sort_unstable();
    assert_eq!(listed, ["b-model", "b-second", "local-b"]);
}

per_backend!(deployments_belong_to_namespaces);

/// `secondrow serve` takes its token from a file (or its variable), never from argv: a literal
/// `--auth-token VALUE` is refused, and the token of a running `serve` is not in its `/proc/PID/cmdline`.
/// Before: `--auth-token VALUE` was accepted, and every local user could read it from `ps`.
#[test]
fn serve_token_never_on_the_command_line() {
    let h = Home::new();
    let model = trained_model(&h);
    let secret = "serve-file-token-0123456789";
    let literal = h.output(&["serve", "-m", &format!("m={}", model.display()), "--auth-token", secret]);
    assert_eq!(literal.status.code(), Some(2), "{}", String::from_utf8_lossy(&literal.stderr));
    assert!(String::from_utf8_lossy(&literal.stderr).contains("--auth-token-file"));

    let file = h.path().join("serve.token");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let serve = Serve::start(&h, &model, &["--auth-token-file", file.to_str().unwrap()], &[]);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", serve.child.id())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(secret), "the token is on the command line");
    let rows = infer_body(&[[0.5, 3.5]]);
    assert_eq!(call(&serve.addr, "POST", "/v2/models/m/infer", None, &rows).status, 401);
    assert_eq!(call(&serve.addr, "POST", "/v2/models/m/infer", Some("wrong-token-0123456789"), &rows).status, 401);
    assert_eq!(call(&serve.addr, "POST", "/v2/models/m/infer", Some(secret), &rows).status, 200);

    let short = h.path().join("short.token");
    std::fs::write(&short, "short").unwrap();
    let out = h.output(&["serve", "-m", "m=x", "--auth-token-file", short.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Python multiprocessing inside the task sandbox: a `multiprocessing.Queue` (a POSIX semaphore) and a
/// `shared_memory` block written by a forked child, in a warm-forked and in a cold task. Before: Landlock
/// refused `/dev/shm`, and the task failed with a PermissionError.
#[test]
fn sandboxed_tasks_can_use_dev_shm() {
    let h = Home::new();
    let yaml = h.compile(&fixtures_dir().join("sandbox").join("shm_py.py"));
    for mode in ["warm", "cold"] {
        let server = Server::start(&h, &["--python-mode", mode]);
        let out = kfp_script(&h, "sandbox.py", &[&server.url, "no-token", "", yaml.to_str().unwrap(), "{}"]);
        let doc = last_json(&out);
        let run = RunDoc(h.get_json(doc["run_id"].as_str().unwrap()));
        assert_eq!(doc["state"], "SUCCEEDED", "{mode}: {:#}", run.0);
        assert_eq!(run.task_output("shm", "Output"), "queue 8 shm 42", "{mode}");
    }
}

/// `pip install` for `packages_to_install` runs in the task sandbox: a source package whose build (setup.py,
/// code of the pipeline author's choosing) tries to read the database and the admin token file, to write
/// into the server's home, and to find the admin token in its own or the server's environment fails at
/// each, and the package still installs and imports. Before: pip ran with the server's environment and
/// rights (the build saw `SECONDROW_AUTH_TOKEN` and could read the database).
#[test]
fn pip_install_runs_in_the_sandbox() {
    use crate::sandbox::{assert_report, home_dir, is_root, run_doc, submit, Srv, ADMIN as SANDBOX_ADMIN};
    let h = Home::new();
    let token_file = h.path().join("admin.token");
    std::fs::write(&token_file, SANDBOX_ADMIN).unwrap();
    // The server's home with its database exists once a store was opened.
    let out = h.output(&["tokens", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let home = home_dir(&h);
    let db = home.join("secondrow.db");
    assert!(db.is_file(), "{}", db.display());

    // The hostile source package, as an sdist in a find-links folder.
    let src = h.path().join("pkg-src").join("secondrow_hostile_probe-0.1.0");
    std::fs::create_dir_all(&src).unwrap();
    let quote = |paths: &[&Path]| {
        let items: Vec<String> = paths.iter().map(|p| format!("{:?}", p.display().to_string())).collect();
        format!("[{}]", items.join(", "))
    };
    let setup = std::fs::read_to_string(fixtures_dir().join("sandbox/hostile_setup.py")).unwrap();
    let header =
        format!("READS = {}\nWRITES = {}\nSECRET = {SANDBOX_ADMIN:?}\n", quote(&[&db, &token_file]), quote(&[&home]));
    std::fs::write(src.join("setup.py"), header + &setup).unwrap();
    let links = h.path().join("links");
    std::fs::create_dir_all(&links).unwrap();
    let tarball = links.join("secondrow_hostile_probe-0.1.0.tar.gz");
    let packed = std::process::Command::new(python())
        .args([
            "-c",
            "import sys, tarfile\nwith tarfile.open(sys.argv[1], 'w:gz') as t: t.add(sys.argv[2], arcname='secondrow_hostile_probe-0.1.0')",
        ])
        .arg(&tarball)
        .arg(&src)
        .status()
        .unwrap();
    assert!(packed.success());

    let yaml = h.compile(&fixtures_dir().join("sandbox/pip_probe.py"));
    // As the server's user, and (on a root server) as a task user: the environment is built anew for each
    // (the second server gets a fresh environments folder).
    let mut users = vec![(None, "0")];
    if !is_root() {
        eprintln!("note: not root; the task-user variant needs a root server, skipped");
    } else if !others_can_run(&python()) {
        eprintln!("note: the test Python lies in a folder other users cannot enter; task-user variant skipped");
    } else {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(h.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        users.push((Some("65534:65534"), "65534"));
    }
    for (user, uid) in users {
        let envs = home.join("envs");
        let _ = std::fs::remove_dir_all(&envs);
        let extra: Vec<&str> = user.map(|u| vec!["--task-user", u]).unwrap_or_default();
        let srv = Srv::start_with_env(&h, &extra, &[("PIP_FIND_LINKS", links.to_str().unwrap())]);
        let (run, state) = submit(&h, &srv, SANDBOX_ADMIN, "", &yaml, json!({}));
        let doc = run_doc(&h, &run);
        assert_eq!(state, "SUCCEEDED", "{user:?}: {:#}", doc.0);
        let report = doc.task_output("pip-probe", "Output").as_str().unwrap().to_owned();
        eprintln!("the package build's report ({user:?}):\n{report}");
        assert!(report.contains("LEAKED False"), "the admin token reached the package build:\n{report}");
        assert!(report.contains(&format!("UID {uid}")), "{report}");
        assert_report(&report, &[db.as_path(), token_file.as_path()], &[], false);
        assert_report(&report, &[home.as_path()], &[], true);
        assert!(!home.join("pip-was-here").exists());
    }
}

/// Whether users other than the owner can reach and run `exe` (every folder above its real path searchable).
fn others_can_run(exe: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(real) = exe.canonicalize() else { return false };
    real.ancestors().skip(1).all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// kfp-kubernetes volumes with `--task-user` on a root server: a PVC made by CreatePVC is written by one
/// task and read by the next, which also reads a secret mounted as files, all as the unprivileged task user.
/// Before: the volume folder belonged to root and the writer failed with "Permission denied" (and a
/// secret's files are root's, mode 600).
#[test]
fn volumes_are_usable_by_the_task_user() {
    use crate::sandbox::{is_root, run_doc, submit, Srv, ADMIN as SANDBOX_ADMIN};
    if !is_root() {
        eprintln!("note: not root; volume mounts and --task-user need a root server, skipped");
        return;
    }
    let h = Home::new();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(h.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = h.output(&["secrets", "create", "creds", "--from-literal", "password=pvc-secret"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = h.compile(&fixtures_dir().join("sandbox/volumes_user.py"));
    let srv = Srv::start(&h, &["--task-user", "65534:65534"]);
    let params = json!({"text": "written by the task user"});
    let (run, state) = submit(&h, &srv, SANDBOX_ADMIN, "", &yaml, params);
    let doc = run_doc(&h, &run);
    assert_eq!(state, "SUCCEEDED", "{:#}", doc.0);
    use sha2::Digest as _;
    let hash = hex::encode(sha2::Sha256::digest(b"pvc-secret"));
    assert_eq!(doc.output("Output"), format!("written by the task user|65534|{}", &hash[..16]).as_str());
    assert_eq!(doc.task_state("deletepvc"), "SUCCEEDED");
}

/// A root server without `--task-user` runs tasks as the dedicated unprivileged user `secondrow-task`
/// (created when missing), and refuses to start, saying why and what to do, when that user cannot reach the
/// home folder or the Python interpreter; `--task-user root` keeps tasks as root with a warning. Before: a
/// root server without `--task-user` ran every task as root.
#[test]
fn a_root_server_runs_tasks_as_a_dedicated_user_by_default() {
    use crate::sandbox::{assert_report, home_dir, is_root, run_doc, submit, Srv, ADMIN as SANDBOX_ADMIN};
    use std::os::unix::fs::PermissionsExt as _;
    if !is_root() {
        eprintln!("note: not root; the default task user is a root server's, skipped");
        return;
    }
    let h = Home::new();
    let server = |extra: &[&str]| {
        let mut cmd = h.cmd();
        cmd.env_remove("SECONDROW_TASK_USER").args(["server", "--port", "0", "--serve-port", "0"]).args(extra);
        cmd
    };
    // A home in a private folder: the dedicated user could not reach it.
    std::fs::set_permissions(h.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = server(&[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("secondrow-task") && stderr.contains("--task-user root"), "{stderr}");
    assert!(stderr.contains(&h.path().display().to_string()), "names the folder: {stderr}");
    let user = std::process::Command::new("id").args(["-u", "secondrow-task"]).output().unwrap();
    assert!(user.status.success(), "the dedicated user was created");
    let uid = String::from_utf8_lossy(&user.stdout).trim().to_owned();

    std::fs::set_permissions(h.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut env = vec![("SECONDROW_TASK_USER", "")];
    if !others_can_run(&python()) {
        // This machine's test Python lies in a private folder: refused, naming it.
        let out = server(&[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("cannot enter") && stderr.contains("python"), "{stderr}");
        // The shell task below needs no kfp: the system's Python will do, where it has one.
        if !Path::new("/usr/bin/python3").is_file() {
            eprintln!("note: no Python other users can run; the dedicated user's task run is skipped");
            return;
        }
        env.push(("SECONDROW_PYTHON", "/usr/bin/python3"));
    }
    let srv = Srv::start_with_env(&h, &[], &env);
    let db = home_dir(&h).join("secondrow.db");
    let params = json!({"reads": db.display().to_string(), "writes": ""});
    let (run, state) = submit(&h, &srv, SANDBOX_ADMIN, "", &fixtures_dir().join("sandbox/probe.yaml"), params);
    let doc = run_doc(&h, &run);
    assert_eq!(state, "SUCCEEDED", "{:#}", doc.0);
    let report = doc.task_output("probe", "report").as_str().unwrap().to_owned();
    assert!(report.contains(&format!("--- uid {uid}\n")), "runs as secondrow-task: {report}");
    assert_report(&report, &[db.as_path()], &[], false);
    drop(srv);
    // The explicit opt-out starts, and warns.
    let log = h.path().join("root-tasks.log");
    let mut child = server(&["--task-user", "root"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("listening on"), "{line}");
    let warned = std::fs::read_to_string(&log).unwrap();
    assert!(warned.contains("WARNING: --task-user root"), "{warned}");
}
