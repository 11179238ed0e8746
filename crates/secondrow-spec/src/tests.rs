use std::path::PathBuf;

use serde_json::json;

use super::*;

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/kfp/samples")
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(samples_dir().join(format!("{name}.yaml"))).expect("sample exists")
}

/// Every sample, as `testdata/kfp/samples/expected.tsv` lists them (name, expected state).
fn sample_names() -> Vec<String> {
    let tsv = std::fs::read_to_string(samples_dir().join("expected.tsv")).expect("expected.tsv exists");
    tsv.lines().filter_map(|l| l.split('\t').next()).filter(|n| !n.is_empty()).map(str::to_string).collect()
}

#[test]
fn every_sample_validates() {
    for name in sample_names() {
        let p = Pipeline::from_yaml(&sample(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!p.executors.is_empty(), "{name}");
    }
}

#[test]
fn lightweight_prelude_is_detected() {
    let p = Pipeline::from_yaml(&sample("loops")).unwrap();
    let e = &p.executors["exec-add-all"];
    assert_eq!(e.pip_prelude_len, 3);
    assert!(e.is_lightweight_python);
    let p = Pipeline::from_yaml(&sample("container_shell")).unwrap();
    assert!(p.executors.values().all(|e| e.pip_prelude_len == 0 && !e.is_lightweight_python));
}

fn problems(yaml: &str) -> Vec<String> {
    match Pipeline::from_yaml(yaml) {
        Ok(_) => vec![],
        Err(e) => {
            let mut v: Vec<String> = e.problems().iter().map(|p| p.to_string()).collect();
            if v.is_empty() {
                v.push(e.to_string());
            }
            v
        }
    }
}

#[test]
fn syntax_errors_name_the_line() {
    let e = problems("pipelineInfo: {name: x}\nroot: [unclosed\n");
    assert!(e[0].contains("line"), "{e:?}");
    let e = problems("pipelineInfo: {name: x}\n");
    assert!(e[0].contains("missing field `root`"), "{e:?}");
    let e = problems("just a string");
    assert!(e[0].contains("not a valid pipeline spec"), "{e:?}");
}

#[test]
fn reports_every_problem_with_its_location() {
    let yaml = sample("failure")
        .replace("name: comp-ok-3", "name: comp-nope")
        .replace("executorLabel: exec-cleanup", "executorLabel: exec-missing");
    let e = problems(&yaml);
    assert!(e.iter().any(|p| p.contains("root.dag.tasks.ok-3.componentRef: unknown component `comp-nope`")), "{e:?}");
    assert!(
        e.iter().any(|p| p.contains("components.comp-cleanup.executorLabel: unknown executor `exec-missing`")),
        "{e:?}"
    );
}

#[test]
fn cycles_are_rejected() {
    let yaml = sample("failure").replacen("dependentTasks:\n        - ok\n", "dependentTasks:\n        - ok-2\n", 1);
    let e = problems(&yaml);
    assert!(e.iter().any(|p| p.contains("dependency cycle")), "{e:?}");
}

#[test]
fn unknown_placeholder_is_rejected() {
    let yaml = sample("container_shell").replacen("{{$.pipeline_task_name}}", "{{$.pipeline_task_nme}}", 1);
    let e = problems(&yaml);
    assert!(e.iter().any(|p| p.contains("unknown placeholder `{{$.pipeline_task_nme}}`")), "{e:?}");
}

#[test]
fn parameters_are_bound_and_checked() {
    let p = Pipeline::from_yaml(&sample("params_types")).unwrap();
    let bound = p.bind_parameters(&serde_json::Map::new()).unwrap();
    assert_eq!(bound["i"], json!(3));
    assert!(!bound.contains_key("note"));
    let e = p.bind_cli_parameters(&[("i".into(), "x".into()), ("zzz".into(), "1".into())]).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("parameter `i`") && text.contains("NUMBER_INTEGER"), "{text}");
    assert!(text.contains("parameter `zzz`: unknown parameter"), "{text}");
    let ok = p.bind_cli_parameters(&[("i".into(), "10".into()), ("s".into(), "x".into())]).unwrap();
    assert_eq!(ok["i"], json!(10));
}

#[test]
fn api_wrapper_form() {
    let doc: serde_json::Value = serde_yaml_ng::from_str(&sample("retry")).unwrap();
    let wrapped = json!({"pipeline_spec": doc, "platform_spec": {"platforms": {}}});
    let p = Pipeline::from_json(&wrapped).unwrap();
    assert!(p.platform_spec.is_some());
}

#[test]
fn components_that_contain_each_other_are_refused() {
    // comp-a runs comp-b, which runs comp-a again: an endless expansion unless validation stops it.
    let yaml = r#"
pipelineInfo: {name: loop}
schemaVersion: 2.1.0
root:
  dag:
    tasks:
      start: {componentRef: {name: comp-a}, taskInfo: {name: start}}
components:
  comp-a:
    dag:
      tasks:
        inner: {componentRef: {name: comp-b}, taskInfo: {name: inner}}
  comp-b:
    dag:
      tasks:
        again: {componentRef: {name: comp-a}, taskInfo: {name: again}}
"#;
    let e = problems(yaml);
    assert!(e.iter().any(|p| p.contains("contains itself")), "{e:?}");
}
