//! The client side of a meeting without I/O: the native client (`videocall-client`) and the
//! browser (`videocall-web`) both run it, each with its own transports, clock and tasks around
//! it, so what a client says and does with what it hears is written and tested once.
//!
//! - [`Joining`]: the join handshake (the `Join` to send, what the relay's answer means, the
//!   deadline).
//! - [`Session`]: one joined connection: what the relay says goes in with the time, the
//!   answers to send and the message to hand on come out; who is there ([`Roster`]), pings
//!   and silence ([`Keepalive`]), keyframe requests held to one per track per interval
//!   ([`KeyframeAsks`]), chat, and end-to-end encryption (a
//!   [`videocall_e2ee::ClientEncryption`] once started: media and chat sealed before they
//!   leave and opened as they arrive, nothing in clear), the frames' AES-GCM done in the
//!   session or, as prepared jobs, by the caller ([`FrameCipher`]: the browser's WebCrypto),
//!   for every frame from a size up or for those that wait less there ([`CipherChoice`]).
//!
//! Time is always an argument (milliseconds on any clock the caller keeps, the same for
//! every call of one session), never read here.

mod chat;
mod cipher_choice;
mod error;
mod join;
mod keepalive;
mod keyframes;
mod roster;
mod session;

pub use chat::CHAT_TOPIC;
pub use cipher_choice::{CipherChoice, CipherTook, BUSY_SHARE, BUSY_WINDOW_MS, PROBE_EVERY};
pub use error::SessionError;
pub use join::{JoinRequest, JoinStep, Joining};
pub use keepalive::pong;
pub use keepalive::Keepalive;
pub use keyframes::KeyframeAsks;
pub use roster::{Roster, RosterChange};
pub use session::{FrameCipher, Received, Session, SessionOptions, ToOpen};
