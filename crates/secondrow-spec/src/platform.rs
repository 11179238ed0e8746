//! The kfp-kubernetes platform spec: the second YAML document kfp writes when a pipeline uses
//! `kfp.kubernetes` (`platforms.kubernetes.deploymentSpec.executors.<label>`), parsed per executor into
//! what SecondRow applies locally ([`PlatformConfig`]: volumes, secrets and config maps, the timeout) and
//! what only Kubernetes can apply (labels, annotations, tolerations, node selectors, image pull secrets…),
//! which is kept as JSON and recorded with the task.
//!
//! Also recognises the image-only executors of `kubernetes.CreatePVC` / `kubernetes.DeletePVC`: kfp's
//! driver runs no container for them (it knows them by the images `argostub/createpvc` and
//! `argostub/deletepvc`); SecondRow creates or deletes a local volume folder instead ([`PvcOp`]).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ir::{ParameterInputSpec, TaskOutputParameterSpec};
use crate::Problem;

/// kfp's stand-in image for `kubernetes.CreatePVC`.
pub const CREATE_PVC_IMAGE: &str = "argostub/createpvc";
/// kfp's stand-in image for `kubernetes.DeletePVC`.
pub const DELETE_PVC_IMAGE: &str = "argostub/deletepvc";

/// A PVC operation that runs no process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PvcOp {
    Create,
    Delete,
}

impl PvcOp {
    /// The operation an executor image stands for (with or without a tag).
    pub fn from_image(image: &str) -> Option<PvcOp> {
        let base = image.split([':', '@']).next().unwrap_or(image);
        match base {
            CREATE_PVC_IMAGE => Some(PvcOp::Create),
            DELETE_PVC_IMAGE => Some(PvcOp::Delete),
            _ => None,
        }
    }
}

/// Where a name (of a PVC, secret or config map) comes from at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameSource {
    Constant(String),
    /// An input of the DAG the task belongs to (a pipeline parameter or `pipelinechannel--…`).
    ComponentInput(String),
    /// An output parameter of a sibling task (`CreatePVC(...).outputs['name']`).
    TaskOutput {
        producer_task: String,
        output_parameter_key: String,
    },
}

impl NameSource {
    /// As a task input parameter source, so the engine resolves it like any other input.
    pub fn as_input_spec(&self) -> ParameterInputSpec {
        let mut spec = ParameterInputSpec::default();
        match self {
            NameSource::Constant(c) => {
                spec.runtime_value = Some(crate::ir::RuntimeValue { constant: Value::String(c.clone()) })
            }
            NameSource::ComponentInput(p) => spec.component_input_parameter = Some(p.clone()),
            NameSource::TaskOutput { producer_task, output_parameter_key } => {
                spec.task_output_parameter = Some(TaskOutputParameterSpec {
                    producer_task: producer_task.clone(),
                    output_parameter_key: output_parameter_key.clone(),
                })
            }
        }
        spec
    }

    /// The sibling task this name depends on, if any.
    pub fn producer(&self) -> Option<&str> {
        match self {
            NameSource::TaskOutput { producer_task, .. } => Some(producer_task),
            _ => None,
        }
    }
}

/// A volume folder mounted into the task (`kubernetes.mount_pvc`).
#[derive(Debug, Clone)]
pub struct PvcMount {
    pub name: NameSource,
    pub mount_path: String,
}

/// Which store object a secret reference reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Secret,
    ConfigMap,
}

impl SourceKind {
    pub fn noun(self) -> &'static str {
        match self {
            SourceKind::Secret => "secret",
            SourceKind::ConfigMap => "config map",
        }
    }
}

/// Keys of a secret or config map as environment variables (`use_secret_as_env`, `use_config_map_as_env`).
#[derive(Debug, Clone)]
pub struct AsEnv {
    pub kind: SourceKind,
    pub name: NameSource,
    /// (key in the object, variable name).
    pub key_to_env: Vec<(String, String)>,
    pub optional: bool,
}

/// A secret or config map as a folder of files, one per key (`use_secret_as_volume`, …).
#[derive(Debug, Clone)]
pub struct AsVolume {
    pub kind: SourceKind,
    pub name: NameSource,
    pub mount_path: String,
    pub optional: bool,
}

