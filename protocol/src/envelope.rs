//! Encoding and validated decoding of [`Envelope`]s.

use bytes::{Bytes, BytesMut};
use prost::Message;

use crate::wire::{envelope::Body, Envelope};
use crate::PROTOCOL_VERSION;

/// Why bytes from a peer are not a usable envelope.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The frame is larger than the configured maximum.
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Size of the offending frame.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The bytes are not a valid Protocol Buffers envelope.
    #[error("malformed envelope: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The envelope decoded but carries no message this build knows.
    #[error("envelope carries no message known to protocol version {PROTOCOL_VERSION}")]
    UnknownMessage,
    /// The sender speaks a protocol version this build does not.
    #[error("unsupported protocol version {0} (this side speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u32),
}

impl ProtocolError {
    /// The wire error code that tells the peer about this error.
    pub fn code(&self) -> crate::wire::ErrorCode {
        use crate::wire::ErrorCode;
        match self {
            ProtocolError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            ProtocolError::Malformed(_) => ErrorCode::Malformed,
            ProtocolError::UnknownMessage => ErrorCode::UnknownMessage,
            ProtocolError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
        }
    }
}

/// Wraps a message body in an envelope of this protocol version.
pub fn envelope(body: Body) -> Envelope {
    Envelope {
        version: PROTOCOL_VERSION,
        body: Some(body),
    }
}

/// Encodes an envelope into a fresh buffer (no length prefix).
pub fn encode_envelope(envelope: &Envelope) -> Bytes {
    let mut buf = BytesMut::with_capacity(envelope.encoded_len());
    // Encoding into a buffer with enough capacity cannot fail.
    envelope
        .encode(&mut buf)
        .unwrap_or_else(|_| unreachable!("buffer sized by encoded_len"));
    buf.freeze()
}

/// Decodes one envelope, checking size, version and that it carries a known message.
///
/// Decoding from `Bytes` makes `bytes` fields (media payloads) slices of `frame`,
/// so forwarding a payload never copies it.
pub fn decode_envelope(frame: Bytes, max_frame_size: usize) -> Result<Envelope, ProtocolError> {
    if frame.len() > max_frame_size {
        return Err(ProtocolError::FrameTooLarge {
            size: frame.len(),
            max: max_frame_size,
        });
    }
    let envelope = Envelope::decode(frame)?;
    if envelope.version == 0 || envelope.version > PROTOCOL_VERSION {
        return Err(ProtocolError::UnsupportedVersion(envelope.version));
    }
    if envelope.body.is_none() {
        return Err(ProtocolError::UnknownMessage);
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Media, MediaKind, Ping};

    #[test]
    fn media_round_trip_keeps_payload_without_copy() {
        let payload = Bytes::from(vec![7u8; 1000]);
        let env = envelope(Body::Media(Media {
            participant_id: 3,
            track_id: 1,
            kind: MediaKind::Video as i32,
            keyframe: true,
            payload: payload.clone(),
            ..Default::default()
        }));
        let frame = encode_envelope(&env);
        let range = frame.as_ptr_range();
        let decoded = decode_envelope(frame.clone(), 4096).expect("valid");
        let Some(Body::Media(media)) = decoded.body else {
            panic!("not media")
        };
        assert_eq!(media.payload, payload);
        // The decoded payload points into the received frame.
        assert!(range.contains(&media.payload.as_ptr()));
    }

    #[test]
    fn rejects_oversized_truncated_unknown_and_wrong_version() {
        let frame = encode_envelope(&envelope(Body::Ping(Ping {
            nonce: 1,
            sent_at_us: 2,
        })));
        assert!(matches!(
            decode_envelope(frame.clone(), 2),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        let truncated = frame.slice(..frame.len() - 1);
        assert!(matches!(
            decode_envelope(truncated, 4096),
            Err(ProtocolError::Malformed(_))
        ));
        let no_body = encode_envelope(&Envelope {
            version: PROTOCOL_VERSION,
            body: None,
        });
        assert!(matches!(
            decode_envelope(no_body, 4096),
            Err(ProtocolError::UnknownMessage)
        ));
        let future = encode_envelope(&Envelope {
            version: PROTOCOL_VERSION + 1,
            body: Some(Body::Ping(Ping::default())),
        });
        assert!(matches!(
            decode_envelope(future, 4096),
            Err(ProtocolError::UnsupportedVersion(_))
        ));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut frame = encode_envelope(&envelope(Body::Ping(Ping {
            nonce: 9,
            sent_at_us: 0,
        })))
        .to_vec();
        // Field 1000, varint 5: a field a newer peer might add.
        frame.extend_from_slice(&[0xC0, 0x3E, 0x05]);
        let decoded = decode_envelope(Bytes::from(frame), 4096).expect("valid");
        assert!(matches!(
            decoded.body,
            Some(Body::Ping(Ping { nonce: 9, .. }))
        ));
    }
}
