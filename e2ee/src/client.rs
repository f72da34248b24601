//! A client's end-to-end encryption in one session, for the native client and the browser
//! alike: what the relay says goes in (the welcome, who joins and leaves, the meeting's
//! handshake messages, refusals, everyone's sealed media and chat), together with the time;
//! the handshake messages to answer with, the opened media and chat, and the sealed media and
//! chat to send come out. No I/O and no clock of its own.
//!
//! Nothing leaves in clear: media and chat offered before the participant is in the group are
//! refused ([`E2eeError::NoGroup`]), and nothing that arrives in clear, or does not open, is
//! handed on.

use videocall_protocol::wire::{envelope::Body, Handshake, Joined, Media};

use crate::frame_jobs::{OpenJob, SealJob};
use crate::media::{
    finish_open_media, open_chat, open_media, prepare_open_media, prepare_seal_media, seal_chat,
    seal_media,
};
use crate::session::{GroupEvent, GroupSession};
use crate::{E2eeError, Member};

/// What a client's encryption counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EncryptionCounters {
    /// Media frames and chat messages sealed and sent.
    pub sealed: u64,
    /// Media frames and chat messages not sent because the participant was not in the group.
    pub held_back: u64,
    /// Media frames and chat messages received and opened.
    pub opened: u64,
    /// Received ones that did not open (sealed in an epoch this member has no key of,
    /// tampered with, replayed), dropped.
    pub unopened: u64,
    /// Chat messages received in clear, dropped.
    pub clear_refused: u64,
}

/// The encryption of one session in one meeting.
pub struct ClientEncryption {
    session: GroupSession,
    counters: EncryptionCounters,
}

fn bodies(handshakes: Vec<Handshake>) -> Vec<Body> {
    handshakes.into_iter().map(Body::Handshake).collect()
}

impl ClientEncryption {
    /// Starts `member`'s encryption in the meeting the relay welcomed it to with `joined`, at
    /// `now_ms` (any clock in milliseconds, the same for every later call); returns what to
    /// send.
    pub fn start(member: Member, joined: &Joined, now_ms: u64) -> (ClientEncryption, Vec<Body>) {
        let mut session = GroupSession::new(&joined.meeting_id, member);
        let others: Vec<(u64, String)> = joined
            .participants
            .iter()
            .map(|p| (p.id, p.user.clone()))
            .collect();
        let out = session.joined(
            joined.participant_id,
            &others,
            joined.handshake_head,
            now_ms,
        );
        (
            ClientEncryption {
                session,
                counters: EncryptionCounters::default(),
            },
            bodies(out),
        )
    }

    /// Takes one message from the relay; returns what to send. Messages that are not about
    /// the group are left alone (media and chat are for [`Self::open`]).
    pub fn on_message(&mut self, body: &Body, now_ms: u64) -> Vec<Body> {
        let out = match body {
            Body::ParticipantJoined(joined) => {
                if let Some(p) = &joined.participant {
                    self.session.participant_joined(p.id, &p.user);
                }
                self.session.poll(now_ms)
            }
            Body::ParticipantLeft(left) => {
                self.session.participant_left(left.participant_id);
                self.session.poll(now_ms)
            }
            Body::Handshake(handshake) => self.session.handshake(handshake, now_ms),
            Body::HandshakeRefused(refusal) => self.session.refused_by_relay(refusal, now_ms),
            _ => Vec::new(),
        };
        bodies(out)
    }

    /// Takes any message from the relay: the handshake messages to answer with, and the
    /// message to hand on (media and chat opened; `None` when it did not open, came in
    /// clear, or was a handshake message, which is the encryption's alone).
    pub fn receive(&mut self, body: Body, now_ms: u64) -> (Vec<Body>, Option<Body>) {
        let out = self.on_message(&body, now_ms);
        let body = match body {
            Body::Handshake(_) | Body::HandshakeRefused(_) => None,
            other => self.open(other),
        };
        (out, body)
    }

