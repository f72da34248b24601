//! What the e2ee tests share: the control plane's credential key and members of meeting m-1.

#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

use videocall_e2ee::{Member, TestAuthority};
use videocall_token::{E2eeCredential, TokenIssuer};

/// The control plane's signing key, and the check every member makes with its public half.
pub fn authority() -> &'static TestAuthority {
    static AUTHORITY: OnceLock<TestAuthority> = OnceLock::new();
    AUTHORITY.get_or_init(|| TestAuthority::new("m-1"))
}

/// A credential for meeting `meeting` naming `key`, signed by `issuer` (the control plane's,
/// or a forger's).
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
    authority().member(user).unwrap()
}