/// One executor's kfp-kubernetes settings.
#[derive(Debug, Clone, Default)]
pub struct PlatformConfig {
    pub pvc_mounts: Vec<PvcMount>,
    pub env: Vec<AsEnv>,
    pub volumes: Vec<AsVolume>,
    /// `empty_dir_mount` and `add_ephemeral_volume`: a fresh empty folder mounted at each path for the task.
    pub scratch_mounts: Vec<String>,
    /// `use_field_path_as_env`: (variable, field path such as `metadata.name`).
    pub field_env: Vec<(String, String)>,
    /// `set_timeout`: the task is killed after this many seconds.
    pub timeout_seconds: Option<u64>,
    /// Everything that only Kubernetes applies (pod labels and annotations, node selector, tolerations,
    /// affinity, image pull secrets and policy, …), as kfp wrote it; recorded with the task.
    pub kubernetes_only: Map<String, Value>,
}

impl PlatformConfig {
    /// Whether the task needs something only a cold process offers (mounts, a kill timer).
    pub fn needs_own_process(&self) -> bool {
        !self.pvc_mounts.is_empty()
            || !self.volumes.is_empty()
            || !self.scratch_mounts.is_empty()
            || self.timeout_seconds.is_some()
    }
}

/// Keys of an executor's platform config that SecondRow applies itself.
const APPLIED: &[&str] = &[
    "pvcMount",
    "secretAsEnv",
    "secretAsVolume",
    "configMapAsEnv",
    "configMapAsVolume",
    "activeDeadlineSeconds",
    "emptyDirMounts",
    "genericEphemeralVolume",
    "fieldPathAsEnv",
];

