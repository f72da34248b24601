//! Messages larger than the server's `max_payload`, split into chunks and put together again.
//! Every message on the wire starts with a header naming its publisher connection (origin),
//! its number, and which chunk of how many it is. Pure: bytes in, bytes out.
//!
//! NATS keeps the order of one publisher's messages on one subject, and a publisher sends
//! the chunks of one large message before the next large one (unchunked messages may come
//! between), so the reassembler keeps at most one message in progress per origin. A gap (a
//! chunk lost, a publisher restarted mid-message) drops that message, counted, never
//! delivering a part of it.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};

use crate::BusError;

/// Bytes of the header on every message.
pub const HEADER_BYTES: usize = 1 + 8 + 8 + 2 + 2;
const VERSION: u8 = 1;
/// Origins with a message in progress at once; more evict the oldest entry.
const MAX_ORIGINS: usize = 4096;

/// Splits one connection's messages.
#[derive(Debug)]
pub struct Chunker {
    origin: u64,
    next_message: u64,
}

impl Chunker {
    /// A chunker for the connection `origin` (random, so restarts do not collide).
    pub fn new(origin: u64) -> Self {
        Chunker {
            origin,
            next_message: 0,
        }
    }

    /// The wire messages that carry `payload`, each at most `max_payload` bytes. A payload
    /// over `max_message` bytes, or needing more than 65,535 chunks, is refused.
    pub fn split(
        &mut self,
        payload: &[u8],
        max_payload: usize,
        max_message: usize,
    ) -> Result<Vec<Bytes>, BusError> {
        let room = max_payload.saturating_sub(HEADER_BYTES).max(1);
        let count = payload.len().div_ceil(room).max(1);
        let max = max_message.min(room * usize::from(u16::MAX));
        if payload.len() > max || max_payload <= HEADER_BYTES {
            return Err(BusError::TooLarge {
                size: payload.len(),
                max,
            });
        }
        let message = self.next_message;
        self.next_message = self.next_message.wrapping_add(1);
        let mut chunks = Vec::with_capacity(count);
        for index in 0..count {
            let part = &payload
                [(index * room).min(payload.len())..((index + 1) * room).min(payload.len())];
            let mut chunk = BytesMut::with_capacity(HEADER_BYTES + part.len());
            chunk.put_u8(VERSION);
            chunk.put_u64(self.origin);
            chunk.put_u64(message);
            chunk.put_u16(index as u16);
            chunk.put_u16(count as u16);
            chunk.extend_from_slice(part);
            chunks.push(chunk.freeze());
        }
        Ok(chunks)
    }
}

/// What a wire message turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Reassembled {
    /// A whole message.
    Whole(Bytes),
    /// A chunk of a message still in progress.
    Pending,
    /// A message was dropped: a chunk is missing, or this one is unreadable.
    Dropped(DropCause),
}

/// Why a message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCause {
    /// Not a message of this format.
    Malformed,
    /// Chunks went missing, or it grew past the largest message.
    Incomplete,
}

#[derive(Debug)]
struct Partial {
    message: u64,
    next_index: u16,
    count: u16,
    data: BytesMut,
}

/// Puts chunked messages together again, for one subscription.
#[derive(Debug)]
pub struct Reassembler {
    partials: HashMap<u64, Partial>,
    max_message: usize,
}

