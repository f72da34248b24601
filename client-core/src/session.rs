//! One joined connection, without I/O: what the relay says goes in with the time, and out
//! come the answers to send and the message to hand on. It answers the relay's pings, keeps
//! its own (round trip, silence), keeps the roster, holds keyframe requests to one per track
//! per interval, and, once encryption is started, seals media and chat before they leave,
//! opens them as they arrive and answers the meeting's handshake messages: nothing in clear.

use videocall_e2ee::{
    ClientEncryption, E2eeError, EncryptionCounters, GroupEvent, Member, OpenJob, SealJob,
};
use videocall_protocol::wire::{envelope::Body, Joined, Media, Participant};

use crate::chat::chat_line;
use crate::cipher_choice::{CipherChoice, CipherTook};
use crate::keepalive::{pong, Keepalive};
use crate::keyframes::KeyframeAsks;
use crate::roster::{Roster, RosterChange};
use crate::SessionError;

/// Where an encrypted session's media frames are sealed and opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameCipher {
    /// In the session, at once ([`Session::seal_media`]; media arrives opened).
    #[default]
    InSession,
    /// Frames whose payload (as it travels: plain when sent, sealed when received) has at
    /// least `from_bytes` by the caller's AES-GCM (the browser's WebCrypto, off the page's
    /// main thread, where a call costs about as much as sealing a small frame in place):
    /// [`Session::seal_or_prepare`] gives the job of such a frame to send, and such a
    /// received frame comes out as [`Received::to_open`], its cipher's answer going to
    /// [`Session::finish_open`]. Smaller frames and chat are sealed and opened in the session.
    Outside {
        /// The smallest payload handed out.
        from_bytes: usize,
    },
    /// As [`FrameCipher::Outside`], for the frames of `from_bytes` or more that wait less
    /// there: a [`CipherChoice`] learns from what frames took ([`Session::cipher_took`]).
    Fastest {
        /// The smallest payload that may be handed out.
        from_bytes: usize,
    },
}

/// How a client runs its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Answer the relay's pings (off only to play a dead peer).
    pub answer_pings: bool,
    /// Ping the relay this often; `None`: never (the transport's own keepalive is trusted).
    pub ping_interval_ms: Option<u64>,
    /// The relay counts as gone after this long without a word (with pings on: both sides
    /// ping, so a live relay is never silent that long).
    pub silence_timeout_ms: u64,
    /// At most one keyframe request per publisher's track this often.
    pub keyframe_request_interval_ms: u64,
    /// Where media frames are sealed and opened when encrypting.
    pub frame_cipher: FrameCipher,
}

impl Default for SessionOptions {
    /// A ping every 2 s, gone after 6 s of silence, a keyframe request per track per 0.5 s.
    fn default() -> Self {
        SessionOptions {
            answer_pings: true,
            ping_interval_ms: Some(2000),
            silence_timeout_ms: 6000,
            keyframe_request_interval_ms: 500,
            frame_cipher: FrameCipher::InSession,
        }
    }
}

/// What one message from the relay came to.
#[derive(Debug, Default)]
pub struct Received {
    /// What to send back (a pong, handshake messages).
    pub answers: Vec<Body>,
    /// The message to hand on: opened when encrypted; `None` when it was the session's own
    /// (a ping, the pong of its own ping, a handshake message) or did not open (or came in
    /// clear where everything is sealed).
    pub body: Option<Body>,
    /// What it did to the roster.
    pub roster: Option<RosterChange>,
    /// A sealed media frame for the caller's cipher to open ([`FrameCipher::Outside`]); its
    /// answer goes to [`Session::finish_open`].
    pub to_open: Option<ToOpen>,
}

/// A received media frame (payload still sealed) and the job that opens it.
#[derive(Debug)]
pub struct ToOpen {
    /// The frame as it came.
    pub media: Media,
    /// What the cipher needs to open it.
    pub job: OpenJob,
}

/// One joined connection.
pub struct Session {
    joined: Joined,
    options: SessionOptions,
    roster: Roster,
    keepalive: Keepalive,
    keyframes: KeyframeAsks,
    encryption: Option<ClientEncryption>,
    /// Where the next frame goes; `None`: in the session.
    choice: Option<Choice>,
}

