//! A real Kubernetes API server on loopback for the Kubernetes executor tests: etcd and kube-apiserver
//! (token auth, RBAC, a service-account key pair) on free ports, the Node `fake-node`, a kubeconfig, and
//! the repository's test kubelet (`testdata/k8s/test_kubelet.py`), which runs the Pods bound to that node
//! as local processes and serves their logs.
//!
//! The kube-apiserver binary comes from `SECONDROW_TEST_KUBE_APISERVER` (scripts/test builds it once with
//! `scripts/kube-apiserver`); without it [`Cluster::start`] prints a note and the tests pass without
//! running, like the PostgreSQL variants.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{repo_root, wait_for};

pub const APISERVER_VAR: &str = "SECONDROW_TEST_KUBE_APISERVER";
pub const NODE: &str = "fake-node";
pub const ADMIN_TOKEN: &str = "admin-token-for-the-tests-0123456789";
/// A token that authenticates but has no rights (RBAC forbids it everything but discovery).
pub const WEAK_TOKEN: &str = "weak-token-without-any-rights-0123";

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub kubeconfig: PathBuf,
    etcd: Child,
    apiserver: Child,
    kubelet: Option<Child>,
    /// The API server's binary, etcd's client port and its own port (to start it again).
    restart: (PathBuf, u16, u16),
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(dir.join(format!("{name}.log"))).unwrap()
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// kube-apiserver on `port` with etcd on `client`, its certificates and keys under `d`.
fn spawn_apiserver(bin: &Path, d: &Path, client: u16, port: u16, log: &str) -> Child {
    Command::new(bin)
        .arg(format!("--etcd-servers=http://127.0.0.1:{client}"))
        .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--insecure-port=0"])
        .arg(format!("--secure-port={port}"))
        .arg(format!("--cert-dir={}", d.join("certs").display()))
        .arg(format!("--token-auth-file={}", d.join("tokens.csv").display()))
        .arg("--authorization-mode=RBAC")
        .arg(format!("--service-account-key-file={}", d.join("sa.pub").display()))
        .arg(format!("--service-account-signing-key-file={}", d.join("sa.key").display()))
        .arg("--service-account-issuer=https://kubernetes.default.svc")
        .arg("--service-cluster-ip-range=10.96.0.0/24")
        .arg("--disable-admission-plugins=ServiceAccount")
        .arg("--enable-priority-and-fairness=false")
        .arg("--kubelet-preferred-address-types=InternalIP")
        .stdout(Stdio::null())
        .stderr(log_file(d, log))
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()))
}

impl Cluster {
    fn wait_ready(&self) {
        wait_for(Duration::from_secs(90), || {
            let out = self.kubectl(&["get", "--raw", "/readyz"]);
            out.status.success().then_some(())
        });
    }

    /// Kills the API server process (etcd and the kubelet stay).
    pub fn stop_apiserver(&mut self) {
        let _ = self.apiserver.kill();
        let _ = self.apiserver.wait();
    }

    /// Starts the API server again on the same port and etcd, and waits until it is ready.
    pub fn start_apiserver(&mut self) {
        let (bin, client, port) = self.restart.clone();
        self.apiserver = spawn_apiserver(&bin, self.dir.path(), client, port, "apiserver-again");
        self.wait_ready();
    }

