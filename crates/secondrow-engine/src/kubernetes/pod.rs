//! The Pod of one task attempt: what the component asks for (image, command after placeholder expansion,
//! env, resources) and its kfp-kubernetes settings, with the labels that find it again.
//!
//! The spec is written as JSON and read into `k8s_openapi`'s `Pod`, so the shape is checked against the
//! API types; only long-GA Pod fields are used (the oldest server the tests run against is 1.20).

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use secondrow_spec::platform::SourceKind;
use secondrow_spec::resources::ResolvedResource;

/// Label keys of SecondRow's Pods.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "secondrow";
pub const LABEL_RUN: &str = "secondrow.dev/run";
pub const LABEL_TASK: &str = "secondrow.dev/task";
pub const LABEL_TASK_HASH: &str = "secondrow.dev/task-hash";
pub const LABEL_ATTEMPT: &str = "secondrow.dev/attempt";
/// The full task path (labels are limited to 63 characters of a small alphabet).
pub const ANNOTATION_TASK_PATH: &str = "secondrow.dev/task-path";
/// The task's id in the store.
pub const ANNOTATION_TASK_ID: &str = "secondrow.dev/task-id";
/// The name of the container that runs the task's command.
pub const MAIN_CONTAINER: &str = "main";

/// One secret or config map key as an environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRef {
    pub kind: SourceKind,
    pub object: String,
    pub key: String,
    pub var: String,
    pub optional: bool,
}

/// A secret or config map as a folder of files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRef {
    pub kind: SourceKind,
    pub object: String,
    pub mount_path: String,
    pub optional: bool,
}

/// A task's kfp-kubernetes settings with every name resolved (Kubernetes applies them itself: secrets and
/// config maps are the cluster's, PVCs are claims).
#[derive(Debug, Clone, Default)]
pub struct PodPlatform {
    /// (claim name, mount path).
    pub pvc_mounts: Vec<(String, String)>,
    pub env: Vec<EnvRef>,
    pub volumes: Vec<VolumeRef>,
    pub scratch_mounts: Vec<String>,
    /// (variable, field path).
    pub field_env: Vec<(String, String)>,
    pub timeout_seconds: Option<u64>,
    /// kfp's settings only Kubernetes applies (`nodeSelector`, `tolerations`, `imagePullSecret`,
    /// `imagePullPolicy`, `podMetadata`), as kfp wrote them.
    pub kubernetes_only: Map<String, Value>,
}

/// Everything one attempt's Pod is made of.
#[derive(Debug, Clone)]
pub struct PodRequest<'a> {
    pub namespace: &'a str,
    pub run_id: &'a str,
    pub task_id: &'a str,
    pub task_path: &'a str,
    pub attempt: i64,
    pub image: &'a str,
    /// The command line after placeholder expansion (command and args).
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub working_dir: Option<&'a str>,
    pub resources: &'a [ResolvedResource],
    pub platform: &'a PodPlatform,
    /// Folders of this host mounted at the same path (the local artifact root, shared with the Pod).
    pub shared_dirs: &'a [PathBuf],
    /// Binds the Pod to this node directly (no scheduler; the test set-up's fake node).
    pub node_name: Option<&'a str>,
    pub service_account: Option<&'a str>,
    /// The SecondRow image: an init container copies the binary into the Pod and the command runs under
    /// `secondrow launch run` ([`super::launch`]).
    pub launcher_image: Option<&'a str>,
    /// Artifacts staged by the launcher (an S3 root): no host path, an `emptyDir` at the mount instead.
    pub staging: Option<&'a PodStaging>,
}

/// What the launcher of a Pod under an S3 root is given ([`super::launch::staging`]).
#[derive(Debug, Clone)]
pub struct PodStaging {
    /// Where the Pod's `emptyDir` for artifacts is mounted (the command's paths are under it).
    pub mount: String,
    /// kfp's executor input, artifacts at their paths under the mount.
    pub executor_input: String,
    /// The launcher's variables given as values (root, endpoint, region; credentials without a Secret).
    pub env: Vec<(String, String)>,
    /// The Secret the credentials come from ([`super::launch::SECRET_KEYS`]), as `secretKeyRef`s.
    pub credentials_secret: Option<String>,
}

