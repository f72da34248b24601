//! What can go wrong in a session without I/O.

use videocall_e2ee::E2eeError;

/// Why a session refused to do something.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// End-to-end encryption was started on a session that already encrypts.
    #[error("end-to-end encryption is already on")]
    AlreadyEncrypted,
    /// End-to-end encryption refused (not in the group yet: [`E2eeError::NoGroup`]).
    #[error(transparent)]
    Encryption(#[from] E2eeError),
}
