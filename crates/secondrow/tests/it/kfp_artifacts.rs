//! kfp compatibility for artifacts and executors: lists of artifacts reaching Python and container
//! components, ParallelFor over a list of artifacts, the warm worker's failure messages, and clear messages
//! for what cannot run as a local process. Every pipeline is compiled by the real kfp SDK and run by the
//! binary.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::*;

fn fixture(name: &str) -> PathBuf {
    repo_root().join("testdata/kfp/artifacts").join(name)
}

/// The runtime artifacts a `list-as-json` task was handed, as the JSON array its command received.
fn listed(r: &RunDoc, task: &str) -> Vec<Value> {
    let text = r.task_output(task, "listed").as_str().unwrap_or_else(|| panic!("{task} wrote no list"));
    match serde_json::from_str(text) {
        Ok(Value::Array(items)) => items,
        other => panic!("{task}: not a JSON array: {other:?} from {text}"),
    }
}

fn lists_of_artifacts_reach_python_and_container_components(h: &Home) {
    let yaml = h.compile(&fixture("list_of_artifacts.py"));
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"));

    // Python components get every artifact of the list, in iteration order, with its metadata.
    assert_eq!(r.task_output("join-texts", "Output"), "alpha:5|beta:4|gamma:5|delta:5");
    assert_eq!(r.task_output("join-texts-2", "Output"), "one:3|two:3|three:5");

    // A container command gets the whole list as a JSON array of runtime artifacts, in the same order.
    for (task, loop_path, texts) in [
        ("list-as-json", "collected-texts/for-loop-1", &["alpha", "beta", "gamma", "delta"][..]),
        ("list-as-json-2", "for-loop-2", &["one", "two", "three"][..]),
    ] {
        let items = listed(&r, task);
        assert_eq!(items.len(), texts.len(), "{task}: {items:?}");
        for (i, (item, text)) in items.iter().zip(texts).enumerate() {
            let produced = r.task_artifact(&format!("{loop_path}/{i}/write-text"), "out");
            assert_eq!(item["uri"], produced["uri"], "{task} item {i}");
            assert_eq!(read_uri(item), *text, "{task} item {i}");
            assert_eq!(item["metadata"]["chars"], text.len(), "{task} item {i}");
            assert_eq!(item["type"]["schemaTitle"], "system.Dataset");
        }
    }

    // Lineage records every artifact of the list as an input of the consumer.
    let consumer = r.task("join-texts");
    let inputs = consumer["inputs"]["artifacts"]["datasets"].as_array().expect("input artifacts recorded");
    assert_eq!(inputs.len(), 4, "{consumer}");
}