/// A Pod field or setting that cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PodSpecError {
    #[error("invalid image name `{image}`: {why}")]
    Image { image: String, why: &'static str },
    #[error("kfp-kubernetes setting `{field}`: {why}")]
    Setting { field: String, why: String },
    #[error("the Pod spec does not decode: {0}")]
    Decode(String),
    #[error(
        "artifacts in an S3 root are staged by the launcher in the Pod: set the launcher image (--launcher-image)"
    )]
    NoLauncher,
}

/// The Pod's name: `sr-` and a digest of the run, task path and attempt (stable, so a restarted engine
/// finds the same Pod; short enough for every name rule).
pub fn pod_name(run_id: &str, task_path: &str, attempt: i64) -> String {
    let digest = Sha256::digest(format!("{run_id}\n{task_path}\n{attempt}").as_bytes());
    format!("sr-{}-{attempt}", &hex::encode(digest)[..20])
}

/// A stable label value naming a task path of any length.
pub fn task_hash(task_path: &str) -> String {
    hex::encode(Sha256::digest(task_path.as_bytes()))[..16].to_owned()
}

/// A label value for humans: letters, digits, `-`, `_`, `.`; at most 63 characters; starts and ends
/// alphanumeric (empty when nothing is left).
pub fn label_value(text: &str) -> String {
    let mapped: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '.' }).collect();
    let cut: String = mapped.chars().take(63).collect();
    cut.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_owned()
}

/// The labels selecting a run's Pods.
pub fn run_selector(run_id: &str) -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_RUN}={}", label_value(run_id))
}

/// The labels selecting the Pods of one task of a run (any attempt).
pub fn task_selector(run_id: &str, task_path: &str) -> String {
    format!("{},{LABEL_TASK_HASH}={}", run_selector(run_id), task_hash(task_path))
}

/// Checks an image reference the way a container runtime would parse it: `[registry/]path[:tag][@digest]`,
/// lowercase path components, no spaces.
pub fn check_image(image: &str) -> Result<(), PodSpecError> {
    let bad = |why| Err(PodSpecError::Image { image: image.to_owned(), why });
    if image.trim().is_empty() {
        return bad("it is empty (the component has no image)");
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains whitespace");
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d
            .split_once(':')
            .is_some_and(|(alg, hex)| !alg.is_empty() && hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            return bad("the digest after `@` is not `ALGORITHM:HEX`");
        }
    }
    // A tag is after the last `:` that follows the last `/` (a `:` before it is a registry port).
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (path, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            && !t.starts_with(['.', '-']);
        if !ok {
            return bad("the tag must be 1-128 letters, digits, `_`, `.` or `-`");
        }
    }
    let mut parts: Vec<&str> = path.split('/').collect();
    // The first component is a registry host when it has a `.` or `:`, or is `localhost`.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        if !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':')) {
            return bad("the registry host has characters other than letters, digits, `.`, `-` and `:`");
        }
    }
    for p in parts {
        let ok = !p.is_empty()
            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
            && p.starts_with(|c: char| c.is_ascii_alphanumeric())
            && p.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return bad("each path component must be lowercase letters and digits, joined by `.`, `_` or `-`");
        }
    }
    Ok(())
}

