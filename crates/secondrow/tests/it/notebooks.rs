//! Notebooks: a real JupyterLab (from `.venv-notebook`, passed with `--python` so nothing is installed per
//! test) run by `secondrow server`, reached through its proxy, running a cell over the Jupyter kernel
//! WebSocket protocol that submits a pipeline with `kfp.Client()`; namespaces, restart, culling, lifecycle.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::api::Server;
use crate::support::*;

/// The notebook test venv's Python (JupyterLab and the pinned kfp; made by `scripts/test`).
fn notebook_python() -> PathBuf {
    let p = repo_root().join(".venv-notebook/bin/python");
    assert!(p.exists(), "{} is missing: run ./scripts/test (it creates the notebook venv)", p.display());
    std::path::absolute(p).unwrap()
}

fn token(h: &Home, namespace: &str) -> String {
    let out = h.output(&["tokens", "create", "--namespace", namespace, "--name", "nb"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `secondrow notebook ARGS` against `server` with `token`.
fn notebook(h: &Home, server: &Server, token: &str, args: &[&str]) -> Output {
    h.cmd()
        .env("SECONDROW_SERVER", &server.url)
        .env("SECONDROW_TOKEN", token)
        .arg("notebook")
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn get(h: &Home, server: &Server, token: &str) -> Value {
    serde_json::from_str(&ok(notebook(h, server, token, &["get", "nb1", "--namespace", "ns-a"]))).unwrap()
}

fn wait_state(h: &Home, server: &Server, token: &str, state: &str) -> Value {
    wait_for(Duration::from_secs(120), || Some(get(h, server, token)).filter(|nb| nb["state"] == state))
}

/// The status of `GET path` on `addr` (`host:port`) with an optional bearer token.
fn http_status(addr: &str, path: &str, bearer: Option<&str>) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut head = String::new();
    s.read_to_string(&mut head).unwrap();
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status: {head}"))
}

/// Kills, at the end of a test (passed or not), every process whose command line names the test's folder:
/// the notebooks' Jupyter servers and kernels, which a SIGKILLed server leaves behind.
struct KillLeftovers(PathBuf);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        let needle = self.0.to_string_lossy().into_owned();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                let _ = Command::new("kill").arg("-9").arg(entry.file_name()).status();
            }
        }
    }
}