    /// The API server, etcd and the test kubelet, ready; `None` (with a note) without the binary.
    pub fn start() -> Option<Cluster> {
        let Some(apiserver_bin) = std::env::var_os(APISERVER_VAR).filter(|v| !v.is_empty()).map(PathBuf::from) else {
            eprintln!("note: {APISERVER_VAR} is unset; the Kubernetes test is skipped (scripts/test runs it)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("tokens.csv"),
            format!("{ADMIN_TOKEN},admin,admin,system:masters\n{WEAK_TOKEN},weak,weak\n"),
        )
        .unwrap();
        run_ok(Command::new("openssl").args(["genrsa", "-out"]).arg(d.join("sa.key")).arg("2048"));
        run_ok(
            Command::new("openssl")
                .args(["rsa", "-pubout", "-in"])
                .arg(d.join("sa.key"))
                .arg("-out")
                .arg(d.join("sa.pub")),
        );
        run_ok(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=fake-node"])
                .arg("-keyout")
                .arg(d.join("kubelet.key"))
                .arg("-out")
                .arg(d.join("kubelet.crt")),
        );

        let (client, peer) = (free_port(), free_port());
        let etcd = Command::new("etcd")
            .arg("--data-dir")
            .arg(d.join("etcd"))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer}"))
            .stdout(Stdio::null())
            .stderr(log_file(d, "etcd"))
            .spawn()
            .expect("starting etcd (Debian etcd-server; scripts/kube-apiserver installs it)");
        let port = free_port();
        let apiserver = spawn_apiserver(&apiserver_bin, d, client, port, "apiserver");
        let url = format!("https://127.0.0.1:{port}");
        let kubeconfig = d.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text(&url, ADMIN_TOKEN)).unwrap();
        let mut cluster =
            Cluster { dir, url, kubeconfig, etcd, apiserver, kubelet: None, restart: (apiserver_bin, client, port) };
        cluster.wait_ready();
        cluster.start_kubelet();
        wait_for(Duration::from_secs(30), || {
            let node = cluster.get_json(&format!("/api/v1/nodes/{NODE}"))?;
            node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64().map(|_| ())
        });
        Some(cluster)
    }

    fn start_kubelet(&mut self) {
        let d = self.dir.path();
        let python_bin = crate::support::python().parent().unwrap().to_path_buf();
        // The init container's `secondrow` (the launcher image's binary) is this build's.
        let secondrow_bin = Path::new(env!("CARGO_BIN_EXE_secondrow")).parent().unwrap().to_path_buf();
        let path = format!(
            "{}:{}:{}",
            python_bin.display(),
            secondrow_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("python3")
            .arg(repo_root().join("testdata/k8s/test_kubelet.py"))
            .args(["--server", &self.url, "--token", ADMIN_TOKEN, "--node", NODE])
            .arg("--port")
            .arg(free_port().to_string())
            .arg("--cert")
            .arg(d.join("kubelet.crt"))
            .arg("--key")
            .arg(d.join("kubelet.key"))
            .arg("--root")
            .arg(d.join("kubelet"))
            .env("PATH", path)
            .stdout(Stdio::null())
            .stderr(log_file(d, "kubelet"))
            .spawn()
            .unwrap();
        self.kubelet = Some(child);
    }

    /// A kubeconfig for another token (the RBAC tests).
    pub fn kubeconfig_for(&self, token: &str) -> PathBuf {
        let path = self.dir.path().join(format!("kubeconfig-{}", &token[..4]));
        std::fs::write(&path, kubeconfig_text(&self.url, token)).unwrap();
        path
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl").arg("--kubeconfig").arg(&self.kubeconfig).args(args).output().unwrap()
    }

    /// `GET path` as the admin; `None` on any error.
    pub fn get_json(&self, path: &str) -> Option<Value> {
        let out = self.kubectl(&["get", "--raw", path]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The Pods of the `default` namespace with these labels.
    pub fn pods(&self, selector: &str) -> Vec<Value> {
        let path = format!("/api/v1/namespaces/default/pods?labelSelector={}", url_escape(selector));
        self.get_json(&path).and_then(|v| v["items"].as_array().cloned()).unwrap_or_default()
    }

    /// What the cluster's processes wrote (for a failing assertion's message).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["apiserver", "kubelet"] {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            out.push_str(&format!("--- {name} (last lines) ---\n"));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn kubeconfig_text(url: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    \
         insecure-skip-tls-verify: true\nusers:\n- name: user\n  user:\n    token: {token}\ncontexts:\n- name: \
         test\n  context:\n    cluster: test\n    user: user\n    namespace: default\ncurrent-context: test\n"
    )
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let children = [self.kubelet.as_mut(), Some(&mut self.apiserver), Some(&mut self.etcd)];
        for c in children.into_iter().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