/// The session's frame-cipher choice: a fixed line or a learned one.
enum Choice {
    Line(usize),
    Learned(CipherChoice),
}

impl Choice {
    fn of(cipher: FrameCipher) -> Option<Self> {
        match cipher {
            FrameCipher::InSession => None,
            FrameCipher::Outside { from_bytes } => Some(Choice::Line(from_bytes)),
            FrameCipher::Fastest { from_bytes } => {
                Some(Choice::Learned(CipherChoice::new(from_bytes)))
            }
        }
    }
}

impl Session {
    /// The session the relay's welcome `joined` opened at `now_ms`.
    pub fn new(joined: Joined, options: SessionOptions, now_ms: u64) -> Self {
        Session {
            roster: Roster::new(&joined.participants),
            keepalive: Keepalive::new(options.ping_interval_ms, options.silence_timeout_ms, now_ms),
            keyframes: KeyframeAsks::new(options.keyframe_request_interval_ms),
            joined,
            choice: Choice::of(options.frame_cipher),
            options,
            encryption: None,
        }
    }

    /// Whether an encrypted media frame of `bytes` goes to the caller's cipher.
    fn outside(&mut self, bytes: usize, now_ms: u64) -> bool {
        match &mut self.choice {
            None => false,
            Some(Choice::Line(from_bytes)) => bytes >= *from_bytes,
            Some(Choice::Learned(choice)) => choice.outside(bytes, now_ms),
        }
    }

    /// What an encrypted media frame's cipher took, as the caller measured it: the
    /// [`FrameCipher::Fastest`] choice learns from it (the others ignore it).
    pub fn cipher_took(&mut self, took: CipherTook) {
        if let Some(Choice::Learned(choice)) = &mut self.choice {
            choice.took(took);
        }
    }

    /// The learned choice, when [`FrameCipher::Fastest`]: its line and estimates.
    pub fn cipher_choice(&self) -> Option<&CipherChoice> {
        match &self.choice {
            Some(Choice::Learned(choice)) => Some(choice),
            _ => None,
        }
    }

    /// Own participant id.
    pub fn participant_id(&self) -> u64 {
        self.joined.participant_id
    }

    /// Starts end-to-end encryption as `member` at `now_ms`; returns the handshake messages
    /// to send. From now on media and chat are sealed (refused until in the group) and what
    /// arrives is opened.
    pub fn start_encryption(
        &mut self,
        member: Member,
        now_ms: u64,
    ) -> Result<Vec<Body>, SessionError> {
        if self.encryption.is_some() {
            return Err(SessionError::AlreadyEncrypted);
        }
        let (encryption, out) = ClientEncryption::start(member, &self.joined, now_ms);
        self.encryption = Some(encryption);
        Ok(out)
    }

    /// Whether the session encrypts.
    pub fn encrypts(&self) -> bool {
        self.encryption.is_some()
    }

    /// The session's encryption, when on: epoch, members, verification codes.
    pub fn encryption(&mut self) -> Option<&mut ClientEncryption> {
        self.encryption.as_mut()
    }

    /// What the encryption counted; `None` when the session does not encrypt.
    pub fn encryption_counters(&self) -> Option<EncryptionCounters> {
        self.encryption.as_ref().map(ClientEncryption::counters)
    }

    /// Takes one message from the relay, arrived at `now_ms`.
    pub fn receive(&mut self, body: Body, now_ms: u64) -> Received {
        self.keepalive.heard(now_ms);
        let body = match body {
            Body::Ping(ping) => {
                return Received {
                    answers: self
                        .options
                        .answer_pings
                        .then(|| pong(&ping))
                        .into_iter()
                        .collect(),
                    ..Received::default()
                };
            }
            // The answer to this session's own ping; another's (the application's) goes on.
            Body::Pong(answer) if self.keepalive.pong(&answer, now_ms) => {
                return Received::default();
            }
            other => other,
        };
        let outside = match (&self.encryption, &body) {
            (Some(_), Body::Media(media)) => self.outside(media.payload.len(), now_ms),
            _ => false,
        };
        let (answers, body) = match (&mut self.encryption, body) {
            (Some(encryption), Body::Media(media)) if outside => {
                let to_open = encryption
                    .prepare_open_media(&media)
                    .map(|job| ToOpen { media, job });
                return Received {
                    to_open,
                    ..Received::default()
                };
            }
            (Some(encryption), body) => encryption.receive(body, now_ms),
            (None, body) => (Vec::new(), Some(body)),
        };
        let roster = body.as_ref().and_then(|body| self.roster.apply(body));
        if let Some(RosterChange::Left(id)) = roster {
            self.keyframes.forget(id);
        }
        Received {
            answers,
            body,
            roster,
            to_open: None,
        }
    }

