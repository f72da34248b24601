//! SFrame keys from MLS epochs (RFC 9605 section 5.2): every member of an epoch shares the
//! epoch's base key, exported from the MLS key schedule; each sender's key id carries its leaf
//! index and the low bits of the epoch, and the key id goes into the key derivation, so every
//! sender has keys of its own and nobody outside the epoch has any.
//!
//! A member keeps the base keys of its last [`KEPT_EPOCHS`] epochs, so frames sealed just
//! before a commit landed still open; it seals only under the newest.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use sframe::frame::validation::{
    FrameValidation, ReplayAttackProtectionStore, Tolerance, UnvalidatedFrame,
};
use sframe::frame::{EncryptedFrameView, FrameCounter, MediaFrameView, MonotonicCounter};
use sframe::header::{KeyId, SframeHeader};
use sframe::key::{DecryptionKey, EncryptionKey};
use sframe::mls::{MlsKeyId, MlsKeyIdBitRange};
use sframe::{error::SframeError, CipherSuite};

use crate::frame_jobs::{FrameSecret, OpenJob, SealJob};
use crate::E2eeError;

/// The MLS exporter label of SFrame's base key (RFC 9605 section 5.2).
pub(crate) const BASE_KEY_LABEL: &str = "SFrame 1.0 Base Key";
/// AES-128-GCM with a 128-bit tag, keys expanded with HKDF-SHA256.
pub(crate) const SUITE: CipherSuite = CipherSuite::AesGcm128Sha256;
/// Epochs whose base keys a member keeps: the current one and the one before it.
pub const KEPT_EPOCHS: usize = 2;
/// Low bits of the epoch in a key id: enough that kept epochs never share them.
const EPOCH_BITS: u8 = 8;
/// Bits of the sender's leaf index in a key id.
pub(crate) const INDEX_BITS: u8 = 10;
/// How far behind the newest frame of a sender a frame may arrive and still open.
const REPLAY_WINDOW: usize = 256;

/// A frame that opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The sender's leaf index in the epoch it sealed under.
    pub sender: u32,
    /// That epoch.
    pub epoch: u64,
    /// The plaintext.
    pub payload: Vec<u8>,
}

struct Epoch {
    number: u64,
    base_key: Vec<u8>,
}

struct Sending {
    key: EncryptionKey,
    secret: FrameSecret,
    counter: MonotonicCounter,
}

/// One member's SFrame keys: its sending key of the newest epoch and the receiving keys of the
/// kept epochs, with a replay window per sender. Frames seal and open here (the `sframe`
/// crate's AES-GCM) or, prepared as jobs, in a cipher outside ([`Self::prepare_seal`],
/// [`Self::prepare_open`]); both share the counter and the replay window.
pub struct FrameKeys {
    epochs: VecDeque<Epoch>,
    sending: Option<Sending>,
    receiving: HashMap<KeyId, DecryptionKey>,
    /// The receiving keys' key and salt, for jobs.
    secrets: HashMap<KeyId, FrameSecret>,
    replay: ReplayAttackProtectionStore,
}

impl Default for FrameKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FrameKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameKeys")
            .field(
                "epochs",
                &self.epochs.iter().map(|e| e.number).collect::<Vec<_>>(),
            )
            .field("receiving", &self.receiving.len())
            .finish()
    }
}

fn bit_range() -> MlsKeyIdBitRange {
    MlsKeyIdBitRange::new(EPOCH_BITS, INDEX_BITS)
}

/// The low bits of an epoch that a key id carries.
fn epoch_lsb(epoch: u64) -> u64 {
    epoch & ((1 << EPOCH_BITS) - 1)
}

fn key_id(epoch: u64, sender: u32) -> Result<KeyId, E2eeError> {
    MlsKeyId::try_new(0u64, epoch, sender, bit_range())
        .map(KeyId::from)
        .map_err(|_| E2eeError::TooManyMembers {
            max: 1 << INDEX_BITS,
        })
}

