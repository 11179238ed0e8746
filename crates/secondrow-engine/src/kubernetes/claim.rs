//! kfp-kubernetes' `CreatePVC` and `DeletePVC` under the Kubernetes executor: real PersistentVolumeClaims
//! in the run's namespace, which the Pods of `mount_pvc` tasks mount by claim name.
//!
//! - the claim's name is `pvc_name` as given, or the run's id followed by `pvc_name_suffix` (kfp puts a
//!   random UUID there; the run's id keeps a retried or restarted task on the same claim), or the run's id;
//! - its spec carries the access modes, the size, the storage class (omitted when empty: the cluster's
//!   default; `""` with a `volume_name`, a statically bound volume), the volume name and the annotations;
//! - it carries SecondRow's labels (run, task): a create that finds a claim of the same run and task
//!   adopts it (a retry or a restarted server), a claim of anything else is an error;
//! - deleting a claim that is gone already succeeds.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{json, Value};

use super::pod::{label_value, task_hash, LABEL_MANAGED_BY, LABEL_RUN, LABEL_TASK_HASH, MANAGED_BY};
use super::{KubeError, KubeExecutor};

/// The access modes Kubernetes knows.
pub const ACCESS_MODES: &[&str] = &["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"];

/// What a `CreatePVC` task asks for, read from its input parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRequest {
    pub name: String,
    pub access_modes: Vec<String>,
    pub size: String,
    pub storage_class: Option<String>,
    pub volume_name: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("CreatePVC `{field}`: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("PersistentVolumeClaim `{0}` already exists and was not made by this run's task")]
    Taken(String),
    #[error(transparent)]
    Kube(#[from] KubeError),
}

impl ClaimError {
    pub fn kind(&self) -> secondrow_error::ErrorKind {
        use secondrow_error::ErrorKind;
        match self {
            ClaimError::Invalid { .. } => ErrorKind::InvalidInput,
            ClaimError::Taken(_) => ErrorKind::FailedPrecondition,
            ClaimError::Kube(e) => e.kind(),
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ClaimError {
    ClaimError::Invalid { field, message: message.into() }
}

/// Whether `text` is a Kubernetes quantity (`1Gi`, `500M`, `1.5`, `2e3`): a decimal number, then a binary
/// suffix (`Ki`…`Ei`), a decimal suffix (`n u m k M G T P E`) or an exponent.
pub fn is_quantity(text: &str) -> bool {
    let s = text.strip_prefix(['+', '-']).unwrap_or(text);
    let digits_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let mut parts = number.split('.');
    let whole = parts.next().unwrap_or_default();
    let frac = parts.next();
    if parts.next().is_some() || (whole.is_empty() && frac.is_none_or(str::is_empty)) {
        return false;
    }
    match suffix {
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        e => {
            let exp = e.strip_prefix(['e', 'E']).map(|x| x.strip_prefix(['+', '-']).unwrap_or(x));
            exp.is_some_and(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
        }
    }
}

/// Reads a `CreatePVC` task's inputs. `run_id` names the claim when the task gives no `pvc_name`.
pub fn request_from_inputs(params: &serde_json::Map<String, Value>, run_id: &str) -> Result<ClaimRequest, ClaimError> {
    let text = |k: &'static str| -> Result<Option<String>, ClaimError> {
        match params.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(k, format!("expected a string, got {other}"))),
        }
    };
    let (name, field) = match (text("pvc_name")?, text("pvc_name_suffix")?) {
        (Some(_), Some(_)) => return Err(invalid("pvc_name", "give at most one of pvc_name and pvc_name_suffix")),
        (Some(n), None) => (n, "pvc_name"),
        (None, Some(suffix)) => (format!("{run_id}{suffix}"), "pvc_name_suffix"),
        (None, None) => (run_id.to_owned(), "pvc_name"),
    };
    secondrow_store::validate_secret_name(&name).map_err(|e| invalid(field, e.to_string()))?;
    let access_modes = match params.get("access_modes") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| match v.as_str() {
                Some(m) if ACCESS_MODES.contains(&m) => Ok(m.to_owned()),
                _ => Err(invalid("access_modes", format!("{v} is not one of {}", ACCESS_MODES.join(", ")))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(invalid("access_modes", format!("expected a non-empty list, got {other}"))),
        None => return Err(invalid("access_modes", "missing")),
    };
    let size = text("size")?.ok_or_else(|| invalid("size", "missing"))?;
    if !is_quantity(&size) {
        return Err(invalid("size", format!("`{size}` is not a quantity (such as 1Gi or 500Mi)")));
    }
    let annotations = match params.get("annotations") {
        None | Some(Value::Null) => BTreeMap::new(),
        // kfp's driver keeps string values; anything else is written as its JSON text.
        Some(Value::Object(map)) => {
            map.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
        }
        Some(other) => return Err(invalid("annotations", format!("expected a mapping, got {other}"))),
    };
    Ok(ClaimRequest {
        name,
        access_modes,
        size,
        storage_class: text("storage_class_name")?,
        volume_name: text("volume_name")?,
        annotations,
    })
}

/// The claim object for `req`, labelled with its run and task.
pub fn build(req: &ClaimRequest, run_id: &str, task_path: &str) -> Result<PersistentVolumeClaim, ClaimError> {
    let mut spec = json!({
        "accessModes": req.access_modes,
        "resources": {"requests": {"storage": req.size}},
    });
    match (&req.storage_class, &req.volume_name) {
        (Some(class), _) => spec["storageClassName"] = json!(class),
        // A named volume with no class: bind that volume, not one a default class would provision.
        (None, Some(_)) => spec["storageClassName"] = json!(""),
        (None, None) => {}
    }
    if let Some(v) = &req.volume_name {
        spec["volumeName"] = json!(v);
    }
    let claim = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": req.name,
            "annotations": req.annotations,
            "labels": {
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_RUN: label_value(run_id),
                LABEL_TASK_HASH: task_hash(task_path),
            },
        },
        "spec": spec,
    });
    serde_json::from_value(claim).map_err(|e| invalid("pvc_name", e.to_string()))
}

