//! What a participant needs to be a member of its meeting's end-to-end encryption, from its
//! join grant: its own key, the control plane's credential for it, and the keys that check
//! everyone's credentials. Both clients make one per grant and a fresh [`Member`] from it per
//! session (a session's group state starts afresh).

use std::sync::Arc;

use crate::{ControlPlaneCredentials, E2eeError, Member, SigningKey};

/// A participant's key (whose public half went into its JoinMeeting request), the grant's
/// credential for it, and the check of everyone's credentials against the keys the grant
/// names.
#[derive(Clone)]
pub struct MemberSeed {
    key: SigningKey,
    credential: Vec<u8>,
    check: Arc<ControlPlaneCredentials>,
}

impl std::fmt::Debug for MemberSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberSeed").finish_non_exhaustive()
    }
}

impl MemberSeed {
    /// The seed of a grant for `meeting` that carries `credential` (empty: the request sent no
    /// key) and the control plane's verification keys `(kid, URL-safe base64 public key)`.
    pub fn new<'k>(
        key: SigningKey,
        credential: &str,
        keys: impl IntoIterator<Item = (&'k str, &'k str)>,
        meeting: &str,
    ) -> Result<Self, E2eeError> {
        if credential.is_empty() {
            return Err(E2eeError::CredentialRefused {
                reason: "the grant carries no credential (the request sent no key)".into(),
            });
        }
        let check = ControlPlaneCredentials::from_keys(keys, meeting)?;
        Ok(MemberSeed {
            key,
            credential: credential.as_bytes().to_vec(),
            check: Arc::new(check),
        })
    }

    /// A new member, its own credential checked.
    pub fn member(&self) -> Result<Member, E2eeError> {
        Member::new(
            self.key.clone(),
            self.credential.clone(),
            self.check.clone(),
        )
    }
}
