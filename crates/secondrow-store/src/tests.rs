//! The store's tests, each run against both backends: a fresh SQLite file, and a fresh database on the
//! PostgreSQL server named by `SECONDROW_TEST_POSTGRES_URL` (`scripts/test` starts a throw-away one and sets it;
//! without it the PostgreSQL variants print a note and pass without running).

use serde_json::json;
use sqlx::{Connection, Executor as _};

use super::*;

/// The variable naming the PostgreSQL server the tests may create databases on.
pub(crate) const POSTGRES_URL_VAR: &str = "SECONDROW_TEST_POSTGRES_URL";

/// A store on a database made for one test, and a temp folder for its files.
pub(crate) struct TestDb {
    pub store: Store,
    pub dir: tempfile::TempDir,
    /// On PostgreSQL: the server's URL and the database made for this test (dropped by [`TestDb::finish`]).
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        TestDb { store: Store::open(&url).await.unwrap(), dir, postgres: None }
    }

    /// A fresh database on the test PostgreSQL server; `None` (with a note) when none is configured.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(server) = std::env::var(POSTGRES_URL_VAR) else {
            eprintln!("note: {POSTGRES_URL_VAR} is unset; the PostgreSQL variant is skipped (scripts/test runs it)");
            return None;
        };
        let name = format!("secondrow_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::postgres::PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("connecting to {POSTGRES_URL_VAR}: {e}"));
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        admin.close().await.unwrap();
        let mut url = url::Url::parse(&server).unwrap();
        url.set_path(&name);
        let store = Store::open(url.as_str()).await.unwrap_or_else(|e| panic!("opening {name}: {e}"));
        Some(TestDb { store, dir: tempfile::tempdir().unwrap(), postgres: Some((server, name)) })
    }

    /// Closes the store and drops a PostgreSQL test database (a failed test leaves its database behind,
    /// for a look; the throw-away cluster goes with it).
    pub async fn finish(self) {
        self.store.pool.close().await;
        self.store.read_pool.close().await;
        if let Some((server, name)) = self.postgres {
            let mut admin = sqlx::postgres::PgConnection::connect(&server).await.unwrap();
            admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await.unwrap();
            admin.close().await.unwrap();
        }
    }
}

/// Turns `async fn NAME(db: &TestDb)` test bodies into two tests, `NAME::sqlite` and `NAME::postgres`.
macro_rules! per_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::tests::TestDb::sqlite().await;
                super::$name(&db).await;
                db.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::tests::TestDb::postgres().await {
                    super::$name(&db).await;
                    db.finish().await;
                }
            }
        }
    )*};
}
pub(crate) use per_backend;

per_backend!(
    run_lifecycle_and_history,
    finishing_a_task_writes_artifacts_events_and_cache_atomically,
    experiments_are_unique_per_namespace,
    pipelines_without_versions_have_unique_names,
    unrun_tasks_retries_and_closing_open_tasks,
    api_listings_counts_and_deletes,
    recurring_runs_round_trip,
    concurrent_writers_keep_one_experiment_and_every_task,
    concurrent_submissions_of_a_new_pipeline_record_it_once,
);

fn new_run() -> NewRun {
    NewRun {
        display_name: "r1".into(),
        pipeline_name: "p".into(),
        spec: json!({"pipelineInfo": {"name": "p"}}),
        parameters: serde_json::Map::new(),
        options: json!({}),
        ..NewRun::default()
    }
}

async fn run_lifecycle_and_history(db: &TestDb) {
    let s = &db.store;
    let run = s.create_run(&new_run()).await.unwrap();
    assert_eq!(run.state, RunState::Pending);
    s.set_run_state(&run.id, RunState::Running, None).await.unwrap();
    s.set_run_state(&run.id, RunState::Failed, Some("task `boom` failed")).await.unwrap();
    let got = s.get_run(&run.id).await.unwrap();
    assert_eq!(got.state, RunState::Failed);
    assert_eq!(got.error.as_deref(), Some("task `boom` failed"));
    assert!(got.finished_at.is_some() && got.started_at.is_some());
    let states: Vec<_> = s.run_state_history(&run.id).await.unwrap().into_iter().map(|(s, _)| s).collect();
    assert_eq!(states, [RunState::Pending, RunState::Running, RunState::Failed]);
    assert_eq!(s.resolve_run_id(&run.id[..8]).await.unwrap(), run.id);
    assert_eq!(s.resolve_run_id(&run.id[..8].to_uppercase()).await.unwrap(), run.id, "prefixes ignore case");
    assert!(matches!(s.get_run("nope").await, Err(StoreError::NotFound { .. })));
    assert!(matches!(s.set_run_state("nope", RunState::Running, None).await, Err(StoreError::NotFound { .. })));
}