/// Whether an existing claim was made by this run's task (so a retry adopts it).
fn is_ours(claim: &PersistentVolumeClaim, run_id: &str, task_path: &str) -> bool {
    let labels = claim.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    label(LABEL_MANAGED_BY) == Some(MANAGED_BY)
        && label(LABEL_RUN) == Some(label_value(run_id).as_str())
        && label(LABEL_TASK_HASH) == Some(task_hash(task_path).as_str())
}

impl KubeExecutor {
    fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.pods.clone().into_client(), &self.namespace)
    }

    /// Creates the claim (or adopts the one this run's task made before); its name.
    pub async fn create_claim(&self, req: &ClaimRequest, run_id: &str, task_path: &str) -> Result<String, ClaimError> {
        let claim = build(req, run_id, task_path)?;
        let api = self.claims();
        let what = format!("create PersistentVolumeClaim {}", req.name);
        let pp = PostParams::default();
        match self.with_retry(&what, || api.create(&pp, &claim)).await {
            Ok(_) => Ok(req.name.clone()),
            Err(kube::Error::Api(r)) if r.code == 409 => {
                let read = format!("read PersistentVolumeClaim {}", req.name);
                let existing = self.with_retry(&read, || api.get(&req.name)).await.map_err(|e| self.fail(&read, e))?;
                if is_ours(&existing, run_id, task_path) {
                    tracing::info!("run {run_id}: adopting PersistentVolumeClaim {} of task {task_path}", req.name);
                    Ok(req.name.clone())
                } else {
                    Err(ClaimError::Taken(req.name.clone()))
                }
            }
            Err(kube::Error::Api(r)) if r.code == 422 || r.code == 400 => {
                Err(invalid("pvc_name", format!("the API server refused the claim: {}", r.message)))
            }
            Err(e) => Err(self.fail(&what, e).into()),
        }
    }

    /// Deletes the claim; one that is gone already is fine.
    pub async fn delete_claim(&self, name: &str) -> Result<(), ClaimError> {
        let api = self.claims();
        let what = format!("delete PersistentVolumeClaim {name}");
        let dp = DeleteParams::default();
        match self.with_retry(&what, || api.delete(name, &dp)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(r)) if r.code == 404 => Ok(()),
            Err(e) => Err(self.fail(&what, e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn quantities_are_checked() {
        for ok in ["1Gi", "500Mi", "1", "1.5", ".5G", "2e3", "10E+2", "100m", "+1Ki"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "lots", "1GB", "1 Gi", "1.2.3", "1e", "-", "1gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn inputs_become_a_labelled_claim() {
        let p = params(json!({
            "pvc_name_suffix": "-scratch", "access_modes": ["ReadWriteOnce"], "size": "1Gi",
            "storage_class_name": "standard", "annotations": {"team": "ml"}
        }));
        let req = request_from_inputs(&p, "run-1").unwrap();
        assert_eq!(req.name, "run-1-scratch");
        let claim = serde_json::to_value(build(&req, "run-1", "createpvc").unwrap()).unwrap();
        assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteOnce"]));
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
        assert_eq!(claim["spec"]["storageClassName"], "standard");
        assert_eq!(claim["metadata"]["annotations"]["team"], "ml");
        assert_eq!(claim["metadata"]["labels"][LABEL_RUN], "run-1");
        assert!(is_ours(&build(&req, "run-1", "createpvc").unwrap(), "run-1", "createpvc"));
        assert!(!is_ours(&build(&req, "run-1", "createpvc").unwrap(), "run-2", "createpvc"));

        // A named volume without a class binds that volume (storageClassName "").
        let p = params(json!({"pvc_name": "data", "access_modes": ["ReadOnlyMany"], "size": "5G",
                              "storage_class_name": "", "volume_name": "pv-1"}));
        let claim = serde_json::to_value(build(&request_from_inputs(&p, "r").unwrap(), "r", "t").unwrap()).unwrap();
        assert_eq!(claim["metadata"]["name"], "data");
        assert_eq!(claim["spec"]["storageClassName"], "");
        assert_eq!(claim["spec"]["volumeName"], "pv-1");
    }

    #[test]
    fn bad_settings_name_the_field() {
        let err = |v: Value| request_from_inputs(&params(v), "r").unwrap_err().to_string();
        let e = err(json!({"access_modes": ["ReadWriteSometimes"], "size": "1Gi"}));
        assert!(e.contains("`access_modes`") && e.contains("ReadWriteSometimes"), "{e}");
        let e = err(json!({"access_modes": [], "size": "1Gi"}));
        assert!(e.contains("`access_modes`"), "{e}");
        let e = err(json!({"access_modes": ["ReadWriteOnce"], "size": "lots"}));
        assert!(e.contains("`size`") && e.contains("lots"), "{e}");
        let e = err(json!({"access_modes": ["ReadWriteOnce"]}));
        assert!(e.contains("`size`: missing"), "{e}");
        let e = err(json!({"pvc_name": "Bad_Name", "access_modes": ["ReadWriteOnce"], "size": "1Gi"}));
        assert!(e.contains("`pvc_name`"), "{e}");
        let e = err(json!({"pvc_name_suffix": "_X", "access_modes": ["ReadWriteOnce"], "size": "1Gi"}));
        assert!(e.contains("`pvc_name_suffix`") && e.contains("r_X"), "{e}");
        let e = err(json!({"pvc_name": "a", "pvc_name_suffix": "-b", "access_modes": ["ReadWriteOnce"], "size": "1"}));
        assert!(e.contains("at most one"), "{e}");
    }
}