    /// What the caller's cipher made of a frame it was given to open: the frame opened, or
    /// `None` (it did not authenticate, a copy opened first, its epoch is gone, or the
    /// session stopped encrypting), dropped and counted.
    pub fn finish_open(&mut self, to_open: ToOpen, plaintext: Option<Vec<u8>>) -> Option<Media> {
        self.encryption
            .as_mut()?
            .finish_open_media(to_open.media, to_open.job, plaintext)
    }

    /// Seals `media` in place when encrypting, as [`Self::seal_media`] does; or, where
    /// [`FrameCipher::Outside`] takes a frame of its size, leaves it as it is and returns the
    /// job for the caller's cipher ([`videocall_e2ee::finish_seal_media`] puts the cipher's
    /// output in the frame). `Ok(None)`: ready to send. Not in the group yet:
    /// [`E2eeError::NoGroup`], and the frame must not be sent.
    pub fn seal_or_prepare(
        &mut self,
        media: &mut Media,
        now_ms: u64,
    ) -> Result<Option<SealJob>, E2eeError> {
        let outside = self.encryption.is_some() && self.outside(media.payload.len(), now_ms);
        match &mut self.encryption {
            Some(encryption) if outside => encryption.prepare_seal_media(media).map(Some),
            Some(encryption) => encryption.seal_media(media).map(|()| None),
            None => Ok(None),
        }
    }

    /// What is due by `now_ms`: a ping, the encryption's offers, founding or commit.
    pub fn poll(&mut self, now_ms: u64) -> Vec<Body> {
        let mut out = match &mut self.encryption {
            Some(encryption) => encryption.poll(now_ms),
            None => Vec::new(),
        };
        out.extend(self.keepalive.due(now_ms));
        out
    }

    /// Whether the relay has been silent too long at `now_ms` (the connection is gone even
    /// if the transport has not said so).
    pub fn silent(&self, now_ms: u64) -> bool {
        self.keepalive.silent(now_ms)
    }

    /// The latest round trip to the relay, from this session's pings.
    pub fn rtt_ms(&self) -> Option<u64> {
        self.keepalive.rtt_ms()
    }

    /// The others, in the order they came.
    pub fn participants(&self) -> &[Participant] {
        self.roster.participants()
    }

    /// Seals a chat or data message in place when encrypting (other messages pass). Not in
    /// the group yet: [`E2eeError::NoGroup`], and it must not be sent.
    pub fn seal(&mut self, body: &mut Body) -> Result<(), E2eeError> {
        match &mut self.encryption {
            Some(encryption) => encryption.seal(body),
            None => Ok(()),
        }
    }

    /// Seals a media frame in place when encrypting (see [`Self::seal`]).
    pub fn seal_media(&mut self, media: &mut Media) -> Result<(), E2eeError> {
        match &mut self.encryption {
            Some(encryption) => encryption.seal_media(media),
            None => Ok(()),
        }
    }

    /// The chat line `text`, sent at `sent_at_ms`, ready to send (sealed when encrypting).
    pub fn chat(&mut self, text: &str, sent_at_ms: u64) -> Result<Body, E2eeError> {
        let mut line = chat_line(text, sent_at_ms);
        self.seal(&mut line)?;
        Ok(line)
    }

    /// The keyframe request for `participant`'s `track` at `now_ms`, unless one went out
    /// less than the interval ago.
    pub fn ask_keyframe(&mut self, participant: u64, track: u32, now_ms: u64) -> Option<Body> {
        self.keyframes.ask(participant, track, now_ms)
    }