/// The kept epoch of key id `kid`, and the sender's leaf index in it.
fn sender_of(epochs: &VecDeque<Epoch>, kid: KeyId) -> Result<(&Epoch, u32), E2eeError> {
    let mls = MlsKeyId::from_key_id(kid, bit_range());
    if mls.context_id() != 0 {
        return Err(E2eeError::UnknownKey(kid));
    }
    let lsb = mls.epoch_lsb();
    let epoch = epochs
        .iter()
        .rev()
        .find(|e| epoch_lsb(e.number) == lsb)
        .ok_or(E2eeError::UnknownKey(kid))?;
    // The index field is INDEX_BITS wide.
    Ok((epoch, mls.member_index() as u32))
}

impl FrameKeys {
    /// No keys yet: nothing seals or opens until the first epoch.
    pub fn new() -> Self {
        FrameKeys {
            epochs: VecDeque::new(),
            sending: None,
            receiving: HashMap::new(),
            secrets: HashMap::new(),
            replay: ReplayAttackProtectionStore::new(Tolerance::new(REPLAY_WINDOW)),
        }
    }

    /// Length of the base key to export from an epoch.
    pub fn base_key_len() -> usize {
        SUITE.key_len()
    }

    /// The newest epoch held.
    pub fn epoch(&self) -> Option<u64> {
        self.epochs.back().map(|e| e.number)
    }

    /// Enters `epoch`, where this member is leaf `own_index`, with the epoch's exported base
    /// key; forgets epochs beyond [`KEPT_EPOCHS`].
    pub fn enter_epoch(
        &mut self,
        epoch: u64,
        own_index: u32,
        base_key: Vec<u8>,
    ) -> Result<(), E2eeError> {
        let kid = key_id(epoch, own_index)?;
        let key = EncryptionKey::derive_from(SUITE, kid, &base_key).map_err(E2eeError::crypto)?;
        self.sending = Some(Sending {
            key,
            secret: FrameSecret::derive(SUITE, &base_key, kid)?,
            counter: MonotonicCounter::default(),
        });
        self.epochs.push_back(Epoch {
            number: epoch,
            base_key,
        });
        while self.epochs.len() > KEPT_EPOCHS {
            self.epochs.pop_front();
        }
        self.forget_beyond();
        Ok(())
    }

    /// Keeps only the newest epoch (once frames of the one before can no longer be in flight).
    pub fn forget_previous(&mut self) {
        while self.epochs.len() > 1 {
            self.epochs.pop_front();
        }
        self.forget_beyond();
    }

    /// Forgets every key: the member left or was removed.
    pub fn forget_all(&mut self) {
        self.epochs.clear();
        self.sending = None;
        self.forget_beyond();
    }

    fn forget_beyond(&mut self) {
        let range = bit_range();
        let kept: Vec<u64> = self.epochs.iter().map(|e| epoch_lsb(e.number)).collect();
        let held = |kid: KeyId| kept.contains(&MlsKeyId::from_key_id(kid, range).epoch_lsb());
        self.receiving.retain(|kid, _| held(*kid));
        self.secrets.retain(|kid, _| held(*kid));
        self.replay.retain(held);
    }

    /// Seals `payload` under this member's key of the newest epoch. `metadata` (what the relay
    /// must read: track, kind, keyframe, sequence) is authenticated, not encrypted, and is not
    /// part of the result: the receiver passes the same metadata to [`FrameKeys::open`].
    pub fn seal(&mut self, metadata: &[u8], payload: &[u8]) -> Result<Vec<u8>, E2eeError> {
        let sending = self.sending.as_mut().ok_or(E2eeError::NoGroup)?;
        let frame = MediaFrameView::try_with_meta_data(&mut sending.counter, payload, metadata)
            .map_err(E2eeError::crypto)?;
        let sealed = frame.encrypt(&sending.key).map_err(E2eeError::crypto)?;
        Ok(sealed.sframe_cipher_text().to_vec())
    }

