//! A participant: identity, mutable state, announced tracks and the [`Outlet`] that reaches it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use super::layers::View;
use super::moderation::{role_from_wire, role_to_wire, Muted};
use super::sink::Outlet;
use super::sync::{lock, read, write};
use super::track::PublishedTrack;
use crate::ids::{ParticipantId, TransportKind};
use crate::reason::CloseReason;
use videocall_protocol::encode_length_prefixed;
use videocall_protocol::envelope::envelope;
use videocall_protocol::mesh::RemoteParticipant;
use videocall_protocol::wire::{self, envelope::Body, ErrorCode, LeaveReason, MediaKind};
use videocall_token::{Grants, Role};

#[derive(Debug, Clone)]
struct MutableState {
    display_name: String,
    audio_muted: bool,
    video_muted: bool,
    speaking: bool,
    role: Role,
    /// When its hand went up (Unix ms); 0: down.
    hand_raised_at_ms: i64,
    /// A host turned it off and does not let it turn it on again.
    audio_locked: bool,
    video_locked: bool,
}

impl MutableState {
    fn new(display_name: String, role: Role) -> Self {
        MutableState {
            display_name,
            audio_muted: false,
            video_muted: false,
            speaking: false,
            role,
            hand_raised_at_ms: 0,
            audio_locked: false,
            video_locked: false,
        }
    }
}

/// One person (or device) in a meeting, as the relay sees it.
pub struct Participant {
    /// Relay-assigned id.
    pub id: ParticipantId,
    /// Identity from the token subject.
    pub user: String,
    /// What the token allows.
    pub grants: Grants,
    /// The meeting is end-to-end encrypted for this participant (its token says so): the
    /// relay takes only sealed media and chat from it. Always false for a remote participant
    /// (its own relay checked).
    pub e2ee: bool,
    /// How the participant is connected.
    pub transport: TransportKind,
    /// When the participant joined (Unix milliseconds).
    pub joined_at_unix_ms: i64,
    /// The relay that hosts the participant, when it is not this one.
    pub home: Option<String>,
    state: Mutex<MutableState>,
    tracks: RwLock<HashMap<u32, Arc<PublishedTrack>>>,
    /// How it shows others' tracks (publisher, track) → tile, from its `ViewTracks`.
    views: Mutex<HashMap<(ParticipantId, u32), (u32, u32)>>,
    outlet: Box<dyn Outlet>,
    close_reason: Mutex<Option<CloseReason>>,
    last_heard_ms: AtomicU64,
    /// What a host turned off and it has not turned on again ([`HELD_AUDIO`], [`HELD_VIDEO`]):
    /// the relay forwards none of it. Read for every packet, so outside the state's lock;
    /// written under it. A remote participant's own relay holds its media back.
    held: AtomicU8,
}

const HELD_AUDIO: u8 = 1;
const HELD_VIDEO: u8 = 2;

/// The bit of [`Participant::held`] for `what`.
fn held_bit(what: Muted) -> u8 {
    match what {
        Muted::Audio => HELD_AUDIO,
        Muted::Video => HELD_VIDEO,
    }
}

/// Views a subscriber may hold at once (tracks it said how it shows).
pub const MAX_VIEWS: usize = 1024;

/// A participant's new state, from an `UpdateState` the core has checked.
pub struct StateChange {
    /// Microphone muted.
    pub audio_muted: bool,
    /// Camera off.
    pub video_muted: bool,
    /// Speaking now.
    pub speaking: bool,
    /// New display name, if one was given.
    pub display_name: Option<String>,
    /// The hand raised (true) or lowered (false), if it said; with the time now (Unix ms).
    pub hand_raised: Option<(bool, i64)>,
}

/// What [`Participant::apply`] did not take: a microphone or camera turned on that a host
/// turned off and does not let it turn on (it stays off).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The microphone stays off.
    pub audio: bool,
    /// The camera stays off.
    pub video: bool,
}

/// The state another relay describes its participant in.
fn described_state(described: &wire::Participant) -> MutableState {
    MutableState {
        display_name: described.display_name.clone(),
        audio_muted: described.audio_muted,
        video_muted: described.video_muted,
        speaking: described.speaking,
        role: role_from_wire(described.role).unwrap_or(Role::Participant),
        hand_raised_at_ms: described.hand_raised_at_ms,
        audio_locked: described.audio_locked,
        video_locked: described.video_locked,
    }
}

