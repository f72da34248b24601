//! Who is calling: session tokens and API keys from the `authorization` metadata, password
//! hashing (argon2id), and the failed-login limiter.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use tonic::Status;
use videocall_control_api::v1::Role;

use crate::store::{now_ms, Store, StoreError};

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerRole {
    /// A person.
    User,
    /// An administrator.
    Admin,
    /// A media relay.
    Relay,
}

impl CallerRole {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            CallerRole::User => "user",
            CallerRole::Admin => "admin",
            CallerRole::Relay => "relay",
        }
    }

    /// From the stored form.
    pub fn parse(value: &str) -> CallerRole {
        match value {
            "admin" => CallerRole::Admin,
            "relay" => CallerRole::Relay,
            _ => CallerRole::User,
        }
    }

    /// From the API enum.
    pub fn from_api(role: Role) -> Option<CallerRole> {
        match role {
            Role::User => Some(CallerRole::User),
            Role::Admin => Some(CallerRole::Admin),
            Role::Relay => Some(CallerRole::Relay),
            Role::Unspecified => None,
        }
    }

    /// To the API enum.
    pub fn to_api(self) -> Role {
        match self {
            CallerRole::User => Role::User,
            CallerRole::Admin => Role::Admin,
            CallerRole::Relay => Role::Relay,
        }
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A login session (the token's hash).
    Session(String),
    /// An API key (its id).
    ApiKey(String),
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Username, or the API key's name.
    pub name: String,
    /// Role.
    pub role: CallerRole,
    /// How.
    pub via: Via,
}

impl Principal {
    /// An administrator.
    pub fn is_admin(&self) -> bool {
        self.role == CallerRole::Admin
    }

    /// A person or admin acting as a user (relays may not create or join meetings).
    pub fn is_person(&self) -> bool {
        matches!(self.role, CallerRole::User | CallerRole::Admin)
    }
}

/// The password hash of a user who signs in through a provider: no password matches it.
pub const NO_PASSWORD: &str = "!signs-in-through-a-provider";

/// Opens a login session for `username` lasting `ttl_secs`: the token (shown once; only its
/// hash is stored) and when it expires (ms).
pub async fn open_session(
    store: &Store,
    username: &str,
    ttl_secs: u64,
) -> Result<(String, i64), StoreError> {
    let token = format!("vcs_{}", random_token(32));
    let now = now_ms();
    let ttl_ms = i64::try_from(ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
    let expires_at_ms = now.saturating_add(ttl_ms);
    store
        .create_session(&sha256_hex(&token), username, now, expires_at_ms)
        .await?;
    Ok((token, expires_at_ms))
}

/// Reads the caller from `authorization`; `None` when there is none.
pub async fn authenticate(
    store: &Store,
    metadata: &MetadataMap,
) -> Result<Option<Principal>, Status> {
    let Some(value) = metadata.get("authorization") else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization: not valid text"))?;
    let malformed = || {
        Status::unauthenticated(
            "authorization: expected `Bearer <session token>` or `ApiKey <id>:<secret>`",
        )
    };
    let (scheme, credential) = value.trim().split_once(' ').ok_or_else(malformed)?;
    match scheme {
        "Bearer" => {
            let hash = sha256_hex(credential.trim());
            let session = store
                .session(&hash, now_ms())
                .await
                .map_err(crate::status::store_status)?
                .ok_or_else(|| {
                    Status::unauthenticated("session token is unknown, expired or revoked")
                })?;
            Ok(Some(Principal {
                name: session.username,
                role: CallerRole::parse(&session.role),
                via: Via::Session(hash),
            }))
        }
        "ApiKey" => {
            let (id, secret) = credential.trim().split_once(':').ok_or_else(malformed)?;
            if id.is_empty() || id.len() > 128 {
                return Err(malformed());
            }
            let key = store
                .api_key(id)
                .await
                .map_err(crate::status::store_status)?
                .ok_or_else(|| Status::unauthenticated("API key is unknown or revoked"))?;
            if !constant_time_eq(key.secret_hash.as_bytes(), sha256_hex(secret).as_bytes()) {
                return Err(Status::unauthenticated("API key secret does not match"));
            }
            Ok(Some(Principal {
                name: key.name,
                role: CallerRole::parse(&key.role),
                via: Via::ApiKey(key.key_id),
            }))
        }
        _ => Err(malformed()),
    }
}

/// The caller, or UNAUTHENTICATED.
pub fn require(principal: Option<Principal>) -> Result<Principal, Status> {
    principal.ok_or_else(|| {
        Status::unauthenticated("sign in first: this call needs an `authorization` header")
    })
}

/// The caller if an admin, else PERMISSION_DENIED.
pub fn require_admin(principal: Option<Principal>) -> Result<Principal, Status> {
    let principal = require(principal)?;
    if principal.is_admin() {
        Ok(principal)
    } else {
        Err(Status::permission_denied("only an admin may do this"))
    }
}

/// Hex SHA-256: how session tokens and API key secrets are stored.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// `bytes` random bytes, base64url.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// `bytes` random bytes, hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Argon2id hash (PHC string). CPU-heavy: runs on the blocking pool.
pub async fn hash_password(password: String) -> Result<String, Status> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| Status::internal(format!("hashing password: {e}")))
    })
    .await
    .map_err(|e| Status::internal(format!("hashing password: {e}")))?
}

/// Whether `password` matches `hash`. With `None` a dummy hash is checked, so unknown
/// users take as long as known ones.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        // No password (unknown user, or one who signs in through a provider): the same work
        // against a dummy hash, so the answer's timing does not tell which.
        let (hash, real) = match hash.filter(|hash| hash.starts_with("$argon2")) {
            Some(hash) => (hash, true),
            None => (dummy_hash().to_owned(), false),
        };
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        matches && real
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"not a real password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Counts failed logins per key (username, peer address) in fixed windows.
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    /// At most `max_failures` failures per key per `window`.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginLimiter {
            max_failures: max_failures.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` (a username) may try again now.
    pub fn allowed(&self, key: &str) -> bool {
        self.allowed_with(key, self.max_failures)
    }

    /// Whether `key` (a peer address, shared by many people behind one NAT) may try again.
    pub fn allowed_peer(&self, key: &str) -> bool {
        self.allowed_with(key, self.max_failures.saturating_mul(4))
    }

    fn allowed_with(&self, key: &str, max: u32) -> bool {
        let Ok(map) = self.failures.lock() else {
            return true;
        };
        match map.get(key) {
            Some((count, since)) => since.elapsed() >= self.window || *count < max,
            None => true,
        }
    }

    /// Records a failure of `key`.
    pub fn failed(&self, key: &str) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() > 100_000 {
            let window = self.window;
            map.retain(|_, (_, since)| since.elapsed() < window);
        }
        let entry = map.entry(key.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Forgets `key`'s failures (after a success).
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_blocks_after_max_failures_and_forgets_after_window() {
        let limiter = LoginLimiter::new(3, Duration::from_millis(50));
        for _ in 0..3 {
            assert!(limiter.allowed("alice"));
            limiter.failed("alice");
        }
        assert!(!limiter.allowed("alice"));
        assert!(limiter.allowed("bob"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(limiter.allowed("alice"));
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(hash.clone())).await);
        assert!(!verify_password("wrong horse".into(), Some(hash)).await);
        assert!(!verify_password("x".into(), None).await);
        assert!(!verify_password("not a real password".into(), None).await);
        assert!(!verify_password(String::new(), Some(NO_PASSWORD.into())).await);
    }
}
