//! Whose key is whose: every member of a meeting's group carries a credential that binds its
//! MLS signing key to a user of the meeting, and every member checks the credential of
//! everyone it meets (in a key package it adds, a commit it applies, a Welcome it joins by).
//! A credential that does not check is refused with its reason and nothing is applied.

use videocall_token::{TokenError, TokenVerifier};

use crate::E2eeError;

/// Who a member is, as its credential says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user (a guest's is the identity the control plane gave it).
    pub user: String,
    /// The name shown.
    pub name: String,
    /// Joined as a guest: the UI marks it.
    pub guest: bool,
}

/// Checks a member's credential and that it names the key the member signs with.
pub trait CredentialCheck {
    /// `credential`: what the member's MLS credential carries; `signature_key`: the key its
    /// leaf signs with.
    fn check(&self, credential: &[u8], signature_key: &[u8]) -> Result<Identity, E2eeError>;
}

/// Credentials signed by the control plane ([`videocall_token::E2eeCredential`]), checked
/// against its published verification keys for one meeting.
#[derive(Debug, Clone)]
pub struct ControlPlaneCredentials {
    verifier: TokenVerifier,
    meeting: String,
}

impl ControlPlaneCredentials {
    /// Checks credentials for `meeting` against `verifier`'s keys.
    pub fn new(verifier: TokenVerifier, meeting: &str) -> Self {
        ControlPlaneCredentials {
            verifier,
            meeting: meeting.to_owned(),
        }
    }

    /// Checks credentials for `meeting` against the control plane's published keys, as a
    /// grant carries them: `(kid, URL-safe base64 Ed25519 public key)`.
    pub fn from_keys<'k>(
        keys: impl IntoIterator<Item = (&'k str, &'k str)>,
        meeting: &str,
    ) -> Result<Self, E2eeError> {
        let mut verifier = TokenVerifier::new();
        for (kid, public_key) in keys {
            verifier.add_key_base64(kid, public_key).map_err(refused)?;
        }
        if verifier.key_count() == 0 {
            return Err(refused("the control plane published no keys"));
        }
        Ok(Self::new(verifier, meeting))
    }
}

fn refused(reason: impl std::fmt::Display) -> E2eeError {
    E2eeError::CredentialRefused {
        reason: reason.to_string(),
    }
}

impl CredentialCheck for ControlPlaneCredentials {
    fn check(&self, credential: &[u8], signature_key: &[u8]) -> Result<Identity, E2eeError> {
        let text = std::str::from_utf8(credential).map_err(refused)?;
        let claims = self
            .verifier
            .verify_credential(text, &self.meeting, signature_key)
            .map_err(|e: TokenError| refused(e))?;
        Ok(Identity {
            user: claims.sub,
            name: claims.name,
            guest: claims.guest,
        })
    }
}
