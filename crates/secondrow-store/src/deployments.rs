//! Model deployments: which model files `secondrow server` serves under which name, in which versions,
//! and how unpinned requests are split (default version, optional canary share).
//!
//! A deployment row holds the traffic; each version row holds its source (an artifact, a run's task
//! output or a file path, as given) and the file it resolved to. Every change is one transaction.
//! Loading files is not done here: the API server and the CLI check that a file loads before they
//! record it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{now_ms, Result, Store, StoreError};

/// The `schema_title` of artifacts that can be deployed.
pub const MODEL_SCHEMA: &str = "system.Model";

/// A deployment and its versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentRecord {
    pub name: String,
    /// The namespace it belongs to (`""`: none, made by the admin). Names are unique across namespaces.
    pub namespace: String,
    pub default_version: String,
    pub canary: Option<Canary>,
    /// Sorted by version (numbers numerically, then names).
    pub versions: Vec<DeploymentVersion>,
    /// Share of requests logged for monitoring (0 < share <= 1; `None`: not logged).
    pub log_sample: Option<f64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A version receiving `percent` of the unpinned requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canary {
    pub version: String,
    pub percent: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentVersion {
    pub version: String,
    /// The source as given (see [`ModelSource`]).
    pub source: Value,
    pub artifact_id: Option<String>,
    /// The model file served.
    pub path: String,
    pub created_at: i64,
}

impl DeploymentRecord {
    pub fn version(&self, version: &str) -> Option<&DeploymentVersion> {
        self.versions.iter().find(|v| v.version == version)
    }
}

/// Where a version's model file comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum ModelSource {
    Artifact { artifact_id: String },
    TaskOutput { run_id: String, task: String, output: String },
    Path { path: String },
}

impl ModelSource {
    /// Reads a source object (`{artifact_id}`, `{run_id, task, output}` or `{path}`), naming `field` in errors.
    pub fn from_json(field: &str, value: &Value) -> Result<ModelSource> {
        serde_json::from_value(value.clone()).map_err(|_| {
            StoreError::InvalidArgument(format!(
                "{field}: expected {{\"artifact_id\"}}, {{\"run_id\", \"task\", \"output\"}} or {{\"path\"}}, got {value}"
            ))
        })
    }

    pub fn to_json(&self) -> Value {
        match self {
            ModelSource::Artifact { artifact_id } => json!({"artifact_id": artifact_id}),
            ModelSource::TaskOutput { run_id, task, output } => {
                json!({"run_id": run_id, "task": task, "output": output})
            }
            ModelSource::Path { path } => json!({"path": path}),
        }
    }
}

/// A source resolved to a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedSource {
    /// The source with full ids (a run id prefix is expanded).
    pub source: Value,
    pub artifact_id: Option<String>,
    pub path: PathBuf,
}

/// A new version to record.
#[derive(Debug, Clone)]
pub struct NewDeploymentVersion<'a> {
    pub name: &'a str,
    /// The namespace of a new deployment; a version added to an existing deployment must name its namespace.
    pub namespace: &'a str,
    pub version: &'a str,
    pub resolved: &'a ResolvedSource,
    /// Route unpinned requests to it (a new deployment always does).
    pub make_default: bool,
    /// The registered model version it serves (recorded in the same transaction), when deployed from the registry.
    pub model_version_id: Option<i64>,
}

/// A traffic change; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct TrafficUpdate {
    pub default_version: Option<String>,
    /// `Some(None)` removes the canary.
    pub canary: Option<Option<Canary>>,
}

/// Checks a deployment or version name: non-empty, at most 128 characters of `[A-Za-z0-9._-]`.
pub fn check_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument(format!(
            "{field}: `{name}` must be 1-128 characters of letters, digits, `.`, `_` or `-`"
        )))
    }
}

/// Checks an `s3://bucket/key` model URI (a valid bucket, a key naming a file).
fn check_remote_model(field: &str, uri: &str) -> Result<()> {
    match crate::parse_s3_uri(uri) {
        Ok((_, key)) if !key.is_empty() => Ok(()),
        Ok(_) => Err(StoreError::InvalidArgument(format!("{field}: `{uri}` names a bucket, not a model file"))),
        Err(e) => Err(StoreError::InvalidArgument(format!("{field}: {e}"))),
    }
}

/// The version number after the highest numeric one.
pub fn next_version(record: Option<&DeploymentRecord>) -> String {
    let highest =
        record.map(|r| r.versions.iter().filter_map(|v| v.version.parse::<u64>().ok()).max().unwrap_or(0)).unwrap_or(0);
    (highest + 1).to_string()
}

