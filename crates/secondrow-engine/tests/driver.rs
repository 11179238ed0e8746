//! The run driver, end to end, without Python or kfp: hand-written IR specs (`tests/specs/`) whose
//! containers are `sh -c` scripts, executed by a real [`Engine`] on a temporary SQLite store.
//!
//! Scripts append one line per step to a shared `events` file (short appends are atomic, so the file's
//! order is the order things happened) and keep per-task counter files; the tests assert on those files
//! and on the store's run and task records. Waiting is always on an event with a deadline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use secondrow_engine::{CancellationToken, Engine, EngineConfig, PythonMode, RunControl, RunOptions, Submission};
use secondrow_spec::Pipeline;
use secondrow_store::{ArtifactStore, RunRecord, RunState, Store, TaskRecord, TaskState};

const DIAMOND: &str = include_str!("specs/diamond.yaml");
const LOOP: &str = include_str!("specs/loop.yaml");
const RETRY: &str = include_str!("specs/retry.yaml");
const CONDITIONS: &str = include_str!("specs/conditions.yaml");
const EXIT_HANDLER: &str = include_str!("specs/exit_handler.yaml");
const CANCEL: &str = include_str!("specs/cancel.yaml");
const RESUME: &str = include_str!("specs/resume.yaml");

/// An engine on a temporary home, and the folder the task scripts write into.
struct Harness {
    engine: Engine,
    shared: PathBuf,
    _home: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Harness {
        Harness::with_loop_limit(secondrow_engine::DEFAULT_MAX_LOOP_ITEMS).await
    }

    /// An engine that refuses ParallelFor loops of more than `max_loop_items` items.
    async fn with_loop_limit(max_loop_items: usize) -> Harness {
        let home = tempfile::tempdir().expect("temp dir");
        let root = home.path();
        let store = Store::open(&format!("sqlite://{}", root.join("db.sqlite").display())).await.expect("store");
        let artifacts = ArtifactStore::open_local(&root.join("artifacts")).expect("artifact store");
        let config = EngineConfig {
            logs_root: root.join("logs"),
            work_dir: root.join("work"),
            parallelism: 4,
            python: None,
            python_mode: PythonMode::Cold,
            envs_dir: root.join("envs"),
            sandbox: Default::default(),
            max_loop_items,
        };
        let shared = root.join("shared");
        std::fs::create_dir_all(&shared).expect("shared dir");
        Harness { engine: Engine::new(store, artifacts, config), shared, _home: home }
    }

    /// Records a run of `spec` with `params` (plus `dir`, the shared folder).
    async fn submit(&self, spec: &str, params: Value, options: RunOptions) -> String {
        let pipeline = Pipeline::from_yaml(spec).expect("the spec is valid");
        let mut given = params.as_object().cloned().unwrap_or_default();
        given.insert("dir".into(), json!(self.shared.to_string_lossy()));
        let bound = pipeline.bind_parameters(&given).expect("parameters bind");
        let sub = Submission { options, ..Default::default() };
        self.engine.submit(&pipeline, bound, sub).await.expect("submit").id
    }

    /// Submits and executes a run to its end.
    async fn run(&self, spec: &str, params: Value, options: RunOptions) -> (RunRecord, Vec<TaskRecord>) {
        let id = self.submit(spec, params, options).await;
        let run = self.engine.execute(&id, RunControl::detached()).await.expect("execute");
        (run, self.tasks(&id).await)
    }

    async fn tasks(&self, run_id: &str) -> Vec<TaskRecord> {
        self.engine.store().list_tasks(run_id).await.expect("tasks")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.shared.join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// The lines of the shared `events` file, in the order they were written.
    fn events(&self) -> Vec<String> {
        self.read("events").lines().map(str::to_owned).collect()
    }

    /// A counter file's value (0 when the task never ran).
    fn count(&self, name: &str) -> u32 {
        self.read(&format!("{name}.count")).trim().parse().unwrap_or(0)
    }
}

fn task<'a>(tasks: &'a [TaskRecord], path: &str) -> &'a TaskRecord {
    tasks.iter().find(|t| t.path == path).unwrap_or_else(|| {
        let paths: Vec<_> = tasks.iter().map(|t| t.path.as_str()).collect();
        panic!("no task `{path}` (tasks: {paths:?})")
    })
}

fn position(events: &[String], line: &str) -> usize {
    events.iter().position(|e| e == line).unwrap_or_else(|| panic!("no event `{line}` in {events:?}"))
}

