//! The QUIC header reader (`videocall_quic_lb::packet::parse`) and the routable connection
//! ID (`cid::server_id`): any datagram is a header or a clear error, and what a header
//! points at lies inside the datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videocall_quic_lb::{cid, packet, Header};

fuzz_target!(|data: &[u8]| {
    let range = data.as_ptr_range();
    let inside = |s: &[u8]| s.is_empty() || range.contains(&s.as_ptr());
    match packet::parse(data) {
        Ok(Header::Short { dcid }) => {
            assert!(inside(dcid));
            let _ = cid::server_id(dcid);
        }
        Ok(Header::Long {
            dcid, scid, rest, ..
        }) => {
            assert!(inside(dcid) && inside(scid));
            assert!(dcid.len() <= 20 && scid.len() <= 20);
            assert!(rest <= data.len());
            let _ = cid::server_id(dcid);
        }
        Err(_) => {}
    }
    let mut at = 0;
    while packet::read_varint(data, &mut at).is_some() {
        assert!(at <= data.len());
    }
});
