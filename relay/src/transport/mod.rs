//! Client transports: adapters between a connection and the core. Each one implements the
//! driver's `ClientLink` (reading) and the core's `Outlet` and `MediaSink` (writing).

pub mod cid;
mod datagram;
mod media_writer;
mod outbox;
mod queue;
pub mod session_path;
pub(crate) mod websocket;
pub(crate) mod webtransport;
