//! `--target kfp://HOST:PORT`: the CLI submits the same IR to a Kubeflow Pipelines API server and follows
//! it with only standard KFP v2beta1 calls; `secondrow server` stands in for Kubeflow. The client runs from
//! a home of its own, so everything it shows came over the API.

use std::process::Output;

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