impl Store {
    /// Resolves a source to a model file: the artifact must exist and be a `system.Model`; a task output
    /// is found through the run's lineage (task by path, key or display name); a path must be a file.
    pub async fn resolve_model_source(&self, source: &ModelSource) -> Result<ResolvedSource> {
        let (artifact_id, source) = match source {
            ModelSource::Path { path } if crate::model_cache::is_remote_model(path) => {
                check_remote_model("source.path", path)?;
                return Ok(ResolvedSource { source: source.to_json(), artifact_id: None, path: PathBuf::from(path) });
            }
            ModelSource::Path { path } => {
                let p = PathBuf::from(path);
                if !p.is_absolute() {
                    return Err(StoreError::InvalidArgument(format!("source.path: `{path}` must be an absolute path")));
                }
                if !p.is_file() {
                    return Err(StoreError::InvalidArgument(format!("source.path: `{path}` is not a file")));
                }
                return Ok(ResolvedSource { source: source.to_json(), artifact_id: None, path: p });
            }
            ModelSource::Artifact { artifact_id } => (artifact_id.clone(), source.to_json()),
            ModelSource::TaskOutput { run_id, task, output } => {
                let run_id = self.resolve_run_id(run_id).await?;
                let tasks = self.list_tasks(&run_id).await?;
                let found = tasks
                    .iter()
                    .find(|t| t.path == *task)
                    .or_else(|| tasks.iter().find(|t| t.task_key == *task || t.display_name == *task))
                    .ok_or_else(|| StoreError::NotFound { kind: "task", id: format!("{run_id}/{task}") })?;
                let row =
                    sqlx::query("SELECT artifact_id FROM events WHERE task_id = $1 AND kind = 'OUTPUT' AND name = $2")
                        .bind(&found.id)
                        .bind(output)
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or_else(|| StoreError::NotFound {
                            kind: "task output artifact",
                            id: format!("{run_id}/{task}/{output}"),
                        })?;
                let id: String = row.try_get("artifact_id")?;
                (id, json!({"run_id": run_id, "task": found.path, "output": output}))
            }
        };
        let artifact = self.get_artifact(&artifact_id).await?;
        if artifact.schema_title != MODEL_SCHEMA {
            return Err(StoreError::InvalidArgument(format!(
                "artifact `{artifact_id}` is a {}, not a {MODEL_SCHEMA}",
                artifact.schema_title
            )));
        }
        // An artifact in an object store is fetched by whoever serves it (`crate::model_cache`).
        if crate::model_cache::is_remote_model(&artifact.uri) {
            check_remote_model(&format!("artifact `{artifact_id}`"), &artifact.uri)?;
            return Ok(ResolvedSource { source, artifact_id: Some(artifact_id), path: PathBuf::from(&artifact.uri) });
        }
        let path = PathBuf::from(artifact.uri.strip_prefix("file://").unwrap_or(&artifact.uri));
        if !path.is_absolute() || !path.is_file() {
            return Err(StoreError::InvalidArgument(format!(
                "artifact `{artifact_id}`: `{}` is not a local model file",
                artifact.uri
            )));
        }
        Ok(ResolvedSource { source, artifact_id: Some(artifact_id), path })
    }

    pub async fn get_deployment(&self, name: &str) -> Result<DeploymentRecord> {
        self.find_deployment(name)
            .await?
            .ok_or_else(|| StoreError::NotFound { kind: "deployment", id: name.to_owned() })
    }

    pub async fn find_deployment(&self, name: &str) -> Result<Option<DeploymentRecord>> {
        let Some(row) =
            sqlx::query("SELECT * FROM deployments WHERE name = $1").bind(name).fetch_optional(&self.pool).await?
        else {
            return Ok(None);
        };
        let versions = sqlx::query("SELECT * FROM deployment_versions WHERE deployment = $1")
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        Ok(Some(deployment_from_rows(&row, &versions)?))
    }

