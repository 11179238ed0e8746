use serde_json::json;

use super::*;

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let s = Store::open(&url).await.unwrap();
    (dir, s)
}

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

#[tokio::test]
async fn run_lifecycle_and_history() {
    let (_d, s) = store().await;
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
    assert!(matches!(s.get_run("nope").await, Err(StoreError::NotFound { .. })));
    assert!(matches!(s.set_run_state("nope", RunState::Running, None).await, Err(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn finishing_a_task_writes_artifacts_events_and_cache_atomically() {
    let (_d, s) = store().await;
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

#[tokio::test]
async fn experiments_are_unique_per_namespace() {
    let (_d, s) = store().await;
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

#[tokio::test]
async fn pipelines_without_versions_have_unique_names() {
    let (_dir, s) = store().await;
    let p = s.create_pipeline("p", "first", "ns").await.unwrap();
    assert_eq!(s.get_pipeline(&p.id).await.unwrap().description, "first");
    assert!(s.list_pipeline_versions(&p.id).await.unwrap().is_empty());
    let again = s.create_pipeline("p", "second", "ns").await;
    assert!(matches!(again, Err(StoreError::AlreadyExists { kind: "pipeline", .. })), "{again:?}");
    assert_eq!(s.list_pipelines(None).await.unwrap().len(), 1);
}
