//! The UDP socket a QUIC endpoint runs on, bound with the kernel buffers asked for.
//!
//! quinn binds its socket with the kernel's default buffers (208 KiB on Linux). A relay that
//! receives the media of 50 publishers on one socket, or a client that receives 50 people's
//! video, can take in more than that between two reads: the kernel drops what does not fit
//! (`UdpRcvbufErrors`), QUIC sees it as loss, and the sender's congestion control slows down,
//! as seconds of delay. [`bind`] asks for larger buffers before the socket is handed to
//! wtransport (`with_bind_socket`) and says what the kernel gave: Linux caps the request at
//! `net.core.rmem_max` / `wmem_max` and reports twice what it grants (its bookkeeping).

#![warn(missing_docs)]

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;

use std::sync::atomic::{AtomicBool, Ordering};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// Whether this process has said that the kernel capped a socket's buffers.
static CAP_LOGGED: AtomicBool = AtomicBool::new(false);

/// Kernel buffer bytes asked for by default, each way: room for about 2,800 QUIC packets of
/// 1,452 bytes.
pub const DEFAULT_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// A bound UDP socket and the buffers the kernel gave it.
#[derive(Debug)]
pub struct BoundUdpSocket {
    /// The socket, to hand to the QUIC endpoint.
    pub socket: UdpSocket,
    /// The receive buffer the kernel reports (`SO_RCVBUF`).
    pub recv_buffer_bytes: usize,
    /// The send buffer the kernel reports (`SO_SNDBUF`).
    pub send_buffer_bytes: usize,
}

/// Binds a UDP socket at `addr` and asks for `buffer_bytes` of receive and send buffer (0: the
/// kernel's default). The unspecified IPv6 address (`[::]`) takes IPv4 too, as wtransport's
/// own client socket does. A buffer the kernel caps below what was asked is logged (raise
/// `net.core.rmem_max` and `wmem_max`), not an error: the socket still works.
pub fn bind(addr: SocketAddr, buffer_bytes: usize) -> std::io::Result<BoundUdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.ip() == std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED) {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    let socket = UdpSocket::from(socket);
    let (recv_buffer_bytes, send_buffer_bytes) = set_buffers(&socket, buffer_bytes)?;
    Ok(BoundUdpSocket {
        socket,
        recv_buffer_bytes,
        send_buffer_bytes,
    })
}

/// Asks for `buffer_bytes` of receive and send buffer on a socket bound elsewhere (0: leaves
/// them); returns the receive and send buffers the kernel reports. A cap is logged as by
/// [`bind`], once per process: a gateway opens a socket per client and a load generator one per
/// participant, and the kernel caps them all alike.
pub fn set_buffers<S: AsFd>(socket: &S, buffer_bytes: usize) -> std::io::Result<(usize, usize)> {
    let socket = SockRef::from(socket);
    if buffer_bytes > 0 {
        socket.set_recv_buffer_size(buffer_bytes)?;
        socket.set_send_buffer_size(buffer_bytes)?;
    }
    let recv_buffer_bytes = socket.recv_buffer_size()?;
    let send_buffer_bytes = socket.send_buffer_size()?;
    // Linux reports double what it grants; other systems report what they grant.
    let granted = |reported: usize| {
        if cfg!(target_os = "linux") {
            reported / 2
        } else {
            reported
        }
    };
    let capped =
        granted(recv_buffer_bytes) < buffer_bytes || granted(send_buffer_bytes) < buffer_bytes;
    if capped && !CAP_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            addr = ?socket.local_addr().ok().and_then(|addr| addr.as_socket()),
            asked = buffer_bytes,
            recv_buffer_bytes,
            send_buffer_bytes,
            "the kernel capped the UDP socket's buffers below what was asked \
             (raise net.core.rmem_max and net.core.wmem_max): packets that arrive faster \
             than they are read are dropped sooner"
        );
    }
    Ok((recv_buffer_bytes, send_buffer_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest buffer an unprivileged socket may ask for here.
    fn kernel_cap(name: &str) -> usize {
        std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn a_socket_gets_the_buffers_asked_for_up_to_the_kernels_cap() {
        let asked = 1024 * 1024;
        let bound = bind(SocketAddr::from(([127, 0, 0, 1], 0)), asked).expect("bind");
        assert!(bound.socket.local_addr().expect("address").port() > 0);
        let expected_recv = asked.min(kernel_cap("rmem_max"));
        let expected_send = asked.min(kernel_cap("wmem_max"));
        assert!(
            bound.recv_buffer_bytes >= expected_recv,
            "receive buffer {} for {expected_recv} asked",
            bound.recv_buffer_bytes
        );
        assert!(
            bound.send_buffer_bytes >= expected_send,
            "send buffer {} for {expected_send} asked",
            bound.send_buffer_bytes
        );
        // What the socket reports is what it has: a second look agrees.
        let again = socket2::SockRef::from(&bound.socket);
        assert_eq!(
            again.recv_buffer_size().expect("size"),
            bound.recv_buffer_bytes
        );
    }

    #[test]
    fn zero_leaves_the_kernels_default() {
        let bound = bind(SocketAddr::from(([127, 0, 0, 1], 0)), 0).expect("bind");
        let default = kernel_cap("rmem_default");
        if default != usize::MAX {
            // Linux reports double the default it grants.
            assert!(bound.recv_buffer_bytes <= 2 * default);
        }
    }

    #[test]
    fn a_socket_bound_elsewhere_gets_its_buffers_too() {
        let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let before = SockRef::from(&socket).recv_buffer_size().expect("size");
        let asked = 1024 * 1024;
        let (recv, _send) = set_buffers(&socket, asked).expect("buffers");
        assert!(
            recv >= asked.min(kernel_cap("rmem_max")),
            "{recv} for {asked}"
        );
        assert!(recv >= before);
    }

    #[test]
    fn an_address_in_use_is_an_error() {
        let first = bind(SocketAddr::from(([127, 0, 0, 1], 0)), 0).expect("bind");
        let taken = first.socket.local_addr().expect("address");
        assert!(bind(taken, 0).is_err());
    }
}
