//! Tracks: what a publisher announced ([`PublishedTrack`]) and each subscriber's copy
//! ([`DownTrack`]), with the keyframe gate, keyframe-request coalescing and the congestion
//! window that turns drops into a notice for the publisher.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;

use super::mesh::MESH_SUBSCRIBER;
use super::sink::{MediaSink, Offer, Outgoing};
use crate::ids::ParticipantId;
use crate::reason::DropReason;
use videocall_protocol::wire::{Codec, MediaKind, Track};

/// One announced media track of a publisher, with the subscribers it fans out to.
pub struct PublishedTrack {
    /// Track id chosen by the publisher, unique per publisher.
    pub id: u32,
    /// Audio, video or screen.
    pub kind: MediaKind,
    /// Codec from the announcement.
    pub codec: Codec,
    /// One entry per subscriber; replaced whole when someone joins or leaves so the
    /// fan-out reads a snapshot without taking a lock.
    down_tracks: ArcSwap<Vec<Arc<DownTrack>>>,
    /// Relay-clock milliseconds of the last keyframe request sent to the publisher
    /// (`u64::MAX`: never).
    last_keyframe_request_ms: AtomicU64,
    /// Drops since the last congestion notice, and when that window started.
    drops_in_window: AtomicU32,
    window_start_ms: AtomicU64,
}

impl PublishedTrack {
    /// A track with its initial subscribers.
    pub fn new(id: u32, kind: MediaKind, codec: Codec, down_tracks: Vec<Arc<DownTrack>>) -> Self {
        PublishedTrack {
            id,
            kind,
            codec,
            down_tracks: ArcSwap::from_pointee(down_tracks),
            last_keyframe_request_ms: AtomicU64::new(u64::MAX),
            drops_in_window: AtomicU32::new(0),
            window_start_ms: AtomicU64::new(0),
        }
    }

    /// Whether packets of this track are audio.
    pub fn is_audio(&self) -> bool {
        self.kind == MediaKind::Audio
    }

    /// The wire description of this track.
    pub fn describe(&self) -> Track {
        Track {
            id: self.id,
            kind: self.kind as i32,
            codec: self.codec as i32,
        }
    }

    /// Whether `announced` describes this very track (same id, kind and codec).
    pub fn matches(&self, announced: &Track) -> bool {
        self.id == announced.id
            && self.kind as i32 == announced.kind
            && self.codec as i32 == announced.codec
    }

    /// Current subscribers.
    pub fn down_tracks(&self) -> arc_swap::Guard<Arc<Vec<Arc<DownTrack>>>> {
        self.down_tracks.load()
    }

    /// Adds a subscriber. Callers serialise changes through the meeting's lock.
    pub fn add_down_track(&self, down: Arc<DownTrack>) {
        let mut next = Vec::clone(&self.down_tracks.load());
        next.push(down);
        self.down_tracks.store(Arc::new(next));
    }

    /// Removes a subscriber. Callers serialise changes through the meeting's lock.
    pub fn remove_subscriber(&self, subscriber: ParticipantId) {
        let current = self.down_tracks.load();
        if current.iter().any(|d| d.subscriber == subscriber) {
            let next: Vec<_> = current
                .iter()
                .filter(|d| d.subscriber != subscriber)
                .cloned()
                .collect();
            self.down_tracks.store(Arc::new(next));
        }
    }

    /// True when a keyframe request may go out now (at most one per `interval_ms`);
    /// records it as sent.
    pub fn claim_keyframe_request(&self, now_ms: u64, interval_ms: u64) -> bool {
        let last = self.last_keyframe_request_ms.load(Ordering::Relaxed);
        if last != u64::MAX && now_ms.saturating_sub(last) < interval_ms {
            return false;
        }
        self.last_keyframe_request_ms
            .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Counts a drop; returns the count to report when a congestion window of
    /// `window_ms` has closed.
    pub fn record_drop(&self, now_ms: u64, window_ms: u64) -> Option<u32> {
        let dropped = self.drops_in_window.fetch_add(1, Ordering::Relaxed) + 1;
        let start = self.window_start_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(start) < window_ms {
            return None;
        }
        if self
            .window_start_ms
            .compare_exchange(start, now_ms, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        self.drops_in_window.store(0, Ordering::Relaxed);
        Some(dropped)
    }
}

/// What happened to a packet offered to one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// On its way.
    Queued,
    /// Not delivered; for video the subscriber now waits for a keyframe.
    Dropped(DropReason),
}

/// One subscriber's copy of a published track.
pub struct DownTrack {
    /// The subscriber.
    pub subscriber: ParticipantId,
    audio: bool,
    /// Video only: deltas are useless until the next keyframe after a drop or a late join.
    awaiting_keyframe: AtomicBool,
    sink: Box<dyn MediaSink>,
    queue_depth: prometheus::Histogram,
}

impl DownTrack {
    /// A subscriber's copy; video starts waiting for a keyframe so it begins decodable.
    pub fn new(
        subscriber: ParticipantId,
        audio: bool,
        sink: Box<dyn MediaSink>,
        queue_depth: prometheus::Histogram,
    ) -> Self {
        DownTrack {
            subscriber,
            audio,
            awaiting_keyframe: AtomicBool::new(!audio),
            sink,
            queue_depth,
        }
    }

