//! Token signing keys: one signs at a time; retired keys verify until their last token expires.

use super::{get, Store, StoreError};

/// A stored signing key.
#[derive(Debug, Clone)]
pub struct SigningKeyRecord {
    /// Key id (`kid` in token headers).
    pub kid: String,
    /// Ed25519 seed, base64url.
    pub private_seed: String,
    /// Ed25519 public key, base64url.
    pub public_key: String,
    /// Creation time (ms).
    pub created_at_ms: i64,
    /// `None` while it signs; afterwards when its last token expires (ms).
    pub valid_until_ms: Option<i64>,
}

impl Store {
    /// Keys that still verify tokens at `now_ms`, newest first.
    pub async fn verification_keys(
        &self,
        now_ms: i64,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, private_seed, public_key, created_at_ms, valid_until_ms \
             FROM signing_keys WHERE valid_until_ms IS NULL OR valid_until_ms > $1 \
             ORDER BY created_at_ms DESC, kid DESC",
        )
        .bind(now_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SigningKeyRecord {
                    kid: get(row, "kid")?,
                    private_seed: get(row, "private_seed")?,
                    public_key: get(row, "public_key")?,
                    created_at_ms: get(row, "created_at_ms")?,
                    valid_until_ms: get(row, "valid_until_ms")?,
                })
            })
            .collect()
    }

    /// Makes `key` the signing key; the previous one verifies until `retired_valid_until_ms`.
    pub async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        retired_valid_until_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE signing_keys SET valid_until_ms = $1 WHERE valid_until_ms IS NULL")
            .bind(retired_valid_until_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_seed, public_key, created_at_ms, valid_until_ms) \
             VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(&key.kid)
        .bind(&key.private_seed)
        .bind(&key.public_key)
        .bind(key.created_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Inserts the first signing key unless one signs already (several replicas may race).
    pub async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_seed, public_key, created_at_ms, valid_until_ms) \
             SELECT $1, $2, $3, $4, NULL \
             WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE valid_until_ms IS NULL)",
        )
        .bind(&key.kid)
        .bind(&key.private_seed)
        .bind(&key.public_key)
        .bind(key.created_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
