//! `secondrow server` driven by the real kfp SDK client (`kfp.Client`): every sample, pipelines and
//! versions, listing, terminate, retry, errors, recurring runs, and restart after SIGKILL — each against
//! SQLite and PostgreSQL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// A `secondrow server` with its API and model-serving listeners on free ports of 127.0.0.1, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    /// `host:port` of the model-serving listener.
    pub(crate) models: String,
}

impl Server {
    pub(crate) fn start(home: &Home, extra: &[&str]) -> Server {
        let mut child = home
            .cmd()
            .args(["server", "--host", "127.0.0.1", "--port", "0", "--serve-port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            // A file, not our stderr: helper processes that outlive a SIGKILLed server must not hold our pipes.
            .stderr(std::fs::File::create(home.path().join("server.log")).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let urls: Vec<&str> = line.split_whitespace().filter(|w| w.starts_with("http://")).collect();
        assert_eq!(urls.len(), 2, "the API's and the models' URLs in the server's first line: {line:?}");
        Server { child, url: urls[0].to_owned(), models: urls[1].trim_start_matches("http://").to_owned() }
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/kfp_client").join(name)
}

/// Runs one of the kfp client scripts; panics with its output unless it exits 0.
pub(crate) fn kfp_script(home: &Home, name: &str, args: &[&str]) -> Output {
    let out = Command::new(python())
        .arg(script(name))
        .args(args)
        .current_dir(home.path())
        // No ~/.config/kfp/context.json from the developer's machine.
        .env("HOME", home.path())
        .env("TMPDIR", home.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The last line of a script's stdout, as JSON (the kfp client prints its own lines before it).
pub(crate) fn last_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("no JSON on the last line ({e}):\n{text}"))
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

// The end-to-end suite runs on both metadata backends: `NAME::sqlite` and `NAME::postgres`.
per_backend!(
    api_samples_with_kfp_client,
    api_pipelines_runs_listing_terminate_errors_with_kfp_client,
    api_recurring_runs_with_kfp_client,
    api_restart_after_sigkill_resumes_runs,
);

fn api_samples_with_kfp_client(h: &Home) {
    let expected = std::fs::read_to_string(samples_dir().join("expected.tsv")).unwrap();
    let mut args = Vec::new();
    let mut want = Vec::new();
    for line in expected.lines().filter(|l| !l.trim().is_empty()) {
        let (name, state) = line.split_once('\t').unwrap();
        let yaml = h.compile_sample(name);
        args.push(format!("{name}={}:{state}", yaml.display()));
        want.push((name.to_owned(), state.to_owned()));
    }
    let server = Server::start(h, &[]);
    let mut argv: Vec<&str> = vec![&server.url];
    argv.extend(args.iter().map(String::as_str));
    let out = kfp_script(h, "samples.py", &argv);
    let results = json_lines(&out);
    assert_eq!(results.len(), want.len(), "{}", String::from_utf8_lossy(&out.stdout));
    for (r, (name, state)) in results.iter().zip(&want) {
        assert_eq!((r["sample"].as_str(), r["state"].as_str()), (Some(name.as_str()), Some(state.as_str())));
    }
    // Task details carry the engine's task states: the failing sample's failed task, the conditions' skip.
    let failure = results.iter().find(|r| r["sample"] == "failure").unwrap();
    assert!(failure["tasks"].as_object().unwrap().values().any(|s| s == "FAILED"), "{failure}");
}

fn api_pipelines_runs_listing_terminate_errors_with_kfp_client(h: &Home) {
    let server = Server::start(h, &[]);
    let out = kfp_script(h, "resources.py", &[&server.url, h.path().to_str().unwrap()]);
    let summary = json_lines(&out).pop().unwrap();
    assert!(summary["terminate_s"].as_f64().unwrap() < 2.0, "{summary}");
}

fn api_recurring_runs_with_kfp_client(h: &Home) {
    let server = Server::start(h, &[]);
    kfp_script(h, "recurring.py", &[&server.url, h.path().to_str().unwrap()]);
}

/// SIGKILL the server while 20 runs are in flight; a new server resumes them: every run finishes, none is
/// lost or duplicated, and no task that had completed runs again.
fn api_restart_after_sigkill_resumes_runs(h: &Home) {
    const RUNS: usize = 20;
    // The tasks write their markers into the test's folder: outside what the task sandbox lets them write.
    const FLAGS: &[&str] = &["--parallelism", "8", "--no-task-sandbox"];
    let mut server = Server::start(h, FLAGS);
    let out = kfp_script(h, "restart.py", &["submit", &server.url, h.path().to_str().unwrap(), &RUNS.to_string()]);
    let ids: Vec<String> = serde_json::from_value(last_json(&out)).unwrap();
    assert_eq!(ids.len(), RUNS);
    let markers = h.path().join("markers");
    let count = |suffix: &str| {
        std::fs::read_dir(&markers)
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(suffix)).count())
            .unwrap_or(0)
    };
    wait_for(Duration::from_secs(60), || (count("-b") >= 4).then_some(()));
    server.kill();

    // What had completed before the crash, read from the store with the CLI.
    let mut completed = Vec::new();
    let mut unfinished = 0;
    for id in &ids {
        let doc = h.get_json(id);
        if !["SUCCEEDED", "FAILED"].contains(&doc["run"]["state"].as_str().unwrap()) {
            unfinished += 1;
        }
        for t in doc["tasks"].as_array().unwrap() {
            if t["state"] == "SUCCEEDED" {
                completed.push((id.clone(), tag(t["task_key"].as_str().unwrap())));
            }
        }
    }
    assert!(unfinished > 0, "every run had finished before the kill; the test proves nothing");
    assert!(!completed.is_empty(), "no task had completed before the kill");

    let server = Server::start(h, FLAGS);
    let ids_file = h.path().join("ids.json");
    std::fs::write(&ids_file, serde_json::to_string(&ids).unwrap()).unwrap();
    let out = kfp_script(h, "restart.py", &["wait", &server.url, ids_file.to_str().unwrap()]);
    let result = last_json(&out);
    for id in &ids {
        assert_eq!(result["states"][id], "SUCCEEDED", "run {id}: {result}");
    }
    assert_eq!(result["total"], RUNS as i64, "runs lost or duplicated: {result}");
    for (id, tag) in &completed {
        let lines = marker_lines(&markers, id, tag);
        assert_eq!(lines, 1, "task {tag} of run {id} had completed before the kill but ran {lines} times");
    }
    for id in &ids {
        for tag in ["a", "b", "c"] {
            assert!(marker_lines(&markers, id, tag) >= 1, "task {tag} of run {id} never ran");
        }
    }
}

fn tag(task_key: &str) -> &'static str {
    match task_key {
        "step" => "a",
        "step-2" => "b",
        "step-3" => "c",
        other => panic!("unexpected task {other}"),
    }
}

fn marker_lines(dir: &Path, run_id: &str, tag: &str) -> usize {
    std::fs::read_to_string(dir.join(format!("{run_id}-{tag}"))).map(|s| s.lines().count()).unwrap_or(0)
}
