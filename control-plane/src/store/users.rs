//! Users, login sessions and API keys.

use sqlx::any::AnyRow;

use super::{get, unique_violation, Store, StoreError};

/// A stored user.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// Unique login name.
    pub username: String,
    /// Name shown to others.
    pub display_name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// `user` or `admin`.
    pub role: String,
    /// Creation time (ms).
    pub created_at_ms: i64,
    /// Picture from an OpenID Connect provider, or empty.
    pub picture_url: String,
}

/// A stored login session (the token itself is never stored, only its hash).
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// Who logged in.
    pub username: String,
    /// Their role now.
    pub role: String,
    /// Expiry (ms).
    pub expires_at_ms: i64,
}

/// A stored API key (the secret is stored as a hash).
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    /// Public half.
    pub key_id: String,
    /// Label.
    pub name: String,
    /// `admin`, `user` or `relay`.
    pub role: String,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
}

fn user_from(row: &AnyRow) -> Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        username: get(row, "username")?,
        display_name: get(row, "display_name")?,
        password_hash: get(row, "password_hash")?,
        role: get(row, "role")?,
        created_at_ms: get(row, "created_at_ms")?,
        picture_url: get(row, "picture_url")?,
    })
}

/// Inserts `user` with `executor` (the pool, or a transaction); `AlreadyExists` when the name
/// is taken.
pub(super) async fn insert_user<'e, E>(executor: E, user: &UserRecord) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO users (username, display_name, password_hash, role, created_at_ms, \
         picture_url) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&user.username)
    .bind(&user.display_name)
    .bind(&user.password_hash)
    .bind(&user.role)
    .bind(user.created_at_ms)
    .bind(&user.picture_url)
    .execute(executor)
    .await
    .map_err(|e| {
        if unique_violation(&e) {
            StoreError::AlreadyExists(format!("user {}", user.username))
        } else {
            e.into()
        }
    })?;
    Ok(())
}

impl Store {
    /// Creates a user; `AlreadyExists` when the name is taken.
    pub async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        insert_user(self.pool(), user).await
    }

    /// The user named `username`.
    pub async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT username, display_name, password_hash, role, created_at_ms, picture_url \
             FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(user_from).transpose()?)
    }

    /// How many users exist.
    pub async fn user_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(self.pool())
            .await?;
        Ok(get(&row, "n")?)
    }

    /// Stores a session token's hash.
    pub async fn create_session(
        &self,
        token_hash: &str,
        username: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, username, created_at_ms, expires_at_ms, revoked) \
             VALUES ($1, $2, $3, $4, 0)",
        )
        .bind(token_hash)
        .bind(username)
        .bind(now_ms)
        .bind(expires_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The live (unexpired, unrevoked) session with this token hash.
    pub async fn session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT s.username AS username, u.role AS role, s.expires_at_ms AS expires_at_ms \
             FROM sessions s JOIN users u ON u.username = s.username \
             WHERE s.token_hash = $1 AND s.revoked = 0 AND s.expires_at_ms > $2",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        Ok(row
            .map(|row| -> Result<_, sqlx::Error> {
                Ok(SessionRecord {
                    username: get(&row, "username")?,
                    role: get(&row, "role")?,
                    expires_at_ms: get(&row, "expires_at_ms")?,
                })
            })
            .transpose()?)
    }

    /// Revokes one session.
    pub async fn revoke_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET revoked = 1 WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Revokes every live session of `username`; returns how many.
    pub async fn revoke_user_sessions(&self, username: &str) -> Result<u64, StoreError> {
        let done =
            sqlx::query("UPDATE sessions SET revoked = 1 WHERE username = $1 AND revoked = 0")
                .bind(username)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected())
    }

    /// Stores an API key; `AlreadyExists` when the id is taken.
    pub async fn create_api_key(&self, key: &ApiKeyRecord, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (key_id, name, role, secret_hash, created_at_ms, revoked) \
             VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(&key.key_id)
        .bind(&key.name)
        .bind(&key.role)
        .bind(&key.secret_hash)
        .bind(now_ms)
        .execute(self.pool())
        .await
        .map_err(|e| {
            if unique_violation(&e) {
                StoreError::AlreadyExists(format!("API key {}", key.key_id))
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    /// The unrevoked API key `key_id`.
    pub async fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT key_id, name, role, secret_hash FROM api_keys \
             WHERE key_id = $1 AND revoked = 0",
        )
        .bind(key_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row
            .map(|row| -> Result<_, sqlx::Error> {
                Ok(ApiKeyRecord {
                    key_id: get(&row, "key_id")?,
                    name: get(&row, "name")?,
                    role: get(&row, "role")?,
                    secret_hash: get(&row, "secret_hash")?,
                })
            })
            .transpose()?)
    }

    /// Revokes an API key; `NotFound` when there is no such live key.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE api_keys SET revoked = 1 WHERE key_id = $1 AND revoked = 0")
            .bind(key_id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("API key {key_id}")));
        }
        Ok(())
    }
}
