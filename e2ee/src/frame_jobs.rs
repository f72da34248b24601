//! SFrame frames (RFC 9605, AES-128-GCM) sealed and opened by a cipher outside this crate: the
//! browser's own AES-GCM (WebCrypto), which runs natively and off the page's main thread, but
//! only asynchronously (the `sframe` crate's cipher backends are synchronous).
//!
//! [`FrameKeys`](crate::FrameKeys) prepares a job with everything the cipher needs (key, nonce,
//! authenticated data: header and metadata) and, for a frame to open, takes the cipher's answer
//! back to check it against the replay window; the frame layout is the `sframe` crate's, byte for
//! byte (tested against it both ways), so a frame sealed here opens anywhere and back.

use hkdf::Hkdf;
use sframe::crypto::{get_hkdf_key_expand_label, get_hkdf_salt_expand_label};
use sframe::header::{Counter, KeyId, SframeHeader};
use sframe::CipherSuite;
use sha2_011::Sha256;

use crate::E2eeError;

/// AES-128-GCM's key length.
pub const KEY_LEN: usize = 16;
/// AES-GCM's nonce length.
pub const NONCE_LEN: usize = 12;
/// The authentication tag's length (128 bits).
pub const TAG_LEN: usize = 16;

/// One sender's key and salt in one epoch (RFC 9605 section 4.4.2).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct FrameSecret {
    key: [u8; KEY_LEN],
    salt: [u8; NONCE_LEN],
}

impl std::fmt::Debug for FrameSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameSecret(..)")
    }
}

impl FrameSecret {
    /// Key and salt of key id `kid` from an epoch's `base_key`, in `suite` (AES-128-GCM).
    pub(crate) fn derive(
        suite: CipherSuite,
        base_key: &[u8],
        kid: KeyId,
    ) -> Result<Self, E2eeError> {
        let hkdf = Hkdf::<Sha256>::new(None, base_key);
        let mut secret = FrameSecret {
            key: [0; KEY_LEN],
            salt: [0; NONCE_LEN],
        };
        hkdf.expand(&get_hkdf_key_expand_label(kid, suite), &mut secret.key)
            .and_then(|()| hkdf.expand(&get_hkdf_salt_expand_label(kid, suite), &mut secret.salt))
            .map_err(E2eeError::crypto)?;
        Ok(secret)
    }

    /// The nonce of frame `counter`: the salt with the counter XORed into its low bytes
    /// (RFC 9605 section 4.4.3).
    fn nonce(&self, counter: Counter) -> [u8; NONCE_LEN] {
        let mut nonce = self.salt;
        for (byte, counter_byte) in nonce[NONCE_LEN - 8..].iter_mut().zip(counter.to_be_bytes()) {
            *byte ^= counter_byte;
        }
        nonce
    }
}

/// What AES-128-GCM needs for one frame, sealing or opening: key, nonce and the
/// authenticated data (the SFrame header, then the metadata); the tag is 128 bits, appended to
/// the ciphertext (as WebCrypto and the `aes-gcm` crate do).
#[derive(Debug, Clone)]
pub struct AesGcmInput {
    key: [u8; KEY_LEN],
    nonce: [u8; NONCE_LEN],
    aad: Vec<u8>,
}

impl AesGcmInput {
    /// The input of frame `counter` of `kid` under `secret`, with the header's length.
    fn new(secret: &FrameSecret, kid: KeyId, counter: Counter, metadata: &[u8]) -> (Self, usize) {
        let mut aad = Vec::from(&SframeHeader::new(kid, counter));
        let header_len = aad.len();
        aad.extend_from_slice(metadata);
        let input = AesGcmInput {
            key: secret.key,
            nonce: secret.nonce(counter),
            aad,
        };
        (input, header_len)
    }

    /// The sender's key in its epoch (the same for all its frames).
    pub fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// This frame's nonce.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// The authenticated data: the SFrame header, then the metadata.
    pub fn aad(&self) -> &[u8] {
        &self.aad
    }
}

/// A frame to seal with AES-128-GCM: encrypt the payload with [`Self::input`], then
/// [`Self::frame`] makes the SFrame of the result.
#[derive(Debug, Clone)]
pub struct SealJob {
    input: AesGcmInput,
    header_len: usize,
}

impl SealJob {
    pub(crate) fn new(secret: &FrameSecret, kid: KeyId, counter: Counter, metadata: &[u8]) -> Self {
        let (input, header_len) = AesGcmInput::new(secret, kid, counter, metadata);
        SealJob { input, header_len }
    }

    /// Key, nonce and authenticated data.
    pub fn input(&self) -> &AesGcmInput {
        &self.input
    }

    /// The SFrame: the header, then the cipher's output (ciphertext and tag).
    pub fn frame(&self, ciphertext_and_tag: &[u8]) -> Vec<u8> {
        let mut frame = Vec::with_capacity(self.header_len + ciphertext_and_tag.len());
        frame.extend_from_slice(&self.input.aad[..self.header_len]);
        frame.extend_from_slice(ciphertext_and_tag);
        frame
    }
}

/// A received frame to open with AES-128-GCM: decrypt [`Self::ciphertext`] (ciphertext and
/// tag) with [`Self::input`], then hand the plaintext (or the failure) to
/// [`FrameKeys::finish_open`](crate::FrameKeys::finish_open), which records the frame against
/// replays.
#[derive(Debug, Clone)]
pub struct OpenJob {
    pub(crate) kid: KeyId,
    pub(crate) counter: Counter,
    pub(crate) sender: u32,
    pub(crate) epoch: u64,
    input: AesGcmInput,
    ciphertext: Vec<u8>,
}

impl OpenJob {
    /// The job of `frame` (header, ciphertext, tag) sealed with `metadata`, from `sender` in
    /// `epoch`, whose key id has `secret`.
    pub(crate) fn new(
        secret: &FrameSecret,
        header: &SframeHeader,
        metadata: &[u8],
        frame: &[u8],
        (sender, epoch): (u32, u64),
    ) -> Result<Self, E2eeError> {
        let ciphertext = frame
            .get(header.len()..)
            .filter(|rest| rest.len() >= TAG_LEN)
            .ok_or_else(|| E2eeError::malformed("frame", "shorter than its header and tag"))?;
        let (input, _) = AesGcmInput::new(secret, header.key_id(), header.counter(), metadata);
        Ok(OpenJob {
            kid: header.key_id(),
            counter: header.counter(),
            sender,
            epoch,
            input,
            ciphertext: ciphertext.to_vec(),
        })
    }

    /// Key, nonce and authenticated data (the frame's header, then the metadata it came with).
    pub fn input(&self) -> &AesGcmInput {
        &self.input
    }

    /// What to decrypt: the ciphertext with its tag at the end.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }
}
