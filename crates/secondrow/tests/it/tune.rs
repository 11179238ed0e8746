//! `secondrow tune`: Katib Experiments run end to end with the real binary over a small Python trial
//! (`testdata/tuning/objective.py`, loss = (x−1)² + (y+2)², printed as `name=value` lines per step).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::{per_backend, python, repo_root, wait_for, Home};

fn script() -> PathBuf {
    repo_root().join("testdata/tuning/objective.py")
}

/// An Experiment over `objective.py`; `spec_extra` is added to `spec` (algorithm, counts, parameters),
/// `args` follow `--x X --y Y` on the trial's command line.
fn experiment(h: &Home, name: &str, spec_extra: &str, command: &[String]) -> PathBuf {
    let cmd = command.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
    let yaml = format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
    additionalMetricNames: [accuracy]
{spec_extra}
  trialTemplate:
    primaryContainerName: training
    trialParameters:
      - name: x
        reference: x
      - name: y
        reference: y
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training
                image: python:3.11
                command: [{cmd}]
            restartPolicy: Never
"#
    );
    let path = h.path().join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The trial's command: the test Python running `objective.py` with the trial's x and y, then `extra`.
fn trial_command(extra: &[&str]) -> Vec<String> {
    let mut c = vec![
        python().display().to_string(),
        script().display().to_string(),
        "--x".into(),
        "${trialParameters.x}".into(),
        "--y".into(),
        "${trialParameters.y}".into(),
    ];
    c.extend(extra.iter().map(|s| s.to_string()));
    c
}

