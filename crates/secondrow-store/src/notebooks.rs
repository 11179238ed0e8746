//! Notebooks: managed JupyterLab servers, one row per notebook (unique name per namespace, migration `0013`).
//!
//! The row is the notebook's state machine: `Starting` (process being prepared or started, not yet answering),
//! `Running` (answering on `port`), and the three rest states `Stopped` (asked), `Culled` (idle too long) and
//! `Failed` (with the reason). Every change of state is one transaction that first checks the state it leaves,
//! so two callers racing (a stop and the culler, a start and a delete) cannot both win.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::stored_enum::stored_enum;
use crate::{now_ms, Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotebookState {
    Starting,
    Running,
    Stopped,
    Culled,
    Failed,
}

stored_enum!("notebook state", NotebookState { Starting, Running, Stopped, Culled, Failed });

impl NotebookState {
    /// Whether a process belongs to the notebook in this state (the server (re)starts it on start).
    pub fn is_up(self) -> bool {
        matches!(self, NotebookState::Starting | NotebookState::Running)
    }
}

/// A notebook as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotebookRecord {
    pub namespace: String,
    pub name: String,
    pub state: NotebookState,
    /// Why it stopped or failed (`None` while up, or when stopped by request).
    pub reason: Option<String>,
    /// The interpreter it was created with (`--python`); `None`: the cached environment of `packages`.
    pub python: Option<String>,
    pub packages: Vec<String>,
    /// The loopback port while it is up.
    pub port: Option<u16>,
    /// The process (group leader) while it is up.
    pub pid: Option<u32>,
    /// The leader's start time (clock ticks since boot), to tell it from a reused pid after a restart.
    pub pid_started: Option<u64>,
    /// The token only the server's proxy knows; never sent to clients.
    #[serde(skip_serializing, default)]
    pub secret: String,
    /// The workspace folder (the Jupyter root), kept across stop/start.
    pub workspace: String,
    pub last_activity: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A notebook to create (state `Starting`).
#[derive(Debug, Clone)]
pub struct NewNotebook<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub python: Option<&'a str>,
    pub packages: &'a [String],
    pub secret: &'a str,
    pub workspace: &'a str,
}

/// Checks a notebook name: it is a path segment of `/notebook/NS/NAME/` and a folder name, so a DNS label
/// like a namespace (1-63 lowercase letters, digits and `-`, starting and ending with a letter or digit).
pub fn validate_notebook_name(name: &str) -> Result<()> {
    let b = name.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first() != Some(&b'-')
        && b.last() != Some(&b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument(format!(
            "notebook name `{name}`: expected 1-63 lowercase letters, digits or `-`, starting and ending with a letter or digit"
        )))
    }
}

