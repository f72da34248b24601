//! What the e2ee tests share: the control plane's credential key and members of meeting m-1.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use videocall_e2ee::{ControlPlaneCredentials, Member, SigningKey};
use videocall_token::{E2eeCredential, TokenIssuer, TokenVerifier};

/// The control plane's signing key, and the check every member makes with its public half.
pub struct Authority {
    pub issuer: TokenIssuer,
    pub check: Arc<ControlPlaneCredentials>,
}

pub fn authority() -> &'static Authority {
    static AUTHORITY: OnceLock<Authority> = OnceLock::new();
    AUTHORITY.get_or_init(|| {
        let issuer = TokenIssuer::generate("cp-1");
        let mut verifier = TokenVerifier::new();
        verifier
            .add_key_base64("cp-1", &issuer.public_key_base64())
            .unwrap();
        let check = Arc::new(ControlPlaneCredentials::new(verifier, "m-1"));
        Authority { issuer, check }
    })
}

/// A credential for meeting `meeting` naming `key`, signed by `issuer`.
pub fn credential(
    issuer: &TokenIssuer,
    user: &str,
    meeting: &str,
    guest: bool,
    key: &[u8],
) -> Vec<u8> {
    let claims = E2eeCredential::new(user, user, meeting, guest, key, Duration::from_secs(600));
    issuer.issue_credential(&claims).unwrap().into_bytes()
}

/// A user of meeting m-1 with a new key and the control plane's credential for it.
pub fn member(user: &str) -> Member {
    let key = SigningKey::generate().unwrap();
    let credential = credential(&authority().issuer, user, "m-1", false, &key.public());
    Member::new(key, credential, authority().check.clone()).unwrap()
}
