//! The videocall media relay: a selective forwarding unit.
//!
//! Clients join a meeting over WebTransport or WebSocket with a signed token; every
//! media packet a publisher sends on a track it announced is forwarded, encoded once and
//! shared, to every other subscribed participant. See ARCHITECTURE.md for the life of a
//! packet.
//!
//! Layers, each importing only those below it:
//! - leaves: `ids`, `reason`, `config`, `info`, `metrics`, `log_throttle`;
//! - `core`: meetings, participants, tracks, admission; no I/O, time passed in (its
//!   `script` drives it from arbitrary bytes, for the fuzzer);
//! - `driver`: one connection's lifecycle, for every transport;
//! - `transport`: WebTransport and WebSocket adapters;
//! - `mesh`: the bus adapter, so relays share meetings;
//! - `state`, `http`, `control_plane`, `server`: the running process.

#![warn(missing_docs)]

mod client_address;
pub mod config;
mod control_plane;
mod core;
mod driver;
mod http;
mod ids;
mod info;
mod log_throttle;
mod mesh;
mod metrics;
mod reason;
mod server;
mod state;
mod subjects;
mod transport;
mod udp_offload;

pub use crate::core::script;
pub use config::RelayConfig;
pub use control_plane::LinkError;
pub use info::RelayInfo;
pub use server::{start, start_with_bus, start_with_verifier, RelayHandle, StartError};
pub use state::RelayState;
pub use videocall_bus::{Bus, MemoryHub};
