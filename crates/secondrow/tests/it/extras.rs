//! Features beyond the shared samples (fixtures/extras.py, compiled with the real SDK), and the CLI's
//! inspection commands.

use serde_json::json;

use crate::support::*;

#[test]
fn exit_handler_runs_after_a_failing_body() {
    let h = Home::new();
    h.compile(&fixtures_dir().join("extras.py"));
    let yaml = h.path().join("exit_fail.yaml");
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (1, "FAILED"));
    assert_eq!(r.task_state("exit-handler-1/fail-now"), "FAILED");
    assert_eq!(r.task_state("report"), "SUCCEEDED");
    assert_eq!(r.task_output("report", "Output"), "FAILED:exit-handler-1:boom");
}

#[test]
fn importer_nested_loops_and_conditions_in_loops() {
    let h = Home::new();
    let yaml = h.compile(&fixtures_dir().join("extras.py"));
    let data = h.path().join("imported.txt");
    std::fs::write(&data, "hello").unwrap();
    let uri = format!("uri={}", data.display());
    let (code, r) = h.run(&yaml, &["-p", &uri]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"));
    let read = r.tasks_under("").into_iter().find(|t| t["display_name"] == "read-imported").unwrap();
    assert_eq!(read["outputs"]["parameters"]["Output"], "hello|disk");
    // rows × cols, collected as a list of lists.
    assert_eq!(r.task_output("for-loop-1", "pipelinechannel--mul-Output"), &json!([[10, 20, 30], [20, 40, 60]]));
    assert_eq!(r.output("Output"), 180);
    assert_eq!(r.task_state("for-loop-4/0/condition-5"), "SKIPPED");
    assert_eq!(r.task_output("for-loop-4/3/condition-5/echo", "Output"), 4);
    assert_eq!(r.task_output("count-items", "Output"), 2);
    let (_, r) = h.run(&yaml, &["-p", &uri, "-p", "rows=[3]", "-p", "cols=[]"]);
    assert_eq!(r.output("Output"), 0);
}

#[test]
fn logs_artifacts_and_listing() {
    let h = Home::new();
    let yaml = samples_dir().join("artifacts.yaml");
    let (_, r) = h.run(&yaml, &[]);
    let id = r.id();
    let list = h.output(&["runs", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(&id));
    let get = h.output(&["runs", "get", &id[..8]]);
    let text = String::from_utf8_lossy(&get.stdout);
    assert!(text.contains("SUCCEEDED") && text.contains("evaluate"), "{text}");
    let logs = h.output(&["logs", &id, "make-data"]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("[make-data [stdout]]") || logs.status.success());
    let dest = h.path().join("dl");
    let dl = h.output(&["artifacts", &id, "--download", dest.to_str().unwrap()]);
    assert!(dl.status.success(), "{}", String::from_utf8_lossy(&dl.stderr));
    assert_eq!(std::fs::read_to_string(dest.join("train/model")).unwrap(), "15");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dest.join("evaluate/metrics.metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["total"], 15);
    let arts = h.output(&["artifacts", &id]);
    assert!(String::from_utf8_lossy(&arts.stdout).contains("system.ClassificationMetrics"));
}
