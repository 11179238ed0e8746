//! The model registry: registered models, their versions and each version's model artifacts (the file's
//! URI and format), with custom properties, states, lineage back to the run that produced a version, and
//! the deployments that serve it. Migration `0009`.
//!
//! Ids are integers (the Kubeflow Model Registry's wire format wants decimal ids). Names are unique per
//! namespace (models), per model (versions) and per version (artifacts); external ids per namespace.
//! Versions and artifacts carry their model's namespace, so every access check is one column.
//! Custom properties are stored as the JSON map the caller sent and given back unchanged; `extra` keeps
//! the optional descriptive fields (a JSON object) this module does not interpret.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{now_ms, ErrorKind, SqlValue, Store, StoreError};

/// A registry failure.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{kind} `{id}` not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} `{id}` already exists")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("{0}")]
    Invalid(String),
    #[error("model version `{id}` is deployed ({deployments}); delete those deployment versions before archiving it")]
    Deployed { id: i64, deployments: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::NotFound { .. } => ErrorKind::NotFound,
            RegistryError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            RegistryError::Invalid(_) => ErrorKind::InvalidInput,
            RegistryError::Deployed { .. } => ErrorKind::FailedPrecondition,
            RegistryError::Store(e) => e.kind(),
        }
    }
}

impl From<sqlx::Error> for RegistryError {
    fn from(e: sqlx::Error) -> RegistryError {
        RegistryError::Store(StoreError::Database(e))
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// States of registered models and versions.
pub const LIVE: &str = "LIVE";
pub const ARCHIVED: &str = "ARCHIVED";
/// States of model artifacts.
pub const ARTIFACT_STATES: &[&str] =
    &["UNKNOWN", "PENDING", "LIVE", "MARKED_FOR_DELETION", "DELETED", "ABANDONED", "REFERENCE"];
/// The largest id the wire format allows (`^[1-9][0-9]{0,8}$`).
pub const MAX_ID: i64 = 999_999_999;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    pub id: i64,
    pub namespace: String,
    pub name: String,
    pub description: Option<String>,
    pub external_id: Option<String>,
    pub owner: Option<String>,
    /// `LIVE` or `ARCHIVED`.
    pub state: String,
    /// Name → `{"<kind>_value": …, "metadataType": …}`, as sent.
    pub custom_properties: Value,
    /// Optional descriptive fields (`readme`, `maturity`, `language`, …), a JSON object.
    pub extra: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Where a version came from: a run's task output artifact, with the task's metrics when registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub run_id: String,
    pub task: Option<String>,
    pub artifact_id: Option<String>,
    /// Metric name → value, from the task's `system.Metrics` outputs (empty object when none).
    pub metrics: Value,
}

/// A deployment version serving a model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDeployment {
    pub deployment: String,
    pub version: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub id: i64,
    pub registered_model_id: i64,
    pub namespace: String,
    pub name: String,
    pub description: Option<String>,
    pub external_id: Option<String>,
    pub author: Option<String>,
    pub state: String,
    pub custom_properties: Value,
    pub extra: Value,
    pub lineage: Option<Lineage>,
    /// Filled by reads of one version ([`Store::get_model_version`] and the lookups); empty in lists.
    #[serde(default)]
    pub deployments: Vec<VersionDeployment>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    pub id: i64,
    pub model_version_id: i64,
    pub namespace: String,
    pub name: String,
    pub description: Option<String>,
    pub external_id: Option<String>,
    pub uri: String,
    pub state: String,
    pub model_format_name: Option<String>,
    pub model_format_version: Option<String>,
    pub custom_properties: Value,
    pub extra: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// How to find one object besides its id.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    Name(&'a str),
    ExternalId(&'a str),
}

/// The sort key of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderBy {
    #[default]
    Id,
    CreateTime,
    LastUpdateTime,
}

impl OrderBy {
    fn column(self) -> &'static str {
        match self {
            OrderBy::Id => "id",
            OrderBy::CreateTime => "created_at",
            OrderBy::LastUpdateTime => "updated_at",
        }
    }
}

