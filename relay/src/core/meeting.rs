//! Meetings: who is in them, and the registry that creates them on first join and drops
//! them when the last participant leaves.
//!
//! Every change to who subscribes to what happens under the meeting's write lock (joins,
//! leaves) or read lock (a publisher's announcement), so a join and a new track never miss
//! each other. Nothing here starts work: down tracks get their sinks from the subscriber's
//! [`super::sink::Outlet`], which only prepares them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use super::participant::Participant;
use super::sync::{lock, read, write};
use super::track::{DownTrack, PublishedTrack};
use crate::ids::ParticipantId;
use crate::metrics::Metrics;
use crate::reason::Refusal;
use videocall_protocol::wire::{Codec, ErrorCode, MediaKind, Track};

/// One meeting on this relay.
pub struct Meeting {
    /// Meeting id (from the token and the URL).
    pub id: String,
    participants: RwLock<HashMap<ParticipantId, Arc<Participant>>>,
    metrics: Metrics,
}

/// What an announcement changed.
#[derive(Default)]
pub struct Announced {
    /// Tracks published by it, with their subscribers.
    pub added: Vec<Arc<PublishedTrack>>,
    /// Ids of tracks it unpublished.
    pub removed: Vec<u32>,
}

impl Meeting {
    /// Everyone in the meeting.
    pub fn participants(&self) -> Vec<Arc<Participant>> {
        read(&self.participants).values().cloned().collect()
    }

    /// One participant.
    pub fn participant(&self, id: ParticipantId) -> Option<Arc<Participant>> {
        read(&self.participants).get(&id).cloned()
    }

    /// Sends an encoded control frame to everyone but `except`.
    pub fn broadcast(&self, except: ParticipantId, frame: &Bytes) {
        for p in self.participants() {
            if p.id != except {
                p.send_frame(frame.clone());
            }
        }
    }

    /// Makes `tracks` the whole list of `publisher`'s published tracks: a track it leaves
    /// out is unpublished (its media is dropped from now on), a new one gets a copy for
    /// every current subscriber. `None` when the publisher has left.
    pub fn announce(&self, publisher: &Participant, tracks: &[Track]) -> Option<Announced> {
        let participants = read(&self.participants);
        if !participants.contains_key(&publisher.id) {
            return None;
        }
        let current = publisher.tracks();
        let mut announced = Announced::default();
        let mut next = HashMap::with_capacity(tracks.len());
        for wanted in tracks {
            if let Some(kept) = current.iter().find(|t| t.matches(wanted)) {
                next.insert(kept.id, kept.clone());
                continue;
            }
            let kind = MediaKind::try_from(wanted.kind).unwrap_or(MediaKind::Unspecified);
            let codec = Codec::try_from(wanted.codec).unwrap_or(Codec::Unspecified);
            let audio = kind == MediaKind::Audio;
            let downs = participants
                .values()
                .filter(|s| s.id != publisher.id && s.grants.subscribe)
                .map(|s| self.down_track_for(s, audio))
                .collect();
            let track = Arc::new(PublishedTrack::new(wanted.id, kind, codec, downs));
            next.insert(track.id, track.clone());
            announced.added.push(track);
        }
        for old in &current {
            if !next.get(&old.id).is_some_and(|t| Arc::ptr_eq(t, old)) {
                announced.removed.push(old.id);
            }
        }
        publisher.set_tracks(next);
        Some(announced)
    }

    fn down_track_for(&self, subscriber: &Participant, audio: bool) -> Arc<DownTrack> {
        Arc::new(DownTrack::new(
            subscriber.id,
            audio,
            subscriber.outlet().media_sink(audio),
            self.metrics.queue_depth(subscriber.transport),
        ))
    }
}

/// All meetings of this relay.
pub struct Meetings {
    meetings: Mutex<HashMap<String, Arc<Meeting>>>,
    metrics: Metrics,
}

/// What a successful join hands back.
pub struct Admitted {
    /// The meeting joined.
    pub meeting: Arc<Meeting>,
    /// Everyone who was already there.
    pub others: Vec<Arc<Participant>>,
    /// Video tracks the newcomer now waits on for a keyframe: (publisher, track).
    pub awaiting_keyframes: Vec<(Arc<Participant>, Arc<PublishedTrack>)>,
}

/// How many participants a meeting and the relay may hold.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    /// Meetings this relay hosts at most.
    pub max_meetings: usize,
    /// Participants the meeting holds at most.
    pub max_participants: usize,
}

impl Meetings {
    /// An empty registry.
    pub fn new(metrics: Metrics) -> Self {
        Meetings {
            meetings: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Adds `newcomer` to `meeting_id`, creating the meeting if needed, and subscribes
    /// it to every existing track.
    pub fn join(
        &self,
        meeting_id: &str,
        newcomer: Arc<Participant>,
        capacity: Capacity,
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
                    metrics: self.metrics.clone(),
                });
                meetings.insert(meeting_id.to_owned(), m.clone());
                self.metrics.meetings.set(meetings.len() as i64);
                m
            }
        };
        let mut participants = write(&meeting.participants);
        if participants.len() >= capacity.max_participants {
            let empty = participants.is_empty();
            drop(participants);
            if empty {
                meetings.remove(meeting_id);
                self.metrics.meetings.set(meetings.len() as i64);
            }
            return Err(Refusal::new(
                ErrorCode::MeetingFull,
                format!(
                    "meeting {meeting_id:?} is full ({} participants)",
                    capacity.max_participants
                ),
            ));
        }
        drop(meetings);

        let others: Vec<_> = participants.values().cloned().collect();
        let mut awaiting_keyframes = Vec::new();
        if newcomer.grants.subscribe {
            for publisher in &others {
                for track in publisher.tracks() {
                    let audio = track.is_audio();
                    track.add_down_track(meeting.down_track_for(&newcomer, audio));
                    if !audio {
                        awaiting_keyframes.push((publisher.clone(), track));
                    }
                }
            }
        }
        participants.insert(newcomer.id, newcomer);
        drop(participants);
        self.metrics.participants.inc();
        Ok(Admitted {
            meeting,
            others,
            awaiting_keyframes,
        })
    }

    /// Removes a participant and its subscriptions; drops the meeting when it empties.
    /// Returns whether the participant was there.
    pub fn leave(&self, meeting: &Arc<Meeting>, id: ParticipantId) -> bool {
        let mut meetings = lock(&self.meetings);
        let mut participants = write(&meeting.participants);
        let removed = participants.remove(&id).is_some();
        if removed {
            self.metrics.participants.dec();
            for other in participants.values() {
                for track in other.tracks() {
                    track.remove_subscriber(id);
                }
            }
        }
        if participants.is_empty() {
            // Only remove the registry entry if it is still this meeting object.
            if meetings
                .get(&meeting.id)
                .is_some_and(|m| Arc::ptr_eq(m, meeting))
            {
                meetings.remove(&meeting.id);
                self.metrics.meetings.set(meetings.len() as i64);
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