impl Participant {
    /// A participant not yet in a meeting.
    pub fn new(
        id: ParticipantId,
        claims: &videocall_token::Claims,
        transport: TransportKind,
        outlet: Box<dyn Outlet>,
        now_ms: u64,
        unix_ms: i64,
    ) -> Self {
        Participant {
            id,
            user: claims.sub.clone(),
            grants: claims.grants,
            e2ee: claims.e2ee,
            transport,
            joined_at_unix_ms: unix_ms,
            home: None,
            state: Mutex::new(MutableState::new(claims.name.clone(), claims.grants.role())),
            tracks: RwLock::new(HashMap::new()),
            views: Mutex::new(HashMap::new()),
            outlet,
            close_reason: Mutex::new(None),
            last_heard_ms: AtomicU64::new(now_ms),
            held: AtomicU8::new(0),
        }
    }

    /// A participant hosted by relay `home`, as that relay described it. Its tracks are set
    /// by the meeting's announcement of them.
    pub fn remote(
        remote: &RemoteParticipant,
        home: &str,
        outlet: Box<dyn Outlet>,
        now_ms: u64,
    ) -> Option<Self> {
        let described = remote.participant.as_ref()?;
        Some(Participant {
            id: described.id,
            user: described.user.clone(),
            grants: Grants {
                publish: described.can_publish,
                subscribe: remote.subscribes,
                ..Grants::default()
            },
            e2ee: false,
            transport: TransportKind::Mesh,
            joined_at_unix_ms: remote.joined_at_unix_ms,
            home: Some(home.to_owned()),
            state: Mutex::new(described_state(described)),
            tracks: RwLock::new(HashMap::new()),
            views: Mutex::new(HashMap::new()),
            outlet,
            close_reason: Mutex::new(None),
            last_heard_ms: AtomicU64::new(now_ms),
            held: AtomicU8::new(0),
        })
    }

    /// How it shows `publisher`'s `track` (`None`: it never said).
    pub fn view_of(&self, publisher: ParticipantId, track: u32) -> View {
        lock(&self.views).get(&(publisher, track)).copied()
    }

    /// Records how it shows `publisher`'s `track`. False (nothing recorded) when it already
    /// holds [`MAX_VIEWS`] views of other tracks.
    pub fn set_view(&self, publisher: ParticipantId, track: u32, tile: (u32, u32)) -> bool {
        let mut views = lock(&self.views);
        if views.len() >= MAX_VIEWS && !views.contains_key(&(publisher, track)) {
            return false;
        }
        views.insert((publisher, track), tile);
        true
    }

    /// Forgets its views of `publisher`'s tracks (the publisher left).
    pub fn forget_views_of(&self, publisher: ParticipantId) {
        lock(&self.views).retain(|(p, _), _| *p != publisher);
    }

    /// Whether another relay hosts the participant.
    pub fn is_remote(&self) -> bool {
        self.home.is_some()
    }

    /// The description the other relays get: the wire description and what they need
    /// besides it.
    pub fn describe_for_mesh(&self) -> RemoteParticipant {
        RemoteParticipant {
            participant: Some(self.describe()),
            subscribes: self.grants.subscribe,
            joined_at_unix_ms: self.joined_at_unix_ms,
        }
    }

    /// Takes the state another relay reported for its participant.
    pub fn apply_described(&self, described: &wire::Participant) {
        *lock(&self.state) = described_state(described);
    }

    /// The wire description others see; tracks in id order.
    pub fn describe(&self) -> wire::Participant {
        let state = lock(&self.state).clone();
        let mut tracks: Vec<_> = read(&self.tracks).values().map(|t| t.describe()).collect();
        tracks.sort_by_key(|t| t.id);
        wire::Participant {
            id: self.id,
            user: self.user.clone(),
            display_name: state.display_name,
            audio_muted: state.audio_muted,
            video_muted: state.video_muted,
            speaking: state.speaking,
            tracks,
            can_publish: self.grants.publish,
            role: role_to_wire(state.role) as i32,
            hand_raised_at_ms: state.hand_raised_at_ms,
            audio_locked: state.audio_locked,
            video_locked: state.video_locked,
        }
    }

    /// Its role now.
    pub fn role(&self) -> Role {
        lock(&self.state).role
    }

    /// A host gave it `role`.
    pub fn set_role(&self, role: Role) {
        lock(&self.state).role = role;
    }

    /// A host lowered its hand.
    pub fn lower_hand(&self) {
        lock(&self.state).hand_raised_at_ms = 0;
    }

