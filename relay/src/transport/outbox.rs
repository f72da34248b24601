//! One WebTransport subscriber's outgoing media, as its single writer takes it: audio in one
//! queue (handed to QUIC first), video in a queue per subscribed track, video bytes drawn
//! from the subscriber's byte budget. The core offers without waiting; the writer takes every
//! ready frame of every track it can write at one wake-up ([`Outbox::take`]), so a burst
//! costs one wake-up and one write per track instead of one per frame.
//!
//! No sockets and no tasks here: a test offers and takes directly.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use crate::core::{MediaSink, Offer, Outgoing, QueueBudget};

/// A subscribed video track's place in an outbox (reused once its writer let go of it).
pub(crate) type Slot = usize;

/// Frames ready for the writer, taken at one wake-up. Kept by the writer and reused.
#[derive(Default)]
pub(crate) struct Ready {
    /// Audio in the order offered (every audio track of the subscriber).
    pub(crate) audio: Vec<Outgoing>,
    /// Video per track, each in the order offered.
    pub(crate) video: Vec<(Slot, Vec<Outgoing>)>,
    /// Tracks unsubscribed since the last take, after their last frames above: their
    /// streams end; the writer then gives the slot back ([`Outbox::free`]).
    pub(crate) ended: Vec<Slot>,
}

impl Ready {
    /// Nothing was taken.
    pub(crate) fn is_empty(&self) -> bool {
        self.audio.is_empty() && self.video.is_empty() && self.ended.is_empty()
    }

    fn clear(&mut self) {
        self.audio.clear();
        self.video.clear();
        self.ended.clear();
    }
}

/// Queues of one subscriber, shared by its sinks (the core) and its writer.
pub(crate) struct Outbox {
    queues: Mutex<Queues>,
    waker: AtomicWaker,
    budget: Arc<QueueBudget>,
    track_capacity: usize,
    audio_capacity: usize,
}

#[derive(Default)]
struct Queues {
    audio: VecDeque<Outgoing>,
    tracks: Vec<TrackQueue>,
    free: Vec<Slot>,
    /// Slots with frames or an end not yet taken (each once).
    dirty: Vec<Slot>,
    closed: bool,
}

#[derive(Default)]
struct TrackQueue {
    frames: VecDeque<Outgoing>,
    /// The sink was dropped: the stream ends after the queued frames.
    ended: bool,
    /// In `dirty`.
    dirty: bool,
}

