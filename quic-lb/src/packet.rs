//! Reading the invariant part of a QUIC packet header (RFC 8999 / RFC 9000 §17).

use crate::cid::CID_LEN;

/// QUIC version 1 (RFC 9000).
pub const QUIC_V1: u32 = 1;
/// QUIC version 2 (RFC 9369): the same protocol with other codepoints.
pub const QUIC_V2: u32 = 0x6b33_43cf;
/// Longest connection ID QUIC v1 and v2 allow.
const MAX_CID: usize = 20;

/// Kind of a long-header packet of a known version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongType {
    /// Carries the ClientHello (from a client) or ServerHello.
    Initial,
    /// Early data.
    ZeroRtt,
    /// The rest of the TLS handshake.
    Handshake,
    /// A server's address-validation retry.
    Retry,
}

/// The header fields that decide where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header<'a> {
    /// A short-header (1-RTT) packet: its destination connection ID is one a relay issued,
    /// so it has our fixed length.
    Short {
        /// Destination connection ID.
        dcid: &'a [u8],
    },
    /// A long-header packet.
    Long {
        /// QUIC version (0 is version negotiation).
        version: u32,
        /// Packet type, when the version is one we know.
        kind: Option<LongType>,
        /// Destination connection ID.
        dcid: &'a [u8],
        /// Source connection ID.
        scid: &'a [u8],
        /// Offset of the first byte after the source connection ID.
        rest: usize,
    },
}

/// Why a datagram is not a QUIC packet we can route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than its own header claims.
    #[error("datagram too short for a QUIC header")]
    Truncated,
    /// A connection ID longer than QUIC allows.
    #[error("connection ID longer than 20 bytes")]
    CidTooLong,
    /// An empty datagram.
    #[error("empty datagram")]
    Empty,
}

/// Parses the header of the first packet in `datagram`.
pub fn parse(datagram: &[u8]) -> Result<Header<'_>, PacketError> {
    let first = *datagram.first().ok_or(PacketError::Empty)?;
    if first & 0x80 == 0 {
        // The fixed bit (0x40) is not checked: peers may grease it (RFC 9287).
        let dcid = datagram.get(1..1 + CID_LEN).ok_or(PacketError::Truncated)?;
        return Ok(Header::Short { dcid });
    }
    let version = u32::from_be_bytes(
        datagram
            .get(1..5)
            .ok_or(PacketError::Truncated)?
            .try_into()
            .map_err(|_| PacketError::Truncated)?,
    );
    let (dcid, at) = cid_at(datagram, 5)?;
    let (scid, rest) = cid_at(datagram, at)?;
    let bits = (first >> 4) & 0x03;
    let kind = match version {
        QUIC_V1 => Some(match bits {
            0 => LongType::Initial,
            1 => LongType::ZeroRtt,
            2 => LongType::Handshake,
            _ => LongType::Retry,
        }),
        QUIC_V2 => Some(match bits {
            1 => LongType::Initial,
            2 => LongType::ZeroRtt,
            3 => LongType::Handshake,
            _ => LongType::Retry,
        }),
        _ => None,
    };
    Ok(Header::Long {
        version,
        kind,
        dcid,
        scid,
        rest,
    })
}

fn cid_at(datagram: &[u8], at: usize) -> Result<(&[u8], usize), PacketError> {
    let len = *datagram.get(at).ok_or(PacketError::Truncated)? as usize;
    if len > MAX_CID {
        return Err(PacketError::CidTooLong);
    }
    let cid = datagram
        .get(at + 1..at + 1 + len)
        .ok_or(PacketError::Truncated)?;
    Ok((cid, at + 1 + len))
}

/// Reads a QUIC variable-length integer at `*at`, advancing it.
pub fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let first = *bytes.get(*at)?;
    let len = 1usize << (first >> 6);
    let raw = bytes.get(*at..*at + len)?;
    let mut value = u64::from(first & 0x3f);
    for byte in &raw[1..] {
        value = (value << 8) | u64::from(*byte);
    }
    *at += len;
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_of_every_length_decode() {
        // RFC 9000 §A.1 examples.
        for (bytes, value) in [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c][..],
                151_288_809_941_952_652u64,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d][..], 494_878_333),
            (&[0x7b, 0xbd][..], 15_293),
            (&[0x25][..], 37),
        ] {
            let mut at = 0;
            assert_eq!(read_varint(bytes, &mut at), Some(value));
            assert_eq!(at, bytes.len());
        }
        assert_eq!(read_varint(&[0x7b], &mut 0), None);
    }

    #[test]
    fn a_short_header_yields_its_connection_id() {
        let packet = [0x40, 7, 0, 3, 1, 2, 3, 4, 5, 0xaa, 0xbb];
        assert_eq!(
            parse(&packet),
            Ok(Header::Short {
                dcid: &[7, 0, 3, 1, 2, 3, 4, 5]
            })
        );
        assert_eq!(parse(&[0x40, 1, 2]), Err(PacketError::Truncated));
    }

    #[test]
    fn long_headers_name_their_type_per_version() {
        let mut packet = vec![0xc0, 0, 0, 0, 1, 2, 0xaa, 0xbb, 1, 0xcc, 0xff];
        let Ok(Header::Long {
            kind,
            dcid,
            scid,
            rest,
            ..
        }) = parse(&packet)
        else {
            panic!("long header expected");
        };
        assert_eq!(kind, Some(LongType::Initial));
        assert_eq!((dcid, scid, rest), (&[0xaa, 0xbb][..], &[0xcc][..], 10));
        packet[0] = 0xe0;
        assert!(matches!(
            parse(&packet),
            Ok(Header::Long {
                kind: Some(LongType::Handshake),
                ..
            })
        ));
        packet[1..5].copy_from_slice(&QUIC_V2.to_be_bytes());
        packet[0] = 0xf0;
        assert!(matches!(
            parse(&packet),
            Ok(Header::Long {
                kind: Some(LongType::Handshake),
                ..
            })
        ));
        packet[1..5].copy_from_slice(&[0x1a, 0x2a, 0x3a, 0x4a]);
        assert!(matches!(
            parse(&packet),
            Ok(Header::Long { kind: None, .. })
        ));
    }

    #[test]
    fn malformed_long_headers_are_refused() {
        assert_eq!(parse(&[]), Err(PacketError::Empty));
        assert_eq!(parse(&[0xc0, 0, 0]), Err(PacketError::Truncated));
        assert_eq!(parse(&[0xc0, 0, 0, 0, 1, 21]), Err(PacketError::CidTooLong));
        assert_eq!(
            parse(&[0xc0, 0, 0, 0, 1, 4, 1, 2]),
            Err(PacketError::Truncated)
        );
    }
}