/// The container's `resources`: kfp's cpu/memory requests and limits, and an accelerator count as a
/// limit (and request) of the accelerator type's resource.
fn resources_json(resources: &[ResolvedResource]) -> Value {
    let mut requests = Map::new();
    let mut limits = Map::new();
    let mut accel_type = None;
    let mut accel_count = None;
    for r in resources {
        let field = r.field;
        if field.ends_with("CpuRequest") || field == "cpuRequest" {
            requests.insert("cpu".into(), json!(r.value));
        } else if field.ends_with("CpuLimit") || field == "cpuLimit" {
            limits.insert("cpu".into(), json!(r.value));
        } else if field.ends_with("MemoryRequest") || field == "memoryRequest" {
            requests.insert("memory".into(), json!(r.value));
        } else if field.ends_with("MemoryLimit") || field == "memoryLimit" {
            limits.insert("memory".into(), json!(r.value));
        } else if field.starts_with("accelerator.") && field.ends_with("Type") {
            accel_type = Some(r.value.clone());
        } else if field.starts_with("accelerator.") {
            accel_count = Some(r.value.clone());
        }
    }
    if let Some(count) = accel_count.filter(|c| c != "0") {
        // kfp's accelerator types are resource names (`nvidia.com/gpu`); an older bare type name stands for
        // an NVIDIA GPU, as kfp's backend maps it.
        let name = match accel_type {
            Some(t) if t.contains('/') => t,
            _ => "nvidia.com/gpu".to_owned(),
        };
        limits.insert(name.clone(), json!(count));
        requests.insert(name, json!(count));
    }
    let mut out = Map::new();
    if !requests.is_empty() {
        out.insert("requests".into(), Value::Object(requests));
    }
    if !limits.is_empty() {
        out.insert("limits".into(), Value::Object(limits));
    }
    Value::Object(out)
}

fn setting(field: &str, why: impl Into<String>) -> PodSpecError {
    PodSpecError::Setting { field: field.to_owned(), why: why.into() }
}

/// A string-to-string map of a kfp setting (`nodeSelector.labels`, `podMetadata.labels`).
fn string_map(v: Option<&Value>, field: &str) -> Result<BTreeMap<String, String>, PodSpecError> {
    let Some(v) = v else { return Ok(BTreeMap::new()) };
    let obj = v.as_object().ok_or_else(|| setting(field, "expected a map of names to strings"))?;
    obj.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(setting(&format!("{field}.{k}"), format!("expected a string, got {other}"))),
        })
        .collect()
}

