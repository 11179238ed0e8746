//! Cancel and crash safety: Ctrl-C cancels and kills children; a SIGKILLed run resumes without
//! re-running completed tasks.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn start_long(h: &Home) -> (Child, std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let yaml = h.compile(&fixtures_dir().join("long.py"));
    let (marker, flag, pidfile) = (h.path().join("marker"), h.path().join("flag"), h.path().join("pid"));
    let child = h
        .cmd()
        .arg("run")
        .arg(&yaml)
        .args(["--json", "-p"])
        .arg(format!("marker={}", marker.display()))
        .arg("-p")
        .arg(format!("flag={}", flag.display()))
        .arg("-p")
        .arg(format!("pidfile={}", pidfile.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, marker, flag, pidfile)
}

fn read_pid(pidfile: &Path) -> i32 {
    wait_for(Duration::from_secs(60), || std::fs::read_to_string(pidfile).ok().and_then(|s| s.trim().parse().ok()))
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}

fn signal(pid: i32, sig: &str) {
    let ok = std::process::Command::new("kill").arg(format!("-{sig}")).arg("--").arg(pid.to_string()).status().unwrap();
    assert!(ok.success());
}

#[test]
fn ctrl_c_cancels_and_kills_the_task() {
    let h = Home::new();
    let (child, _marker, _flag, pidfile) = start_long(&h);
    let task_pid = read_pid(&pidfile);
    assert!(alive(task_pid));
    let t = Instant::now();
    signal(child.id() as i32, "INT");
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "cancel took {:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["run"]["state"], "CANCELED");
    let hold = doc["tasks"].as_array().unwrap().iter().find(|t| t["task_key"] == "hold").unwrap();
    assert_eq!(hold["state"], "CANCELED");
    assert_eq!(
        doc["tasks"].as_array().unwrap().iter().find(|t| t["task_key"] == "count").unwrap()["state"],
        "SUCCEEDED"
    );
    assert!(!alive(task_pid), "the task's process survived the cancel");
}

// Resume after a crash on both metadata backends: `NAME::sqlite` and `NAME::postgres`.
per_backend!(killed_run_resumes_without_rerunning_finished_tasks,);

fn killed_run_resumes_without_rerunning_finished_tasks(h: &Home) {
    let (mut child, marker, flag, pidfile) = start_long(h);
    let task_pid = read_pid(&pidfile);
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    signal(-task_pid, "KILL"); // the orphaned task's process group
    let runs = h.runs_json();
    let run_id = runs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(runs[0]["state"], "RUNNING", "the killed run is left RUNNING");
    std::fs::write(&flag, "go").unwrap();
    let out = h.output(&["runs", "resume", &run_id[..8], "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["run"]["state"], "SUCCEEDED");
    assert_eq!(doc["run"]["outputs"]["parameters"]["Output"], "counted-released");
    assert_eq!(std::fs::read_to_string(&marker).unwrap().lines().count(), 1, "`count` ran again");
    let hold = doc["tasks"].as_array().unwrap().iter().find(|t| t["task_key"] == "hold").unwrap();
    assert_eq!(hold["attempts"], 2);
    // A finished run cannot be resumed again: the request is wrong (FailedPrecondition), exit 2 as over HTTP.
    let again = h.output(&["runs", "resume", &run_id]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));
}