async fn finishing_a_task_writes_artifacts_events_and_cache_atomically(db: &TestDb) {
    let s = &db.store;
    let run = s.create_run(&new_run()).await.unwrap();
    let start = TaskStart {
        run_id: &run.id,
        parent_id: None,
        path: "train",
        task_key: "train",
        display_name: "train",
        kind: TaskKind::Container,
        state: TaskState::Running,
        attempt: 1,
        cache_key: Some("k1"),
        inputs: None,
    };
    let task_id = s.start_task(&start).await.unwrap();
    // A restart of the same path reuses the row.
    assert_eq!(s.start_task(&TaskStart { attempt: 2, ..start.clone() }).await.unwrap(), task_id);
    let art = NewArtifact {
        id: new_id(),
        output_name: "model".into(),
        name: "model".into(),
        uri: "/x/model".into(),
        schema_title: "system.Model".into(),
        schema_version: "0.0.1".into(),
        metadata: json!({"framework": "sum"}),
    };
    let outputs = json!({"parameters": {"Output": 15}});
    s.finish_task(&TaskFinish {
        run_id: &run.id,
        task_id: &task_id,
        state: TaskState::Succeeded,
        error: None,
        cached: false,
        outputs: Some(&outputs),
        new_artifacts: std::slice::from_ref(&art),
        output_artifact_refs: &[],
        input_artifact_refs: &[],
        cache_key_to_record: Some("k1"),
    })
    .await
    .unwrap();
    let tasks = s.list_tasks(&run.id).await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].state, TaskState::Succeeded);
    assert_eq!(tasks[0].attempts, 2);
    let arts = s.list_artifacts(&run.id).await.unwrap();
    assert_eq!(arts[0].metadata["framework"], "sum");
    let events = s.list_events(&run.id).await.unwrap();
    assert_eq!((events[0].kind.as_str(), events[0].name.as_str()), ("OUTPUT", "model"));
    let (cached_task, cached_outputs) = s.lookup_cache("k1").await.unwrap().unwrap();
    assert_eq!(cached_task, task_id);
    assert_eq!(cached_outputs, outputs);
}

async fn experiments_are_unique_per_namespace(db: &TestDb) {
    let s = &db.store;
    let a = s.ensure_experiment("Default", "").await.unwrap();
    let b = s.ensure_experiment("Default", "").await.unwrap();
    let c = s.ensure_experiment("Default", "team-a").await.unwrap();
    assert_eq!(a.id, b.id);
    assert_ne!(a.id, c.id);
}

#[tokio::test]
async fn artifact_reads_cannot_escape_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let a = ArtifactStore::open_local(&dir.path().join("artifacts")).unwrap();
    let uri = a.uri_for("run/task/data");
    std::fs::create_dir_all(std::path::Path::new(&uri).parent().unwrap()).unwrap();
    std::fs::write(&uri, "1\n2\n").unwrap();
    assert_eq!(a.read(&uri).await.unwrap(), b"1\n2\n");
    let escape = format!("{}/../../etc/passwd", a.root().display());
    assert!(matches!(a.read(&escape).await, Err(StoreError::InvalidArgument(_))));
    assert!(matches!(a.read("/etc/passwd").await, Err(StoreError::InvalidArgument(_))));
    let out = dir.path().join("dl");
    let files = a.download(&a.uri_for("run"), &out).await.unwrap();
    assert_eq!(files, vec![out.join("task/data")]);
}

async fn pipelines_without_versions_have_unique_names(db: &TestDb) {
    let s = &db.store;
    let p = s.create_pipeline("p", "first", "ns").await.unwrap();
    assert_eq!(s.get_pipeline(&p.id).await.unwrap().description, "first");
    assert!(s.list_pipeline_versions(&p.id).await.unwrap().is_empty());
    let again = s.create_pipeline("p", "second", "ns").await;
    assert!(matches!(again, Err(StoreError::AlreadyExists { kind: "pipeline", .. })), "{again:?}");
    assert_eq!(s.list_pipelines(None).await.unwrap().len(), 1);
}

fn task<'a>(run_id: &'a str, path: &'a str, state: TaskState) -> TaskStart<'a> {
    TaskStart {
        run_id,
        parent_id: None,
        path,
        task_key: path,
        display_name: path,
        kind: TaskKind::Container,
        state,
        attempt: 1,
        cache_key: None,
        inputs: None,
    }
}

