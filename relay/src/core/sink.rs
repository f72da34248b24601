//! The core's only way out: what it hands a transport for one participant ([`Outlet`]) and
//! for one subscriber's copy of one track ([`MediaSink`]). Transports implement both; a
//! unit test implements them with vectors.

use std::time::Instant;

use bytes::Bytes;
use videocall_protocol::LENGTH_PREFIX_BYTES;

use super::bandwidth::LinkSample;

/// A media frame on its way to one subscriber.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The length-prefixed envelope, shared by every subscriber (never copied per subscriber).
    pub frame: Bytes,
    /// When the relay received the packet.
    pub received_at: Instant,
    /// The packet starts a group of pictures.
    pub keyframe: bool,
    /// Earlier packets of this track were dropped for this subscriber.
    pub after_gap: bool,
    /// Audio (counted apart from video).
    pub audio: bool,
}

impl Outgoing {
    /// The envelope without its length prefix (WebSocket message, datagram).
    pub fn unprefixed(&self) -> Bytes {
        unprefixed(&self.frame)
    }
}

/// `frame` without its length prefix.
pub fn unprefixed(frame: &Bytes) -> Bytes {
    frame.slice(LENGTH_PREFIX_BYTES.min(frame.len())..)
}

/// Result of offering a frame to a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued.
    Accepted {
        /// Queue depth seen before queuing.
        depth: usize,
    },
    /// Handed to the connection at once (a datagram, no queue): the offerer counts it as
    /// written ([`FanOutTally::written`](crate::metrics::FanOutTally::written)).
    Written,
    /// The queue (or the subscriber's byte budget) is full.
    Full,
    /// The subscriber is gone.
    Closed,
}

/// The control queue is full: the participant stopped reading and must go.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("control queue is full")]
pub struct ControlQueueFull;

/// Where one subscriber's copy of one track goes. Never waits.
pub trait MediaSink: Send + Sync {
    /// Hands `out` to the subscriber's transport without waiting.
    fn offer(&self, out: Outgoing) -> Offer;
}

/// How the core reaches one participant. Never waits.
pub trait Outlet: Send + Sync {
    /// Queues a length-prefixed control envelope.
    fn send_control(&self, frame: Bytes) -> Result<(), ControlQueueFull>;
    /// A sink for one newly subscribed track (`audio` or video). Creating one must not
    /// start work: the core calls this under its meeting lock.
    fn media_sink(&self, audio: bool) -> Box<dyn MediaSink>;
    /// The session must end: the transport stops reading and writing, then closes.
    fn close(&self);
    /// What the transport knows of its link to the participant now, for bandwidth estimation
    /// (`at_ms` is the core's to set); `None` when it knows nothing (no estimate is made).
    /// Never waits.
    fn link_sample(&self) -> Option<LinkSample> {
        None
    }
}
