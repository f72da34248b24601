//! Where each datagram goes: the gateway's routing state machine, free of I/O.
//!
//! Routing is by content, not by connection table:
//! - short-header packets and long-header packets addressed to a relay-issued connection
//!   ID go to the relay named in that ID;
//! - a client's first Initial goes to the relay named by its TLS server name
//!   (`relay-<n>.…`), or to the default relay when the name names none;
//! - a ClientHello spread over several datagrams is held (briefly, boundedly) until the
//!   name shows up, then everything held is released to the chosen relay.
//!
//! The only memory is a short-lived map from a client's own Initial connection ID to the
//! relay chosen for it, so retransmitted Initials and 0-RTT packets follow the first one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use videocall_quic_lb::client_hello::ClientHelloError;
use videocall_quic_lb::{cid, initial, packet, CryptoAssembler, Header, LongType, ServerId};

/// Router settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// First label of a server name is `<prefix><server id>` (e.g. `relay-3`).
    pub sni_prefix: String,
    /// Relay for clients whose server name names no relay.
    pub default_server: ServerId,
    /// How long datagrams of an incomplete ClientHello are held before they go to the
    /// default relay.
    pub hold_timeout: Duration,
    /// How long a client's Initial connection ID is remembered.
    pub remember_for: Duration,
    /// Most handshakes held at once; more are routed to the default relay at once.
    pub max_pending: usize,
    /// Most Initial connection IDs remembered.
    pub max_remembered: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            sni_prefix: "relay-".into(),
            default_server: ServerId(0),
            hold_timeout: Duration::from_millis(500),
            remember_for: Duration::from_secs(10),
            max_pending: 4096,
            max_remembered: 65_536,
        }
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a QUIC packet.
    Malformed,
    /// A client Initial in a datagram under 1,200 bytes (RFC 9000 §14.1).
    SmallInitial,
    /// A connection ID no relay issued, and nothing else to route by.
    UnroutableCid,
    /// The ClientHello could not be read.
    BadClientHello,
    /// Too many datagrams held for one handshake.
    HoldFull,
}

impl DropReason {
    /// Every reason, for metrics.
    pub const ALL: [DropReason; 5] = [
        DropReason::Malformed,
        DropReason::SmallInitial,
        DropReason::UnroutableCid,
        DropReason::BadClientHello,
        DropReason::HoldFull,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::SmallInitial => "small_initial",
            DropReason::UnroutableCid => "unroutable_cid",
            DropReason::BadClientHello => "bad_client_hello",
            DropReason::HoldFull => "hold_full",
        }
    }
}

/// How a relay was chosen, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutedBy {
    /// The destination connection ID.
    ConnectionId,
    /// The TLS server name.
    ServerName,
    /// No name named a relay: the default relay.
    Default,
    /// An Initial connection ID seen before.
    Remembered,
}

/// What to do with a datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send it to this relay.
    Forward(ServerId, RoutedBy),
    /// Send the held datagrams of this client (oldest first), then this one, to the relay.
    Release(ServerId, RoutedBy, Vec<Vec<u8>>),
    /// The router kept a copy until the ClientHello is complete.
    Held,
    /// Drop it.
    Drop(DropReason),
}

/// Datagrams held for one handshake.
struct Pending {
    assembler: CryptoAssembler,
    held: Vec<Vec<u8>>,
    since: Instant,
}

/// Most datagrams held for one handshake.
const MAX_HELD: usize = 8;

/// The routing state machine.
pub struct Router {
    config: RouterConfig,
    pending: HashMap<(SocketAddr, Vec<u8>), Pending>,
    remembered: HashMap<Vec<u8>, (ServerId, Instant)>,
}

impl Router {
    /// A router with `config`.
    pub fn new(config: RouterConfig) -> Self {
        Self {
            config,
            pending: HashMap::new(),
            remembered: HashMap::new(),
        }
    }

    /// Handshakes being held now.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Decides where `datagram` from `from` goes.
    pub fn route(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) -> Decision {
        let header = match packet::parse(datagram) {
            Ok(header) => header,
            Err(_) => return Decision::Drop(DropReason::Malformed),
        };
        match header {
            Header::Short { dcid } => by_cid(dcid),
            Header::Long {
                kind: Some(LongType::Initial),
                dcid,
                ..
            } => self.initial(now, from, dcid, datagram),
            Header::Long {
                kind: Some(LongType::ZeroRtt),
                dcid,
                ..
            } => {
                if let Some(server) = self.remembered(now, dcid) {
                    return Decision::Forward(server, RoutedBy::Remembered);
                }
                match self.pending.get_mut(&(from, dcid.to_vec())) {
                    Some(pending) if pending.held.len() < MAX_HELD => {
                        pending.held.push(datagram.to_vec());
                        Decision::Held
                    }
                    Some(_) => Decision::Drop(DropReason::HoldFull),
                    None => by_cid(dcid),
                }
            }
            Header::Long {
                kind: Some(_),
                dcid,
                ..
            } => by_cid(dcid),
            Header::Long {
                kind: None, dcid, ..
            } => match cid::server_id(dcid) {
                Some(server) => Decision::Forward(server, RoutedBy::ConnectionId),
                // An unknown version: the default relay answers with version negotiation,
                // which servers send only to datagrams of a full Initial's size.
                None if datagram.len() >= initial::MIN_INITIAL_DATAGRAM => {
                    Decision::Forward(self.config.default_server, RoutedBy::Default)
                }
                None => Decision::Drop(DropReason::SmallInitial),
            },
        }
    }

