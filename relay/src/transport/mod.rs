//! Client transports. Each one turns a connection into a [`crate::session::Session`]
//! fed with inbound frames, and writes the participant's queues back out.

pub mod cid;
pub mod websocket;
pub mod webtransport;

use crate::participant::CloseReason;

/// How a participant is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// WebSocket over TCP (fallback).
    WebSocket,
    /// WebTransport over QUIC.
    WebTransport,
}

impl TransportKind {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::WebTransport => "webtransport",
        }
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Application close code for a session that ends: `0` for a normal leave,
/// otherwise the wire error code.
pub fn close_code(reason: &CloseReason) -> u32 {
    reason
        .error
        .as_ref()
        .map(|(code, _)| *code as u32)
        .unwrap_or(0)
}

/// Human-readable close reason, shortened to fit a WebSocket close frame (123 bytes).
pub fn close_text(reason: &CloseReason) -> String {
    let text = match &reason.error {
        Some((code, message)) => format!("{}: {message}", code.as_str_name()),
        None => reason.leave.as_str_name().to_string(),
    };
    truncate_utf8(text, 120)
}

fn truncate_utf8(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Decrements a gauge when dropped: counts a connection for exactly as long as it lives.
pub(crate) struct GaugeGuard(prometheus::IntGauge);

impl GaugeGuard {
    pub(crate) fn new(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