fn id(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl Store {
    /// Records a new notebook in state `Starting`; a name taken in the namespace is `AlreadyExists`.
    pub async fn create_notebook(&self, new: &NewNotebook<'_>) -> Result<NotebookRecord> {
        crate::validate_namespace(new.namespace)?;
        validate_notebook_name(new.name)?;
        let packages = serde_json::to_string(new.packages).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO notebooks (namespace, name, state, python, packages, secret, workspace,
                                    last_activity, created_at, updated_at)
             VALUES ($1, $2, 'Starting', $3, $4, $5, $6, $7, $7, $7) ON CONFLICT (namespace, name) DO NOTHING",
        )
        .bind(new.namespace)
        .bind(new.name)
        .bind(new.python)
        .bind(packages)
        .bind(new.secret)
        .bind(new.workspace)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists { kind: "notebook", id: id(new.namespace, new.name) });
        }
        self.get_notebook(new.namespace, new.name).await
    }

    pub async fn get_notebook(&self, namespace: &str, name: &str) -> Result<NotebookRecord> {
        let row = sqlx::query("SELECT * FROM notebooks WHERE namespace = $1 AND name = $2")
            .bind(namespace)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound { kind: "notebook", id: id(namespace, name) })?;
        notebook_from_row(&row)
    }

    /// The notebooks of `namespace` (every namespace when `None`), by namespace and name.
    pub async fn list_notebooks(&self, namespace: Option<&str>) -> Result<Vec<NotebookRecord>> {
        let rows = match namespace {
            Some(ns) => {
                sqlx::query("SELECT * FROM notebooks WHERE namespace = $1 ORDER BY name")
                    .bind(ns)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query("SELECT * FROM notebooks ORDER BY namespace, name").fetch_all(&self.pool).await?,
        };
        rows.iter().map(notebook_from_row).collect()
    }

    /// Moves a notebook to `Starting` on `port` from a rest state (or from `Starting`/`Running`, when the
    /// server restarts it after a restart of its own: `restart`). Clears the reason and the old process.
    pub async fn notebook_starting(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
        restart: bool,
    ) -> Result<NotebookRecord> {
        let allowed: &[NotebookState] = if restart {
            &[NotebookState::Starting, NotebookState::Running]
        } else {
            &[NotebookState::Stopped, NotebookState::Culled, NotebookState::Failed]
        };
        self.transition(namespace, name, allowed, |q| {
            q.push_str("state = 'Starting', reason = NULL, pid = NULL, pid_started = NULL, port = ");
            q.push_str(&port.to_string());
        })
        .await
    }

    /// Records the process of a `Starting` notebook.
    pub async fn notebook_process(
        &self,
        namespace: &str,
        name: &str,
        pid: u32,
        started: u64,
    ) -> Result<NotebookRecord> {
        self.transition(namespace, name, &[NotebookState::Starting], |q| {
            q.push_str(&format!("pid = {pid}, pid_started = {started}"));
        })
        .await
    }

    /// `Starting` → `Running` (its server answered); the activity clock starts now.
    pub async fn notebook_running(&self, namespace: &str, name: &str) -> Result<NotebookRecord> {
        let now = now_ms();
        self.transition(namespace, name, &[NotebookState::Starting], |q| {
            q.push_str(&format!("state = 'Running', last_activity = {now}"));
        })
        .await
    }

    /// Ends an up notebook: `Stopped`, `Culled` or `Failed` with `reason`; port and process are cleared.
    pub async fn notebook_down(
        &self,
        namespace: &str,
        name: &str,
        to: NotebookState,
        reason: Option<&str>,
    ) -> Result<NotebookRecord> {
        if to.is_up() {
            return Err(StoreError::InvalidArgument(format!("notebook_down: `{to}` is not a rest state")));
        }
        let mut tx = self.pool.begin().await?;
        let current = state_in(&mut tx, namespace, name).await?;
        if !current.is_up() {
            return Err(StoreError::InvalidArgument(format!(
                "notebook `{}` is {current}, not running",
                id(namespace, name)
            )));
        }
        sqlx::query(
            "UPDATE notebooks SET state = $1, reason = $2, port = NULL, pid = NULL, pid_started = NULL, updated_at = $3
             WHERE namespace = $4 AND name = $5",
        )
        .bind(to.as_str())
        .bind(reason)
        .bind(now_ms())
        .bind(namespace)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.get_notebook(namespace, name).await
    }

    /// Records kernel activity seen at `at` (epoch ms) on a running notebook; never moves the clock back.
    pub async fn notebook_activity(&self, namespace: &str, name: &str, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE notebooks SET last_activity = $1 WHERE namespace = $2 AND name = $3 AND last_activity < $1",
        )
        .bind(at)
        .bind(namespace)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a notebook's row; returns what it was.
    pub async fn delete_notebook(&self, namespace: &str, name: &str) -> Result<NotebookRecord> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT * FROM notebooks WHERE namespace = $1 AND name = $2")
            .bind(namespace)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound { kind: "notebook", id: id(namespace, name) })?;
        let record = notebook_from_row(&row)?;
        sqlx::query("DELETE FROM notebooks WHERE namespace = $1 AND name = $2")
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(record)
    }

    /// One checked state change: the notebook must be in one of `from`; `set` writes the SET list (numbers
    /// and fixed words only, never caller text).
    async fn transition(
        &self,
        namespace: &str,
        name: &str,
        from: &[NotebookState],
        set: impl FnOnce(&mut String),
    ) -> Result<NotebookRecord> {
        let mut tx = self.pool.begin().await?;
        let current = state_in(&mut tx, namespace, name).await?;
        if !from.contains(&current) {
            let expected: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
            return Err(StoreError::InvalidArgument(format!(
                "notebook `{}` is {current} (expected {})",
                id(namespace, name),
                expected.join(" or ")
            )));
        }
        let mut q = String::from("UPDATE notebooks SET ");
        set(&mut q);
        q.push_str(", updated_at = $1 WHERE namespace = $2 AND name = $3");
        sqlx::query(&q).bind(now_ms()).bind(namespace).bind(name).execute(&mut *tx).await?;
        tx.commit().await?;
        self.get_notebook(namespace, name).await
    }
}

async fn state_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>, namespace: &str, name: &str) -> Result<NotebookState> {
    let row = sqlx::query("SELECT state FROM notebooks WHERE namespace = $1 AND name = $2")
        .bind(namespace)
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound { kind: "notebook", id: id(namespace, name) })?;
    row.try_get::<String, _>("state")?.parse()
}

fn notebook_from_row(row: &AnyRow) -> Result<NotebookRecord> {
    let packages: String = row.try_get("packages")?;
    let num = |col: &str| -> Result<Option<i64>> { Ok(row.try_get::<Option<i64>, _>(col)?) };
    let corrupt = |col: &str, v: i64| StoreError::Corrupt(format!("notebook {col} {v}"));
    Ok(NotebookRecord {
        namespace: row.try_get("namespace")?,
        name: row.try_get("name")?,
        state: row.try_get::<String, _>("state")?.parse()?,
        reason: row.try_get("reason")?,
        python: row.try_get("python")?,
        packages: serde_json::from_str(&packages)
            .map_err(|e| StoreError::Corrupt(format!("notebook packages: {e}")))?,
        port: num("port")?.map(|v| u16::try_from(v).map_err(|_| corrupt("port", v))).transpose()?,
        pid: num("pid")?.map(|v| u32::try_from(v).map_err(|_| corrupt("pid", v))).transpose()?,
        pid_started: num("pid_started")?
            .map(|v| u64::try_from(v).map_err(|_| corrupt("pid_started", v)))
            .transpose()?,
        secret: row.try_get("secret")?,
        workspace: row.try_get("workspace")?,
        last_activity: row.try_get("last_activity")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[cfg(test)]
mod tests;
