//! Test support: the serving venv, the models made once per test binary with the real exporters, and
//! servers bound to 127.0.0.1:0 in this process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use secondrow_serve::{HttpOptions, Repository};
use tokio::sync::oneshot;

/// Repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The serving protocol checks kept in the repository (`testdata/serving`).
pub fn serving_testdata() -> PathBuf {
    let dir = repo_root().join("testdata/serving");
    assert!(dir.join("client_check.py").is_file(), "{} is missing from the repository", dir.display());
    dir
}

/// Python of the serving venv; fails with the way to make it.
pub fn venv_python() -> PathBuf {
    let python = repo_root().join(".venv-serve/bin/python");
    assert!(
        python.is_file(),
        "the serving venv is missing ({}): run scripts/test, which creates .venv-serve from scripts/requirements-serve.txt",
        python.display()
    );
    python
}

/// The folder of models written by tests/fixtures/make_models.py (made once per test binary run).
pub fn models() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("serve-models-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make_models.py");
        let out = Command::new(venv_python())
            .arg(&script)
            .arg(&dir)
            .args(["--forest-trees", "10"])
            .output()
            .expect("running make_models.py");
        assert!(out.status.success(), "make_models.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
        // A SecondRow model trained by secondrow-ml's own component on the same data.
        let builtin = dir.join("builtin_lr.json");
        let argv: Vec<String> = [
            "train_logistic_regression",
            "--train-data",
            dir.join("train.csv").to_str().unwrap(),
            "--label",
            "label",
            "--model",
            builtin.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        secondrow_ml::run_component(&argv).expect("training the built-in model");
        dir
    })
}

pub fn model(file: &str) -> PathBuf {
    models().join(file)
}

/// A running server; dropping it stops the server.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn start(repo: Arc<Repository>, options: HttpOptions) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(secondrow_serve::serve(listener, repo, options, async move {
        let _ = stopped.await;
    }));
    Server { addr, stop: Some(stop) }
}

/// A repository with the given (name, version, file) models; each load makes that version the default.
pub async fn repo_with(models: &[(&str, &str, &str)], options: secondrow_serve::ModelOptions) -> Arc<Repository> {
    let repo = Arc::new(Repository::new(options));
    for (name, version, file) in models {
        let (r, name, version, path) = (repo.clone(), name.to_string(), version.to_string(), model(file));
        tokio::task::spawn_blocking(move || r.load(&name, Some(&version), &path, true))
            .await
            .unwrap()
            .expect("loading a test model");
    }
    repo
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap()
}

/// One FP32 [rows, 20] V2 JSON request body.
pub fn v2_body(rows: usize) -> serde_json::Value {
    let data: Vec<f32> = (0..rows * 20).map(|i| (i % 7) as f32 * 0.3 - 1.0).collect();
    serde_json::json!({"id": "t-1", "inputs": [{"name": "input-0", "shape": [rows, 20], "datatype": "FP32", "data": data}]})
}