fn finish<'a>(run_id: &'a str, task_id: &'a str, state: TaskState) -> TaskFinish<'a> {
    TaskFinish {
        run_id,
        task_id,
        state,
        error: None,
        cached: false,
        outputs: None,
        new_artifacts: &[],
        output_artifact_refs: &[],
        input_artifact_refs: &[],
        cache_key_to_record: None,
    }
}

async fn unrun_tasks_retries_and_closing_open_tasks(db: &TestDb) {
    let s = &db.store;
    let run = s.create_run(&new_run()).await.unwrap();
    let inputs = json!({"parameters": {"n": 3, "flag": true, "ratio": 0.5, "items": [1, "a"]}});
    let flaky =
        s.start_task(&TaskStart { inputs: Some(&inputs), ..task(&run.id, "flaky", TaskState::Running) }).await.unwrap();
    s.set_task_attempt(&flaky, 2, now_ms() + 1000).await.unwrap();
    let skipped = s.record_unrun_task(&task(&run.id, "after", TaskState::Skipped), None).await.unwrap();
    // Recording the same path again updates the row (ON CONFLICT) instead of adding one.
    s.record_unrun_task(&task(&run.id, "after", TaskState::Canceled), Some("run canceled")).await.unwrap();
    let pending = s.start_task(&task(&run.id, "waiting", TaskState::Pending)).await.unwrap();
    let cached = s.start_task(&task(&run.id, "cached", TaskState::Running)).await.unwrap();
    let outputs = json!({"parameters": {"Output": "x"}});
    s.finish_task(&TaskFinish { cached: true, outputs: Some(&outputs), ..finish(&run.id, &cached, TaskState::Cached) })
        .await
        .unwrap();

    assert_eq!(s.close_open_tasks(&run.id, TaskState::Canceled, "run canceled").await.unwrap(), 2);
    let tasks = s.list_tasks(&run.id).await.unwrap();
    let by_path = |p: &str| tasks.iter().find(|t| t.path == p).unwrap_or_else(|| panic!("no task {p}"));
    assert_eq!(tasks.len(), 4, "{tasks:?}");
    let f = by_path("flaky");
    assert_eq!((f.id.as_str(), f.state, f.attempts), (flaky.as_str(), TaskState::Canceled, 2));
    assert_eq!(f.inputs.as_ref(), Some(&inputs), "JSON text round-trips");
    assert_eq!(f.error.as_deref(), Some("run canceled"));
    let a = by_path("after");
    assert_eq!((a.state, a.error.as_deref(), a.attempts), (TaskState::Canceled, Some("run canceled"), 0));
    assert_eq!(a.id, skipped, "the conflicting insert keeps the first row");
    assert_eq!(by_path("waiting").id, pending);
    assert_eq!(by_path("waiting").state, TaskState::Canceled);
    let c = by_path("cached");
    assert!(c.cached && c.state == TaskState::Cached && c.finished_at.is_some(), "{c:?}");
    assert_eq!(c.outputs.as_ref(), Some(&outputs));
}

