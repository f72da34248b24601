//! Meetings: who is in them, and the registry that creates them on first join and drops
//! them when the last local participant leaves.
//!
//! A meeting's participants are local (connected here) or remote (hosted by another relay
//! of the meeting, mirrored from its events; see [`super::mesh`]). Local publishers' tracks
//! fan out to local subscribers and, while a remote participant subscribes, to one down track
//! that carries them to the bus; remote publishers' tracks fan out to local subscribers only.
//!
//! Every change to who subscribes to what happens under the meeting's write lock (joins,
//! leaves) or read lock (a publisher's announcement), so a join and a new track never miss
//! each other. Nothing here starts work: down tracks get their sinks from the subscriber's
//! [`super::sink::Outlet`], which only prepares them.

use std::collections::HashMap;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use super::layers;
use super::mesh::{Mesh, RemoteOutlet, MESH_SUBSCRIBER};
use super::participant::Participant;
use super::speakers::SpeakerRanking;
use super::sync::{lock, read, write};
use super::track::{DownTrack, PublishedTrack};
use crate::ids::{ParticipantId, TransportKind};
use crate::metrics::Metrics;
use crate::reason::Refusal;
use videocall_bus::{Appended, MemoryLog};
use videocall_protocol::encode_length_prefixed;
use videocall_protocol::envelope::envelope;
use videocall_protocol::mesh::RemoteParticipant;
use videocall_protocol::wire::{envelope::Body, ActiveSpeakers, ErrorCode, MediaKind, Track};

/// One meeting on this relay.
pub struct Meeting {
    /// Meeting id (from the token and the URL).
    pub id: String,
    participants: RwLock<HashMap<ParticipantId, Arc<Participant>>>,
    mesh: Arc<dyn Mesh>,
    /// The other relays heard in this meeting.
    remote_relays: Mutex<HashMap<String, RemoteRelay>>,
    /// The order of the meeting's handshakes when this relay keeps it (no bus).
    local_handshakes: Mutex<MemoryLog>,
    /// The sequence of the last commit or founding this relay saw (0: none).
    handshake_head: AtomicU64,
    /// An end-to-end encrypted participant joined here: the relay follows the meeting's
    /// handshake log (until the meeting closes here).
    encrypted: AtomicBool,
    /// Who is speaking, from the audio this relay forwards.
    speakers: Mutex<SpeakerRanking>,
}

/// Another relay of a meeting, as last heard.
#[derive(Debug, Clone, Copy)]
struct RemoteRelay {
    last_heard_ms: u64,
    /// When this relay last asked it for its roster.
    asked_roster_ms: Option<u64>,
}

type ParticipantMap = HashMap<ParticipantId, Arc<Participant>>;

/// What an announcement changed.
#[derive(Default)]
pub struct Announced {
    /// Tracks published by it, with their subscribers.
    pub added: Vec<Arc<PublishedTrack>>,
    /// Ids of tracks it unpublished.
    pub removed: Vec<u32>,
}

impl Meeting {
    /// The participants connected to this relay.
    pub fn local_participants(&self) -> Vec<Arc<Participant>> {
        read(&self.participants)
            .values()
            .filter(|p| !p.is_remote())
            .cloned()
            .collect()
    }

    /// The participants hosted by relay `home`.
    pub fn participants_of(&self, home: &str) -> Vec<Arc<Participant>> {
        read(&self.participants)
            .values()
            .filter(|p| p.home.as_deref() == Some(home))
            .cloned()
            .collect()
    }

    /// Every participant, local or remote.
    pub fn participants(&self) -> Vec<Arc<Participant>> {
        read(&self.participants).values().cloned().collect()
    }

    /// The active speakers last said, loudest first.
    pub fn active_speakers(&self) -> Vec<ParticipantId> {
        lock(&self.speakers).said().to_vec()
    }

    /// One participant, local or remote.
    pub fn participant(&self, id: ParticipantId) -> Option<Arc<Participant>> {
        read(&self.participants).get(&id).cloned()
    }

    /// The way to the other relays of the meeting.
    pub fn mesh(&self) -> &dyn Mesh {
        self.mesh.as_ref()
    }

