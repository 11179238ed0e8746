//! `--target kfp://HOST:PORT`: the CLI submits the same IR to a Kubeflow Pipelines API server and follows
//! it with only standard KFP v2beta1 calls; `secondrow server` stands in for Kubeflow. The client runs from
//! a home of its own, so everything it shows came over the API. `kfps://` goes through a TLS-terminating
//! proxy (`testdata/tls/tls_proxy.py`) with a certificate from a test authority.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::api::Server;
use crate::support::*;

fn target_of(server: &Server) -> String {
    format!("kfp://{}", server.url.trim_start_matches("http://"))
}

fn kfp(client: &Home, target: &str, args: &[&str]) -> Output {
    client.cmd().arg("--target").arg(target).args(args).output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn kfp_target_runs_lists_and_gets_through_the_kfp_api() {
    let server_home = Home::new();
    let server = Server::start(&server_home, &[]);
    let target = target_of(&server);
    let client = Home::new();
    let yaml = client.compile_sample("artifacts");

    let out = kfp(&client, &target, &["run", yaml.to_str().unwrap(), "--json", "--name", "from-cli"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let run = stdout_json(&out);
    assert_eq!(run["state"], "SUCCEEDED", "{run}");
    assert_eq!(run["display_name"], "from-cli");
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    assert!(stderr.contains(&format!("run {run_id} (from-cli) submitted to {target}")), "{stderr}");
    // Task progress came from run_details.task_details.
    let tasks = run["run_details"]["task_details"].as_array().unwrap();
    assert!(!tasks.is_empty(), "{run}");
    assert!(stderr.contains("SUCCEEDED"), "{stderr}");

    // The server ran it: its own store has the run, succeeded.
    let local = server_home.output(&["runs", "get", &run_id, "--json"]);
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));
    assert_eq!(stdout_json(&local)["run"]["state"], "SUCCEEDED");

    // runs list and runs get against the target.
    let listed = stdout_json(&kfp(&client, &target, &["runs", "list", "--json"]));
    assert!(listed["runs"].as_array().unwrap().iter().any(|r| r["run_id"] == run_id.as_str()), "{listed}");
    let out = kfp(&client, &target, &["runs", "get", &run_id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(&run_id) && text.contains("SUCCEEDED"), "{text}");

    // A failing pipeline exits 1 with its state, as a local run does.
    let failing = client.compile_sample("failure");
    let out = kfp(&client, &target, &["run", failing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAILED"));
}

#[test]
fn kfp_target_bad_input_is_refused_before_anything_is_sent() {
    let client = Home::new();
    let yaml = client.compile_sample("params_types");
    // A malformed target.
    let out = kfp(&client, "http://127.0.0.1:1", &["runs", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected kfp://HOST[:PORT]"));
    // A bad parameter fails locally (exit 2) even with an unreachable target.
    let out = kfp(&client, "kfp://127.0.0.1:1", &["run", yaml.to_str().unwrap(), "-p", "nope=1"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    // An unreachable target is a clear error.
    let out = kfp(&client, "kfp://127.0.0.1:1", &["runs", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("cannot reach"), "{stderr}");
    // Commands the target does not support say so.
    let out = kfp(&client, "kfp://127.0.0.1:1", &["logs", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("supports `run`, `runs list` and `runs get`"));
}

/// A certificate authority and a server certificate for 127.0.0.1 it signed, made with `openssl`: (CA PEM,
/// server certificate PEM, server key PEM).
fn test_certificates(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    // Each command line is split at spaces (no argument holds one).
    let openssl = |line: &str| {
        let out = Command::new("openssl").args(line.split_whitespace()).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {line}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=SecondRow-test-CA");
    openssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1");
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext",
    );
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

/// The TLS proxy of `testdata/tls` in front of `upstream`; killed on drop.
struct TlsProxy {
    child: std::process::Child,
    port: u16,
}

impl TlsProxy {
    fn start(cert: &std::path::Path, key: &std::path::Path, upstream: &str) -> TlsProxy {
        let mut child = Command::new(python())
            .arg(repo_root().join("testdata/tls/tls_proxy.py"))
            .args([cert.as_os_str(), key.as_os_str()])
            .arg(upstream)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("tls proxy printed {line:?}"));
        TlsProxy { child, port }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn kfps_target_speaks_https_and_checks_the_certificate() {
    let server_home = Home::new();
    let server = Server::start(&server_home, &[]);
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certificates(certs.path());
    let proxy = TlsProxy::start(&cert, &key, &server.url);
    let target = format!("kfps://127.0.0.1:{}", proxy.port);
    let client = Home::new();
    let yaml = client.compile_sample("artifacts");

    // A certificate from an unknown authority is refused: nothing is submitted.
    let out = client.cmd().env_remove("SSL_CERT_FILE").args(["--target", &target, "runs", "list"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");

    // Trusting the authority (SSL_CERT_FILE, as for other TLS clients), the run goes through the proxy.
    let trusted = |args: &[&str]| {
        client.cmd().env("SSL_CERT_FILE", &ca).arg("--target").arg(&target).args(args).output().unwrap()
    };
    let out = trusted(&["run", yaml.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let run = stdout_json(&out);
    assert_eq!(run["state"], "SUCCEEDED", "{run}");
    let run_id = run["run_id"].as_str().unwrap();
    let local = server_home.output(&["runs", "get", run_id, "--json"]);
    assert_eq!(stdout_json(&local)["run"]["state"], "SUCCEEDED");
    let listed = stdout_json(&trusted(&["runs", "list", "--json"]));
    assert!(listed["runs"].as_array().unwrap().iter().any(|r| r["run_id"] == run_id), "{listed}");
    // `--server https://…` takes the same path.
    let out = client
        .cmd()
        .env("SSL_CERT_FILE", &ca)
        .args(["--server", &format!("https://127.0.0.1:{}", proxy.port), "runs", "get", run_id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
