//! Initial decryption (`videocall_quic_lb::initial::open`): any datagram opens or is a clear
//! error; a client Initial sealed from arbitrary CRYPTO frames opens to exactly those frames,
//! and any byte changed in it makes it fail to open or open differently, never panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use videocall_quic_lb::initial::{crypto_frame, open, seal_client_initial};
use videocall_quic_lb::CryptoAssembler;

#[derive(Debug, Arbitrary)]
enum Input {
    /// A datagram as it arrived.
    Raw(Vec<u8>),
    /// A client's Initial, perhaps with one byte changed.
    Sealed {
        dcid: Vec<u8>,
        scid: Vec<u8>,
        packet_number: u32,
        crypto: Vec<(u16, Vec<u8>)>,
        extra_frames: Vec<u8>,
        flip: Option<(u16, u8)>,
    },
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(datagram) => {
            if let Ok(opened) = open(&datagram) {
                let mut assembler = CryptoAssembler::default();
                for (offset, data) in &opened.crypto {
                    if assembler.insert(*offset, data).is_err() {
                        break;
                    }
                }
                let _ = assembler.server_name();
            }
        }
        Input::Sealed {
            dcid,
            scid,
            packet_number,
            crypto,
            extra_frames,
            flip,
        } => {
            if dcid.len() > 20 || scid.len() > 20 {
                return;
            }
            let mut frames = Vec::new();
            for (offset, data) in &crypto {
                frames.extend(crypto_frame(u64::from(*offset), data));
            }
            let Ok(mut datagram) = seal_client_initial(&dcid, &scid, packet_number, &frames) else {
                return;
            };
            match flip {
                None => {
                    let opened = open(&datagram).expect("a sealed Initial opens");
                    let want: Vec<(u64, Vec<u8>)> =
                        crypto.into_iter().map(|(o, d)| (u64::from(o), d)).collect();
                    assert_eq!(opened.crypto, want);
                    assert_eq!(opened.dcid, dcid);
                }
                Some((at, xor)) => {
                    let at = usize::from(at) % datagram.len();
                    datagram[at] ^= xor.max(1);
                    datagram.extend_from_slice(&extra_frames);
                    let _ = open(&datagram);
                }
            }
        }
    }
});
