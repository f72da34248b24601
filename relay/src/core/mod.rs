//! The relay's core: meetings, participants, published and down tracks, admission, the
//! simulcast layer and keyframe gate, byte budgets, keyframe-request coalescing and drop accounting, with no
//! I/O. Frames and the time come in; everything that goes out goes through the [`Outlet`]
//! and [`MediaSink`] of the participant it is for. Transports and the bus are adapters
//! around it (see `crate::driver`).

mod admission;
mod allocation;
mod audit;
mod bandwidth;
mod budget;
mod clock;
mod handshake;
mod host;
mod join_budget;
mod layers;
mod meeting;
mod mesh;
mod moderation;
mod participant;
mod relay;
mod remote;
pub mod script;
mod session;
mod sink;
mod speakers;
mod sync;
mod track;

#[cfg(test)]
mod tests;

pub use admission::admit;
pub use audit::HostActionReport;
pub use bandwidth::{Congestion, LinkSample, SAMPLE_INTERVAL_MS};
pub use budget::QueueBudget;
pub use clock::Now;
pub use handshake::{
    deliver as deliver_handshake, kind_label as handshake_kind_label, refused as handshake_refused,
};
pub use host::act_for_control_plane;
pub use mesh::{HandshakeOrdering, Mesh, NoMesh};
pub use moderation::ACTION_LABELS as HOST_ACTION_LABELS;
pub use participant::Participant;
pub use relay::Relay;
pub use remote::{on_event as on_mesh_event, on_media as on_mesh_media, tick as mesh_tick};
pub use session::Session;
#[cfg(test)]
use session::MAX_TRACKS;
pub use sink::{unprefixed, ControlQueueFull, MediaSink, Offer, Outgoing, Outlet};
pub(crate) use sync::lock;
