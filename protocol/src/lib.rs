//! Wire protocol of videocall: Protocol Buffers messages and their framing.
//!
//! Every message is one [`wire::Envelope`]. On WebSocket an envelope is one
//! binary message; on WebTransport streams envelopes carry a 4-byte big-endian
//! length prefix ([`length_delimited_codec`]); a WebTransport datagram carries
//! exactly one envelope without prefix. ARCHITECTURE.md documents the mapping.

pub mod avoid;
pub mod close_reason;
pub mod envelope;
pub mod framing;
pub mod ids;
pub mod sealed;

/// The generated packages, nested as they are named, so one package's references to another
/// (`super::super::media::v1`) resolve.
#[allow(missing_docs, clippy::all)]
mod generated {
    pub mod videocall {
        pub mod media {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/videocall.media.v1.rs"));
            }
        }
        pub mod mesh {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/videocall.mesh.v1.rs"));
            }
        }
    }
}

/// Generated Protocol Buffers types (`videocall.media.v1`).
pub use generated::videocall::media::v1 as wire;
/// Generated Protocol Buffers types of the relay mesh (`videocall.mesh.v1`).
pub use generated::videocall::mesh::v1 as mesh;

pub use envelope::{decode_envelope, encode_envelope, ProtocolError};
pub use framing::{encode_length_prefixed, length_delimited_codec, LENGTH_PREFIX_BYTES};

/// Version spoken by this build. Peers send it in every envelope.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest envelope accepted by default: 1 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 1024 * 1024;
