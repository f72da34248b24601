//! The connection's [`Session`] of the client core (the same code the native client runs:
//! roster, pings and silence, keyframe requests, chat, end-to-end encryption), shared by the
//! session loop, which feeds it what the relay says, and the encoders' output, which seals
//! every frame before it leaves. The page's wasm has one thread, so a `RefCell` holds it. Its
//! time is the page's clock in milliseconds.
//!
//! Where the page has WebCrypto (every secure context), media frames of 1 kB and more may be
//! sealed and opened there ([`WebCrypto`]: native AES-GCM, off the main thread), so sealing
//! and opening are futures ([`Soon`]); the callers keep them in order. Which frames do is
//! the core's [`FrameCipher::Fastest`] choice: those that wait less there than in wasm (the
//! large ones where the browser answers quickly, every one when ciphering them in wasm would
//! take a noticeable share of the main thread), learned from the times measured here; or, as
//! the address says (`?frames=`), all of them or none. Smaller frames, chat, and every frame
//! where the page has no WebCrypto, go through the core's own wasm cipher at once.

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::future::{self, FutureExt, LocalBoxFuture};
use videocall_client_core::{
    CipherTook, FrameCipher, RosterChange, Session, SessionError, SessionOptions, ToOpen,
};
use videocall_e2ee::{E2eeError, EncryptionCounters, GroupEvent, Member};
use videocall_protocol::wire::{envelope::Body, Joined, Media, Participant};

use crate::js;
use crate::route::FramesChoice;
use crate::webcrypto::WebCrypto;

/// The smallest frame that may be sealed or opened in WebCrypto: starting a call costs the
/// main thread about what sealing 0.5–1 kB in wasm does (10 µs in Chromium, 20 µs in Firefox; BENCHMARKS.md,
/// `web/e2e/e2ee-bench.mjs`), so smaller frames (audio) stay in wasm and larger ones, where it
/// costs (a 60 kB keyframe: 0.8–0.9 ms of wasm), leave it.
const WEBCRYPTO_FROM_BYTES: usize = 1024;

/// Time spent sealing and opening media frames, for the figures: on the page's main thread,
/// and (with WebCrypto) from the start of a frame's cipher call to its end.
#[derive(Debug, Default, Clone, Copy)]
pub struct CryptoTime {
    /// Media frames offered for sealing (held back ones included).
    pub sealed: u64,
    /// Milliseconds of the main thread sealing them.
    pub seal_ms: f64,
    /// Those of them sealed in WebCrypto.
    pub sealed_outside: u64,
    /// Milliseconds from offering those to their sealed frames.
    pub seal_wait_ms: f64,
    /// Their bytes.
    pub sealed_bytes: u64,
    /// Media frames received (whether they opened or not).
    pub opened: u64,
    /// Milliseconds of the main thread opening them.
    pub open_ms: f64,
    /// Those of them opened in WebCrypto.
    pub opened_outside: u64,
    /// Milliseconds from the arrival of those to their opened frames.
    pub open_wait_ms: f64,
    /// Their bytes.
    pub opened_bytes: u64,
}

struct Running {
    /// Which connection this is: work begun for an earlier one is dropped.
    connection: u64,
    session: Session,
    time: CryptoTime,
}

/// What a message from the relay came to.
pub struct Arrived {
    /// What to send back at once.
    pub answers: Vec<Body>,
    /// What it did to the roster.
    pub roster: Option<RosterChange>,
    /// The message to hand on, now or (a frame being opened) later.
    pub body: Soon<Body>,
}

/// A message or frame ready now, or once its cipher is done; `None`: there is none (nothing
/// to hand on, a frame that did not open, one not to send).
pub enum Soon<T> {
    /// Now.
    Now(Option<T>),
    /// Later.
    Later(LocalBoxFuture<'static, Option<T>>),
}

impl<T: 'static> Soon<T> {
    /// As a future (one that is ready at once for [`Soon::Now`]).
    pub fn into_future(self) -> LocalBoxFuture<'static, Option<T>> {
        match self {
            Soon::Now(value) => future::ready(value).boxed_local(),
            Soon::Later(later) => later,
        }
    }

    /// `f` of the value, when there is one.
    pub fn map<U>(self, f: impl FnOnce(T) -> U + 'static) -> Soon<U> {
        match self {
            Soon::Now(value) => Soon::Now(value.map(f)),
            Soon::Later(later) => Soon::Later(later.map(|value| value.map(f)).boxed_local()),
        }
    }
}

