//! The driver's side of kfp-kubernetes settings: resolving the names a task's settings refer to (from its
//! DAG's inputs and its siblings' outputs), preparing them through [`crate::platform`], and the image-only
//! `CreatePVC` / `DeletePVC` tasks, which run no process.

use serde_json::{json, Value};

use secondrow_spec::platform::{NameSource, PlatformConfig, PvcOp};
use secondrow_store::TaskState;

use super::nodes::NodeId;
use super::RunDriver;
use crate::kubernetes::{EnvRef, PodPlatform, VolumeRef};
use crate::platform::{self, TaskIdentity, TaskPlatform};
use crate::task::IoValues;
use crate::Result;

impl RunDriver {
    /// The name a setting refers to, resolved for task `id`. As kfp's driver does, a producer task or a
    /// component input may belong to an enclosing DAG (kfp writes the names of a PVC created at the root
    /// unchanged into the settings of a task inside a condition or loop): the nearest one wins.
    fn resolve_name(&self, id: NodeId, src: &NameSource) -> std::result::Result<String, String> {
        let ancestors = std::iter::successors(Some(id), |n| self.tree[*n].parent);
        let value = match src {
            NameSource::Constant(c) => return Ok(c.clone()),
            NameSource::ComponentInput(p) => ancestors
                .skip(1)
                .find_map(|n| self.tree[n].inputs.parameters.get(p).cloned())
                .ok_or_else(|| format!("input `{p}` has no value"))?,
            NameSource::TaskOutput { producer_task, output_parameter_key } => ancestors
                .filter_map(|n| self.tree.sibling(n, producer_task).ok())
                .find_map(|s| self.tree[s].outputs.parameters.get(output_parameter_key).cloned())
                .ok_or_else(|| format!("task `{producer_task}` produced no output `{output_parameter_key}`"))?,
        };
        match value {
            Value::String(s) => Ok(s),
            other => Err(format!("expected a name, got {other}")),
        }
    }