/// One page of a listing: sort key and direction (ties broken by id), size and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub order: OrderBy,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
}

impl Default for Page {
    fn default() -> Page {
        Page { order: OrderBy::Id, descending: false, limit: 100, offset: 0 }
    }
}

impl Page {
    fn sql(&self) -> String {
        let dir = if self.descending { "DESC" } else { "ASC" };
        format!(
            " ORDER BY {} {dir}, id {dir} LIMIT {} OFFSET {}",
            self.order.column(),
            self.limit.max(0),
            self.offset.max(0)
        )
    }
}

/// Checks a registered model, version or artifact name: 1-256 characters, no control characters.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
        return Err(RegistryError::Invalid(format!(
            "{kind} name `{}`: expected 1-256 characters without control characters",
            name.escape_debug()
        )));
    }
    Ok(())
}

fn check_state(kind: &str, state: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&state) {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!("{kind} state `{state}`: expected one of {}", allowed.join(", "))))
    }
}

fn json_text(row: &AnyRow, col: &str) -> Result<Value> {
    let s: Option<String> = row.try_get(col)?;
    match s {
        None => Ok(Value::Null),
        Some(s) => serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")).into()),
    }
}

fn object_or_empty(v: &Value) -> String {
    if v.is_object() {
        v.to_string()
    } else {
        "{}".to_owned()
    }
}

fn unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation() || d.message().contains("UNIQUE") || d.message().contains("duplicate key")
        }
        _ => false,
    }
}

/// A write's error: a unique violation is `AlreadyExists` for `kind` `id`.
fn write_error(e: sqlx::Error, kind: &'static str, id: impl Into<String>) -> RegistryError {
    if unique_violation(&e) {
        RegistryError::AlreadyExists { kind, id: id.into() }
    } else {
        e.into()
    }
}