/// The current connection's core session: none until [`CoreSession::open`], none again at
/// [`CoreSession::close`] (a lost connection; the next one starts afresh).
#[derive(Clone)]
pub struct CoreSession {
    running: Rc<RefCell<Option<Running>>>,
    cipher: Option<WebCrypto>,
    frames: FramesChoice,
    connections: Rc<std::cell::Cell<u64>>,
}

fn now() -> u64 {
    js::now_ms().max(0.0) as u64
}

impl CoreSession {
    /// No session yet; frames will be ciphered as `frames` says, in wasm where the page has
    /// no WebCrypto.
    pub fn new(frames: FramesChoice) -> Self {
        let cipher = match frames {
            FramesChoice::Wasm => None,
            FramesChoice::Fastest | FramesChoice::WebCrypto => WebCrypto::new(),
        };
        CoreSession {
            running: Rc::default(),
            cipher,
            frames,
            connections: Rc::default(),
        }
    }

    /// Where media frames are sealed and opened: `"fastest"` (each where it waits less),
    /// `"webcrypto"` (from 1 kB) or `"wasm"`.
    pub fn cipher_name(&self) -> &'static str {
        match (&self.cipher, self.frames) {
            (None, _) | (Some(_), FramesChoice::Wasm) => "wasm",
            (Some(_), FramesChoice::WebCrypto) => "webcrypto",
            (Some(_), FramesChoice::Fastest) => "fastest",
        }
    }

    /// The session the relay's welcome opened.
    pub fn open(&self, joined: Joined) {
        let connection = self.connections.get() + 1;
        self.connections.set(connection);
        let frame_cipher = match (&self.cipher, self.frames) {
            (None, _) | (Some(_), FramesChoice::Wasm) => FrameCipher::InSession,
            (Some(_), FramesChoice::WebCrypto) => FrameCipher::Outside {
                from_bytes: WEBCRYPTO_FROM_BYTES,
            },
            (Some(_), FramesChoice::Fastest) => FrameCipher::Fastest {
                from_bytes: WEBCRYPTO_FROM_BYTES,
            },
        };
        let options = SessionOptions {
            frame_cipher,
            ..SessionOptions::default()
        };
        *self.running.borrow_mut() = Some(Running {
            connection,
            session: Session::new(joined, options, now()),
            time: CryptoTime::default(),
        });
    }

    /// No session (the connection is gone).
    pub fn close(&self) {
        self.running.borrow_mut().take();
    }

    fn with<T>(&self, f: impl FnOnce(&mut Running) -> T) -> Option<T> {
        self.running.borrow_mut().as_mut().map(f)
    }

    /// `f` on the session of `connection`, if it is still the current one.
    fn with_connection<T>(&self, connection: u64, f: impl FnOnce(&mut Running) -> T) -> Option<T> {
        self.running
            .borrow_mut()
            .as_mut()
            .filter(|running| running.connection == connection)
            .map(f)
    }

    /// Starts encrypting as `member`; returns what to send.
    pub fn start_encryption(&self, member: Member) -> Result<Vec<Body>, SessionError> {
        self.with(|running| running.session.start_encryption(member, now()))
            .unwrap_or(Ok(Vec::new()))
    }

    /// A media frame on its way out: sealed where encryption is on (in WebCrypto, later, when
    /// it is large enough to be worth it), as it is where not. `None`: not to be sent (not
    /// connected, not in the group yet, or a cipher that failed).
    pub fn seal_media(&self, mut media: Media) -> Soon<Media> {
        let start = js::monotonic_ms();
        let prepared = self.with(|running| {
            if !running.session.encrypts() {
                return Ok(None);
            }
            let bytes = media.payload.len();
            running.time.sealed += 1;
            running.time.sealed_bytes += bytes as u64;
            let job = running.session.seal_or_prepare(&mut media, now());
            if !matches!(job, Ok(Some(_))) {
                let ms = js::monotonic_ms() - start;
                running.time.seal_ms += ms;
                running
                    .session
                    .cipher_took(CipherTook::Inside { bytes, ms });
            }
            job.map(|job| job.map(|job| (running.connection, job)))
        });
        let (connection, job) = match prepared {
            None | Some(Err(_)) => return Soon::Now(None),
            Some(Ok(None)) => return Soon::Now(Some(media)),
            Some(Ok(Some(prepared))) => prepared,
        };
        // Jobs come only from a session told of the cipher.
        let Some(cipher) = &self.cipher else {
            return Soon::Now(None);
        };
        let sealing = cipher.seal(&job, &media.payload);
        let issued = js::monotonic_ms();
        self.with(|running| {
            running.time.sealed_outside += 1;
            running.time.seal_ms += issued - start;
        });
        let core = self.clone();
        Soon::Later(
            async move {
                let sealed = match sealing.await {
                    Ok(sealed) => sealed,
                    Err(error) => {
                        web_sys::console::warn_1(
                            &format!(
                                "WebCrypto: a frame did not seal: {}",
                                js::error_text(&error)
                            )
                            .into(),
                        );
                        return None;
                    }
                };
                let done = js::monotonic_ms();
                // Sealed under the keys of a connection that is gone: not sent.
                core.with_connection(connection, |running| {
                    videocall_e2ee::finish_seal_media(&mut media, &job, &sealed);
                    running.time.seal_wait_ms += done - start;
                    running
                        .session
                        .cipher_took(CipherTook::Outside { ms: done - start });
                    running.time.seal_ms += js::monotonic_ms() - done;
                })?;
                Some(media)
            }
            .boxed_local(),
        )
    }

    /// The chat line `text`, ready to send (sealed when encrypting). Not connected, or not in
    /// the encrypted group yet: [`E2eeError::NoGroup`].
    pub fn chat(&self, text: &str) -> Result<Body, E2eeError> {
        self.with(|running| running.session.chat(text, now()))
            .unwrap_or(Err(E2eeError::NoGroup))
    }

    /// Takes a message from the relay: what to answer, what it did to the roster, and what
    /// to hand on (opened, now or later). No session: handed on as it came.
    pub fn receive(&self, body: Body) -> Arrived {
        let mut running = self.running.borrow_mut();
        let Some(running) = running.as_mut() else {
            return Arrived {
                answers: Vec::new(),
                roster: None,
                body: Soon::Now(Some(body)),
            };
        };
        let media_bytes = match &body {
            Body::Media(media) if running.session.encrypts() => Some(media.payload.len() as u64),
            _ => None,
        };
        let start = js::monotonic_ms();
        let received = running.session.receive(body, now());
        if let Some(bytes) = media_bytes {
            running.time.opened += 1;
            running.time.opened_bytes += bytes;
        }
        let body = match (received.to_open, &self.cipher) {
            (Some(to_open), Some(cipher)) => {
                running.time.opened_outside += 1;
                Soon::Later(self.open_later(running.connection, to_open, cipher, start))
            }
            (to_open, _) => {
                // Opened here (or refused): what wasm took, for the choice.
                if let (Some(bytes), None) = (media_bytes, to_open) {
                    let ms = js::monotonic_ms() - start;
                    running.session.cipher_took(CipherTook::Inside {
                        bytes: bytes as usize,
                        ms,
                    });
                }
                Soon::Now(received.body)
            }
        };
        if media_bytes.is_some() {
            running.time.open_ms += js::monotonic_ms() - start;
        }
        Arrived {
            answers: received.answers,
            roster: received.roster,
            body,
        }
    }

    fn open_later(
        &self,
        connection: u64,
        to_open: ToOpen,
        cipher: &WebCrypto,
        start: f64,
    ) -> LocalBoxFuture<'static, Option<Body>> {
        let opening = cipher.open(&to_open.job);
        let core = self.clone();
        async move {
            let plaintext = opening.await;
            let done = js::monotonic_ms();
            core.with_connection(connection, |running| {
                let opened = running.session.finish_open(to_open, plaintext);
                running.time.open_wait_ms += done - start;
                running
                    .session
                    .cipher_took(CipherTook::Outside { ms: done - start });
                running.time.open_ms += js::monotonic_ms() - done;
                opened.map(Body::Media)
            })
            .flatten()
        }
        .boxed_local()
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

    /// Own participant id on the current connection.
    pub fn participant_id(&self) -> Option<u64> {
        self.with(|running| running.session.participant_id())
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

    /// What the learned choice of cipher holds now (`?frames=fastest`): the smallest frame
    /// that goes to WebCrypto, and WebCrypto's round trip in milliseconds as estimated.
    pub fn cipher_choice(&self) -> Option<(usize, f64)> {
        self.with(|running| {
            let choice = running.session.cipher_choice()?;
            Some((choice.line(), choice.outside_estimate_ms()))
        })
        .flatten()
    }
}