    /// The next thing that happened to the encrypted group.
    pub fn next_group_event(&mut self) -> Option<GroupEvent> {
        self.encryption.as_mut()?.next_event()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use videocall_protocol::wire::{DataMessage, ParticipantJoined, ParticipantLeft, Ping, Pong};

    fn session_with(options: SessionOptions) -> Session {
        let joined = Joined {
            participant_id: 1,
            meeting_id: "m-1".into(),
            participants: vec![Participant {
                id: 2,
                ..Default::default()
            }],
            ..Default::default()
        };
        Session::new(joined, options, 0)
    }

    #[test]
    fn pings_are_answered_and_not_handed_on() {
        let mut session = session_with(SessionOptions::default());
        let received = session.receive(
            Body::Ping(Ping {
                nonce: 9,
                sent_at_us: 5,
            }),
            10,
        );
        assert!(received.body.is_none());
        assert!(matches!(
            received.answers.as_slice(),
            [Body::Pong(Pong {
                nonce: 9,
                sent_at_us: 5
            })]
        ));
        let mut mute = session_with(SessionOptions {
            answer_pings: false,
            ..SessionOptions::default()
        });
        assert!(mute
            .receive(Body::Ping(Ping::default()), 10)
            .answers
            .is_empty());
    }

    #[test]
    fn own_pings_go_out_on_poll_and_their_pongs_give_the_round_trip() {
        let mut session = session_with(SessionOptions::default());
        let out = session.poll(1000);
        let Some(Body::Ping(ping)) = out.first() else {
            panic!("a ping: {out:?}");
        };
        let received = session.receive(
            Body::Pong(Pong {
                nonce: ping.nonce,
                sent_at_us: ping.sent_at_us,
            }),
            1030,
        );
        assert!(received.body.is_none());
        assert_eq!(session.rtt_ms(), Some(30));
        // The pong of a ping the application sent itself goes on to it.
        let theirs = session.receive(
            Body::Pong(Pong {
                nonce: 77,
                sent_at_us: 1,
            }),
            1040,
        );
        assert!(matches!(
            theirs.body,
            Some(Body::Pong(Pong { nonce: 77, .. }))
        ));
        assert_eq!(session.rtt_ms(), Some(30));
        // Without pings of its own, nothing is due.
        let mut quiet = session_with(SessionOptions {
            ping_interval_ms: None,
            ..SessionOptions::default()
        });
        assert!(quiet.poll(1000).is_empty());
    }

    #[test]
    fn silence_is_counted_from_the_last_message() {
        let mut session = session_with(SessionOptions::default());
        session.receive(Body::Ping(Ping::default()), 5000);
        assert!(!session.silent(11_000));
        assert!(session.silent(11_001));
    }

    #[test]
    fn the_roster_follows_joins_and_leaves_and_forgets_their_keyframe_requests() {
        let mut session = session_with(SessionOptions::default());
        assert!(session.ask_keyframe(2, 1, 0).is_some());
        assert!(session.ask_keyframe(2, 1, 100).is_none());
        let left = session.receive(
            Body::ParticipantLeft(ParticipantLeft {
                participant_id: 2,
                ..Default::default()
            }),
            200,
        );
        assert_eq!(left.roster, Some(RosterChange::Left(2)));
        assert!(left.body.is_some(), "handed on too");
        assert!(session.participants().is_empty());
        let joined = session.receive(
            Body::ParticipantJoined(ParticipantJoined {
                participant: Some(Participant {
                    id: 2,
                    ..Default::default()
                }),
            }),
            300,
        );
        assert_eq!(joined.roster, Some(RosterChange::Joined(2)));
        assert!(session.ask_keyframe(2, 1, 300).is_some());
    }

    #[test]
    fn chat_goes_in_clear_where_the_meeting_is_not_encrypted() {
        let mut session = session_with(SessionOptions::default());
        assert!(!session.encrypts());
        let Ok(Body::Data(line)) = session.chat("hi", 7) else {
            panic!("a data message");
        };
        assert_eq!((line.topic.as_str(), line.text.as_str()), ("chat", "hi"));
        let clear = Body::Data(DataMessage {
            topic: "chat".into(),
            text: "hello".into(),
            ..Default::default()
        });
        assert!(session.receive(clear, 10).body.is_some());
        assert!(session.encryption_counters().is_none());
    }
}
