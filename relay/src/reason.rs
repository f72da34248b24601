//! Why things end or fail: a session's close reason, a refused join, an undelivered packet.
//! A leaf module: the core, the transports and the metrics all speak these types.

use videocall_protocol::wire::{ErrorCode, LeaveReason};

/// Why a participant's session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// What the others are told.
    pub leave: LeaveReason,
    /// Error sent to the participant itself, if the session ends in error.
    pub error: Option<(ErrorCode, String)>,
}

impl CloseReason {
    /// The participant left on its own.
    pub fn left() -> Self {
        CloseReason {
            leave: LeaveReason::Left,
            error: None,
        }
    }

    /// The connection went away without a word.
    pub fn disconnected() -> Self {
        CloseReason {
            leave: LeaveReason::Disconnected,
            error: None,
        }
    }

    /// The session ends with `code`.
    pub fn error(leave: LeaveReason, code: ErrorCode, message: impl Into<String>) -> Self {
        CloseReason {
            leave,
            error: Some((code, message.into())),
        }
    }

    /// Application close code: `0` for a normal leave, otherwise the wire error code.
    pub fn code(&self) -> u32 {
        self.error
            .as_ref()
            .map(|(code, _)| *code as u32)
            .unwrap_or(0)
    }

    /// Human-readable reason, shortened to fit a WebSocket close frame (123 bytes).
    pub fn text(&self) -> String {
        let text = match &self.error {
            Some((code, message)) => videocall_protocol::close_reason::format(*code, message),
            None => self.leave.as_str_name().to_string(),
        };
        truncate_utf8(text, 120)
    }
}

fn truncate_utf8(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// A refused join: the code and message sent to the client before closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// Wire error code.
    pub code: ErrorCode,
    /// Human-readable reason.
    pub message: String,
}

impl Refusal {
    /// No valid `Join` arrived in time.
    pub fn join_timeout(timeout: std::time::Duration) -> Self {
        Refusal::new(
            ErrorCode::Timeout,
            format!("no Join within {} ms", timeout.as_millis()),
        )
    }

    /// A refusal with `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// How the connection is closed after the refusal.
    pub fn close_reason(&self) -> CloseReason {
        CloseReason::error(LeaveReason::Error, self.code, self.message.clone())
    }
}

/// Why a media packet was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A subscriber's video queue was full.
    VideoQueueFull,
    /// A subscriber's audio queue was full.
    AudioQueueFull,
    /// Video held back until the next keyframe after an earlier drop.
    AwaitingKeyframe,
    /// The subscriber is gone.
    SubscriberGone,
    /// The publisher has not announced the track (or has removed it).
    UnannouncedTrack,
    /// The queue to the bus (to the other relays of the meeting) was full.
    BusQueueFull,
    /// Media from the bus of a publisher this relay does not know (yet).
    UnknownPublisher,
    /// Media from the bus whose frame is not a media envelope of the publisher and track
    /// its header names (a broken or foreign relay): never handed to anyone.
    MalformedRemote,
    /// Media or chat of an end-to-end encrypted participant that is not sealed (sent in
    /// clear): never handed to anyone.
    NotEncrypted,
    /// Video still queued for a subscriber when a keyframe that starts its track again came
    /// behind it (a move to another layer, or a restart after a drop): late, and of no use
    /// to a decoder that starts at that keyframe.
    Superseded,
    /// Media a host turned off (a muted microphone, a stopped camera) that came anyway.
    HeldByHost,
}

impl DropReason {
    /// Every reason, in the order of their metric series.
    pub const ALL: [DropReason; 11] = [
        DropReason::VideoQueueFull,
        DropReason::AudioQueueFull,
        DropReason::AwaitingKeyframe,
        DropReason::SubscriberGone,
        DropReason::UnannouncedTrack,
        DropReason::BusQueueFull,
        DropReason::UnknownPublisher,
        DropReason::MalformedRemote,
        DropReason::NotEncrypted,
        DropReason::Superseded,
        DropReason::HeldByHost,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::VideoQueueFull => "video_queue_full",
            DropReason::AudioQueueFull => "audio_queue_full",
            DropReason::AwaitingKeyframe => "awaiting_keyframe",
            DropReason::SubscriberGone => "subscriber_gone",
            DropReason::UnannouncedTrack => "unannounced_track",
            DropReason::BusQueueFull => "bus_queue_full",
            DropReason::UnknownPublisher => "unknown_publisher",
            DropReason::MalformedRemote => "malformed_remote",
            DropReason::NotEncrypted => "not_encrypted",
            DropReason::Superseded => "superseded",
            DropReason::HeldByHost => "held_by_host",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_text_fits_a_websocket_close_frame_on_a_char_boundary() {
        let reason = CloseReason::error(LeaveReason::Error, ErrorCode::Malformed, "é".repeat(100));
        let text = reason.text();
        assert!(text.len() <= 120);
        assert!(text.starts_with("ERROR_CODE_MALFORMED: é"));
        assert_eq!(CloseReason::left().code(), 0);
        assert_eq!(reason.code(), ErrorCode::Malformed as u32);
    }
}
