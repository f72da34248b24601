//! What the kernel lets quinn batch on the relay's UDP socket: quinn-udp sends a connection's
//! packets in one system call with generic segmentation offload (GSO) and reads several with
//! GRO where the kernel has them, by itself. This asks quinn-udp what it found, on a socket
//! of the same address family, so the relay can say it at start (`/info`, the log).

use std::net::{SocketAddr, UdpSocket};

/// Datagrams per send and per receive quinn-udp uses here (1: no offload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpOffload {
    pub gso_segments: usize,
    pub gro_segments: usize,
}

/// Probes a loopback socket of `addr`'s family; 1 and 1 when it cannot tell.
pub fn probe(addr: SocketAddr) -> UdpOffload {
    let loopback: SocketAddr = if addr.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let state = UdpSocket::bind(loopback)
        .and_then(|socket| quinn_udp::UdpSocketState::new((&socket).into()));
    match state {
        Ok(state) => UdpOffload {
            gso_segments: state.max_gso_segments(),
            gro_segments: state.gro_segments(),
        },
        Err(error) => {
            tracing::warn!(%error, "could not ask the kernel for UDP offloads");
            UdpOffload {
                gso_segments: 1,
                gro_segments: 1,
            }
        }
    }
}
