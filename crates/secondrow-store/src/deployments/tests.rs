use serde_json::json;

use crate::deployments::*;
use crate::tests::{per_backend, TestDb};
use crate::*;

per_backend!(
    sources_resolve_to_model_files_or_fail_naming_the_problem,
    versions_traffic_and_deletes_are_checked_and_transactional,
    log_sample_is_checked_stored_and_cleared
);

/// A run with one finished task `train` that output `model` (a system.Model file) and `data` (a Dataset).
async fn run_with_model(s: &Store, dir: &std::path::Path) -> (String, String, String) {
    let run = s
        .create_run(&NewRun {
            display_name: "r".into(),
            pipeline_name: "p".into(),
            spec: json!({}),
            options: json!({}),
            ..NewRun::default()
        })
        .await
        .unwrap();
    let start = TaskStart {
        run_id: &run.id,
        parent_id: None,
        path: "train",
        task_key: "train",
        display_name: "train-model",
        kind: TaskKind::Container,
        state: TaskState::Running,
        attempt: 1,
        cache_key: None,
        inputs: None,
    };
    let task_id = s.start_task(&start).await.unwrap();
    let file = |name: &str| {
        let p = dir.join(name);
        std::fs::write(&p, "{}").unwrap();
        p.display().to_string()
    };
    let artifact = |output: &str, schema: &str| NewArtifact {
        id: new_id(),
        output_name: output.into(),
        name: output.into(),
        uri: file(output),
        schema_title: schema.into(),
        schema_version: "0.0.1".into(),
        metadata: json!({}),
    };
    let arts = [artifact("model", MODEL_SCHEMA), artifact("data", "system.Dataset")];
    s.finish_task(&TaskFinish {
        run_id: &run.id,
        task_id: &task_id,
        state: TaskState::Succeeded,
        error: None,
        cached: false,
        outputs: None,
        new_artifacts: &arts,
        output_artifact_refs: &[],
        input_artifact_refs: &[],
        cache_key_to_record: None,
    })
    .await
    .unwrap();
    (run.id, arts[0].id.clone(), arts[1].id.clone())
}

async fn sources_resolve_to_model_files_or_fail_naming_the_problem(db: &TestDb) {
    let (d, s) = (&db.dir, &db.store);
    let (run_id, model_id, data_id) = run_with_model(s, d.path()).await;
    let by_artifact = s.resolve_model_source(&ModelSource::Artifact { artifact_id: model_id.clone() }).await.unwrap();
    assert_eq!(by_artifact.artifact_id.as_deref(), Some(model_id.as_str()));
    assert_eq!(by_artifact.path, d.path().join("model"));
    let task =
        ModelSource::TaskOutput { run_id: run_id[..8].into(), task: "train-model".into(), output: "model".into() };
    let by_task = s.resolve_model_source(&task).await.unwrap();
    assert_eq!(by_task.artifact_id, by_artifact.artifact_id);
    assert_eq!(by_task.source, json!({"run_id": run_id, "task": "train", "output": "model"}));

    let err = |r: Result<ResolvedSource>| r.unwrap_err().to_string();
    let dataset = err(s.resolve_model_source(&ModelSource::Artifact { artifact_id: data_id.clone() }).await);
    assert_eq!(dataset, format!("invalid argument: artifact `{data_id}` is a system.Dataset, not a system.Model"));
    assert!(matches!(
        s.resolve_model_source(&ModelSource::Artifact { artifact_id: "nope".into() }).await,
        Err(StoreError::NotFound { .. })
    ));
    let no_output = ModelSource::TaskOutput { run_id: run_id.clone(), task: "train".into(), output: "weights".into() };
    assert!(err(s.resolve_model_source(&no_output).await).contains("task output artifact"));
    let relative = err(s.resolve_model_source(&ModelSource::Path { path: "model.json".into() }).await);
    assert!(relative.contains("source.path: `model.json` must be an absolute path"), "{relative}");
    // A model in an object store resolves to its URI (the server fetches it); a bucket alone is refused.
    let remote = s.resolve_model_source(&ModelSource::Path { path: "s3://models/churn/model.json".into() }).await;
    assert_eq!(remote.unwrap().path, std::path::PathBuf::from("s3://models/churn/model.json"));
    let bucket = err(s.resolve_model_source(&ModelSource::Path { path: "s3://models".into() }).await);
    assert!(bucket.contains("names a bucket, not a model file"), "{bucket}");
    assert!(ModelSource::from_json("source", &json!({"artifact_id": "a", "path": "/x"})).is_err());
    assert_eq!(
        ModelSource::from_json("source", &json!({"path": "/x"})).unwrap(),
        ModelSource::Path { path: "/x".into() }
    );
}