    /// Volumes, secrets, config maps and the timeout of one task, from the run's namespace.
    pub(super) async fn prepare_platform(
        &self,
        id: NodeId,
        cfg: &PlatformConfig,
    ) -> std::result::Result<TaskPlatform, String> {
        let config = &self.inner.config;
        let task_id = self.tree[id].task_id.clone().unwrap_or_default();
        let who = TaskIdentity { task_id: &task_id, namespace: &self.run.namespace, run_name: &self.run.display_name };
        self.note_kubernetes_only(id, cfg);
        platform::prepare(
            cfg,
            &who,
            |src| self.resolve_name(id, src),
            &self.inner.store,
            &self.run.namespace,
            &config.volumes_root(),
            &config.work_dir.join("task-files"),
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// The settings for a Pod: every name resolved, nothing fetched (the cluster holds the secrets, config
    /// maps and claims).
    pub(super) fn resolve_pod_platform(
        &self,
        id: NodeId,
        cfg: &PlatformConfig,
    ) -> std::result::Result<PodPlatform, String> {
        let name = |what: &str, src: &NameSource| self.resolve_name(id, src).map_err(|e| format!("{what} name: {e}"));
        let mut out = PodPlatform {
            scratch_mounts: cfg.scratch_mounts.clone(),
            field_env: cfg.field_env.clone(),
            timeout_seconds: cfg.timeout_seconds,
            kubernetes_only: cfg.kubernetes_only.clone(),
            ..Default::default()
        };
        for m in &cfg.pvc_mounts {
            out.pvc_mounts.push((name("PVC", &m.name)?, m.mount_path.clone()));
        }
        for e in &cfg.env {
            let object = name(e.kind.noun(), &e.name)?;
            for (key, var) in &e.key_to_env {
                out.env.push(EnvRef {
                    kind: e.kind,
                    object: object.clone(),
                    key: key.clone(),
                    var: var.clone(),
                    optional: e.optional,
                });
            }
        }
        for v in &cfg.volumes {
            let object = name(v.kind.noun(), &v.name)?;
            out.volumes.push(VolumeRef {
                kind: v.kind,
                object,
                mount_path: v.mount_path.clone(),
                optional: v.optional,
            });
        }
        Ok(out)
    }

    /// Settings only Kubernetes applies are recorded at the top of the task's stdout log, so a user sees
    /// what this run did not apply.
    fn note_kubernetes_only(&self, id: NodeId, cfg: &PlatformConfig) {
        use std::io::Write as _;
        if cfg.kubernetes_only.is_empty() {
            return;
        }
        let settings: Vec<String> = cfg.kubernetes_only.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let dir = self.logs_dir.join(&self.tree[id].path);
        let note = format!("[secondrow] kubernetes only, not applied locally: {}\n", settings.join(" "));
        let file = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::OpenOptions::new().create(true).append(true).open(dir.join("stdout.log")));
        if let Ok(mut f) = file {
            let _ = f.write_all(note.as_bytes());
        }
    }

    /// `CreatePVC` makes the volume (a claim on Kubernetes, else a folder) and outputs its `name`; `DeletePVC`
    /// removes it. Neither is cached: the volume is the result.
    pub(super) async fn run_pvc_op(&mut self, id: NodeId, op: PvcOp) -> Result<()> {
        self.tree[id].exec.attempt = 1;
        let task_id = self.record_start(id).await?;
        self.tree[id].task_id = Some(task_id);
        let result = match self.inner.kube.clone() {
            Some(kube) => self.claim_op(id, op, &kube).await,
            None => self.volume_folder_op(id, op).map(|name| (op == PvcOp::Create).then_some(name)),
        };
        match result {
            Ok(name) => {
                let mut outputs = IoValues::default();
                if let Some(name) = name {
                    outputs.parameters.insert("name".into(), json!(name));
                }
                self.finish_leaf(id, TaskState::Succeeded, None, Some(outputs)).await
            }
            Err(e) => self.finish_leaf(id, TaskState::Failed, Some(e), None).await,
        }
    }

    /// `CreatePVC` / `DeletePVC` with the local executor: the namespace's volume folder of that name, made or
    /// removed.
    fn volume_folder_op(&self, id: NodeId, op: PvcOp) -> std::result::Result<String, String> {
        let root = self.inner.config.volumes_root();
        let params = &self.tree[id].inputs.parameters;
        let text = |k: &str| params.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        match op {
            PvcOp::Create => {
                // kfp: `pvc_name` as given, or a generated name ending in `pvc_name_suffix`.
                let name = match (text("pvc_name"), text("pvc_name_suffix")) {
                    (Some(n), _) => n,
                    (None, Some(suffix)) => format!("{}{suffix}", self.run.id),
                    (None, None) => self.run.id.clone(),
                };
                platform::volume_dir(&root, &self.run.namespace, &name).map_err(|e| e.to_string()).and_then(|dir| {
                    std::fs::create_dir_all(&dir)
                        .map(|_| name)
                        .map_err(|e| format!("creating volume folder {}: {e}", dir.display()))
                })
            }
            PvcOp::Delete => match text("pvc_name") {
                None => Err("DeletePVC needs `pvc_name`".to_owned()),
                Some(name) => platform::volume_dir(&root, &self.run.namespace, &name)
                    .map_err(|e| e.to_string())
                    .and_then(|dir| match std::fs::remove_dir_all(&dir) {
                        Ok(()) => Ok(name),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            Err(format!("volume `{name}` does not exist"))
                        }
                        Err(e) => Err(format!("deleting volume folder {}: {e}", dir.display())),
                    }),
            },
        }
    }

    /// Under the Kubernetes executor, `CreatePVC` creates a PersistentVolumeClaim (or adopts the one this
    /// task made before a retry or restart) and gives its name; `DeletePVC` deletes the claim (one already
    /// gone is fine).
    async fn claim_op(
        &self,
        id: NodeId,
        op: PvcOp,
        kube: &crate::kubernetes::KubeExecutor,
    ) -> std::result::Result<Option<String>, String> {
        use crate::kubernetes::claim;
        let params = &self.tree[id].inputs.parameters;
        let path = &self.tree[id].path;
        let result = match op {
            PvcOp::Create => match claim::request_from_inputs(params, &self.run.id) {
                Ok(req) => kube.create_claim(&req, &self.run.id, path).await.map(Some),
                Err(e) => Err(e),
            },
            PvcOp::Delete => match params.get("pvc_name").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                None => Err(claim::ClaimError::Invalid { field: "pvc_name", message: "missing".into() }),
                Some(name) => kube.delete_claim(name).await.map(|()| None),
            },
        };
        result.map_err(|e| e.to_string())
    }
}
