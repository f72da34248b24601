//! Chat lines: a data message on one topic (sealed under `videocall.e2ee` in an encrypted
//! meeting, the topic inside the ciphertext).

use videocall_protocol::wire::{envelope::Body, DataMessage};

/// The topic of chat lines.
pub const CHAT_TOPIC: &str = "chat";

/// A chat line as it goes out before sealing.
pub(crate) fn chat_line(text: &str, sent_at_ms: u64) -> Body {
    Body::Data(DataMessage {
        topic: CHAT_TOPIC.into(),
        text: text.to_owned(),
        sent_at_ms,
        ..Default::default()
    })
}
