//! What clients and tools learn about a running relay (`/info`, the ready file, the
//! control plane's registration). A leaf: the server fills it, the others read it.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// What clients and tools learn about a running relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayInfo {
    /// Relay id.
    pub relay_id: String,
    /// Server id carried by the relay's QUIC connection IDs (gateway routing).
    pub quic_server_id: u16,
    /// WebTransport URL.
    pub webtransport_url: String,
    /// WebSocket URL.
    pub websocket_url: String,
    /// Admin base URL (metrics, health, drain).
    pub admin_url: String,
    /// Bound WebTransport (UDP) address.
    pub webtransport_addr: SocketAddr,
    /// Bound WebSocket (TCP) address.
    pub websocket_addr: SocketAddr,
    /// Bound admin (TCP) address.
    pub admin_addr: SocketAddr,
    /// SHA-256 of the WebTransport certificate, hex; browsers pass it as
    /// `serverCertificateHashes` when the certificate is self-signed.
    pub certificate_sha256: String,
    /// Whether the certificate is self-signed.
    pub self_signed: bool,
    /// Protocol version.
    pub protocol_version: u32,
    /// Largest accepted envelope.
    pub max_frame_size: usize,
    /// Draining now.
    pub draining: bool,
    /// Live meetings now.
    pub meetings: usize,
    /// Process id.
    pub pid: u32,
    /// UDP datagrams quinn may hand the kernel in one send on this machine (generic
    /// segmentation offload; 1: none, one system call per QUIC packet).
    #[serde(default)]
    pub udp_gso_segments: usize,
    /// UDP datagrams one receive may return (generic receive offload; 1: none).
    #[serde(default)]
    pub udp_gro_segments: usize,
    /// The WebTransport socket's receive buffer, as the kernel reports it (Linux: twice
    /// what it granted).
    #[serde(default)]
    pub udp_recv_buffer_bytes: usize,
    /// The WebTransport socket's send buffer, as the kernel reports it.
    #[serde(default)]
    pub udp_send_buffer_bytes: usize,
}
