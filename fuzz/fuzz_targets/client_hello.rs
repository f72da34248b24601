//! ClientHello reassembly and reading (`CryptoAssembler`, `client_hello::server_name`): CRYPTO
//! data in any order, overlapping or not, gives the same prefix as the data in order, and
//! the server name is read or refused clearly, never with a panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use videocall_quic_lb::client_hello::server_name;
use videocall_quic_lb::CryptoAssembler;

#[derive(Debug, Arbitrary)]
struct Input {
    /// The handshake bytes (perhaps a real ClientHello's start, perhaps not).
    stream: Vec<u8>,
    /// Pieces of it, as (start, length), in arrival order.
    pieces: Vec<(u16, u8)>,
    /// Data at an arbitrary offset, that may contradict the stream.
    stray: Option<(u64, Vec<u8>)>,
}

fuzz_target!(|input: Input| {
    let _ = server_name(&input.stream);
    let mut assembler = CryptoAssembler::default();
    for &(start, len) in &input.pieces {
        let start = usize::from(start).min(input.stream.len());
        let end = (start + usize::from(len)).min(input.stream.len());
        if assembler
            .insert(start as u64, &input.stream[start..end])
            .is_err()
        {
            return;
        }
        let prefix = assembler.contiguous();
        assert_eq!(
            prefix,
            &input.stream[..prefix.len()],
            "the prefix is the stream's"
        );
        let _ = assembler.server_name();
    }
    if let Some((offset, data)) = input.stray {
        if assembler.insert(offset, &data).is_ok() {
            let _ = assembler.server_name();
        }
    }
});
