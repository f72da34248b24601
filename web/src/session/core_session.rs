//! The connection's [`Session`] of the client core (the same code the native client runs:
//! roster, pings and silence, keyframe requests, chat, end-to-end encryption), shared by the
//! session loop, which feeds it what the relay says, and the encoders' output, which seals
//! every frame before it leaves. The page's wasm has one thread, so a `RefCell` holds it;
//! sealing a frame takes microseconds (see `window.__videocall.e2ee`). Its time is the page's
//! clock in milliseconds.

use std::cell::RefCell;
use std::rc::Rc;

use videocall_client_core::{Received, Session, SessionError, SessionOptions};
use videocall_e2ee::{E2eeError, EncryptionCounters, GroupEvent, Member};
use videocall_protocol::wire::{envelope::Body, Joined, Media, Participant};

use crate::js;

/// Time spent sealing and opening media frames, for the figures.
#[derive(Debug, Default, Clone, Copy)]
pub struct CryptoTime {
    /// Media frames offered for sealing (held back ones included).
    pub sealed: u64,
    /// Milliseconds sealing them.
    pub seal_ms: f64,
    /// Their bytes.
    pub sealed_bytes: u64,
    /// Media frames received (whether they opened or not).
    pub opened: u64,
    /// Milliseconds opening them.
    pub open_ms: f64,
    /// Their bytes.
    pub opened_bytes: u64,
}

struct Running {
    session: Session,
    time: CryptoTime,
}

/// The current connection's core session: none until [`CoreSession::open`], none again at
/// [`CoreSession::close`] (a lost connection; the next one starts afresh).
#[derive(Clone, Default)]
pub struct CoreSession(Rc<RefCell<Option<Running>>>);

fn now() -> u64 {
    js::now_ms().max(0.0) as u64
}

impl CoreSession {
    /// The session the relay's welcome opened.
    pub fn open(&self, joined: Joined) {
        *self.0.borrow_mut() = Some(Running {
            session: Session::new(joined, SessionOptions::default(), now()),
            time: CryptoTime::default(),
        });
    }

    /// No session (the connection is gone).
    pub fn close(&self) {
        self.0.borrow_mut().take();
    }

    fn with<T>(&self, f: impl FnOnce(&mut Running) -> T) -> Option<T> {
        self.0.borrow_mut().as_mut().map(f)
    }

    /// Starts encrypting as `member`; returns what to send.
    pub fn start_encryption(&self, member: Member) -> Result<Vec<Body>, SessionError> {
        self.with(|running| running.session.start_encryption(member, now()))
            .unwrap_or(Ok(Vec::new()))
    }

    /// Seals a media frame when encryption is on. `Err(NoGroup)`: not in the group yet, and
    /// the frame must not leave.
    pub fn seal_media(&self, media: &mut Media) -> Result<(), E2eeError> {
        self.with(|running| {
            if !running.session.encrypts() {
                return Ok(());
            }
            let bytes = media.payload.len() as u64;
            let start = js::monotonic_ms();
            let sealed = running.session.seal_media(media);
            running.time.seal_ms += js::monotonic_ms() - start;
            running.time.sealed += 1;
            running.time.sealed_bytes += bytes;
            sealed
        })
        .unwrap_or(Ok(()))
    }

    /// The chat line `text`, ready to send (sealed when encrypting). Not connected, or not in
    /// the encrypted group yet: [`E2eeError::NoGroup`].
    pub fn chat(&self, text: &str) -> Result<Body, E2eeError> {
        self.with(|running| running.session.chat(text, now()))
            .unwrap_or(Err(E2eeError::NoGroup))
    }

    /// Takes a message from the relay: what to answer, and what to hand on (opened; `None`
    /// when it was the session's own or did not open). No session: handed on as it came.
    pub fn receive(&self, body: Body) -> Received {
        let mut running = self.0.borrow_mut();
        let Some(running) = running.as_mut() else {
            return Received {
                body: Some(body),
                ..Received::default()
            };
        };
        let media_bytes = match &body {
            Body::Media(media) if running.session.encrypts() => Some(media.payload.len() as u64),
            _ => None,
        };
        let start = js::monotonic_ms();
        let received = running.session.receive(body, now());
        if let Some(bytes) = media_bytes {
            running.time.open_ms += js::monotonic_ms() - start;
            running.time.opened += 1;
            running.time.opened_bytes += bytes;
        }
        received
    }

    /// What is due by now (a ping; offers, a founding, a commit).
    pub fn poll(&self) -> Vec<Body> {
        self.with(|running| running.session.poll(now()))
            .unwrap_or_default()
    }

    /// Whether the relay has been silent too long (gone, whatever the transport says).
    pub fn silent(&self) -> bool {
        self.with(|running| running.session.silent(now()))
            .unwrap_or(false)
    }

    /// The latest round trip to the relay.
    pub fn rtt_ms(&self) -> Option<u64> {
        self.with(|running| running.session.rtt_ms()).flatten()
    }

    /// Who else is there, in the order they came (nobody without a connection).
    pub fn participants(&self) -> Vec<Participant> {
        self.with(|running| running.session.participants().to_vec())
            .unwrap_or_default()
    }

    /// The keyframe request for `participant`'s `track`, unless one went out just now.
    pub fn ask_keyframe(&self, participant: u64, track: u32) -> Option<Body> {
        self.with(|running| running.session.ask_keyframe(participant, track, now()))
            .flatten()
    }

    /// The next thing that happened to the group.
    pub fn next_group_event(&self) -> Option<GroupEvent> {
        self.with(|running| running.session.next_group_event())
            .flatten()
    }

    /// What was sealed, held back, opened and dropped, and the time it took; `None` unless
    /// encrypting.
    pub fn figures(&self) -> Option<(EncryptionCounters, CryptoTime)> {
        self.with(|running| {
            let counters = running.session.encryption_counters()?;
            Some((counters, running.time))
        })
        .flatten()
    }
}
