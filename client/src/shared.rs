//! The connection's [`Session`] (the client core: roster, encryption, keyframe requests),
//! shared by the [`crate::Client`] and every [`crate::Sender`] behind a lock that is never
//! held across an await (sealing a frame takes microseconds), with the clock it runs on.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use videocall_client_core::{Received, Session, SessionError};
use videocall_e2ee::Member;
use videocall_protocol::wire::{self, envelope::Body};

use crate::ClientError;

/// How often the encryption is asked what is due (offers, foundings, commits).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Milliseconds since the connection started: the core's time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn start() -> Self {
        Clock(Instant::now())
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

/// One connection's core session.
pub(crate) struct SharedSession {
    session: Mutex<Session>,
    clock: Clock,
}

impl SharedSession {
    pub(crate) fn new(session: Session, clock: Clock) -> Self {
        SharedSession {
            session: Mutex::new(session),
            clock,
        }
    }

    /// Runs `f` on the session.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Session) -> T) -> T {
        // A panic elsewhere while sealing leaves the state as it was: keep using it.
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut session)
    }

    /// Starts encrypting as `member`; the handshake messages to send.
    pub(crate) fn start_encryption(&self, member: Member) -> Result<Vec<Body>, SessionError> {
        let now_ms = self.clock.now_ms();
        self.with(|session| session.start_encryption(member, now_ms))
    }

    /// Seals a chat or data message (other messages pass) when encryption is on.
    pub(crate) fn seal(&self, body: &mut Body) -> Result<(), ClientError> {
        self.with(|session| session.seal(body))
            .map_err(ClientError::from)
    }

    /// Seals a media frame when encryption is on.
    pub(crate) fn seal_media(&self, media: &mut wire::Media) -> Result<(), ClientError> {
        self.with(|session| session.seal_media(media))
            .map_err(ClientError::from)
    }

    /// Takes a message from the relay.
    pub(crate) fn receive(&self, body: Body) -> Received {
        let now_ms = self.clock.now_ms();
        self.with(|session| session.receive(body, now_ms))
    }

    /// What is due by now.
    pub(crate) fn poll(&self) -> Vec<Body> {
        let now_ms = self.clock.now_ms();
        self.with(|session| session.poll(now_ms))
    }
}
