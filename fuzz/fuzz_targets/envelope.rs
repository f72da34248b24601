//! Envelope decoding (`videocall_protocol::decode_envelope`): any bytes are an envelope or a
//! clear error; what decodes re-encodes to an envelope that decodes the same.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use videocall_protocol::{decode_envelope, encode_envelope};

const MAX_FRAME: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(decoded) = decode_envelope(Bytes::copy_from_slice(data), MAX_FRAME) else {
        return;
    };
    let again = decode_envelope(encode_envelope(&decoded), usize::MAX)
        .expect("a decoded envelope re-encodes to a valid one");
    assert_eq!(decoded, again, "decode ∘ encode is the identity");
});
