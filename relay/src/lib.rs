//! The videocall media relay: a selective forwarding unit.
//!
//! Clients join a meeting over WebTransport or WebSocket with a signed token; every
//! media packet a publisher sends is forwarded, encoded once and shared, to every other
//! subscribed participant. See ARCHITECTURE.md for the life of a packet.

pub mod config;
pub mod control_plane;
pub mod http;
pub mod lane;
pub mod meeting;
pub mod metrics;
pub mod outbound;
pub mod participant;
pub mod server;
pub mod session;
pub mod state;
pub mod track;
pub mod transport;

pub use config::RelayConfig;
pub use server::{start, start_with_verifier, RelayHandle, RelayInfo, StartError};
