//! Secrets and config maps: the local stand-ins for the Kubernetes objects that kfp-kubernetes pipelines
//! read (`use_secret_as_env`, `use_secret_as_volume`, `use_config_map_as_env`, `use_config_map_as_volume`).
//!
//! Each belongs to one namespace (a run sees only its own namespace's objects) and holds key → value
//! text. Listing returns keys only: values leave the store only through [`Store::get_secret_data`], which the
//! engine calls to give a task its environment and files.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use crate::{now_ms, Result, Store, StoreError};

/// Which kind of object: they live in separate name spaces, as on Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    Secret,
    ConfigMap,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Secret => "secret",
            SecretKind::ConfigMap => "config_map",
        }
    }

    /// The noun used in messages: `secret`, `config map`.
    pub fn noun(self) -> &'static str {
        match self {
            SecretKind::Secret => "secret",
            SecretKind::ConfigMap => "config map",
        }
    }
}

/// A secret or config map as listed: its keys, never its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretInfo {
    pub namespace: String,
    pub kind: SecretKind,
    pub name: String,
    pub keys: Vec<String>,
    pub created_at: i64,
}

/// Checks an object name the way Kubernetes does for secrets and config maps: 1–253 characters of
/// lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit.
pub fn validate_secret_name(name: &str) -> Result<()> {
    let b = name.as_bytes();
    let ok = (1..=253).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric);
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument(format!(
            "name `{name}`: expected lowercase letters, digits, `-` or `.`, starting and ending with a letter or digit"
        )))
    }
}

/// Checks a key: what Kubernetes allows in a secret's data (letters, digits, `-`, `_`, `.`), which also
/// makes it a safe file name.
pub fn validate_secret_key(key: &str) -> Result<()> {
    let ok = (1..=253).contains(&key.len())
        && key.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && key != "."
        && key != "..";
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument(format!("key `{key}`: expected letters, digits, `-`, `_` or `.`")))
    }
}

fn check_namespace(namespace: &str) -> Result<()> {
    // The default namespace of local runs is the empty string.
    if namespace.is_empty() {
        Ok(())
    } else {
        crate::validate_namespace(namespace)
    }
}

impl Store {
    /// Creates a secret or config map; taken names are `AlreadyExists`.
    pub async fn create_secret(
        &self,
        namespace: &str,
        kind: SecretKind,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<SecretInfo> {
        check_namespace(namespace)?;
        validate_secret_name(name)?;
        for key in data.keys() {
            validate_secret_key(key)?;
        }
        let json = serde_json::to_string(data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let created_at = now_ms();
        let done = sqlx::query(
            "INSERT INTO secrets (namespace, kind, name, data, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (namespace, kind, name) DO NOTHING",
        )
        .bind(namespace)
        .bind(kind.as_str())
        .bind(name)
        .bind(json)
        .bind(created_at)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists { kind: kind.noun(), id: name.to_owned() });
        }
        Ok(SecretInfo {
            namespace: namespace.to_owned(),
            kind,
            name: name.to_owned(),
            keys: data.keys().cloned().collect(),
            created_at,
        })
    }

    /// The objects of one kind in a namespace (all namespaces when `None`), by name, keys only.
    pub async fn list_secrets(&self, namespace: Option<&str>, kind: SecretKind) -> Result<Vec<SecretInfo>> {
        let rows =
            match namespace {
                Some(ns) => {
                    sqlx::query(
                        "SELECT namespace, name, data, created_at FROM secrets WHERE kind = $1 AND namespace = $2 \
                     ORDER BY namespace, name",
                    )
                    .bind(kind.as_str())
                    .bind(ns)
                    .fetch_all(self.reader())
                    .await?
                }
                None => sqlx::query(
                    "SELECT namespace, name, data, created_at FROM secrets WHERE kind = $1 ORDER BY namespace, name",
                )
                .bind(kind.as_str())
                .fetch_all(self.reader())
                .await?,
            };
        rows.iter()
            .map(|r| {
                let data = parse_data(&r.try_get::<String, _>("data")?)?;
                Ok(SecretInfo {
                    namespace: r.try_get("namespace")?,
                    kind,
                    name: r.try_get("name")?,
                    keys: data.into_keys().collect(),
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The key → value data of one object; `None` when it does not exist.
    pub async fn get_secret_data(
        &self,
        namespace: &str,
        kind: SecretKind,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>> {
        let row = sqlx::query("SELECT data FROM secrets WHERE namespace = $1 AND kind = $2 AND name = $3")
            .bind(namespace)
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(self.reader())
            .await?;
        row.map(|r| parse_data(&r.try_get::<String, _>("data")?)).transpose()
    }

    /// Deletes one object; a missing one is `NotFound`.
    pub async fn delete_secret(&self, namespace: &str, kind: SecretKind, name: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM secrets WHERE namespace = $1 AND kind = $2 AND name = $3")
            .bind(namespace)
            .bind(kind.as_str())
            .bind(name)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: kind.noun(), id: name.to_owned() });
        }
        Ok(())
    }
}

fn parse_data(text: &str) -> Result<BTreeMap<String, String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("secret data: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{per_backend, TestDb};

    per_backend!(secrets_are_namespaced_and_listed_without_values);

    async fn secrets_are_namespaced_and_listed_without_values(db: &TestDb) {
        let store = &db.store;
        let data: BTreeMap<String, String> = [("password".to_owned(), "hunter2".to_owned())].into();
        let info = store.create_secret("team-a", SecretKind::Secret, "db", &data).await.unwrap();
        assert_eq!(info.keys, ["password"]);
        // Same name: taken in that namespace and kind, free in another namespace or as a config map.
        let again = store.create_secret("team-a", SecretKind::Secret, "db", &data).await.unwrap_err();
        assert_eq!(again.kind(), crate::ErrorKind::AlreadyExists);
        store.create_secret("team-b", SecretKind::Secret, "db", &BTreeMap::new()).await.unwrap();
        store.create_secret("team-a", SecretKind::ConfigMap, "db", &BTreeMap::new()).await.unwrap();

        let listed = store.list_secrets(Some("team-a"), SecretKind::Secret).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(!serde_json::to_string(&listed).unwrap().contains("hunter2"));
        assert_eq!(store.list_secrets(None, SecretKind::Secret).await.unwrap().len(), 2);
        assert_eq!(store.get_secret_data("team-a", SecretKind::Secret, "db").await.unwrap(), Some(data));
        assert_eq!(store.get_secret_data("team-c", SecretKind::Secret, "db").await.unwrap(), None);

        store.delete_secret("team-a", SecretKind::Secret, "db").await.unwrap();
        let gone = store.delete_secret("team-a", SecretKind::Secret, "db").await.unwrap_err();
        assert_eq!(gone.kind(), crate::ErrorKind::NotFound);
        assert!(store.create_secret("team-a", SecretKind::Secret, "Bad_Name", &BTreeMap::new()).await.is_err());
        let bad_key: BTreeMap<String, String> = [("../x".to_owned(), String::new())].into();
        assert!(store.create_secret("team-a", SecretKind::Secret, "ok", &bad_key).await.is_err());
    }
}