/// Parses the platform spec document into one [`PlatformConfig`] per executor label, reporting every
/// malformed entry.
pub fn parse(doc: Option<&Value>, problems: &mut Vec<Problem>) -> BTreeMap<String, PlatformConfig> {
    let mut out = BTreeMap::new();
    let Some(doc) = doc else { return out };
    // The API carries `{platforms: {kubernetes: …}}`; a bare `{kubernetes: …}` is accepted too.
    let platforms = doc.get("platforms").unwrap_or(doc);
    let Some(executors) = platforms.pointer("/kubernetes/deploymentSpec/executors") else { return out };
    let Some(executors) = executors.as_object() else {
        problems.push(Problem::new("platforms.kubernetes.deploymentSpec.executors", "is not a mapping"));
        return out;
    };
    for (label, cfg) in executors {
        let loc = format!("platforms.kubernetes.deploymentSpec.executors.{label}");
        match parse_executor(cfg, &loc, problems) {
            Some(c) => {
                out.insert(label.clone(), c);
            }
            None => continue,
        }
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPvcMount {
    mount_path: String,
    #[serde(default)]
    pvc_name_parameter: Option<ParameterInputSpec>,
    #[serde(default)]
    task_output_parameter: Option<TaskOutputParameterSpec>,
    #[serde(default)]
    constant: Option<String>,
    #[serde(default)]
    component_input_parameter: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawScratch {
    mount_path: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFieldPath {
    name: String,
    field_path: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKeyToEnv {
    #[serde(default, alias = "configMapKey")]
    secret_key: String,
    env_var: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRef {
    #[serde(default, alias = "configMapName")]
    secret_name: Option<String>,
    #[serde(default, alias = "configMapNameParameter")]
    secret_name_parameter: Option<ParameterInputSpec>,
    #[serde(default)]
    key_to_env: Vec<RawKeyToEnv>,
    #[serde(default)]
    mount_path: Option<String>,
    #[serde(default)]
    optional: Option<bool>,
}

fn parse_executor(cfg: &Value, loc: &str, problems: &mut Vec<Problem>) -> Option<PlatformConfig> {
    let Some(obj) = cfg.as_object() else {
        problems.push(Problem::new(loc, "is not a mapping"));
        return None;
    };
    let before = problems.len();
    let mut out = PlatformConfig::default();
    for (i, raw) in list::<RawPvcMount>(obj.get("pvcMount"), &format!("{loc}.pvcMount"), problems).into_iter() {
        let mloc = format!("{loc}.pvcMount[{i}]");
        let name = match (
            &raw.pvc_name_parameter,
            &raw.task_output_parameter,
            &raw.constant,
            &raw.component_input_parameter,
        ) {
            (Some(p), ..) => name_source(p, &format!("{mloc}.pvcNameParameter"), problems),
            (None, Some(t), _, _) => Some(NameSource::TaskOutput {
                producer_task: t.producer_task.clone(),
                output_parameter_key: t.output_parameter_key.clone(),
            }),
            (None, None, Some(c), _) => Some(NameSource::Constant(c.clone())),
            (None, None, None, Some(p)) => Some(NameSource::ComponentInput(p.clone())),
            (None, None, None, None) => {
                problems.push(Problem::new(&mloc, "names no PVC"));
                None
            }
        };
        check_mount_path(&raw.mount_path, &format!("{mloc}.mountPath"), problems);
        if let Some(name) = name {
            out.pvc_mounts.push(PvcMount { name, mount_path: raw.mount_path });
        }
    }
    for (field, kind, as_volume) in [
        ("secretAsEnv", SourceKind::Secret, false),
        ("secretAsVolume", SourceKind::Secret, true),
        ("configMapAsEnv", SourceKind::ConfigMap, false),
        ("configMapAsVolume", SourceKind::ConfigMap, true),
    ] {
        for (i, raw) in list::<RawRef>(obj.get(field), &format!("{loc}.{field}"), problems).into_iter() {
            let rloc = format!("{loc}.{field}[{i}]");
            let name = match (&raw.secret_name_parameter, &raw.secret_name) {
                (Some(p), _) => name_source(p, &rloc, problems),
                (None, Some(n)) => Some(NameSource::Constant(n.clone())),
                (None, None) => {
                    problems.push(Problem::new(&rloc, format!("names no {}", kind.noun())));
                    None
                }
            };
            let Some(name) = name else { continue };
            if as_volume {
                let Some(mount_path) = raw.mount_path else {
                    problems.push(Problem::new(format!("{rloc}.mountPath"), "is missing"));
                    continue;
                };
                check_mount_path(&mount_path, &format!("{rloc}.mountPath"), problems);
                // kfp writes `optional: false` for volumes; Kubernetes' default is required too.
                out.volumes.push(AsVolume { kind, name, mount_path, optional: raw.optional.unwrap_or(false) });
            } else {
                let key_to_env: Vec<(String, String)> =
                    raw.key_to_env.into_iter().map(|k| (k.secret_key, k.env_var)).collect();
                for (j, (key, var)) in key_to_env.iter().enumerate() {
                    if key.is_empty() || var.is_empty() || var.contains('=') || var.contains('\0') {
                        problems.push(Problem::new(format!("{rloc}.keyToEnv[{j}]"), "needs a key and a variable name"));
                    }
                }
                out.env.push(AsEnv { kind, name, key_to_env, optional: raw.optional.unwrap_or(false) });
            }
        }
    }
    for field in ["emptyDirMounts", "genericEphemeralVolume"] {
        for (i, raw) in list::<RawScratch>(obj.get(field), &format!("{loc}.{field}"), problems) {
            check_mount_path(&raw.mount_path, &format!("{loc}.{field}[{i}].mountPath"), problems);
            out.scratch_mounts.push(raw.mount_path);
        }
    }
    for (i, raw) in list::<RawFieldPath>(obj.get("fieldPathAsEnv"), &format!("{loc}.fieldPathAsEnv"), problems) {
        if raw.name.is_empty() || raw.name.contains('=') || raw.name.contains('\0') {
            problems.push(Problem::new(format!("{loc}.fieldPathAsEnv[{i}].name"), "is not a variable name"));
        }
        out.field_env.push((raw.name, raw.field_path));
    }
    if let Some(t) = obj.get("activeDeadlineSeconds") {
        // Protobuf's JSON writes int64 as a string.
        let secs = match t {
            Value::String(s) => s.trim().parse::<u64>().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        };
        match secs {
            Some(s) if s > 0 => out.timeout_seconds = Some(s),
            // 0 is kfp's "no timeout".
            Some(_) => {}
            None => problems.push(Problem::new(
                format!("{loc}.activeDeadlineSeconds"),
                format!("expected a whole number of seconds, got {t}"),
            )),
        }
    }
    out.kubernetes_only =
        obj.iter().filter(|(k, _)| !APPLIED.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    (problems.len() == before).then_some(out)
}

/// A list field, each entry deserialized; malformed entries become problems.
fn list<T: for<'de> Deserialize<'de>>(v: Option<&Value>, loc: &str, problems: &mut Vec<Problem>) -> Vec<(usize, T)> {
    let Some(v) = v else { return Vec::new() };
    let Some(items) = v.as_array() else {
        problems.push(Problem::new(loc, "is not a list"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match T::deserialize(item) {
            Ok(t) => out.push((i, t)),
            Err(e) => problems.push(Problem::new(format!("{loc}[{i}]"), e.to_string())),
        }
    }
    out
}

fn name_source(p: &ParameterInputSpec, loc: &str, problems: &mut Vec<Problem>) -> Option<NameSource> {
    if let Some(rv) = &p.runtime_value {
        return match &rv.constant {
            Value::String(s) => Some(NameSource::Constant(s.clone())),
            other => {
                problems.push(Problem::new(loc, format!("a name must be a string, got {other}")));
                None
            }
        };
    }
    if let Some(c) = &p.component_input_parameter {
        return Some(NameSource::ComponentInput(c.clone()));
    }
    if let Some(t) = &p.task_output_parameter {
        return Some(NameSource::TaskOutput {
            producer_task: t.producer_task.clone(),
            output_parameter_key: t.output_parameter_key.clone(),
        });
    }
    problems.push(Problem::new(loc, "needs a constant, a component input or a task output"));
    None
}

/// A mount path must be absolute and plain (no `..`), as a container's would be.
fn check_mount_path(path: &str, loc: &str, problems: &mut Vec<Problem>) {
    let plain = path.starts_with('/') && !path.split('/').any(|c| c == "..") && !path.contains('\0');
    if !plain || path == "/" {
        problems.push(Problem::new(loc, format!("`{path}` is not an absolute folder path below `/`")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_what_kfp_kubernetes_writes() {
        let doc = json!({"platforms": {"kubernetes": {"deploymentSpec": {"executors": {
            "exec-a": {
                "pvcMount": [{"mountPath": "/data", "pvcNameParameter": {"taskOutputParameter":
                    {"producerTask": "createpvc", "outputParameterKey": "name"}}}],
                "secretAsEnv": [{"secretName": "s", "secretNameParameter": {"runtimeValue": {"constant": "s"}},
                    "keyToEnv": [{"secretKey": "k", "envVar": "K"}]}],
                "configMapAsVolume": [{"configMapName": "c", "configMapNameParameter":
                    {"componentInputParameter": "cm"}, "mountPath": "/etc/c", "optional": true}],
                "activeDeadlineSeconds": "5",
                "nodeSelector": {"labels": {"disk": "ssd"}},
            }
        }}}}});
        let mut problems = Vec::new();
        let map = parse(Some(&doc), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let a = &map["exec-a"];
        assert_eq!(a.pvc_mounts[0].name.producer(), Some("createpvc"));
        assert_eq!(a.env[0].name, NameSource::Constant("s".into()));
        assert_eq!(a.env[0].key_to_env, [("k".to_owned(), "K".to_owned())]);
        assert_eq!(a.volumes[0].name, NameSource::ComponentInput("cm".into()));
        assert!(a.volumes[0].optional);
        assert_eq!(a.timeout_seconds, Some(5));
        assert_eq!(a.kubernetes_only.keys().collect::<Vec<_>>(), ["nodeSelector"]);
        assert!(a.needs_own_process());
    }

    #[test]
    fn reports_bad_entries() {
        let doc = json!({"platforms": {"kubernetes": {"deploymentSpec": {"executors": {
            "exec-a": {"pvcMount": [{"mountPath": "../x", "constant": "v"}], "activeDeadlineSeconds": "soon",
                       "secretAsVolume": [{"secretName": "s"}]}
        }}}}});
        let mut problems = Vec::new();
        let map = parse(Some(&doc), &mut problems);
        assert!(map.is_empty());
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 3, "{text:?}");
    }

    #[test]
    fn pvc_stub_images() {
        assert_eq!(PvcOp::from_image("argostub/createpvc"), Some(PvcOp::Create));
        assert_eq!(PvcOp::from_image("argostub/deletepvc:latest"), Some(PvcOp::Delete));
        assert_eq!(PvcOp::from_image("alpine"), None);
    }
}
