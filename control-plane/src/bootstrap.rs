//! First-start provisioning: an initial admin and pre-shared API keys (for an operator or
//! relays deployed with their keys in a Secret).

use crate::auth::{hash_password, sha256_hex, CallerRole};
use crate::store::{now_ms, ApiKeyRecord, Store, StoreError, UserRecord};
use crate::validate;

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A `--bootstrap-api-key` or admin setting is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates `username` as admin when the database has no user yet; returns whether it did.
pub async fn admin_if_no_users(
    store: &Store,
    username: &str,
    password: &str,
) -> Result<bool, BootstrapError> {
    validate::username("bootstrap admin user", username)
        .map_err(|e| BootstrapError::Invalid(e.message().to_owned()))?;
    validate::password("bootstrap admin password", password)
        .map_err(|e| BootstrapError::Invalid(e.message().to_owned()))?;
    if store.user_count().await? > 0 {
        return Ok(false);
    }
    let hash = hash_password(password.to_owned())
        .await
        .map_err(|e| BootstrapError::Invalid(e.message().to_owned()))?;
    let created = store
        .create_user(&UserRecord {
            username: username.to_owned(),
            display_name: username.to_owned(),
            password_hash: hash,
            role: CallerRole::Admin.as_str().into(),
            created_at_ms: now_ms(),
            picture_url: String::new(),
        })
        .await;
    match created {
        Ok(()) => Ok(true),
        // Another replica won the race.
        Err(StoreError::AlreadyExists(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Provisions `name:role:key-id:secret`; an existing key id is left alone.
pub async fn api_key(store: &Store, spec: &str) -> Result<(), BootstrapError> {
    let parts: Vec<&str> = spec.trim().splitn(4, ':').collect();
    let [name, role, key_id, secret] = parts[..] else {
        return Err(BootstrapError::Invalid(
            "bootstrap API key: expected name:role:key-id:secret".into(),
        ));
    };
    let role = match role {
        "admin" => CallerRole::Admin,
        "user" => CallerRole::User,
        "relay" => CallerRole::Relay,
        other => {
            return Err(BootstrapError::Invalid(format!(
                "bootstrap API key {key_id}: role {other:?} is not admin, user or relay"
            )))
        }
    };
    for (what, value) in [("name", name), ("key id", key_id)] {
        validate::lookup_id(what, value)
            .map_err(|e| BootstrapError::Invalid(e.message().to_owned()))?;
    }
    if secret.len() < 16 {
        return Err(BootstrapError::Invalid(format!(
            "bootstrap API key {key_id}: the secret must be at least 16 characters"
        )));
    }
    if store.api_key(key_id).await?.is_some() {
        return Ok(());
    }
    let record = ApiKeyRecord {
        key_id: key_id.to_owned(),
        name: name.to_owned(),
        role: role.as_str().into(),
        secret_hash: sha256_hex(secret),
    };
    match store.create_api_key(&record, now_ms()).await {
        Ok(()) | Err(StoreError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
