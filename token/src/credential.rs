//! End-to-end encryption credentials: the control plane's signature on "this user (or guest)
//! of this meeting holds this MLS signing key". Members check the credential of everyone added
//! to the meeting's group against the control plane's published keys, so a relay cannot slip
//! in a key of its own and a guest cannot pass for a registered user.
//!
//! A credential is a JWT of its own type ([`CREDENTIAL_TYPE`]): a relay refuses it as a join
//! token, and a join token (a bearer secret, never shown to other members) is not a credential.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{unix_now, TokenError, TokenVerifier};

/// The JWT `typ` of end-to-end encryption credentials.
pub const CREDENTIAL_TYPE: &str = "videocall-e2ee-credential+jwt";

/// The claims of an end-to-end encryption credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct E2eeCredential {
    /// The user (a guest's is the `guest-…` identity the control plane gave it).
    pub sub: String,
    /// Name shown to the others.
    pub name: String,
    /// The one meeting it holds for.
    pub meeting: String,
    /// The holder joined as a guest (a display name only).
    pub guest: bool,
    /// The holder's MLS signing key: Ed25519, 32 bytes, base64url without padding.
    pub key: String,
    /// Issued at (seconds since the Unix epoch).
    pub iat: u64,
    /// Expiry (seconds since the Unix epoch).
    pub exp: u64,
}

impl E2eeCredential {
    /// A credential for `user` in `meeting` holding `signature_key`, valid for `ttl` from now.
    pub fn new(
        user: &str,
        display_name: &str,
        meeting: &str,
        guest: bool,
        signature_key: &[u8],
        ttl: Duration,
    ) -> Self {
        let now = unix_now();
        E2eeCredential {
            sub: user.to_owned(),
            name: display_name.to_owned(),
            meeting: meeting.to_owned(),
            guest,
            key: URL_SAFE_NO_PAD.encode(signature_key),
            iat: now,
            exp: now.saturating_add(ttl.as_secs()),
        }
    }

    /// The signing key it names.
    pub fn signature_key(&self) -> Result<Vec<u8>, TokenError> {
        let key = URL_SAFE_NO_PAD
            .decode(&self.key)
            .map_err(|e| TokenError::Malformed(format!("credential key: {e}")))?;
        if key.len() != 32 {
            return Err(TokenError::Malformed(
                "credential key: an Ed25519 public key is 32 bytes".into(),
            ));
        }
        Ok(key)
    }
}

impl TokenVerifier {
    /// Verifies an end-to-end encryption credential for `meeting` and that it names
    /// `signature_key` (the key the holder signs MLS messages with).
    pub fn verify_credential(
        &self,
        credential: &str,
        meeting: &str,
        signature_key: &[u8],
    ) -> Result<E2eeCredential, TokenError> {
        let claims: E2eeCredential = self.decode(credential, Some(CREDENTIAL_TYPE))?;
        if claims.meeting != meeting {
            return Err(TokenError::WrongMeeting {
                token_meeting: claims.meeting,
                requested: meeting.to_owned(),
            });
        }
        if claims.signature_key()? != signature_key {
            return Err(TokenError::Malformed(
                "the credential names another signing key".into(),
            ));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::setup;
    use crate::{Claims, Grants, TokenIssuer};

    const KEY: [u8; 32] = [7; 32];

    fn credential(user: &str, guest: bool) -> E2eeCredential {
        E2eeCredential::new(user, "Ada", "m1", guest, &KEY, Duration::from_secs(60))
    }

    #[test]
    fn a_credential_verifies_for_its_meeting_and_key() {
        let (issuer, verifier) = setup();
        let token = issuer.issue_credential(&credential("ada", false)).unwrap();
        let got = verifier.verify_credential(&token, "m1", &KEY).unwrap();
        assert_eq!((got.sub.as_str(), got.guest), ("ada", false));
        let guest = issuer
            .issue_credential(&credential("guest-1a2b", true))
            .unwrap();
        assert!(
            verifier
                .verify_credential(&guest, "m1", &KEY)
                .unwrap()
                .guest
        );
    }

    #[test]
    fn a_credential_for_another_meeting_key_or_name_is_refused() {
        let (issuer, verifier) = setup();
        let token = issuer.issue_credential(&credential("ada", false)).unwrap();
        assert!(matches!(
            verifier.verify_credential(&token, "m2", &KEY),
            Err(TokenError::WrongMeeting { .. })
        ));
        assert!(matches!(
            verifier.verify_credential(&token, "m1", &[8; 32]),
            Err(TokenError::Malformed(_))
        ));
        // A guest passing for a registered user: only a forger signs that.
        let forged = TokenIssuer::generate("k1")
            .issue_credential(&credential("ada", true))
            .unwrap();
        assert_eq!(
            verifier.verify_credential(&forged, "m1", &KEY),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_credential_is_not_a_join_token_nor_the_reverse() {
        let (issuer, verifier) = setup();
        let credential = issuer.issue_credential(&credential("ada", false)).unwrap();
        assert!(matches!(
            verifier.verify(&credential, "m1"),
            Err(TokenError::Malformed(_))
        ));
        let join = issuer
            .issue(&Claims::new(
                "ada",
                "Ada",
                "m1",
                Grants::default(),
                Duration::from_secs(60),
            ))
            .unwrap();
        assert!(matches!(
            verifier.verify_credential(&join, "m1", &KEY),
            Err(TokenError::Malformed(_))
        ));
        assert!(verifier.verify(&join, "m1").is_ok());
    }
}
