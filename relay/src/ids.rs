//! Identifiers every layer of the relay shares: a leaf module that imports nothing of the relay.

/// Relay-assigned participant id: the relay's QUIC server id in the top 16 bits, so ids are
/// unique across the relays of a pool.
pub type ParticipantId = u64;

/// How a participant is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// WebSocket over TCP (fallback).
    WebSocket,
    /// WebTransport over QUIC.
    WebTransport,
    /// Hosted by another relay of the meeting, reached over the bus.
    Mesh,
}

impl TransportKind {
    /// Every client transport, for metrics that must show zeros from the start.
    pub const ALL: [TransportKind; 2] = [TransportKind::WebSocket, TransportKind::WebTransport];
    /// Every kind, the bus's included, in [`TransportKind::index`] order.
    pub const EVERY: [TransportKind; 3] = [
        TransportKind::WebSocket,
        TransportKind::WebTransport,
        TransportKind::Mesh,
    ];
    /// How many kinds there are.
    pub const COUNT: usize = Self::EVERY.len();

    /// Its place in [`TransportKind::EVERY`], for per-kind arrays.
    pub fn index(self) -> usize {
        match self {
            TransportKind::WebSocket => 0,
            TransportKind::WebTransport => 1,
            TransportKind::Mesh => 2,
        }
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::WebTransport => "webtransport",
            TransportKind::Mesh => "mesh",
        }
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}
