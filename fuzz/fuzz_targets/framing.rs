//! The stream framing (`length_delimited_codec`): the same bytes give the same frames (and
//! the same error) however the stream splits them, and no frame exceeds the maximum.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use videocall_protocol::length_delimited_codec;

/// Frames of `stream` fed in pieces of the given sizes (cycled); `Err` at the first error.
fn frames(stream: &[u8], pieces: &[u8], max: usize) -> Result<Vec<Vec<u8>>, ()> {
    let mut codec = length_delimited_codec(max);
    let mut buffer = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut sizes = pieces.iter().cycle();
    while at < stream.len() {
        let size = sizes
            .next()
            .map_or(stream.len(), |&s| usize::from(s).max(1));
        let end = (at + size).min(stream.len());
        buffer.extend_from_slice(&stream[at..end]);
        at = end;
        while let Some(frame) = codec.decode(&mut buffer).map_err(|_| ())? {
            assert!(frame.len() <= max, "a frame over the maximum came through");
            out.push(frame.to_vec());
        }
    }
    Ok(out)
}

fuzz_target!(|input: (u16, Vec<u8>, Vec<u8>)| {
    let (max, pieces, stream) = input;
    let max = usize::from(max);
    let whole = frames(&stream, &[], max);
    let split = frames(&stream, &pieces, max);
    assert_eq!(whole, split, "the split changed the frames");
});
