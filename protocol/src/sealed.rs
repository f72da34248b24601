//! What an end-to-end encrypted media frame or chat message looks like from outside: a relay
//! cannot read it, but can tell that it is sealed (an SFrame ciphertext, RFC 9605: a header,
//! then at least an AES-GCM tag) and so refuse what an encrypted participant sends in clear.

use sframe::header::SframeHeader;

/// The topic of a sealed chat or data message; the sender's topic travels inside.
pub const SEALED_TOPIC: &str = "videocall.e2ee";

/// Bytes of the authentication tag every sealed payload ends with (AES-128-GCM).
pub const TAG_BYTES: usize = 16;

/// Whether `payload` has the shape of an SFrame ciphertext: a header that parses, then at
/// least a tag. Anything can have that shape; clear media almost never does by chance, and the
/// members refuse what does not open anyway.
pub fn is_sframe(payload: &[u8]) -> bool {
    SframeHeader::deserialize(payload).is_ok_and(|header| payload.len() >= header.len() + TAG_BYTES)
}

/// Whether a media frame is sealed: marked so by its sender, with an SFrame ciphertext as its
/// payload.
pub fn is_sealed_media(media: &crate::wire::Media) -> bool {
    media.sealed && is_sframe(&media.payload)
}

/// Whether a chat or data message is sealed: under [`SEALED_TOPIC`], no clear text, and an
/// SFrame ciphertext as its data.
pub fn is_sealed_chat(message: &crate::wire::DataMessage) -> bool {
    message.topic == SEALED_TOPIC && message.text.is_empty() && is_sframe(&message.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sframe_shape_needs_a_whole_header_and_a_tag() {
        // Config byte 0x00: key id 0 and counter 0 in the byte itself; then a tag.
        assert!(is_sframe(&[0u8; 1 + TAG_BYTES]));
        assert!(!is_sframe(&[0u8; TAG_BYTES]));
        assert!(!is_sframe(&[]));
        // X and Y set, K and C 7: a key id and a counter of 8 bytes each, 17 header bytes.
        let mut long = vec![0xFFu8];
        long.extend([0u8; 16 + TAG_BYTES]);
        assert!(is_sframe(&long));
        long.pop();
        assert!(!is_sframe(&long));
    }

    #[test]
    fn media_is_sealed_only_when_marked_so_and_shaped_so() {
        let sealed = crate::wire::Media {
            sealed: true,
            payload: vec![0u8; 40].into(),
            ..Default::default()
        };
        assert!(is_sealed_media(&sealed));
        // An H.264 frame begins with a start code, which reads as an SFrame header: the mark
        // tells them apart.
        let clear = crate::wire::Media {
            payload: vec![0u8; 40].into(),
            ..Default::default()
        };
        assert!(!is_sealed_media(&clear));
        let short = crate::wire::Media {
            sealed: true,
            payload: b"clear".to_vec().into(),
            ..Default::default()
        };
        assert!(!is_sealed_media(&short));
    }

    #[test]
    fn chat_is_sealed_only_under_the_topic_without_clear_text() {
        let sealed = crate::wire::DataMessage {
            topic: SEALED_TOPIC.into(),
            data: vec![0u8; 40].into(),
            ..Default::default()
        };
        assert!(is_sealed_chat(&sealed));
        let mut with_text = sealed.clone();
        with_text.text = "hello".into();
        assert!(!is_sealed_chat(&with_text));
        let mut other_topic = sealed.clone();
        other_topic.topic = "chat".into();
        assert!(!is_sealed_chat(&other_topic));
        let clear = crate::wire::DataMessage {
            text: "hello".into(),
            ..Default::default()
        };
        assert!(!is_sealed_chat(&clear));
    }
}
