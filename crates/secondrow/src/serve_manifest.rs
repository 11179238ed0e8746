//! `secondrow deploy manifest NAME`: a deployment as Kubernetes objects — a Deployment running
//! `secondrow serve` with the deployment's model versions, and a Service in front of it — printed as YAML for
//! `kubectl apply -f -`.
//!
//! Where the Pods get the model files:
//! - versions in the artifact store (`s3://…`, a server with an S3 artifact root) are downloaded by
//!   `secondrow serve` itself into its model cache (an `emptyDir`), with the S3 endpoint as an env value and
//!   the credentials from a Secret (`secretKeyRef`, never literal values in the manifest);
//! - local files are read from the server's data volume (the PVC of `deploy/kubernetes`, `--data-claim`),
//!   mounted read-only at the same path so the recorded paths stay valid. Without a claim a local file is
//!   refused: a Pod cannot read the server's disk.
//!
//! Traffic: every Pod serves all versions of the deployment (the default listed last, as `serve` wants) and
//! splits unpinned requests to the canary itself (`serve --canary`), exactly as `secondrow server` does. A
//! Kubernetes Service cannot weight its endpoints, so one Deployment per version behind one Service would
//! split by replica count only; here the share is per request and pinned versions
//! (`/v2/models/NAME/versions/V`) answer from any Pod.

use serde_json::{json, Value};

use crate::error::{Failure, Result};

/// The port `secondrow serve` listens on in the Pod.
const PORT: u16 = 8080;
/// The Pod's home folder (the model cache), an `emptyDir`.
const HOME: &str = "/var/cache/secondrow";

/// Where the Deployment gets its image and model files.
pub struct ManifestOptions<'a> {
    pub image: &'a str,
    /// The claim holding the server's home (its artifacts), for versions that are local files.
    pub data_claim: Option<&'a str>,
    /// Where that claim is mounted in the server (the model paths start there).
    pub data_path: &'a str,
    pub replicas: u32,
    /// The S3 endpoint the Pods reach (none: AWS itself).
    pub s3_endpoint: Option<&'a str>,
    /// The Secret holding `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and optionally `AWS_REGION`,
    /// `AWS_SESSION_TOKEN`), for versions in S3.
    pub s3_secret: &'a str,
    /// CPU and memory requested per Pod; memory is also the limit.
    pub cpu: &'a str,
    pub memory: &'a str,
}