async fn api_listings_counts_and_deletes(db: &TestDb) {
    let s = &db.store;
    let exp = s.create_experiment("e1", "about e1", "team-a").await.unwrap();
    assert!(matches!(s.create_experiment("e1", "", "team-a").await, Err(StoreError::AlreadyExists { .. })));
    assert_eq!(s.get_experiment(&exp.id).await.unwrap().description, "about e1");
    assert_eq!(s.list_experiments(Some("team-a")).await.unwrap().len(), 1);
    assert!(s.list_experiments(Some("team-b")).await.unwrap().is_empty());

    let spec = json!({"pipelineInfo": {"name": "p"}, "root": {"dag": {"tasks": {}}}});
    let (p, v) = s.create_pipeline_with_version("p", "d", "", "v1", &spec, "digest-1").await.unwrap();
    assert!(matches!(
        s.create_pipeline_version(&p.id, "v1", "", &spec, "digest-1").await,
        Err(StoreError::AlreadyExists { kind: "pipeline version", .. })
    ));
    let v2 = s.create_pipeline_version(&p.id, "v2", "", &spec, "digest-2").await.unwrap();
    assert_eq!(s.get_pipeline_version(&p.id, &v.id).await.unwrap().spec, spec);
    let listed = s.list_pipeline_versions(&p.id).await.unwrap();
    let mut names: Vec<_> = listed.iter().map(|v| v.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["v1", "v2"]);
    assert!(listed.iter().all(|v| v.spec.is_null()), "listings leave the spec out");
    s.delete_pipeline_version(&p.id, &v2.id).await.unwrap();
    assert!(matches!(s.delete_pipeline_version(&p.id, &v2.id).await, Err(StoreError::NotFound { .. })));
    // The engine's path: the same spec digest finds the same version.
    let (p_again, v_again) = s.record_pipeline_version("q", "", "", &spec, "digest-1").await.unwrap();
    assert_eq!(s.record_pipeline_version("q", "", "", &spec, "digest-1").await.unwrap(), (p_again, v_again));

    let mut runs = Vec::new();
    for (i, ns) in ["team-a", "team-a", ""].into_iter().enumerate() {
        let new = NewRun {
            display_name: format!("r{i}"),
            namespace: ns.into(),
            experiment_id: (ns == "team-a").then(|| exp.id.clone()),
            recurring_run_id: Some("rr".into()),
            parameters: json!({"i": i}).as_object().unwrap().clone(),
            ..new_run()
        };
        runs.push(s.create_run(&new).await.unwrap());
    }
    s.set_run_state(&runs[0].id, RunState::Running, None).await.unwrap();
    s.set_run_state(&runs[1].id, RunState::Succeeded, None).await.unwrap();
    assert_eq!(s.count_active_runs_of("rr").await.unwrap(), 2);
    let summaries = s.list_run_summaries(Some("team-a"), Some(&exp.id)).await.unwrap();
    // (Runs made within one millisecond have no defined order.)
    let mut names: Vec<_> = summaries.iter().map(|r| r.display_name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["r0", "r1"]);
    assert!(summaries.iter().all(|r| r.spec.is_null()));
    let r0 = summaries.iter().find(|r| r.display_name == "r0").unwrap();
    assert_eq!(r0.parameters, json!({"i": 0}));
    assert_eq!(s.list_run_summaries(None, None).await.unwrap().len(), 3);
    let counts = s.run_state_counts().await.unwrap();
    assert_eq!(counts, [("PENDING".to_owned(), 1), ("RUNNING".to_owned(), 1), ("SUCCEEDED".to_owned(), 1)]);
    let unfinished = s.list_runs_in_states(&[RunState::Pending, RunState::Running]).await.unwrap();
    assert_eq!(unfinished.len(), 2);
    assert_eq!(s.list_runs(2).await.unwrap().len(), 2);

    let t = s.start_task(&task(&runs[0].id, "t", TaskState::Running)).await.unwrap();
    s.finish_task(&finish(&runs[0].id, &t, TaskState::Succeeded)).await.unwrap();
    let stats = s.task_duration_stats().await.unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].0.as_str(), stats[0].1), ("SUCCEEDED", 1));
    assert!(stats[0].2 >= 0);

    s.set_experiment_storage_state(&exp.id, "ARCHIVED").await.unwrap();
    assert_eq!(s.get_run(&runs[0].id).await.unwrap().storage_state, "ARCHIVED");
    assert_eq!(s.get_run(&runs[2].id).await.unwrap().storage_state, "AVAILABLE");
    s.set_run_storage_state(&runs[2].id, "ARCHIVED").await.unwrap();
    s.delete_run(&runs[0].id).await.unwrap();
    assert!(matches!(s.delete_run(&runs[0].id).await, Err(StoreError::NotFound { .. })));
    assert!(s.list_tasks(&runs[0].id).await.unwrap().is_empty());
    assert!(s.run_state_history(&runs[0].id).await.unwrap().is_empty());
    s.delete_experiment(&exp.id).await.unwrap();
    s.delete_pipeline(&p.id).await.unwrap();
    assert!(matches!(s.get_pipeline(&p.id).await, Err(StoreError::NotFound { .. })));
}

