//! The session's end-to-end encryption in the page: one [`ClientEncryption`] (the same code the
//! native client runs), shared by the session loop, which feeds it what the relay says and
//! shows what happens to the group, and the encoders' output, which seals every frame before
//! it leaves. The page's wasm has one thread, so a `RefCell` holds it; sealing a frame takes
//! microseconds (see `window.__videocall.e2ee`).

use std::cell::RefCell;
use std::rc::Rc;

use dioxus::prelude::*;

use videocall_e2ee::{
    ClientEncryption, E2eeError, EncryptionCounters, GroupEvent, Member, MemberSeed, SigningKey,
};
use videocall_protocol::wire::{envelope::Body, Joined, Media};

use super::view::{EncryptionView, MemberView};
use super::Session;
use crate::control::JoinGrant;
use crate::js;

/// How many refusals the UI keeps.
const KEPT_REFUSALS: usize = 5;

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
    encryption: ClientEncryption,
    started_ms: f64,
    time: CryptoTime,
}

/// The session's encryption: off until [`Encryption::start`], off again at
/// [`Encryption::stop`] (a lost connection; the next one starts afresh).
#[derive(Clone, Default)]
pub struct Encryption(Rc<RefCell<Option<Running>>>);

/// What a grant says about encryption: its seed when the meeting requires it.
pub fn seed_of(key: &SigningKey, grant: &JoinGrant) -> Result<Option<MemberSeed>, E2eeError> {
    if !grant.e2ee_required {
        return Ok(None);
    }
    let keys = grant
        .e2ee_verification_keys
        .as_ref()
        .map(|k| k.keys.as_slice())
        .unwrap_or_default();
    MemberSeed::new(
        key.clone(),
        &grant.e2ee_credential,
        keys.iter().map(|k| (k.kid.as_str(), k.public_key.as_str())),
        &grant.meeting_id,
    )
    .map(Some)
}

impl Encryption {
    /// Starts `member`'s encryption in the meeting `joined` welcomed it to; returns what to
    /// send.
    pub fn start(&self, member: Member, joined: &Joined) -> Vec<Body> {
        let (encryption, out) = ClientEncryption::start(member, joined, 0);
        *self.0.borrow_mut() = Some(Running {
            encryption,
            started_ms: js::now_ms(),
            time: CryptoTime::default(),
        });
        out
    }

    /// Off (the connection is gone).
    pub fn stop(&self) {
        self.0.borrow_mut().take();
    }

    fn with<T>(&self, f: impl FnOnce(&mut Running, u64) -> T) -> Option<T> {
        let mut running = self.0.borrow_mut();
        let running = running.as_mut()?;
        let now_ms = (js::now_ms() - running.started_ms).max(0.0) as u64;
        Some(f(running, now_ms))
    }

    /// Seals a media frame when encryption is on. `Err(NoGroup)`: not in the group yet, and
    /// the frame must not leave.
    pub fn seal_media(&self, media: &mut Media) -> Result<(), E2eeError> {
        self.with(|running, _| {
            let bytes = media.payload.len() as u64;
            let start = js::monotonic_ms();
            let sealed = running.encryption.seal_media(media);
            running.time.seal_ms += js::monotonic_ms() - start;
            running.time.sealed += 1;
            running.time.sealed_bytes += bytes;
            sealed
        })
        .unwrap_or(Ok(()))
    }

    /// Seals a chat message (other messages pass) when encryption is on.
    pub fn seal(&self, body: &mut Body) -> Result<(), E2eeError> {
        self.with(|running, _| running.encryption.seal(body))
            .unwrap_or(Ok(()))
    }

    /// Takes a message from the relay: what to answer, and what to hand on (opened; `None`
    /// when it did not open, came in clear, or was the encryption's own). Off: the message
    /// as it came.
    pub fn receive(&self, body: Body) -> (Vec<Body>, Option<Body>) {
        let mut running = self.0.borrow_mut();
        let Some(running) = running.as_mut() else {
            return (Vec::new(), Some(body));
        };
        let now_ms = (js::now_ms() - running.started_ms).max(0.0) as u64;
        let bytes = match &body {
            Body::Media(media) => Some(media.payload.len() as u64),
            _ => None,
        };
        let start = js::monotonic_ms();
        let received = running.encryption.receive(body, now_ms);
        if let Some(bytes) = bytes {
            running.time.open_ms += js::monotonic_ms() - start;
            running.time.opened += 1;
            running.time.opened_bytes += bytes;
        }
        received
    }

    /// What is due by now (offers, a founding, a commit).
    pub fn poll(&self) -> Vec<Body> {
        self.with(|running, now_ms| running.encryption.poll(now_ms))
            .unwrap_or_default()
    }

    /// The next thing that happened to the group.
    pub fn next_event(&self) -> Option<GroupEvent> {
        self.with(|running, _| running.encryption.next_event())
            .flatten()
    }

    /// What was sealed, held back, opened and dropped, and the time it took.
    pub fn figures(&self) -> Option<(EncryptionCounters, CryptoTime)> {
        self.with(|running, _| (running.encryption.counters(), running.time))
    }
}

/// What `event` does to the view.
pub fn apply(view: &mut EncryptionView, event: GroupEvent) {
    match event {
        GroupEvent::Epoch { epoch, members } => {
            view.epoch = Some(epoch);
            view.members = members
                .into_iter()
                .map(|member| MemberView {
                    name: member.shown_name().to_owned(),
                    code: member.code,
                    guest: member.identity.guest,
                    me: member.me,
                })
                .collect();
        }
        GroupEvent::Left { reason } => {
            view.epoch = None;
            view.members.clear();
            view.waiting_reason = Some(reason);
        }
        GroupEvent::Refused { reason, .. } => {
            if view.refusals.len() >= KEPT_REFUSALS {
                view.refusals.remove(0);
            }
            view.refusals.push(reason);
        }
    }
}

impl Session {
    /// Shows what happened to the encrypted group; a new epoch is one the others have no
    /// frame of yet: the senders start it with a keyframe.
    pub(super) fn group_events(&mut self) {
        while let Some(event) = self.encryption.next_event() {
            if matches!(event, GroupEvent::Epoch { .. }) {
                for sender in [self.camera.as_ref(), self.screen.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    sender.request_keyframe();
                }
            }
            if let GroupEvent::Refused { from, reason } = &event {
                web_sys::console::warn_1(
                    &format!("encryption: refused from participant {from}: {reason}").into(),
                );
            }
            self.signals.encryption.with_mut(|view| apply(view, event));
        }
    }
}
