//! What the session shows: the signals the UI reads, and why a meeting could not go on.

use dioxus::prelude::*;
use videocall_protocol::wire::{ErrorCode, MediaKind, Participant, Role};
use web_sys::MediaStream;

use videocall_grpc_web::{code, CallError};

use crate::hosting::MyState;
use crate::quality::Quality;

/// One participant as the UI shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerView {
    /// Relay participant id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// What it may do in the meeting.
    pub role: Role,
    /// When it raised its hand (ms on its relay's clock); 0: not raised.
    pub hand_raised_at_ms: i64,
    /// A host muted it and does not allow it to unmute itself.
    pub audio_locked: bool,
    /// A host stopped its video and does not allow it to start it again itself.
    pub video_locked: bool,
    /// Microphone muted.
    pub audio_muted: bool,
    /// Camera off.
    pub video_muted: bool,
    /// Speaking now.
    pub speaking: bool,
    /// Publishes a camera.
    pub camera: bool,
    /// Shares a screen.
    pub screen: bool,
    /// The loudest of the others speaking now, as the relay ranks them (shown larger).
    pub active: bool,
    /// How well they come through here (after a first 2 s window).
    pub quality: Option<Quality>,
}

/// One chat line.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatLine {
    /// Who wrote it.
    pub from: String,
    /// What they wrote.
    pub text: String,
}

/// The connection panel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionView {
    /// WebTransport or WebSocket.
    pub transport: String,
    /// Why WebTransport was not used, if it was not.
    pub fallback_reason: Option<String>,
    /// Round trip to the relay.
    pub rtt_ms: Option<f64>,
    /// Sending, kbit/s.
    pub send_kbps: f64,
    /// Receiving, kbit/s.
    pub receive_kbps: f64,
    /// Frames encoded per second.
    pub fps_sent: f64,
    /// Frames decoded per second.
    pub fps_received: f64,
    /// Frames skipped by encoders or decoders.
    pub dropped_frames: u64,
    /// Video codec sent.
    pub codec: String,
    /// Camera bitrate now, kbit/s.
    pub video_kbps: u32,
    /// This participant's own link (round trip and congestion).
    pub quality: Option<Quality>,
}

/// The meeting's end-to-end encryption as the UI shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncryptionView {
    /// The meeting is end-to-end encrypted (its grant says so).
    pub required: bool,
    /// In the encrypted group: its epoch. `None` while joining it (nothing is sent meanwhile).
    pub epoch: Option<u64>,
    /// Every member of the group, this participant included.
    pub members: Vec<MemberView>,
    /// Why this participant is (again) out of the group, while it is.
    pub waiting_reason: Option<String>,
    /// What was refused lately (a credential that does not check, a forged key package),
    /// newest last.
    pub refusals: Vec<String>,
}

/// A member of the encrypted group.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    /// The name its credential carries.
    pub name: String,
    /// Its verification code (the same on every member's screen for the same key).
    pub code: String,
    /// A guest.
    pub guest: bool,
    /// This participant.
    pub me: bool,
}

/// Why the meeting cannot go on.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The meeting has as many participants as it admits.
    MeetingFull,
    /// This person may not join.
    NotAllowed(String),
    /// A host locked the meeting: nobody new gets in.
    Locked(String),
    /// A host removed this person (the host's reason).
    Removed(String),
    /// The meeting ended (a host ended it for all, or its owner deleted it).
    Ended(String),
    /// A host did not let this person in from the waiting room (the host's reason, if any).
    TurnedAway(String),
    /// No such meeting.
    NotFound,
    /// The meeting ended or the grant expired.
    Expired(String),
    /// The meeting is end-to-end encrypted and this browser's encryption could not start
    /// (the grant's credential does not check).
    Encryption(String),
    /// The same person joined again from another window or device.
    Replaced,
    /// The control plane cannot be reached.
    Unreachable(String),
    /// Neither WebTransport nor WebSocket connects.
    TransportsBlocked(String),
    /// Anything else.
    Other(String),
}

/// Where the session is.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Joining.
    Connecting,
    /// In the waiting room: this many in line up to and with this person (1: next).
    Waiting(u32),
    /// In the meeting.
    Connected,
    /// Lost the relay; trying again.
    Reconnecting(String),
    /// Cannot go on.
    Failed(Failure),
    /// Left on purpose.
    Left,
}

