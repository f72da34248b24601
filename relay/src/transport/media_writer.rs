//! The one media writer of a WebTransport subscriber: at each wake-up it takes every ready
//! frame of all the subscriber's tracks from its [`Outbox`], hands audio to QUIC first (as
//! datagrams, back to back, so quinn packs them into as few packets as fit), then writes each
//! video track's frames to its stream in one `write_chunks` (one lock of quinn's connection
//! per track and batch, not per frame).
//!
//! Video opens a new unidirectional stream at every keyframe, so each group of pictures
//! travels alone: when the subscriber fell behind and frames were dropped, the stale stream is
//! reset (its unsent bytes discarded) instead of finished. A track whose stream is blocked
//! (flow control) or still opening keeps its frames in the outbox and waits alone: the writer
//! goes on with the others, and quinn wakes it when the stream can take more.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use wtransport::{Connection, SendStream, VarInt};

use super::datagram::{send_datagram, DatagramHeader, DatagramRefused};
use super::outbox::{Outbox, Ready, Slot};
use crate::core::Outgoing;
use crate::metrics::{MediaWrites, Metrics};

/// Stream priority of audio too large for a datagram (quinn sends higher first).
const AUDIO_PRIORITY: i32 = 10;
/// Error code on a stream reset because its group of pictures was abandoned.
const RESET_STALE_GROUP: u32 = 1;
/// Most frames handed to quinn in one write.
const WRITE_BATCH: usize = 64;

type Opening = Pin<Box<dyn Future<Output = Result<SendStream, WriterError>> + Send>>;

/// Writes the subscriber's media until `closing` fires or the connection is lost.
pub(crate) async fn write_media(
    connection: Connection,
    outbox: Arc<Outbox>,
    metrics: Metrics,
    closing: CancellationToken,
) {
    let mut writer = MediaWriter {
        header: DatagramHeader::of(&connection),
        connection,
        outbox: outbox.clone(),
        writes: metrics.media_writes(),
        now: Instant::now(),
        tracks: Vec::new(),
        audio_stream: TrackWriter::new(true),
        ready: Ready::default(),
        chunks: Vec::with_capacity(WRITE_BATCH),
    };
    tokio::select! {
        _ = closing.cancelled() => {}
        result = poll_fn(|cx| writer.poll(cx)) => {
            if let Err(error) = result {
                tracing::debug!(%error, "media writer ended");
            }
        }
    }
    outbox.close();
    writer.give_back();
}

struct MediaWriter {
    connection: Connection,
    /// What goes before each datagram of this session.
    header: Option<DatagramHeader>,
    outbox: Arc<Outbox>,
    /// What it wrote, added to the relay's metrics once per wake-up.
    writes: MediaWrites,
    /// The time of this wake-up.
    now: Instant,
    /// Video tracks by outbox slot.
    tracks: Vec<Option<TrackWriter>>,
    /// Audio too large for a datagram.
    audio_stream: TrackWriter,
    ready: Ready,
    /// Reused for each `write_chunks`.
    chunks: Vec<Bytes>,
}

/// One track's stream and the frames taken for it but not yet written.
struct TrackWriter {
    audio: bool,
    stream: Stream,
    pending: VecDeque<Outgoing>,
    /// Bytes of the first pending frame already written.
    front_written: usize,
    /// Frames written on the current stream.
    on_stream: usize,
    /// The stream failed: frames are dropped until the next keyframe.
    skip_to_keyframe: bool,
    /// Unsubscribed: the stream ends after the pending frames.
    ended: bool,
}

enum Stream {
    None,
    Opening(Opening),
    Open(SendStream),
}

impl TrackWriter {
    fn new(audio: bool) -> Self {
        TrackWriter {
            audio,
            stream: Stream::None,
            pending: VecDeque::new(),
            front_written: 0,
            on_stream: 0,
            skip_to_keyframe: false,
            ended: false,
        }
    }

    /// Takes new frames only when everything before them is written and its stream is open
    /// (or not needed yet): otherwise they wait in the outbox, bounded by its capacity.
    fn can_take(&self) -> bool {
        self.pending.is_empty() && !matches!(self.stream, Stream::Opening(_))
    }

    fn busy(&self) -> bool {
        !self.pending.is_empty() || matches!(self.stream, Stream::Opening(_)) || self.ended
    }
}

impl MediaWriter {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WriterError>> {
        self.now = Instant::now();
        let polled = self.poll_batch(cx);
        self.writes.flush();
        polled
    }

    fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WriterError>> {
        // Tracks left waiting at the last wake-up (blocked, opening) go on first.
        for slot in 0..self.tracks.len() {
            if self.tracks[slot].as_ref().is_some_and(TrackWriter::busy) {
                self.progress(Some(slot), cx)?;
            }
        }
        if self.audio_stream.busy() {
            self.progress(None, cx)?;
        }
        let tracks = &self.tracks;
        let open = self.outbox.take(
            cx.waker(),
            |slot| {
                tracks
                    .get(slot)
                    .and_then(Option::as_ref)
                    .is_none_or(TrackWriter::can_take)
            },
            &mut self.ready,
        );
        if !open {
            return Poll::Ready(Ok(()));
        }
        let mut ready = std::mem::take(&mut self.ready);
        // Audio first: quinn puts datagrams ahead of stream data in each packet.
        for out in ready.audio.drain(..) {
            self.send_audio(out)?;
        }
        self.outbox.audio_sent();
        for (slot, mut frames) in ready.video.drain(..) {
            let track = self.track(slot);
            // A track is taken from only when nothing of it is pending: swap, no copy.
            if track.pending.is_empty() {
                std::mem::swap(&mut track.pending, &mut frames);
            } else {
                track.pending.append(&mut frames);
            }
            ready.spare.push(frames);
            self.progress(Some(slot), cx)?;
        }
        for slot in ready.ended.drain(..) {
            self.track(slot).ended = true;
            self.progress(Some(slot), cx)?;
        }
        self.ready = ready;
        // The take registered this task's waker: an offer since then wakes it again, and a
        // blocked stream wakes it when it can take more.
        Poll::Pending
    }

    fn track(&mut self, slot: Slot) -> &mut TrackWriter {
        if self.tracks.len() <= slot {
            self.tracks.resize_with(slot + 1, || None);
        }
        self.tracks[slot].get_or_insert_with(|| TrackWriter::new(false))
    }

    fn send_audio(&mut self, out: Outgoing) -> Result<(), WriterError> {
        match send_datagram(&self.connection, self.header, out) {
            Ok(out) => {
                self.writes
                    .written(true, out.frame.len(), out.received_at, self.now);
                Ok(())
            }
            Err(DatagramRefused::NotConnected) => Err(WriterError::Lost),
            Err(DatagramRefused::Unfit(out)) => {
                self.audio_stream.pending.push_back(out);
                Ok(())
            }
        }
    }

    /// Writes what `slot`'s track (or, for `None`, the audio stream) has pending, as far as
    /// its stream takes without waiting.
    fn progress(&mut self, slot: Option<Slot>, cx: &mut Context<'_>) -> Result<(), WriterError> {
        let MediaWriter {
            connection,
            outbox,
            writes,
            now,
            tracks,
            audio_stream,
            chunks,
            ..
        } = self;
        let track = match slot {
            None => audio_stream,
            Some(slot) => match tracks.get_mut(slot).and_then(Option::as_mut) {
                Some(track) => track,
                None => return Ok(()),
            },
        };
        let done = track.progress(connection, outbox, writes, *now, chunks, cx)?;
        if done {
            if let Some(slot) = slot {
                tracks[slot] = None;
                outbox.free(slot);
            }
        }
        Ok(())
    }

    /// The writer stopped: what it still held gives its bytes back.
    fn give_back(&mut self) {
        let tracks = self.tracks.iter_mut().flatten();
        for track in tracks.chain(std::iter::once(&mut self.audio_stream)) {
            for out in track.pending.drain(..) {
                self.outbox.release(&out);
            }
        }
    }
}