    /// A host turned `what` off; with `locked` it may not turn it on again itself.
    pub fn host_mute(&self, what: Muted, locked: bool) {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let (muted, locked_now) = match what {
            Muted::Audio => (&mut state.audio_muted, &mut state.audio_locked),
            Muted::Video => (&mut state.video_muted, &mut state.video_locked),
        };
        *muted = true;
        *locked_now |= locked;
        self.held.fetch_or(held_bit(what), Ordering::Relaxed);
    }

    /// A host lets it turn `what` on again (and asks it to).
    pub fn allow_unmute(&self, what: Muted) {
        let mut state = lock(&self.state);
        match what {
            Muted::Audio => state.audio_locked = false,
            Muted::Video => state.video_locked = false,
        }
    }

    /// Whether a host holds its media of `kind` back (turned off, not on again since).
    pub fn held_by_host(&self, kind: MediaKind) -> bool {
        Muted::of(kind).is_some_and(|what| self.held.load(Ordering::Relaxed) & held_bit(what) != 0)
    }

    /// The name shown to others now.
    pub fn display_name(&self) -> String {
        lock(&self.state).display_name.clone()
    }

    /// Applies mute flags, speaking, the hand and the display name; a microphone or camera
    /// a host turned off and locked stays off (returned). Turning one on that a host turned
    /// off (unlocked) ends the hold.
    pub fn apply(&self, change: StateChange) -> Refused {
        let mut state = lock(&self.state);
        let refused = Refused {
            audio: state.audio_locked && !change.audio_muted,
            video: state.video_locked && !change.video_muted,
        };
        state.audio_muted = change.audio_muted || refused.audio;
        state.video_muted = change.video_muted || refused.video;
        let on = (if state.audio_muted { 0 } else { HELD_AUDIO })
            | (if state.video_muted { 0 } else { HELD_VIDEO });
        self.held.fetch_and(!on, Ordering::Relaxed);
        state.speaking = change.speaking;
        if let Some(name) = change.display_name {
            state.display_name = name;
        }
        match change.hand_raised {
            Some((true, now_ms)) if state.hand_raised_at_ms == 0 => {
                state.hand_raised_at_ms = now_ms.max(1)
            }
            Some((false, _)) => state.hand_raised_at_ms = 0,
            _ => {}
        }
        refused
    }

    /// Sends one message; a participant whose control queue is full is disconnected.
    pub fn send(&self, body: Body) {
        self.send_frame(encode_length_prefixed(&envelope(body)));
    }

    /// Sends an already encoded, length-prefixed envelope.
    pub fn send_frame(&self, frame: Bytes) {
        if self.outlet.send_control(frame).is_err() {
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

    /// Ends the session; the first reason given is the one that counts. A reason with an
    /// error queues that error for the participant first, so that it precedes the close
    /// on every transport (the writer's last words are what is queued when it stops).
    pub fn close(&self, reason: CloseReason) {
        let mut slot = lock(&self.close_reason);
        if slot.is_none() {
            if let (Some((code, message)), false) = (&reason.error, self.is_remote()) {
                let error = encode_length_prefixed(&envelope(Body::Error(wire::Error {
                    code: *code as i32,
                    message: message.clone(),
                    fatal: true,
                })));
                // A full queue (a slow consumer) cannot take it: the close reason still says it.
                let _ = self.outlet.send_control(error);
            }
            *slot = Some(reason);
        }
        drop(slot);
        self.outlet.close();
    }

    /// Why the session ended (a disconnect when nobody said otherwise).
    pub fn close_reason(&self) -> CloseReason {
        lock(&self.close_reason)
            .clone()
            .unwrap_or_else(CloseReason::disconnected)
    }

    /// Records that something arrived from the participant.
    pub fn heard(&self, now_ms: u64) {
        self.last_heard_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Milliseconds since anything arrived.
    pub fn silent_for_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_heard_ms.load(Ordering::Relaxed))
    }

    /// The outlet that reaches this participant.
    pub(super) fn outlet(&self) -> &dyn Outlet {
        self.outlet.as_ref()
    }

    /// A published track by id.
    pub fn track(&self, id: u32) -> Option<Arc<PublishedTrack>> {
        read(&self.tracks).get(&id).cloned()
    }

    /// Every published track.
    pub fn tracks(&self) -> Vec<Arc<PublishedTrack>> {
        read(&self.tracks).values().cloned().collect()
    }

    /// Replaces the published tracks. Callers hold the meeting's lock.
    pub(super) fn set_tracks(&self, tracks: HashMap<u32, Arc<PublishedTrack>>) {
        *write(&self.tracks) = tracks;
    }
}
