//! What end-to-end encryption does to the wire's media and chat: a frame's payload becomes an
//! SFrame ciphertext whose authenticated data is what the relay must read to route it (track,
//! kind, keyframe flag, layer, sequence), so a relay that changes any of those makes the frame
//! fail to open; a chat or data message's text and data go sealed into `data` under
//! [`SEALED_TOPIC`], with its topic authenticated. Everything else the relay sees is what it
//! needs: who sent it (its participant id, set by the relay) and to whom.

use videocall_protocol::wire::{DataMessage, Media};

use crate::frame_jobs::{OpenJob, SealJob};
use crate::frames::Opened;
use crate::member::Member;
use crate::E2eeError;

pub use videocall_protocol::sealed::SEALED_TOPIC;

/// The authenticated data of a media frame: what routes it.
pub fn media_metadata(media: &Media) -> [u8; 22] {
    let mut aad = [0u8; 22];
    aad[0] = 1; // version of this layout
    aad[1..5].copy_from_slice(&media.track_id.to_be_bytes());
    aad[5..9].copy_from_slice(&media.kind.to_be_bytes());
    aad[9] = u8::from(media.keyframe);
    aad[10..14].copy_from_slice(&media.layer.to_be_bytes());
    aad[14..22].copy_from_slice(&media.sequence.to_be_bytes());
    aad
}

/// Seals `media`'s payload under the member's key of the current epoch.
pub fn seal_media(member: &mut Member, media: &mut Media) -> Result<(), E2eeError> {
    let sealed = member.seal(&media_metadata(media), &media.payload)?;
    media.payload = sealed.into();
    media.sealed = true;
    Ok(())
}

/// Opens a received frame's payload in place; returns the sender's leaf and epoch. A frame not
/// marked sealed was sent in clear: refused.
pub fn open_media(member: &mut Member, media: &mut Media) -> Result<(u32, u64), E2eeError> {
    if !media.sealed {
        return Err(E2eeError::malformed("media", "sent in clear"));
    }
    let Opened {
        payload,
        sender,
        epoch,
    } = member.open(&media_metadata(media), &media.payload)?;
    media.payload = payload.into();
    media.sealed = false;
    Ok((sender, epoch))
}

/// `media`'s payload prepared for sealing in a cipher outside (see [`SealJob`]); the
/// cipher's output goes to [`finish_seal_media`].
pub fn prepare_seal_media(member: &mut Member, media: &Media) -> Result<SealJob, E2eeError> {
    member.prepare_seal(&media_metadata(media))
}

/// Puts the sealed frame of `job` (the cipher's ciphertext and tag) in `media`'s payload.
pub fn finish_seal_media(media: &mut Media, job: &SealJob, ciphertext_and_tag: &[u8]) {
    media.payload = job.frame(ciphertext_and_tag).into();
    media.sealed = true;
}

/// A received frame prepared for opening in a cipher outside (see [`OpenJob`]); refused as
/// [`open_media`] refuses it.
pub fn prepare_open_media(member: &mut Member, media: &Media) -> Result<OpenJob, E2eeError> {
    if !media.sealed {
        return Err(E2eeError::malformed("media", "sent in clear"));
    }
    member.prepare_open(&media_metadata(media), &media.payload)
}

/// Puts what the cipher made of `job` in `media` (its payload opened) once the frame checks
/// against the replay window; returns the sender's leaf and epoch.
pub fn finish_open_media(
    member: &mut Member,
    media: &mut Media,
    job: OpenJob,
    plaintext: Option<Vec<u8>>,
) -> Result<(u32, u64), E2eeError> {
    let Opened {
        payload,
        sender,
        epoch,
    } = member.finish_open(job, plaintext)?;
    media.payload = payload.into();
    media.sealed = false;
    Ok((sender, epoch))
}

/// A chat or data message's contents as they are sealed: topic, text, data.
fn chat_plaintext(message: &DataMessage) -> Vec<u8> {
    let mut plain =
        Vec::with_capacity(12 + message.topic.len() + message.text.len() + message.data.len());
    for part in [
        message.topic.as_bytes(),
        message.text.as_bytes(),
        message.data.as_ref(),
    ] {
        plain.extend_from_slice(&(part.len() as u32).to_be_bytes());
        plain.extend_from_slice(part);
    }
    plain
}

/// Seals a chat or data message in place: topic, text and data go into `data`, the topic
/// becomes [`SEALED_TOPIC`] and the text empty.
pub fn seal_chat(member: &mut Member, message: &mut DataMessage) -> Result<(), E2eeError> {
    let sealed = member.seal(SEALED_TOPIC.as_bytes(), &chat_plaintext(message))?;
    message.topic = SEALED_TOPIC.to_owned();
    message.text.clear();
    message.data = sealed.into();
    Ok(())
}

/// Opens a sealed chat or data message in place (its topic, text and data back); returns the
/// sender's leaf. A message not under [`SEALED_TOPIC`] was sent in clear: refused.
pub fn open_chat(member: &mut Member, message: &mut DataMessage) -> Result<u32, E2eeError> {
    if message.topic != SEALED_TOPIC {
        return Err(E2eeError::malformed("chat", "sent in clear"));
    }
    let opened = member.open(SEALED_TOPIC.as_bytes(), &message.data)?;
    let mut parts = Vec::with_capacity(3);
    let mut rest = opened.payload.as_slice();
    for _ in 0..3 {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| E2eeError::malformed("chat", "truncated"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(E2eeError::malformed("chat", "truncated"));
        }
        parts.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    let [topic, text, data] =
        <[Vec<u8>; 3]>::try_from(parts).map_err(|_| E2eeError::malformed("chat", "truncated"))?;
    message.topic = String::from_utf8(topic).map_err(|e| E2eeError::malformed("chat topic", e))?;
    message.text = String::from_utf8(text).map_err(|e| E2eeError::malformed("chat text", e))?;
    message.data = data.into();
    Ok(opened.sender)
}
