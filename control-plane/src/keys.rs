//! Token signing keys. One key signs at a time; after a rotation the old key keeps
//! verifying until the last token it signed has expired. Keys live in the database so
//! every control-plane replica signs with the same key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::RwLock;
use videocall_token::{generate_seed_base64, TokenIssuer};

use crate::store::{now_ms, SigningKeyRecord, Store, StoreError};

/// How long a loaded key set is trusted before the database is read again (another replica
/// may have rotated).
const RELOAD_AFTER: Duration = Duration::from_secs(2);
/// Clocks of relays and the control plane may differ this much.
const CLOCK_SKEW_MS: i64 = 60_000;

/// The keys loaded at one moment.
pub struct KeySet {
    /// Signs new tokens.
    pub issuer: TokenIssuer,
    /// Every key that still verifies.
    pub keys: Vec<SigningKeyRecord>,
    /// Changes whenever the set changes.
    pub version: String,
}

/// Signing keys, cached.
pub struct SigningKeys {
    store: Store,
    token_ttl: Duration,
    cached: RwLock<Option<(Instant, Arc<KeySet>)>>,
}

/// Why keys are unavailable.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key is unusable.
    #[error("signing key {kid}: {message}")]
    Corrupt {
        /// Which key.
        kid: String,
        /// Why.
        message: String,
    },
    /// No key signs (the table was emptied by hand).
    #[error("no signing key")]
    Missing,
}

impl SigningKeys {
    /// Loads keys, creating the first one when there is none.
    pub async fn open(store: Store, token_ttl: Duration) -> Result<Self, KeyError> {
        store.insert_first_signing_key(&new_key()).await?;
        let keys = SigningKeys {
            store,
            token_ttl,
            cached: RwLock::new(None),
        };
        keys.current().await?;
        Ok(keys)
    }

    /// The key set, read again from the database every couple of seconds.
    pub async fn current(&self) -> Result<Arc<KeySet>, KeyError> {
        if let Some((loaded, set)) = self.cached.read().await.as_ref() {
            if loaded.elapsed() < RELOAD_AFTER {
                return Ok(set.clone());
            }
        }
        self.reload().await
    }

    async fn reload(&self) -> Result<Arc<KeySet>, KeyError> {
        let keys = self.store.verification_keys(now_ms()).await?;
        let signing = keys
            .iter()
            .find(|k| k.valid_until_ms.is_none())
            .ok_or(KeyError::Missing)?;
        let issuer =
            TokenIssuer::from_seed_base64(&signing.kid, &signing.private_seed).map_err(|e| {
                KeyError::Corrupt {
                    kid: signing.kid.clone(),
                    message: e.to_string(),
                }
            })?;
        let version = keys
            .iter()
            .map(|k| k.kid.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let set = Arc::new(KeySet {
            issuer,
            keys,
            version,
        });
        *self.cached.write().await = Some((Instant::now(), set.clone()));
        Ok(set)
    }

    /// Starts signing with a new key; the old one verifies until its last token expires.
    pub async fn rotate(&self) -> Result<Arc<KeySet>, KeyError> {
        let ttl_ms = i64::try_from(self.token_ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let until = now_ms()
            .saturating_add(ttl_ms)
            .saturating_add(CLOCK_SKEW_MS);
        self.store.rotate_signing_key(&new_key(), until).await?;
        let set = self.reload().await?;
        tracing::info!(kid = %set.issuer.kid(), "signing key rotated");
        Ok(set)
    }
}

fn new_key() -> SigningKeyRecord {
    let seed = generate_seed_base64();
    let kid = format!("k{}-{}", now_ms(), crate::auth::random_hex(3));
    // A freshly generated seed always parses; the fallback only keeps this total.
    let public_key = TokenIssuer::from_seed_base64(&kid, &seed)
        .map(|issuer| issuer.public_key_base64())
        .unwrap_or_default();
    SigningKeyRecord {
        kid,
        private_seed: seed,
        public_key,
        created_at_ms: now_ms(),
        valid_until_ms: None,
    }
}