fn parallelfor_over_artifacts_runs_one_iteration_per_artifact(h: &Home) {
    let yaml = h.compile(&fixture("parallelfor_artifacts.py"));
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"));
    let iterations: Vec<&Value> =
        r.tasks_under("for-loop-1/").into_iter().filter(|t| t["kind"] == "iteration").collect();
    assert_eq!(iterations.len(), 3);
    for (i, text) in ["red", "green", "blue"].iter().enumerate() {
        let made = r.task_artifact(&format!("make-datasets/for-loop-1/{i}/make-dataset"), "Output");
        let describe = r.task(&format!("for-loop-1/{i}/describe"));
        // The iteration's item is the i-th artifact itself: same URI, read through kfp's Input[Artifact].
        assert_eq!(describe["inputs"]["artifacts"]["item"][0]["uri"], made["uri"]);
        assert_eq!(describe["outputs"]["parameters"]["Output"], format!("#{text}:{}", text.len()));
    }
    assert_eq!(r.task_output("summarize", "Output"), "#red:3,#green:5,#blue:4");
    // The same list handed to a nested pipeline, which loops over its input artifact.
    assert_eq!(r.task_output("summarize-2", "Output"), "nested red:3,nested green:5,nested blue:4");

    // More items than the parallelism limit, and none at all.
    let (code, r) = h.run(&yaml, &["-p", r#"texts=["a","bb","ccc","dddd","eeeee"]"#, "-p", "prefix=>"]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"));
    assert_eq!(r.task_output("summarize", "Output"), ">a:1,>bb:2,>ccc:3,>dddd:4,>eeeee:5");
    let (code, r) = h.run(&yaml, &["-p", "texts=[]"]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"));
    assert_eq!(r.task_output("for-loop-1", "pipelinechannel--describe-Output"), &Value::Array(vec![]));
    assert_eq!(r.task_output("summarize", "Output"), "");
}

per_backend!(
    lists_of_artifacts_reach_python_and_container_components,
    parallelfor_over_artifacts_runs_one_iteration_per_artifact
);

/// `secondrow logs RUN`: every task's stdout and stderr.
fn logs(h: &Home, run: &RunDoc) -> String {
    let out = h.output(&["logs", &run.id()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn warm_failures_report_the_components_own_error_like_cold() {
    let h = Home::new();
    let yaml = h.compile(&fixture("failures.py"));
    for (which, task, error) in [
        ("raises", "condition-1/raises", "exited with status 1: ValueError: n must not be positive, got 1"),
        ("exits", "condition-2/exits", "exited with status 1: error: quota exceeded for n=1"),
        // Nothing on stderr: nothing but the status (the warm worker used to put its own RuntimeWarning here).
        ("quiet", "condition-3/exits-quietly", "exited with status 1"),
    ] {
        for mode in ["cold", "warm"] {
            let (code, r) = h.run(&yaml, &["-p", &format!("which={which}"), "--python-mode", mode]);
            assert_eq!((code, r.state()), (1, "FAILED"), "{which} {mode}");
            assert_eq!(r.task(task)["error"], error, "{which} {mode}");
            let logs = logs(&h, &r);
            assert!(!logs.contains("RuntimeWarning"), "{which} {mode}: {logs}");
        }
    }
    // A successful warm task's stderr is empty too.
    let (code, r) = h.run(&yaml, &["-p", "n=0", "-p", "which=exits", "--python-mode", "warm"]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"));
    assert!(!logs(&h, &r).contains("[stderr]"), "{}", logs(&h, &r));
}

#[test]
fn a_container_without_command_says_why_and_how_to_fix_it() {
    let h = Home::new();
    h.compile_all(&fixture("cannot_run_locally.py"));
    let cases = [
        (
            "no_command.yaml",
            "deploymentSpec.executors.exec-entrypoint-only.container: has neither `command` nor `args`: \
             component `comp-entrypoint-only` relies on the entrypoint of image `report-tool:1.0`, but",
        ),
        (
            "args_without_command.yaml",
            "deploymentSpec.executors.exec-entrypoint-with-args.container: has `args` but no `command`: component \
             `comp-entrypoint-with-args` relies on the entrypoint of image `report-tool:1.0` (which would receive \
             the args), but",
        ),
    ];
    for (yaml, head) in cases {
        for verb in ["run", "validate"] {
            let out = h.cmd().args([verb, yaml]).current_dir(h.path()).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{verb} {yaml}: {stderr}");
            for part in [head, "SecondRow runs a local process, not an image; give the container a `command`"] {
                assert!(stderr.contains(part), "{verb} {yaml}: no `{part}` in {stderr}");
            }
        }
    }
}

#[test]
fn a_bash_script_run_by_sh_fails_with_a_hint_when_sh_is_not_bash() {
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    let sh_name = sh.file_name().unwrap().to_string_lossy().into_owned();
    let h = Home::new();
    h.compile_all(&fixture("cannot_run_locally.py"));
    let (code, r) = h.run(&h.path().join("bash_in_sh.yaml"), &[]);
    if sh_name == "bash" {
        // Where /bin/sh is bash the scripts simply work.
        assert_eq!((code, r.state()), (0, "SUCCEEDED"));
        return;
    }
    assert_eq!((code, r.state()), (1, "FAILED"));
    let hint =
        format!("looks like bash syntax, but /bin/sh here is {sh_name}, not bash; run the script with `bash -c`");
    let array = r.task("bash-script")["error"].as_str().unwrap();
    assert!(array.starts_with("exited with status 2: "), "{array}");
    assert!(array.contains("Syntax error: \"(\" unexpected") && array.contains(&hint), "{array}");
    // The `[[` line is not the last one on stderr; the hint still finds it.
    let test = r.task("bash-test")["error"].as_str().unwrap();
    assert!(test.starts_with("exited with status 3: missing; hint: `"), "{test}");
    assert!(test.contains("[[: not found") && test.contains(&hint), "{test}");
}