    /// Appends a handshake to the meeting's own order (see `super::handshake`).
    pub fn append_local_handshake(
        &self,
        subject: &str,
        expect_last: Option<u64>,
        payload: Bytes,
    ) -> Appended {
        lock(&self.local_handshakes).append(subject, expect_last, payload)
    }

    /// The sequence of the last commit or founding this relay saw (0: none).
    pub fn handshake_head(&self) -> u64 {
        self.handshake_head.load(Ordering::Relaxed)
    }

    /// Records a commit or founding at `sequence` (the head only moves forward).
    pub fn saw_handshake_head(&self, sequence: u64) {
        self.handshake_head.fetch_max(sequence, Ordering::Relaxed);
    }

    /// Sends an encoded control frame to every local participant but `except`. The other
    /// relays tell their own participants.
    pub fn broadcast(&self, except: ParticipantId, frame: &Bytes) {
        for p in self.local_participants() {
            if p.id != except {
                p.send_frame(frame.clone());
            }
        }
    }

    /// An audio packet of `publisher` at `level` (`Media.audio_level`), forwarded at `now_ms`:
    /// the local participants are told who is speaking when that changed.
    pub fn heard_speaker(&self, publisher: ParticipantId, level: u32, now_ms: u64) {
        let said = {
            let mut speakers = lock(&self.speakers);
            speakers.heard(publisher, level);
            speakers.due(now_ms)
        };
        if let Some(participant_ids) = said {
            let frame = encode_length_prefixed(&envelope(Body::ActiveSpeakers(ActiveSpeakers {
                participant_ids,
            })));
            self.broadcast(0, &frame);
        }
    }

    /// Records that relay `origin` was heard at `now_ms`. Returns true the first time.
    pub fn heard_from(&self, origin: &str, now_ms: u64) -> bool {
        let mut relays = lock(&self.remote_relays);
        match relays.get_mut(origin) {
            Some(relay) => {
                relay.last_heard_ms = relay.last_heard_ms.max(now_ms);
                false
            }
            None => {
                relays.insert(
                    origin.to_owned(),
                    RemoteRelay {
                        last_heard_ms: now_ms,
                        asked_roster_ms: None,
                    },
                );
                true
            }
        }
    }

    /// Whether this relay may ask `origin` for its roster now (at most once per
    /// `interval_ms`); records it as asked.
    pub fn claim_roster_request(&self, origin: &str, now_ms: u64, interval_ms: u64) -> bool {
        let mut relays = lock(&self.remote_relays);
        let Some(relay) = relays.get_mut(origin) else {
            return false;
        };
        if relay
            .asked_roster_ms
            .is_some_and(|at| now_ms.saturating_sub(at) < interval_ms)
        {
            return false;
        }
        relay.asked_roster_ms = Some(now_ms);
        true
    }

    /// Counts every known relay as heard at `now_ms` (while this relay cannot hear anyone).
    pub fn touch_relays(&self, now_ms: u64) {
        for relay in lock(&self.remote_relays).values_mut() {
            relay.last_heard_ms = now_ms;
        }
    }

