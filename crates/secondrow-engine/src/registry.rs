//! The built-in `register_model` component's other half: a task that succeeded with an output whose
//! metadata holds [`REGISTER_MODEL_KEY`] asks for its `model` input to be registered in the model registry.
//! The component has no store (it may run sandboxed); the engine registers, in the run's namespace, with
//! lineage back to the model's producing task and the metrics of its run (see `docs/model-registry.md` §8).

use serde_json::{json, Map, Value};

use secondrow_store::registry::{Lineage, Lookup, ModelArtifact, ModelVersion, RegisteredModel};
use secondrow_store::{NewArtifact, RunRecord, Store};

use crate::task::ArtifactRef;

/// The metadata key `secondrow component register_model` writes on its `registration` output.
pub const REGISTER_MODEL_KEY: &str = "secondrow.register_model";

/// Whether a finished task's new artifacts ask for a registration.
pub fn wants_registration(artifacts: &[NewArtifact]) -> bool {
    artifacts.iter().any(|a| a.metadata.get(REGISTER_MODEL_KEY).is_some())
}

/// Registers what the outputs ask for; the error is the task's failure message.
pub async fn register_outputs(
    store: &Store,
    run: &RunRecord,
    model: Option<&ArtifactRef>,
    artifacts: &[NewArtifact],
) -> Result<(), String> {
    for request in artifacts.iter().filter_map(|a| a.metadata.get(REGISTER_MODEL_KEY)) {
        let model = model.ok_or("register_model: no `model` input artifact")?;
        let text = |key: &str| request.get(key).and_then(Value::as_str).unwrap_or("").trim().to_owned();
        let name = text("model_name");
        let version = match text("version") {
            v if v.is_empty() => format!("run-{}", &run.id[..run.id.len().min(8)]),
            v => v,
        };
        if already_registered(store, &run.namespace, &name, &version, &model.id).await? {
            // A run resumed after a crash between this registration and the task's record: the same
            // step registered this same artifact already.
            continue;
        }
        let producer = store.get_artifact(&model.id).await.map_err(|e| e.to_string())?;
        let task = match &producer.task_id {
            Some(id) => store
                .list_tasks(&producer.run_id)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|t| &t.id == id)
                .map(|t| t.path),
            None => None,
        };
        let metrics =
            store.artifact_metrics(&model.id, producer.task_id.as_deref()).await.map_err(|e| e.to_string())?;
        let mut v = ModelVersion::new(0, &version);
        v.description = Some(text("description")).filter(|d| !d.is_empty());
        if let Value::Object(m) = &metrics {
            let props: Map<String, Value> = m
                .iter()
                .map(|(k, x)| (k.clone(), json!({"double_value": x, "metadataType": "MetadataDoubleValue"})))
                .collect();
            v.custom_properties = Value::Object(props);
        }
        v.lineage =
            Some(Lineage { run_id: producer.run_id.clone(), task, artifact_id: Some(model.id.clone()), metrics });
        let mut a = ModelArtifact::new(0, &name, &model.uri);
        let onnx = model.uri.to_ascii_lowercase().ends_with(".onnx");
        a.model_format_name = Some(if onnx { "onnx" } else { "secondrow" }.to_owned());
        store
            .register_model_version(&RegisteredModel::new(&run.namespace, &name), &v, &a)
            .await
            .map_err(|e| format!("register_model: {e}"))?;
    }
    Ok(())
}

/// Whether `name`/`version` of `namespace` exists with `artifact_id` as its source (a step registering again
/// after a resume); the same name and version from another artifact stays a refusal.
async fn already_registered(
    store: &Store,
    namespace: &str,
    name: &str,
    version: &str,
    artifact_id: &str,
) -> Result<bool, String> {
    let Some(model) = store.find_registered_model(namespace, Lookup::Name(name)).await.map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    let found =
        store.find_model_version(namespace, Some(model.id), Lookup::Name(version)).await.map_err(|e| e.to_string())?;
    Ok(found.and_then(|v| v.lineage).is_some_and(|l| l.artifact_id.as_deref() == Some(artifact_id)))
}