    /// Opens a frame sealed by a member of a kept epoch, with the metadata it was sealed with.
    pub fn open(&mut self, metadata: &[u8], frame: &[u8]) -> Result<Opened, E2eeError> {
        let view = EncryptedFrameView::try_with_meta_data(&frame, &metadata)
            .map_err(|e| E2eeError::malformed("frame", e))?;
        let kid = view.header().key_id();
        let (epoch, sender) = sender_of(&self.epochs, kid)?;
        let number = epoch.number;
        if let Entry::Vacant(slot) = self.receiving.entry(kid) {
            slot.insert(
                DecryptionKey::derive_from(SUITE, kid, &epoch.base_key)
                    .map_err(E2eeError::crypto)?,
            );
        }
        let opened = view
            .validated_decrypt(&self.receiving, &mut self.replay)
            .map_err(|e| match e {
                SframeError::FrameValidationFailed(_) => E2eeError::Replayed,
                SframeError::DecryptionFailure => E2eeError::Tampered,
                SframeError::MissingDecryptionKey { key_id, .. } => E2eeError::UnknownKey(key_id),
                other => E2eeError::malformed("frame", other),
            })?;
        Ok(Opened {
            sender,
            epoch: number,
            payload: opened.payload().to_vec(),
        })
    }
    /// The next frame to seal under this member's key of the newest epoch, for a cipher
    /// outside: what [`Self::seal`] does, the AES-GCM step left to the caller.
    pub fn prepare_seal(&mut self, metadata: &[u8]) -> Result<SealJob, E2eeError> {
        let sending = self.sending.as_mut().ok_or(E2eeError::NoGroup)?;
        let counter = sending.counter.try_next().map_err(E2eeError::crypto)?;
        Ok(SealJob::new(
            &sending.secret,
            sending.key.key_id(),
            counter,
            metadata,
        ))
    }

