//! People who sign in through an OpenID Connect provider: who each provider's subject is
//! here, and sign-ins on their way through the provider.

use super::users::insert_user;
use super::{get, unique_violation, Store, StoreError, UserRecord};

/// A sign-in sent to the provider and not yet back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    /// SHA-256 of the `state` sent.
    pub state_hash: String,
    /// SHA-256 of the cookie the browser that started it holds.
    pub browser_hash: String,
    /// Which provider.
    pub provider: String,
    /// The `nonce` sent.
    pub nonce: String,
    /// The PKCE verifier.
    pub pkce_verifier: String,
    /// Where the browser goes afterwards.
    pub return_to: String,
    /// When it stops being accepted (ms).
    pub expires_at_ms: i64,
}

/// How a provider's person was linked to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linked {
    /// A new user was made.
    Created,
    /// The user exists; their name, picture (and role) were brought up to date.
    Updated,
}

impl Store {
    /// Remembers a sign-in under way (and forgets the expired ones).
    pub async fn save_sign_in(
        &self,
        pending: &PendingSignIn,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oidc_sign_ins WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO oidc_sign_ins (state_hash, browser_hash, provider, nonce, pkce_verifier, \
             return_to, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&pending.state_hash)
        .bind(&pending.browser_hash)
        .bind(&pending.provider)
        .bind(&pending.nonce)
        .bind(&pending.pkce_verifier)
        .bind(&pending.return_to)
        .bind(pending.expires_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes (deletes and returns) the unexpired sign-in whose state hashes to `state_hash`:
    /// a state works once.
    pub async fn take_sign_in(
        &self,
        state_hash: &str,
        now_ms: i64,
    ) -> Result<Option<PendingSignIn>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM oidc_sign_ins WHERE state_hash = $1 \
             RETURNING state_hash, browser_hash, provider, nonce, pkce_verifier, return_to, \
             expires_at_ms",
        )
        .bind(state_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let pending = PendingSignIn {
            state_hash: get(&row, "state_hash")?,
            browser_hash: get(&row, "browser_hash")?,
            provider: get(&row, "provider")?,
            nonce: get(&row, "nonce")?,
            pkce_verifier: get(&row, "pkce_verifier")?,
            return_to: get(&row, "return_to")?,
            expires_at_ms: get(&row, "expires_at_ms")?,
        };
        Ok((pending.expires_at_ms > now_ms).then_some(pending))
    }

    /// The username linked to the provider's `subject`.
    pub async fn identity_user(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT username FROM external_identities WHERE issuer = $1 AND subject = $2",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|row| get(&row, "username")).transpose()?)
    }

    /// Creates `user` and links the provider's `subject` to it, together. `AlreadyExists`
    /// names `user <name>` when the username is taken and `identity` when the subject was
    /// linked meanwhile.
    pub async fn create_linked_user(
        &self,
        user: &UserRecord,
        issuer: &str,
        subject: &str,
        email: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        insert_user(&mut *tx, user).await?;
        sqlx::query(
            "INSERT INTO external_identities (issuer, subject, username, email, created_at_ms, \
             last_sign_in_ms) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(issuer)
        .bind(subject)
        .bind(&user.username)
        .bind(email)
        .bind(user.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if unique_violation(&e) {
                StoreError::AlreadyExists("identity".into())
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// Brings a returning person's name, picture, email and (when given) role up to date.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_signed_in_user(
        &self,
        username: &str,
        display_name: &str,
        picture_url: &str,
        role: Option<&str>,
        issuer: &str,
        subject: &str,
        email: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE users SET display_name = $1, picture_url = $2, role = COALESCE($3, role) \
             WHERE username = $4",
        )
        .bind(display_name)
        .bind(picture_url)
        .bind(role)
        .bind(username)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE external_identities SET email = $1, last_sign_in_ms = $2 \
             WHERE issuer = $3 AND subject = $4",
        )
        .bind(email)
        .bind(now_ms)
        .bind(issuer)
        .bind(subject)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