    /// Every deployment (of `namespace`, when given), by name.
    pub async fn list_deployments(&self, namespace: Option<&str>) -> Result<Vec<DeploymentRecord>> {
        let rows = match namespace {
            Some(ns) => {
                sqlx::query("SELECT * FROM deployments WHERE namespace = $1 ORDER BY name")
                    .bind(ns)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query("SELECT * FROM deployments ORDER BY name").fetch_all(&self.pool).await?,
        };
        let versions = sqlx::query("SELECT * FROM deployment_versions").fetch_all(&self.pool).await?;
        let mut by_name: BTreeMap<String, Vec<AnyRow>> = BTreeMap::new();
        for v in versions {
            by_name.entry(v.try_get("deployment")?).or_default().push(v);
        }
        rows.iter()
            .map(|r| {
                let name: String = r.try_get("name")?;
                deployment_from_rows(r, by_name.get(&name).map(Vec::as_slice).unwrap_or_default())
            })
            .collect()
    }

    /// Records a version, creating the deployment when it is new (its first version is the default).
    pub async fn add_deployment_version(&self, new: &NewDeploymentVersion<'_>) -> Result<DeploymentRecord> {
        check_name("name", new.name)?;
        check_name("version", new.version)?;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let existing = sqlx::query("SELECT namespace FROM deployments WHERE name = $1")
            .bind(new.name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get::<String, _>("namespace"))
            .transpose()?;
        if let Some(namespace) = existing {
            if namespace != new.namespace {
                return Err(StoreError::InvalidArgument(format!(
                    "namespace: deployment `{}` is in namespace `{namespace}`, not `{}`",
                    new.name, new.namespace
                )));
            }
            let taken = sqlx::query("SELECT version FROM deployment_versions WHERE deployment = $1 AND version = $2")
                .bind(new.name)
                .bind(new.version)
                .fetch_optional(&mut *tx)
                .await?;
            if taken.is_some() {
                return Err(StoreError::AlreadyExists {
                    kind: "deployment version",
                    id: format!("{}/{}", new.name, new.version),
                });
            }
            if new.make_default {
                // The new version cannot be the canary yet (it did not exist), so the canary stays.
                sqlx::query("UPDATE deployments SET default_version = $1, updated_at = $2 WHERE name = $3")
                    .bind(new.version)
                    .bind(now)
                    .bind(new.name)
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query("UPDATE deployments SET updated_at = $1 WHERE name = $2")
                    .bind(now)
                    .bind(new.name)
                    .execute(&mut *tx)
                    .await?;
            }
        } else {
            sqlx::query(
                "INSERT INTO deployments (name, namespace, default_version, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(new.name)
            .bind(new.namespace)
            .bind(new.version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO deployment_versions (deployment, version, source, artifact_id, path, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new.name)
        .bind(new.version)
        .bind(new.resolved.source.to_string())
        .bind(&new.resolved.artifact_id)
        .bind(new.resolved.path.to_string_lossy().into_owned())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some(id) = new.model_version_id {
            crate::registry::link_version_deployment(&mut *tx, id, new.name, new.version, now).await?;
        }
        tx.commit().await?;
        self.get_deployment(new.name).await
    }

    /// Changes the default version and/or the canary; versions must exist, the canary must not be the
    /// default and its percent is 0-100.
    pub async fn update_deployment_traffic(&self, name: &str, update: &TrafficUpdate) -> Result<DeploymentRecord> {
        let mut tx = self.pool.begin().await?;
        let current = deployment_in(&mut tx, name).await?;
        let (default, canary) = apply_traffic(&current, update)?;
        sqlx::query("UPDATE deployments SET default_version = $1, canary_version = $2, canary_percent = $3, updated_at = $4 WHERE name = $5")
            .bind(&default)
            .bind(canary.as_ref().map(|c| c.version.clone()))
            .bind(canary.as_ref().map(|c| i64::from(c.percent)))
            .bind(now_ms())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.get_deployment(name).await
    }

    /// Sets the share of requests logged for monitoring: `Some(share)` with 0 < share <= 1, or `None`
    /// (or `Some(0)`) to stop logging.
    pub async fn set_deployment_log_sample(&self, name: &str, share: Option<f64>) -> Result<DeploymentRecord> {
        let share = check_log_sample(share)?;
        let done = sqlx::query("UPDATE deployments SET log_sample = $1, updated_at = $2 WHERE name = $3")
            .bind(share)
            .bind(now_ms())
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "deployment", id: name.to_owned() });
        }
        self.get_deployment(name).await
    }

    /// Deletes a deployment (`version` `None`) or one version of it. The default version cannot be
    /// deleted while it is the default; a canary on a deleted version is removed with it.
    /// Returns the deployment left, `None` when it was deleted.
    pub async fn delete_deployment(&self, name: &str, version: Option<&str>) -> Result<Option<DeploymentRecord>> {
        let mut tx = self.pool.begin().await?;
        let current = deployment_in(&mut tx, name).await?;
        let Some(version) = version else {
            sqlx::query("DELETE FROM deployment_versions WHERE deployment = $1").bind(name).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM deployments WHERE name = $1").bind(name).execute(&mut *tx).await?;
            tx.commit().await?;
            return Ok(None);
        };
        if current.default_version == version {
            return Err(StoreError::InvalidArgument(format!(
                "version `{version}` is the default of deployment `{name}`: make another version the default first, or delete the deployment"
            )));
        }
        let done = sqlx::query("DELETE FROM deployment_versions WHERE deployment = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "deployment version", id: format!("{name}/{version}") });
        }
        sqlx::query(
            "UPDATE deployments SET updated_at = $1,
                    canary_percent = CASE WHEN canary_version = $2 THEN NULL ELSE canary_percent END,
                    canary_version = CASE WHEN canary_version = $2 THEN NULL ELSE canary_version END
             WHERE name = $3",
        )
        .bind(now_ms())
        .bind(version)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(self.get_deployment(name).await?))
    }
}

