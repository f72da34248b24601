//! A participant's [`MemberSeed`] from its join grant. A leaf: the grant sources make seeds,
//! rejoining sessions make members of them.

use videocall_control_api::v1::JoinGrant;
use videocall_e2ee::{Member, SigningKey};

pub use videocall_e2ee::MemberSeed;

use crate::ClientError;

/// The seed of `grant` for `key` (whose public half went into the JoinMeeting request as
/// `e2ee_signature_key`).
pub fn seed_from_grant(key: SigningKey, grant: &JoinGrant) -> Result<MemberSeed, ClientError> {
    let keys = grant
        .e2ee_verification_keys
        .as_ref()
        .map(|k| k.keys.as_slice())
        .unwrap_or_default();
    MemberSeed::new(
        key,
        &grant.e2ee_credential,
        keys.iter().map(|k| (k.kid.as_str(), k.public_key.as_str())),
        &grant.meeting_id,
    )
    .map_err(ClientError::from)
}

/// The member a participant is in its meeting's end-to-end encryption: `key` with `grant`'s
/// credential (see [`MemberSeed`]).
pub fn e2ee_member(key: SigningKey, grant: &JoinGrant) -> Result<Member, ClientError> {
    Ok(seed_from_grant(key, grant)?.member()?)
}