/// The Pod of one attempt.
pub fn build(req: &PodRequest<'_>) -> Result<Pod, PodSpecError> {
    check_image(req.image)?;
    let only = &req.platform.kubernetes_only;
    let pod_meta = only.get("podMetadata");
    let mut labels = string_map(pod_meta.and_then(|m| m.get("labels")), "podMetadata.labels")?;
    let mut annotations = string_map(pod_meta.and_then(|m| m.get("annotations")), "podMetadata.annotations")?;
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    labels.insert(LABEL_RUN.into(), label_value(req.run_id));
    labels.insert(LABEL_TASK.into(), label_value(req.task_path));
    labels.insert(LABEL_TASK_HASH.into(), task_hash(req.task_path));
    labels.insert(LABEL_ATTEMPT.into(), req.attempt.to_string());
    annotations.insert(ANNOTATION_TASK_PATH.into(), req.task_path.into());
    annotations.insert(ANNOTATION_TASK_ID.into(), req.task_id.into());

    let mut env: Vec<Value> = req.env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    for e in &req.platform.env {
        let selector = json!({"name": e.object, "key": e.key, "optional": e.optional});
        let source = match e.kind {
            SourceKind::Secret => json!({"secretKeyRef": selector}),
            SourceKind::ConfigMap => json!({"configMapKeyRef": selector}),
        };
        env.push(json!({"name": e.var, "valueFrom": source}));
    }
    for (var, path) in &req.platform.field_env {
        env.push(json!({"name": var, "valueFrom": {"fieldRef": {"fieldPath": path}}}));
    }
    if let Some(st) = req.staging {
        env.extend(st.env.iter().map(|(k, v)| json!({"name": k, "value": v})));
        if let Some(secret) = &st.credentials_secret {
            for (key, var, optional) in super::launch::SECRET_KEYS {
                let selector = json!({"name": secret, "key": key, "optional": optional});
                env.push(json!({"name": var, "valueFrom": {"secretKeyRef": selector}}));
            }
        }
    }

    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (i, dir) in req.shared_dirs.iter().enumerate() {
        let path = dir.to_string_lossy();
        let name = format!("shared-{i}");
        volumes.push(json!({"name": name, "hostPath": {"path": path, "type": "DirectoryOrCreate"}}));
        mounts.push(json!({"name": name, "mountPath": path}));
    }
    for (i, (claim, path)) in req.platform.pvc_mounts.iter().enumerate() {
        let name = format!("pvc-{i}");
        volumes.push(json!({"name": name, "persistentVolumeClaim": {"claimName": claim}}));
        mounts.push(json!({"name": name, "mountPath": path}));
    }
    for (i, v) in req.platform.volumes.iter().enumerate() {
        let name = format!("files-{i}");
        let source = match v.kind {
            SourceKind::Secret => json!({"secret": {"secretName": v.object, "optional": v.optional}}),
            SourceKind::ConfigMap => json!({"configMap": {"name": v.object, "optional": v.optional}}),
        };
        let mut vol = json!({"name": name});
        if let (Some(vol), Some(src)) = (vol.as_object_mut(), source.as_object()) {
            vol.extend(src.clone());
        }
        volumes.push(vol);
        mounts.push(json!({"name": name, "mountPath": v.mount_path, "readOnly": true}));
    }
    for (i, path) in req.platform.scratch_mounts.iter().enumerate() {
        let name = format!("scratch-{i}");
        volumes.push(json!({"name": name, "emptyDir": {}}));
        mounts.push(json!({"name": name, "mountPath": path}));
    }

    let mut command: Vec<String> = req.argv.to_vec();
    let mut init = Vec::new();
    if req.staging.is_some() && req.launcher_image.is_none() {
        return Err(PodSpecError::NoLauncher);
    }
    if let Some(st) = req.staging {
        volumes.push(json!({"name": "secondrow-staging", "emptyDir": {}}));
        mounts.push(json!({"name": "secondrow-staging", "mountPath": st.mount}));
        let mut wrapped = vec![
            "--mount".to_owned(),
            st.mount.clone(),
            "--executor-input".to_owned(),
            st.executor_input.clone(),
            "--".to_owned(),
        ];
        wrapped.append(&mut command);
        command = wrapped;
    } else if req.launcher_image.is_some() {
        command.insert(0, "--".to_owned());
    }
    if let Some(image) = req.launcher_image {
        check_image(image)?;
        let bin = super::launch::BIN_DIR;
        volumes.push(json!({"name": "secondrow-bin", "emptyDir": {}}));
        mounts.push(json!({"name": "secondrow-bin", "mountPath": bin}));
        init.push(json!({
            "name": "launcher",
            "image": image,
            "command": ["secondrow", "launch", "install", bin],
            "volumeMounts": [{"name": "secondrow-bin", "mountPath": bin}],
        }));
        let mut wrapped = vec![super::launch::binary_in_pod(), "launch".into(), "run".into()];
        wrapped.append(&mut command);
        command = wrapped;
    }
    let mut container = json!({
        "name": MAIN_CONTAINER,
        "image": req.image,
        "command": command,
        "env": env,
        "resources": resources_json(req.resources),
        "volumeMounts": mounts,
    });
    let c = container.as_object_mut().ok_or_else(|| PodSpecError::Decode("container".into()))?;
    if let Some(dir) = req.working_dir {
        c.insert("workingDir".into(), json!(dir));
    }
    match only.get("imagePullPolicy") {
        Some(Value::String(p)) if matches!(p.as_str(), "Always" | "IfNotPresent" | "Never") => {
            c.insert("imagePullPolicy".into(), json!(p));
        }
        Some(other) => {
            return Err(setting("imagePullPolicy", format!("expected Always, IfNotPresent or Never, got {other}")))
        }
        None => {}
    }

    let mut spec = json!({
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": volumes,
    });
    if !init.is_empty() {
        spec["initContainers"] = Value::Array(init);
    }
    let s = spec.as_object_mut().ok_or_else(|| PodSpecError::Decode("spec".into()))?;
    if let Some(node) = req.node_name {
        s.insert("nodeName".into(), json!(node));
    }
    if let Some(sa) = req.service_account {
        s.insert("serviceAccountName".into(), json!(sa));
    }
    if let Some(t) = req.platform.timeout_seconds {
        s.insert("activeDeadlineSeconds".into(), json!(t));
    }
    let selector = string_map(only.get("nodeSelector").and_then(|n| n.get("labels")), "nodeSelector.labels")?;
    if !selector.is_empty() {
        s.insert("nodeSelector".into(), json!(selector));
    }
    if let Some(t) = only.get("tolerations") {
        let list = t.as_array().ok_or_else(|| setting("tolerations", "expected a list"))?;
        let mut out = Vec::new();
        for (i, t) in list.iter().enumerate() {
            let obj = t.as_object().ok_or_else(|| setting(&format!("tolerations[{i}]"), "expected a map"))?;
            let mut tol = Map::new();
            for key in ["key", "operator", "value", "effect", "tolerationSeconds"] {
                if let Some(v) = obj.get(key).filter(|v| !v.is_null() && v.as_str() != Some("")) {
                    tol.insert(key.into(), v.clone());
                }
            }
            out.push(Value::Object(tol));
        }
        s.insert("tolerations".into(), Value::Array(out));
    }
    if let Some(p) = only.get("imagePullSecret") {
        let list = p.as_array().ok_or_else(|| setting("imagePullSecret", "expected a list"))?;
        let mut out = Vec::new();
        for (i, p) in list.iter().enumerate() {
            let name = p
                .get("secretName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| setting(&format!("imagePullSecret[{i}].secretName"), "expected a secret name"))?;
            out.push(json!({"name": name}));
        }
        s.insert("imagePullSecrets".into(), Value::Array(out));
    }

    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(req.run_id, req.task_path, req.attempt),
            "namespace": req.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    });
    serde_json::from_value(pod).map_err(|e| PodSpecError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(field: &'static str, value: &str) -> ResolvedResource {
        ResolvedResource { field, value: value.to_owned() }
    }

    fn request<'a>(
        argv: &'a [String],
        env: &'a [(String, String)],
        resources: &'a [ResolvedResource],
        platform: &'a PodPlatform,
        shared: &'a [PathBuf],
    ) -> PodRequest<'a> {
        PodRequest {
            namespace: "team-a",
            run_id: "RUN-1",
            task_id: "task-9",
            task_path: "for-loop-2/3/train model",
            attempt: 2,
            image: "python:3.11",
            argv,
            env,
            working_dir: Some("/srv/artifacts/RUN-1/train"),
            resources,
            platform,
            shared_dirs: shared,
            node_name: Some("fake-node"),
            service_account: None,
            launcher_image: None,
            staging: None,
        }
    }

    #[test]
    fn pods_carry_the_task_image_command_env_resources_and_labels() {
        let argv = vec!["python3".to_owned(), "-c".to_owned(), "print(1)".to_owned()];
        let env = vec![("A".to_owned(), "1".to_owned())];
        let resources = [
            res("resourceCpuRequest", "500m"),
            res("resourceCpuLimit", "2"),
            res("resourceMemoryLimit", "1Gi"),
            res("accelerator.resourceType", "nvidia.com/gpu"),
            res("accelerator.resourceCount", "1"),
        ];
        let platform = PodPlatform::default();
        let shared = [PathBuf::from("/srv/artifacts")];
        let pod = build(&request(&argv, &env, &resources, &platform, &shared)).unwrap();
        let v = serde_json::to_value(&pod).unwrap();
        let c = &v["spec"]["containers"][0];
        assert_eq!(c["image"], "python:3.11");
        assert_eq!(c["command"], json!(["python3", "-c", "print(1)"]));
        assert_eq!(c["env"], json!([{"name": "A", "value": "1"}]));
        assert_eq!(c["resources"]["requests"], json!({"cpu": "500m", "nvidia.com/gpu": "1"}));
        assert_eq!(c["resources"]["limits"], json!({"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"}));
        assert_eq!(c["volumeMounts"][0]["mountPath"], "/srv/artifacts");
        assert_eq!(v["spec"]["volumes"][0]["hostPath"]["path"], "/srv/artifacts");
        assert_eq!(v["spec"]["restartPolicy"], "Never");
        assert_eq!(v["spec"]["nodeName"], "fake-node");
        let labels = &v["metadata"]["labels"];
        assert_eq!(labels[LABEL_RUN], "RUN-1");
        assert_eq!(labels[LABEL_TASK], "for-loop-2.3.train.model");
        assert_eq!(labels[LABEL_ATTEMPT], "2");
        assert_eq!(labels[LABEL_TASK_HASH], task_hash("for-loop-2/3/train model"));
        assert_eq!(v["metadata"]["annotations"][ANNOTATION_TASK_PATH], "for-loop-2/3/train model");
        assert_eq!(v["metadata"]["name"], pod_name("RUN-1", "for-loop-2/3/train model", 2));
        assert_eq!(v["metadata"]["namespace"], "team-a");
    }

    #[test]
    fn kfp_kubernetes_settings_become_pod_fields() {
        let mut platform = PodPlatform {
            pvc_mounts: vec![("data".into(), "/data".into())],
            env: vec![EnvRef {
                kind: SourceKind::Secret,
                object: "creds".into(),
                key: "password".into(),
                var: "PW".into(),
                optional: false,
            }],
            volumes: vec![VolumeRef {
                kind: SourceKind::ConfigMap,
                object: "settings".into(),
                mount_path: "/etc/settings".into(),
                optional: true,
            }],
            scratch_mounts: vec!["/scratch".into()],
            field_env: vec![("POD".into(), "metadata.name".into())],
            timeout_seconds: Some(30),
            kubernetes_only: Map::new(),
        };
        platform.kubernetes_only.insert("nodeSelector".into(), json!({"labels": {"disk": "ssd"}}));
        platform.kubernetes_only.insert(
            "tolerations".into(),
            json!([{"key": "gpu", "operator": "Exists", "effect": "NoSchedule", "value": ""}]),
        );
        platform.kubernetes_only.insert("imagePullSecret".into(), json!([{"secretName": "regcred"}]));
        platform.kubernetes_only.insert("imagePullPolicy".into(), json!("Always"));
        platform
            .kubernetes_only
            .insert("podMetadata".into(), json!({"labels": {"team": "ml"}, "annotations": {"a": "b"}}));
        let argv = vec!["true".to_owned()];
        let pod = build(&request(&argv, &[], &[], &platform, &[])).unwrap();
        let v = serde_json::to_value(&pod).unwrap();
        let spec = &v["spec"];
        let c = &spec["containers"][0];
        assert_eq!(
            c["env"][0],
            json!({"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password", "optional": false}}})
        );
        assert_eq!(c["env"][1], json!({"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}));
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(spec["volumes"][0], json!({"name": "pvc-0", "persistentVolumeClaim": {"claimName": "data"}}));
        assert_eq!(spec["volumes"][1], json!({"name": "files-0", "configMap": {"name": "settings", "optional": true}}));
        assert_eq!(spec["volumes"][2], json!({"name": "scratch-0", "emptyDir": {}}));
        assert_eq!(c["volumeMounts"][1], json!({"name": "files-0", "mountPath": "/etc/settings", "readOnly": true}));
        assert_eq!(spec["activeDeadlineSeconds"], 30);
        assert_eq!(spec["nodeSelector"], json!({"disk": "ssd"}));
        assert_eq!(spec["tolerations"], json!([{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]));
        assert_eq!(spec["imagePullSecrets"], json!([{"name": "regcred"}]));
        assert_eq!(v["metadata"]["labels"]["team"], "ml");
        assert_eq!(v["metadata"]["annotations"]["a"], "b");

        platform.kubernetes_only.insert("imagePullPolicy".into(), json!("Sometimes"));
        let err = build(&request(&argv, &[], &[], &platform, &[])).unwrap_err();
        assert!(err.to_string().contains("imagePullPolicy"), "{err}");
    }

    #[test]
    fn image_names_are_checked() {
        for ok in [
            "python:3.11",
            "ghcr.io/org/img:v1.2",
            "localhost:5000/a/b",
            "registry.example:443/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "busybox",
        ] {
            assert_eq!(check_image(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Python:3", "a b", "img:", "img:-x", "a//b", "img@sha256:xyz", "-img"] {
            assert!(check_image(bad).is_err(), "{bad}");
        }
        let argv = vec!["true".to_owned()];
        let platform = PodPlatform::default();
        let mut req = request(&argv, &[], &[], &platform, &[]);
        req.image = "NOT VALID";
        assert!(build(&req).unwrap_err().to_string().starts_with("invalid image name `NOT VALID`"));
    }

    #[test]
    fn the_launcher_is_copied_in_by_an_init_container() {
        let argv = vec!["/srv/secondrow-bin/secondrow".to_owned(), "component".to_owned()];
        let platform = PodPlatform::default();
        let mut req = request(&argv, &[], &[], &platform, &[]);
        req.launcher_image = Some("secondrow:1");
        let v = serde_json::to_value(build(&req).unwrap()).unwrap();
        let init = &v["spec"]["initContainers"][0];
        assert_eq!(init["image"], "secondrow:1");
        assert_eq!(init["command"], json!(["secondrow", "launch", "install", "/secondrow-bin"]));
        let c = &v["spec"]["containers"][0];
        assert_eq!(
            c["command"],
            json!(["/secondrow-bin/secondrow", "launch", "run", "--", "/srv/secondrow-bin/secondrow", "component"])
        );
        assert!(c["volumeMounts"].as_array().unwrap().iter().any(|m| m["mountPath"] == "/secondrow-bin"));
        assert!(v["spec"]["volumes"].as_array().unwrap().iter().any(|m| m["emptyDir"].is_object()));
    }

    #[test]
    fn under_an_s3_root_the_launcher_stages_artifacts_without_a_host_path() {
        let argv = vec!["python3".to_owned(), "/secondrow/staging/s3/b/r/t/data".to_owned()];
        let platform = PodPlatform::default();
        let staging = PodStaging {
            mount: "/secondrow/staging".into(),
            executor_input: r#"{"inputs":{}}"#.into(),
            env: vec![("SECONDROW_ARTIFACT_ROOT".into(), "s3://b/r".into())],
            credentials_secret: Some("s3-creds".into()),
        };
        let mut req = request(&argv, &[], &[], &platform, &[]);
        req.working_dir = None;
        req.staging = Some(&staging);
        assert_eq!(build(&req).unwrap_err(), PodSpecError::NoLauncher);
        req.launcher_image = Some("secondrow:1");
        let v = serde_json::to_value(build(&req).unwrap()).unwrap();
        let volumes = v["spec"]["volumes"].as_array().unwrap();
        assert!(volumes.iter().all(|vol| vol.get("hostPath").is_none()), "{volumes:?}");
        assert!(volumes.contains(&json!({"name": "secondrow-staging", "emptyDir": {}})), "{volumes:?}");
        let c = &v["spec"]["containers"][0];
        assert!(c["volumeMounts"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "secondrow-staging", "mountPath": "/secondrow/staging"})));
        assert_eq!(
            c["command"],
            json!([
                "/secondrow-bin/secondrow",
                "launch",
                "run",
                "--mount",
                "/secondrow/staging",
                "--executor-input",
                r#"{"inputs":{}}"#,
                "--",
                "python3",
                "/secondrow/staging/s3/b/r/t/data"
            ])
        );
        assert!(c.get("workingDir").is_none());
        let env = c["env"].as_array().unwrap();
        assert!(env.contains(&json!({"name": "SECONDROW_ARTIFACT_ROOT", "value": "s3://b/r"})), "{env:?}");
        let key = json!({"name": "SECONDROW_S3_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef":
            {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY", "optional": false}}});
        assert!(env.contains(&key), "{env:?}");
        assert!(env.iter().all(|e| e.get("value").and_then(Value::as_str) != Some("testing")));
    }

    #[test]
    fn labels_fit_the_label_rules() {
        assert_eq!(label_value("a/b c"), "a.b.c");
        assert_eq!(label_value("/x/"), "x");
        assert_eq!(label_value(&"y".repeat(100)).len(), 63);
        let name = pod_name("r", "p", 1);
        assert!(name.len() <= 63 && name.starts_with("sr-"), "{name}");
        assert_ne!(pod_name("r", "p", 1), pod_name("r", "p", 2));
        assert_eq!(
            task_selector("r", "p"),
            format!("{LABEL_MANAGED_BY}=secondrow,{LABEL_RUN}=r,{LABEL_TASK_HASH}={}", task_hash("p"))
        );
    }
}
