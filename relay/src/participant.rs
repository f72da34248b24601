//! A participant: identity, state, published tracks and the way to reach it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::outbound::Outbound;
use crate::track::PublishedTrack;
use crate::transport::TransportKind;
use videocall_protocol::encode_length_prefixed;
use videocall_protocol::envelope::envelope;
use videocall_protocol::wire::{self, envelope::Body, ErrorCode, LeaveReason};
use videocall_token::Grants;

/// Relay-assigned participant id, unique within the relay's lifetime.
pub type ParticipantId = u64;

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

    /// The session ends with `code`.
    pub fn error(leave: LeaveReason, code: ErrorCode, message: impl Into<String>) -> Self {
        CloseReason {
            leave,
            error: Some((code, message.into())),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct MutableState {
    display_name: String,
    audio_muted: bool,
    video_muted: bool,
    speaking: bool,
    announced_tracks: Vec<wire::Track>,
}

/// One person (or device) in a meeting, as the relay sees it.
pub struct Participant {
    /// Relay-assigned id.
    pub id: ParticipantId,
    /// Identity from the token subject.
    pub user: String,
    /// What the token allows.
    pub grants: Grants,
    /// How the participant is connected.
    pub transport: TransportKind,
    /// When the participant joined (Unix milliseconds).
    pub joined_at_unix_ms: i64,
    state: Mutex<MutableState>,
    tracks: RwLock<HashMap<u32, Arc<PublishedTrack>>>,
    outbound: Outbound,
    closing: CancellationToken,
    close_reason: Mutex<Option<CloseReason>>,
    last_heard_ms: AtomicU64,
}

impl Participant {
    /// A participant not yet in a meeting.
    pub fn new(
        id: ParticipantId,
        claims: &videocall_token::Claims,
        transport: TransportKind,
        outbound: Outbound,
        closing: CancellationToken,
        now_ms: u64,
    ) -> Self {
        Participant {
            id,
            user: claims.sub.clone(),
            grants: claims.grants,
            transport,
            joined_at_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            state: Mutex::new(MutableState {
                display_name: claims.name.clone(),
                ..Default::default()
            }),
            tracks: RwLock::new(HashMap::new()),
            outbound,
            closing,
            close_reason: Mutex::new(None),
            last_heard_ms: AtomicU64::new(now_ms),
        }
    }

    /// The wire description others see.
    pub fn describe(&self) -> wire::Participant {
        let state = lock(&self.state).clone();
        let mut tracks = state.announced_tracks;
        for track in read(&self.tracks).values() {
            if !tracks.iter().any(|t| t.id == track.id) {
                tracks.push(track.describe());
            }
        }
        wire::Participant {
            id: self.id,
            user: self.user.clone(),
            display_name: state.display_name,
            audio_muted: state.audio_muted,
            video_muted: state.video_muted,
            speaking: state.speaking,
            tracks,
            can_publish: self.grants.publish,
        }
    }

    /// The name shown to others now.
    pub fn display_name(&self) -> String {
        lock(&self.state).display_name.clone()
    }

    /// Applies an `UpdateState` from the participant.
    pub fn update(&self, update: wire::UpdateState) {
        let mut state = lock(&self.state);
        state.audio_muted = update.audio_muted;
        state.video_muted = update.video_muted;
        state.speaking = update.speaking;
        // An announcement is the whole list: a track it leaves out (a screen share that
        // ended) is unpublished, so others drop its tile. An empty list announces nothing.
        if !update.tracks.is_empty() {
            write(&self.tracks).retain(|id, _| update.tracks.iter().any(|t| t.id == *id));
        }
        state.announced_tracks = update.tracks;
        if !update.display_name.trim().is_empty() {
            state.display_name = update.display_name.trim().chars().take(128).collect();
        }
    }

    /// Where media for this participant goes.
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// Sends one message; a participant whose control queue is full is disconnected.
    pub fn send(&self, body: Body) {
        self.send_frame(encode_length_prefixed(&envelope(body)));
    }

    /// Sends an already encoded, length-prefixed envelope.
    pub fn send_frame(&self, frame: Bytes) {
        if self.outbound.send_control(frame).is_err() {
            self.close(CloseReason::error(
                LeaveReason::Error,
                ErrorCode::SlowConsumer,
                "control queue overflowed: the client stopped reading",
            ));
        }
    }

    /// Sends a non-fatal error.
    pub fn send_error(&self, code: ErrorCode, message: impl Into<String>) {
        self.send(Body::Error(wire::Error {
            code: code as i32,
            message: message.into(),
            fatal: false,
        }));
    }

    /// Ends the session; the first reason given is the one that counts.
    pub fn close(&self, reason: CloseReason) {
        let mut slot = lock(&self.close_reason);
        if slot.is_none() {
            *slot = Some(reason);
        }
        drop(slot);
        self.closing.cancel();
    }

    /// Fires when the session must end.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// Why the session ended (a disconnect when nobody said otherwise).
    pub fn close_reason(&self) -> CloseReason {
        lock(&self.close_reason).clone().unwrap_or(CloseReason {
            leave: LeaveReason::Disconnected,
            error: None,
        })
    }

    /// Records that something arrived from the participant.
    pub fn heard(&self, now_ms: u64) {
        self.last_heard_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Milliseconds since anything arrived.
    pub fn silent_for_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_heard_ms.load(Ordering::Relaxed))
    }

    /// A published track by id.
    pub fn track(&self, id: u32) -> Option<Arc<PublishedTrack>> {
        read(&self.tracks).get(&id).cloned()
    }

    /// Every published track.
    pub fn tracks(&self) -> Vec<Arc<PublishedTrack>> {
        read(&self.tracks).values().cloned().collect()
    }

    /// Records a new published track. Callers hold the meeting's lock.
    pub fn insert_track(&self, track: Arc<PublishedTrack>) {
        write(&self.tracks).insert(track.id, track);
    }
}

/// Locks a mutex, recovering from poisoning: our critical sections leave data consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
