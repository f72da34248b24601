//! The core's port to the other relays of a meeting: what it publishes to them and the media
//! sink that carries a local track to them. The bus adapter (`crate::mesh`) implements it; a
//! relay without a bus uses [`NoMesh`]; unit tests record what goes out.
//!
//! A meeting's remote participants live in its participant map beside the local ones, marked
//! with the relay that hosts them. Local publishers' tracks get one extra down track, with
//! [`MESH_SUBSCRIBER`] as its subscriber, while any remote participant subscribes: one copy
//! per packet leaves this relay, however many remote relays and subscribers there are.

use bytes::Bytes;

use super::sink::{ControlQueueFull, MediaSink, Offer, Outgoing, Outlet};
use crate::ids::ParticipantId;
use videocall_protocol::mesh::{mesh_event, Deliver};
use videocall_protocol::wire::Handshake;

/// The subscriber id of the down track that carries a local track to the bus. Participant
/// ids are never 0 (see `Relay::next_participant_id`).
pub const MESH_SUBSCRIBER: ParticipantId = 0;

/// How the mesh took a handshake to put in order (see `super::handshake`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeOrdering {
    /// Queued for the bus's log; the outcome comes back through the core's
    /// `deliver_handshake` (on every relay of the meeting) or `handshake_refused` (here).
    Queued,
    /// The queue to the bus is full.
    Full,
    /// This relay orders its meetings' handshakes itself.
    Local,
}

/// How the core reaches the other relays. Never waits: an implementation queues.
pub trait Mesh: Send + Sync {
    /// The meeting got its first local participant: start hearing the other relays.
    /// Called under the registry lock, so opens and closes of one meeting come in order.
    fn open(&self, meeting: &str);
    /// The meeting (open) got its first local end-to-end encrypted participant: follow its
    /// handshake log until it closes. Called under the registry lock, like `open`.
    fn follow_handshakes(&self, meeting: &str);
    /// The meeting's last local participant left: stop hearing it.
    fn close(&self, meeting: &str);
    /// Publishes one event of `meeting` to the other relays.
    fn publish(&self, meeting: &str, body: mesh_event::Body);
    /// The sink that carries `publisher`'s `track` to the other relays.
    fn media_sink(
        &self,
        meeting: &str,
        publisher: ParticipantId,
        track: u32,
        audio: bool,
    ) -> Box<dyn MediaSink>;
    /// Puts a checked handshake of `meeting` (its sender set) into the order that the
    /// meeting's relays share (see `super::handshake`).
    fn append_handshake(&self, meeting: &str, handshake: &Handshake) -> HandshakeOrdering;
}

/// A relay on its own: no other relays, nothing published.
pub struct NoMesh;

impl Mesh for NoMesh {
    fn open(&self, _meeting: &str) {}
    fn follow_handshakes(&self, _meeting: &str) {}
    fn close(&self, _meeting: &str) {}
    fn publish(&self, _meeting: &str, _body: mesh_event::Body) {}
    fn media_sink(&self, _: &str, _: ParticipantId, _: u32, _: bool) -> Box<dyn MediaSink> {
        Box::new(ClosedSink)
    }
    fn append_handshake(&self, _meeting: &str, _handshake: &Handshake) -> HandshakeOrdering {
        HandshakeOrdering::Local
    }
}

/// A sink that takes nothing.
pub struct ClosedSink;

impl MediaSink for ClosedSink {
    fn offer(&self, _out: Outgoing) -> Offer {
        Offer::Closed
    }
}

/// The outlet of a participant hosted by another relay: what the core sends it (a keyframe
/// request, a direct message) travels to its relay as a `Deliver`. Broadcasts never reach it
/// (each relay tells its own participants), and its relay alone closes it.
pub struct RemoteOutlet {
    mesh: std::sync::Arc<dyn Mesh>,
    meeting: String,
    participant: ParticipantId,
}

impl RemoteOutlet {
    /// The outlet of remote `participant` of `meeting`.
    pub fn new(mesh: std::sync::Arc<dyn Mesh>, meeting: &str, participant: ParticipantId) -> Self {
        RemoteOutlet {
            mesh,
            meeting: meeting.to_owned(),
            participant,
        }
    }
}

impl Outlet for RemoteOutlet {
    fn send_control(&self, frame: Bytes) -> Result<(), ControlQueueFull> {
        self.mesh.publish(
            &self.meeting,
            mesh_event::Body::Deliver(Deliver {
                participant_id: self.participant,
                frame,
            }),
        );
        Ok(())
    }

    fn media_sink(&self, _audio: bool) -> Box<dyn MediaSink> {
        // Remote participants receive media through their own relay's copy.
        Box::new(ClosedSink)
    }

    fn close(&self) {}
}