impl TrackWriter {
    /// Writes pending frames until the stream would block; true when the track is over
    /// (ended, everything written, stream finished).
    fn progress(
        &mut self,
        connection: &Connection,
        outbox: &Outbox,
        writes: &MediaWrites,
        now: Instant,
        chunks: &mut Vec<Bytes>,
        cx: &mut Context<'_>,
    ) -> Result<bool, WriterError> {
        loop {
            if let Stream::Opening(opening) = &mut self.stream {
                match opening.as_mut().poll(cx) {
                    Poll::Pending => return Ok(false),
                    Poll::Ready(Ok(stream)) => {
                        if self.audio {
                            stream.set_priority(AUDIO_PRIORITY);
                        }
                        self.stream = Stream::Open(stream);
                        self.on_stream = 0;
                    }
                    Poll::Ready(Err(WriterError::Lost)) => return Err(WriterError::Lost),
                    Poll::Ready(Err(error)) => {
                        // What waited for this stream is lost; the next keyframe tries again.
                        tracing::debug!(%error, "media stream not opened");
                        self.stream = Stream::None;
                        for out in self.pending.drain(..) {
                            outbox.release(&out);
                        }
                        self.front_written = 0;
                        self.skip_to_keyframe = !self.audio;
                        return Ok(self.ended);
                    }
                }
            }
            if self.skip_to_keyframe {
                while self.pending.front().is_some_and(|out| !out.keyframe) {
                    if let Some(out) = self.pending.pop_front() {
                        outbox.release(&out);
                    }
                }
                if !self.pending.is_empty() {
                    self.skip_to_keyframe = false;
                }
            }
            let Some(front) = self.pending.front() else {
                if self.ended {
                    if let Stream::Open(stream) = &mut self.stream {
                        // quinn's finish does not wait for the peer; the stream drains on its own.
                        let _ = stream.quic_stream_mut().finish();
                    }
                    self.stream = Stream::None;
                    return Ok(true);
                }
                return Ok(false);
            };
            // A keyframe starts a new stream; after a gap the old one's unsent bytes are stale.
            if front.keyframe && !self.audio && self.front_written == 0 && self.on_stream > 0 {
                if let Stream::Open(mut old) = std::mem::replace(&mut self.stream, Stream::None) {
                    if front.after_gap {
                        let _ = old.reset(VarInt::from_u32(RESET_STALE_GROUP));
                    } else {
                        let _ = old.quic_stream_mut().finish();
                    }
                }
                self.on_stream = 0;
            }
            let stream = match &mut self.stream {
                Stream::Open(stream) => stream,
                Stream::Opening(_) => return Ok(false),
                Stream::None => {
                    let connection = connection.clone();
                    self.stream = Stream::Opening(Box::pin(async move {
                        Ok(connection.open_uni().await?.await?)
                    }));
                    continue;
                }
            };
            // This stream's frames: up to the next keyframe, which starts the next stream.
            chunks.clear();
            for (i, out) in self.pending.iter().enumerate().take(WRITE_BATCH) {
                if i > 0 && out.keyframe && !self.audio {
                    break;
                }
                let from = if i == 0 { self.front_written } else { 0 };
                chunks.push(out.frame.slice(from..));
            }
            let written = {
                let mut write = std::pin::pin!(stream.quic_stream_mut().write_chunks(chunks));
                match write.as_mut().poll(cx) {
                    Poll::Pending => return Ok(false),
                    Poll::Ready(written) => written,
                }
            };
            match written {
                Ok(written) => self.account(written.bytes, outbox, writes, now),
                Err(wtransport::quinn::WriteError::ConnectionLost(_)) => {
                    return Err(WriterError::Lost)
                }
                Err(error) => {
                    tracing::debug!(%error, "media stream failed");
                    self.stream = Stream::None;
                    self.fail(outbox);
                }
            }
        }
    }

    /// `bytes` of the pending frames were handed to quinn.
    fn account(&mut self, mut bytes: usize, outbox: &Outbox, writes: &MediaWrites, now: Instant) {
        while let Some(front) = self.pending.front() {
            let rest = front.frame.len() - self.front_written;
            if bytes < rest {
                self.front_written += bytes;
                return;
            }
            bytes -= rest;
            self.front_written = 0;
            self.on_stream += 1;
            if let Some(out) = self.pending.pop_front() {
                outbox.release(&out);
                writes.written(out.audio, out.frame.len(), out.received_at, now);
            }
        }
    }

    /// The stream is lost: a partly written frame and its group cannot be decoded.
    fn fail(&mut self, outbox: &Outbox) {
        if self.front_written > 0 {
            if let Some(out) = self.pending.pop_front() {
                outbox.release(&out);
            }
            self.front_written = 0;
        }
        self.on_stream = 0;
        self.skip_to_keyframe = !self.audio;
    }
}

/// Why the writer, or one track's stream, stopped.
#[derive(Debug, thiserror::Error)]
enum WriterError {
    #[error("the connection is lost")]
    Lost,
    #[error("opening a stream: {0}")]
    Opening(#[from] wtransport::error::StreamOpeningError),
}

impl From<wtransport::error::ConnectionError> for WriterError {
    fn from(_: wtransport::error::ConnectionError) -> Self {
        WriterError::Lost
    }
}
