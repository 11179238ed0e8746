//! Test support: a temp home per test, the real `secondrow` binary, and the real kfp SDK (from the venv
//! the test set-up creates) to compile pipelines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn samples_dir() -> PathBuf {
    repo_root().join("../shared/kfp/samples")
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The Python with kfp==2.14.6: `SECONDROW_TEST_PYTHON`, else `.venv-test/bin/python` at the repo root.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SECONDROW_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p = repo_root().join(".venv-test/bin/python");
    assert!(p.exists(), "{} is missing: run ./scripts/test (it creates the test venv with kfp)", p.display());
    // Not canonicalize(): resolving the venv's symlink would lose the venv.
    std::path::absolute(p).unwrap()
}

pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home { dir: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_secondrow"));
        c.env("SECONDROW_HOME", self.path().join("home"))
            .env("SECONDROW_PYTHON", python())
            .env_remove("SECONDROW_DATABASE_URL")
            .env_remove("SECONDROW_PARALLELISM")
            .env("TMPDIR", self.path());
        c
    }

    /// Copies a kfp pipeline source here and compiles it with the real SDK; returns the YAML path.
    pub fn compile(&self, source: &Path) -> PathBuf {
        let name = source.file_name().unwrap();
        let dst = self.path().join(name);
        std::fs::copy(source, &dst).unwrap();
        let out = Command::new(python()).arg(&dst).current_dir(self.path()).output().unwrap();
        assert!(out.status.success(), "compiling {}: {}", source.display(), String::from_utf8_lossy(&out.stderr));
        let yaml = dst.with_extension("yaml");
        assert!(yaml.exists(), "kfp wrote no {}", yaml.display());
        yaml
    }

    /// Compiles a source that writes several pipelines (its own names) into this home's folder.
    pub fn compile_all(&self, source: &Path) {
        let dst = self.path().join(source.file_name().unwrap());
        std::fs::copy(source, &dst).unwrap();
        let out = Command::new(python()).arg(&dst).current_dir(self.path()).output().unwrap();
        assert!(out.status.success(), "compiling {}: {}", source.display(), String::from_utf8_lossy(&out.stderr));
    }

    pub fn compile_sample(&self, name: &str) -> PathBuf {
        self.compile(&samples_dir().join(format!("{name}.py")))
    }

    /// `secondrow run YAML --json ARGS…`: exit code and the final run document.
    pub fn run(&self, yaml: &Path, args: &[&str]) -> (i32, RunDoc) {
        let out = self.cmd().arg("run").arg(yaml).arg("--json").args(args).output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("no JSON from run ({e}); exit {code}; stderr:\n{}", String::from_utf8_lossy(&out.stderr))
        });
        (code, RunDoc(doc))
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    pub fn runs_json(&self) -> Value {
        let out = self.output(&["runs", "list", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    pub fn get_json(&self, run_id: &str) -> Value {
        let out = self.output(&["runs", "get", run_id, "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

pub struct RunDoc(pub Value);

impl RunDoc {
    pub fn id(&self) -> String {
        self.0["run"]["id"].as_str().unwrap().to_owned()
    }

    pub fn state(&self) -> &str {
        self.0["run"]["state"].as_str().unwrap()
    }

    pub fn output(&self, name: &str) -> &Value {
        &self.0["run"]["outputs"]["parameters"][name]
    }

    pub fn output_artifact(&self, name: &str) -> &Value {
        &self.0["run"]["outputs"]["artifacts"][name][0]
    }

    pub fn task(&self, path: &str) -> &Value {
        let tasks = self.0["tasks"].as_array().unwrap();
        tasks.iter().find(|t| t["path"] == path).unwrap_or_else(|| {
            let paths: Vec<_> = tasks.iter().map(|t| t["path"].as_str().unwrap_or("")).collect();
            panic!("no task `{path}`; tasks: {paths:?}")
        })
    }

    pub fn task_state(&self, path: &str) -> &str {
        self.task(path)["state"].as_str().unwrap()
    }

    /// A task's output parameter (default `Output`).
    pub fn task_output(&self, path: &str, name: &str) -> &Value {
        &self.task(path)["outputs"]["parameters"][name]
    }

    pub fn task_artifact(&self, path: &str, name: &str) -> &Value {
        &self.task(path)["outputs"]["artifacts"][name][0]
    }

    pub fn tasks_under(&self, prefix: &str) -> Vec<&Value> {
        self.0["tasks"].as_array().unwrap().iter().filter(|t| t["path"].as_str().unwrap().starts_with(prefix)).collect()
    }
}

/// Reads an artifact file by URI.
pub fn read_uri(artifact: &Value) -> String {
    let uri = artifact["uri"].as_str().expect("artifact has a uri");
    std::fs::read_to_string(uri).unwrap_or_else(|e| panic!("reading {uri}: {e}"))
}

/// Polls `f` until it returns Some or the timeout passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every file under `dir` with its bytes, by relative path.
pub fn file_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}