fn json_of(h: &Home, args: &[&str]) -> Value {
    let out = h.output(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn states(trials: &Value) -> Vec<String> {
    trials.as_array().unwrap().iter().map(|t| t["state"].as_str().unwrap().to_owned()).collect()
}

const GRID: &str = r#"    goal: 0.001
  algorithm:
    algorithmName: grid
  parallelTrialCount: 2
  maxTrialCount: 15
  maxFailedTrialCount: 3
  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {min: "0", max: "2", step: "0.5"}
    - name: y
      parameterType: discrete
      feasibleSpace:
        list: ["-3", "-2", "-1"]"#;

per_backend!(grid_experiment_reaches_the_goal_and_its_trials_are_runs,);

fn grid_experiment_reaches_the_goal_and_its_trials_are_runs(h: &Home) {
    let yaml = experiment(h, "quad-grid", GRID, &trial_command(&[]));
    let out = h.cmd().arg("tune").arg(&yaml).arg("--json").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Live progress: trials starting and finishing, and the best so far.
    assert!(stderr.contains("started") && stderr.contains("best quad-grid-"), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &doc["experiment"];
    assert_eq!(e["state"], "Succeeded");
    assert_eq!(e["reason"], "ExperimentGoalReached");
    let trials = doc["trials"].as_array().unwrap();
    assert!(trials.len() <= 15);
    let best = trials.iter().find(|t| t["name"] == e["optimalTrial"]).expect("the optimal trial is recorded");
    assert_eq!(best["objective"], 0.0);
    assert_eq!(best["assignments"], serde_json::json!([{"name": "x", "value": "1"}, {"name": "y", "value": "-2"}]));
    // Per-step observations of the objective and the additional metric.
    let loss: Vec<f64> = best["observations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["name"] == "loss")
        .map(|o| o["value"].as_f64().unwrap())
        .collect();
    assert_eq!(loss, vec![2.0, 1.0, 0.0]);
    assert!(best["observations"].as_array().unwrap().iter().any(|o| o["name"] == "accuracy" && o["value"] == 1.0));
    // Every trial that ran is a run: its logs and record are reachable by the run id.
    let run_id = best["runId"].as_str().unwrap();
    let logs = h.output(&["logs", run_id]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("loss=0.000000"));
    let run = h.get_json(run_id);
    assert_eq!(run["run"]["state"], "SUCCEEDED");
    assert_eq!(run["run"]["display_name"], best["name"]);

    // list / get / trials.
    let list = json_of(h, &["tune", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let get = json_of(h, &["tune", "get", "quad-grid", "--json"]);
    assert_eq!(get["status"]["best"][1], 0.0);
    assert_eq!(json_of(h, &["tune", "trials", "quad-grid", "--json"]).as_array().unwrap().len(), trials.len());
    let text = h.output(&["tune", "get", "quad-grid"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("x=1, y=-2"));

    // The same experiment again: the name is taken (exit 2), the first one is unchanged.
    let again = h.cmd().arg("tune").arg(&yaml).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    // A finished experiment cannot be resumed or stopped.
    for cmd in ["resume", "stop"] {
        let out = h.output(&["tune", cmd, "quad-grid"]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("already ended"), "{cmd}");
    }
}

#[test]
fn invalid_experiments_exit_2_naming_the_field_and_write_nothing() {
    let h = Home::new();
    let cmd = trial_command(&[]);
    let params = |space: &str| {
        format!(
            "  algorithm:\n    algorithmName: random\n  maxTrialCount: 2\n  parameters:\n    - name: x\n      parameterType: double\n      feasibleSpace: {space}\n    - name: y\n      parameterType: int\n      feasibleSpace: {{min: \"-3\", max: \"-1\"}}"
        )
    };
    let cases = [
        (params("{min: \"2\", max: \"1\"}"), "spec.parameters[0].feasibleSpace"),
        (
            params("{min: \"0\", max: \"2\"}").replace("algorithmName: random", "algorithmName: simulated-annealing"),
            "spec.algorithm.algorithmName",
        ),
        (
            params("{min: \"0\", max: \"2\"}").replace(
                "algorithmName: random",
                "algorithmName: random\n    algorithmSettings:\n      - name: n_startup\n        value: \"3\"",
            ),
            "spec.algorithm.algorithmSettings[0]",
        ),
    ];
    for (i, (spec, field)) in cases.iter().enumerate() {
        let yaml = experiment(&h, &format!("bad-{i}"), spec, &cmd);
        let out = h.cmd().arg("tune").arg(&yaml).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{field}: {stderr}");
        assert!(stderr.contains(field), "expected {field} in: {stderr}");
    }
    // A trial parameter that references no parameter.
    let yaml = experiment(&h, "bad-ref", &params("{min: \"0\", max: \"2\"}"), &cmd);
    let text = std::fs::read_to_string(&yaml).unwrap().replace("reference: y", "reference: z");
    std::fs::write(&yaml, text).unwrap();
    let out = h.cmd().arg("tune").arg(&yaml).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.trialTemplate.trialParameters[1]"));
    // Nothing was recorded.
    assert_eq!(json_of(&h, &["tune", "list", "--json"]), serde_json::json!([]));
}

#[test]
fn failing_trials_fail_the_experiment_with_clear_reasons() {
    let h = Home::new();
    let spec = "  algorithm:\n    algorithmName: random\n    algorithmSettings:\n      - name: random_state\n        value: \"7\"\n  parallelTrialCount: 1\n  maxTrialCount: 4\n  maxFailedTrialCount: 1\n  parameters:\n    - name: x\n      parameterType: double\n      feasibleSpace: {min: \"0\", max: \"2\"}\n    - name: y\n      parameterType: categorical\n      feasibleSpace:\n        list: [\"-2\"]";
    // A command that does not exist: each trial fails, naming it; the second failure fails the experiment.
    let missing = vec![
        "/nonexistent/train".to_string(),
        "--x".into(),
        "${trialParameters.x}".into(),
        "${trialParameters.y}".into(),
    ];
    let yaml = experiment(&h, "no-command", spec, &missing);
    let out = h.cmd().arg("tune").arg(&yaml).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["experiment"]["state"], "Failed");
    assert_eq!(doc["experiment"]["reason"], "ExperimentFailed");
    assert_eq!(states(&doc["trials"]), vec!["Failed", "Failed"], "maxFailedTrialCount 1 is exceeded by the second");
    let message = doc["trials"][0]["message"].as_str().unwrap();
    assert!(message.contains("/nonexistent/train"), "{message}");

    // A trial that never prints its objective: metrics unavailable, counted as failed.
    let yaml = experiment(&h, "silent", spec, &trial_command(&["--silent"]));
    let out = h.cmd().arg("tune").arg(&yaml).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(states(&doc["trials"]), vec!["MetricsUnavailable", "MetricsUnavailable"]);
    let message = doc["trials"][0]["message"].as_str().unwrap();
    assert!(message.contains("`loss` was never reported"), "{message}");
    // The first experiment is untouched by the second.
    assert_eq!(json_of(&h, &["tune", "get", "no-command", "--json"])["experiment"]["state"], "Failed");
}

#[test]
fn medianstop_stops_a_hopeless_trial_and_kills_it() {
    let h = Home::new();
    // Grid order is the list order: x = 1 and 1.1 succeed (losses fall by one per step to ~0), then x = 5
    // reports values far worse than their mean at step 2 and is stopped there, well before its 20 steps
    // (a second) end.
    let spec = "  algorithm:\n    algorithmName: grid\n  earlyStopping:\n    algorithmName: medianstop\n    algorithmSettings:\n      - name: min_trials_required\n        value: \"2\"\n      - name: start_step\n        value: \"2\"\n  parallelTrialCount: 1\n  maxTrialCount: 3\n  parameters:\n    - name: x\n      parameterType: discrete\n      feasibleSpace:\n        list: [\"1\", \"1.1\", \"5\"]\n    - name: y\n      parameterType: categorical\n      feasibleSpace:\n        list: [\"-2\"]";
    let yaml = experiment(&h, "early", spec, &trial_command(&["--steps", "20", "--sleep", "0.05"]));
    let out = h.cmd().arg("tune").arg(&yaml).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let trials = doc["trials"].as_array().unwrap();
    assert_eq!(states(&doc["trials"])[..2], ["Succeeded", "Succeeded"]);
    let last = &trials[2];
    assert_eq!(last["state"], "EarlyStopped", "{last}");
    assert!(last["message"].as_str().unwrap().contains("medianstop"));
    let run = h.get_json(last["runId"].as_str().unwrap());
    assert_eq!(run["run"]["state"], "CANCELED", "the stopped trial's run was killed");
}

per_backend!(killed_experiment_resumes_without_rerunning_finished_trials,);

fn killed_experiment_resumes_without_rerunning_finished_trials(h: &Home) {
    let spec = "  algorithm:\n    algorithmName: random\n    algorithmSettings:\n      - name: random_state\n        value: \"3\"\n  parallelTrialCount: 2\n  maxTrialCount: 6\n  parameters:\n    - name: x\n      parameterType: double\n      feasibleSpace: {min: \"0\", max: \"2\"}\n    - name: y\n      parameterType: double\n      feasibleSpace: {min: \"-3\", max: \"-1\"}";
    let yaml = experiment(h, "resumable", spec, &trial_command(&["--steps", "4", "--sleep", "0.4"]));
    let log = h.path().join("tune.stderr");
    let stderr = std::fs::File::create(&log).unwrap();
    let mut child = h.cmd().arg("tune").arg(&yaml).stdout(Stdio::null()).stderr(stderr).spawn().unwrap();
    // Read the store only once the runner has made it (two processes creating one SQLite file race).
    wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("experiment resumable (namespace default) created")
            .then_some(())
    });
    let trials = |h: &Home| {
        let out = h.output(&["tune", "trials", "resumable", "--json"]);
        serde_json::from_slice::<Value>(&out.stdout).ok()
    };
    // Kill it (SIGKILL: no clean-up) once two trials succeeded and others are running.
    let before = wait_for(Duration::from_secs(60), || {
        let t = trials(h)?;
        let s = states(&t);
        assert!(s.len() < 6 || s.iter().any(|s| s != "Succeeded"), "the experiment ended before the kill");
        (s.iter().filter(|s| *s == "Succeeded").count() >= 2 && s.iter().any(|s| s == "Running")).then_some(t)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let after_kill = trials(h).unwrap();
    let finished: Vec<Value> =
        after_kill.as_array().unwrap().iter().filter(|t| t["state"] == "Succeeded").cloned().collect();
    assert!(finished.len() >= before.as_array().unwrap().iter().filter(|t| t["state"] == "Succeeded").count());
    let open: Vec<String> = after_kill
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "Running")
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(!open.is_empty(), "a trial was running when the process was killed");

    let out = h.output(&["tune", "resume", "resumable", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["experiment"]["reason"], "ExperimentMaxTrialsReached");
    let all = doc["trials"].as_array().unwrap();
    assert_eq!(all.len(), 6, "maxTrialCount is never exceeded");
    assert!(all.iter().all(|t| t["state"] == "Succeeded"), "{all:?}");
    // Finished trials were not run again: same run, same finish time.
    for f in &finished {
        let now = all.iter().find(|t| t["name"] == f["name"]).unwrap();
        assert_eq!(now["runId"], f["runId"]);
        assert_eq!(now["finishedAt"], f["finishedAt"]);
    }
    // The trials left running were run again on their own run, which now succeeded.
    for name in &open {
        let t = all.iter().find(|t| t["name"] == name.as_str()).unwrap();
        let run = h.get_json(t["runId"].as_str().unwrap());
        assert_eq!(run["run"]["state"], "SUCCEEDED");
    }
}

#[test]
fn a_kfp_pipeline_is_the_trial_and_its_metrics_artifact_the_objective() {
    let h = Home::new();
    // The pipeline compiled with the real SDK next to the experiment, which names it by a relative path.
    h.compile(&repo_root().join("testdata/tuning/quad_pipeline.py"));
    let yaml = h.path().join("pipeline-trial.yaml");
    std::fs::copy(repo_root().join("testdata/tuning/pipeline-trial.yaml"), &yaml).unwrap();
    let out = h.cmd().arg("tune").arg(&yaml).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["experiment"]["reason"], "ExperimentGoalReached");
    // The stored experiment holds the compiled pipeline: it does not depend on the file any more.
    assert!(doc["experiment"]["spec"].as_str().unwrap().contains("pipelineSpec"));
    let trials = doc["trials"].as_array().unwrap();
    let best = trials.iter().find(|t| t["name"] == doc["experiment"]["optimalTrial"]).unwrap();
    assert_eq!(best["assignments"], serde_json::json!([{"name": "x", "value": "1"}, {"name": "y", "value": "-2"}]));
    assert_eq!(best["objective"], 0.0);
    // The objective came from the run's Metrics artifact, which `secondrow artifacts` shows.
    let artifacts = json_of(&h, &["artifacts", best["runId"].as_str().unwrap(), "--json"]);
    let metrics = artifacts.as_array().unwrap().iter().find(|a| a["schema_title"] == "system.Metrics").unwrap();
    assert_eq!(metrics["metadata"]["loss"], 0.0);
    // A pipeline parameter the pipeline does not have fails the trial with the pipeline's message.
    let text = std::fs::read_to_string(&yaml)
        .unwrap()
        .replace("name: quad-pipeline", "name: quad-typo")
        .replace("          y: ", "          why: ");
    std::fs::write(&yaml, text).unwrap();
    let out = h.cmd().arg("tune").arg(&yaml).arg("--json").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "no maxFailedTrialCount: the grid ends; {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &doc["trials"][0];
    assert_eq!(t["state"], "Failed");
    assert!(t["message"].as_str().unwrap().contains("why"), "{t}");
}

#[test]
fn tuning_over_the_api_keeps_namespaces_apart() {
    let h = Home::new();
    let token = |ns: &str| {
        let out = h.output(&["tokens", "create", "--namespace", ns, "--name", "tune"]);
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap().to_owned()
    };
    let (team_a, team_b) = (token("team-a"), token("team-b"));
    let server = crate::api::Server::start(&h, &[]);
    let remote = |token: &str, args: &[&str]| {
        h.cmd().arg("--server").arg(&server.url).arg("--token").arg(token).args(args).output().unwrap()
    };
    // The server's task sandbox lets trials use the system's tools: the same function in awk.
    let awk: Vec<String> = [
        "sh",
        "-c",
        "awk -v x=\"$0\" -v y=\"$1\" 'BEGIN { printf \"loss=%f\\n\", (x - 1) ^ 2 + (y + 2) ^ 2 }'",
        "${trialParameters.x}",
        "${trialParameters.y}",
    ]
    .map(String::from)
    .to_vec();
    let yaml = experiment(&h, "quad-grid", GRID, &awk);
    let out = remote(&team_a, &["tune", yaml.to_str().unwrap(), "--namespace", "team-a", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["experiment"]["reason"], "ExperimentGoalReached");
    assert_eq!(doc["experiment"]["namespace"], "team-a");
    // Another namespace's token is refused (403 → exit 2), before any lookup; its own namespace is empty.
    let denied = remote(&team_b, &["tune", "get", "quad-grid", "--namespace", "team-a"]);
    assert_eq!(denied.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("permission denied"));
    let theirs = remote(&team_b, &["tune", "list", "--namespace", "team-b", "--json"]);
    assert_eq!(serde_json::from_slice::<Value>(&theirs.stdout).unwrap(), serde_json::json!([]));
    // The trials are runs of namespace team-a on the server.
    let trials = remote(&team_a, &["tune", "trials", "quad-grid", "--namespace", "team-a", "--json"]);
    let trials: Value = serde_json::from_slice(&trials.stdout).unwrap();
    let run_id = trials[0]["runId"].as_str().unwrap();
    let logs = remote(&team_a, &["logs", run_id]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("loss="));
    assert_eq!(remote(&team_b, &["logs", run_id]).status.code(), Some(2));
    // Invalid input is refused before anything is sent, naming the field.
    let bad = experiment(&h, "bad", &GRID.replace("max: \"2\"", "max: \"-1\""), &awk);
    let out = remote(&team_a, &["tune", bad.to_str().unwrap(), "--namespace", "team-a"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.parameters[0].feasibleSpace"));
}

#[test]
fn a_config_map_template_and_the_file_collector() {
    let h = Home::new();
    // The trial template lives in a config map (Katib's configMap source); the trial prints nothing and
    // writes its metrics to Katib's default file path, which becomes a file of the trial's own.
    let template = format!(
        "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      containers:\n        - name: training\n          image: python:3.11\n          command: [{}]\n",
        trial_command(&["--silent", "--metrics-file", "/var/log/katib/metrics.log"])
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let file = h.path().join("template.yaml");
    std::fs::write(&file, template).unwrap();
    let spec = "  algorithm:\n    algorithmName: random\n    algorithmSettings:\n      - name: random_state\n        value: \"5\"\n  parallelTrialCount: 2\n  maxTrialCount: 2\n  metricsCollectorSpec:\n    collector:\n      kind: File\n    source:\n      fileSystemPath:\n        path: /var/log/katib/metrics.log\n        kind: File\n  parameters:\n    - name: x\n      parameterType: double\n      feasibleSpace: {min: \"0\", max: \"2\"}\n    - name: y\n      parameterType: double\n      feasibleSpace: {min: \"-3\", max: \"-1\"}";
    let yaml = experiment(&h, "from-file", spec, &[]);
    let text = std::fs::read_to_string(&yaml).unwrap();
    let start = text.find("    trialSpec:").unwrap();
    let text = format!(
        "{}    configMap:\n      configMapName: trial-templates\n      templatePath: job.yaml\n",
        &text[..start]
    );
    std::fs::write(&yaml, text).unwrap();
    // Before the config map exists: exit 2 naming the field, and nothing recorded.
    let out = h.cmd().arg("tune").arg(&yaml).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.trialTemplate.configMap.configMapName"));
    assert_eq!(json_of(&h, &["tune", "list", "--json"]), serde_json::json!([]));
    let out =
        h.output(&["configmaps", "create", "trial-templates", "--from-file", &format!("job.yaml={}", file.display())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = h.cmd().arg("tune").arg(&yaml).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(states(&doc["trials"]), vec!["Succeeded", "Succeeded"]);
    for t in doc["trials"].as_array().unwrap() {
        let a = &t["assignments"];
        let (x, y): (f64, f64) =
            (a[0]["value"].as_str().unwrap().parse().unwrap(), a[1]["value"].as_str().unwrap().parse().unwrap());
        let loss = (x - 1.0).powi(2) + (y + 2.0).powi(2);
        assert!((t["objective"].as_f64().unwrap() - loss).abs() < 1e-5, "{t}");
    }
    assert!(!std::path::Path::new("/var/log/katib/metrics.log").exists(), "the trial wrote outside its folder");
}

#[test]
fn stop_from_another_shell_kills_the_running_trials() {
    let h = Home::new();
    let spec = "  algorithm:\n    algorithmName: random\n  parallelTrialCount: 2\n  maxTrialCount: 4\n  parameters:\n    - name: x\n      parameterType: double\n      feasibleSpace: {min: \"0\", max: \"2\"}\n    - name: y\n      parameterType: double\n      feasibleSpace: {min: \"-3\", max: \"-1\"}";
    // Trials that would take a minute each.
    let yaml = experiment(&h, "long", spec, &trial_command(&["--steps", "600", "--sleep", "0.1"]));
    let log = h.path().join("tune.stderr");
    let mut child = h
        .cmd()
        .arg("tune")
        .arg(&yaml)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Read the store only once the runner has made it (two processes creating one SQLite file race).
    wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(&log).unwrap().contains("experiment long (namespace default) created").then_some(())
    });
    wait_for(Duration::from_secs(30), || {
        let out = h.output(&["tune", "trials", "long", "--json"]);
        let t: Value = serde_json::from_slice(&out.stdout).ok()?;
        (states(&t).iter().filter(|s| *s == "Running").count() == 2).then_some(())
    });
    let out = h.output(&["tune", "stop", "long"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // The runner notices, kills its trials and exits 1 (stopped) well before a trial could have finished.
    let status = wait_for(Duration::from_secs(20), || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(1), "{}", std::fs::read_to_string(&log).unwrap());
    let doc = json_of(&h, &["tune", "get", "long", "--json"]);
    assert_eq!(doc["experiment"]["state"], "Stopped");
    let trials = doc["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2, "no trial is started after the stop");
    for t in trials {
        assert_eq!(t["state"], "Killed");
        let run = h.get_json(t["runId"].as_str().unwrap());
        assert_eq!(run["run"]["state"], "CANCELED", "the trial's run was canceled, its process killed");
    }
}

#[test]
fn ctrl_c_interrupts_and_resume_finishes_the_same_trials() {
    let h = Home::new();
    let spec = "  algorithm:\n    algorithmName: random\n    algorithmSettings:\n      - name: random_state\n        value: \"11\"\n  parallelTrialCount: 2\n  maxTrialCount: 2\n  parameters:\n    - name: x\n      parameterType: double\n      feasibleSpace: {min: \"0\", max: \"2\"}\n    - name: y\n      parameterType: double\n      feasibleSpace: {min: \"-3\", max: \"-1\"}";
    // Each trial waits for a flag file before its last step, so the interrupt lands while both run.
    let flag = h.path().join("go");
    let cmd = vec![
        "sh".to_string(),
        "-c".into(),
        "echo loss=9; while [ ! -e \"$2\" ]; do sleep 0.05; done; exec \"$3\" \"$4\" --x \"$0\" --y \"$1\"".into(),
        "${trialParameters.x}".into(),
        "${trialParameters.y}".into(),
        flag.display().to_string(),
        python().display().to_string(),
        script().display().to_string(),
    ];
    let yaml = experiment(&h, "interrupted", spec, &cmd);
    let log = h.path().join("tune.stderr");
    let child = h
        .cmd()
        .arg("tune")
        .arg(&yaml)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("experiment interrupted (namespace default) created")
            .then_some(())
    });
    let before = wait_for(Duration::from_secs(30), || {
        let out = h.output(&["tune", "trials", "interrupted", "--json"]);
        let t: Value = serde_json::from_slice(&out.stdout).ok()?;
        (states(&t) == ["Running", "Running"]).then_some(t)
    });
    let ok = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("secondrow tune resume interrupted"), "{text}");
    // The trials stay open (Running) for the resume; the experiment too.
    let doc = json_of(&h, &["tune", "get", "interrupted", "--json"]);
    assert_eq!(doc["experiment"]["state"], "Running");
    assert_eq!(states(&doc["trials"]), ["Running", "Running"]);

    std::fs::write(&flag, "go").unwrap();
    let out = h.output(&["tune", "resume", "interrupted", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(states(&doc["trials"]), ["Succeeded", "Succeeded"]);
    // The same two trials (names, assignments, runs), no new ones.
    for (a, b) in before.as_array().unwrap().iter().zip(doc["trials"].as_array().unwrap()) {
        assert_eq!(a["name"], b["name"]);
        assert_eq!(a["assignments"], b["assignments"]);
        assert_eq!(a["runId"], b["runId"]);
    }
}

/// The Tuning pages in chromium: the experiment recorded by `secondrow tune` shows on the server's UI with a
/// row and a plotted point per trial, the best one marked, each trial linking to its run.
#[test]
fn the_tuning_pages_in_chromium() {
    if std::env::var_os("SECONDROW_SKIP_BROWSER").is_some() {
        eprintln!("SECONDROW_SKIP_BROWSER is set: browser test skipped");
        return;
    }
    let h = Home::new();
    let yaml = experiment(&h, "quad-grid", GRID, &trial_command(&[]));
    let out = h.cmd().arg("tune").arg(&yaml).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let trials = doc["trials"].as_array().unwrap();
    // A trial still running when the goal was reached is killed and has no value to plot.
    let measured = trials.iter().filter(|t| t["objective"].is_number()).count();
    assert!(measured >= 2, "{doc}");
    let server = crate::api::Server::start(&h, &[]);
    let seen = crate::ui::browser_script(
        &h,
        &server,
        "ui_tuning.py",
        &["quad-grid".into(), trials.len().to_string().into(), measured.to_string().into()],
    );
    assert_eq!(seen["best"], doc["experiment"]["optimalTrial"], "{seen}");
    assert_eq!(seen["points"], measured, "{seen}");
    let best = trials.iter().find(|t| t["name"] == doc["experiment"]["optimalTrial"]).unwrap();
    assert_eq!(seen["run_page"], best["runId"], "{seen}");
}
