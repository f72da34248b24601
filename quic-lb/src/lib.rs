//! What a stateless QUIC load balancer needs to know about QUIC, and nothing more.
//!
//! The gateway sends every datagram of a connection to the relay that owns it without
//! keeping a table of connections (in the spirit of QUIC-LB, draft-ietf-quic-load-balancers):
//!
//! - every connection ID a relay issues carries that relay's [`ServerId`] ([`cid`]), so
//!   short-header packets and the client's later long-header packets route by their
//!   destination connection ID alone;
//! - a client's first Initial carries a connection ID the client made up, so the gateway
//!   reads the server name (SNI) from the TLS ClientHello inside it ([`initial`],
//!   [`client_hello`]): `relay-3.meet.example.org` names relay 3.
//!
//! Everything here is pure: bytes in, facts out. Sockets live in the gateway.

#![warn(missing_docs)]

pub mod cid;
pub mod client_hello;
pub mod initial;
pub mod packet;

pub use cid::{ServerId, CID_LEN};
pub use client_hello::{ClientHelloError, CryptoAssembler};
pub use initial::{InitialError, OpenedInitial, MIN_INITIAL_DATAGRAM};
pub use packet::{Header, LongType, PacketError, QUIC_V1, QUIC_V2};
