//! The gRPC services. Each RPC validates its fields, authenticates and authorises the
//! caller, then calls the store; store errors map to gRPC codes here.

pub mod access;
pub mod auth;
pub mod grant;
pub mod host_log;
pub mod hosts;
pub mod meetings;
pub mod relays;

use std::sync::Arc;
use std::time::Duration;

use tonic::Status;

use crate::auth::LoginLimiter;
use crate::config::ControlPlaneConfig;
use crate::keys::SigningKeys;
pub use crate::status::store_status;
use crate::store::{now_ms, Store};

/// A waiter not heard from (CheckAdmission) for this long leaves the queue.
pub const WAITER_TIMEOUT_MS: i64 = 30_000;

/// What every service shares.
pub struct ControlPlane {
    /// Database.
    pub store: Store,
    /// Token signing keys.
    pub keys: SigningKeys,
    /// Settings.
    pub config: ControlPlaneConfig,
    /// Failed logins and wrong meeting passwords.
    pub login_limiter: LoginLimiter,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// The OpenID Connect provider people sign in with, when one is configured.
    pub oidc: Option<Arc<crate::oidc::OidcProvider>>,
}

impl ControlPlane {
    /// Shared state over `store`.
    pub async fn new(
        store: Store,
        config: ControlPlaneConfig,
        metrics: crate::metrics::Metrics,
        oidc: Option<crate::oidc::OidcProvider>,
    ) -> Result<Arc<Self>, crate::keys::KeyError> {
        let keys = SigningKeys::open(store.clone(), config.token_ttl()).await?;
        let login_limiter = LoginLimiter::new(
            config.login_max_failures,
            Duration::from_secs(config.login_window_secs.max(1)),
        );
        Ok(Arc::new(ControlPlane {
            store,
            keys,
            config,
            login_limiter,
            metrics,
            oidc: oidc.map(Arc::new),
        }))
    }

    /// Relays heard from since this time are fresh (ms).
    pub fn fresh_since_ms(&self) -> i64 {
        now_ms().saturating_sub(self.config.stale_after_ms())
    }

    /// Waiters who asked for their answer since this time are still in the queue (ms).
    pub fn waiters_seen_since_ms(&self) -> i64 {
        now_ms().saturating_sub(WAITER_TIMEOUT_MS)
    }
}

/// The public keys of `set`, as GetVerificationKeys (and a grant with an e2ee credential)
/// give them.
fn keys_to_api(set: &crate::keys::KeySet) -> videocall_control_api::v1::VerificationKeys {
    use videocall_control_api::v1::{VerificationKey, VerificationKeys};
    VerificationKeys {
        keys: set
            .keys
            .iter()
            .map(|k| VerificationKey {
                kid: k.kid.clone(),
                public_key: k.public_key.clone(),
                valid_until_ms: k.valid_until_ms.unwrap_or(0),
            })
            .collect(),
        version: set.version.clone(),
    }
}

/// The gRPC status for a key error.
pub fn key_status(error: crate::keys::KeyError) -> Status {
    match error {
        crate::keys::KeyError::Store(e) => store_status(e),
        other => {
            tracing::error!(error = %other, "signing keys unusable");
            Status::internal("signing keys are unusable; see the control-plane log")
        }
    }
}

/// The peer's IP address, for rate limits.
pub fn peer_key<T>(request: &tonic::Request<T>) -> String {
    request
        .remote_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}
