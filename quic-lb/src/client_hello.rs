//! Reassembling the ClientHello from CRYPTO frames and reading its server name.
//!
//! A ClientHello can span several Initial packets (post-quantum key shares make it ~1.8 KB)
//! and clients split and reorder its CRYPTO frames on purpose (Chrome's "chaos protection"),
//! so the name is read from the reassembled stream, not from one frame.

use std::collections::BTreeMap;

/// Largest ClientHello the assembler holds; bigger ones are malformed as far as we care.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;
/// Most separate pieces held while waiting for a gap to fill.
const MAX_PIECES: usize = 64;

/// Why no server name could be read (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientHelloError {
    /// More CRYPTO data is needed.
    #[error("ClientHello incomplete")]
    Incomplete,
    /// The bytes are not a ClientHello, or one we refuse to hold.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
}

/// Collects CRYPTO frame data of one connection, in any order, up to [`MAX_CLIENT_HELLO`].
#[derive(Debug, Default, Clone)]
pub struct CryptoAssembler {
    pieces: BTreeMap<u64, Vec<u8>>,
    contiguous: Vec<u8>,
}

impl CryptoAssembler {
    /// Adds the data of one CRYPTO frame.
    pub fn insert(&mut self, offset: u64, data: &[u8]) -> Result<(), ClientHelloError> {
        let end = offset.saturating_add(data.len() as u64);
        if end > MAX_CLIENT_HELLO as u64 {
            return Err(ClientHelloError::Malformed(
                "ClientHello larger than 16 KiB",
            ));
        }
        if data.is_empty() || end <= self.contiguous.len() as u64 {
            return Ok(());
        }
        if self.pieces.len() >= MAX_PIECES {
            return Err(ClientHelloError::Malformed(
                "ClientHello in too many pieces",
            ));
        }
        self.pieces.insert(offset, data.to_vec());
        // Absorb every piece that now touches the contiguous prefix.
        while let Some(entry) = self.pieces.first_entry() {
            let start = *entry.key() as usize;
            if start > self.contiguous.len() {
                break;
            }
            let piece = entry.remove();
            let skip = self.contiguous.len() - start;
            if skip < piece.len() {
                self.contiguous.extend_from_slice(&piece[skip..]);
            }
        }
        Ok(())
    }

    /// The data received without gaps from offset 0.
    pub fn contiguous(&self) -> &[u8] {
        &self.contiguous
    }