async fn recurring_runs_round_trip(db: &TestDb) {
    let s = &db.store;
    let trigger = json!({"cron_schedule": {"cron": "*/5 * * * * *"}});
    let rr = s
        .create_recurring_run(&NewRecurringRun {
            display_name: "rr1".into(),
            description: "every 5 s".into(),
            namespace: "team-a".into(),
            experiment_id: Some("e".into()),
            pipeline_id: None,
            pipeline_version_id: None,
            spec: json!({"pipelineInfo": {"name": "p"}}),
            parameters: json!({"a": 1}),
            runtime_config: json!({"parameters": {"a": 1}}),
            trigger: trigger.clone(),
            max_concurrency: 2,
            no_catchup: true,
            enabled: true,
        })
        .await
        .unwrap();
    assert_eq!((rr.max_concurrency, rr.no_catchup, rr.enabled, rr.last_fire_at), (2, true, true, None));
    assert_eq!(rr.trigger, trigger);
    assert_eq!(rr.pipeline_id, None);
    s.set_recurring_run_fired(&rr.id, 1_700_000_000_000).await.unwrap();
    assert_eq!(s.list_recurring_runs(true).await.unwrap()[0].last_fire_at, Some(1_700_000_000_000));
    s.set_recurring_run_enabled(&rr.id, false).await.unwrap();
    assert!(s.list_recurring_runs(true).await.unwrap().is_empty());
    assert!(!s.get_recurring_run(&rr.id).await.unwrap().enabled);
    assert_eq!(s.list_recurring_runs(false).await.unwrap().len(), 1);
    s.delete_recurring_run(&rr.id).await.unwrap();
    assert!(matches!(s.get_recurring_run(&rr.id).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(s.set_recurring_run_enabled(&rr.id, true).await, Err(StoreError::NotFound { .. })));
}

/// Many writers at once, as a busy server has: one experiment for concurrent `ensure_experiment`s, and every
/// task of concurrent runs written with its lineage.
async fn concurrent_writers_keep_one_experiment_and_every_task(db: &TestDb) {
    let s = &db.store;
    let ensure: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.ensure_experiment("Default", "").await.unwrap().id })
        })
        .collect();
    let mut ids = Vec::new();
    for h in ensure {
        ids.push(h.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");

    let writers: Vec<_> = (0..6)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let run = s.create_run(&new_run()).await.unwrap();
                s.set_run_state(&run.id, RunState::Running, None).await.unwrap();
                for j in 0..5 {
                    let path = format!("t{j}");
                    let id = s.start_task(&task(&run.id, &path, TaskState::Running)).await.unwrap();
                    let art = NewArtifact {
                        id: new_id(),
                        output_name: "out".into(),
                        name: "out".into(),
                        uri: format!("/r/{i}/{j}"),
                        schema_title: "system.Dataset".into(),
                        schema_version: "0.0.1".into(),
                        metadata: json!({"j": j}),
                    };
                    let key = format!("key-{i}-{j}");
                    let outputs = json!({"parameters": {"Output": j}});
                    s.finish_task(&TaskFinish {
                        outputs: Some(&outputs),
                        new_artifacts: std::slice::from_ref(&art),
                        cache_key_to_record: Some(&key),
                        ..finish(&run.id, &id, TaskState::Succeeded)
                    })
                    .await
                    .unwrap();
                }
                s.set_run_state(&run.id, RunState::Succeeded, None).await.unwrap();
                run.id
            })
        })
        .collect();
    for w in writers {
        let run_id = w.await.unwrap();
        assert_eq!(s.list_tasks(&run_id).await.unwrap().len(), 5);
        assert_eq!(s.list_artifacts(&run_id).await.unwrap().len(), 5);
        assert_eq!(s.list_events(&run_id).await.unwrap().len(), 5);
        assert_eq!(s.get_run(&run_id).await.unwrap().state, RunState::Succeeded);
    }
    // A second finish under the same cache key replaces the entry (ON CONFLICT DO UPDATE).
    let run = s.create_run(&new_run()).await.unwrap();
    let id = s.start_task(&task(&run.id, "again", TaskState::Running)).await.unwrap();
    let outputs = json!({"parameters": {"Output": "new"}});
    s.finish_task(&TaskFinish {
        outputs: Some(&outputs),
        cache_key_to_record: Some("key-0-0"),
        ..finish(&run.id, &id, TaskState::Succeeded)
    })
    .await
    .unwrap();
    assert_eq!(s.lookup_cache("key-0-0").await.unwrap(), Some((id, outputs)));
}

/// Runs of a pipeline the store has not seen, submitted at once (a server's clients, recurring runs): every
/// submission succeeds and all of them get the same pipeline and version.
async fn concurrent_submissions_of_a_new_pipeline_record_it_once(db: &TestDb) {
    let s = &db.store;
    let spec = json!({"pipelineInfo": {"name": "fresh"}});
    let submissions: Vec<_> = (0..8)
        .map(|_| {
            let (s, spec) = (s.clone(), spec.clone());
            tokio::spawn(async move { s.record_pipeline_version("fresh", "", "", &spec, "abcdef0123456789").await })
        })
        .collect();
    let mut got = Vec::new();
    for h in submissions {
        got.push(h.await.unwrap().expect("a concurrent submission failed"));
    }
    got.dedup();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(s.list_pipelines(None).await.unwrap().len(), 1);
    assert_eq!(s.list_pipeline_versions(&got[0].0).await.unwrap().len(), 1);
}
