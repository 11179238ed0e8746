//! Katib Experiment parsing, validation (each error names its field) and trial template substitution.

use secondrow_error::ErrorKind;
use secondrow_tune::experiment::{substitute_str, CollectorKind};
use secondrow_tune::space::{Distribution, Domain, Value};
use secondrow_tune::{Direction, Experiment, TuneError};
use std::collections::BTreeMap;

const BASE: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: forest-search
  namespace: team-a
spec:
  objective:
    type: maximize
    goal: 0.97
    objectiveMetricName: accuracy
    additionalMetricNames: [loss]
  algorithm:
    algorithmName: tpe
    algorithmSettings:
      - {name: random_state, value: "7"}
  earlyStopping:
    algorithmName: medianstop
    algorithmSettings:
      - {name: min_trials_required, value: "3"}
      - {name: start_step, value: "4"}
  parallelTrialCount: 2
  maxTrialCount: 12
  maxFailedTrialCount: 3
  resumePolicy: Never
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.001", max: "0.3", distribution: logUniform}
    - name: depth
      parameterType: int
      feasibleSpace: {min: "2", max: "12", step: "2"}
    - name: criterion
      parameterType: categorical
      feasibleSpace: {list: [gini, entropy]}
    - name: batch
      parameterType: discrete
      feasibleSpace: {list: ["32", "64", "128"]}
  metricsCollectorSpec:
    collector: {kind: StdOut}
  trialTemplate:
    primaryContainerName: training
    trialParameters:
      - {name: learningRate, description: Learning rate, reference: lr}
      - {name: maxDepth, reference: depth}
      - {name: criterion, reference: criterion}
      - {name: batchSize, reference: batch}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: training
                image: example/train:1
                command:
                  - python3
                  - train.py
                  - --lr=${trialParameters.learningRate}
                  - --depth=${trialParameters.maxDepth}
                  - --criterion=${trialParameters.criterion}
                  - --batch=${trialParameters.batchSize}
"#;

fn edited(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "test edit {from:?} does not apply");
    BASE.replacen(from, to, 1)
}

fn error_path(yaml: &str) -> String {
    match Experiment::parse(yaml) {
        Ok(_) => panic!("accepted an invalid experiment"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            e.path().unwrap_or("<none>").to_string()
        }
    }
}

#[test]
fn the_complete_example_parses_and_gives_a_typed_space() {
    let e = Experiment::parse(BASE).expect("valid");
    assert_eq!(e.direction(), Direction::Maximize);
    assert_eq!(e.parallel_trial_count(), 2);
    assert_eq!(e.metric_strategy("accuracy"), "max");
    assert_eq!(e.metric_names(), ["accuracy", "loss"]);
    assert_eq!(e.collector(), CollectorKind::StdOut);
    let s = e.space().expect("space");
    assert_eq!(s.params[0].domain, Domain::Double { min: 0.001, max: 0.3, step: None, dist: Distribution::LogUniform });
    assert_eq!(s.params[1].domain, Domain::Int { min: 2, max: 12, step: 2, dist: Distribution::Uniform });
    assert_eq!(s.params[2].domain, Domain::Categorical(vec!["gini".into(), "entropy".into()]));
    assert_eq!(s.params[3].domain, Domain::Discrete(vec!["32".into(), "64".into(), "128".into()]));
}

