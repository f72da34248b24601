//! End-to-end encryption of a meeting, without I/O: the meeting is an MLS group (RFC 9420) and
//! every encoded frame and chat message is an SFrame (RFC 9605) ciphertext under a key derived
//! from the group's current epoch. Relays carry the handshake messages in one order per meeting
//! (they are the delivery service) and forward frames they cannot read.
//!
//! - [`Member`]: one participant's side: its identity, the group as it knows it, the commits it
//!   proposes, and what handshake messages from the delivery service do to it.
//! - [`CredentialCheck`]: whose key is whose; [`ControlPlaneCredentials`] checks the
//!   credentials the control plane signs (a user or guest of the meeting holds this key).
//! - [`MemberSeed`]: what a join grant makes a participant's member of (key, credential,
//!   the keys that check everyone's), a fresh [`Member`] per session.
//! - [`GroupSession`]: a participant's encryption in a meeting, driven by what the relay says
//!   and the time: offers, foundings, who commits, what delivered handshakes do.
//! - [`ClientEncryption`]: a client's session with the relay's messages in and the sealed and
//!   opened media and chat out; the native client and the browser both run it.
//! - [`seal_media`], [`open_media`], [`seal_chat`], [`open_chat`]: the wire's frames and chat
//!   messages sealed, with what the relay routes by authenticated.
//! - `TestAuthority` (feature `testing`): members with real credentials for tests and benches.
//! - [`FrameKeys`]: the SFrame keys of the epochs a member holds: it seals its own frames and
//!   opens everyone else's, refusing tampered, replayed and unknown-epoch frames.
//! - [`SealJob`], [`OpenJob`]: a frame prepared for an AES-GCM outside (the browser's
//!   WebCrypto, off the page's main thread), the same SFrame byte for byte.
//!
//! Who may read what: a frame sealed in an epoch opens only for members of that epoch (and, for
//! frames still in flight when a commit lands, of the epoch before). A member removed by a
//! commit never learns the next epoch's secret; a member added by one never learns the
//! previous epoch's.

mod client;
mod credentials;
mod error;
mod frame_jobs;
mod frames;
mod media;
mod member;
mod seed;
mod session;
#[cfg(feature = "testing")]
mod testing;

pub use client::{ClientEncryption, EncryptionCounters};
pub use credentials::{ControlPlaneCredentials, CredentialCheck, Identity};
pub use error::E2eeError;
pub use frame_jobs::{AesGcmInput, OpenJob, SealJob, KEY_LEN, NONCE_LEN, TAG_LEN};
pub use frames::{FrameKeys, Opened, KEPT_EPOCHS};
pub use media::{
    finish_open_media, finish_seal_media, media_metadata, open_chat, open_media,
    prepare_open_media, prepare_seal_media, seal_chat, seal_media, SEALED_TOPIC,
};
pub use member::{Handled, Member, Proposed, SigningKey, MAX_MEMBERS};
pub use seed::MemberSeed;
pub use session::{
    GroupEvent, GroupMember, GroupSession, Phase, SessionCounters, FOUND_AFTER_MS,
    OFFER_INTERVAL_MS,
};
#[cfg(feature = "testing")]
pub use testing::TestAuthority;