/// The most tasks running at once, from `start X` / `end X` events.
fn max_concurrency(events: &[String]) -> usize {
    let (mut now, mut max) = (0usize, 0usize);
    for e in events {
        if e.starts_with("start ") {
            now += 1;
            max = max.max(now);
        } else if e.starts_with("end ") {
            now = now.saturating_sub(1);
        }
    }
    max
}

async fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn alive(pid: i32) -> bool {
    // A zombie (state Z) has exited and only awaits reaping.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[tokio::test]
async fn tasks_start_after_their_upstream_and_independent_ones_run_together() {
    let h = Harness::new().await;
    let (run, tasks) = h.run(DIAMOND, json!({}), RunOptions::default()).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
    let ev = h.events();
    assert_eq!(ev.len(), 8, "{ev:?}");
    let at = |l: &str| position(&ev, l);
    assert!(at("end a") < at("start b") && at("end a") < at("start c"), "{ev:?}");
    // b and c each waited for the other to start: both started before either ended.
    assert!(at("start b").max(at("start c")) < at("end b").min(at("end c")), "{ev:?}");
    assert!(at("end b").max(at("end c")) < at("start d"), "{ev:?}");
    for key in ["a", "b", "c", "d"] {
        let t = task(&tasks, key);
        assert_eq!((t.state, t.attempts), (TaskState::Succeeded, 1), "{key}: {:?}", t.error);
    }
}

#[tokio::test]
async fn loops_respect_parallelism_limit_and_collect_outputs() {
    let h = Harness::new().await;
    let (run, tasks) = h.run(LOOP, json!({}), RunOptions::default()).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
    let ev = h.events();
    assert_eq!(ev.len(), 8, "{ev:?}");
    assert_eq!(max_concurrency(&ev), 2, "parallelismLimit 2: {ev:?}");
    // Iterations are recorded under the loop by index; the loop collects their outputs in order.
    for i in 0..4 {
        assert_eq!(task(&tasks, &format!("for-loop-1/{i}/square")).state, TaskState::Succeeded);
        assert_eq!(task(&tasks, &format!("for-loop-1/{i}")).state, TaskState::Succeeded);
    }
    let total = run.outputs.as_ref().and_then(|o| o["parameters"]["total"].as_str()).expect("run output `total`");
    let squares: Value = serde_json::from_str(total).expect("a JSON list");
    assert_eq!(squares, json!([1, 4, 9, 16]));
}

#[tokio::test]
async fn the_run_parallelism_option_caps_all_tasks() {
    let h = Harness::new().await;
    let (run, _) = h.run(LOOP, json!({}), RunOptions { parallelism: Some(1), ..Default::default() }).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
    let ev = h.events();
    assert_eq!((ev.len(), max_concurrency(&ev)), (8, 1), "{ev:?}");
}

#[tokio::test]
async fn a_loop_over_the_item_limit_fails_before_any_iteration() {
    let h = Harness::with_loop_limit(3).await;
    let (run, tasks) = h.run(LOOP, json!({}), RunOptions::default()).await;
    assert_eq!(run.state, RunState::Failed);
    let loop_task = task(&tasks, "for-loop-1");
    assert_eq!(loop_task.state, TaskState::Failed);
    let error = loop_task.error.as_deref().unwrap_or_default();
    assert!(error.contains("the loop has 4 items; at most 3 are allowed"), "{error}");
    assert!(h.events().is_empty(), "no iteration ran: {:?}", h.events());
    assert!(tasks.iter().all(|t| !t.path.starts_with("for-loop-1/")), "no iteration was recorded");
}

#[tokio::test]
async fn failed_attempts_are_retried_with_backoff_then_fail_and_skip_dependents() {
    let h = Harness::new().await;
    let (run, tasks) = h.run(RETRY, json!({}), RunOptions::default()).await;
    assert_eq!(run.state, RunState::Failed);
    assert!(run.error.as_deref().is_some_and(|e| e.contains("no luck this time")), "{:?}", run.error);

    let flaky = task(&tasks, "flaky");
    assert_eq!((flaky.state, flaky.attempts), (TaskState::Succeeded, 3), "{:?}", flaky.error);
    assert_eq!(h.count("flaky"), 3);
    let starts: Vec<u128> = h.read("flaky.times").lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(starts.len(), 3);
    let gap = |i: usize| Duration::from_nanos((starts[i + 1] - starts[i]) as u64);
    // backoffDuration 0.2 s, factor 2: at least 0.2 s before the second attempt, 0.4 s before the third.
    assert!(gap(0) >= Duration::from_millis(200), "first backoff {:?}", gap(0));
    assert!(gap(1) >= Duration::from_millis(400), "second backoff {:?}", gap(1));

    let hopeless = task(&tasks, "hopeless");
    assert_eq!((hopeless.state, hopeless.attempts), (TaskState::Failed, 2));
    assert_eq!(h.count("hopeless"), 2);
    assert!(hopeless.error.as_deref().is_some_and(|e| e.contains("exited with status 3")), "{:?}", hopeless.error);
    let after = task(&tasks, "after-hopeless");
    assert_eq!(after.state, TaskState::Skipped);
    assert!(!h.path("after.ran").exists());
}

#[tokio::test]
async fn conditions_run_one_branch_and_a_false_condition_does_not_block() {
    for (value, taken, skipped) in [(7, "high", "condition-2"), (3, "low", "condition-1")] {
        let h = Harness::new().await;
        let (run, tasks) = h.run(CONDITIONS, json!({ "value": value }), RunOptions::default()).await;
        assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
        assert_eq!(h.events(), [taken, "after"], "value {value}");
        let branch = task(&tasks, skipped);
        assert_eq!(branch.state, TaskState::Skipped);
        assert_eq!(branch.error.as_deref(), Some("condition is false"));
        // The skipped branch's tasks were never created.
        assert!(tasks.iter().all(|t| !t.path.starts_with(&format!("{skipped}/"))), "value {value}");
        assert_eq!(task(&tasks, "after").state, TaskState::Succeeded);
    }
}

#[tokio::test]
async fn the_exit_handler_runs_after_a_failed_body_and_sees_its_status() {
    let h = Harness::new().await;
    let (run, tasks) = h.run(EXIT_HANDLER, json!({}), RunOptions::default()).await;
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(h.events(), ["work", "report"]);
    assert_eq!(task(&tasks, "exit-handler-1").state, TaskState::Failed);
    assert_eq!(task(&tasks, "exit-handler-1/work").state, TaskState::Failed);
    assert_eq!(task(&tasks, "exit-handler-1/after-work").state, TaskState::Skipped);
    assert_eq!(task(&tasks, "report").state, TaskState::Succeeded);
    let status: Value = serde_json::from_str(&h.read("status.json")).expect("status JSON");
    assert_eq!(status["state"], "FAILED");
    assert_eq!(status["pipelineTaskName"], "exit-handler-1");
    assert!(status["error"]["message"].as_str().is_some_and(|m| m.contains("boom at work")), "{status}");
}

#[tokio::test]
async fn cancel_kills_process_groups_ends_backoffs_and_the_run_canceled() {
    let h = Harness::new().await;
    let id = h.submit(CANCEL, json!({}), RunOptions::default()).await;
    let cancel = CancellationToken::new();
    let engine = h.engine.clone();
    let (run_id, token) = (id.clone(), cancel.clone());
    let execution = tokio::spawn(async move { engine.execute(&run_id, RunControl::new(token)).await });
    let pid_file = h.path("grandchild.pid");
    wait_until("the grandchild to start", Duration::from_secs(10), || pid_file.exists()).await;
    let grandchild: i32 = h.read("grandchild.pid").trim().parse().expect("a pid");
    assert!(alive(grandchild));
    // `backoff` failed once and now waits a minute before its retry (attempt 2 is recorded).
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.tasks(&id).await.iter().all(|t| t.path != "backoff" || t.attempts < 2) {
        assert!(Instant::now() < deadline, "backoff was not scheduled for a retry");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let canceled_at = Instant::now();
    cancel.cancel();
    let run = execution.await.expect("join").expect("execute");
    assert!(canceled_at.elapsed() < Duration::from_secs(5), "cancel took {:?}", canceled_at.elapsed());
    assert_eq!(run.state, RunState::Canceled);
    let tasks = h.tasks(&id).await;
    assert_eq!(task(&tasks, "sleepy").state, TaskState::Canceled);
    // Waiting out a backoff ends at the cancel, and the retry never runs.
    assert_eq!(task(&tasks, "backoff").state, TaskState::Canceled);
    assert_eq!(h.count("backoff"), 1);
    assert!(tasks.iter().all(|t| t.path != "after" || t.state == TaskState::Canceled));
    assert!(!h.path("after.ran").exists());
    // The whole process group went, grandchild included (it may take a moment to be reaped).
    wait_until("the grandchild to die", Duration::from_secs(5), || !alive(grandchild)).await;
}

#[tokio::test]
async fn resume_after_a_kill_reruns_only_what_did_not_finish() {
    let h = Harness::new().await;
    let id = h.submit(RESUME, json!({}), RunOptions::default()).await;
    let engine = h.engine.clone();
    let run_id = id.clone();
    let execution = tokio::spawn(async move { engine.execute(&run_id, RunControl::detached()).await });
    // Kill the driver while `b` runs (it waits for `go`): `a` has finished, `c` has not started.
    wait_until("b to start", Duration::from_secs(10), || h.count("b") == 1).await;
    execution.abort();
    assert!(execution.await.expect_err("aborted").is_cancelled());
    let before = h.tasks(&id).await;
    assert_eq!(h.engine.store().get_run(&id).await.expect("run").state, RunState::Running);
    assert_eq!(task(&before, "a").state, TaskState::Succeeded);
    assert_eq!(task(&before, "b").state, TaskState::Running);

    std::fs::write(h.path("go"), "").expect("go");
    let run = h.engine.resume(&id, RunControl::detached(), false).await.expect("resume");
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
    assert_eq!((h.count("a"), h.count("b"), h.count("c")), (1, 2, 1));
    // The adopted task's recorded output still flows downstream.
    assert_eq!(h.read("b.seen"), "from-a");
    assert_eq!(h.read("c.seen"), "from-b");
    let after = h.tasks(&id).await;
    assert_eq!(task(&after, "a").id, task(&before, "a").id, "a was adopted, not re-recorded");
    let b = task(&after, "b");
    assert_eq!((b.state, b.attempts), (TaskState::Succeeded, 2));
    assert_eq!(run.outputs.as_ref().map(|o| o["parameters"]["last"].clone()), Some(json!("from-c")));
}

#[tokio::test]
async fn a_second_run_with_the_same_inputs_is_served_from_the_cache() {
    let h = Harness::new().await;
    std::fs::write(h.path("go"), "").expect("go");
    let (first, _) = h.run(RESUME, json!({}), RunOptions::default()).await;
    assert_eq!(first.state, RunState::Succeeded, "{:?}", first.error);
    let (second, tasks) = h.run(RESUME, json!({}), RunOptions::default()).await;
    assert_eq!(second.state, RunState::Succeeded, "{:?}", second.error);
    for key in ["a", "b", "c"] {
        assert_eq!(task(&tasks, key).state, TaskState::Cached, "{key}");
    }
    assert_eq!((h.count("a"), h.count("b"), h.count("c")), (1, 1, 1));
    assert_eq!(second.outputs.as_ref().map(|o| o["parameters"]["last"].clone()), Some(json!("from-c")));
    let (third, _) = h.run(RESUME, json!({}), RunOptions { no_cache: true, ..Default::default() }).await;
    assert_eq!(third.state, RunState::Succeeded, "{:?}", third.error);
    assert_eq!((h.count("a"), h.count("b"), h.count("c")), (2, 2, 2));
}

#[test]
fn specs_are_valid_and_resolved() {
    for spec in [DIAMOND, LOOP, RETRY, CONDITIONS, EXIT_HANDLER, CANCEL, RESUME] {
        let p = Pipeline::from_yaml(spec).expect("valid");
        assert!(!p.graph.root.tasks.is_empty());
    }
}

/// `{{$.pipeline_job_schedule_time_utc}}` is the time a schedule fired when a schedule started the run
/// (`RunOptions::scheduled_at`), else the run's creation time, as kfp gives it.
#[tokio::test]
async fn schedule_time_placeholder_is_the_fire_time() {
    const SPEC: &str = r#"
components:
  comp-stamp:
    executorLabel: exec-stamp
    inputDefinitions:
      parameters:
        when: {parameterType: STRING}
        created: {parameterType: STRING}
        dir: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-stamp:
      container:
        image: alpine
        command: [sh, -c, 'printf "%s %s" "$0" "$1" > "$2/stamp"']
        args: ["{{$.inputs.parameters['when']}}", "{{$.inputs.parameters['created']}}", "{{$.inputs.parameters['dir']}}"]
pipelineInfo: {name: stamp}
root:
  inputDefinitions:
    parameters:
      dir: {parameterType: STRING}
  dag:
    tasks:
      stamp:
        componentRef: {name: comp-stamp}
        inputs:
          parameters:
            when: {runtimeValue: {constant: "at {{$.pipeline_job_schedule_time_utc}}"}}
            created: {runtimeValue: {constant: "{{$.pipeline_job_create_time_utc}}"}}
            dir: {componentInputParameter: dir}
schemaVersion: 2.1.0
"#;
    let h = Harness::new().await;
    let fired = chrono::DateTime::parse_from_rfc3339("2026-01-09T13:00:00Z").expect("time").timestamp_millis();
    let (run, _) = h.run(SPEC, json!({}), RunOptions { scheduled_at: Some(fired), ..Default::default() }).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
    let stamp = h.read("stamp");
    assert!(stamp.starts_with("at 2026-01-09T13:00:00Z "), "{stamp}");

    let (run, _) = h.run(SPEC, json!({}), RunOptions::default()).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
    let stamp = h.read("stamp");
    let (when, created) = stamp.split_once(' ').and_then(|(_, rest)| rest.split_once(' ')).expect("three words");
    assert_eq!(when, created, "{stamp}");
    assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok(), "{stamp}");
}

/// Loop laziness under a hostile item count: a ParallelFor over 5,000 items with parallelismLimit 2 never
/// holds more than a few hundred nodes in the engine (iterations not started yet are items, not nodes: before,
/// all 5,000 iterations became nodes at once) nor more than two unfinished iterations in the store, and
/// cancelling it leaves the thousands of items never recorded. Measured by sampling the engine's node count
/// and the store's task rows while the loop runs.
#[tokio::test]
async fn a_long_loop_creates_iterations_only_as_they_can_start() {
    let h = Harness::new().await;
    let items: Vec<String> = (1..=5000).map(|i| i.to_string()).collect();
    let spec = LOOP.replace("raw: '[1, 2, 3, 4]'", &format!("raw: '[{}]'", items.join(", ")));
    assert_ne!(spec, LOOP, "the item list was replaced");
    let id = h.submit(&spec, json!({}), RunOptions::default()).await;
    let cancel = CancellationToken::new();
    let engine = h.engine.clone();
    let (run_id, token) = (id.clone(), cancel.clone());
    let execution = tokio::spawn(async move { engine.execute(&run_id, RunControl::new(token)).await });

    let is_iteration =
        |t: &TaskRecord| t.path.strip_prefix("for-loop-1/").is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
    let (mut samples, mut most_unfinished, mut most_recorded, mut most_nodes) = (0usize, 0usize, 0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = h.tasks(&id).await;
        let iterations: Vec<&TaskRecord> = tasks.iter().filter(|t| is_iteration(t)).collect();
        let unfinished =
            iterations.iter().filter(|t| matches!(t.state, TaskState::Pending | TaskState::Running)).count();
        most_unfinished = most_unfinished.max(unfinished);
        most_nodes = most_nodes.max(secondrow_engine::live_nodes());
        most_recorded = most_recorded.max(tasks.len());
        samples += 1;
        let ended = h.events().iter().filter(|e| e.starts_with("end ")).count();
        if ended >= 12 {
            break;
        }
        assert!(Instant::now() < deadline, "the loop did not get going: {ended} iterations ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    let run = execution.await.expect("join").expect("execute");
    assert_eq!(run.state, RunState::Canceled);
    let tasks = h.tasks(&id).await;
    let recorded = tasks.iter().filter(|t| is_iteration(t)).count();
    let ended = h.events().iter().filter(|e| e.starts_with("end ")).count();
    eprintln!(
        "5,000-item loop: {samples} samples, at most {most_nodes} engine nodes, {most_unfinished} unfinished iterations and {most_recorded} task rows at once; {recorded} iterations recorded and {ended} ended at the cancel"
    );
    // The engine's nodes (all runs of this test binary: the other tests' small runs may overlap).
    assert!(most_nodes <= 200, "{most_nodes} nodes in memory at once for a loop of parallelism 2");
    assert!(samples >= 5, "sampled the store {samples} times");
    assert!(most_unfinished <= 2, "{most_unfinished} unfinished iterations at once (parallelismLimit 2)");
    // Each finished iteration keeps its rows (iteration and `square`); nothing else of the 5,000 items.
    assert!(recorded <= ended + 2, "{recorded} iterations recorded, {ended} ended");
    assert!(most_recorded <= 2 * (ended + 2) + 3, "at most {most_recorded} task rows at once");
}