    /// Whether the subscriber waits for a keyframe before it gets video again.
    pub fn awaiting_keyframe(&self) -> bool {
        !self.audio && self.awaiting_keyframe.load(Ordering::Relaxed)
    }

    /// Offers one packet without waiting.
    pub fn offer(&self, frame: &Bytes, received_at: Instant, keyframe: bool) -> Delivery {
        let waiting = self.awaiting_keyframe();
        if waiting && !keyframe {
            return Delivery::Dropped(DropReason::AwaitingKeyframe);
        }
        let out = Outgoing {
            frame: frame.clone(),
            received_at,
            keyframe,
            after_gap: waiting,
            audio: self.audio,
        };
        match self.sink.offer(out) {
            Offer::Accepted { depth } => {
                self.queue_depth.observe(depth as f64);
                if waiting {
                    self.awaiting_keyframe.store(false, Ordering::Relaxed);
                }
                Delivery::Queued
            }
            Offer::Full if self.subscriber == MESH_SUBSCRIBER => {
                if !self.audio {
                    self.awaiting_keyframe.store(true, Ordering::Relaxed);
                }
                Delivery::Dropped(DropReason::BusQueueFull)
            }
            Offer::Full if self.audio => Delivery::Dropped(DropReason::AudioQueueFull),
            Offer::Full => {
                self.awaiting_keyframe.store(true, Ordering::Relaxed);
                Delivery::Dropped(DropReason::VideoQueueFull)
            }
            Offer::Closed => Delivery::Dropped(DropReason::SubscriberGone),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn video_track() -> PublishedTrack {
        PublishedTrack::new(1, MediaKind::Video, Codec::H264, Vec::new())
    }

    /// Accepts until `room` runs out, then answers `Full`.
    struct Room(Mutex<usize>);

    impl MediaSink for Room {
        fn offer(&self, _out: Outgoing) -> Offer {
            let mut room = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if *room == 0 {
                return Offer::Full;
            }
            *room -= 1;
            Offer::Accepted { depth: 0 }
        }
    }

    fn down(audio: bool, room: usize) -> DownTrack {
        let histogram = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("d", "d"))
            .expect("histogram");
        DownTrack::new(7, audio, Box::new(Room(Mutex::new(room))), histogram)
    }

    #[test]
    fn keyframe_requests_are_coalesced_per_interval() {
        let track = video_track();
        assert!(track.claim_keyframe_request(1_000, 500));
        assert!(!track.claim_keyframe_request(1_001, 500));
        assert!(!track.claim_keyframe_request(1_499, 500));
        assert!(track.claim_keyframe_request(1_500, 500));
        // Time 0 is a real time, not "never".
        let fresh = video_track();
        assert!(fresh.claim_keyframe_request(0, 500));
        assert!(!fresh.claim_keyframe_request(100, 500));
    }

    #[test]
    fn drops_are_reported_once_per_window_with_their_count() {
        let track = video_track();
        // The first window starts at time 0.
        assert_eq!(track.record_drop(100, 1000), None);
        assert_eq!(track.record_drop(200, 1000), None);
        assert_eq!(track.record_drop(1_200, 1000), Some(3));
        assert_eq!(track.record_drop(1_300, 1000), None);
        assert_eq!(track.record_drop(2_300, 1000), Some(2));
    }

    #[test]
    fn video_waits_for_a_keyframe_at_the_start_and_after_a_full_queue() {
        let now = Instant::now();
        let frame = Bytes::from_static(&[0, 0, 0, 1, 9]);
        let video = down(false, 2);
        assert_eq!(
            video.offer(&frame, now, false),
            Delivery::Dropped(DropReason::AwaitingKeyframe)
        );
        assert_eq!(video.offer(&frame, now, true), Delivery::Queued);
        assert_eq!(video.offer(&frame, now, false), Delivery::Queued);
        // The queue is full: the delta is lost, so the next deltas are useless.
        assert_eq!(
            video.offer(&frame, now, false),
            Delivery::Dropped(DropReason::VideoQueueFull)
        );
        assert!(video.awaiting_keyframe());
        assert_eq!(
            video.offer(&frame, now, false),
            Delivery::Dropped(DropReason::AwaitingKeyframe)
        );
        // Audio has no gate.
        let audio = down(true, 1);
        assert_eq!(audio.offer(&frame, now, false), Delivery::Queued);
        assert_eq!(
            audio.offer(&frame, now, false),
            Delivery::Dropped(DropReason::AudioQueueFull)
        );
        assert!(!audio.awaiting_keyframe());
    }
}
