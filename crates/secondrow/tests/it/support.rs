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
    repo_root().join("testdata/kfp/samples")
}

/// Every kfp sample, as `testdata/kfp/samples/expected.tsv` lists them (name, expected state).
pub fn sample_names() -> Vec<String> {
    let tsv = std::fs::read_to_string(samples_dir().join("expected.tsv")).expect("expected.tsv exists");
    tsv.lines().filter_map(|l| l.split('\t').next()).filter(|n| !n.is_empty()).map(str::to_string).collect()
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

/// The variable naming the PostgreSQL server the tests may create databases on (`scripts/test` starts a
/// throw-away one and sets it).
pub const POSTGRES_URL_VAR: &str = "SECONDROW_TEST_POSTGRES_URL";

/// A temp folder per test: the SecondRow home, compiled pipelines, and the metadata database — a SQLite file
/// in the home, or a database of its own on the test PostgreSQL server.
pub struct Home {
    pub dir: tempfile::TempDir,
    /// `postgres://…` when the home's metadata lives on PostgreSQL (passed as `SECONDROW_DATABASE_URL`).
    pub database_url: Option<String>,
    /// The PostgreSQL server's URL and this home's database on it, dropped with the home.
    postgres: Option<(String, String)>,
}

/// A single-threaded runtime for the few database calls the test support makes itself.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

impl Home {
    /// A home on the embedded default, a SQLite file.
    pub fn new() -> Home {
        Home { dir: tempfile::tempdir().unwrap(), database_url: None, postgres: None }
    }

    /// A home whose metadata is a fresh database on the test PostgreSQL server; `None`, with a note, when
    /// `SECONDROW_TEST_POSTGRES_URL` is unset (a plain `cargo test`).
    pub fn postgres() -> Option<Home> {
        use sqlx::{Connection, Executor};
        let Ok(server) = std::env::var(POSTGRES_URL_VAR) else {
            eprintln!("note: {POSTGRES_URL_VAR} is unset; the PostgreSQL variant is skipped (scripts/test runs it)");
            return None;
        };
        let name = format!("secondrow_it_{}", uuid_like());
        block_on(async {
            let mut admin = sqlx::postgres::PgConnection::connect(&server)
                .await
                .unwrap_or_else(|e| panic!("connecting to {POSTGRES_URL_VAR}: {e}"));
            admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
            admin.close().await.unwrap();
        });
        let mut url = url::Url::parse(&server).unwrap();
        url.set_path(&name);
        Some(Home {
            dir: tempfile::tempdir().unwrap(),
            database_url: Some(url.to_string()),
            postgres: Some((server, name)),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_secondrow"));
        c.env("SECONDROW_HOME", self.path().join("home"))
            .env("SECONDROW_PYTHON", python())
            .env_remove("SECONDROW_PARALLELISM")
            // A root server's default task user must reach the home and the Python, which a private temp
            // folder and this machine's Python may not allow: tests keep tasks as root unless they test the
            // task user (`--task-user` wins over the variable).
            .env("SECONDROW_TASK_USER", "root")
            .env("TMPDIR", self.path());
        match &self.database_url {
            Some(url) => c.env("SECONDROW_DATABASE_URL", url),
            None => c.env_remove("SECONDROW_DATABASE_URL"),
        };
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

    /// Writes `src/NAME.py` (outside the home folder: `compile` copies it there): kfp's imports, `load(name)`
    /// for the repository's built-in components (`components/NAME.yaml`), then `body`, which defines
    /// `pipeline`; compiles it to `NAME.yaml` with the real SDK and returns that path.
    pub fn compile_with_builtins(&self, name: &str, body: &str) -> PathBuf {
        let source = self.path().join("src").join(format!("{name}.py"));
        std::fs::create_dir_all(source.parent().unwrap()).unwrap();
        let components = repo_root().join("components").display().to_string();
        let text = format!(
            r#"import os
from kfp import compiler, components, dsl

def load(name):
    return components.load_component_from_file(os.path.join({components:?}, name + ".yaml"))

{body}
compiler.Compiler().compile(pipeline, os.path.join(os.path.dirname(os.path.abspath(__file__)), "{name}.yaml"))
"#
        );
        std::fs::write(&source, text).unwrap();
        self.compile(&source)
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

impl Home {
    /// Panics unless the binary opened this home's PostgreSQL database (its schema migrations are there), so a
    /// PostgreSQL variant cannot pass on SQLite by mistake.
    pub fn assert_postgres_used(&self) {
        use sqlx::{Connection, Row};
        let url = self.database_url.as_deref().expect("a PostgreSQL home");
        let migrations: i64 = block_on(async {
            let mut conn = sqlx::postgres::PgConnection::connect(url).await.unwrap();
            let row = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations").fetch_one(&mut conn).await;
            conn.close().await.unwrap();
            row.map(|r| r.get("n")).unwrap_or(0)
        });
        assert!(migrations > 0, "the PostgreSQL variant never opened its database");
    }
}

impl Drop for Home {
    /// Drops the home's PostgreSQL database (servers using it are gone by now: they are dropped first).
    fn drop(&mut self) {
        use sqlx::{Connection, Executor};
        if let Some((server, name)) = self.postgres.take() {
            block_on(async {
                if let Ok(mut admin) = sqlx::postgres::PgConnection::connect(&server).await {
                    let _ = admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
                    let _ = admin.close().await;
                }
            });
        }
    }
}

/// A name unique on this machine (process id, time, counter) for a test database.
fn uuid_like() -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}_{nanos}_{}", std::process::id(), SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Turns `fn NAME(home: &Home)` test bodies into two tests, `NAME::sqlite` and `NAME::postgres`, the second on
/// a database of its own on the test PostgreSQL server (skipped with a note when none is configured).
macro_rules! per_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&$crate::support::Home::new())
            }

            #[test]
            fn postgres() {
                if let Some(home) = $crate::support::Home::postgres() {
                    super::$name(&home);
                    home.assert_postgres_used();
                }
            }
        }
    )*};
}
pub(crate) use per_backend;

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

/// A SecondRow model file (two numeric inputs `a`, `b`, classes 0/1) trained by the built-in component on a small
/// separable table, `train.csv` in the home.
pub fn trained_model(h: &Home) -> PathBuf {
    let csv = h.path().join("train.csv");
    let mut text = String::from("a,b,label\n");
    for i in 0..40 {
        let x = f64::from(i) / 10.0;
        text.push_str(&format!("{x},{},{}\n", 4.0 - x, u8::from(i >= 20)));
    }
    std::fs::write(&csv, text).unwrap();
    let model = h.path().join("model.json");
    let out = h.output(&[
        "component",
        "train_logistic_regression",
        "--train-data",
        csv.to_str().unwrap(),
        "--label",
        "label",
        "--model",
        model.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "training: {}", String::from_utf8_lossy(&out.stderr));
    model
}

/// One HTTP/1.1 request over a fresh connection, with an optional bearer token: (status, body text).
pub fn raw_http(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), body.to_owned())
}
