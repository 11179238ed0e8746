//! The warm Python executor: same outputs as cold runs, isolation between tasks, crash recovery,
//! cached environments for packages_to_install, cancel.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// Every file under `dir` (relative path → content), with `root` replaced so runs can be compared.
fn files(dir: &Path, root: &str) -> Vec<(String, String)> {
    file_tree(dir)
        .into_iter()
        .map(|(rel, bytes)| (rel.to_string_lossy().into_owned(), String::from_utf8_lossy(&bytes).replace(root, "ROOT")))
        .collect()
}

fn run_mode(sample: &str, mode: &str) -> (RunDoc, Vec<(String, String)>) {
    let h = Home::new();
    let (code, r) = h.run(&samples_dir().join(format!("{sample}.yaml")), &["--no-cache", "--python-mode", mode]);
    assert_eq!(code == 0, r.state() == "SUCCEEDED", "{sample} {mode}");
    let root = h.path().join("home/artifacts").join(r.id());
    let root_canon = root.canonicalize().unwrap();
    let f = files(&root_canon, &root_canon.to_string_lossy());
    // Paths differ between the two homes; everything else must not.
    let home = h.path().canonicalize().unwrap();
    let text = r.0.to_string().replace(&*home.to_string_lossy(), "HOME").replace(&*h.path().to_string_lossy(), "HOME");
    (RunDoc(serde_json::from_str(&text).unwrap()), f)
}

/// Masks values that differ between any two runs (uuids, random 32-hex stamps) so runs compare.
fn shape(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut masked = String::new();
    let mut i = 0;
    while i < chars.len() {
        let mut j = i;
        while j < chars.len() && (chars[j].is_ascii_hexdigit() || chars[j] == '-') {
            j += 1;
        }
        if j - i >= 32 {
            masked.push_str("<id>");
            i = j;
        } else {
            masked.push(chars[i]);
            i += 1;
        }
    }
    masked
}

#[test]
fn warm_and_cold_runs_write_the_same_outputs() {
    for sample in sample_names() {
        let sample = sample.as_str();
        let (warm, warm_files) = run_mode(sample, "warm");
        let (cold, cold_files) = run_mode(sample, "cold");
        assert_eq!(warm.state(), cold.state(), "{sample}");
        let names = |fs: &[(String, String)]| fs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&warm_files), names(&cold_files), "{sample}: different output files");
        for ((name, w), (_, c)) in warm_files.iter().zip(&cold_files) {
            assert_eq!(shape(w), shape(c), "{sample}: {name} differs");
        }
        let params = |r: &RunDoc| -> Vec<(String, String, String)> {
            let mut v: Vec<_> = r.0["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["kind"] == "container")
                .map(|t| {
                    (
                        t["path"].as_str().unwrap().to_owned(),
                        t["state"].to_string(),
                        shape(&t["outputs"]["parameters"].to_string()),
                    )
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(params(&warm), params(&cold), "{sample}: task outputs differ");
    }
}

#[test]
fn tasks_cannot_see_each_others_globals() {
    let h = Home::new();
    h.compile_all(&fixtures_dir().join("warm.py"));
    let (code, r) = h.run(&h.path().join("isolation.yaml"), &["--python-mode", "warm"]);
    assert_eq!(code, 0);
    assert_eq!(r.task_output("pollute", "Output"), "polluted");
    assert_eq!(r.output("Output"), false, "a warm task saw another task's globals");
}

#[test]
fn a_crashed_worker_fails_the_task_which_is_retried_on_a_new_worker() {
    let h = Home::new();
    h.compile_all(&fixtures_dir().join("warm.py"));
    let t = Instant::now();
    let (code, r) = h.run(&h.path().join("crash.yaml"), &["--python-mode", "warm"]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"), "{}", r.0);
    assert!(t.elapsed() < Duration::from_secs(25), "hung for {:?}", t.elapsed());
    assert_eq!(r.task("crash-once")["attempts"], 2);
    assert_eq!(r.output("Output"), 7);
}

#[test]
fn packages_to_install_get_one_cached_environment() {
    let h = Home::new();
    h.compile_all(&fixtures_dir().join("warm.py"));
    let yaml = h.path().join("packages.yaml");
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"), "{}", r.0["run"]["error"]);
    assert_eq!(r.task_output("colored", "Output"), "termcolor:a");
    assert_eq!(r.task_output("colored-2", "Output"), "termcolor:b");
    let list = h.output(&["envs", "list", "--json"]);
    let envs: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(envs.as_array().unwrap().len(), 1, "both tasks share one environment: {envs}");
    assert_eq!(envs[0]["packages"][0], "termcolor==2.4.0");
    let created = envs[0]["created_at_ms"].clone();
    // A second run reuses it.
    let (_, r2) = h.run(&yaml, &["--python-mode", "cold"]);
    assert_eq!(r2.task_output("colored", "Output"), "termcolor:a");
    let envs2: Value = serde_json::from_slice(&h.output(&["envs", "list", "--json"]).stdout).unwrap();
    assert_eq!(envs2[0]["created_at_ms"], created);
    // A failing install fails the task with pip's message.
    let (code, r3) = h.run(&yaml, &["-p", "fail=true"]);
    assert_eq!((code, r3.state()), (1, "FAILED"));
    let err = r3.0["run"]["error"].as_str().unwrap();
    assert!(err.contains("secondrow-no-such-package-zzz"), "{err}");
    let pruned = h.output(&["envs", "prune"]);
    assert!(pruned.status.success());
    let envs3: Value = serde_json::from_slice(&h.output(&["envs", "list", "--json"]).stdout).unwrap();
    assert_eq!(envs3.as_array().unwrap().len(), 0);
}

#[test]
fn cancel_kills_a_warm_task() {
    let h = Home::new();
    h.compile_all(&fixtures_dir().join("warm.py"));
    let pidfile: PathBuf = h.path().join("sleeper.pid");
    let child = h
        .cmd()
        .arg("run")
        .arg(h.path().join("sleepy.yaml"))
        .args(["--json", "--python-mode", "warm", "-p"])
        .arg(format!("pidfile={}", pidfile.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid: i32 = wait_for(Duration::from_secs(60), || {
        std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok())
    });
    let t = Instant::now();
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["run"]["state"], "CANCELED");
    // The kill is asynchronous: poll until the task is gone (or a zombie), within a deadline.
    let gone = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        (stat.is_empty() || stat.contains(") Z ")).then_some(())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while gone().is_none() {
        assert!(Instant::now() < deadline, "the warm task survived the cancel");
        std::thread::sleep(Duration::from_millis(20));
    }
}