/// A name Kubernetes accepts for a Deployment and a Service (DNS-1035 label).
pub fn object_name(name: &str) -> Result<String> {
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

/// Checks a resource quantity flag (`500m`, `2`, `1Gi`, `512Mi`).
fn quantity(flag: &str, value: &str) -> Result<()> {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &value[digits.len()..];
    let number_ok = !digits.is_empty() && digits.parse::<f64>().is_ok_and(|n| n > 0.0);
    let suffixes = ["", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"];
    if number_ok && suffixes.contains(&suffix) {
        Ok(())
    } else {
        Err(Failure::usage(format!("{flag}: `{value}` is not a Kubernetes quantity (for example 500m, 2, 512Mi, 1Gi)")))
    }
}

/// The `--model` argument of one version, and whether it is in S3.
fn model_arg(name: &str, v: &Value, opts: &ManifestOptions<'_>) -> Result<(String, bool)> {
    let (Some(version), Some(path)) = (v["version"].as_str(), v["path"].as_str()) else {
        return Err(Failure::usage(format!("deployment `{name}` has a version without a version name or path")));
    };
    if secondrow_store::model_cache::is_remote_model(path) {
        return Ok((format!("--model={name}={path}:{version}"), true));
    }
    let Some(claim) = opts.data_claim else {
        return Err(Failure::usage(format!(
            "version {version} of `{name}` is the local file {path}: a Pod cannot read this server's disk. Keep \
             models in the artifact store (--artifact-root s3://…) or name the PersistentVolumeClaim holding the \
             server's home with --data-claim"
        )));
    };
    if !path.starts_with(opts.data_path) {
        return Err(Failure::usage(format!(
            "version {version} of `{name}` serves {path}, outside the data volume path {} (--data-path) of claim \
             {claim}",
            opts.data_path
        )));
    }
    Ok((format!("--model={name}={path}:{version}"), false))
}

/// The Deployment and the Service of deployment document `d` (as `deploy get --json` prints it).
pub fn manifests(d: &Value, opts: &ManifestOptions<'_>) -> Result<Vec<Value>> {
    let name = d["name"].as_str().ok_or_else(|| Failure::usage("the deployment has no name"))?;
    let object = object_name(name)?;
    quantity("--cpu", opts.cpu)?;
    quantity("--memory", opts.memory)?;
    let versions = d["versions"].as_array().map(Vec::as_slice).unwrap_or_default();
    if versions.is_empty() {
        return Err(Failure::usage(format!("deployment `{name}` has no version to serve")));
    }
    let mut args = vec![json!("serve"), json!("--host=0.0.0.0"), json!(format!("--port={PORT}"))];
    // `serve` makes the last listed version of a model its default.
    let default = d["default_version"].as_str();
    let mut ordered: Vec<&Value> = versions.iter().filter(|v| v["version"].as_str() != default).collect();
    ordered.extend(versions.iter().filter(|v| v["version"].as_str() == default));
    let (mut in_s3, mut on_claim) = (false, false);
    for v in ordered {
        let (arg, remote) = model_arg(name, v, opts)?;
        args.push(json!(arg));
        in_s3 |= remote;
        on_claim |= !remote;
    }
    if let (Some(version), Some(percent)) = (d["canary"]["version"].as_str(), d["canary"]["percent"].as_u64()) {
        args.push(json!(format!("--canary={name}={version}:{percent}")));
    }
    let mut env = vec![json!({"name": "SECONDROW_HOME", "value": HOME})];
    if in_s3 {
        if let Some(endpoint) = opts.s3_endpoint {
            env.push(json!({"name": "SECONDROW_S3_ENDPOINT", "value": endpoint}));
        }
        for (key, optional) in [
            ("AWS_ACCESS_KEY_ID", false),
            ("AWS_SECRET_ACCESS_KEY", false),
            ("AWS_REGION", true),
            ("AWS_SESSION_TOKEN", true),
        ] {
            env.push(json!({"name": key, "valueFrom": {"secretKeyRef": {
                "name": opts.s3_secret, "key": key, "optional": optional
            }}}));
        }
    }
    let mut mounts = vec![json!({"name": "cache", "mountPath": HOME})];
    let mut volumes = vec![json!({"name": "cache", "emptyDir": {}})];
    if let (true, Some(claim)) = (on_claim, opts.data_claim) {
        mounts.push(json!({"name": "data", "mountPath": opts.data_path, "readOnly": true}));
        volumes.push(json!({"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": true}}));
    }
    let selector = json!({"app.kubernetes.io/name": "secondrow-serve", "secondrow.dev/deployment": name});
    let labels = json!({
        "app.kubernetes.io/name": "secondrow-serve",
        "app.kubernetes.io/instance": object,
        "app.kubernetes.io/managed-by": "secondrow",
        "secondrow.dev/deployment": name,
    });
    let probe = |path: &str, period: u32, failures: u32| json!({"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures});
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": object, "labels": labels},
        "spec": {
            "replicas": opts.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532},
                    "containers": [{
                        "name": "serve",
                        "image": opts.image,
                        "args": args,
                        "env": env,
                        // `protocol` spelled out: server-side apply keys ports by (port, protocol) on older API servers.
                        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                        "resources": {
                            "requests": {"cpu": opts.cpu, "memory": opts.memory},
                            "limits": {"memory": opts.memory},
                        },
                        // Downloading a large model precedes the listener: up to 10 minutes before liveness counts.
                        "startupProbe": probe("/v2/health/live", 5, 120),
                        "readinessProbe": probe("/v2/health/ready", 5, 3),
                        "livenessProbe": probe("/v2/health/live", 20, 3),
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true},
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    });
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": object, "labels": labels},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}]},
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
            data_claim: Some("secondrow-data"),
            data_path: "/var/lib/secondrow",
            replicas: 2,
            s3_endpoint: Some("http://minio:9000"),
            s3_secret: "secondrow-s3",
            cpu: "250m",
            memory: "512Mi",
        }
    }

    fn container(objects: &[Value]) -> &Value {
        &objects[0]["spec"]["template"]["spec"]["containers"][0]
    }

    #[test]
    fn a_deployment_becomes_a_deployment_and_a_service() {
        let d = json!({"name": "churn", "default_version": "1", "canary": {"version": "2", "percent": 10}, "versions": [
            {"version": "1", "path": "/var/lib/secondrow/artifacts/r/model.onnx"},
            {"version": "2", "path": "/var/lib/secondrow/artifacts/s/model.onnx"},
        ]});
        let objects = manifests(&d, &opts()).unwrap();
        let dep = &objects[0];
        assert_eq!(dep["metadata"]["name"], "serve-churn");
        let c = container(&objects);
        assert_eq!(c["image"], "secondrow:1");
        // The default last (serve's default), then the canary share.
        assert_eq!(c["args"][3], "--model=churn=/var/lib/secondrow/artifacts/s/model.onnx:2");
        assert_eq!(c["args"][4], "--model=churn=/var/lib/secondrow/artifacts/r/model.onnx:1");
        assert_eq!(c["args"][5], "--canary=churn=2:10");
        assert_eq!(dep["spec"]["replicas"], 2);
        assert_eq!(c["resources"]["requests"]["cpu"], "250m");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/v2/health/ready");
        // No S3 version: no credentials; the data claim is mounted read-only.
        assert!(!c["env"].to_string().contains("AWS_"), "{}", c["env"]);
        assert_eq!(
            dep["spec"]["template"]["spec"]["volumes"][1]["persistentVolumeClaim"]["claimName"],
            "secondrow-data"
        );
        assert_eq!(objects[1]["kind"], "Service");
        assert_eq!(objects[1]["spec"]["selector"], dep["spec"]["selector"]["matchLabels"]);
        let yaml = to_yaml(&objects).unwrap();
        assert_eq!(yaml.matches("---\n").count(), 2);
    }

    #[test]
    fn versions_in_s3_are_fetched_by_the_pod_with_credentials_from_a_secret() {
        let d = json!({"name": "churn", "default_version": "1", "versions": [
            {"version": "1", "path": "s3://models/churn/model.json"},
        ]});
        let no_claim = ManifestOptions { data_claim: None, ..opts() };
        let objects = manifests(&d, &no_claim).unwrap();
        let c = container(&objects);
        assert_eq!(c["args"][3], "--model=churn=s3://models/churn/model.json:1");
        let env = c["env"].as_array().unwrap();
        let named = |n: &str| env.iter().find(|e| e["name"] == n).cloned().unwrap_or(Value::Null);
        assert_eq!(named("SECONDROW_S3_ENDPOINT")["value"], "http://minio:9000");
        assert_eq!(named("AWS_SECRET_ACCESS_KEY")["valueFrom"]["secretKeyRef"]["name"], "secondrow-s3");
        assert!(env.iter().all(|e| e["name"] == "SECONDROW_HOME"
            || e["name"] == "SECONDROW_S3_ENDPOINT"
            || e.get("value").is_none()));
        let volumes = objects[0]["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 1, "only the cache: {volumes:?}");
    }

    #[test]
    fn names_paths_and_quantities_are_checked() {
        let bad_name = json!({"name": "Churn_Model", "versions": [{"version": "1", "path": "/var/lib/secondrow/m"}]});
        assert!(manifests(&bad_name, &opts()).is_err());
        let outside = json!({"name": "churn", "versions": [{"version": "1", "path": "/home/me/m.onnx"}]});
        let err = manifests(&outside, &opts()).unwrap_err().to_string();
        assert!(err.contains("outside the data volume"), "{err}");
        let local = json!({"name": "churn", "versions": [{"version": "1", "path": "/var/lib/secondrow/m"}]});
        let err = manifests(&local, &ManifestOptions { data_claim: None, ..opts() }).unwrap_err().to_string();
        assert!(err.contains("a Pod cannot read this server's disk") && err.contains("--data-claim"), "{err}");
        let empty = json!({"name": "churn", "versions": []});
        assert!(manifests(&empty, &opts()).is_err());
        let err = manifests(&local, &ManifestOptions { memory: "lots", ..opts() }).unwrap_err().to_string();
        assert!(err.contains("--memory: `lots`"), "{err}");
        assert!(
            quantity("--cpu", "1.5").is_ok() && quantity("--cpu", "0").is_err() && quantity("--cpu", "2x").is_err()
        );
    }
}