    fn initial(
        &mut self,
        now: Instant,
        from: SocketAddr,
        dcid: &[u8],
        datagram: &[u8],
    ) -> Decision {
        if datagram.len() < initial::MIN_INITIAL_DATAGRAM {
            return Decision::Drop(DropReason::SmallInitial);
        }
        if let Some(server) = self.remembered(now, dcid) {
            return Decision::Forward(server, RoutedBy::Remembered);
        }
        let opened = match initial::open(datagram) {
            Ok(opened) => opened,
            // Addressed to an ID a relay issued: the client's later Initials.
            Err(initial::InitialError::Decrypt) => return by_cid(dcid),
            Err(_) => return Decision::Drop(DropReason::Malformed),
        };
        let key = (from, dcid.to_vec());
        let mut pending = self.pending.remove(&key).unwrap_or_else(|| Pending {
            assembler: CryptoAssembler::default(),
            held: Vec::new(),
            since: now,
        });
        // This datagram's CRYPTO data counts only if the datagram is kept or routed.
        let mut assembler = pending.assembler.clone();
        let read = opened
            .crypto
            .iter()
            .try_for_each(|(offset, data)| assembler.insert(*offset, data))
            .and_then(|()| assembler.server_name());
        let (server, by) = match read {
            Ok(Some(name)) => match self.server_named(&name) {
                Some(server) => (server, RoutedBy::ServerName),
                None => (self.config.default_server, RoutedBy::Default),
            },
            Ok(None) => (self.config.default_server, RoutedBy::Default),
            Err(ClientHelloError::Incomplete) => {
                if pending.held.len() >= MAX_HELD {
                    return self.drop_keeping(key, pending, DropReason::HoldFull);
                }
                if self.pending.len() >= self.config.max_pending {
                    // Under a flood of half handshakes, stop holding: route at once.
                    (self.config.default_server, RoutedBy::Default)
                } else {
                    pending.assembler = assembler;
                    pending.held.push(datagram.to_vec());
                    self.pending.insert(key, pending);
                    return Decision::Held;
                }
            }
            Err(ClientHelloError::Malformed(_)) => {
                return self.drop_keeping(key, pending, DropReason::BadClientHello)
            }
        };
        self.remember(now, dcid, server);
        if pending.held.is_empty() {
            Decision::Forward(server, by)
        } else {
            Decision::Release(server, by, pending.held)
        }
    }

    /// Drops one datagram of a handshake; what was held before it stays held, to be released
    /// or expired like any other hold (never lost).
    fn drop_keeping(
        &mut self,
        key: (SocketAddr, Vec<u8>),
        pending: Pending,
        reason: DropReason,
    ) -> Decision {
        if !pending.held.is_empty() {
            self.pending.insert(key, pending);
        }
        Decision::Drop(reason)
    }

    /// Handshakes held longer than the hold timeout, released to the default relay:
    /// `(client, relay, datagrams)`.
    pub fn expire(&mut self, now: Instant) -> Vec<(SocketAddr, ServerId, Vec<Vec<u8>>)> {
        let timeout = self.config.hold_timeout;
        let expired: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= timeout)
            .map(|(key, _)| key.clone())
            .collect();
        let default = self.config.default_server;
        let mut released = Vec::with_capacity(expired.len());
        for key in expired {
            if let Some(pending) = self.pending.remove(&key) {
                self.remember(now, &key.1, default);
                released.push((key.0, default, pending.held));
            }
        }
        let remember_for = self.config.remember_for;
        self.remembered
            .retain(|_, (_, at)| now.duration_since(*at) < remember_for);
        released
    }

    /// The relay a TLS server name names, if any.
    pub fn server_named(&self, name: &str) -> Option<ServerId> {
        let label = name.split('.').next()?;
        let number = label.strip_prefix(self.config.sni_prefix.as_str())?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        number.parse().ok().map(ServerId)
    }

    fn remembered(&self, now: Instant, dcid: &[u8]) -> Option<ServerId> {
        self.remembered
            .get(dcid)
            .filter(|(_, at)| now.duration_since(*at) < self.config.remember_for)
            .map(|(server, _)| *server)
    }

    fn remember(&mut self, now: Instant, dcid: &[u8], server: ServerId) {
        if self.remembered.len() >= self.config.max_remembered {
            let remember_for = self.config.remember_for;
            self.remembered
                .retain(|_, (_, at)| now.duration_since(*at) < remember_for);
            if self.remembered.len() >= self.config.max_remembered {
                self.remembered.clear();
            }
        }
        self.remembered.insert(dcid.to_vec(), (server, now));
    }
}

fn by_cid(dcid: &[u8]) -> Decision {
    match cid::server_id(dcid) {
        Some(server) => Decision::Forward(server, RoutedBy::ConnectionId),
        None => Decision::Drop(DropReason::UnroutableCid),
    }
}

#[cfg(test)]
mod tests;
