//! Audio as WebTransport datagrams: an envelope behind its session's HTTP/3 datagram header
//! (the quarter stream ID, a QUIC varint), handed to quinn as one buffer.
//!
//! wtransport's own `send_datagram` allocates and copies a buffer for every datagram. A
//! fan-out sends one packet to every subscriber in a row on one thread, and subscribers'
//! sessions almost always share a header (a browser's session is its connection's first
//! stream), so the buffer is built once per packet and thread and shared by all of them
//! ([`datagram`]).

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use wtransport::proto::datagram::Datagram;
use wtransport::proto::ids::QStreamId;
use wtransport::Connection;

use crate::core::{unprefixed, Outgoing};

/// The HTTP/3 datagram header of one WebTransport session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DatagramHeader {
    bytes: [u8; 8],
    len: usize,
}

impl DatagramHeader {
    /// The header of `connection`'s session; `None` if it cannot be written (never for a
    /// valid session: a varint takes at most 8 bytes), and datagrams then go the slower way.
    pub(crate) fn of(connection: &Connection) -> Option<Self> {
        Self::of_session(connection.session_id())
    }

    fn of_session(session: wtransport::SessionId) -> Option<Self> {
        let mut bytes = [0; 8];
        let len = Datagram::new(QStreamId::from_session_id(session), &[])
            .write(&mut bytes)
            .ok()?;
        Some(DatagramHeader { bytes, len })
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The last datagram built on this thread, with the frame and header it was built from.
struct LastDatagram {
    frame: Bytes,
    header: DatagramHeader,
    datagram: Bytes,
}

thread_local! {
    static LAST_DATAGRAM: RefCell<Option<LastDatagram>> = const { RefCell::new(None) };
}

/// `frame`'s envelope behind `header`, as one buffer: the one built last on this thread when
/// it was for the same frame and header (the frame is held with it, so its memory cannot be
/// reused for another frame meanwhile).
pub(crate) fn datagram(frame: &Bytes, header: DatagramHeader) -> Bytes {
    LAST_DATAGRAM.with(|last| {
        let mut last = last.borrow_mut();
        if let Some(built) = last.as_ref() {
            if built.frame.as_ptr() == frame.as_ptr()
                && built.frame.len() == frame.len()
                && built.header == header
            {
                return built.datagram.clone();
            }
        }
        let envelope = unprefixed(frame);
        let mut buffer = BytesMut::with_capacity(header.len + envelope.len());
        buffer.extend_from_slice(header.as_slice());
        buffer.extend_from_slice(&envelope);
        let datagram = buffer.freeze();
        *last = Some(LastDatagram {
            frame: frame.clone(),
            header,
            datagram: datagram.clone(),
        });
        datagram
    })
}

/// Why an audio frame did not go as a datagram.
pub(crate) enum DatagramRefused {
    /// Too large for a datagram, or the peer takes none: it goes on a stream.
    Unfit(Outgoing),
    /// The connection is gone.
    NotConnected,
}

/// Sends `out` as one datagram (the envelope without its length prefix, behind `header`);
/// gives it back, sent, for the caller to count.
pub(crate) fn send_datagram(
    connection: &Connection,
    header: Option<DatagramHeader>,
    out: Outgoing,
) -> Result<Outgoing, DatagramRefused> {
    let Some(header) = header else {
        use wtransport::error::SendDatagramError;
        return match connection.send_datagram(out.unprefixed()) {
            Ok(()) => Ok(out),
            Err(SendDatagramError::TooLarge | SendDatagramError::UnsupportedByPeer) => {
                Err(DatagramRefused::Unfit(out))
            }
            Err(SendDatagramError::NotConnected) => Err(DatagramRefused::NotConnected),
        };
    };
    use wtransport::quinn::SendDatagramError;
    match connection
        .quic_connection()
        .send_datagram(datagram(&out.frame, header))
    {
        Ok(()) => Ok(out),
        Err(
            SendDatagramError::TooLarge
            | SendDatagramError::UnsupportedByPeer
            | SendDatagramError::Disabled,
        ) => Err(DatagramRefused::Unfit(out)),
        Err(SendDatagramError::ConnectionLost(_)) => Err(DatagramRefused::NotConnected),
    }
}

#[cfg(test)]
mod tests {
    use wtransport::{SessionId, StreamId, VarInt};

    use super::*;

    fn header(stream: u32) -> DatagramHeader {
        let session = SessionId::try_from_session_stream(StreamId::new(VarInt::from_u32(stream)))
            .expect("a client's bidirectional stream");
        DatagramHeader::of_session(session).expect("header")
    }

    fn frame(envelope: &[u8]) -> Bytes {
        let mut frame = (envelope.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(envelope);
        Bytes::from(frame)
    }

    #[test]
    fn a_datagram_is_the_sessions_quarter_stream_id_then_the_envelope() {
        // Stream 0 (a browser's session): quarter stream ID 0, one byte.
        assert_eq!(&datagram(&frame(b"abc"), header(0))[..], b"\x00abc");
        // Stream 400: quarter stream ID 100, a two-byte varint (0x40 | 0, 100).
        assert_eq!(&datagram(&frame(b"abc"), header(400))[..], b"\x40\x64abc");
    }

    #[test]
    fn one_packet_to_many_subscribers_is_built_once() {
        let packet = frame(b"one packet");
        let first = datagram(&packet.clone(), header(0));
        let second = datagram(&packet.clone(), header(0));
        assert_eq!(first.as_ptr(), second.as_ptr(), "the same buffer, shared");
        // Another session's header, or another packet with the same bytes: built anew.
        let other_session = datagram(&packet, header(4));
        assert_eq!(&other_session[..], b"\x01one packet");
        let same_bytes = datagram(&frame(b"one packet"), header(0));
        assert_ne!(first.as_ptr(), same_bytes.as_ptr());
        assert_eq!(first, same_bytes);
    }
}
