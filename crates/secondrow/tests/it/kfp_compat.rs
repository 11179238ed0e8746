//! kfp DSL features real pipelines use, compiled by the real kfp SDK from `testdata/kfp/compat/*.py` and
//! run: f-strings of parameters and task outputs, resource settings from parameters,
//! every pipeline-level placeholder, and `ignore_upstream_failure()`.

use serde_json::{json, Value};

use crate::support::*;

fn compat(name: &str) -> std::path::PathBuf {
    repo_root().join("testdata/kfp/compat").join(format!("{name}.py"))
}

/// The tasks whose display name (`set_display_name`) is `name`, in path order.
fn named<'a>(r: &'a RunDoc, name: &str) -> Vec<&'a Value> {
    let mut v: Vec<&Value> = r.tasks_under("").into_iter().filter(|t| t["display_name"] == name).collect();
    v.sort_by_key(|t| t["path"].as_str().unwrap_or_default().to_owned());
    assert!(!v.is_empty(), "no task named {name}");
    v
}

fn output<'a>(t: &'a Value, name: &str) -> &'a Value {
    &t["outputs"]["parameters"][name]
}

fn fstrings_in_dags_conditions_and_loops(h: &Home) {
    let yaml = h.compile(&compat("fstrings"));
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"), "{:#}", r.0);
    assert_eq!(output(named(&r, "plain")[0], "Output"), "hello world, up!");
    // Values format as kfp's launcher formats them: whole numbers bare, booleans lower-case, JSON.
    assert_eq!(output(named(&r, "typed")[0], "Output"), r#"n=3 r=0.5 f=true l=[1,2] d={"a":1}"#);
    assert_eq!(output(named(&r, "container")[0], "out"), "container world up");
    // A container argument formats a whole float as kfp's launcher does: `2`, not `2.0`.
    assert_eq!(output(named(&r, "number")[0], "out"), "2");
    assert_eq!(output(named(&r, "cond")[0], "Output"), "in condition world up");
    assert_eq!(output(named(&r, "nested")[0], "Output"), "nested in condition world up 3");
    assert_eq!(output(named(&r, "list")[0], "Output"), "Hello world|up 3");
    // kfp's compiler formats struct values but leaves a channel in a key as its own marker text, which
    // kfp's backend passes through unchanged; so does SecondRow.
    assert_eq!(
        output(named(&r, "dict")[0], "Output"),
        "Hello {{channel:task=;name=name;type=String;}}=How are you, world?"
    );
    let loop_items: Vec<_> = named(&r, "loop").iter().map(|t| output(t, "Output").clone()).collect();
    assert_eq!(loop_items, [json!("item 1 of world"), json!("item 2 of world")]);
    let loop_lists: Vec<_> = named(&r, "looplist").iter().map(|t| output(t, "Output").clone()).collect();
    assert_eq!(loop_lists, [json!("1-world"), json!("2-world")]);
    // Fields of a loop item (kfp names them `…-subvar-a`) come from each iteration's item.
    let fields: Vec<_> = named(&r, "loopfield").iter().map(|t| output(t, "Output").clone()).collect();
    assert_eq!(fields, [json!("field x/1 of world"), json!("field y/2 of world")]);

    let (_, r) = h.run(&yaml, &["-p", "name=kfp", "-p", "count=7", "-p", "flag=false"]);
    assert_eq!(r.state(), "SUCCEEDED");
    assert_eq!(output(named(&r, "typed")[0], "Output"), r#"n=7 r=0.5 f=false l=[1,2] d={"a":1}"#);
    // The inner condition (`name == 'world'`) is false now; its f-string task does not run.
    assert_eq!(output(named(&r, "cond")[0], "Output"), "in condition kfp up");
    assert_eq!(r.task_state("condition-1/condition-2"), "SKIPPED");
}

fn resource_settings_from_parameters_and_task_outputs(h: &Home) {
    let yaml = h.compile(&compat("resources"));
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"), "{:#}", r.0);
    // Resolved settings are recorded with the task's inputs.
    let inputs = &r.task("work")["inputs"]["parameters"];
    assert_eq!(inputs["cpu_limit"], "500m");
    assert_eq!(inputs["memory_limit"], "512Mi");
    assert_eq!(inputs["accelerator_type"], "nvidia.com/gpu");
    assert_eq!(inputs["accelerator_count"], "1");

    // A value that is not a quantity fails the task that uses it, saying which setting and why.
    let (code, r) = h.run(&yaml, &["-p", "cpu=lots"]);
    assert_eq!((code, r.state()), (1, "FAILED"));
    assert_eq!(r.task_state("work"), "FAILED");
    let error = r.task("work")["error"].as_str().unwrap();
    assert!(error.contains("`lots` is not a CPU quantity"), "{error}");
    assert!(matches!(r.task_state("work-2"), "SUCCEEDED" | "CACHED"));
}

fn every_runtime_placeholder_resolves(h: &Home) {
    let yaml = h.compile(&compat("placeholders"));
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"), "{:#}", r.0);
    let text = r.task_output("show", "out").as_str().unwrap().to_owned();
    let lines: Vec<&str> = text.lines().collect();
    let [job_name, resource_name, job_uuid, task_name, task_uuid, create, schedule, root] = lines[..] else {
        panic!("expected 8 lines, got {text:?}");
    };
    let run = &r.0["run"];
    assert_eq!(job_name, run["display_name"].as_str().unwrap());
    assert_eq!(resource_name, format!("placeholders-{}", r.id()));
    assert_eq!(job_uuid, r.id());
    assert_eq!(task_name, "show");
    assert_eq!(task_uuid, r.task("show")["id"].as_str().unwrap());
    let created = chrono::DateTime::parse_from_rfc3339(create).unwrap_or_else(|e| panic!("{create}: {e}"));
    assert!(create.ends_with('Z') && created.timestamp_millis() / 1000 == run["created_at"].as_i64().unwrap() / 1000);
    // A run nobody scheduled: kfp gives its creation time.
    assert_eq!(schedule, create);
    assert!(std::path::Path::new(root).is_absolute() && root.ends_with(&r.id()), "{root}");
}

fn ignore_upstream_failure_falls_back_to_the_default(h: &Home) {
    let yaml = h.compile(&compat("ignore_failure"));
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (1, "FAILED"));
    assert_eq!(r.task_state("fail-op"), "FAILED");
    assert_eq!(r.task_state("print-op"), "SUCCEEDED");
    assert_eq!(r.task("print-op")["inputs"]["parameters"]["message"], "default");
    let logs = h.output(&["logs", &r.id(), "print-op"]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.lines().any(|l| l.trim_end().ends_with("default")), "{text}");
}

per_backend!(
    fstrings_in_dags_conditions_and_loops,
    resource_settings_from_parameters_and_task_outputs,
    every_runtime_placeholder_resolves,
    ignore_upstream_failure_falls_back_to_the_default,
);

/// A run started by a recurring run gets the schedule's fire time (testdata/kfp/compat/schedule_time.py,
/// through the real kfp.Client against `secondrow server`). The task writes its stamp into the test's folder,
/// which the task sandbox would refuse.
fn schedule_time_of_a_recurring_run_is_its_fire_time(h: &Home) {
    let server = crate::api::Server::start(h, &["--no-task-sandbox"]);
    let out = std::process::Command::new(python())
        .arg(compat("schedule_time"))
        .args([&server.url, h.path().to_str().unwrap()])
        .current_dir(h.path())
        .env("HOME", h.path())
        .env("TMPDIR", h.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "schedule_time.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

per_backend!(schedule_time_of_a_recurring_run_is_its_fire_time);