async fn versions_traffic_and_deletes_are_checked_and_transactional(db: &TestDb) {
    let (d, s) = (&db.dir, &db.store);
    let (_, model_id, _) = run_with_model(s, d.path()).await;
    let resolved = s.resolve_model_source(&ModelSource::Artifact { artifact_id: model_id }).await.unwrap();
    let add = |version: &'static str, make_default: bool| {
        let s = s.clone();
        let resolved = resolved.clone();
        async move {
            s.add_deployment_version(&NewDeploymentVersion {
                name: "churn",
                namespace: "team-a",
                version,
                resolved: &resolved,
                make_default,
                model_version_id: None,
            })
            .await
        }
    };
    let first = add("1", false).await.unwrap();
    assert_eq!((first.default_version.as_str(), first.versions.len()), ("1", 1));
    assert_eq!(next_version(Some(&first)), "2");
    let second = add("2", false).await.unwrap();
    assert_eq!(second.default_version, "1", "make_default false keeps the default");
    assert!(matches!(add("2", true).await, Err(StoreError::AlreadyExists { .. })));
    assert!(matches!(add("bad/name", true).await, Err(StoreError::InvalidArgument(_))));
    assert_eq!(second.namespace, "team-a");
    let elsewhere = NewDeploymentVersion {
        name: "churn",
        namespace: "team-b",
        version: "3",
        resolved: &resolved,
        make_default: true,
        model_version_id: None,
    };
    assert!(
        matches!(s.add_deployment_version(&elsewhere).await, Err(StoreError::InvalidArgument(m)) if m.contains("team-a")),
        "a version cannot move a deployment to another namespace"
    );

    let canary =
        TrafficUpdate { canary: Some(Some(Canary { version: "2".into(), percent: 30 })), ..TrafficUpdate::default() };
    let got = s.update_deployment_traffic("churn", &canary).await.unwrap();
    assert_eq!(got.canary, Some(Canary { version: "2".into(), percent: 30 }));
    for bad in [
        TrafficUpdate { default_version: Some("9".into()), ..TrafficUpdate::default() },
        TrafficUpdate { canary: Some(Some(Canary { version: "2".into(), percent: 101 })), ..TrafficUpdate::default() },
        TrafficUpdate { canary: Some(Some(Canary { version: "1".into(), percent: 5 })), ..TrafficUpdate::default() },
    ] {
        assert!(matches!(s.update_deployment_traffic("churn", &bad).await, Err(StoreError::InvalidArgument(_))));
    }
    assert_eq!(s.get_deployment("churn").await.unwrap(), got, "a refused update writes nothing");
    // Promoting the canary ends it.
    let promoted = s
        .update_deployment_traffic("churn", &TrafficUpdate { default_version: Some("2".into()), canary: None })
        .await
        .unwrap();
    assert_eq!((promoted.default_version.as_str(), promoted.canary.clone()), ("2", None));

    assert!(matches!(s.delete_deployment("churn", Some("2")).await, Err(StoreError::InvalidArgument(_))));
    let left = s.delete_deployment("churn", Some("1")).await.unwrap().unwrap();
    assert_eq!(left.versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["2"]);
    assert_eq!(s.list_deployments(None).await.unwrap(), vec![left.clone()]);
    assert_eq!(s.list_deployments(Some("team-a")).await.unwrap(), vec![left]);
    assert!(s.list_deployments(Some("team-b")).await.unwrap().is_empty());
    assert_eq!(s.delete_deployment("churn", None).await.unwrap(), None);
    assert!(s.list_deployments(None).await.unwrap().is_empty());
    assert!(matches!(s.get_deployment("churn").await, Err(StoreError::NotFound { .. })));
}

async fn log_sample_is_checked_stored_and_cleared(db: &TestDb) {
    let s = &db.store;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.onnx");
    std::fs::write(&model, "x").unwrap();
    let resolved = s.resolve_model_source(&ModelSource::Path { path: model.display().to_string() }).await.unwrap();
    let new = NewDeploymentVersion {
        name: "logged",
        namespace: "",
        version: "1",
        resolved: &resolved,
        make_default: true,
        model_version_id: None,
    };
    assert_eq!(s.add_deployment_version(&new).await.unwrap().log_sample, None);
    assert_eq!(s.set_deployment_log_sample("logged", Some(0.25)).await.unwrap().log_sample, Some(0.25));
    assert_eq!(s.get_deployment("logged").await.unwrap().log_sample, Some(0.25));
    for bad in [-0.1, 1.5, f64::NAN] {
        let e = s.set_deployment_log_sample("logged", Some(bad)).await.unwrap_err();
        assert!(e.to_string().contains("log_sample"), "{e}");
    }
    assert_eq!(s.get_deployment("logged").await.unwrap().log_sample, Some(0.25));
    assert_eq!(s.set_deployment_log_sample("logged", Some(0.0)).await.unwrap().log_sample, None);
    assert!(matches!(
        s.set_deployment_log_sample("nope", Some(0.5)).await.unwrap_err(),
        StoreError::NotFound { kind: "deployment", .. }
    ));
}