/// Checks a log sample share: between 0 and 1 (0 means off, returned as `None`).
pub fn check_log_sample(share: Option<f64>) -> Result<Option<f64>> {
    match share {
        None => Ok(None),
        Some(0.0) => Ok(None),
        Some(s) if s > 0.0 && s <= 1.0 => Ok(Some(s)),
        Some(s) => Err(StoreError::InvalidArgument(format!("log_sample: must be between 0 and 1, got {s}"))),
    }
}

/// The traffic after `update`, checked against the deployment's versions.
pub fn apply_traffic(current: &DeploymentRecord, update: &TrafficUpdate) -> Result<(String, Option<Canary>)> {
    let known = |field: &str, v: &str| {
        if current.version(v).is_some() {
            Ok(())
        } else {
            Err(StoreError::InvalidArgument(format!("{field}: deployment `{}` has no version `{v}`", current.name)))
        }
    };
    let default = match &update.default_version {
        Some(v) => {
            known("default_version", v)?;
            v.clone()
        }
        None => current.default_version.clone(),
    };
    let canary = match &update.canary {
        Some(Some(c)) => {
            known("canary.version", &c.version)?;
            if c.percent > 100 {
                return Err(StoreError::InvalidArgument(format!(
                    "canary.percent: must be between 0 and 100, got {}",
                    c.percent
                )));
            }
            Some(c.clone())
        }
        Some(None) => None,
        // A new default that was the canary ends the canary.
        None => current.canary.clone().filter(|c| c.version != default),
    };
    if canary.as_ref().is_some_and(|c| c.version == default) {
        return Err(StoreError::InvalidArgument(format!(
            "canary.version: `{default}` is the default version; a canary must be another version"
        )));
    }
    Ok((default, canary))
}

/// A deployment read inside a transaction.
async fn deployment_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>, name: &str) -> Result<DeploymentRecord> {
    let row = sqlx::query("SELECT * FROM deployments WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound { kind: "deployment", id: name.to_owned() })?;
    let versions =
        sqlx::query("SELECT * FROM deployment_versions WHERE deployment = $1").bind(name).fetch_all(&mut **tx).await?;
    deployment_from_rows(&row, &versions)
}

fn deployment_from_rows(row: &AnyRow, versions: &[AnyRow]) -> Result<DeploymentRecord> {
    let canary_version: Option<String> = row.try_get("canary_version")?;
    let canary_percent: Option<i64> = row.try_get("canary_percent")?;
    let canary = match (canary_version, canary_percent) {
        (Some(version), Some(p)) => Some(Canary {
            version,
            percent: u32::try_from(p).map_err(|_| StoreError::Corrupt(format!("canary percent {p}")))?,
        }),
        _ => None,
    };
    let mut versions = versions
        .iter()
        .map(|v| {
            let source: String = v.try_get("source")?;
            Ok(DeploymentVersion {
                version: v.try_get("version")?,
                source: serde_json::from_str(&source)
                    .map_err(|e| StoreError::Corrupt(format!("deployment version source: {e}")))?,
                artifact_id: v.try_get("artifact_id")?,
                path: v.try_get("path")?,
                created_at: v.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    versions.sort_by(|a, b| version_order(&a.version, &b.version));
    Ok(DeploymentRecord {
        name: row.try_get("name")?,
        namespace: row.try_get("namespace")?,
        default_version: row.try_get("default_version")?,
        canary,
        versions,
        log_sample: row.try_get("log_sample")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Numbers numerically, then other names alphabetically.
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests;
