//! Bad input is rejected before anything runs or is written: exit code 2 and a message naming the field.

use crate::support::*;

fn rejected(h: &Home, yaml: &std::path::Path, args: &[&str], needle: &str) {
    let out = h.cmd().arg("run").arg(yaml).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
    // Nothing was written: not even the home folder.
    assert!(!h.path().join("home").exists(), "a rejected run must leave no state");
}

fn edited(h: &Home, sample: &str, from: &str, to: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(samples_dir().join(format!("{sample}.yaml"))).unwrap();
    assert!(text.contains(from), "fixture edit `{from}` does not apply");
    let path = h.path().join(format!("{sample}-edited.yaml"));
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    path
}

#[test]
fn not_yaml_names_the_line() {
    let h = Home::new();
    let p = h.path().join("bad.yaml");
    std::fs::write(&p, "pipelineInfo:\n  name: x\nroot: [unclosed\n").unwrap();
    rejected(&h, &p, &[], "line");
}

#[test]
fn unknown_component_and_executor() {
    let h = Home::new();
    let p = edited(&h, "container_shell", "name: comp-count-lines\n", "name: comp-nope\n");
    rejected(&h, &p, &[], "root.dag.tasks.count-lines.componentRef: unknown component `comp-nope`");
    let p = edited(&h, "container_shell", "executorLabel: exec-repeat", "executorLabel: exec-nope");
    rejected(&h, &p, &[], "unknown executor `exec-nope`");
}

#[test]
fn cycles() {
    let h = Home::new();
    let p = edited(&h, "failure", "dependentTasks:\n        - ok\n", "dependentTasks:\n        - ok-2\n");
    rejected(&h, &p, &[], "dependency cycle");
}

#[test]
fn unknown_placeholder() {
    let h = Home::new();
    let p = edited(&h, "container_shell", "{{$.pipeline_task_name}}", "{{$.pipeline_task_nam}}");
    rejected(&h, &p, &[], "unknown placeholder `{{$.pipeline_task_nam}}`");
}

#[test]
fn parameters() {
    let h = Home::new();
    let yaml = samples_dir().join("container_shell.yaml");
    rejected(&h, &yaml, &["-p", "times=abc"], "parameter `times`");
    rejected(&h, &yaml, &["-p", "nope=1"], "parameter `nope`: unknown parameter");
    rejected(&h, &yaml, &["-p", "novalue"], "expected NAME=VALUE");
    let long = h.compile(&fixtures_dir().join("long.py"));
    rejected(&h, &long, &[], "parameter `flag`: missing required parameter");
}

#[test]
fn missing_file_and_unknown_run() {
    let h = Home::new();
    rejected(&h, &h.path().join("nope.yaml"), &[], "nope.yaml");
    let out = h.output(&["runs", "get", "does-not-exist"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `does-not-exist` not found"));
}

/// A built-in component's failures exit by their kind: the user's mistakes 2, a failed write 1.
#[test]
fn component_errors_exit_by_kind() {
    let h = Home::new();
    let csv = h.path().join("train.csv");
    let rows: String = (0..20).map(|i| format!("{i},{}\n", u8::from(i >= 10))).collect();
    std::fs::write(&csv, format!("x,label\n{rows}")).unwrap();
    let train = |data: &std::path::Path, model: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["component", "train_logistic_regression", "--train-data", data.to_str().unwrap()];
        args.extend(["--label", "label", "--model", model.to_str().unwrap()]);
        args.extend(extra);
        h.output(&args)
    };
    let code = |out: &std::process::Output| (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned());
    let model = h.path().join("model.json");
    let (status, stderr) = code(&train(&h.path().join("missing.csv"), &model, &[]));
    assert_eq!(status, Some(2), "a missing input file is the user's: {stderr}");
    let (status, stderr) = code(&train(&csv, &model, &["--no-such-flag", "1"]));
    assert_eq!(status, Some(2), "an unknown argument is the user's: {stderr}");
    // The model's folder cannot be created (a file is in the way): an IO failure on this side.
    let blocked = h.path().join("a-file");
    std::fs::write(&blocked, "x").unwrap();
    let (status, stderr) = code(&train(&csv, &blocked.join("model.json"), &[]));
    assert_eq!(status, Some(1), "a failed write is not invalid input: {stderr}");
    let (status, stderr) = code(&train(&csv, &model, &[]));
    assert_eq!(status, Some(0), "{stderr}");
}

/// A reader that stops early (`secondrow runs list | head`) ends the command quietly, as for other Unix
/// tools: no panic on the closed pipe. Here stdout is a pipe whose reading end is closed before the command
/// writes anything.
#[test]
fn printing_to_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt as _;
    let h = Home::new();
    let yaml = h.compile_sample("params_types");
    let out = h.cmd().arg("run").arg(&yaml).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for args in [&["runs", "list"][..], &["runs", "list", "--json"], &["validate", yaml.to_str().unwrap()]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = h.cmd().args(args).stdout(writer).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success() || out.status.signal() == Some(13), "{args:?}: {:?} {stderr}", out.status);
    }
}
