//! What a participant needs to be a member of its meeting's end-to-end encryption, from its
//! grant: its own key, the control plane's credential for it, and the keys that check
//! everyone's credentials. A leaf: the grant sources make seeds, rejoining sessions use them.

use std::sync::Arc;

use videocall_control_api::v1::JoinGrant;
use videocall_e2ee::{ControlPlaneCredentials, Member, SigningKey};

use crate::ClientError;

/// What makes a participant's member of its meeting's end-to-end encryption: its key (whose
/// public half went into the JoinMeeting request as `e2ee_signature_key`), the grant's
/// credential for it, and the check of everyone's credentials against the keys the grant names.
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

fn encryption_error(e: videocall_e2ee::E2eeError) -> ClientError {
    ClientError::Encryption(e.to_string())
}

impl MemberSeed {
    /// The seed of `grant`, for `key`.
    pub fn from_grant(key: SigningKey, grant: &JoinGrant) -> Result<Self, ClientError> {
        if grant.e2ee_credential.is_empty() {
            return Err(ClientError::Encryption(
                "the grant carries no credential (the request sent no e2ee_signature_key)".into(),
            ));
        }
        let keys = grant
            .e2ee_verification_keys
            .as_ref()
            .map(|k| k.keys.as_slice())
            .unwrap_or_default();
        let check = ControlPlaneCredentials::from_keys(
            keys.iter().map(|k| (k.kid.as_str(), k.public_key.as_str())),
            &grant.meeting_id,
        )
        .map_err(encryption_error)?;
        Ok(MemberSeed {
            key,
            credential: grant.e2ee_credential.clone().into_bytes(),
            check: Arc::new(check),
        })
    }

    /// A new member (a session's group state starts afresh).
    pub fn member(&self) -> Result<Member, ClientError> {
        Member::new(
            self.key.clone(),
            self.credential.clone(),
            self.check.clone(),
        )
        .map_err(encryption_error)
    }
}

/// The member a participant is in its meeting's end-to-end encryption: `key` with `grant`'s
/// credential (see [`MemberSeed`]).
pub fn e2ee_member(key: SigningKey, grant: &JoinGrant) -> Result<Member, ClientError> {
    MemberSeed::from_grant(key, grant)?.member()
}
