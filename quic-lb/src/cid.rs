//! Connection IDs that carry the id of the relay that issued them.
//!
//! Layout (8 bytes), after QUIC-LB's plaintext algorithm:
//!
//! ```text
//! byte 0     : config rotation (3 bits, always 0) | length self-description (5 bits: len - 1)
//! bytes 1..3 : server id, big endian
//! bytes 3..8 : random nonce
//! ```
//!
//! The server id is readable by anyone on the path, so the connection IDs of one connection
//! can be linked to one relay (not to each other: the nonce is fresh for every ID). QUIC-LB
//! accepts that trade for plaintext routing; an encrypted mode can replace [`encode`] and
//! [`server_id`] without touching their callers.

use std::fmt;

/// Length of every connection ID a relay issues.
pub const CID_LEN: usize = 8;
/// First byte of every routable connection ID: rotation 0, self-described length.
const FIRST_BYTE: u8 = (CID_LEN - 1) as u8;
/// Random bytes after the server id.
pub const NONCE_LEN: usize = CID_LEN - 3;

/// A relay's number within its pool (its StatefulSet ordinal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(pub u16);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A connection ID for `server` with the given random `nonce`.
pub fn encode(server: ServerId, nonce: [u8; NONCE_LEN]) -> [u8; CID_LEN] {
    let mut cid = [0u8; CID_LEN];
    cid[0] = FIRST_BYTE;
    cid[1..3].copy_from_slice(&server.0.to_be_bytes());
    cid[3..].copy_from_slice(&nonce);
    cid
}

/// The server a connection ID routes to, if it has the routable layout.
pub fn server_id(cid: &[u8]) -> Option<ServerId> {
    if cid.len() != CID_LEN || cid[0] != FIRST_BYTE {
        return None;
    }
    Some(ServerId(u16::from_be_bytes([cid[1], cid[2]])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_id_survives_the_round_trip() {
        for id in [0, 1, 255, 256, 65535] {
            let cid = encode(ServerId(id), [9, 8, 7, 6, 5]);
            assert_eq!(server_id(&cid), Some(ServerId(id)));
        }
    }

    #[test]
    fn foreign_connection_ids_do_not_route() {
        assert_eq!(server_id(&[]), None);
        assert_eq!(server_id(&[7, 0, 1]), None);
        assert_eq!(server_id(&[0x47, 0, 1, 0, 0, 0, 0, 0]), None);
        assert_eq!(server_id(&[7, 0, 1, 0, 0, 0, 0, 0, 0]), None);
    }
}
