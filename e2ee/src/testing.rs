//! Members with real credentials for tests and benchmarks (feature `testing`): a control
//! plane's credential key made on the spot, the check every member makes with its public half,
//! and members of one meeting signed by it, as the control plane's grants would make them.

use std::sync::Arc;
use std::time::Duration;

use videocall_token::{E2eeCredential, TokenIssuer, TokenVerifier};

use crate::{ControlPlaneCredentials, E2eeError, Member, SigningKey};

/// How long a test credential holds.
const VALID_FOR: Duration = Duration::from_secs(3600);

/// A control plane's credential key for one meeting.
pub struct TestAuthority {
    issuer: TokenIssuer,
    check: Arc<ControlPlaneCredentials>,
    meeting: String,
}

impl TestAuthority {
    /// A fresh key for `meeting`.
    pub fn new(meeting: &str) -> Self {
        let issuer = TokenIssuer::generate("cp-test");
        let mut verifier = TokenVerifier::new();
        // The key was just made here: its public half always reads.
        let _ = verifier.add_key_base64("cp-test", &issuer.public_key_base64());
        TestAuthority {
            check: Arc::new(ControlPlaneCredentials::new(verifier, meeting)),
            issuer,
            meeting: meeting.to_owned(),
        }
    }

    /// The key that signs credentials (to sign one for another meeting, say).
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// The check members make of each other's credentials.
    pub fn check(&self) -> Arc<ControlPlaneCredentials> {
        self.check.clone()
    }

    /// A credential naming `key` as `user` (a guest or not) of `meeting`.
    pub fn credential(
        &self,
        user: &str,
        meeting: &str,
        guest: bool,
        key: &[u8],
    ) -> Result<Vec<u8>, E2eeError> {
        let claims = E2eeCredential::new(user, user, meeting, guest, key, VALID_FOR);
        self.issuer
            .issue_credential(&claims)
            .map(String::into_bytes)
            .map_err(|e| E2eeError::refused("test credential", e))
    }

    /// A registered user `user` of the meeting, with a fresh key and a credential for it.
    pub fn member(&self, user: &str) -> Result<Member, E2eeError> {
        let key = SigningKey::generate()?;
        let credential = self.credential(user, &self.meeting, false, &key.public())?;
        Member::new(key, credential, self.check.clone())
    }
}
