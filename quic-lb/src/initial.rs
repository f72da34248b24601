//! Opening a client's Initial packet (RFC 9001 §5) to read the CRYPTO frames in it.
//!
//! Initial packets are encrypted with keys anyone can derive from the destination
//! connection ID the client chose, so a load balancer can read the ClientHello without any
//! secret. A later Initial whose destination ID is one the server issued does not open with
//! keys derived from that ID; [`open`] then fails with [`InitialError::Decrypt`], which tells
//! the caller to route by the connection ID instead.

use rustls::quic::{Keys, Suite, Version};
use rustls::Side;
use rustls::{crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256, SupportedCipherSuite};

use crate::packet::{self, read_varint, Header, LongType, QUIC_V1, QUIC_V2};

/// RFC 9000 §14.1: a client's Initial travels in a datagram of at least this many bytes.
pub const MIN_INITIAL_DATAGRAM: usize = 1200;
/// Bytes of ciphertext sampled for header protection (AES).
const SAMPLE_LEN: usize = 16;

/// The CRYPTO frames of one opened Initial packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedInitial {
    /// The destination connection ID the keys came from.
    pub dcid: Vec<u8>,
    /// `(offset, data)` of every CRYPTO frame, in packet order.
    pub crypto: Vec<(u64, Vec<u8>)>,
}

