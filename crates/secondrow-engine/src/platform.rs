//! kfp-kubernetes settings applied to a local task: what a [`PlatformConfig`] asks for, made real on this
//! machine for one task.
//!
//! - a PVC is a named volume folder, `<volumes root>/<namespace>/<name>` ([`volume_dir`]), created by
//!   `CreatePVC`, deleted by `DeletePVC`, bind-mounted at the requested path in the task's own mount
//!   namespace ([`crate::process`]);
//! - secrets and config maps come from the store, from the run's namespace only: keys as environment
//!   variables, or a private folder of files (mode 0600 in a 0700 folder, mounted read-only, removed when
//!   the task ends); secret values are redacted from the task's logs;
//! - `set_timeout` becomes the process's kill timer.
//!
//! Everything reaches the process through its [`crate::process::ProcessJob`] (env, mounts, timeout), never
//! through the server's own environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secondrow_spec::platform::{NameSource, PlatformConfig, SourceKind};
use secondrow_store::{SecretKind, Store, StoreError};

use crate::process::BindMount;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{noun} `{name}` not found in namespace `{namespace}` (create it with `secondrow {command} create {name} --from-literal KEY=VALUE`)")]
    Missing { noun: &'static str, command: &'static str, name: String, namespace: String },
    #[error("{noun} `{name}` has no key `{key}`")]
    MissingKey { noun: &'static str, name: String, key: String },
    #[error("{0}")]
    Name(String),
    #[error("field path `{0}` of use_field_path_as_env has no local value (supported: metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, status.hostIP, status.podIP)")]
    FieldPath(String),
    #[error("volume `{name}` does not exist (no folder {}): create it with kubernetes.CreatePVC first", path.display())]
    NoVolume { name: String, path: PathBuf },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PlatformError {
    pub fn kind(&self) -> secondrow_error::ErrorKind {
        use secondrow_error::ErrorKind;
        match self {
            PlatformError::Missing { .. } | PlatformError::MissingKey { .. } | PlatformError::NoVolume { .. } => {
                ErrorKind::FailedPrecondition
            }
            PlatformError::Name(_) | PlatformError::FieldPath(_) => ErrorKind::InvalidInput,
            PlatformError::Io { .. } => ErrorKind::Internal,
            PlatformError::Store(e) => e.kind(),
        }
    }
}

/// What a task gets from its kfp-kubernetes settings. Dropping it removes the task's secret files.
#[derive(Debug, Default)]
pub struct TaskPlatform {
    pub env: Vec<(String, String)>,
    pub mounts: Vec<BindMount>,
    pub timeout: Option<Duration>,
    /// Secret values, redacted from the task's logs.
    pub redact: Vec<String>,
    /// The private folder holding secret and config-map files.
    files: Option<tempfile::TempDir>,
}

impl TaskPlatform {
    /// Whether the task needs a process of its own (not a warm worker's fork): mounts, a kill timer, or
    /// logs to redact.
    pub fn needs_own_process(&self) -> bool {
        !self.mounts.is_empty() || self.timeout.is_some() || !self.redact.is_empty()
    }
}

/// The folder standing for PVC `name` of `namespace` (the default namespace, `""`, is `default`).
/// Names follow Kubernetes' rules (lowercase letters, digits, `-`, `.`), so they cannot leave the root.
pub fn volume_dir(volumes_root: &Path, namespace: &str, name: &str) -> Result<PathBuf, PlatformError> {
    secondrow_store::validate_secret_name(name).map_err(|e| PlatformError::Name(format!("PVC {e}")))?;
    if name.contains("..") {
        return Err(PlatformError::Name(format!("PVC name `{name}` holds `..`")));
    }
    let ns = if namespace.is_empty() { "default" } else { namespace };
    Ok(volumes_root.join(ns).join(name))
}

fn store_kind(kind: SourceKind) -> (SecretKind, &'static str) {
    match kind {
        SourceKind::Secret => (SecretKind::Secret, "secrets"),
        SourceKind::ConfigMap => (SecretKind::ConfigMap, "configmaps"),
    }
}

/// Who the task is, for `use_field_path_as_env` (what the Pod's fields would say).
pub struct TaskIdentity<'a> {
    /// Stands for the Pod's name and uid: the task's id in the store.
    pub task_id: &'a str,
    pub namespace: &'a str,
    /// The run's display name: KFP's pod annotation `pipelines.kubeflow.org/run_name`.
    pub run_name: &'a str,
}