    /// A received frame to open in a cipher outside: what [`Self::open`] checks before the
    /// AES-GCM step (a kept epoch's key id, not seen before). The cipher's answer goes to
    /// [`Self::finish_open`].
    pub fn prepare_open(&mut self, metadata: &[u8], frame: &[u8]) -> Result<OpenJob, E2eeError> {
        let header =
            SframeHeader::deserialize(frame).map_err(|e| E2eeError::malformed("frame", e))?;
        let kid = header.key_id();
        let (epoch, sender) = sender_of(&self.epochs, kid)?;
        let number = epoch.number;
        let secret = match self.secrets.entry(kid) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => slot.insert(FrameSecret::derive(SUITE, &epoch.base_key, kid)?),
        };
        let job = OpenJob::new(secret, &header, metadata, frame, (sender, number))?;
        self.replay
            .screen(UnvalidatedFrame::new(&header, metadata))
            .map_err(|_| E2eeError::Replayed)?;
        Ok(job)
    }

    /// What the cipher made of `job`: its plaintext, or `None` when the frame did not
    /// authenticate. A frame opens once (a copy opened meanwhile makes this one a replay) and
    /// only while its epoch is still kept.
    pub fn finish_open(
        &mut self,
        job: OpenJob,
        plaintext: Option<Vec<u8>>,
    ) -> Result<Opened, E2eeError> {
        let payload = plaintext.ok_or(E2eeError::Tampered)?;
        sender_of(&self.epochs, job.kid)?;
        let header = SframeHeader::new(job.kid, job.counter);
        let token = self
            .replay
            .screen(UnvalidatedFrame::new(&header, &[]))
            .map_err(|_| E2eeError::Replayed)?;
        self.replay.record(token);
        Ok(Opened {
            sender: job.sender,
            epoch: job.epoch,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(epoch: u64, index: u32, base: u8) -> FrameKeys {
        let mut keys = FrameKeys::new();
        keys.enter_epoch(epoch, index, vec![base; FrameKeys::base_key_len()])
            .unwrap();
        keys
    }

    #[test]
    fn a_frame_opens_for_a_member_of_its_epoch_with_its_metadata() {
        let (mut alice, mut bob) = (keys(3, 0, 7), keys(3, 1, 7));
        let sealed = alice.seal(b"track 1", b"hello").unwrap();
        assert!(
            !sealed.windows(5).any(|w| w == b"hello"),
            "plaintext in clear"
        );
        let opened = bob.open(b"track 1", &sealed).unwrap();
        assert_eq!((opened.sender, opened.epoch), (0, 3));
        assert_eq!(opened.payload, b"hello");
        assert!(matches!(
            bob.open(b"track 2", &alice.seal(b"track 1", b"x").unwrap()),
            Err(E2eeError::Tampered)
        ));
    }

    #[test]
    fn tampered_replayed_and_foreign_frames_are_refused() {
        let (mut alice, mut bob) = (keys(3, 0, 7), keys(3, 1, 7));
        let sealed = alice.seal(b"", b"hello").unwrap();
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(bob.open(b"", &flipped), Err(E2eeError::Tampered)));
        bob.open(b"", &sealed).unwrap();
        assert!(matches!(bob.open(b"", &sealed), Err(E2eeError::Replayed)));
        // Another group's key (same epoch and index, another base key).
        // (Its counter 1: bob has seen counter 0 of this key id, so that one is a replay.)
        let mut stranger = keys(3, 0, 9);
        assert!(matches!(
            bob.open(b"", &stranger.seal(b"", b"hello").unwrap()),
            Err(E2eeError::Replayed)
        ));
        let foreign = stranger.seal(b"", b"hello").unwrap();
        assert!(matches!(bob.open(b"", &foreign), Err(E2eeError::Tampered)));
        // An epoch bob never held.
        let mut later = keys(4, 0, 7);
        assert!(matches!(
            bob.open(b"", &later.seal(b"", b"x").unwrap()),
            Err(E2eeError::UnknownKey(_))
        ));
        assert!(matches!(
            bob.open(b"", &[]),
            Err(E2eeError::Malformed { .. })
        ));
        assert!(matches!(
            bob.open(b"", &[0xff; 3]),
            Err(E2eeError::Malformed { .. })
        ));
    }

    #[test]
    fn the_previous_epoch_opens_until_forgotten_and_older_ones_never() {
        let mut alice = keys(1, 0, 1);
        let mut bob = keys(1, 1, 1);
        let in_flight = alice.seal(b"", b"one").unwrap();
        bob.enter_epoch(2, 1, vec![2; FrameKeys::base_key_len()])
            .unwrap();
        assert_eq!(bob.open(b"", &in_flight).unwrap().epoch, 1);
        let late = alice.seal(b"", b"one again").unwrap();
        bob.enter_epoch(3, 1, vec![3; FrameKeys::base_key_len()])
            .unwrap();
        assert!(matches!(
            bob.open(b"", &late),
            Err(E2eeError::UnknownKey(_))
        ));
        let mut carol = keys(3, 2, 3);
        let fresh = carol.seal(b"", b"three").unwrap();
        bob.forget_previous();
        assert_eq!(bob.open(b"", &fresh).unwrap().sender, 2);
        bob.forget_all();
        assert!(matches!(bob.seal(b"", b"x"), Err(E2eeError::NoGroup)));
    }

    /// AES-128-GCM outside `FrameKeys`: what the browser's WebCrypto does with a job.
    fn seal_outside(job: &SealJob, payload: &[u8]) -> Vec<u8> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let cipher = aes_gcm::Aes128Gcm::new_from_slice(job.input().key()).unwrap();
        let sealed = cipher
            .encrypt(
                &(*job.input().nonce()).into(),
                Payload {
                    msg: payload,
                    aad: job.input().aad(),
                },
            )
            .unwrap();
        job.frame(&sealed)
    }

    fn open_outside(job: &OpenJob) -> Option<Vec<u8>> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let cipher = aes_gcm::Aes128Gcm::new_from_slice(job.input().key()).unwrap();
        cipher
            .decrypt(
                &(*job.input().nonce()).into(),
                Payload {
                    msg: job.ciphertext(),
                    aad: job.input().aad(),
                },
            )
            .ok()
    }

    #[test]
    fn a_frame_sealed_outside_is_the_crates_byte_for_byte_and_opens_either_way() {
        // Two copies of one sender: one seals with the crate, the other through jobs.
        let (mut by_crate, mut by_job) = (keys(3, 0, 7), keys(3, 0, 7));
        let (mut bob, mut carol) = (keys(3, 1, 7), keys(3, 2, 7));
        for (size, metadata) in [(0, &b""[..]), (1, b"m"), (160, b"track 1"), (60_000, b"kf")] {
            let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let sealed = by_crate.seal(metadata, &payload).unwrap();
            let job = by_job.prepare_seal(metadata).unwrap();
            assert_eq!(seal_outside(&job, &payload), sealed, "{size} bytes");
            // The crate opens the job's frame; the job path opens the crate's.
            assert_eq!(bob.open(metadata, &sealed).unwrap().payload, payload);
            let job = carol.prepare_open(metadata, &sealed).unwrap();
            let plaintext = open_outside(&job);
            let opened = carol.finish_open(job, plaintext).unwrap();
            assert_eq!((opened.sender, opened.epoch), (0, 3));
            assert_eq!(opened.payload, payload);
        }
    }

    #[test]
    fn frames_opened_outside_are_refused_as_the_crate_refuses_them() {
        let (mut alice, mut bob) = (keys(3, 0, 7), keys(3, 1, 7));
        let sealed = alice.seal(b"m", b"hello").unwrap();
        // Other metadata, or a flipped bit: the cipher says no.
        let job = bob.prepare_open(b"other", &sealed).unwrap();
        let answer = open_outside(&job);
        assert!(matches!(
            bob.finish_open(job, answer),
            Err(E2eeError::Tampered)
        ));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let job = bob.prepare_open(b"m", &flipped).unwrap();
        let answer = open_outside(&job);
        assert!(matches!(
            bob.finish_open(job, answer),
            Err(E2eeError::Tampered)
        ));
        // Two copies in flight at once: the first to finish opens, the second is a replay;
        // once opened, a copy is refused before any cipher sees it.
        let (first, second) = (
            bob.prepare_open(b"m", &sealed).unwrap(),
            bob.prepare_open(b"m", &sealed).unwrap(),
        );
        let (a, b) = (open_outside(&first), open_outside(&second));
        assert_eq!(bob.finish_open(first, a).unwrap().payload, b"hello");
        assert!(matches!(
            bob.finish_open(second, b),
            Err(E2eeError::Replayed)
        ));
        assert!(matches!(
            bob.prepare_open(b"m", &sealed),
            Err(E2eeError::Replayed)
        ));
        // The crate's own path shares the window.
        assert!(matches!(bob.open(b"m", &sealed), Err(E2eeError::Replayed)));
        // Too short for a tag, or no header at all.
        assert!(matches!(
            bob.prepare_open(b"m", &sealed[..sealed.len() - 20]),
            Err(E2eeError::Malformed { .. })
        ));
        assert!(matches!(
            bob.prepare_open(b"m", &[]),
            Err(E2eeError::Malformed { .. })
        ));
        // An epoch bob never held; one forgotten while its frame was with the cipher.
        let mut later = keys(4, 0, 7);
        assert!(matches!(
            bob.prepare_open(b"", &later.seal(b"", b"x").unwrap()),
            Err(E2eeError::UnknownKey(_))
        ));
        let job = bob
            .prepare_open(b"m", &alice.seal(b"m", b"late").unwrap())
            .unwrap();
        let answer = open_outside(&job);
        bob.forget_all();
        assert!(matches!(
            bob.finish_open(job, answer),
            Err(E2eeError::UnknownKey(_))
        ));
        assert!(matches!(bob.prepare_seal(b""), Err(E2eeError::NoGroup)));
    }

    #[test]
    fn a_leaf_index_beyond_the_key_id_is_refused() {
        let mut keys = FrameKeys::new();
        assert!(matches!(
            keys.enter_epoch(1, 1 << INDEX_BITS, vec![0; FrameKeys::base_key_len()]),
            Err(E2eeError::TooManyMembers { .. })
        ));
    }
}