    /// Forgets the relays not heard for `timeout_ms` and returns them.
    pub fn forget_silent_relays(&self, now_ms: u64, timeout_ms: u64) -> Vec<String> {
        let mut relays = lock(&self.remote_relays);
        let silent: Vec<String> = relays
            .iter()
            .filter(|(_, r)| now_ms.saturating_sub(r.last_heard_ms) >= timeout_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &silent {
            relays.remove(id);
        }
        silent
    }

    /// The other relays heard in this meeting.
    pub fn remote_relays(&self) -> Vec<String> {
        let mut ids: Vec<_> = lock(&self.remote_relays).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Makes `tracks` the whole list of `publisher`'s published tracks: a track it leaves
    /// out is unpublished (its media is dropped from now on), a new one gets a copy for
    /// every current subscriber. `None` when the publisher has left.
    pub fn announce(&self, publisher: &Participant, tracks: &[Track]) -> Option<Announced> {
        let participants = read(&self.participants);
        if !participants.contains_key(&publisher.id) {
            return None;
        }
        Some(self.announce_locked(&participants, publisher, tracks))
    }

    /// [`Self::announce`] with the participants' lock held.
    fn announce_locked(
        &self,
        participants: &ParticipantMap,
        publisher: &Participant,
        tracks: &[Track],
    ) -> Announced {
        let to_mesh = !publisher.is_remote() && has_remote_subscriber(participants);
        let current = publisher.tracks();
        let mut announced = Announced::default();
        let mut next = HashMap::with_capacity(tracks.len());
        for wanted in tracks {
            if let Some(kept) = current.iter().find(|t| t.matches(wanted)) {
                next.insert(kept.id, kept.clone());
                continue;
            }
            let audio = wanted.kind == MediaKind::Audio as i32;
            let mut downs: Vec<_> = participants
                .values()
                .filter(|s| s.id != publisher.id && s.grants.subscribe && !s.is_remote())
                .map(|s| {
                    let view = s.view_of(publisher.id, wanted.id);
                    let target = layers::layer_for_view(&wanted.layers, view);
                    self.down_track_for(s, audio, target)
                })
                .collect();
            if to_mesh {
                downs.push(self.mesh_down_track(publisher.id, wanted.id, audio));
            }
            let track = Arc::new(PublishedTrack::new(wanted, downs));
            next.insert(track.id, track.clone());
            announced.added.push(track);
        }
        for old in &current {
            if !next.get(&old.id).is_some_and(|t| Arc::ptr_eq(t, old)) {
                announced.removed.push(old.id);
            }
        }
        publisher.set_tracks(next);
        // A `ViewTracks` handled meanwhile stored its view after the copies above read the
        // views, and found none of these tracks to apply it to: read them again now that they
        // are published. The view is stored before its track is looked for (`on_views`), so one
        // of the two always sees the other; the fences on both sides make that hold on any CPU.
        fence(Ordering::SeqCst);
        for track in &announced.added {
            apply_views(participants, publisher.id, track);
        }
        announced
    }

    /// [`apply_views`] for a test that stores a view the way the race leaves it.
    #[cfg(test)]
    pub(super) fn apply_views_again(&self, publisher: ParticipantId, track: &PublishedTrack) {
        apply_views(&read(&self.participants), publisher, track);
    }

    /// The down track that carries `publisher`'s `track` to the other relays.
    fn mesh_down_track(&self, publisher: ParticipantId, track: u32, audio: bool) -> Arc<DownTrack> {
        Arc::new(DownTrack::new(
            MESH_SUBSCRIBER,
            audio,
            Some(0),
            self.mesh.media_sink(&self.id, publisher, track, audio),
            TransportKind::Mesh,
        ))
    }

    /// Gives every local published track its down track to the bus.
    fn start_sending_to_mesh(&self, participants: &ParticipantMap) {
        for publisher in participants.values().filter(|p| !p.is_remote()) {
            for track in publisher.tracks() {
                let audio = track.is_audio();
                track.add_down_track(self.mesh_down_track(publisher.id, track.id, audio));
            }
        }
    }

    /// Takes the bus down track off every local published track.
    fn stop_sending_to_mesh(&self, participants: &ParticipantMap) {
        for publisher in participants.values().filter(|p| !p.is_remote()) {
            for track in publisher.tracks() {
                track.remove_subscriber(MESH_SUBSCRIBER);
            }
        }
    }

    /// `subscriber`'s copy of a track, to get layer `target` (`None`: not shown).
    fn down_track_for(
        &self,
        subscriber: &Participant,
        audio: bool,
        target: Option<u32>,
    ) -> Arc<DownTrack> {
        Arc::new(DownTrack::new(
            subscriber.id,
            audio,
            target,
            subscriber.outlet().media_sink(audio),
            subscriber.transport,
        ))
    }
}

/// Gives each local subscriber's copy of `publisher`'s video `track` the layer of the
/// subscriber's view now.
fn apply_views(participants: &ParticipantMap, publisher: ParticipantId, track: &PublishedTrack) {
    if track.is_audio() {
        return;
    }
    for down in track.down_tracks().iter() {
        if let Some(subscriber) = participants.get(&down.subscriber) {
            down.set_target(track.layer_for(subscriber.view_of(publisher, track.id)));
        }
    }
}

fn has_remote_subscriber(participants: &ParticipantMap) -> bool {
    participants
        .values()
        .any(|p| p.is_remote() && p.grants.subscribe)
}

/// All meetings of this relay.
pub struct Meetings {
    meetings: Mutex<HashMap<String, Arc<Meeting>>>,
    metrics: Metrics,
    mesh: Arc<dyn Mesh>,
}

/// What a remote participant's arrival (or new description) changed.
pub struct RemoteJoin {
    /// The participant as mirrored here.
    pub participant: Arc<Participant>,
    /// It was not known before.
    pub new: bool,
    /// Its tracks that were not known before, with their local subscribers.
    pub announced: Announced,
}

/// What a successful join hands back.
pub struct Admitted {
    /// The meeting joined.
    pub meeting: Arc<Meeting>,
    /// Video tracks the newcomer now waits on for a keyframe: (publisher, track).
    pub awaiting_keyframes: Vec<(Arc<Participant>, Arc<PublishedTrack>)>,
    /// Local sessions of the same identity that the newcomer replaces; still in the meeting
    /// until closed (the caller closes them, and each leaves as usual).
    pub replaced: Vec<Arc<Participant>>,
}

/// How many participants a meeting and the relay may hold.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    /// Meetings this relay hosts at most.
    pub max_meetings: usize,
    /// Participants of the meeting this relay holds at most.
    pub max_local: usize,
    /// Participants the meeting holds at most, across its relays.
    pub max_total: usize,
}

impl Meetings {
    /// An empty registry.
    pub fn new(metrics: Metrics, mesh: Arc<dyn Mesh>) -> Self {
        Meetings {
            meetings: Mutex::new(HashMap::new()),
            metrics,
            mesh,
        }
    }

