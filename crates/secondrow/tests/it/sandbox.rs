//! The task sandbox of `secondrow server` (issue 13): hostile tasks run by namespace tokens cannot read the
//! admin token, the database or another namespace's artifacts; imports and re-pointed outputs stay in the
//! namespace; the cache is per namespace; spec names never become paths; and a restart after SIGKILL kills
//! the previous server's task processes before running the task again.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::{kfp_script, last_json};
use crate::support::*;

pub(crate) const ADMIN: &str = "admin-token-sandbox-0123456789";

/// A `secondrow server` with the admin token in its environment (as an operator would pass it), killed
/// (SIGKILL) when dropped.
pub(crate) struct Srv {
    child: Child,
    pub(crate) url: String,
}

impl Srv {
    pub(crate) fn start(h: &Home, extra: &[&str]) -> Srv {
        Srv::start_with_env(h, extra, &[])
    }

    /// With more variables in the server's environment (an empty value removes the variable).
    pub(crate) fn start_with_env(h: &Home, extra: &[&str], env: &[(&str, &str)]) -> Srv {
        let mut cmd = h.cmd();
        for (k, v) in env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let mut child = cmd
            .args(["server", "--host", "127.0.0.1", "--port", "0", "--serve-port", "0"])
            .args(extra)
            .env("SECONDROW_AUTH_TOKEN", ADMIN)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(h.path().join(format!("server-{}.log", uuid_like()))).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("the API URL").to_owned();
        Srv { child, url }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{nanos}")
}

pub(crate) fn token(h: &Home, namespace: &str) -> String {
    let out = h.output(&["tokens", "create", "--namespace", namespace, "--name", "sandbox"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join("sandbox").join(name)
}

/// Submits a fixture pipeline as `namespace` and waits for its end: (run id, state).
pub(crate) fn submit(
    h: &Home,
    srv: &Srv,
    token: &str,
    namespace: &str,
    spec: &Path,
    params: Value,
) -> (String, String) {
    let out = kfp_script(h, "sandbox.py", &[&srv.url, token, namespace, spec.to_str().unwrap(), &params.to_string()]);
    let doc = last_json(&out);
    (doc["run_id"].as_str().unwrap().to_owned(), doc["state"].as_str().unwrap().to_owned())
}

pub(crate) fn run_doc(h: &Home, run_id: &str) -> RunDoc {
    RunDoc(h.get_json(run_id))
}

pub(crate) fn home_dir(h: &Home) -> PathBuf {
    h.path().join("home").canonicalize().unwrap()
}

/// The report lines of a probe, checked one by one: every path in `denied` is DENIED / NOWRITE, every one in
/// `allowed` READ / WROTE.
pub(crate) fn assert_report(report: &str, denied: &[&Path], allowed: &[&Path], write: bool) {
    let (yes, no) = if write { ("WROTE", "NOWRITE") } else { ("READ", "DENIED") };
    for p in denied {
        assert!(
            report.contains(&format!("{no} {}\n", p.display())) || report.ends_with(&format!("{no} {}", p.display())),
            "{} was not refused:\n{report}",
            p.display()
        );
    }
    for p in allowed {
        assert!(report.contains(&format!("{yes} {}", p.display())), "{} was refused:\n{report}", p.display());
    }
}

#[test]
fn sandbox_tasks_cannot_read_the_token_the_database_or_other_namespaces() {
    let h = Home::new();
    let (token_a, token_b) = (token(&h, "team-a"), token(&h, "team-b"));
    let token_file = h.path().join("admin.token");
    std::fs::write(&token_file, ADMIN).unwrap();
    let srv = Srv::start(&h, &[]);
    let home = home_dir(&h);

    // team-b has an artifact; team-a's tasks go after it, the database, the logs and the token.
    let (run_b, state) = submit(&h, &srv, &token_b, "team-b", &fixture("producer.yaml"), json!({}));
    assert_eq!(state, "SUCCEEDED");
    let theirs = PathBuf::from(run_doc(&h, &run_b).task_artifact("produce", "data")["uri"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(&theirs).unwrap().trim(), "team-secret");
    let db = home.join("secondrow.db");
    let logs = home.join("logs");
    let environ = PathBuf::from(format!("/proc/{}/environ", srv.pid()));
    // team-b's kfp-kubernetes volume and another task's secret file, in the engine's work folder.
    let (volume, secret_file) = (home.join("work/volumes/team-b/pvc-b/data"), home.join("work/task-files/task-x/key"));
    for f in [&volume, &secret_file] {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, "team-b only").unwrap();
    }
    let denied_reads = [
        token_file.as_path(),
        db.as_path(),
        theirs.as_path(),
        logs.as_path(),
        environ.as_path(),
        volume.as_path(),
        secret_file.as_path(),
    ];
    let denied_writes = [theirs.as_path(), home.as_path()];
    let reads = denied_reads.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ") + " /etc/passwd";
    let writes = denied_writes.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ");
    let params = json!({"reads": reads, "writes": writes});

    // A container task (a shell, as the server's direct child).
    let (run_a, state) = submit(&h, &srv, &token_a, "team-a", &fixture("probe.yaml"), params.clone());
    assert_eq!(state, "SUCCEEDED");
    let report = run_doc(&h, &run_a).task_output("probe", "report").as_str().unwrap().to_owned();
    assert!(!report.contains(ADMIN), "the admin token reached the task:\n{report}");
    assert!(!report.contains("SECONDROW_"), "the server's variables reached the task:\n{report}");
    assert_report(&report, &denied_reads, &[Path::new("/etc/passwd")], false);
    assert_report(&report, &denied_writes, &[], true);

    // A lightweight Python component, forked from the warm worker.
    let yaml = h.compile(&fixture("probe_py.py"));
    let (run_py, state) =
        submit(&h, &srv, &token_a, "team-a", &yaml, json!({"reads": reads, "writes": writes, "secret": ADMIN}));
    let doc = run_doc(&h, &run_py);
    assert_eq!(state, "SUCCEEDED", "{:#}", doc.0);
    let report = doc.task_output("probe", "Output").as_str().unwrap().to_owned() + "\n";
    assert!(report.contains("LEAKED False"), "{report}");
    assert_report(&report, &denied_reads, &[Path::new("/etc/passwd")], false);
    assert_report(&report, &denied_writes, &[], true);

    // The warm worker's socket (in the server's TMPDIR) does not take work from a task.
    let socket = std::fs::read_dir(h.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "sock"))
        .expect("the warm worker's socket");
    let params = json!({"reads": "", "writes": "", "secret": ADMIN, "socket_path": socket.display().to_string()});
    let (run_py, state) = submit(&h, &srv, &token_a, "team-a", &yaml, params);
    let report = run_doc(&h, &run_py).task_output("probe", "Output").as_str().unwrap().to_owned();
    assert_eq!(state, "SUCCEEDED", "{report}");
    assert!(report.contains("WORKER REFUSED"), "{report}");
}

#[test]
fn sandbox_a_root_server_runs_tasks_as_the_task_user() {
    if !is_root() {
        eprintln!("note: not root; --task-user needs a root server, skipped");
        return;
    }
    let h = Home::new();
    // The task user has to reach the home's folders (the test's temp folder is private to its creator).
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(h.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let srv = Srv::start(&h, &["--task-user", "65534:65534"]);
    let db = home_dir(&h).join("secondrow.db");
    let params = json!({"reads": db.display().to_string(), "writes": ""});
    let (run, state) = submit(&h, &srv, ADMIN, "", &fixture("probe.yaml"), params);
    let doc = run_doc(&h, &run);
    assert_eq!(state, "SUCCEEDED", "{:#}", doc.0);
    let report = doc.task_output("probe", "report").as_str().unwrap().to_owned();
    assert!(report.contains("--- uid 65534\n"), "{report}");
    assert_report(&report, &[db.as_path()], &[], false);
}

pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")))
}

#[test]
fn sandbox_the_admin_token_is_never_taken_from_the_command_line() {
    let h = Home::new();
    let out = h.output(&["server", "--port", "0", "--auth-token", ADMIN]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--auth-token-file"));
    let file = h.path().join("short.token");
    std::fs::write(&file, "short\n").unwrap();
    let out = h.output(&["server", "--port", "0", "--auth-token-file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sandbox_imports_and_reported_outputs_stay_in_the_namespace() {
    let h = Home::new();
    let (token_a, token_b) = (token(&h, "team-a"), token(&h, "team-b"));
    let srv = Srv::start(&h, &[]);
    let (run_b, _) = submit(&h, &srv, &token_b, "team-b", &fixture("producer.yaml"), json!({}));
    let theirs = run_doc(&h, &run_b).task_artifact("produce", "data")["uri"].as_str().unwrap().to_owned();
    let (run_a, _) = submit(&h, &srv, &token_a, "team-a", &fixture("producer.yaml"), json!({}));
    let ours = run_doc(&h, &run_a).task_artifact("produce", "data")["uri"].as_str().unwrap().to_owned();

    // Importing team-b's file is refused before anything is written: no artifact, the reader never runs.
    let (run, state) = submit(&h, &srv, &token_a, "team-a", &fixture("import.yaml"), json!({"src": theirs}));
    assert_eq!(state, "FAILED");
    let doc = run_doc(&h, &run);
    assert_eq!(doc.task_state("importer"), "FAILED");
    let error = doc.task("importer")["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("outside this namespace"), "{error}");
    assert!(doc.task("importer")["outputs"]["artifacts"].as_object().is_none_or(|a| a.is_empty()), "{:#}", doc.0);
    assert!(doc.tasks_under("read").iter().all(|t| t["state"] != "SUCCEEDED"));
    let arts = h.output(&["artifacts", "list", &run, "--json"]);
    assert!(String::from_utf8_lossy(&arts.stdout).trim_matches(|c| "[] \n".contains(c)).is_empty(), "{arts:?}");
    // `..` does not get around it, nor does a path outside the artifact root.
    let sneaky = format!("{}/../../{run_b}/produce/data", Path::new(&ours).parent().unwrap().display());
    for src in [sneaky.as_str(), "/etc/passwd"] {
        let (_, state) = submit(&h, &srv, &token_a, "team-a", &fixture("import.yaml"), json!({"src": src}));
        assert_eq!(state, "FAILED", "{src}");
    }

    // Its own namespace's artifact imports and is readable by the downstream task.
    let (run, state) = submit(&h, &srv, &token_a, "team-a", &fixture("import.yaml"), json!({"src": ours}));
    assert_eq!(state, "SUCCEEDED");
    assert_eq!(run_doc(&h, &run).task_output("read", "content").as_str().unwrap().trim(), "team-secret");

    // A task cannot re-point its output artifact at team-b's file either.
    let (run, state) = submit(&h, &srv, &token_a, "team-a", &fixture("repoint.yaml"), json!({"target": theirs}));
    assert_eq!(state, "FAILED");
    let error = run_doc(&h, &run).task("repoint")["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("output artifact `data`") && error.contains("outside this namespace"), "{error}");
}

/// A namespace's own files under the artifact root (`_namespaces/ns-NAME/`, where monitor rules write their
/// logged windows) import into that namespace's runs only.
#[test]
fn sandbox_a_namespaces_own_files_import_into_its_runs_only() {
    let h = Home::new();
    let (token_a, token_b) = (token(&h, "team-a"), token(&h, "team-b"));
    let srv = Srv::start(&h, &[]);
    let dir = home_dir(&h).join("artifacts").join("_namespaces").join("ns-team-b").join("monitor-windows");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("window.csv");
    std::fs::write(&file, "team-b-window").unwrap();
    let src = json!({"src": file.display().to_string()});
    let (run, state) = submit(&h, &srv, &token_a, "team-a", &fixture("import.yaml"), src.clone());
    assert_eq!(state, "FAILED");
    let error = run_doc(&h, &run).task("importer")["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("outside this namespace"), "{error}");
    let (run, state) = submit(&h, &srv, &token_b, "team-b", &fixture("import.yaml"), src);
    assert_eq!(state, "SUCCEEDED");
    assert_eq!(run_doc(&h, &run).task_output("read", "content").as_str().unwrap().trim(), "team-b-window");
}

#[test]
fn sandbox_the_cache_is_per_namespace() {
    let h = Home::new();
    let (token_a, token_b) = (token(&h, "team-a"), token(&h, "team-b"));
    let srv = Srv::start(&h, &[]);
    let spec = fixture("producer.yaml");
    let (run, _) = submit(&h, &srv, &token_b, "team-b", &spec, json!({}));
    assert_eq!(run_doc(&h, &run).task_state("produce"), "SUCCEEDED");
    // team-b's entry is not team-a's: team-a runs the task (and seeds its own entry) …
    let (run, _) = submit(&h, &srv, &token_a, "team-a", &spec, json!({}));
    assert_eq!(run_doc(&h, &run).task_state("produce"), "SUCCEEDED");
    // … which its next run reuses, as team-b's does its own.
    for (t, ns) in [(&token_a, "team-a"), (&token_b, "team-b")] {
        let (run, _) = submit(&h, &srv, t, ns, &spec, json!({}));
        assert_eq!(run_doc(&h, &run).task_state("produce"), "CACHED", "{ns}");
    }
}

#[test]
fn sandbox_names_from_a_spec_never_become_paths() {
    let h = Home::new();
    let base = std::fs::read_to_string(fixture("producer.yaml")).unwrap();
    let cases = [
        ("task key", base.replace("      produce:\n", "      ../../escape:\n")),
        ("task key", base.replace("      produce:\n", "      /tmp/escape:\n")),
        (
            "output artifact name",
            base.replace("        data:\n", "        ../../../escape:\n").replace("['data']", "['../../../escape']"),
        ),
        ("component name", base.replace("comp-produce", "../comp-produce")),
    ];
    for (what, yaml) in cases {
        let file = h.path().join("hostile.yaml");
        std::fs::write(&file, &yaml).unwrap();
        let out = h.output(&["validate", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(stderr.contains(what) && stderr.contains("names become file names"), "{what}: {stderr}");
        let out = h.output(&["run", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(!h.path().join("escape").exists() && !Path::new("/tmp/escape").exists());
}

#[test]
fn sandbox_restart_after_sigkill_leaves_no_twin() {
    let h = Home::new();
    let mut srv = Srv::start(&h, &[]);
    let out = kfp_script(
        &h,
        "sandbox.py",
        &[&srv.url, ADMIN, "", fixture("sleeper.yaml").to_str().unwrap(), "{}", "--no-wait"],
    );
    let run = last_json(&out)["run_id"].as_str().unwrap().to_owned();
    let task_dir = home_dir(&h).join("artifacts").join(&run).join("sleeper");
    let pid: i32 = wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(task_dir.join("first.pid")).ok().and_then(|s| s.trim().parse().ok())
    });
    let alive = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
    // A crash: the server dies, its task's process group lives on.
    let _ = srv.child.kill();
    let _ = srv.child.wait();
    assert!(alive(pid), "the task died with the server; nothing to recover");

    let _srv = Srv::start(&h, &[]);
    wait_for(Duration::from_secs(30), || task_dir.join("again").exists().then_some(()));
    assert!(!task_dir.join("twin").exists(), "the task ran again while its first process was still running");
    assert!(!alive(pid), "the previous server's task process is still running");
    let state = wait_for(Duration::from_secs(30), || {
        let doc = h.get_json(&run);
        let s = doc["run"]["state"].as_str().unwrap_or("").to_owned();
        (s == "SUCCEEDED" || s == "FAILED").then_some(s)
    });
    assert_eq!(state, "SUCCEEDED");
}

#[test]
fn sandbox_packages_to_install_run_in_the_sandbox() {
    let h = Home::new();
    h.compile_all(&fixtures_dir().join("warm.py"));
    let srv = Srv::start(&h, &[]);
    let (run, state) = submit(&h, &srv, ADMIN, "", &h.path().join("packages.yaml"), json!({}));
    let doc = run_doc(&h, &run);
    assert_eq!(state, "SUCCEEDED", "{:#}", doc.0);
    assert_eq!(doc.task_output("colored", "Output"), "termcolor:a");
    assert_eq!(doc.task_output("colored-2", "Output"), "termcolor:b");
}
