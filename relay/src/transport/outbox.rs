//! One WebTransport subscriber's outgoing media, as its single writer takes it: audio in one
//! queue (handed to QUIC first), video in a queue per subscribed track, video bytes drawn
//! from the subscriber's byte budget. The core offers without waiting; the writer takes every
//! ready frame of every track it can write at one wake-up ([`Outbox::take`]), so a burst
//! costs one wake-up and one write per track instead of one per frame.
//!
//! No sockets and no tasks here: a test offers and takes directly.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

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
    pub(crate) video: Vec<(Slot, VecDeque<Outgoing>)>,
    /// Tracks unsubscribed since the last take, after their last frames above: their
    /// streams end; the writer then gives the slot back ([`Outbox::free`]).
    pub(crate) ended: Vec<Slot>,
    /// Emptied queues the writer gives back, swapped for full ones at the next take (so a
    /// take allocates nothing).
    pub(crate) spare: Vec<VecDeque<Outgoing>>,
}

impl Ready {
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
    /// The writer took audio it has not sent yet: newer audio queues behind it.
    audio_in_hand: AtomicBool,
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
            audio_in_hand: AtomicBool::new(false),
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

    fn offer(
        &self,
        slot: Option<Slot>,
        out: Outgoing,
        send_now: Option<&dyn Fn(Outgoing) -> Result<Offer, Outgoing>>,
    ) -> Offer {
        let bytes = out.frame.len();
        let mut queues = self.lock();
        if queues.closed {
            return Offer::Closed;
        }
        let depth = match slot {
            None => {
                let mut out = out;
                if let Some(send_now) = send_now {
                    // Nothing of the subscriber's audio waits: this packet cannot overtake
                    // any (a track's packets are offered one after the other), and needs no
                    // wake-up of the writer. QUIC is not called under this lock.
                    if queues.audio.is_empty() && !self.audio_in_hand.load(Ordering::Acquire) {
                        drop(queues);
                        match send_now(out) {
                            Ok(offer) => return offer,
                            Err(refused) => out = refused,
                        }
                        queues = self.lock();
                        if queues.closed {
                            return Offer::Closed;
                        }
                    }
                }
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

    /// Registers the writer's `waker` (any offer from now on wakes it), then moves every
    /// ready frame into `ready` (cleared first): all audio, and the frames of every track
    /// `writable` says can be written now (the others keep theirs, which go on counting
    /// against the track's capacity). Returns false once the outbox is closed.
    pub(crate) fn take(
        &self,
        waker: &Waker,
        writable: impl Fn(Slot) -> bool,
        ready: &mut Ready,
    ) -> bool {
        self.waker.register(waker);
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
        if !audio.is_empty() {
            self.audio_in_hand.store(true, Ordering::Release);
            ready.audio.extend(audio.drain(..));
        }
        dirty.retain(|&slot| {
            let Some(track) = tracks.get_mut(slot) else {
                return false;
            };
            if !writable(slot) {
                return true;
            }
            if !track.frames.is_empty() {
                let mut frames = ready.spare.pop().unwrap_or_default();
                std::mem::swap(&mut track.frames, &mut frames);
                ready.video.push((slot, frames));
            }
            if track.ended {
                ready.ended.push(slot);
            }
            track.dirty = false;
            false
        });
        true
    }

    /// The writer has handed every audio frame it took to QUIC: new audio may go at once.
    pub(crate) fn audio_sent(&self) {
        self.audio_in_hand.store(false, Ordering::Release);
    }

    /// The writer is done with `slot` (its stream ended): a new track may use it.
    pub(crate) fn free(&self, slot: Slot) {
        let mut queues = self.lock();
        if let Some(track) = queues.tracks.get_mut(slot) {
            *track = TrackQueue::default();
            queues.free.push(slot);
        }
    }

    /// Video bytes queued here or held by the writer now.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.budget.used()
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

impl OutboxSink {
    /// Offers audio, handing it to `send_now` at once when none of the subscriber's audio
    /// waits in the outbox or the writer (so no wake-up of the writer, and no packet
    /// overtaken); `send_now` answers for what it sent ([`Offer::Written`], or
    /// [`Offer::Closed`]) and gives back what it could not send, which is queued. Video is
    /// queued as by [`MediaSink::offer`].
    pub(crate) fn offer_or_send(
        &self,
        out: Outgoing,
        send_now: &dyn Fn(Outgoing) -> Result<Offer, Outgoing>,
    ) -> Offer {
        self.outbox.offer(self.slot, out, Some(send_now))
    }
}

impl MediaSink for OutboxSink {
    fn offer(&self, out: Outgoing) -> Offer {
        self.outbox.offer(self.slot, out, None)
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
    use futures_util::task::noop_waker_ref;

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
        assert!(outbox.take(noop_waker_ref(), |_| true, &mut ready));
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
        outbox.take(noop_waker_ref(), |_| true, &mut ready);
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

    /// Appends every taken frame's sequence number to its track's list.
    fn record(ready: &Ready, received: &mut [Vec<u16>]) {
        let video = ready.video.iter().flat_map(|(_, frames)| frames);
        for out in ready.audio.iter().chain(video) {
            let (track, n) = seq(out);
            received[track as usize].push(n);
        }
    }

    #[test]
    fn batching_never_reorders_a_tracks_frames() {
        let (outbox, _) = outbox(1 << 30, 1 << 20);
        let sinks: Vec<OutboxSink> = (0..12).map(|i| outbox.sink(i % 3 == 0)).collect();
        let slots: Vec<Option<Slot>> = sinks.iter().map(|s| s.slot).collect();
        let mut sent = vec![0u16; sinks.len()];
        let mut received: Vec<Vec<u16>> = vec![Vec::new(); sinks.len()];
        let mut blocked = [false; 16];
        let mut rng = Lcg(7);
        let mut ready = Ready::default();
        for _ in 0..2_000 {
            // A burst of offers in random track order, then a take with random tracks blocked.
            for _ in 0..rng.below(40) {
                let i = rng.below(sinks.len() as u64) as usize;
                let audio = slots[i].is_none();
                let out = frame(i as u8, sent[i], sent[i].is_multiple_of(30), audio);
                assert!(matches!(sinks[i].offer(out), Offer::Accepted { .. }));
                sent[i] += 1;
            }
            blocked.iter_mut().for_each(|b| *b = rng.below(3) == 0);
            outbox.take(noop_waker_ref(), |slot| !blocked[slot], &mut ready);
            record(&ready, &mut received);
            for (slot, _) in &ready.video {
                assert!(!blocked[*slot], "a blocked track's frames stay queued");
            }
        }
        outbox.take(noop_waker_ref(), |_| true, &mut ready);
        record(&ready, &mut received);
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
        outbox.take(noop_waker_ref(), |_| true, &mut ready);
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
    fn audio_goes_at_once_only_when_none_of_the_subscribers_audio_waits() {
        let (outbox, _) = outbox(1 << 20, 96);
        let audio = outbox.sink(true);
        let sent = std::cell::RefCell::new(Vec::new());
        let send = |out: Outgoing| {
            sent.borrow_mut().push(seq(&out));
            Ok(Offer::Written)
        };
        let refuse = |out: Outgoing| Err(out);
        assert_eq!(
            audio.offer_or_send(frame(1, 0, false, true), &send),
            Offer::Written
        );
        // A packet the sender refuses (too large for a datagram) is queued for the writer,
        // and what follows it queues behind it.
        audio.offer_or_send(frame(1, 1, false, true), &refuse);
        audio.offer_or_send(frame(1, 2, false, true), &send);
        assert_eq!(sent.borrow().as_slice(), &[(1, 0)]);
        let mut ready = Ready::default();
        outbox.take(noop_waker_ref(), |_| true, &mut ready);
        assert_eq!(
            ready.audio.iter().map(seq).collect::<Vec<_>>(),
            vec![(1, 1), (1, 2)]
        );
        // Taken but not yet sent by the writer: still nothing overtakes.
        audio.offer_or_send(frame(1, 3, false, true), &send);
        assert_eq!(sent.borrow().len(), 1);
        outbox.audio_sent();
        outbox.take(noop_waker_ref(), |_| true, &mut ready);
        assert_eq!(
            ready.audio.iter().map(seq).collect::<Vec<_>>(),
            vec![(1, 3)]
        );
        outbox.audio_sent();
        audio.offer_or_send(frame(1, 4, false, true), &send);
        assert_eq!(sent.borrow().as_slice(), &[(1, 0), (1, 4)]);
    }

    struct CountingWaker(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_writer_is_woken_once_per_batch_however_many_frames_come() {
        let (outbox, _) = outbox(1 << 20, 96);
        let counter = Arc::new(CountingWaker(Default::default()));
        let waker = Waker::from(counter.clone());
        let wakes = || counter.0.load(Ordering::Relaxed);
        let video: Vec<OutboxSink> = (0..5).map(|_| outbox.sink(false)).collect();
        let mut ready = Ready::default();
        outbox.take(&waker, |_| true, &mut ready);
        for (track, sink) in video.iter().enumerate() {
            sink.offer(frame(track as u8, 0, true, false));
            sink.offer(frame(track as u8, 1, false, false));
        }
        assert_eq!(wakes(), 1, "ten frames of five tracks, one wake-up");
        outbox.take(&waker, |_| true, &mut ready);
        assert_eq!(ready.video.len(), 5);
        video[0].offer(frame(0, 2, false, false));
        assert_eq!(wakes(), 2);
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
        assert!(!outbox.take(noop_waker_ref(), |_| true, &mut ready));
    }
}