#[test]
fn notebook_cell_submits_a_pipeline_with_kfp_client_through_the_proxy_and_survives_a_restart() {
    let h = Home::new();
    let _leftovers = KillLeftovers(h.path().to_path_buf());
    let (token_a, token_b) = (token(&h, "ns-a"), token(&h, "ns-b"));
    let python = notebook_python();
    let mut server = Server::start(&h, &[]);
    let created = ok(notebook(
        &h,
        &server,
        &token_a,
        &["create", "nb1", "--namespace", "ns-a", "--python", python.to_str().unwrap()],
    ));
    assert!(created.contains("ns-a/nb1: Running at /notebook/ns-a/nb1/"), "{created}");
    let nb = get(&h, &server, &token_a);
    assert!(nb.get("secret").is_none(), "the notebook's secret is never sent: {nb}");
    let port = nb["port"].as_u64().unwrap();

    // Bad input: a name clash, another namespace, a package that does not exist; nothing half-created.
    let clash = notebook(
        &h,
        &server,
        &token_a,
        &["create", "nb1", "--namespace", "ns-a", "--python", python.to_str().unwrap()],
    );
    assert_eq!(clash.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&clash.stderr).contains("already exists"), "{clash:?}");
    let other = notebook(
        &h,
        &server,
        &token_a,
        &["create", "nb2", "--namespace", "ns-b", "--python", python.to_str().unwrap()],
    );
    assert_eq!(other.status.code(), Some(2), "{other:?}");
    let bad = notebook(&h, &server, &token_a, &["create", "nb3", "--packages", "secondrow-no-such-package-0xdead"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("could not be made"), "{bad:?}");
    let listed = ok(notebook(&h, &server, &token_a, &["list", "--json"]));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let root = h.path().join("home/notebooks");
    assert!(!root.join("ns-a/nb3").exists() && !root.join("ns-b/nb2").exists());

    // The proxy: the owner's token gets in; another namespace's token is a 403, no token a 401; the Jupyter
    // port itself wants the secret only the proxy knows.
    let api = server.url.trim_start_matches("http://").to_owned();
    assert_eq!(http_status(&api, "/notebook/ns-a/nb1/api/status", Some(&token_a)), 200);
    assert_eq!(http_status(&api, "/notebook/ns-a/nb1/api/status", Some(&token_b)), 403);
    assert_eq!(http_status(&api, "/notebook/ns-a/nb1/api/status", None), 401);
    assert_eq!(http_status(&api, "/kfp-notebook/ns-a/nb1/not-the-secret/apis/v2beta1/runs", None), 401);
    assert_eq!(http_status(&format!("127.0.0.1:{port}"), "/notebook/ns-a/nb1/api/status", Some(&token_a)), 403);

    // A cell over the kernel WebSocket, through the proxy: kfp.Client() with no arguments submits a run,
    // which lands in the owner's namespace and succeeds.
    let out = Command::new(&python)
        .arg(fixtures_dir().join("jupyter_execute.py"))
        .arg(format!("{}/notebook/ns-a/nb1", server.url))
        .arg(&token_a)
        .arg(fixtures_dir().join("notebook_cell.py"))
        .output()
        .unwrap();
    let cell: Value = serde_json::from_str(ok(out).trim()).unwrap();
    assert_eq!(cell["status"], "ok", "{cell}");
    let stdout = cell["stdout"].as_str().unwrap();
    let line =
        |key: &str| stdout.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("{key}: {stdout}"));
    let run_id = line("RUN_ID=").to_owned();
    assert_eq!(line("DB="), "refused", "the notebook reads the server's database");
    assert!(line("INFERENCE=").starts_with("http://127.0.0.1:"), "{stdout}");
    let run: Value = wait_for(Duration::from_secs(120), || {
        let out = h.cmd().args(["runs", "get", &run_id, "--json"]).output().unwrap();
        let run: Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(run["run"].clone()).filter(|r| r["state"] == "SUCCEEDED" || r["state"] == "FAILED")
    });
    assert_eq!(run["state"], "SUCCEEDED", "{run}");
    assert_eq!(run["namespace"], "ns-a", "{run}");
    let workspace = root.join("ns-a/nb1/workspace");
    assert!(workspace.join("kept.txt").is_file());

    // Kill the server (a crash): the restarted one brings the notebook back (a new process, the old group
    // gone), workspace intact; with culling on, the idle notebook is then culled.
    let old_pid = nb["pid"].as_u64().unwrap();
    let _ = Command::new("kill").args(["-9", &server.pid().to_string()]).status();
    drop(server);
    server = Server::start(&h, &["--notebook-cull-idle", "6", "--notebook-cull-check", "1"]);
    let nb = wait_state(&h, &server, &token_a, "Running");
    assert_ne!(nb["pid"].as_u64().unwrap(), old_pid);
    assert!(!PathBuf::from(format!("/proc/{old_pid}")).exists(), "the old notebook process is gone");
    let api = server.url.trim_start_matches("http://").to_owned();
    assert_eq!(http_status(&api, "/notebook/ns-a/nb1/api/status", Some(&token_a)), 200);
    assert!(workspace.join("kept.txt").is_file());
    let culled = wait_state(&h, &server, &token_a, "Culled");
    assert!(culled["reason"].as_str().unwrap().contains("no kernel activity"), "{culled}");
    assert_eq!(http_status(&api, "/notebook/ns-a/nb1/api/status", Some(&token_a)), 400);

    // Start; a Jupyter process that dies makes the notebook Failed with the reason and its log's tail; it
    // starts again; stop, logs, delete keeping the workspace.
    assert!(ok(notebook(&h, &server, &token_a, &["start", "nb1"])).contains("Running"));
    let pid = get(&h, &server, &token_a)["pid"].as_u64().unwrap();
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    let failed = wait_state(&h, &server, &token_a, "Failed");
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.contains("killed by signal 9") && reason.contains("log:"), "{reason}");
    assert!(ok(notebook(&h, &server, &token_a, &["start", "nb1"])).contains("Running"));
    assert!(ok(notebook(&h, &server, &token_a, &["stop", "nb1"])).contains("Stopped"));
    assert!(ok(notebook(&h, &server, &token_a, &["logs", "nb1"])).contains("Jupyter Server"));
    assert_eq!(notebook(&h, &server, &token_b, &["stop", "nb1", "--namespace", "ns-a"]).status.code(), Some(2));
    ok(notebook(&h, &server, &token_a, &["delete", "nb1", "--keep-workspace"]));
    assert!(workspace.join("kept.txt").is_file());
    assert!(!root.join("ns-a/nb1/home").exists());
    assert_eq!(ok(notebook(&h, &server, &token_a, &["list", "--json"])).trim(), "[]");
}
