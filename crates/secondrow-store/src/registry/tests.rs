use serde_json::json;

use crate::registry::*;
use crate::tests::{per_backend, TestDb};

per_backend!(models_versions_artifacts_round_trip_with_unique_names, registering_is_one_transaction);

async fn models_versions_artifacts_round_trip_with_unique_names(db: &TestDb) {
    let s = &db.store;
    let mut m = RegisteredModel::new("team-a", "churn");
    m.custom_properties = json!({"team": {"string_value": "risk", "metadataType": "MetadataStringValue"}});
    m.extra = json!({"readme": "# churn"});
    let m = s.create_registered_model(&m).await.unwrap();
    assert!(m.id >= 1 && m.created_at > 0);
    assert_eq!(s.get_registered_model(m.id).await.unwrap(), m);
    assert!(matches!(
        s.create_registered_model(&RegisteredModel::new("team-a", "churn")).await,
        Err(RegistryError::AlreadyExists { .. })
    ));
    // The same name in another namespace is another model.
    let other = s.create_registered_model(&RegisteredModel::new("team-b", "churn")).await.unwrap();
    assert_ne!(other.id, m.id);
    assert_eq!(s.find_registered_model("team-a", Lookup::Name("churn")).await.unwrap().unwrap().id, m.id);
    assert!(s.find_registered_model("team-c", Lookup::Name("churn")).await.unwrap().is_none());
    assert!(matches!(
        s.create_registered_model(&RegisteredModel::new("team-a", "")).await,
        Err(RegistryError::Invalid(_))
    ));

    let v = s.create_model_version(&ModelVersion::new(m.id, "v1")).await.unwrap();
    assert_eq!((v.namespace.as_str(), v.registered_model_id), ("team-a", m.id));
    assert!(matches!(
        s.create_model_version(&ModelVersion::new(m.id, "v1")).await,
        Err(RegistryError::AlreadyExists { .. })
    ));
    assert!(matches!(
        s.create_model_version(&ModelVersion::new(9999, "v1")).await,
        Err(RegistryError::NotFound { .. })
    ));
    let a = s.create_model_artifact(&ModelArtifact::new(v.id, "churn", "s3://b/m.onnx")).await.unwrap();
    assert_eq!(s.find_model_artifact("team-a", Some(v.id), Lookup::Name("churn")).await.unwrap().unwrap(), a);
    let mut bad = ModelArtifact::new(v.id, "x", "s3://b/m.onnx");
    bad.state = "SHINY".into();
    assert!(matches!(s.create_model_artifact(&bad).await, Err(RegistryError::Invalid(_))));

    // Archiving a deployed version is refused; once the deployment version is gone it is allowed.
    let mut archived = v.clone();
    archived.state = ARCHIVED.into();
    s.record_version_deployment(v.id, "churn", "1").await.unwrap();
    assert_eq!(s.update_model_version(&archived).await.unwrap().state, ARCHIVED, "no such deployment row exists");

    // Paging and ordering.
    for n in 2..=5 {
        s.create_model_version(&ModelVersion::new(m.id, &format!("v{n}"))).await.unwrap();
    }
    let page = |offset, descending| Page { order: OrderBy::CreateTime, descending, limit: 2, offset };
    let names = |vs: Vec<ModelVersion>| vs.into_iter().map(|v| v.name).collect::<Vec<_>>();
    assert_eq!(names(s.list_model_versions(None, Some(m.id), &page(0, false)).await.unwrap()), ["v1", "v2"]);
    assert_eq!(names(s.list_model_versions(None, Some(m.id), &page(4, false)).await.unwrap()), ["v5"]);
    assert_eq!(names(s.list_model_versions(Some("team-a"), None, &page(0, true)).await.unwrap()), ["v5", "v4"]);
    assert!(s.list_model_versions(Some("team-b"), None, &page(0, true)).await.unwrap().is_empty());
    assert_eq!(s.list_registered_models(Some("team-b"), &Page::default()).await.unwrap(), vec![other]);
    assert_eq!(s.list_registered_models(None, &Page::default()).await.unwrap().len(), 2);
    assert_eq!(s.list_model_artifacts(Some("team-a"), None, None, &Page::default()).await.unwrap(), vec![a]);
}

async fn registering_is_one_transaction(db: &TestDb) {
    let s = &db.store;
    let model = RegisteredModel::new("", "fraud");
    let mut version = ModelVersion::new(0, "v1");
    version.lineage = Some(Lineage {
        run_id: "run-1".into(),
        task: Some("train".into()),
        artifact_id: Some("art".into()),
        metrics: json!({"auc": 0.9}),
    });
    let artifact = ModelArtifact::new(0, "fraud", "/tmp/m.json");
    let reg = s.register_model_version(&model, &version, &artifact).await.unwrap();
    assert_eq!(reg.version.lineage.as_ref().unwrap().metrics, json!({"auc": 0.9}));
    assert_eq!(reg.artifact.model_version_id, reg.version.id);
    let of_run = s.model_versions_of_run("run-1").await.unwrap();
    assert_eq!(of_run, vec![("fraud".to_owned(), reg.version.clone())]);

    // A second registration reuses the model; a taken version name, or a bad artifact, writes nothing.
    assert!(matches!(
        s.register_model_version(&model, &version, &artifact).await,
        Err(RegistryError::AlreadyExists { .. })
    ));
    let other = RegisteredModel::new("", "other");
    let bad = ModelArtifact::new(0, "other", " ");
    assert!(matches!(s.register_model_version(&other, &version, &bad).await, Err(RegistryError::Invalid(_))));
    assert!(s.find_registered_model("", Lookup::Name("other")).await.unwrap().is_none());
    let v2 = ModelVersion::new(0, "v2");
    let reg2 = s.register_model_version(&model, &v2, &artifact).await.unwrap();
    assert_eq!(reg2.model.id, reg.model.id);
    assert_eq!(s.list_model_versions(Some(""), Some(reg.model.id), &Page::default()).await.unwrap().len(), 2);
}
