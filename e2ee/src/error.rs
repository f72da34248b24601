//! What end-to-end encryption refuses, and why.

/// A handshake message, key package, welcome or frame that was refused, or an operation that
/// cannot be done in the member's state.
#[derive(Debug, thiserror::Error)]
pub enum E2eeError {
    /// The member is not in a group yet (nothing to seal with, nothing to commit to).
    #[error("not a member of a group yet")]
    NoGroup,
    /// The member is already in a group.
    #[error("already a member of a group")]
    AlreadyInGroup,
    /// Bytes that do not decode as what they were given as.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was expected (key package, welcome, handshake, frame).
        what: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// Well-formed, and refused: a bad signature, another group's message, a commit that does
    /// not apply to this epoch, a welcome for someone else.
    #[error("refused {what}: {detail}")]
    Refused {
        /// What was refused.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// A handshake message of an epoch the group has left (a replay, or one that lost to
    /// another commit of its epoch).
    #[error("handshake message of epoch {message}, the group is at epoch {group}")]
    StaleEpoch {
        /// The message's epoch.
        message: u64,
        /// The group's.
        group: u64,
    },
    /// A frame under a key this member does not hold: an epoch it was not (or is no longer) in.
    #[error("no key for the frame (key id {0})")]
    UnknownKey(u64),
    /// A frame whose authentication tag does not verify: tampered with, or not SFrame.
    #[error("the frame does not authenticate")]
    Tampered,
    /// A frame seen before.
    #[error("the frame was seen before (replayed)")]
    Replayed,
    /// A member's credential does not check (see [`crate::CredentialCheck`]).
    #[error("credential refused: {reason}")]
    CredentialRefused {
        /// Why.
        reason: String,
    },
    /// No member of that name.
    #[error("no member named {0:?}")]
    UnknownMember(String),
    /// More members than SFrame key ids have room for.
    #[error("a group holds at most {max} members")]
    TooManyMembers {
        /// The limit.
        max: usize,
    },
    /// The crypto provider failed (randomness, key derivation, storage).
    #[error("crypto: {0}")]
    Crypto(String),
}

impl E2eeError {
    pub(crate) fn malformed(what: &'static str, detail: impl std::fmt::Display) -> Self {
        E2eeError::Malformed {
            what,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn refused(what: &'static str, detail: impl std::fmt::Display) -> Self {
        E2eeError::Refused {
            what,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn crypto(detail: impl std::fmt::Display) -> Self {
        E2eeError::Crypto(detail.to_string())
    }
}