    /// Adds `newcomer` to `meeting_id`, creating the meeting if needed, and subscribes
    /// it to every existing track. `welcome` makes its first message from the meeting and who
    /// is already there; it is queued before the newcomer is in the meeting, so nothing another
    /// participant (or relay) does can reach it first.
    pub fn join(
        &self,
        meeting_id: &str,
        newcomer: Arc<Participant>,
        capacity: Capacity,
        welcome: impl FnOnce(&Meeting, &[Arc<Participant>]) -> Body,
    ) -> Result<Admitted, Refusal> {
        let mut meetings = lock(&self.meetings);
        let meeting = match meetings.get(meeting_id) {
            Some(m) => m.clone(),
            None => {
                if meetings.len() >= capacity.max_meetings {
                    return Err(Refusal::new(
                        ErrorCode::RelayFull,
                        format!(
                            "this relay hosts its maximum of {} meetings",
                            capacity.max_meetings
                        ),
                    ));
                }
                let m = Arc::new(Meeting {
                    id: meeting_id.to_owned(),
                    participants: RwLock::new(HashMap::new()),
                    mesh: self.mesh.clone(),
                    remote_relays: Mutex::new(HashMap::new()),
                    local_handshakes: Mutex::new(MemoryLog::new()),
                    handshake_head: AtomicU64::new(0),
                    encrypted: AtomicBool::new(false),
                    speakers: Mutex::new(SpeakerRanking::default()),
                });
                meetings.insert(meeting_id.to_owned(), m.clone());
                self.metrics.meetings.set(meetings.len() as i64);
                self.mesh.open(meeting_id);
                m
            }
        };
        let mut participants = write(&meeting.participants);
        // One session per identity: a local session of the newcomer's identity (another tab,
        // a device that reconnected before its old connection timed out, a leaked token) is
        // replaced. It does not count against the limits; the caller closes it.
        let replaced: Vec<Arc<Participant>> = participants
            .values()
            .filter(|p| !p.is_remote() && p.user == newcomer.user)
            .cloned()
            .collect();
        let local = participants.values().filter(|p| !p.is_remote()).count() - replaced.len();
        let total = participants.len() - replaced.len();
        let full = if local >= capacity.max_local {
            Some(format!(
                "meeting {meeting_id:?} is full on this relay ({} participants)",
                capacity.max_local
            ))
        } else if total >= capacity.max_total {
            Some(format!(
                "meeting {meeting_id:?} is full ({} participants)",
                capacity.max_total
            ))
        } else {
            None
        };
        if let Some(message) = full {
            drop(participants);
            if local == 0 {
                meetings.remove(meeting_id);
                self.metrics.meetings.set(meetings.len() as i64);
                self.mesh.close(meeting_id);
            }
            return Err(Refusal::new(ErrorCode::MeetingFull, message));
        }
        if newcomer.e2ee && !meeting.encrypted.swap(true, Ordering::Relaxed) {
            self.mesh.follow_handshakes(meeting_id);
        }
        drop(meetings);

        let others: Vec<_> = participants
            .values()
            .filter(|p| p.is_remote() || p.user != newcomer.user)
            .cloned()
            .collect();
        let mut awaiting_keyframes = Vec::new();
        if newcomer.grants.subscribe {
            for publisher in &others {
                for track in publisher.tracks() {
                    let audio = track.is_audio();
                    let target = track.layer_for(newcomer.view_of(publisher.id, track.id));
                    track.add_down_track(meeting.down_track_for(&newcomer, audio, target));
                    if !audio {
                        awaiting_keyframes.push((publisher.clone(), track));
                    }
                }
            }
        }
        newcomer.send(welcome(&meeting, &others));
        participants.insert(newcomer.id, newcomer);
        drop(participants);
        self.metrics.participants.inc();
        Ok(Admitted {
            meeting,
            awaiting_keyframes,
            replaced,
        })
    }

