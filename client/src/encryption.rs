//! A joined client's end-to-end encryption: its [`GroupSession`] fed with what the relay says
//! (who joins and leaves, the meeting's handshake messages, refusals) and the time, and the
//! handshake messages it answers with, ready to send. No I/O: the caller reads the
//! [`crate::Client`]'s events and sends what comes back.

use std::time::Instant;

use videocall_e2ee::{GroupSession, Member};
use videocall_protocol::wire::{envelope::Body, Handshake, Joined};

/// The encryption of one session in one meeting.
pub struct Encryption {
    session: GroupSession,
    started: Instant,
}

fn bodies(handshakes: Vec<Handshake>) -> Vec<Body> {
    handshakes.into_iter().map(Body::Handshake).collect()
}

impl Encryption {
    /// Starts `member`'s encryption in the meeting the relay welcomed it to with `joined`;
    /// returns what to send.
    pub fn start(member: Member, joined: &Joined) -> (Encryption, Vec<Body>) {
        let mut session = GroupSession::new(&joined.meeting_id, member);
        let others: Vec<(u64, String)> = joined
            .participants
            .iter()
            .map(|p| (p.id, p.user.clone()))
            .collect();
        let out = session.joined(joined.participant_id, &others, joined.handshake_head, 0);
        (
            Encryption {
                session,
                started: Instant::now(),
            },
            bodies(out),
        )
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Takes one message from the relay; returns what to send. Messages that are not about
    /// the group are left alone.
    pub fn on_message(&mut self, body: &Body) -> Vec<Body> {
        let now = self.now_ms();
        let out = match body {
            Body::ParticipantJoined(joined) => {
                if let Some(p) = &joined.participant {
                    self.session.participant_joined(p.id, &p.user);
                }
                self.session.poll(now)
            }
            Body::ParticipantLeft(left) => {
                self.session.participant_left(left.participant_id);
                self.session.poll(now)
            }
            Body::Handshake(handshake) => self.session.handshake(handshake, now),
            Body::HandshakeRefused(refusal) => self.session.refused_by_relay(refusal, now),
            _ => Vec::new(),
        };
        bodies(out)
    }

    /// What is due by now (offers, a founding, a commit); call now and then.
    pub fn poll(&mut self) -> Vec<Body> {
        let now = self.now_ms();
        bodies(self.session.poll(now))
    }

    /// The group session: phase, member (epoch, roster, codes), sealing and opening.
    pub fn session(&mut self) -> &mut GroupSession {
        &mut self.session
    }
}
