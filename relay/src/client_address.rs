//! Who a connection's client is, for the per-client limits: the peer's own address, or,
//! behind a trusted proxy (the gateway), what the proxy can tell.
//!
//! A leaf: addresses in, a key out, no I/O.
//!
//! - WebSocket: a trusted proxy names the client in `X-Forwarded-For`; the rightmost entry
//!   that is not itself a trusted proxy is the client (entries further left were written by
//!   the client and prove nothing). From any other peer the header is ignored.
//! - WebTransport: the gateway forwards each client's datagrams from a socket of its own
//!   (one per client address and port), so a connection from a trusted proxy is keyed by
//!   that socket address: one client flow, never the whole gateway.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The client a per-client budget is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A client address.
    Address(IpAddr),
    /// One flow of a proxy that forwards each client from a socket of its own.
    ProxiedFlow(SocketAddr),
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientKey::Address(address) => address.fmt(f),
            ClientKey::ProxiedFlow(flow) => write!(f, "proxied flow {flow}"),
        }
    }
}

/// Whether `address` is one of the `trusted` proxies.
fn is_trusted(address: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&address))
}

/// The client of a WebSocket from `peer` that carried `forwarded_for` (every
/// `X-Forwarded-For` value, in order).
pub fn websocket_client<'a>(
    peer: SocketAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> ClientKey {
    let peer = peer.ip().to_canonical();
    if !is_trusted(peer, trusted) {
        return ClientKey::Address(peer);
    }
    let entries: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    for entry in entries.iter().rev() {
        let Some(address) = parse_entry(entry) else {
            // An entry that is not an address: nothing to its left can be trusted.
            break;
        };
        if !is_trusted(address, trusted) {
            return ClientKey::Address(address);
        }
    }
    ClientKey::Address(peer)
}

/// The client of a WebTransport session from `peer`.
pub fn webtransport_client(peer: SocketAddr, trusted: &[IpNet]) -> ClientKey {
    let ip = peer.ip().to_canonical();
    if is_trusted(ip, trusted) {
        ClientKey::ProxiedFlow(SocketAddr::new(ip, peer.port()))
    } else {
        ClientKey::Address(ip)
    }
}

/// One `X-Forwarded-For` entry: an address, with or without a port (`[v6]:port`, `v4:port`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    entry
        .parse::<SocketAddr>()
        .ok()
        .map(|socket| socket.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("net")).collect()
    }

    fn peer(text: &str) -> SocketAddr {
        text.parse().expect("socket address")
    }

    fn address(text: &str) -> ClientKey {
        ClientKey::Address(text.parse().expect("address"))
    }

    #[test]
    fn a_header_from_an_untrusted_peer_is_ignored() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            websocket_client(peer("203.0.113.9:5000"), ["198.51.100.1"], &trusted),
            address("203.0.113.9")
        );
        assert_eq!(
            websocket_client(peer("203.0.113.9:5000"), [], &[]),
            address("203.0.113.9")
        );
    }

    #[test]
    fn behind_the_gateway_the_rightmost_untrusted_entry_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        // The client wrote a fake entry of its own; the gateway appended the real one.
        assert_eq!(
            websocket_client(peer("10.1.2.3:40000"), ["1.2.3.4, 198.51.100.7"], &trusted),
            address("198.51.100.7")
        );
        // Two proxies in a row (a load balancer, then the gateway), in separate headers.
        assert_eq!(
            websocket_client(
                peer("127.0.0.1:40000"),
                ["198.51.100.7", "10.9.9.9"],
                &trusted
            ),
            address("198.51.100.7")
        );
        // Ports and IPv4-mapped IPv6 are understood.
        assert_eq!(
            websocket_client(peer("10.1.2.3:1"), ["[::ffff:198.51.100.8]:443"], &trusted),
            address("198.51.100.8")
        );
        // Garbage stops the walk; a trusted peer with nothing usable counts as itself.
        assert_eq!(
            websocket_client(peer("10.1.2.3:1"), ["198.51.100.7, unknown"], &trusted),
            address("10.1.2.3")
        );
        assert_eq!(
            websocket_client(peer("10.1.2.3:1"), [], &trusted),
            address("10.1.2.3")
        );
    }

    #[test]
    fn quic_from_the_gateway_is_one_flow_per_client_and_direct_quic_is_its_address() {
        let trusted = nets(&["127.0.0.1/32"]);
        assert_eq!(
            webtransport_client(peer("127.0.0.1:50001"), &trusted),
            ClientKey::ProxiedFlow(peer("127.0.0.1:50001"))
        );
        assert_eq!(
            webtransport_client(peer("[::ffff:198.51.100.7]:443"), &trusted),
            address("198.51.100.7")
        );
    }
}