impl Reassembler {
    /// A reassembler that refuses messages over `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Reassembler {
            partials: HashMap::new(),
            max_message,
        }
    }

    /// Takes one wire message. A message in progress from the same origin that this one does
    /// not continue is dropped.
    pub fn accept(&mut self, wire: Bytes) -> Reassembled {
        if wire.len() < HEADER_BYTES || wire[0] != VERSION {
            return Reassembled::Dropped(DropCause::Malformed);
        }
        let origin = u64::from_be_bytes(wire[1..9].try_into().unwrap_or_default());
        let message = u64::from_be_bytes(wire[9..17].try_into().unwrap_or_default());
        let index = u16::from_be_bytes([wire[17], wire[18]]);
        let count = u16::from_be_bytes([wire[19], wire[20]]);
        if count == 0 || index >= count {
            return Reassembled::Dropped(DropCause::Malformed);
        }
        let body = wire.slice(HEADER_BYTES..);
        if count == 1 {
            // Unchunked messages may come between the chunks of a large one.
            return Reassembled::Whole(body);
        }
        if index == 0 {
            if self.partials.len() >= MAX_ORIGINS && !self.partials.contains_key(&origin) {
                if let Some(&evict) = self.partials.keys().next() {
                    self.partials.remove(&evict);
                }
            }
            let mut data = BytesMut::with_capacity(body.len() * usize::from(count));
            data.extend_from_slice(&body);
            self.partials.insert(
                origin,
                Partial {
                    message,
                    next_index: 1,
                    count,
                    data,
                },
            );
            return Reassembled::Pending;
        }
        let Some(partial) = self.partials.get_mut(&origin) else {
            return Reassembled::Dropped(DropCause::Incomplete);
        };
        if partial.message != message
            || partial.next_index != index
            || partial.count != count
            || partial.data.len() + body.len() > self.max_message
        {
            self.partials.remove(&origin);
            return Reassembled::Dropped(DropCause::Incomplete);
        }
        partial.data.extend_from_slice(&body);
        partial.next_index += 1;
        if partial.next_index < count {
            return Reassembled::Pending;
        }
        match self.partials.remove(&origin) {
            Some(done) => Reassembled::Whole(done.data.freeze()),
            None => Reassembled::Dropped(DropCause::Incomplete),
        }
    }

    /// Messages in progress now.
    pub fn in_progress(&self) -> usize {
        self.partials.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn a_small_message_is_one_chunk_and_comes_back_whole() {
        let mut chunker = Chunker::new(7);
        let chunks = chunker.split(b"hello", 1024, 1 << 20).expect("split");
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].len(), HEADER_BYTES + 5);
        let mut re = Reassembler::new(1 << 20);
        assert_eq!(
            re.accept(chunks[0].clone()),
            Reassembled::Whole(Bytes::from_static(b"hello"))
        );
        // An empty message is a message too.
        let empty = chunker.split(b"", 1024, 1 << 20).expect("split");
        assert_eq!(
            re.accept(empty[0].clone()),
            Reassembled::Whole(Bytes::new())
        );
    }

    #[test]
    fn a_large_message_is_split_under_the_limit_and_put_together_exactly() {
        let mut chunker = Chunker::new(7);
        let data = payload(10_000);
        let chunks = chunker.split(&data, 1000, 1 << 20).expect("split");
        assert_eq!(chunks.len(), 10_000usize.div_ceil(1000 - HEADER_BYTES));
        assert!(chunks.iter().all(|c| c.len() <= 1000));
        let mut re = Reassembler::new(1 << 20);
        let mut out = Vec::new();
        for chunk in chunks {
            out.push(re.accept(chunk));
        }
        let last = out.pop();
        assert!(out.iter().all(|r| *r == Reassembled::Pending));
        assert_eq!(last, Some(Reassembled::Whole(Bytes::from(data))));
        assert_eq!(re.in_progress(), 0);
    }

    #[test]
    fn chunks_of_two_publishers_interleave_and_both_arrive() {
        let (mut a, mut b) = (Chunker::new(1), Chunker::new(2));
        let (da, db) = (payload(3000), payload(2500));
        let ca = a.split(&da, 500, 1 << 20).expect("a");
        let cb = b.split(&db, 500, 1 << 20).expect("b");
        let mut re = Reassembler::new(1 << 20);
        let mut whole = Vec::new();
        for i in 0..ca.len().max(cb.len()) {
            for chunks in [&ca, &cb] {
                if let Some(c) = chunks.get(i) {
                    if let Reassembled::Whole(m) = re.accept(c.clone()) {
                        whole.push(m);
                    }
                }
            }
        }
        assert_eq!(whole.len(), 2);
        assert!(whole.contains(&Bytes::from(da)) && whole.contains(&Bytes::from(db)));
    }

    #[test]
    fn a_missing_chunk_drops_that_message_and_never_a_part_of_it() {
        let mut chunker = Chunker::new(9);
        let first = chunker.split(&payload(2000), 500, 1 << 20).expect("first");
        let second = chunker.split(&payload(1500), 500, 1 << 20).expect("second");
        let mut re = Reassembler::new(1 << 20);
        assert_eq!(re.accept(first[0].clone()), Reassembled::Pending);
        // Chunk 1 is lost.
        assert_eq!(
            re.accept(first[2].clone()),
            Reassembled::Dropped(DropCause::Incomplete)
        );
        assert_eq!(
            re.accept(first[3].clone()),
            Reassembled::Dropped(DropCause::Incomplete)
        );
        let mut last = Reassembled::Pending;
        for c in second {
            last = re.accept(c);
        }
        assert_eq!(last, Reassembled::Whole(Bytes::from(payload(1500))));
    }

    #[test]
    fn too_large_and_malformed_messages_are_refused_with_reasons() {
        let mut chunker = Chunker::new(1);
        assert!(matches!(
            chunker.split(&payload(5000), 1000, 4000),
            Err(BusError::TooLarge {
                size: 5000,
                max: 4000
            })
        ));
        assert!(chunker.split(b"x", HEADER_BYTES, 100).is_err());
        let mut re = Reassembler::new(100);
        assert_eq!(
            re.accept(Bytes::from_static(b"short")),
            Reassembled::Dropped(DropCause::Malformed)
        );
        // Chunks that add up to more than the reassembler allows.
        let big = chunker.split(&payload(300), 100, 1000).expect("split");
        let results: Vec<_> = big.into_iter().map(|c| re.accept(c)).collect();
        assert!(results.contains(&Reassembled::Dropped(DropCause::Incomplete)));
        assert!(!results.iter().any(|r| matches!(r, Reassembled::Whole(_))));
    }
}
