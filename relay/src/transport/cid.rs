//! QUIC connection IDs that name this relay, so the gateway can route without state.

use std::time::Duration;

use rand::RngCore;
use videocall_quic_lb::cid::{self, ServerId, CID_LEN, NONCE_LEN};
use wtransport::quinn::{ConnectionId, ConnectionIdGenerator};

/// Issues [`videocall_quic_lb::cid`] connection IDs carrying one server id.
#[derive(Debug, Clone, Copy)]
pub struct RoutableCidGenerator {
    server: ServerId,
}

impl RoutableCidGenerator {
    /// A generator for the relay numbered `server_id`.
    pub fn new(server_id: u16) -> Self {
        Self {
            server: ServerId(server_id),
        }
    }
}

impl ConnectionIdGenerator for RoutableCidGenerator {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        ConnectionId::new(&cid::encode(self.server, nonce))
    }

    fn validate(&self, cid: &ConnectionId) -> Result<(), quinn_proto::InvalidCid> {
        match cid::server_id(cid) {
            Some(server) if server == self.server => Ok(()),
            _ => Err(quinn_proto::InvalidCid),
        }
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_issued_id_routes_back_to_this_relay() {
        let mut generator = RoutableCidGenerator::new(513);
        let first = generator.generate_cid();
        let second = generator.generate_cid();
        assert_ne!(first, second);
        for id in [first, second] {
            assert_eq!(cid::server_id(&id), Some(ServerId(513)));
            assert!(generator.validate(&id).is_ok());
        }
        assert!(RoutableCidGenerator::new(2).validate(&first).is_err());
    }
}
