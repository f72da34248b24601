//! The session's end-to-end encryption, shared by the [`crate::Client`] and every
//! [`crate::Sender`]: empty until [`crate::Client::start_encryption`], then the
//! [`ClientEncryption`] behind a lock that is never held across an await (sealing a frame
//! takes microseconds).

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use videocall_e2ee::{ClientEncryption, EncryptionCounters, GroupEvent, Member};
use videocall_protocol::wire::{self, envelope::Body, Joined};

use crate::ClientError;

/// How often the encryption is asked what is due (offers, foundings, commits).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(250);

struct Running {
    encryption: Mutex<ClientEncryption>,
    started: Instant,
}

/// Where a session's encryption lives once it is started.
#[derive(Default)]
pub(crate) struct Slot(OnceLock<Running>);

impl Slot {
    /// Starts `member`'s encryption for the meeting `joined` welcomed it to; returns the
    /// handshake messages to send.
    pub(crate) fn start(&self, member: Member, joined: &Joined) -> Result<Vec<Body>, ClientError> {
        let started = Instant::now();
        let (encryption, out) = ClientEncryption::start(member, joined, 0);
        self.0
            .set(Running {
                encryption: Mutex::new(encryption),
                started,
            })
            .map_err(|_| ClientError::Encryption("already started".into()))?;
        Ok(out)
    }

    pub(crate) fn is_on(&self) -> bool {
        self.0.get().is_some()
    }

    /// Runs `f` on the encryption, if it is on.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut ClientEncryption) -> T) -> Option<T> {
        let (mut encryption, _) = self.lock()?;
        Some(f(&mut encryption))
    }

    /// The encryption, locked, and the time since it started.
    fn lock(&self) -> Option<(MutexGuard<'_, ClientEncryption>, u64)> {
        let running = self.0.get()?;
        let now_ms = running.started.elapsed().as_millis() as u64;
        // A panic elsewhere while sealing leaves the state as it was: keep using it.
        let encryption = running
            .encryption
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some((encryption, now_ms))
    }

    /// Seals a chat or data message (other messages pass) when encryption is on.
    pub(crate) fn seal(&self, body: &mut Body) -> Result<(), ClientError> {
        self.with(|encryption| encryption.seal(body))
            .unwrap_or(Ok(()))
            .map_err(ClientError::from)
    }

    /// Seals a media frame when encryption is on.
    pub(crate) fn seal_media(&self, media: &mut wire::Media) -> Result<(), ClientError> {
        self.with(|encryption| encryption.seal_media(media))
            .unwrap_or(Ok(()))
            .map_err(ClientError::from)
    }

    /// Takes a message from the relay: what to answer, and the message to hand on (opened;
    /// `None` when it did not open, came in clear, or was a handshake message).
    pub(crate) fn receive(&self, body: Body) -> (Vec<Body>, Option<Body>) {
        let Some((mut encryption, now_ms)) = self.lock() else {
            return (Vec::new(), Some(body));
        };
        encryption.receive(body, now_ms)
    }

    /// What is due by now.
    pub(crate) fn poll(&self) -> Vec<Body> {
        self.lock()
            .map(|(mut encryption, now_ms)| encryption.poll(now_ms))
            .unwrap_or_default()
    }

    pub(crate) fn next_group_event(&self) -> Option<GroupEvent> {
        self.with(|encryption| encryption.next_event()).flatten()
    }

    pub(crate) fn counters(&self) -> Option<EncryptionCounters> {
        self.with(|encryption| encryption.counters())
    }
}