    /// Mirrors remote participant `remote`, hosted by relay `home`, in `meeting_id` if this
    /// relay hosts that meeting: adds it (subscribing local participants to its tracks) or,
    /// if known, takes its new state and tracks. `None` when the meeting is not here.
    pub fn join_remote(
        &self,
        meeting_id: &str,
        remote: &RemoteParticipant,
        home: &str,
        now_ms: u64,
    ) -> Option<RemoteJoin> {
        let meeting = self.get(meeting_id)?;
        let described = remote.participant.as_ref()?;
        let mut participants = write(&meeting.participants);
        if let Some(known) = participants.get(&described.id).cloned() {
            if known.home.as_deref() != Some(home) {
                // A local participant, or another relay's: not this relay's to change.
                return None;
            }
            known.apply_described(described);
            let announced = meeting.announce_locked(&participants, &known, &described.tracks);
            return Some(RemoteJoin {
                participant: known,
                new: false,
                announced,
            });
        }
        let outlet = Box::new(RemoteOutlet::new(
            self.mesh.clone(),
            meeting_id,
            described.id,
        ));
        let participant = Arc::new(Participant::remote(remote, home, outlet, now_ms)?);
        let first_remote_subscriber =
            participant.grants.subscribe && !has_remote_subscriber(&participants);
        participants.insert(participant.id, participant.clone());
        if first_remote_subscriber {
            meeting.start_sending_to_mesh(&participants);
        }
        let announced = meeting.announce_locked(&participants, &participant, &described.tracks);
        Some(RemoteJoin {
            participant,
            new: true,
            announced,
        })
    }

    /// Removes a participant (local or remote) and its subscriptions; drops the meeting when
    /// its last local participant leaves. Returns the participant if it was there.
    pub fn leave(&self, meeting: &Arc<Meeting>, id: ParticipantId) -> Option<Arc<Participant>> {
        let mut meetings = lock(&self.meetings);
        let mut participants = write(&meeting.participants);
        let removed = participants.remove(&id);
        if let Some(gone) = &removed {
            if gone.is_remote() {
                if gone.grants.subscribe && !has_remote_subscriber(&participants) {
                    meeting.stop_sending_to_mesh(&participants);
                }
            } else {
                self.metrics.participants.dec();
                for other in participants.values() {
                    for track in other.tracks() {
                        track.remove_subscriber(id);
                    }
                }
            }
            for other in participants.values() {
                other.forget_views_of(id);
            }
            lock(&meeting.speakers).forget(id);
        }
        if !participants.values().any(|p| !p.is_remote()) {
            // Only remove the registry entry if it is still this meeting object.
            if meetings
                .get(&meeting.id)
                .is_some_and(|m| Arc::ptr_eq(m, meeting))
            {
                meetings.remove(&meeting.id);
                self.metrics.meetings.set(meetings.len() as i64);
                self.mesh.close(&meeting.id);
            }
        }
        removed
    }

    /// Number of live meetings.
    pub fn count(&self) -> usize {
        lock(&self.meetings).len()
    }

    /// The live meeting `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Meeting>> {
        lock(&self.meetings).get(id).cloned()
    }

    /// Every live meeting.
    pub fn all(&self) -> Vec<Arc<Meeting>> {
        lock(&self.meetings).values().cloned().collect()
    }
}
