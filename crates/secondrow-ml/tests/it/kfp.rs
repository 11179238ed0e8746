//! The component YAMLs in `components/` are generated from the catalogue and load with the real kfp SDK.
//! Regenerate them with `UPDATE_EXPECT=1 cargo test -p secondrow-ml --test it`.

use std::path::PathBuf;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn component_yamls_are_up_to_date() {
    let dir = repo_root().join("components");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut stale = Vec::new();
    for name in secondrow_ml::component_names() {
        let expected = secondrow_ml::component_yaml(name).unwrap();
        let path = dir.join(format!("{name}.yaml"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &expected).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(expected.as_str()) {
            stale.push(name.to_string());
        }
    }
    assert!(stale.is_empty(), "stale component YAMLs (run with UPDATE_EXPECT=1): {stale:?}");
}

/// Loads every YAML with `kfp.components.load_component_from_file` and checks the typed inputs and
/// outputs. Needs `.venv-test` (kfp 2.14.6) at the repo root, which CI creates; skipped without it.
#[test]
fn component_yamls_load_with_kfp() {
    let python = repo_root().join(".venv-test/bin/python");
    if !python.exists() {
        eprintln!("skipping: {} not found", python.display());
        return;
    }
    let script = r#"
import glob, sys
from kfp import components
n = 0
for path in sorted(glob.glob(sys.argv[1] + '/*.yaml')):
    c = components.load_component_from_file(path)
    spec = c.component_spec
    assert spec.implementation.container.command[:2] == ['secondrow', 'component'], path
    assert spec.implementation.container.args == ['--executor-input', '{{$}}'], path
    for name, out in spec.outputs.items():
        assert out.type.startswith('system.'), (path, name, out.type)
    n += 1
c = components.load_component_from_file(sys.argv[1] + '/evaluate.yaml')
types = {k: v.type for k, v in c.component_spec.outputs.items()}
assert types == {'metrics': 'system.Metrics@0.0.1', 'classification_metrics': 'system.ClassificationMetrics@0.0.1',
                 'report': 'system.Markdown@0.0.1', 'html_report': 'system.HTML@0.0.1'}, types
c = components.load_component_from_file(sys.argv[1] + '/train_random_forest.yaml')
inputs = {k: (v.type, v.default) for k, v in c.component_spec.inputs.items()}
assert inputs['n_estimators'] == ('Integer', 100), inputs
assert inputs['train_data'][0] == 'system.Dataset@0.0.1', inputs
print(n)
"#;
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(repo_root().join("components"))
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "kfp failed: {}\n{}", stdout, String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.trim(), secondrow_ml::component_names().len().to_string());
}

/// The quickstart's compiled pipeline only calls components that exist, with the executor input.
#[test]
fn quickstart_pipeline_calls_known_components() {
    let text = std::fs::read_to_string(repo_root().join("examples/quickstart/pipeline.yaml")).unwrap();
    let document: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    let executors = document["deploymentSpec"]["executors"].as_object().unwrap();
    assert!(executors.len() >= 8);
    for (name, executor) in executors {
        let command: Vec<&str> =
            executor["container"]["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(&command[..2], &["secondrow", "component"], "{name}");
        assert!(secondrow_ml::component_names().contains(&command[2]), "{name}: {}", command[2]);
        assert_eq!(executor["container"]["args"], serde_json::json!(["--executor-input", "{{$}}"]), "{name}");
    }
}