/// The local value of a Pod field path.
fn field_value(cfg: &PlatformConfig, who: &TaskIdentity<'_>, path: &str) -> Result<String, PlatformError> {
    let meta = |field: &str, key: &str| {
        cfg.kubernetes_only
            .get("podMetadata")
            .and_then(|m| m.get(field))
            .and_then(|m| m.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let key_of = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']").or_else(|| r.strip_suffix("\"]")))
            .and_then(|r| r.strip_prefix('\'').or_else(|| r.strip_prefix('"')))
            .map(str::to_owned)
    };
    Ok(match path {
        "metadata.name" | "metadata.uid" => who.task_id.to_owned(),
        "metadata.namespace" => (if who.namespace.is_empty() { "default" } else { who.namespace }).to_owned(),
        "spec.nodeName" => std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned(),
        "status.hostIP" | "status.podIP" => "127.0.0.1".to_owned(),
        _ => {
            if let Some(k) = key_of("metadata.labels[") {
                meta("labels", &k)
            } else if let Some(k) = key_of("metadata.annotations[") {
                match meta("annotations", &k) {
                    v if v.is_empty() && k == "pipelines.kubeflow.org/run_name" => who.run_name.to_owned(),
                    v => v,
                }
            } else {
                return Err(PlatformError::FieldPath(path.to_owned()));
            }
        }
    })
}

/// Resolves and applies one task's settings. `resolve` turns a name source into the name (from the
/// task's DAG inputs, its siblings' outputs or a constant); `files_root` is where the private folders go.
pub async fn prepare(
    cfg: &PlatformConfig,
    who: &TaskIdentity<'_>,
    resolve: impl Fn(&NameSource) -> Result<String, String>,
    store: &Store,
    namespace: &str,
    volumes_root: &Path,
    files_root: &Path,
) -> Result<TaskPlatform, PlatformError> {
    let mut out = TaskPlatform { timeout: cfg.timeout_seconds.map(Duration::from_secs), ..Default::default() };
    for m in &cfg.pvc_mounts {
        let name = resolve(&m.name).map_err(|e| PlatformError::Name(format!("PVC name: {e}")))?;
        let source = volume_dir(volumes_root, namespace, &name)?;
        if !source.is_dir() {
            return Err(PlatformError::NoVolume { name, path: source });
        }
        out.mounts.push(BindMount { source, target: PathBuf::from(&m.mount_path), read_only: false });
    }
    let fetch = |kind: SourceKind, name: String, optional: bool| async move {
        let (store_kind, command) = store_kind(kind);
        match store.get_secret_data(namespace, store_kind, &name).await? {
            Some(data) => Ok(Some((name, data))),
            None if optional => Ok(None),
            None => Err(PlatformError::Missing {
                noun: kind.noun(),
                command,
                name,
                namespace: if namespace.is_empty() { "default".into() } else { namespace.into() },
            }),
        }
    };
    for e in &cfg.env {
        let name = resolve(&e.name).map_err(|m| PlatformError::Name(format!("{} name: {m}", e.kind.noun())))?;
        let Some((name, data)) = fetch(e.kind, name, e.optional).await? else { continue };
        for (key, var) in &e.key_to_env {
            match data.get(key) {
                Some(v) => {
                    if e.kind == SourceKind::Secret {
                        out.redact.push(v.clone());
                    }
                    out.env.push((var.clone(), v.clone()));
                }
                None if e.optional => {}
                None => return Err(PlatformError::MissingKey { noun: e.kind.noun(), name, key: key.clone() }),
            }
        }
    }
    for (i, v) in cfg.volumes.iter().enumerate() {
        let name = resolve(&v.name).map_err(|m| PlatformError::Name(format!("{} name: {m}", v.kind.noun())))?;
        let data = fetch(v.kind, name, v.optional).await?.map(|(_, d)| d).unwrap_or_default();
        if v.kind == SourceKind::Secret {
            out.redact.extend(data.values().cloned());
        }
        let dir = files_dir(&mut out.files, files_root)?.join(i.to_string());
        write_files(&dir, &data)?;
        out.mounts.push(BindMount { source: dir, target: PathBuf::from(&v.mount_path), read_only: true });
    }
    for (i, path) in cfg.scratch_mounts.iter().enumerate() {
        let dir = files_dir(&mut out.files, files_root)?.join(format!("scratch-{i}"));
        std::fs::create_dir(&dir)
            .map_err(|source| PlatformError::Io { what: format!("creating {}", dir.display()), source })?;
        out.mounts.push(BindMount { source: dir, target: PathBuf::from(path), read_only: false });
    }
    for (var, path) in &cfg.field_env {
        out.env.push((var.clone(), field_value(cfg, who, path)?));
    }
    out.redact = redaction_list(std::mem::take(&mut out.redact));
    Ok(out)
}

/// Secret values as [`crate::process::redact`] wants them: a multi-line secret also line by line (a live
/// tail sees one line at a time), no blank ones, longest first (a secret containing another is replaced
/// whole), each once. The Kubernetes executor redacts Pod logs with the same list ([`crate::kubernetes::redact`]).
pub fn redaction_list(mut values: Vec<String>) -> Vec<String> {
    let lines: Vec<String> =
        values.iter().filter(|s| s.contains('\n')).flat_map(|s| s.lines().map(str::to_owned)).collect();
    values.extend(lines);
    values.retain(|s| !s.trim().is_empty());
    values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    values.dedup();
    values
}

/// The task's private folder (mode 0700), made on first use.
fn files_dir(slot: &mut Option<tempfile::TempDir>, root: &Path) -> Result<PathBuf, PlatformError> {
    if let Some(d) = slot {
        return Ok(d.path().to_path_buf());
    }
    let io = |what: String| move |source| PlatformError::Io { what, source };
    std::fs::create_dir_all(root).map_err(io(format!("creating {}", root.display())))?;
    let dir =
        tempfile::Builder::new().prefix("task-").tempdir_in(root).map_err(io("creating a private folder".into()))?;
    let path = dir.path().to_path_buf();
    *slot = Some(dir);
    Ok(path)
}

/// One file per key, readable by the owner only.
fn write_files(dir: &Path, data: &BTreeMap<String, String>) -> Result<(), PlatformError> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let io = |what: String| move |source| PlatformError::Io { what, source };
    std::fs::DirBuilder::new().mode(0o700).create(dir).map_err(io(format!("creating {}", dir.display())))?;
    for (key, value) in data {
        // Keys were checked when stored: letters, digits, `-`, `_`, `.` — a plain file name.
        let path = dir.join(key);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(format!("writing {}", path.display())))?;
        f.write_all(value.as_bytes()).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_stay_under_the_root() {
        let root = Path::new("/v");
        assert_eq!(volume_dir(root, "", "run-1-scratch").unwrap(), Path::new("/v/default/run-1-scratch"));
        assert_eq!(volume_dir(root, "team-a", "x").unwrap(), Path::new("/v/team-a/x"));
        for bad in ["../etc", "a/b", "", "A", "a..b"] {
            assert!(volume_dir(root, "", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_paths_have_local_values() {
        let mut cfg = PlatformConfig::default();
        cfg.kubernetes_only.insert("podMetadata".into(), serde_json::json!({"labels": {"team": "ml"}}));
        let who = TaskIdentity { task_id: "t-1", namespace: "", run_name: "nightly" };
        let v = |p: &str| field_value(&cfg, &who, p).map_err(|e| e.to_string());
        assert_eq!(v("metadata.name").unwrap(), "t-1");
        assert_eq!(v("metadata.namespace").unwrap(), "default");
        assert_eq!(v("metadata.labels['team']").unwrap(), "ml");
        assert_eq!(v("metadata.annotations['pipelines.kubeflow.org/run_name']").unwrap(), "nightly");
        assert!(v("spec.serviceAccountName").unwrap_err().contains("spec.serviceAccountName"));
    }

    #[tokio::test]
    async fn missing_secrets_fail_by_name_unless_optional() {
        use secondrow_spec::platform::{AsEnv, AsVolume};
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", root.path().join("db.sqlite").display())).await.unwrap();
        let data: BTreeMap<String, String> = [("k".to_owned(), "v".to_owned())].into();
        store.create_secret("team-a", SecretKind::Secret, "s", &data).await.unwrap();
        let who = &TaskIdentity { task_id: "t", namespace: "team-a", run_name: "r" };
        let constant = |n: &str| NameSource::Constant(n.to_owned());
        let env = |name: &str, key: &str, optional: bool| AsEnv {
            kind: SourceKind::Secret,
            name: constant(name),
            key_to_env: vec![(key.to_owned(), "V".to_owned())],
            optional,
        };
        let run = |cfg: PlatformConfig| {
            let store = &store;
            let root = root.path().to_path_buf();
            async move {
                let resolve = |n: &NameSource| match n {
                    NameSource::Constant(c) => Ok(c.clone()),
                    _ => Err("unexpected".to_owned()),
                };
                prepare(&cfg, who, resolve, store, who.namespace, &root.join("volumes"), &root.join("files")).await
            }
        };

        let ok = run(PlatformConfig { env: vec![env("s", "k", false)], ..Default::default() }).await.unwrap();
        assert_eq!(ok.env, [("V".to_owned(), "v".to_owned())]);
        assert_eq!(ok.redact, ["v"]);
        let optional = run(PlatformConfig { env: vec![env("gone", "k", true)], ..Default::default() }).await.unwrap();
        assert!(optional.env.is_empty());
        let missing = run(PlatformConfig { env: vec![env("gone", "k", false)], ..Default::default() }).await;
        let msg = missing.unwrap_err().to_string();
        assert!(msg.contains("secret `gone` not found in namespace `team-a`"), "{msg}");
        let no_key = run(PlatformConfig { env: vec![env("s", "x", false)], ..Default::default() }).await;
        assert!(no_key.unwrap_err().to_string().contains("secret `s` has no key `x`"));
        // An optional secret volume that does not exist is an empty folder, as on Kubernetes.
        let vol =
            AsVolume { kind: SourceKind::Secret, name: constant("gone"), mount_path: "/m".into(), optional: true };
        let empty = run(PlatformConfig { volumes: vec![vol], ..Default::default() }).await.unwrap();
        assert_eq!(std::fs::read_dir(&empty.mounts[0].source).unwrap().count(), 0);
        assert!(empty.mounts[0].read_only);
    }

    #[test]
    fn secret_files_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let mut slot = None;
        let dir = files_dir(&mut slot, root.path()).unwrap().join("0");
        write_files(&dir, &[("password".to_owned(), "pw".to_owned())].into()).unwrap();
        let mode = std::fs::metadata(dir.join("password")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(dir.join("password")).unwrap(), "pw");
        drop(slot);
        assert!(!dir.exists(), "the private folder is removed with the task");
    }
}
