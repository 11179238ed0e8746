//! The CLI against a running server (`--server URL`): the same output and exit codes as local mode, artifact
//! and log downloads that cannot leave their roots, and archive uploads through the real kfp.Client.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use crate::support::*;

/// `secondrow server` on a free loopback port over `home`; killed on drop.
struct RemoteServer {
    process: Child,
    base: String,
}

impl RemoteServer {
    fn spawn(home: &Home) -> RemoteServer {
        let log = std::fs::File::create(home.path().join("remote-server.log")).unwrap();
        let mut process = home
            .cmd()
            .args(["server", "--host", "127.0.0.1", "--port", "0"])
            // The escape tests' tasks point outputs at the test's own files (the sandbox would refuse that
            // before the download checks are reached; `sandbox.rs` tests that refusal).
            .arg("--import-root")
            .arg(home.path())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(process.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let base =
            first.split(' ').find(|w| w.starts_with("http://")).expect("server URL on its first line").to_owned();
        RemoteServer { process, base }
    }
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `secondrow --server URL ARGS…` from a home of its own (nothing local is read).
fn remote(client_home: &Home, server: &RemoteServer, args: &[&str]) -> Output {
    client_home.cmd().arg("--server").arg(&server.base).args(args).output().unwrap()
}

fn same_output(local: &Output, remote: &Output, what: &str) {
    assert_eq!(
        local.status.code(),
        remote.status.code(),
        "{what}: exit codes differ\nlocal: {:?}\nremote: {:?}",
        text(local),
        text(remote)
    );
    assert_eq!(text(local).0, text(remote).0, "{what}: stdout differs");
}

#[test]
fn remote_cli_matches_local_for_run_list_get_logs_artifacts() {
    let h = Home::new();
    let client_home = Home::new();
    let yaml = h.compile_sample("artifacts");
    let server = RemoteServer::spawn(&h);

    let out = remote(
        &client_home,
        &server,
        &["run", yaml.to_str().unwrap(), "-p", "n=4", "--json", "--experiment", "remote-exp"],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let run_id = doc["run"]["id"].as_str().unwrap().to_owned();
    assert_eq!(doc["run"]["state"], "SUCCEEDED");
    assert_eq!(doc["run"]["outputs"]["parameters"]["total"], 10);
    assert!(stderr.contains(&format!("run {run_id} (")), "{stderr}");
    assert!(stderr.contains("ok        train"), "progress lines from polling: {stderr}");
    // The client's own home holds nothing: the run lives on the server.
    assert!(!client_home.path().join("home/secondrow.db").exists());

    // The same run, read by the local commands on the server's home and through the server.
    let short = &run_id[..8];
    for args in [
        vec!["runs", "list"],
        vec!["runs", "list", "--json"],
        vec!["runs", "get", &run_id],
        vec!["runs", "get", short, "--json"],
        vec!["logs", &run_id],
        vec!["logs", short, "train"],
        vec!["artifacts", &run_id],
        vec!["artifacts", &run_id, "--json"],
        vec!["runs", "get", "no-such-run"],
        vec!["logs", &run_id, "no-such-task"],
    ] {
        let local = h.output(&args);
        let over_http = remote(&client_home, &server, &args);
        same_output(&local, &over_http, &args.join(" "));
        if args[1] == "no-such-run" || args.get(2) == Some(&"no-such-task") {
            assert_eq!(over_http.status.code(), Some(2));
            assert_eq!(text(&local).1, text(&over_http).1, "the error message is local mode's");
        }
    }
    let logs = text(&h.output(&["logs", &run_id, "train"])).0;
    assert!(logs.contains("==> train [stdout] <==") && logs.contains("Wrote executor output file"), "{logs}");

    let (local_dir, remote_dir) = (h.path().join("dl-local"), h.path().join("dl-remote"));
    let local = h.output(&["artifacts", &run_id, "--download", local_dir.to_str().unwrap()]);
    let over_http = remote(&client_home, &server, &["artifacts", &run_id, "--download", remote_dir.to_str().unwrap()]);
    assert!(local.status.success() && over_http.status.success(), "{:?} {:?}", text(&local), text(&over_http));
    let files = file_tree(&local_dir);
    assert!(files.iter().any(|(p, _)| p.ends_with("train/model")), "{files:?}");
    assert_eq!(files, file_tree(&remote_dir), "downloaded artifacts differ");
    assert_eq!(
        text(&local).1.replace(local_dir.to_str().unwrap(), "DIR"),
        text(&over_http).1.replace(remote_dir.to_str().unwrap(), "DIR")
    );
}

#[test]
fn remote_run_exit_codes_and_nothing_stored_for_bad_input() {
    let h = Home::new();
    let client_home = Home::new();
    let server = RemoteServer::spawn(&h);
    let work = client_home.path();
    let source = work.join("escapes.py");
    std::fs::copy(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/kfp_client/escapes.py"), &source).unwrap();
    let compiled = Command::new(python()).arg(&source).current_dir(work).output().unwrap();
    assert!(compiled.status.success(), "{:?}", text(&compiled));
    let fails = work.join("fails.yaml");

    // A failing task: exit 1, the local summary with a remote logs hint.
    let out = remote(&client_home, &server, &["run", fails.to_str().unwrap(), "-p", "msg=hello"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("FAILED") && stderr.contains(&format!("--server {} logs", server.base)), "{stderr}");
    let runs = h.runs_json();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let logs = remote(&client_home, &server, &["logs", runs[0]["id"].as_str().unwrap()]);
    assert!(text(&logs).0.contains("about to fail: hello"), "{:?}", text(&logs));

    // Invalid pipelines and parameters: exit 2 with the reason, nothing sent or stored.
    let broken = work.join("broken.yaml");
    std::fs::write(&broken, std::fs::read_to_string(&fails).unwrap().replace("name: comp-boom", "name: comp-missing"))
        .unwrap();
    for args in [
        vec!["run", broken.to_str().unwrap()],
        vec!["run", fails.to_str().unwrap(), "-p", "nope=1"],
        vec!["run", work.join("absent.yaml").to_str().unwrap()],
    ] {
        let out = remote(&client_home, &server, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {:?}", text(&out));
        assert!(!text(&out).1.is_empty());
    }
    assert_eq!(h.runs_json().as_array().unwrap().len(), 1, "an invalid run was stored");

    // A 4xx from the server is exit 2 with its message; no server at all is exit 1.
    let out = remote(&client_home, &server, &["runs", "get", "00000000-dead"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("not found"), "{:?}", text(&out));
    let out = client_home.cmd().args(["--server", "http://127.0.0.1:9", "runs", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let out = client_home.cmd().args(["--server", "https://127.0.0.1:9", "runs", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(text(&out).1.contains("cannot reach https://127.0.0.1:9"), "{:?}", text(&out));
    let out = client_home.cmd().args(["--server", "ftp://127.0.0.1:9", "runs", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("unsupported scheme `ftp`"), "{:?}", text(&out));
}

/// A raw HTTP/1.1 GET of an exact path (no client-side `..` normalization): status and whole response.
fn raw_get(base: &str, path: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, response)
}

#[test]
fn downloads_never_leave_the_artifact_or_logs_root() {
    let h = Home::new();
    let server = RemoteServer::spawn(&h);
    let secret = h.path().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-CONTENT").unwrap();
    let source = h.path().join("escapes.py");
    std::fs::copy(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/kfp_client/escapes.py"), &source).unwrap();
    let compiled = Command::new(python()).arg(&source).current_dir(h.path()).output().unwrap();
    assert!(compiled.status.success(), "{:?}", text(&compiled));

    let client_home = Home::new();
    let yaml = h.path().join("escapes.yaml");
    let out = remote(
        &client_home,
        &server,
        &["run", yaml.to_str().unwrap(), "-p", &format!("secret={}", secret.display()), "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_id = doc["run"]["id"].as_str().unwrap().to_owned();

    let listed = raw_get(&server.base, &format!("/apis/v2beta1/runs/{run_id}/artifacts"));
    assert_eq!(listed.0, 200, "{}", listed.1);
    let body: Value = serde_json::from_str(listed.1.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let id_of = |task: &str| {
        body["artifacts"].as_array().unwrap().iter().find(|a| a["producer"]["task_name"] == task).unwrap()
            ["artifact_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let reassigned =
        body["artifacts"].as_array().unwrap().iter().find(|a| a["producer"]["task_name"] == "reassign").unwrap();
    assert_eq!(reassigned["uri"], secret.to_str().unwrap(), "the engine recorded the reassigned uri");

    // Outside the root by uri, by a symlink inside a folder, by a symlinked file: 403, never the bytes.
    for task in ["reassign", "link-in-dir", "link-file"] {
        let (status, response) = raw_get(&server.base, &format!("/apis/v2beta1/artifacts/{}:download", id_of(task)));
        assert_eq!(status, 403, "{task}: {response}");
        assert!(
            response.contains("\"code\":7") && response.contains("outside the artifact root"),
            "{task}: {response}"
        );
        assert!(!response.contains("TOP-SECRET"), "{task}: {response}");
        let (status, response) =
            raw_get(&server.base, &format!("/apis/v2beta1/artifacts/{}?view=DOWNLOAD", id_of(task)));
        assert_eq!(status, 200, "{task}: {response}");
        if task == "link-in-dir" {
            // The folder itself is inside; the size leaves the outside file out ("fine" is 4 bytes).
            assert!(response.contains("\"artifact_size\":\"4\""), "{task}: {response}");
        } else {
            assert!(
                !response.contains("download_url") && response.contains("outside the artifact root"),
                "{task}: {response}"
            );
        }
    }
    let dest = h.path().join("dl");
    let out = remote(&client_home, &server, &["artifacts", &run_id[..8], "--download", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "a refused artifact fails the download: {:?}", text(&out));
    assert!(text(&out).1.contains("outside the artifact root"), "{:?}", text(&out));
    // A folder artifact arrives as .tar.gz (`--no-cache`: a cache hit on `tree` would record no new artifact) and unpacks to the files a local download writes.
    let folders = h.path().join("folders.yaml");
    let out = remote(&client_home, &server, &["run", folders.to_str().unwrap(), "--json", "--no-cache"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let folders_run = serde_json::from_slice::<Value>(&out.stdout).unwrap()["run"]["id"].as_str().unwrap().to_owned();
    let (local_dir, remote_dir) = (h.path().join("dl-local"), h.path().join("dl-remote"));
    let local = h.output(&["artifacts", &folders_run, "--download", local_dir.to_str().unwrap()]);
    let out = remote(&client_home, &server, &["artifacts", &folders_run, "--download", remote_dir.to_str().unwrap()]);
    assert!(local.status.success() && out.status.success(), "{:?} {:?}", text(&local), text(&out));
    assert!(remote_dir.exists() && local_dir.exists(), "{:?} {:?}", text(&local), text(&out));
    let files = file_tree(&remote_dir);
    assert!(files.iter().any(|(p, b)| p.ends_with("tree/out/sub/b.bin") && b.len() == 256_000), "{files:?}");
    assert_eq!(file_tree(&local_dir), files);
    let tree_id = id_of("tree");
    let (status, response) = raw_get(&server.base, &format!("/apis/v2beta1/artifacts/{tree_id}?view=DOWNLOAD"));
    assert_eq!(status, 200);
    assert!(response.contains(&format!("/apis/v2beta1/artifacts/{tree_id}:download")), "{response}");
    assert!(response.contains("\"artifact_size\":\"256001\""), "{response}");

    // `..`, slashes and absolute paths in ids and task names, plain and URL-encoded: 400/404, never a file.
    let run = &run_id;
    for (path, want) in [
        ("/apis/v2beta1/artifacts/..%2F..%2Fsecret.txt:download".to_string(), 400),
        ("/apis/v2beta1/artifacts/..:download".to_string(), 400),
        ("/apis/v2beta1/artifacts/%2E%2E:download".to_string(), 400),
        ("/apis/v2beta1/artifacts/../../secret.txt:download".to_string(), 404),
        ("/apis/v2beta1/runs/..%2F..%2F/logs".to_string(), 400),
        ("/apis/v2beta1/runs/../logs".to_string(), 400),
        (format!("/apis/v2beta1/runs/{run}/logs?task=../../../secret.txt"), 400),
        (format!("/apis/v2beta1/runs/{run}/logs?task=..%2F..%2Fsecret.txt"), 400),
        (format!("/apis/v2beta1/runs/{run}/logs?task=%2Fetc%2Fpasswd"), 400),
        (format!("/apis/v2beta1/runs/{run}/logs?task=tree%2F..%2F..%2F.."), 400),
        (format!("/apis/v2beta1/runs/{run}/logs?task=nope"), 404),
        (format!("/apis/v2beta1/runs/{run}/artifacts/../../../secret.txt"), 404),
        ("/apis/v2beta1/runs/%2Fetc%2Fpasswd/artifacts".to_string(), 400),
    ] {
        let (status, response) = raw_get(&server.base, &path);
        assert_eq!(status, want, "{path}: {response}");
        assert!(!response.contains("TOP-SECRET") && !response.contains("root:"), "{path}: {response}");
    }
    let (status, response) = raw_get(&server.base, &format!("/apis/v2beta1/runs/{run}/logs?task=tree"));
    assert_eq!(status, 200);
    assert!(response.contains("tree written"), "{response}");
}

#[test]
fn archive_uploads_and_json_pipeline_creation_with_kfp_client() {
    let h = Home::new();
    let yaml = h.compile_sample("params_types");
    let server = RemoteServer::spawn(&h);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/kfp_client/uploads.py");
    let out = Command::new(python())
        .arg(script)
        .args([&server.base, yaml.to_str().unwrap(), h.path().to_str().unwrap()])
        .current_dir(h.path())
        .env("HOME", h.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "uploads.py failed:\n{}\n{}", text(&out).0, text(&out).1);
}