    /// What is due by now (offers, a founding, a commit); call now and then (every few
    /// hundred milliseconds).
    pub fn poll(&mut self, now_ms: u64) -> Vec<Body> {
        bodies(self.session.poll(now_ms))
    }

    /// Seals an outgoing media frame or chat message in place; other messages pass as they
    /// are. Not in the group yet: [`E2eeError::NoGroup`], and the message must not be sent.
    pub fn seal(&mut self, body: &mut Body) -> Result<(), E2eeError> {
        match body {
            Body::Media(media) => self.seal_media(media),
            Body::Data(message) => {
                let sealed = seal_chat(self.session.member_mut(), message);
                self.count_sealed(&sealed);
                sealed
            }
            _ => Ok(()),
        }
    }

    /// Seals an outgoing media frame's payload in place (see [`Self::seal`]).
    pub fn seal_media(&mut self, media: &mut Media) -> Result<(), E2eeError> {
        let sealed = seal_media(self.session.member_mut(), media);
        self.count_sealed(&sealed);
        sealed
    }

    /// An outgoing media frame prepared for sealing in a cipher outside (see [`SealJob`];
    /// [`crate::finish_seal_media`] puts the result in the frame). Counted as [`Self::seal_media`]
    /// counts.
    pub fn prepare_seal_media(&mut self, media: &Media) -> Result<SealJob, E2eeError> {
        let job = prepare_seal_media(self.session.member_mut(), media);
        self.count_sealed(&job);
        job
    }

    /// An incoming media frame prepared for opening in a cipher outside; `None`: it was sent
    /// in clear, or cannot open here (no key of its epoch, seen before), and is dropped.
    pub fn prepare_open_media(&mut self, media: &Media) -> Option<OpenJob> {
        let job = prepare_open_media(self.session.member_mut(), media).ok();
        if job.is_none() {
            self.counters.unopened += 1;
        }
        job
    }

    /// What the cipher outside made of `job`, `media`'s: the frame opened, or `None` when it
    /// did not (tampered, a copy opened meanwhile, its epoch forgotten), dropped.
    pub fn finish_open_media(
        &mut self,
        mut media: Media,
        job: OpenJob,
        plaintext: Option<Vec<u8>>,
    ) -> Option<Media> {
        match finish_open_media(self.session.member_mut(), &mut media, job, plaintext) {
            Ok(_) => {
                self.counters.opened += 1;
                Some(media)
            }
            Err(_) => {
                self.counters.unopened += 1;
                None
            }
        }
    }

    fn count_sealed<T>(&mut self, sealed: &Result<T, E2eeError>) {
        match sealed {
            Ok(_) => self.counters.sealed += 1,
            Err(E2eeError::NoGroup) => self.counters.held_back += 1,
            Err(_) => {}
        }
    }

    /// Opens an incoming media frame or chat message; other messages pass as they are.
    /// `None`: it did not open (or came in clear) and is dropped.
    pub fn open(&mut self, body: Body) -> Option<Body> {
        let member = self.session.member_mut();
        let opened = match body {
            Body::Media(mut media) => open_media(member, &mut media).map(|_| Body::Media(media)),
            Body::Data(mut message) => {
                if message.topic != crate::SEALED_TOPIC {
                    self.counters.clear_refused += 1;
                    return None;
                }
                open_chat(member, &mut message).map(|_| Body::Data(message))
            }
            other => return Some(other),
        };
        match opened {
            Ok(body) => {
                self.counters.opened += 1;
                Some(body)
            }
            Err(_) => {
                self.counters.unopened += 1;
                None
            }
        }
    }

    /// The next thing that happened to the group (for the user interface).
    pub fn next_event(&mut self) -> Option<GroupEvent> {
        self.session.next_event()
    }

    /// What was sealed, held back, opened and dropped.
    pub fn counters(&self) -> EncryptionCounters {
        self.counters
    }

    /// The group session: phase, member (epoch, roster, codes).
    pub fn session(&mut self) -> &mut GroupSession {
        &mut self.session
    }
}
