//! The gateway: the platform's one public entry.
//!
//! - **QUIC** (WebTransport): every UDP datagram goes to the relay that owns its
//!   connection, decided from the datagram alone ([`router`]): relay-issued connection IDs
//!   carry the relay's server id, and a client's first Initial names its relay in the TLS
//!   server name (`relay-<n>.<domain>`). Flows ([`udp`]) are only the way back.
//! - **HTTP**: `/relay/<n>/…` (WebSocket) goes to relay `n`; everything else to the
//!   control plane (web client, grpc-web) ([`http`]); a WebSocket is spliced so that the
//!   relay's last words always reach the client ([`splice`]).
//!
//! Relays are found by server id ([`backends`]): fixed addresses, or a host-name template
//! such as a StatefulSet pod's DNS name.

#![warn(missing_docs)]

pub mod backends;
pub mod config;
pub mod http;
pub mod metrics;
pub mod router;
pub mod server;
pub mod splice;
pub mod udp;

pub use config::GatewayConfig;
pub use server::{start, start_on, start_on_sockets, GatewayHandle, GatewayInfo, StartError};
