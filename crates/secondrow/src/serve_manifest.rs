//! `secondrow deploy manifest NAME`: a deployment as Kubernetes objects — a Deployment running
//! `secondrow serve` with the deployment's model versions, and a Service in front of it — printed as YAML for
//! `kubectl apply -f -`.
//!
//! The model files are read where the server keeps them: the server's data volume (the PVC of
//! `deploy/kubernetes`) is mounted read-only at the same path, so the recorded paths stay valid.

use serde_json::{json, Value};

use crate::error::{Failure, Result};

/// Where the Deployment gets its image and model files.
pub struct ManifestOptions<'a> {
    pub image: &'a str,
    /// The claim holding the server's home (its artifacts).
    pub data_claim: &'a str,
    /// Where that claim is mounted in the server (the model paths start there).
    pub data_path: &'a str,
    pub replicas: u32,
}

/// A name Kubernetes accepts for a Deployment and a Service (DNS-1035 label).
fn object_name(name: &str) -> Result<String> {
    let full = format!("serve-{name}");
    let ok = full.len() <= 63
        && full.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !full.ends_with('-');
    if !ok {
        return Err(Failure::usage(format!(
            "deployment name `{name}` does not make a Kubernetes object name (lowercase letters, digits and `-`, \
             at most 57 characters, not ending in `-`)"
        )));
    }
    Ok(full)
}

/// The Deployment and the Service of deployment document `d` (as `deploy get --json` prints it).
pub fn manifests(d: &Value, opts: &ManifestOptions<'_>) -> Result<Vec<Value>> {
    let name = d["name"].as_str().ok_or_else(|| Failure::usage("the deployment has no name"))?;
    let object = object_name(name)?;
    let mut args = vec![json!("serve"), json!("--host=0.0.0.0"), json!("--port=8080")];
    let versions = d["versions"].as_array().map(Vec::as_slice).unwrap_or_default();
    if versions.is_empty() {
        return Err(Failure::usage(format!("deployment `{name}` has no version to serve")));
    }
    for v in versions {
        let (Some(version), Some(path)) = (v["version"].as_str(), v["path"].as_str()) else { continue };
        if !path.starts_with(opts.data_path) {
            return Err(Failure::usage(format!(
                "version {version} of `{name}` serves {path}, outside the data volume path {} (--data-path)",
                opts.data_path
            )));
        }
        args.push(json!(format!("--model={name}={path}:{version}")));
    }
    let labels = json!({"app.kubernetes.io/name": "secondrow-serve", "secondrow.dev/deployment": name});
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": object, "labels": labels},
        "spec": {
            "replicas": opts.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532},
                    "containers": [{
                        "name": "serve",
                        "image": opts.image,
                        "args": args,
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 5},
                        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 20},
                        "volumeMounts": [{"name": "data", "mountPath": opts.data_path, "readOnly": true}],
                    }],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": opts.data_claim, "readOnly": true}}],
                },
            },
        },
    });
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": object, "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]},
    });
    Ok(vec![deployment, service])
}

/// The objects as one multi-document YAML text.
pub fn to_yaml(objects: &[Value]) -> Result<String> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(o).map_err(|e| Failure::from(anyhow::anyhow!("writing YAML: {e}")))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ManifestOptions<'static> {
        ManifestOptions {
            image: "secondrow:1",
            data_claim: "secondrow-data",
            data_path: "/var/lib/secondrow",
            replicas: 2,
        }
    }

    #[test]
    fn a_deployment_becomes_a_deployment_and_a_service() {
        let d = json!({"name": "churn", "versions": [
            {"version": "1", "path": "/var/lib/secondrow/artifacts/r/model.onnx"},
            {"version": "2", "path": "/var/lib/secondrow/artifacts/s/model.onnx"},
        ]});
        let objects = manifests(&d, &opts()).unwrap();
        let dep = &objects[0];
        assert_eq!(dep["metadata"]["name"], "serve-churn");
        let c = &dep["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "secondrow:1");
        assert_eq!(c["args"][3], "--model=churn=/var/lib/secondrow/artifacts/r/model.onnx:1");
        assert_eq!(c["args"][4], "--model=churn=/var/lib/secondrow/artifacts/s/model.onnx:2");
        assert_eq!(dep["spec"]["replicas"], 2);
        assert_eq!(objects[1]["kind"], "Service");
        assert_eq!(objects[1]["spec"]["selector"], dep["spec"]["selector"]["matchLabels"]);
        let yaml = to_yaml(&objects).unwrap();
        assert_eq!(yaml.matches("---\n").count(), 2);
    }

    #[test]
    fn names_and_paths_are_checked() {
        let bad_name = json!({"name": "Churn_Model", "versions": [{"version": "1", "path": "/var/lib/secondrow/m"}]});
        assert!(manifests(&bad_name, &opts()).is_err());
        let outside = json!({"name": "churn", "versions": [{"version": "1", "path": "/home/me/m.onnx"}]});
        let err = manifests(&outside, &opts()).unwrap_err().to_string();
        assert!(err.contains("outside the data volume"), "{err}");
        let empty = json!({"name": "churn", "versions": []});
        assert!(manifests(&empty, &opts()).is_err());
    }
}