/// Why an Initial could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitialError {
    /// Not a long-header Initial of QUIC v1 or v2.
    #[error("not a QUIC v1/v2 Initial packet")]
    NotInitial,
    /// The header could not be read.
    #[error(transparent)]
    Packet(#[from] packet::PacketError),
    /// Lengths in the header point past the datagram.
    #[error("Initial packet truncated")]
    Truncated,
    /// Authentication failed: the keys are not derived from this connection ID.
    #[error("Initial packet does not decrypt with keys from its connection ID")]
    Decrypt,
    /// The decrypted frames are not valid Initial frames.
    #[error("malformed frames in Initial packet: {0}")]
    Frames(&'static str),
}

fn initial_suite() -> Option<Suite> {
    match TLS13_AES_128_GCM_SHA256 {
        SupportedCipherSuite::Tls13(suite) => suite.quic_suite(),
        // Reachable only when some crate enables rustls' TLS 1.2 support.
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Keys for Initial packets on a connection whose client chose `dcid`.
pub fn keys(dcid: &[u8], version: u32, side: Side) -> Result<Keys, InitialError> {
    let version = match version {
        QUIC_V1 => Version::V1,
        QUIC_V2 => Version::V2,
        _ => return Err(InitialError::NotInitial),
    };
    let suite = initial_suite().ok_or(InitialError::NotInitial)?;
    Ok(suite.keys(dcid, side, version))
}

/// Where the protected parts of an Initial lie inside its datagram.
struct Layout {
    version: u32,
    pn_offset: usize,
    end: usize,
}

fn layout(datagram: &[u8]) -> Result<(Layout, &[u8]), InitialError> {
    let Header::Long {
        version,
        kind: Some(LongType::Initial),
        dcid,
        rest,
        ..
    } = packet::parse(datagram)?
    else {
        return Err(InitialError::NotInitial);
    };
    let mut at = rest;
    let token_len = read_varint(datagram, &mut at).ok_or(InitialError::Truncated)?;
    at = at
        .checked_add(usize::try_from(token_len).map_err(|_| InitialError::Truncated)?)
        .ok_or(InitialError::Truncated)?;
    let length = read_varint(datagram, &mut at).ok_or(InitialError::Truncated)?;
    let length = usize::try_from(length).map_err(|_| InitialError::Truncated)?;
    let end = at.checked_add(length).ok_or(InitialError::Truncated)?;
    if end > datagram.len() || length < 4 + SAMPLE_LEN {
        return Err(InitialError::Truncated);
    }
    Ok((
        Layout {
            version,
            pn_offset: at,
            end,
        },
        dcid,
    ))
}

/// Decrypts the first packet of `datagram`, a client's Initial, and returns its CRYPTO frames.
pub fn open(datagram: &[u8]) -> Result<OpenedInitial, InitialError> {
    let (layout, dcid) = layout(datagram)?;
    let keys = keys(dcid, layout.version, Side::Server)?;
    let mut packet = datagram[..layout.end].to_vec();
    let pn_offset = layout.pn_offset;
    let (head, tail) = packet.split_at_mut(pn_offset);
    let (pn_bytes, after_pn) = tail.split_at_mut(4);
    let sample = after_pn.get(..SAMPLE_LEN).ok_or(InitialError::Truncated)?;
    keys.remote
        .header
        .decrypt_in_place(sample, &mut head[0], pn_bytes)
        .map_err(|_| InitialError::Decrypt)?;
    let pn_len = usize::from(packet[0] & 0x03) + 1;
    let number = packet[pn_offset..pn_offset + pn_len]
        .iter()
        .fold(0u64, |n, b| (n << 8) | u64::from(*b));
    let (header, payload) = packet.split_at_mut(pn_offset + pn_len);
    let plain = keys
        .remote
        .packet
        .decrypt_in_place(number, header, payload)
        .map_err(|_| InitialError::Decrypt)?;
    Ok(OpenedInitial {
        dcid: dcid.to_vec(),
        crypto: crypto_frames(plain)?,
    })
}

/// The CRYPTO frames among the frames an Initial may carry (RFC 9000 §12.4).
fn crypto_frames(plain: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, InitialError> {
    let mut frames = Vec::new();
    let mut at = 0;
    let varint = |at: &mut usize| read_varint(plain, at).ok_or(InitialError::Frames("truncated"));
    while at < plain.len() {
        match varint(&mut at)? {
            0x00 | 0x01 => {} // PADDING, PING
            kind @ (0x02 | 0x03) => {
                // ACK: largest, delay, range count, first range, then (gap, length) pairs.
                varint(&mut at)?;
                varint(&mut at)?;
                let ranges = varint(&mut at)?;
                varint(&mut at)?;
                for _ in 0..ranges.min(plain.len() as u64) {
                    varint(&mut at)?;
                    varint(&mut at)?;
                }
                if kind == 0x03 {
                    for _ in 0..3 {
                        varint(&mut at)?;
                    }
                }
            }
            0x06 => {
                let offset = varint(&mut at)?;
                let len = usize::try_from(varint(&mut at)?)
                    .map_err(|_| InitialError::Frames("CRYPTO length"))?;
                let data = plain
                    .get(at..at.saturating_add(len))
                    .ok_or(InitialError::Frames("CRYPTO data past the packet"))?;
                frames.push((offset, data.to_vec()));
                at += len;
            }
            0x1c => {
                // CONNECTION_CLOSE: error code, frame type, reason.
                varint(&mut at)?;
                varint(&mut at)?;
                let len = varint(&mut at)?;
                at = at.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
            }
            _ => return Err(InitialError::Frames("frame type not allowed in Initial")),
        }
    }
    Ok(frames)
}

/// Builds a client Initial datagram: the inverse of [`open`], for tests and load tools.
///
/// `frames` is the plaintext frame payload; the datagram is padded to
/// [`MIN_INITIAL_DATAGRAM`] bytes as a client's must be.
pub fn seal_client_initial(
    dcid: &[u8],
    scid: &[u8],
    packet_number: u32,
    frames: &[u8],
) -> Result<Vec<u8>, InitialError> {
    let keys = keys(dcid, QUIC_V1, Side::Client)?;
    let tag_len = keys.local.packet.tag_len();
    let mut header = vec![0xc3]; // Initial, 4-byte packet number
    header.extend_from_slice(&QUIC_V1.to_be_bytes());
    header.push(dcid.len() as u8);
    header.extend_from_slice(dcid);
    header.push(scid.len() as u8);
    header.extend_from_slice(scid);
    header.push(0); // no token
    let fixed = header.len() + 2 + 4 + tag_len;
    let mut payload = frames.to_vec();
    if fixed + payload.len() < MIN_INITIAL_DATAGRAM {
        payload.resize(MIN_INITIAL_DATAGRAM - fixed, 0);
    }
    let length = 4 + payload.len() + tag_len;
    if length >= 1 << 14 {
        return Err(InitialError::Truncated);
    }
    header.extend_from_slice(&(0x4000 | length as u16).to_be_bytes());
    let pn_offset = header.len();
    header.extend_from_slice(&packet_number.to_be_bytes());
    let tag = keys
        .local
        .packet
        .encrypt_in_place(u64::from(packet_number), &header, &mut payload)
        .map_err(|_| InitialError::Decrypt)?;
    let mut packet = header;
    packet.extend_from_slice(&payload);
    packet.extend_from_slice(tag.as_ref());
    let (head, tail) = packet.split_at_mut(pn_offset);
    let (pn, rest) = tail.split_at_mut(4);
    keys.local
        .header
        .encrypt_in_place(&rest[..SAMPLE_LEN], &mut head[0], pn)
        .map_err(|_| InitialError::Decrypt)?;
    Ok(packet)
}

/// Encodes `value` as a QUIC variable-length integer.
pub fn write_varint(out: &mut Vec<u8>, value: u64) {
    match value {
        0..=0x3f => out.push(value as u8),
        0x40..=0x3fff => out.extend_from_slice(&(0x4000 | value as u16).to_be_bytes()),
        0x4000..=0x3fff_ffff => out.extend_from_slice(&(0x8000_0000 | value as u32).to_be_bytes()),
        _ => out.extend_from_slice(&(0xc000_0000_0000_0000 | value).to_be_bytes()),
    }
}

/// A CRYPTO frame carrying `data` at `offset`.
pub fn crypto_frame(offset: u64, data: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x06];
    write_varint(&mut frame, offset);
    write_varint(&mut frame, data.len() as u64);
    frame.extend_from_slice(data);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_initial_opens_to_its_crypto_frames() {
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        let mut frames = crypto_frame(5, b"world");
        frames.push(0x01);
        frames.extend(crypto_frame(0, b"hello"));
        let datagram = seal_client_initial(&dcid, &[1, 2], 0, &frames).unwrap();
        assert_eq!(datagram.len(), MIN_INITIAL_DATAGRAM);
        let opened = open(&datagram).unwrap();
        assert_eq!(opened.dcid, dcid);
        assert_eq!(
            opened.crypto,
            vec![(5, b"world".to_vec()), (0, b"hello".to_vec())]
        );
    }

    #[test]
    fn tampered_or_foreign_initials_do_not_open() {
        let dcid = [7u8; 8];
        let datagram = seal_client_initial(&dcid, &[], 1, &crypto_frame(0, b"x")).unwrap();
        let mut tampered = datagram.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(open(&tampered), Err(InitialError::Decrypt));
        // The same packet under another destination ID: what a client's later Initial to a
        // server-issued ID looks like to a balancer.
        let mut renamed = datagram.clone();
        renamed[6] ^= 0xff;
        assert_eq!(open(&renamed), Err(InitialError::Decrypt));
        assert_eq!(open(&datagram[..100]), Err(InitialError::Truncated));
        assert_eq!(open(&[0x40; 30]), Err(InitialError::NotInitial));
    }

    #[test]
    fn frames_an_initial_may_not_carry_are_refused() {
        let datagram = seal_client_initial(&[7u8; 8], &[], 1, &[0x08, 0, 0]).unwrap();
        assert!(matches!(open(&datagram), Err(InitialError::Frames(_))));
    }
}