impl RegisteredModel {
    fn from_row(r: &AnyRow) -> Result<RegisteredModel> {
        Ok(RegisteredModel {
            id: r.try_get("id")?,
            namespace: r.try_get("namespace")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            external_id: r.try_get("external_id")?,
            owner: r.try_get("owner")?,
            state: r.try_get("state")?,
            custom_properties: json_text(r, "custom_properties")?,
            extra: json_text(r, "extra")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }

    /// A new live model of `namespace` (id and times are assigned when it is created).
    pub fn new(namespace: &str, name: &str) -> RegisteredModel {
        RegisteredModel {
            id: 0,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            description: None,
            external_id: None,
            owner: None,
            state: LIVE.to_owned(),
            custom_properties: json!({}),
            extra: json!({}),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn check(&self) -> Result<()> {
        check_name("registered model", &self.name)?;
        check_state("registered model", &self.state, &[LIVE, ARCHIVED])
    }
}

impl ModelVersion {
    fn from_row(r: &AnyRow) -> Result<ModelVersion> {
        let run_id: Option<String> = r.try_get("run_id")?;
        let lineage = match run_id {
            Some(run_id) => Some(Lineage {
                run_id,
                task: r.try_get("task")?,
                artifact_id: r.try_get("source_artifact_id")?,
                metrics: match json_text(r, "metrics")? {
                    Value::Null => json!({}),
                    v => v,
                },
            }),
            None => None,
        };
        Ok(ModelVersion {
            id: r.try_get("id")?,
            registered_model_id: r.try_get("registered_model_id")?,
            namespace: r.try_get("namespace")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            external_id: r.try_get("external_id")?,
            author: r.try_get("author")?,
            state: r.try_get("state")?,
            custom_properties: json_text(r, "custom_properties")?,
            extra: json_text(r, "extra")?,
            lineage,
            deployments: Vec::new(),
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }

    /// A new live version of model `registered_model_id`.
    pub fn new(registered_model_id: i64, name: &str) -> ModelVersion {
        ModelVersion {
            id: 0,
            registered_model_id,
            namespace: String::new(),
            name: name.to_owned(),
            description: None,
            external_id: None,
            author: None,
            state: LIVE.to_owned(),
            custom_properties: json!({}),
            extra: json!({}),
            lineage: None,
            deployments: Vec::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn check(&self) -> Result<()> {
        check_name("model version", &self.name)?;
        check_state("model version", &self.state, &[LIVE, ARCHIVED])
    }
}

impl ModelArtifact {
    fn from_row(r: &AnyRow) -> Result<ModelArtifact> {
        Ok(ModelArtifact {
            id: r.try_get("id")?,
            model_version_id: r.try_get("model_version_id")?,
            namespace: r.try_get("namespace")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            external_id: r.try_get("external_id")?,
            uri: r.try_get("uri")?,
            state: r.try_get("state")?,
            model_format_name: r.try_get("model_format_name")?,
            model_format_version: r.try_get("model_format_version")?,
            custom_properties: json_text(r, "custom_properties")?,
            extra: json_text(r, "extra")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }

    /// A new artifact of version `model_version_id` at `uri`, state `UNKNOWN`.
    pub fn new(model_version_id: i64, name: &str, uri: &str) -> ModelArtifact {
        ModelArtifact {
            id: 0,
            model_version_id,
            namespace: String::new(),
            name: name.to_owned(),
            description: None,
            external_id: None,
            uri: uri.to_owned(),
            state: "UNKNOWN".to_owned(),
            model_format_name: None,
            model_format_version: None,
            custom_properties: json!({}),
            extra: json!({}),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn check(&self) -> Result<()> {
        check_name("model artifact", &self.name)?;
        check_state("model artifact", &self.state, ARTIFACT_STATES)?;
        if self.uri.trim().is_empty() {
            return Err(RegistryError::Invalid("model artifact uri: must not be empty".into()));
        }
        Ok(())
    }
}

fn id_in_range(kind: &'static str, id: i64) -> Result<()> {
    if id > MAX_ID {
        // The wire format cannot carry it; refuse rather than hand out an id no client can read.
        return Err(RegistryError::Invalid(format!("{kind} ids are exhausted (over {MAX_ID})")));
    }
    Ok(())
}

async fn insert_model(tx: &mut Transaction<'static, Any>, m: &RegisteredModel, now: i64) -> Result<RegisteredModel> {
    m.check()?;
    let id: i64 = sqlx::query(
        "INSERT INTO registered_models (namespace, name, description, external_id, owner, state, custom_properties,
         extra, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
    )
    .bind(&m.namespace)
    .bind(&m.name)
    .bind(&m.description)
    .bind(&m.external_id)
    .bind(&m.owner)
    .bind(&m.state)
    .bind(object_or_empty(&m.custom_properties))
    .bind(object_or_empty(&m.extra))
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| write_error(e, "registered model", m.external_id.as_deref().map_or(&*m.name, |x| x).to_owned()))?
    .try_get("id")?;
    id_in_range("registered model", id)?;
    Ok(RegisteredModel { id, created_at: now, updated_at: now, ..m.clone() })
}

async fn insert_version(tx: &mut Transaction<'static, Any>, v: &ModelVersion, now: i64) -> Result<ModelVersion> {
    v.check()?;
    let lineage = v.lineage.as_ref();
    // One statement that reads the parent's namespace and writes, so SQLite takes its write lock at once.
    let row = sqlx::query(
        "INSERT INTO model_versions (registered_model_id, namespace, name, description, external_id, author, state,
         custom_properties, extra, run_id, task, source_artifact_id, metrics, created_at, updated_at)
         SELECT id, namespace, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13 FROM registered_models
         WHERE id = $1 RETURNING id, namespace",
    )
    .bind(v.registered_model_id)
    .bind(&v.name)
    .bind(&v.description)
    .bind(&v.external_id)
    .bind(&v.author)
    .bind(&v.state)
    .bind(object_or_empty(&v.custom_properties))
    .bind(object_or_empty(&v.extra))
    .bind(lineage.map(|l| l.run_id.clone()))
    .bind(lineage.and_then(|l| l.task.clone()))
    .bind(lineage.and_then(|l| l.artifact_id.clone()))
    .bind(lineage.map(|l| object_or_empty(&l.metrics)))
    .bind(now)
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| write_error(e, "model version", v.external_id.clone().unwrap_or_else(|| v.name.clone())))?
    .ok_or(RegistryError::NotFound { kind: "registered model", id: v.registered_model_id.to_string() })?;
    let id: i64 = row.try_get("id")?;
    id_in_range("model version", id)?;
    Ok(ModelVersion { id, namespace: row.try_get("namespace")?, created_at: now, updated_at: now, ..v.clone() })
}

async fn insert_artifact(tx: &mut Transaction<'static, Any>, a: &ModelArtifact, now: i64) -> Result<ModelArtifact> {
    a.check()?;
    let row = sqlx::query(
        "INSERT INTO model_artifacts (model_version_id, namespace, name, description, external_id, uri, state,
         model_format_name, model_format_version, custom_properties, extra, created_at, updated_at)
         SELECT id, namespace, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11 FROM model_versions
         WHERE id = $1 RETURNING id, namespace",
    )
    .bind(a.model_version_id)
    .bind(&a.name)
    .bind(&a.description)
    .bind(&a.external_id)
    .bind(&a.uri)
    .bind(&a.state)
    .bind(&a.model_format_name)
    .bind(&a.model_format_version)
    .bind(object_or_empty(&a.custom_properties))
    .bind(object_or_empty(&a.extra))
    .bind(now)
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| write_error(e, "model artifact", a.external_id.clone().unwrap_or_else(|| a.name.clone())))?
    .ok_or(RegistryError::NotFound { kind: "model version", id: a.model_version_id.to_string() })?;
    let id: i64 = row.try_get("id")?;
    id_in_range("model artifact", id)?;
    Ok(ModelArtifact { id, namespace: row.try_get("namespace")?, created_at: now, updated_at: now, ..a.clone() })
}

/// Writes first (SQLite takes its write lock at once), then refuses an archive of a deployed version.
async fn update_version_in(tx: &mut Transaction<'static, Any>, v: &ModelVersion) -> Result<ModelVersion> {
    sqlx::query(
        "UPDATE model_versions SET description = $1, external_id = $2, author = $3, state = $4,
         custom_properties = $5, extra = $6, updated_at = $7 WHERE id = $8",
    )
    .bind(&v.description)
    .bind(&v.external_id)
    .bind(&v.author)
    .bind(&v.state)
    .bind(object_or_empty(&v.custom_properties))
    .bind(object_or_empty(&v.extra))
    .bind(now_ms())
    .bind(v.id)
    .execute(&mut **tx)
    .await
    .map_err(|e| write_error(e, "model version", v.external_id.clone().unwrap_or_default()))?;
    let mut new = version_in(tx, v.id).await?;
    new.deployments = live_deployments(tx, v.id).await?;
    if new.state == ARCHIVED && !new.deployments.is_empty() {
        let deployments =
            new.deployments.iter().map(|d| format!("{} version {}", d.deployment, d.version)).collect::<Vec<_>>();
        return Err(RegistryError::Deployed { id: v.id, deployments: deployments.join(", ") });
    }
    Ok(new)
}

async fn register_in(
    tx: &mut Transaction<'static, Any>,
    model: &RegisteredModel,
    version: &ModelVersion,
    artifact: &ModelArtifact,
) -> Result<Registration> {
    model.check()?;
    let now = now_ms();
    // Insert-or-keep first (the write lock at once on SQLite), then read the model back.
    sqlx::query(
        "INSERT INTO registered_models (namespace, name, description, external_id, owner, state, custom_properties,
         extra, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
         ON CONFLICT (namespace, name) DO NOTHING",
    )
    .bind(&model.namespace)
    .bind(&model.name)
    .bind(&model.description)
    .bind(&model.external_id)
    .bind(&model.owner)
    .bind(&model.state)
    .bind(object_or_empty(&model.custom_properties))
    .bind(object_or_empty(&model.extra))
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| write_error(e, "registered model", model.external_id.clone().unwrap_or_default()))?;
    let row = sqlx::query("SELECT * FROM registered_models WHERE namespace = $1 AND name = $2")
        .bind(&model.namespace)
        .bind(&model.name)
        .fetch_one(&mut **tx)
        .await?;
    let model = RegisteredModel::from_row(&row)?;
    id_in_range("registered model", model.id)?;
    if model.state == ARCHIVED {
        return Err(RegistryError::Invalid(format!("registered model `{}` is archived", model.name)));
    }
    let version = ModelVersion { registered_model_id: model.id, ..version.clone() };
    let version = insert_version(tx, &version, now).await.map_err(|e| match e {
        RegistryError::AlreadyExists { .. } => {
            RegistryError::AlreadyExists { kind: "model version", id: format!("{}/{}", model.name, version.name) }
        }
        other => other,
    })?;
    let artifact = ModelArtifact { model_version_id: version.id, ..artifact.clone() };
    let artifact = insert_artifact(tx, &artifact, now).await?;
    Ok(Registration { model, version, artifact })
}

/// Commits `tx` after `result` succeeded, else rolls it back at once (so SQLite's write lock is not held
/// until the connection is next used).
async fn finish<T>(tx: Transaction<'static, Any>, result: Result<T>) -> Result<T> {
    match result {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            // A failed rollback leaves the connection to sqlx, which discards it.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

async fn model_in(tx: &mut Transaction<'static, Any>, id: i64) -> Result<RegisteredModel> {
    let row = sqlx::query("SELECT * FROM registered_models WHERE id = $1").bind(id).fetch_optional(&mut **tx).await?;
    row.map(|r| RegisteredModel::from_row(&r))
        .transpose()?
        .ok_or(RegistryError::NotFound { kind: "registered model", id: id.to_string() })
}

async fn version_in(tx: &mut Transaction<'static, Any>, id: i64) -> Result<ModelVersion> {
    let row = sqlx::query("SELECT * FROM model_versions WHERE id = $1").bind(id).fetch_optional(&mut **tx).await?;
    row.map(|r| ModelVersion::from_row(&r))
        .transpose()?
        .ok_or(RegistryError::NotFound { kind: "model version", id: id.to_string() })
}

/// The deployment versions (still existing) that serve model version `id`.
async fn live_deployments(tx: &mut Transaction<'static, Any>, id: i64) -> Result<Vec<VersionDeployment>> {
    let rows = sqlx::query(
        "SELECT d.deployment, d.version, d.created_at FROM model_version_deployments d
         JOIN deployment_versions v ON v.deployment = d.deployment AND v.version = d.version
         WHERE d.model_version_id = $1 ORDER BY d.created_at, d.deployment, d.version",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(VersionDeployment {
                deployment: r.try_get("deployment")?,
                version: r.try_get("version")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// `SELECT * FROM table WHERE col = $n AND …` + `tail`, with only the conditions that are present (so no
/// parameter is ever a bare NULL, whose type PostgreSQL cannot infer).
async fn select(
    pool: &sqlx::AnyPool,
    table: &str,
    conds: &[(&str, Option<SqlValue>)],
    tail: &str,
) -> Result<Vec<AnyRow>> {
    let present: Vec<(&str, &SqlValue)> = conds.iter().filter_map(|(c, v)| v.as_ref().map(|v| (*c, v))).collect();
    let mut sql = format!("SELECT * FROM {table}");
    for (i, (col, _)) in present.iter().enumerate() {
        sql.push_str(if i == 0 { " WHERE " } else { " AND " });
        sql.push_str(&format!("{col} = ${}", i + 1));
    }
    sql.push_str(tail);
    let mut q = sqlx::query(&sql);
    for (_, v) in &present {
        q = match v {
            SqlValue::Int(n) => q.bind(*n),
            SqlValue::Text(t) => q.bind(t.clone()),
        };
    }
    Ok(q.fetch_all(pool).await?)
}

fn text(v: Option<&str>) -> Option<SqlValue> {
    v.map(|s| SqlValue::Text(s.to_owned()))
}

fn int(v: Option<i64>) -> Option<SqlValue> {
    v.map(SqlValue::Int)
}

/// What [`Store::register_model_version`] wrote (or found, for the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub model: RegisteredModel,
    pub version: ModelVersion,
    pub artifact: ModelArtifact,
}

impl Store {
    // ------------------------------------------------------------ registered models

    /// Creates a registered model; `AlreadyExists` when its namespace has the name or external id.
    pub async fn create_registered_model(&self, m: &RegisteredModel) -> Result<RegisteredModel> {
        let mut tx = self.pool().begin().await?;
        let created = insert_model(&mut tx, m, now_ms()).await;
        finish(tx, created).await
    }

    pub async fn get_registered_model(&self, id: i64) -> Result<RegisteredModel> {
        let row =
            sqlx::query("SELECT * FROM registered_models WHERE id = $1").bind(id).fetch_optional(self.reader()).await?;
        row.map(|r| RegisteredModel::from_row(&r))
            .transpose()?
            .ok_or(RegistryError::NotFound { kind: "registered model", id: id.to_string() })
    }

    /// The model of `namespace` with that name or external id.
    pub async fn find_registered_model(&self, namespace: &str, by: Lookup<'_>) -> Result<Option<RegisteredModel>> {
        let (col, value) = match by {
            Lookup::Name(n) => ("name", n),
            Lookup::ExternalId(x) => ("external_id", x),
        };
        let row = sqlx::query(&format!("SELECT * FROM registered_models WHERE namespace = $1 AND {col} = $2"))
            .bind(namespace)
            .bind(value)
            .fetch_optional(self.reader())
            .await?;
        row.map(|r| RegisteredModel::from_row(&r)).transpose()
    }

    /// Writes a model's changeable fields (description, external id, owner, state, properties, extra);
    /// its name, namespace and creation time stay.
    pub async fn update_registered_model(&self, m: &RegisteredModel) -> Result<RegisteredModel> {
        m.check()?;
        let mut tx = self.pool().begin().await?;
        let res = sqlx::query(
            "UPDATE registered_models SET description = $1, external_id = $2, owner = $3, state = $4,
             custom_properties = $5, extra = $6, updated_at = $7 WHERE id = $8",
        )
        .bind(&m.description)
        .bind(&m.external_id)
        .bind(&m.owner)
        .bind(&m.state)
        .bind(object_or_empty(&m.custom_properties))
        .bind(object_or_empty(&m.extra))
        .bind(now_ms())
        .bind(m.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| write_error(e, "registered model", m.external_id.clone().unwrap_or_default()));
        let updated = match res {
            Ok(_) => model_in(&mut tx, m.id).await,
            Err(e) => Err(e),
        };
        finish(tx, updated).await
    }

    /// A page of registered models of `namespace` (every namespace when `None`).
    pub async fn list_registered_models(&self, namespace: Option<&str>, page: &Page) -> Result<Vec<RegisteredModel>> {
        let rows = select(self.reader(), "registered_models", &[("namespace", text(namespace))], &page.sql()).await?;
        rows.iter().map(RegisteredModel::from_row).collect()
    }

    // ------------------------------------------------------------ model versions

    /// Creates a version of its `registered_model_id` (which gives it its namespace).
    pub async fn create_model_version(&self, v: &ModelVersion) -> Result<ModelVersion> {
        let mut tx = self.pool().begin().await?;
        let created = insert_version(&mut tx, v, now_ms()).await;
        finish(tx, created).await
    }

    /// A version with the deployments serving it.
    pub async fn get_model_version(&self, id: i64) -> Result<ModelVersion> {
        let mut tx = self.pool().begin().await?;
        let mut v = version_in(&mut tx, id).await?;
        v.deployments = live_deployments(&mut tx, id).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// The version of `namespace` with that external id, or with that name under model `parent`.
    pub async fn find_model_version(
        &self,
        namespace: &str,
        parent: Option<i64>,
        by: Lookup<'_>,
    ) -> Result<Option<ModelVersion>> {
        let (col, value) = match (by, parent) {
            (Lookup::Name(_), None) => {
                return Err(RegistryError::Invalid("a model version name needs its registered model's id".into()))
            }
            (Lookup::Name(n), _) => ("name", n),
            (Lookup::ExternalId(x), _) => ("external_id", x),
        };
        let conds =
            [("namespace", text(Some(namespace))), (col, text(Some(value))), ("registered_model_id", int(parent))];
        let row = select(self.reader(), "model_versions", &conds, "").await?.into_iter().next();
        match row {
            Some(r) => Ok(Some(self.get_model_version(r.try_get("id")?).await?)),
            None => Ok(None),
        }
    }

    /// Writes a version's changeable fields. Archiving a version that a deployment serves is refused.
    pub async fn update_model_version(&self, v: &ModelVersion) -> Result<ModelVersion> {
        v.check()?;
        let mut tx = self.pool().begin().await?;
        let updated = update_version_in(&mut tx, v).await;
        finish(tx, updated).await
    }

    /// A page of the versions of model `parent` (of every model of `namespace` when `None`; every
    /// namespace when that is `None` too).
    pub async fn list_model_versions(
        &self,
        namespace: Option<&str>,
        parent: Option<i64>,
        page: &Page,
    ) -> Result<Vec<ModelVersion>> {
        let conds = [("namespace", text(namespace)), ("registered_model_id", int(parent))];
        let rows = select(self.reader(), "model_versions", &conds, &page.sql()).await?;
        rows.iter().map(ModelVersion::from_row).collect()
    }

    /// The versions registered from run `run_id`, with their model names, oldest first.
    pub async fn model_versions_of_run(&self, run_id: &str) -> Result<Vec<(String, ModelVersion)>> {
        let rows = sqlx::query(
            "SELECT v.*, m.name AS model_name FROM model_versions v JOIN registered_models m ON m.id = v.registered_model_id
             WHERE v.run_id = $1 ORDER BY v.id",
        )
        .bind(run_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| Ok((r.try_get("model_name")?, ModelVersion::from_row(r)?))).collect()
    }

    /// Records that deployment `deployment` serves model version `id` as its version `version`.
    pub async fn record_version_deployment(&self, id: i64, deployment: &str, version: &str) -> Result<()> {
        Ok(link_version_deployment(self.pool(), id, deployment, version, now_ms()).await?)
    }

    // ------------------------------------------------------------ model artifacts

    /// Creates an artifact of its `model_version_id`.
    pub async fn create_model_artifact(&self, a: &ModelArtifact) -> Result<ModelArtifact> {
        let mut tx = self.pool().begin().await?;
        let created = insert_artifact(&mut tx, a, now_ms()).await;
        finish(tx, created).await
    }

    pub async fn get_model_artifact(&self, id: i64) -> Result<ModelArtifact> {
        let row =
            sqlx::query("SELECT * FROM model_artifacts WHERE id = $1").bind(id).fetch_optional(self.reader()).await?;
        row.map(|r| ModelArtifact::from_row(&r))
            .transpose()?
            .ok_or(RegistryError::NotFound { kind: "model artifact", id: id.to_string() })
    }

    /// The artifact of `namespace` with that external id, or with that name under version `parent`.
    pub async fn find_model_artifact(
        &self,
        namespace: &str,
        parent: Option<i64>,
        by: Lookup<'_>,
    ) -> Result<Option<ModelArtifact>> {
        let (col, value) = match by {
            Lookup::Name(n) => {
                if parent.is_none() {
                    return Err(RegistryError::Invalid("a model artifact name needs its model version's id".into()));
                }
                ("name", n)
            }
            Lookup::ExternalId(x) => ("external_id", x),
        };
        let conds = [("namespace", text(Some(namespace))), (col, text(Some(value))), ("model_version_id", int(parent))];
        let row = select(self.reader(), "model_artifacts", &conds, "").await?.into_iter().next();
        row.map(|r| ModelArtifact::from_row(&r)).transpose()
    }

    /// Writes an artifact's changeable fields (all but its name, version and creation time).
    pub async fn update_model_artifact(&self, a: &ModelArtifact) -> Result<ModelArtifact> {
        a.check()?;
        let res = sqlx::query(
            "UPDATE model_artifacts SET description = $1, external_id = $2, uri = $3, state = $4,
             model_format_name = $5, model_format_version = $6, custom_properties = $7, extra = $8, updated_at = $9
             WHERE id = $10",
        )
        .bind(&a.description)
        .bind(&a.external_id)
        .bind(&a.uri)
        .bind(&a.state)
        .bind(&a.model_format_name)
        .bind(&a.model_format_version)
        .bind(object_or_empty(&a.custom_properties))
        .bind(object_or_empty(&a.extra))
        .bind(now_ms())
        .bind(a.id)
        .execute(self.pool())
        .await
        .map_err(|e| write_error(e, "model artifact", a.external_id.clone().unwrap_or_default()))?;
        if res.rows_affected() == 0 {
            return Err(RegistryError::NotFound { kind: "model artifact", id: a.id.to_string() });
        }
        self.get_model_artifact(a.id).await
    }

    /// A page of artifacts of version `parent` (all of `namespace` when `None`), optionally only those
    /// with a name or external id.
    pub async fn list_model_artifacts(
        &self,
        namespace: Option<&str>,
        parent: Option<i64>,
        by: Option<Lookup<'_>>,
        page: &Page,
    ) -> Result<Vec<ModelArtifact>> {
        let (name, external_id) = match by {
            Some(Lookup::Name(n)) => (Some(n), None),
            Some(Lookup::ExternalId(x)) => (None, Some(x)),
            None => (None, None),
        };
        let conds = [
            ("namespace", text(namespace)),
            ("model_version_id", int(parent)),
            ("name", text(name)),
            ("external_id", text(external_id)),
        ];
        let rows = select(self.reader(), "model_artifacts", &conds, &page.sql()).await?;
        rows.iter().map(ModelArtifact::from_row).collect()
    }

    // ------------------------------------------------------------ registering in one step

    /// Registers a version with its artifact in one transaction: the model `model.name` of
    /// `model.namespace` is reused when it exists (else created from `model`), then the version and the
    /// artifact are created under it. A taken version name writes nothing.
    pub async fn register_model_version(
        &self,
        model: &RegisteredModel,
        version: &ModelVersion,
        artifact: &ModelArtifact,
    ) -> Result<Registration> {
        let mut tx = self.pool().begin().await?;
        let done = register_in(&mut tx, model, version, artifact).await;
        finish(tx, done).await
    }

    /// The metrics of a model artifact: the numbers in the `system.Metrics` outputs of the task that
    /// produced it (`task_id`) and, when it has none, of the tasks that took the artifact as an input
    /// (an evaluator); an empty object when there are none.
    pub async fn artifact_metrics(&self, artifact_id: &str, task_id: Option<&str>) -> Result<Value> {
        const METRICS_OF_TASKS: &str = "SELECT a.metadata FROM events e JOIN artifacts a ON a.id = e.artifact_id
             WHERE e.kind = 'OUTPUT' AND a.schema_title = 'system.Metrics' AND e.task_id IN";
        let mut rows = Vec::new();
        if let Some(task_id) = task_id {
            rows = sqlx::query(&format!("{METRICS_OF_TASKS} ($1) ORDER BY e.name"))
                .bind(task_id)
                .fetch_all(self.reader())
                .await?;
        }
        if rows.is_empty() {
            rows = sqlx::query(&format!(
                "{METRICS_OF_TASKS} (SELECT task_id FROM events WHERE artifact_id = $1 AND kind = 'INPUT')
                 ORDER BY e.at, e.name"
            ))
            .bind(artifact_id)
            .fetch_all(self.reader())
            .await?;
        }
        let mut metrics = Map::new();
        for r in &rows {
            if let Value::Object(m) = json_text(r, "metadata")? {
                for (k, v) in m {
                    if v.is_number() {
                        metrics.insert(k, v);
                    }
                }
            }
        }
        Ok(Value::Object(metrics))
    }
}

/// The row saying deployment version `deployment`/`version` serves model version `id` (kept when already there);
/// on its own or inside the transaction that adds the deployment version.
pub(crate) async fn link_version_deployment<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: i64,
    deployment: &str,
    version: &str,
    at: i64,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO model_version_deployments (model_version_id, deployment, version, created_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (model_version_id, deployment, version) DO NOTHING",
    )
    .bind(id)
    .bind(deployment)
    .bind(version)
    .bind(at)
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
