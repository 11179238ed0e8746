//! API tokens: bearer tokens confined to one namespace, for the KFP API server's access control.
//!
//! A token is shown once, when created; the store keeps only its SHA-256 digest, so a leaked database
//! reveals no usable token. Revoked tokens stay listed (with their revocation time) and never match again.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{decode, now_ms, Result, Store, StoreError};

/// A token as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ApiToken {
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// The hex SHA-256 digest under which a token is stored.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks a namespace name the way Kubernetes (and so KFP) does: a DNS label of 1–63 lowercase letters,
/// digits and `-`, starting and ending with a letter or digit.
pub fn validate_namespace(namespace: &str) -> Result<()> {
    let bytes = namespace.as_bytes();
    let ok = (1..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument(format!(
            "namespace `{namespace}`: expected 1-63 lowercase letters, digits or `-`, starting and ending with a letter or digit"
        )))
    }
}

const TOKEN_COLUMNS: &str = "id, namespace, name, created_at, revoked_at";

impl Store {
    /// Creates a token for `namespace`; returns its record and the token itself (the only time it is known).
    pub async fn create_api_token(&self, namespace: &str, name: &str) -> Result<(ApiToken, String)> {
        validate_namespace(namespace)?;
        // Two v4 UUIDs: 244 bits from the operating system's random source.
        let secret = format!("sr_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let token = ApiToken {
            id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            created_at: now_ms(),
            revoked_at: None,
        };
        sqlx::query("INSERT INTO api_tokens (id, token_hash, namespace, name, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&token.id)
            .bind(token_digest(&secret))
            .bind(&token.namespace)
            .bind(&token.name)
            .bind(token.created_at)
            .execute(self.pool())
            .await?;
        Ok((token, secret))
    }

    /// Every token, revoked ones included, oldest first.
    pub async fn list_api_tokens(&self) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id"))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Revokes a token by id; revoking a revoked token keeps its first revocation time.
    pub async fn revoke_api_token(&self, id: &str) -> Result<ApiToken> {
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        let row = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(r) => decode(&r),
            None => Err(StoreError::NotFound { kind: "token", id: id.to_owned() }),
        }
    }

    /// The live (not revoked) token a presented secret belongs to.
    pub async fn find_api_token(&self, secret: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(token_digest(secret))
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Whether any token was ever created (revoked ones count).
    pub async fn has_api_tokens(&self) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_tokens").fetch_one(self.reader()).await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{per_backend, TestDb};

    per_backend!(tokens_are_stored_as_digests_and_revocable);

    async fn tokens_are_stored_as_digests_and_revocable(db: &TestDb) {
        let store = &db.store;
        assert!(!store.has_api_tokens().await.unwrap());
        let (token, secret) = store.create_api_token("team-a", "ci").await.unwrap();
        assert!(secret.starts_with("sr_") && secret.len() == 67, "{secret}");
        assert!(store.has_api_tokens().await.unwrap());
        assert_eq!(store.find_api_token(&secret).await.unwrap(), Some(token.clone()));
        assert_eq!(store.find_api_token("sr_nope").await.unwrap(), None);

        // Only the digest is in the database.
        let stored: Vec<String> = sqlx::query("SELECT token_hash FROM api_tokens")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("token_hash"))
            .collect();
        assert_eq!(stored, [token_digest(&secret)]);

        let revoked = store.revoke_api_token(&token.id).await.unwrap();
        let at = revoked.revoked_at.expect("revoked");
        assert_eq!(store.find_api_token(&secret).await.unwrap(), None);
        assert_eq!(store.revoke_api_token(&token.id).await.unwrap().revoked_at, Some(at));
        assert!(store.has_api_tokens().await.unwrap(), "a revoked token still counts");
        assert_eq!(store.list_api_tokens().await.unwrap(), [revoked]);
        assert!(matches!(store.revoke_api_token("nope").await, Err(StoreError::NotFound { .. })));
    }

    #[test]
    fn namespaces_are_dns_labels() {
        for ok in ["a", "team-a", "ns1", &"x".repeat(63)] {
            assert!(validate_namespace(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "Team", "a b", "a_b", &"x".repeat(64)] {
            assert!(
                matches!(validate_namespace(bad), Err(StoreError::InvalidArgument(m)) if m.contains("namespace")),
                "{bad}"
            );
        }
    }
}