#[test]
fn feasible_space_numbers_may_be_bare_yaml_numbers() {
    let e =
        Experiment::parse(&edited(r#"{min: "0.001", max: "0.3", distribution: logUniform}"#, "{min: 0.001, max: 0.3}"))
            .expect("valid");
    assert!(
        matches!(e.space().expect("space").params[0].domain, Domain::Double { min, max, .. } if min == 0.001 && max == 0.3)
    );
}

#[test]
fn the_model_round_trips_through_yaml() {
    let e = Experiment::parse(BASE).expect("valid");
    let text = serde_yaml_ng::to_string(&e).expect("serialise");
    assert_eq!(Experiment::parse(&text).expect("reparse"), e);
}

#[test]
fn each_broken_rule_names_its_field() {
    let cases: Vec<(String, &str)> = vec![
        (edited("apiVersion: kubeflow.org/v1beta1", "apiVersion: kubeflow.org/v1"), "apiVersion"),
        (edited("kind: Experiment", "kind: Trial"), "kind"),
        (edited("name: forest-search", "name: Forest_Search"), "metadata.name"),
        (edited("name: forest-search", "name: a-name-that-is-far-too-long-for-katib-experiments"), "metadata.name"),
        (edited("type: maximize", "type: biggest"), "spec.objective.type"),
        (edited("objectiveMetricName: accuracy", "objectiveMetricName: \"\""), "spec.objective.objectiveMetricName"),
        (
            edited("additionalMetricNames: [loss]", "additionalMetricNames: [loss, accuracy]"),
            "spec.objective.additionalMetricNames[1]",
        ),
        (edited("algorithmName: tpe", "algorithmName: simulated-annealing"), "spec.algorithm.algorithmName"),
        (
            edited("{name: random_state, value: \"7\"}", "{name: temperature, value: \"7\"}"),
            "spec.algorithm.algorithmSettings[0].name",
        ),
        (
            edited("{name: random_state, value: \"7\"}", "{name: gamma, value: \"1.5\"}"),
            "spec.algorithm.algorithmSettings[0].value",
        ),
        (
            edited("{name: random_state, value: \"7\"}", "{name: random_state, value: \"-1\"}"),
            "spec.algorithm.algorithmSettings[0].value",
        ),
        (edited("algorithmName: medianstop", "algorithmName: hyperstop"), "spec.earlyStopping.algorithmName"),
        (
            edited("{name: start_step, value: \"4\"}", "{name: start_step, value: \"0\"}"),
            "spec.earlyStopping.algorithmSettings[1].value",
        ),
        (edited("parallelTrialCount: 2", "parallelTrialCount: 0"), "spec.parallelTrialCount"),
        (edited("parallelTrialCount: 2", "parallelTrialCount: 13"), "spec.parallelTrialCount"),
        (edited("maxTrialCount: 12", "maxTrialCount: -1"), "spec.maxTrialCount"),
        (edited("maxFailedTrialCount: 3", "maxFailedTrialCount: 13"), "spec.maxFailedTrialCount"),
        (edited("resumePolicy: Never", "resumePolicy: Sometimes"), "spec.resumePolicy"),
        (edited(r#"{min: "0.001", max: "0.3""#, r#"{min: "0.5", max: "0.3""#), "spec.parameters[0].feasibleSpace.min"),
        (edited(r#"{min: "0.001", max: "0.3""#, r#"{min: "zero", max: "0.3""#), "spec.parameters[0].feasibleSpace.min"),
        (edited(r#"{min: "0.001", max: "0.3""#, r#"{max: "0.3""#), "spec.parameters[0].feasibleSpace.min"),
        (edited(r#"{min: "0.001", max: "0.3""#, r#"{min: "0", max: "0.3""#), "spec.parameters[0].feasibleSpace.min"),
        (edited("distribution: logUniform", "distribution: cauchy"), "spec.parameters[0].feasibleSpace.distribution"),
        (
            edited(r#"{min: "2", max: "12", step: "2"}"#, r#"{min: "2", max: "12", step: "-2"}"#),
            "spec.parameters[1].feasibleSpace.step",
        ),
        (
            edited(r#"{min: "2", max: "12", step: "2"}"#, r#"{min: "2.5", max: "12"}"#),
            "spec.parameters[1].feasibleSpace.min",
        ),
        (
            edited(r#"{min: "2", max: "12", step: "2"}"#, r#"{min: "2", max: "12", list: ["3"]}"#),
            "spec.parameters[1].feasibleSpace.list",
        ),
        (edited("{list: [gini, entropy]}", "{list: []}"), "spec.parameters[2].feasibleSpace.list"),
        (edited("{list: [gini, entropy]}", "{list: [gini, gini]}"), "spec.parameters[2].feasibleSpace.list[1]"),
        (edited("{list: [gini, entropy]}", "{list: [gini], min: \"1\"}"), "spec.parameters[2].feasibleSpace.min"),
        (
            edited(r#"{list: ["32", "64", "128"]}"#, r#"{list: ["32", "big"]}"#),
            "spec.parameters[3].feasibleSpace.list[1]",
        ),
        (edited("parameterType: categorical", "parameterType: boolean"), "spec.parameters[2].parameterType"),
        (edited("- name: depth", "- name: lr"), "spec.parameters[1].name"),
        (
            edited("collector: {kind: StdOut}", "collector: {kind: Telepathy}"),
            "spec.metricsCollectorSpec.collector.kind",
        ),
        (
            edited("primaryContainerName: training", "primaryContainerName: \"\""),
            "spec.trialTemplate.primaryContainerName",
        ),
        (
            edited("primaryContainerName: training", "primaryContainerName: sidecar"),
            "spec.trialTemplate.trialSpec.spec.template.spec.containers",
        ),
        (
            edited("{name: maxDepth, reference: depth}", "{name: maxDepth, reference: height}"),
            "spec.trialTemplate.trialParameters[1].reference",
        ),
        (
            edited("{name: maxDepth, reference: depth}", "{name: maxDepth, reference: lr}"),
            "spec.trialTemplate.trialParameters[1].reference",
        ),
        (
            edited("{name: maxDepth, reference: depth}", "{name: learningRate, reference: depth}"),
            "spec.trialTemplate.trialParameters[1].name",
        ),
        (
            edited("{name: maxDepth, reference: depth}", "{name: \"max{Depth}\", reference: depth}"),
            "spec.trialTemplate.trialParameters[1].name",
        ),
        (
            edited("--depth=${trialParameters.maxDepth}", "--depth=${trialParameters.depthh}"),
            "spec.trialTemplate.trialSpec",
        ),
        (edited("--depth=${trialParameters.maxDepth}", "--depth=4"), "spec.trialTemplate.trialParameters[1].name"),
        (edited("      - {name: maxDepth, reference: depth}\n", ""), "spec.parameters[1].name"),
        (edited("      apiVersion: batch/v1\n", ""), "spec.trialTemplate.trialSpec.apiVersion"),
        (
            edited("      kind: Job\n", "      kind: Job\n      metadata: {name: fixed}\n"),
            "spec.trialTemplate.trialSpec.metadata.name",
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(error_path(&yaml), want, "for an experiment expected to fail at {want}");
    }
}

#[test]
fn a_parameter_no_trial_parameter_covers_is_refused() {
    // Drop the trial parameter for `batch` and its placeholder: `batch` is then referenced by nothing.
    let yaml = edited("      - {name: batchSize, reference: batch}\n", "")
        .replace("                  - --batch=${trialParameters.batchSize}\n", "");
    assert_eq!(error_path(&yaml), "spec.parameters[3].name");
}

#[test]
fn algorithm_specific_rules_are_checked() {
    let grid = edited("algorithmName: tpe", "algorithmName: grid");
    assert_eq!(error_path(&grid), "spec.parameters[0].feasibleSpace.step");
    let stepped = grid
        .replace(r#"{min: "0.001", max: "0.3", distribution: logUniform}"#, r#"{min: "0.1", max: "0.3", step: "0.1"}"#);
    // 3 × 6 × 2 × 3 = 108 combinations ≥ 12 trials.
    Experiment::parse(&stepped).expect("grid with steps");
    let too_many = stepped.replace("maxTrialCount: 12", "maxTrialCount: 109");
    assert_eq!(error_path(&too_many), "spec.maxTrialCount");
    let cmaes = edited("algorithmName: tpe", "algorithmName: cmaes")
        .replace("parameterType: int", "parameterType: discrete")
        .replace(r#"{min: "2", max: "12", step: "2"}"#, r#"{list: ["2", "4"]}"#);
    assert_eq!(error_path(&cmaes), "spec.parameters");
    let bo = edited("{name: random_state, value: \"7\"}", "{name: acq_func, value: EIps}")
        .replace("algorithmName: tpe", "algorithmName: bayesianoptimization");
    assert!(matches!(Experiment::parse(&bo), Err(TuneError::Unsupported { .. })));
    let hb = edited("algorithmName: tpe", "algorithmName: hyperband").replace(
        "{name: random_state, value: \"7\"}",
        "{name: resource_name, value: depth}\n      - {name: r_l, value: \"9\"}",
    );
    assert_eq!(error_path(&hb), "spec.parallelTrialCount", "eta^s_max = 9 > parallelTrialCount 2");
    Experiment::parse(&hb.replace("parallelTrialCount: 2", "parallelTrialCount: 9"))
        .expect("hyperband with enough parallel trials");
    let hb_missing = edited("algorithmName: tpe", "algorithmName: hyperband")
        .replace("{name: random_state, value: \"7\"}", "{name: r_l, value: \"9\"}");
    assert_eq!(error_path(&hb_missing), "spec.algorithm.algorithmSettings");
    let pbt = edited("algorithmName: tpe", "algorithmName: pbt");
    assert!(matches!(Experiment::parse(&pbt), Err(TuneError::Unsupported { .. })));
}

#[test]
fn collector_rules() {
    let file = edited(
        "collector: {kind: StdOut}",
        "collector: {kind: File}\n    source: {fileSystemPath: {path: relative/metrics.log, kind: File}}",
    );
    assert_eq!(error_path(&file), "spec.metricsCollectorSpec.source.fileSystemPath.path");
    let json_filter = edited(
        "collector: {kind: StdOut}",
        "collector: {kind: File}\n    source: {fileSystemPath: {path: /tmp/m.json, format: JSON}, filter: {metricsFormat: [\"(a)=(b)\"]}}",
    );
    assert_eq!(error_path(&json_filter), "spec.metricsCollectorSpec.source.filter");
    let one_group = edited(
        "collector: {kind: StdOut}",
        "collector: {kind: StdOut}\n    source: {filter: {metricsFormat: [\"acc=(.*)\"]}}",
    );
    assert_eq!(error_path(&one_group), "spec.metricsCollectorSpec.source.filter.metricsFormat[0]");
    let ok = edited(
        "collector: {kind: StdOut}",
        "collector: {kind: File}\n    source: {fileSystemPath: {path: /tmp/m.json, kind: File, format: JSON}}",
    );
    let e = Experiment::parse(&ok).expect("valid");
    assert_eq!(e.collector(), CollectorKind::File { path: "/tmp/m.json".into(), json: true });
}

#[test]
fn trial_parameters_are_substituted_into_the_primary_command() {
    let e = Experiment::parse(BASE).expect("valid");
    let a = vec![
        ("lr".to_string(), Value::Double(0.05)),
        ("depth".to_string(), Value::Int(4)),
        ("criterion".to_string(), Value::Str("gini".into())),
        ("batch".to_string(), Value::Str("64".into())),
    ];
    let spec = e.render_trial_spec(&a, "forest-search-abcdefgh", None).expect("render");
    let cmd = e.trial_command(&spec, "forest-search-abcdefgh").expect("command");
    assert_eq!(cmd.command, ["python3", "train.py", "--lr=0.05", "--depth=4", "--criterion=gini", "--batch=64"]);
    assert!(cmd.env.contains(&("KATIB_TRIAL_NAME".into(), "forest-search-abcdefgh".into())));
    // An assignment for a parameter no trial parameter covers is refused.
    let mut extra = a.clone();
    extra.push(("momentum".into(), Value::Double(0.9)));
    assert!(matches!(e.render_trial_spec(&extra, "t", None), Err(TuneError::Substitution(_))));
}

#[test]
fn trial_metadata_references_are_substituted() {
    let yaml = edited(
        "      - {name: batchSize, reference: batch}\n",
        "      - {name: batchSize, reference: batch}\n      - {name: trialName, reference: \"${trialSpec.Name}\"}\n",
    )
    .replace(
        "- --batch=${trialParameters.batchSize}",
        "- --batch=${trialParameters.batchSize}\n                  - --name=${trialParameters.trialName}",
    );
    let e = Experiment::parse(&yaml).expect("valid");
    let a = vec![
        ("lr".to_string(), Value::Double(0.1)),
        ("depth".to_string(), Value::Int(2)),
        ("criterion".to_string(), Value::Str("gini".into())),
        ("batch".to_string(), Value::Str("32".into())),
    ];
    let spec = e.render_trial_spec(&a, "forest-search-x1", None).expect("render");
    assert_eq!(
        e.trial_command(&spec, "forest-search-x1").expect("cmd").command.last().map(String::as_str),
        Some("--name=forest-search-x1")
    );
}

#[test]
fn unknown_placeholders_are_clear_errors() {
    let values = BTreeMap::from([("lr".to_string(), "0.1".to_string())]);
    assert_eq!(substitute_str("--lr=${trialParameters.lr} x", &values).expect("ok"), "--lr=0.1 x");
    let err = substitute_str("--m=${trialParameters.momentum}", &values).expect_err("unknown");
    assert!(err.to_string().contains("momentum") && err.to_string().contains("lr"), "{err}");
    assert!(substitute_str("--m=${trialParameters.lr", &values).is_err());
}

#[test]
fn config_map_templates_are_accepted_and_rendered_from_the_callers_text() {
    let yaml = BASE.split("    trialSpec:\n").next().expect("head").to_string()
        + "    configMap: {configMapName: templates, templatePath: job.yaml}\n";
    let e = Experiment::parse(&yaml).expect("valid with configMap");
    let spec: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        "apiVersion: batch/v1\nkind: Job\nspec: {template: {spec: {containers: [{name: training, command: [run, '${trialParameters.learningRate}', '${trialParameters.maxDepth}', '${trialParameters.criterion}', '${trialParameters.batchSize}']}]}}}",
    )
    .expect("yaml");
    let a = vec![
        ("lr".to_string(), Value::Double(0.2)),
        ("depth".to_string(), Value::Int(6)),
        ("criterion".to_string(), Value::Str("entropy".into())),
        ("batch".to_string(), Value::Str("128".into())),
    ];
    let r = e.render_trial_spec(&a, "t", Some(&spec)).expect("render");
    assert_eq!(e.trial_command(&r, "t").expect("cmd").command, ["run", "0.2", "6", "entropy", "128"]);
    let both = yaml.replace("    configMap:", "    trialSpec: {apiVersion: batch/v1, kind: Job}\n    configMap:");
    assert_eq!(error_path(&both), "spec.trialTemplate");
}

#[test]
fn garbage_is_a_parse_error_of_kind_invalid_input() {
    let e = Experiment::parse("spec: [1, 2").expect_err("not yaml");
    assert!(matches!(e, TuneError::Parse(_)));
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn a_kfp_pipeline_trial_spec_is_accepted_and_checked() {
    let job = "    trialSpec:\n      apiVersion: batch/v1\n      kind: Job\n      spec:\n        template:\n          spec:\n            restartPolicy: Never\n            containers:\n              - name: training\n                image: example/train:1\n                command:\n                  - python3\n                  - train.py\n                  - --lr=${trialParameters.learningRate}\n                  - --depth=${trialParameters.maxDepth}\n                  - --criterion=${trialParameters.criterion}\n                  - --batch=${trialParameters.batchSize}\n";
    let pipeline = |spec: &str| {
        edited(
            job,
            &format!("    trialSpec:\n      apiVersion: secondrow/v1\n      kind: Pipeline\n      spec:\n{spec}"),
        )
        .replace("    primaryContainerName: training\n", "")
    };
    let params = "        parameters:\n          lr: ${trialParameters.learningRate}\n          depth: ${trialParameters.maxDepth}\n          criterion: ${trialParameters.criterion}\n          batch: ${trialParameters.batchSize}\n";
    let ok = pipeline(&format!("        pipelineFile: pipeline.yaml\n{params}"));
    Experiment::parse(&ok).unwrap();
    let inline = pipeline(&format!("        pipelineSpec: {{pipelineInfo: {{name: p}}}}\n{params}"));
    Experiment::parse(&inline).unwrap();
    assert_eq!(error_path(&pipeline(params)), "spec.trialTemplate.trialSpec.spec.pipelineFile");
    let both = pipeline(&format!("        pipelineFile: p.yaml\n        pipelineSpec: {{a: 1}}\n{params}"));
    assert_eq!(error_path(&both), "spec.trialTemplate.trialSpec.spec");
    let nested = pipeline("        pipelineFile: p.yaml\n        parameters:\n          lr: [1, 2]\n");
    assert_eq!(error_path(&nested), "spec.trialTemplate.trialSpec.spec.parameters");
    // Another kind is still unsupported.
    let other = ok.replace("kind: Pipeline", "kind: PipelineRun");
    assert!(matches!(Experiment::parse(&other), Err(TuneError::Unsupported { .. })));
}