/// The signals the session writes and the UI reads.
#[derive(Clone, Copy)]
pub struct MeetingSignals {
    /// Where the session is.
    pub phase: Signal<Phase>,
    /// Everyone else.
    pub peers: Signal<Vec<PeerView>>,
    /// The chat.
    pub chat: Signal<Vec<ChatLine>>,
    /// The connection panel.
    pub connection: Signal<ConnectionView>,
    /// Own speaking state.
    pub speaking: Signal<bool>,
    /// Sharing the screen.
    pub sharing: Signal<Option<MediaStream>>,
    /// The meeting's end-to-end encryption.
    pub encryption: Signal<EncryptionView>,
    /// This participant's role, microphone, camera and hand, as it and hosts change them.
    pub me: Signal<MyState>,
    /// A host locked the meeting.
    pub locked: Signal<bool>,
    /// The latest thing to tell this person (what a host did, what the relay refused).
    pub notice: Signal<Option<NoticeView>>,
}

/// Something to tell the person in the meeting, until it is dismissed.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeView {
    /// What happened.
    pub text: String,
    /// A host asks to turn this on again: the notice offers a button.
    pub asked_to_unmute: Option<MediaKind>,
}

/// A participant as the relay describes them.
pub fn peer_view(peer: &Participant) -> PeerView {
    PeerView {
        id: peer.id,
        name: if peer.display_name.is_empty() {
            peer.user.clone()
        } else {
            peer.display_name.clone()
        },
        role: peer.role(),
        hand_raised_at_ms: peer.hand_raised_at_ms,
        audio_locked: peer.audio_locked,
        video_locked: peer.video_locked,
        audio_muted: peer.audio_muted,
        video_muted: peer.video_muted,
        speaking: peer.speaking,
        camera: peer.tracks.iter().any(|t| t.kind() == MediaKind::Video),
        screen: peer.tracks.iter().any(|t| t.kind() == MediaKind::Screen),
        active: false,
        quality: None,
    }
}

/// How the control plane's refusal of a locked meeting begins (`admission::Refusal::Locked`).
const LOCKED_PREFIX: &str = "a host locked";

/// A failed grant: what to tell, and whether trying again may help.
pub fn grant_failure(error: CallError) -> (Failure, bool) {
    match error {
        CallError::Status { code, message } => match code {
            code::RESOURCE_EXHAUSTED => (Failure::MeetingFull, false),
            code::PERMISSION_DENIED | code::UNAUTHENTICATED => {
                (Failure::NotAllowed(message), false)
            }
            code::NOT_FOUND => (Failure::NotFound, false),
            // The control plane says a lock in these words (a lock and an ended meeting
            // share the code).
            code::FAILED_PRECONDITION if message.starts_with(LOCKED_PREFIX) => {
                (Failure::Locked(message), false)
            }
            code::FAILED_PRECONDITION => (Failure::Expired(message), false),
            code::UNAVAILABLE => (Failure::Unreachable(message), true),
            _ => (Failure::Other(message), false),
        },
        CallError::Unreachable(message) => (Failure::Unreachable(message), true),
        CallError::Malformed(message) => (Failure::Other(message.to_owned()), false),
    }
}

/// An error the relay ended a running meeting with (its fatal `Error`, or the words it closed
/// the connection with, should the error be lost with the connection): what to tell, and
/// whether a new grant may help. In the meeting, only a host's removal is forbidden.
pub fn meeting_failure(code: ErrorCode, message: &str) -> (Failure, bool) {
    match code {
        ErrorCode::Forbidden => (Failure::Removed(message.to_owned()), false),
        _ => relay_failure(code, message),
    }
}

/// A connection the relay closed with words that end the meeting for this person (removed,
/// the meeting ended, joined elsewhere): the failure. `None`: reconnect.
pub fn closed_failure(reason: &str) -> Option<Failure> {
    let (code, message) = videocall_protocol::close_reason::parse(reason)?;
    match meeting_failure(code, message) {
        (failure, false) => Some(failure),
        (_, true) => None,
    }
}

/// An error from the relay: what to tell, and whether a new grant may help.
pub fn relay_failure(code: ErrorCode, message: &str) -> (Failure, bool) {
    let message = message.to_owned();
    match code {
        ErrorCode::MeetingFull => (Failure::MeetingFull, false),
        ErrorCode::Forbidden | ErrorCode::TokenInvalid | ErrorCode::TokenWrongMeeting => {
            (Failure::NotAllowed(message), false)
        }
        ErrorCode::MeetingLocked => (Failure::Locked(message), false),
        ErrorCode::MeetingEnded => (Failure::Ended(message), false),
        // Rejoining would take the place back from the newer session, which would do the same.
        ErrorCode::Replaced => (Failure::Replaced, false),
        // A token that expired or a key the relay does not know yet: a fresh grant helps.
        ErrorCode::TokenExpired | ErrorCode::TokenUnknownKey => (Failure::Expired(message), true),
        _ => (Failure::Other(message), true),
    }
}