impl Outbox {
    /// An outbox holding at most `track_capacity` video frames per track and
    /// `audio_capacity` audio frames, and no more video bytes than `budget` allows.
    pub(crate) fn new(
        budget: Arc<QueueBudget>,
        track_capacity: usize,
        audio_capacity: usize,
    ) -> Arc<Self> {
        Arc::new(Outbox {
            queues: Mutex::new(Queues::default()),
            waker: AtomicWaker::new(),
            budget,
            track_capacity: track_capacity.max(1),
            audio_capacity: audio_capacity.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A sink for one subscribed track. Starts nothing (the core calls this under its
    /// meeting lock).
    pub(crate) fn sink(self: &Arc<Self>, audio: bool) -> OutboxSink {
        let slot = (!audio).then(|| {
            let mut queues = self.lock();
            match queues.free.pop() {
                Some(slot) => slot,
                None => {
                    queues.tracks.push(TrackQueue::default());
                    queues.tracks.len() - 1
                }
            }
        });
        OutboxSink {
            outbox: self.clone(),
            slot,
        }
    }

    fn offer(&self, slot: Option<Slot>, out: Outgoing) -> Offer {
        let bytes = out.frame.len();
        let mut queues = self.lock();
        if queues.closed {
            return Offer::Closed;
        }
        let depth = match slot {
            None => {
                let depth = queues.audio.len();
                if depth >= self.audio_capacity {
                    return Offer::Full;
                }
                queues.audio.push_back(out);
                depth
            }
            Some(slot) => {
                let Queues { tracks, dirty, .. } = &mut *queues;
                let Some(track) = tracks.get_mut(slot) else {
                    return Offer::Closed;
                };
                if out.keyframe && out.after_gap {
                    // The track starts again here: what is still queued is only late.
                    for stale in track.frames.drain(..) {
                        self.budget.release(stale.frame.len());
                    }
                }
                let depth = track.frames.len();
                if depth >= self.track_capacity || !self.budget.reserve(bytes) {
                    return Offer::Full;
                }
                track.frames.push_back(out);
                if !track.dirty {
                    track.dirty = true;
                    dirty.push(slot);
                }
                depth
            }
        };
        drop(queues);
        self.waker.wake();
        Offer::Accepted { depth }
    }

    fn end(&self, slot: Slot) {
        let mut queues = self.lock();
        let Queues { tracks, dirty, .. } = &mut *queues;
        if let Some(track) = tracks.get_mut(slot) {
            track.ended = true;
            if !track.dirty {
                track.dirty = true;
                dirty.push(slot);
            }
        }
        drop(queues);
        self.waker.wake();
    }

    /// Waits (registering the writer's waker) until something was offered since the last take.
    pub(crate) fn poll_offered(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.waker.register(cx.waker());
        let queues = self.lock();
        if queues.audio.is_empty() && queues.dirty.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// Moves every ready frame into `ready` (cleared first): all audio, and the frames of
    /// every track `writable` says can be written now (the others keep theirs, which go on
    /// counting against the track's capacity). Returns false once the outbox is closed.
    pub(crate) fn take(&self, writable: impl Fn(Slot) -> bool, ready: &mut Ready) -> bool {
        ready.clear();
        let mut queues = self.lock();
        if queues.closed {
            return false;
        }
        let Queues {
            audio,
            tracks,
            dirty,
            ..
        } = &mut *queues;
        ready.audio.extend(audio.drain(..));
        dirty.retain(|&slot| {
            let Some(track) = tracks.get_mut(slot) else {
                return false;
            };
            if !writable(slot) {
                return true;
            }
            if !track.frames.is_empty() {
                ready.video.push((slot, track.frames.drain(..).collect()));
            }
            if track.ended {
                ready.ended.push(slot);
            }
            track.dirty = false;
            false
        });
        true
    }

    /// The writer is done with `slot` (its stream ended): a new track may use it.
    pub(crate) fn free(&self, slot: Slot) {
        let mut queues = self.lock();
        if let Some(track) = queues.tracks.get_mut(slot) {
            *track = TrackQueue::default();
            queues.free.push(slot);
        }
    }

    /// The frame's video bytes left the outbox (written, or given up by the writer).
    pub(crate) fn release(&self, out: &Outgoing) {
        if !out.audio {
            self.budget.release(out.frame.len());
        }
    }

    /// The writer stopped: later offers are refused, and queued video gives its bytes back.
    pub(crate) fn close(&self) {
        let mut queues = self.lock();
        queues.closed = true;
        queues.audio.clear();
        for track in &mut queues.tracks {
            for out in track.frames.drain(..) {
                self.budget.release(out.frame.len());
            }
        }
    }
}

/// One subscribed track's way into its subscriber's outbox.
pub(crate) struct OutboxSink {
    outbox: Arc<Outbox>,
    /// The video track's queue (`None`: audio).
    slot: Option<Slot>,
}

impl MediaSink for OutboxSink {
    fn offer(&self, out: Outgoing) -> Offer {
        self.outbox.offer(self.slot, out)
    }
}

impl Drop for OutboxSink {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.outbox.end(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;

    use super::*;

    fn outbox(budget_bytes: usize, track_capacity: usize) -> (Arc<Outbox>, prometheus::IntGauge) {
        let gauge = prometheus::IntGauge::new("queued", "test").expect("gauge");
        let budget = QueueBudget::new(budget_bytes, gauge.clone());
        (Outbox::new(budget, track_capacity, 64), gauge)
    }

    /// A frame whose payload names its track and sequence number.
    fn frame(track: u8, seq: u16, keyframe: bool, audio: bool) -> Outgoing {
        let [hi, lo] = seq.to_be_bytes();
        Outgoing {
            frame: Bytes::from(vec![0, 0, 0, 3, track, hi, lo]),
            received_at: Instant::now(),
            keyframe,
            after_gap: false,
            audio,
        }
    }

    fn seq(out: &Outgoing) -> (u8, u16) {
        (
            out.frame[4],
            u16::from_be_bytes([out.frame[5], out.frame[6]]),
        )
    }

    #[test]
    fn audio_is_taken_first_and_still_accepted_when_every_video_queue_is_full() {
        let (outbox, _) = outbox(1 << 20, 4);
        let audio = outbox.sink(true);
        let video: Vec<OutboxSink> = (0..20).map(|_| outbox.sink(false)).collect();
        for (track, sink) in video.iter().enumerate() {
            for n in 0..4 {
                assert!(matches!(
                    sink.offer(frame(track as u8, n, n == 0, false)),
                    Offer::Accepted { .. }
                ));
            }
            assert_eq!(
                sink.offer(frame(track as u8, 4, false, false)),
                Offer::Full,
                "the track's queue is full"
            );
        }
        for n in 0..10 {
            assert!(matches!(
                audio.offer(frame(99, n, false, true)),
                Offer::Accepted { .. }
            ));
        }
        let mut ready = Ready::default();
        assert!(outbox.take(|_| true, &mut ready));
        let audio: Vec<_> = ready.audio.iter().map(seq).collect();
        assert_eq!(audio, (0..10).map(|n| (99, n)).collect::<Vec<_>>());
        assert_eq!(ready.video.len(), 20);
        assert!(ready.video.iter().all(|(_, frames)| frames.len() == 4));
    }

    #[test]
    fn a_full_byte_budget_refuses_video_but_not_audio() {
        let (outbox, gauge) = outbox(14, 96);
        let audio = outbox.sink(true);
        let video = outbox.sink(false);
        assert!(matches!(
            video.offer(frame(1, 0, true, false)),
            Offer::Accepted { .. }
        ));
        assert!(matches!(
            video.offer(frame(1, 1, false, false)),
            Offer::Accepted { .. }
        ));
        assert_eq!(video.offer(frame(1, 2, false, false)), Offer::Full);
        assert!(matches!(
            audio.offer(frame(2, 0, false, true)),
            Offer::Accepted { .. }
        ));
        assert_eq!(gauge.get(), 14, "only video draws on the budget");
        let mut ready = Ready::default();
        outbox.take(|_| true, &mut ready);
        for (_, frames) in &ready.video {
            frames.iter().for_each(|out| outbox.release(out));
        }
        assert_eq!(gauge.get(), 0);
    }

    /// A small deterministic generator (no dependency for one test).
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    #[test]
    fn batching_never_reorders_a_tracks_frames() {
        let (outbox, _) = outbox(1 << 30, 1 << 20);
        let sinks: Vec<OutboxSink> = (0..12).map(|i| outbox.sink(i % 3 == 0)).collect();
        let slots: Vec<Option<Slot>> = sinks.iter().map(|s| s.slot).collect();
        let mut sent = vec![0u16; sinks.len()];
        let mut received: Vec<Vec<u16>> = vec![Vec::new(); sinks.len()];
        let mut blocked = vec![false; 16];
        let mut rng = Lcg(7);
        let mut ready = Ready::default();
        for _ in 0..2_000 {
            // A burst of offers in random track order, then a take with random tracks blocked.
            for _ in 0..rng.below(40) {
                let i = rng.below(sinks.len() as u64) as usize;
                let audio = slots[i].is_none();
                let out = frame(i as u8, sent[i], sent[i] % 30 == 0, audio);
                assert!(matches!(sinks[i].offer(out), Offer::Accepted { .. }));
                sent[i] += 1;
            }
            blocked.iter_mut().for_each(|b| *b = rng.below(3) == 0);
            outbox.take(|slot| !blocked[slot], &mut ready);
            for out in ready
                .audio
                .iter()
                .chain(ready.video.iter().flat_map(|(_, f)| f))
            {
                let (track, n) = seq(out);
                received[track as usize].push(n);
            }
            for (slot, _) in &ready.video {
                assert!(!blocked[*slot], "a blocked track's frames stay queued");
            }
        }
        outbox.take(|_| true, &mut ready);
        for out in ready
            .audio
            .iter()
            .chain(ready.video.iter().flat_map(|(_, f)| f))
        {
            let (track, n) = seq(out);
            received[track as usize].push(n);
        }
        for (track, got) in received.iter().enumerate() {
            let expected: Vec<u16> = (0..sent[track]).collect();
            assert_eq!(got, &expected, "track {track} in order and complete");
        }
    }

    #[test]
    fn a_restart_drops_the_tracks_stale_frames_and_an_end_follows_the_last_frame() {
        let (outbox, gauge) = outbox(1 << 20, 96);
        let video = outbox.sink(false);
        let other = outbox.sink(false);
        let slot = video.slot.expect("video has a slot");
        for n in 0..3 {
            video.offer(frame(1, n, n == 0, false));
        }
        other.offer(frame(2, 0, true, false));
        let mut restart = frame(1, 3, true, false);
        restart.after_gap = true;
        video.offer(restart);
        drop(video);
        let mut ready = Ready::default();
        outbox.take(|_| true, &mut ready);
        let taken: Vec<(Slot, Vec<(u8, u16)>)> = ready
            .video
            .iter()
            .map(|(slot, frames)| (*slot, frames.iter().map(seq).collect()))
            .collect();
        assert!(taken.contains(&(slot, vec![(1, 3)])), "{taken:?}");
        assert!(taken.iter().any(|(_, f)| f == &vec![(2, 0)]));
        assert_eq!(ready.ended, vec![slot]);
        assert_eq!(gauge.get(), 14, "the stale frames gave their bytes back");
        // The slot is reused only once the writer frees it.
        let next = outbox.sink(false);
        assert_ne!(next.slot, Some(slot));
        outbox.free(slot);
        assert_eq!(outbox.sink(false).slot, Some(slot));
    }

    #[test]
    fn a_closed_outbox_refuses_and_gives_back_its_bytes() {
        let (outbox, gauge) = outbox(1 << 20, 96);
        let video = outbox.sink(false);
        video.offer(frame(1, 0, true, false));
        assert_eq!(gauge.get(), 7);
        outbox.close();
        assert_eq!(gauge.get(), 0);
        assert_eq!(video.offer(frame(1, 1, false, false)), Offer::Closed);
        let mut ready = Ready::default();
        assert!(!outbox.take(|_| true, &mut ready));
    }
}