    /// The server name, once the received prefix shows it (or shows there is none).
    pub fn server_name(&self) -> Result<Option<String>, ClientHelloError> {
        server_name(&self.contiguous)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Whether `bytes` hold the whole message: running out is then malformed, not incomplete.
    complete: bool,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ClientHelloError> {
        match self.bytes.get(self.at..self.at + n) {
            Some(taken) => {
                self.at += n;
                Ok(taken)
            }
            None if self.complete => Err(ClientHelloError::Malformed("length past the end")),
            None => Err(ClientHelloError::Incomplete),
        }
    }
    fn u8(&mut self) -> Result<usize, ClientHelloError> {
        Ok(usize::from(self.take(1)?[0]))
    }
    fn u16(&mut self) -> Result<usize, ClientHelloError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// Reads the `server_name` extension (RFC 6066 §3) from a TLS handshake stream that starts
/// with a ClientHello; `Ok(None)` when the complete ClientHello has no host name.
pub fn server_name(stream: &[u8]) -> Result<Option<String>, ClientHelloError> {
    let mut header = Reader {
        bytes: stream,
        at: 0,
        complete: false,
    };
    if header.u8()? != 1 {
        return Err(ClientHelloError::Malformed(
            "first handshake message is not a ClientHello",
        ));
    }
    let len_bytes = header.take(3)?;
    let len = (usize::from(len_bytes[0]) << 16)
        | (usize::from(len_bytes[1]) << 8)
        | usize::from(len_bytes[2]);
    if len > MAX_CLIENT_HELLO {
        return Err(ClientHelloError::Malformed(
            "ClientHello larger than 16 KiB",
        ));
    }
    let body = &stream[4..];
    let complete = body.len() >= len;
    let mut r = Reader {
        bytes: &body[..len.min(body.len())],
        at: 0,
        complete,
    };
    r.take(2 + 32)?; // legacy_version, random
    let n = r.u8()?;
    r.take(n)?; // legacy_session_id
    let n = r.u16()?;
    r.take(n)?; // cipher_suites
    let n = r.u8()?;
    r.take(n)?; // legacy_compression_methods
    if complete && r.done() {
        return Ok(None); // no extensions at all
    }
    let extensions_len = r.u16()?;
    let extensions_end = r.at + extensions_len;
    while r.at < extensions_end {
        let kind = r.u16()?;
        let n = r.u16()?;
        let data = r.take(n)?;
        if kind == 0 {
            return host_name(data).map(Some);
        }
    }
    Ok(None)
}

fn host_name(extension: &[u8]) -> Result<String, ClientHelloError> {
    let mut r = Reader {
        bytes: extension,
        at: 0,
        complete: true,
    };
    let list_end = 2 + r.u16()?;
    while r.at < list_end {
        let kind = r.u8()?;
        let n = r.u16()?;
        let name = r.take(n)?;
        if kind == 0 {
            let name = std::str::from_utf8(name)
                .map_err(|_| ClientHelloError::Malformed("server name is not ASCII"))?;
            if name.is_empty() || !name.is_ascii() {
                return Err(ClientHelloError::Malformed("server name is not ASCII"));
            }
            return Ok(name.to_ascii_lowercase());
        }
    }
    Err(ClientHelloError::Malformed(
        "server_name extension without a host name",
    ))
}

/// A real ClientHello, as rustls writes it for a QUIC connection to `name` (for tests,
/// benchmarks and load tools that need genuine handshake bytes).
pub fn real_client_hello(name: &str) -> Result<Vec<u8>, rustls::Error> {
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let server_name = name
        .to_owned()
        .try_into()
        .map_err(|_| rustls::Error::General(format!("{name} is not a DNS name")))?;
    let mut connection = rustls::quic::ClientConnection::new(
        Arc::new(config),
        rustls::quic::Version::V1,
        server_name,
        vec![0x01, 0x02, 0x00, 0x00], // a transport-parameters extension body
    )?;
    let mut hello = Vec::new();
    connection.write_hs(&mut hello);
    Ok(hello)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    fn client_hello(name: &str) -> Vec<u8> {
        real_client_hello(name).unwrap()
    }

    #[test]
    fn the_server_name_of_a_real_client_hello_is_read() {
        let hello = client_hello("Relay-3.meet.example.org");
        assert_eq!(
            server_name(&hello),
            Ok(Some("relay-3.meet.example.org".into()))
        );
    }

    #[test]
    fn a_prefix_is_incomplete_until_the_name_arrives() {
        let hello = client_hello("relay-1.localhost");
        let mut seen_name_at = None;
        for cut in 0..=hello.len() {
            match server_name(&hello[..cut]) {
                Err(ClientHelloError::Incomplete) => assert!(seen_name_at.is_none()),
                Ok(Some(name)) => {
                    assert_eq!(name, "relay-1.localhost");
                    seen_name_at.get_or_insert(cut);
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        assert!(seen_name_at.is_some());
    }

    #[test]
    fn pieces_in_any_order_reassemble() {
        let hello = client_hello("relay-2.localhost");
        let mut assembler = CryptoAssembler::default();
        let pieces: Vec<(usize, &[u8])> = hello
            .chunks(37)
            .enumerate()
            .map(|(i, c)| (i * 37, c))
            .collect();
        for (offset, piece) in pieces.iter().rev() {
            assert_eq!(assembler.contiguous().len(), 0, "gap not yet filled");
            assembler.insert(*offset as u64, piece).unwrap();
        }
        assert_eq!(assembler.contiguous(), &hello[..]);
        // Overlapping retransmissions change nothing.
        assembler.insert(10, &hello[10..80]).unwrap();
        assert_eq!(assembler.contiguous(), &hello[..]);
        assert_eq!(
            assembler.server_name(),
            Ok(Some("relay-2.localhost".into()))
        );
    }

    #[test]
    fn garbage_and_hoarding_are_refused() {
        assert!(matches!(
            server_name(&[2, 0, 0, 4]),
            Err(ClientHelloError::Malformed(_))
        ));
        assert!(matches!(
            server_name(&[1, 0xff, 0, 0]),
            Err(ClientHelloError::Malformed(_))
        ));
        // A complete ClientHello whose session id claims more bytes than it has.
        let mut short = vec![1, 0, 0, 35];
        short.extend_from_slice(&[3, 3]);
        short.extend_from_slice(&[0; 32]);
        short.push(200);
        assert!(matches!(
            server_name(&short),
            Err(ClientHelloError::Malformed(_))
        ));
        let mut assembler = CryptoAssembler::default();
        assert!(assembler.insert(MAX_CLIENT_HELLO as u64, b"x").is_err());
        for i in 0..MAX_PIECES as u64 {
            assembler.insert(10 + i * 2, b"x").unwrap();
        }
        assert!(assembler.insert(1000, b"x").is_err());
    }

    #[test]
    fn mutated_client_hellos_never_panic() {
        let hello = client_hello("relay-9.localhost");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut next = move || rng.next_u64();
        for _ in 0..50_000 {
            let mut bytes = hello.clone();
            for _ in 0..(1 + next() % 3) {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            bytes.truncate((next() as usize) % (bytes.len() + 1));
            let _ = server_name(&bytes);
            let mut assembler = CryptoAssembler::default();
            for piece in bytes.chunks(1 + (next() % 200) as usize).rev() {
                let offset = next() % 2_000;
                let _ = assembler.insert(offset, piece);
            }
            let _ = assembler.server_name();
        }
    }
}
