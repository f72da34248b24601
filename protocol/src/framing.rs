//! Length-prefixed framing for WebTransport streams.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use tokio_util::codec::LengthDelimitedCodec;

use crate::wire::Envelope;

/// Size of the big-endian length prefix in front of each envelope on a stream.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Codec that splits a stream into envelopes, refusing frames over `max_frame_size`.
pub fn length_delimited_codec(max_frame_size: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(LENGTH_PREFIX_BYTES)
        .max_frame_length(max_frame_size)
        .new_codec()
}

/// Encodes an envelope behind its 4-byte length prefix.
///
/// The relay encodes each forwarded packet once this way: streams send the
/// whole buffer, WebSocket and datagrams send `slice(LENGTH_PREFIX_BYTES..)`.
pub fn encode_length_prefixed(envelope: &Envelope) -> Bytes {
    let len = envelope.encoded_len();
    let mut buf = BytesMut::with_capacity(LENGTH_PREFIX_BYTES + len);
    // An envelope over 4 GiB cannot exist: frames are capped far below that.
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    envelope
        .encode(&mut buf)
        .unwrap_or_else(|_| unreachable!("buffer sized by encoded_len"));
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::envelope;
    use crate::wire::{envelope::Body, Ping};
    use tokio_util::codec::Decoder;

    #[test]
    fn codec_splits_prefixed_envelopes_and_refuses_big_frames() {
        let one = encode_length_prefixed(&envelope(Body::Ping(Ping {
            nonce: 1,
            sent_at_us: 0,
        })));
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&one);
        buf.extend_from_slice(&one);
        let mut codec = length_delimited_codec(1024);
        let first = codec.decode(&mut buf).expect("ok").expect("frame");
        assert_eq!(&first[..], &one[LENGTH_PREFIX_BYTES..]);
        assert!(codec.decode(&mut buf).expect("ok").is_some());

        let mut big = BytesMut::new();
        big.put_u32(4096);
        big.extend_from_slice(&[0u8; 16]);
        let mut small = length_delimited_codec(1024);
        assert!(small.decode(&mut big).is_err());
    }
}
