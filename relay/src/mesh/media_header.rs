//! The header in front of every media message on the bus: the publisher, the track and the
//! flags a relay needs to forward the frame behind it without decoding it. Pure.
//!
//! ```text
//! byte 0      version (1)
//! byte 1      flags: bit 0 keyframe, bit 1 audio
//! bytes 2-9   publisher's participant id, big-endian
//! bytes 10-13 track id, big-endian
//! then        the length-prefixed client envelope, as subscribers receive it
//! ```

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes before the frame.
pub const HEADER_LEN: usize = 14;
const VERSION: u8 = 1;
const KEYFRAME: u8 = 1;
const AUDIO: u8 = 2;

/// What the header says of the frame behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaHeader {
    /// The publisher's participant id.
    pub publisher: u64,
    /// The publisher's track id.
    pub track: u32,
    /// The packet starts a group of pictures.
    pub keyframe: bool,
    /// Audio.
    pub audio: bool,
}

/// Why a media message from the bus was not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Shorter than a header and a frame.
    #[error("media message of {0} bytes is shorter than its header")]
    Short(usize),
    /// A version this relay does not speak.
    #[error("media message version {0} is not 1")]
    Version(u8),
}

impl MediaHeader {
    /// The bus message: this header, then `frame`.
    pub fn encode(&self, frame: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(HEADER_LEN + frame.len());
        out.put_u8(VERSION);
        out.put_u8((u8::from(self.keyframe) * KEYFRAME) | (u8::from(self.audio) * AUDIO));
        out.put_u64(self.publisher);
        out.put_u32(self.track);
        out.put_slice(frame);
        out.freeze()
    }

    /// Splits a bus message into its header and its frame (a slice of `message`, not a copy).
    pub fn decode(message: &Bytes) -> Result<(MediaHeader, Bytes), HeaderError> {
        if message.len() <= HEADER_LEN {
            return Err(HeaderError::Short(message.len()));
        }
        if message[0] != VERSION {
            return Err(HeaderError::Version(message[0]));
        }
        let flags = message[1];
        let mut publisher = [0u8; 8];
        publisher.copy_from_slice(&message[2..10]);
        let mut track = [0u8; 4];
        track.copy_from_slice(&message[10..14]);
        Ok((
            MediaHeader {
                publisher: u64::from_be_bytes(publisher),
                track: u32::from_be_bytes(track),
                keyframe: flags & KEYFRAME != 0,
                audio: flags & AUDIO != 0,
            },
            message.slice(HEADER_LEN..),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_the_frame_is_a_slice() {
        let header = MediaHeader {
            publisher: 0x0003_0000_dead_beef,
            track: 7,
            keyframe: true,
            audio: false,
        };
        let message = header.encode(&[0, 0, 0, 2, 8, 1]);
        assert_eq!(message.len(), HEADER_LEN + 6);
        let (back, frame) = MediaHeader::decode(&message).expect("decodes");
        assert_eq!(back, header);
        assert_eq!(&frame[..], &[0, 0, 0, 2, 8, 1]);
        assert_eq!(frame.as_ptr(), message[HEADER_LEN..].as_ptr());
        let audio = MediaHeader {
            audio: true,
            keyframe: false,
            ..header
        };
        assert_eq!(
            MediaHeader::decode(&audio.encode(&[1])).map(|h| h.0),
            Ok(audio)
        );
    }

    #[test]
    fn short_and_unknown_messages_are_refused() {
        assert_eq!(
            MediaHeader::decode(&Bytes::from_static(&[1; HEADER_LEN])),
            Err(HeaderError::Short(HEADER_LEN))
        );
        let mut other = vec![2u8; HEADER_LEN + 1];
        other[0] = 9;
        assert_eq!(
            MediaHeader::decode(&Bytes::from(other)),
            Err(HeaderError::Version(9))
        );
    }
}
