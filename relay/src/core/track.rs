//! Tracks: what a publisher announced ([`PublishedTrack`]) and each subscriber's copy
//! ([`DownTrack`]), with the layer and keyframe gate ([`super::layers`]), keyframe-request
//! coalescing per layer and the congestion window that turns drops into a notice for the
//! publisher.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;

use super::layers::{self, View};
use super::mesh::MESH_SUBSCRIBER;
use super::sink::{MediaSink, Offer, Outgoing};
use crate::ids::{ParticipantId, TransportKind};
use crate::metrics::FanOutTally;
use crate::reason::DropReason;
use videocall_protocol::wire::{Codec, Layer, MediaKind, Track};

/// Simulcast layers a track may have: ids 0 to `MAX_LAYERS - 1`.
pub const MAX_LAYERS: usize = 4;
/// A layer field that holds no layer (not shown; nothing being forwarded).
const NO_LAYER: u32 = u32::MAX;

/// One announced media track of a publisher, with the subscribers it fans out to.
pub struct PublishedTrack {
    /// Track id chosen by the publisher, unique per publisher.
    pub id: u32,
    /// Audio, video or screen.
    pub kind: MediaKind,
    /// Codec from the announcement.
    pub codec: Codec,
    /// Its simulcast layers (empty: one, layer 0).
    pub layers: Vec<Layer>,
    /// One entry per subscriber; replaced whole when someone joins or leaves so the
    /// fan-out reads a snapshot without taking a lock.
    down_tracks: ArcSwap<Vec<Arc<DownTrack>>>,
    /// Relay-clock milliseconds of the last keyframe request of each layer sent to the
    /// publisher (`u64::MAX`: never).
    last_keyframe_request_ms: [AtomicU64; MAX_LAYERS],
    /// Dynacast: the layers (a bit each) the publisher was last told someone gets; until
    /// told, every layer.
    demanded: AtomicU32,
    /// Mesh: the layers each other relay said its subscribers get or move to (a bit each).
    remote_demand: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// What the bus's copy carries: the union of the meeting's other relays' demands (a
    /// relay that has not said wants every layer).
    mesh_layers: AtomicU32,
    /// Drops since the last congestion notice, and when that window started.
    drops_in_window: AtomicU32,
    window_start_ms: AtomicU64,
}

impl PublishedTrack {
    /// The track `announced` (checked) describes, with its initial subscribers.
    pub fn new(announced: &Track, down_tracks: Vec<Arc<DownTrack>>) -> Self {
        PublishedTrack {
            id: announced.id,
            kind: MediaKind::try_from(announced.kind).unwrap_or(MediaKind::Unspecified),
            codec: Codec::try_from(announced.codec).unwrap_or(Codec::Unspecified),
            layers: announced.layers.clone(),
            demanded: AtomicU32::new(layer_mask(announced.layers.iter().map(|l| l.id))),
            remote_demand: Default::default(),
            mesh_layers: AtomicU32::new(layer_mask(announced.layers.iter().map(|l| l.id))),
            down_tracks: ArcSwap::from_pointee(down_tracks),
            last_keyframe_request_ms: std::array::from_fn(|_| AtomicU64::new(u64::MAX)),
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
            layers: self.layers.clone(),
        }
    }

    /// Whether `announced` describes this very track (same id, kind, codec and layers).
    pub fn matches(&self, announced: &Track) -> bool {
        self.id == announced.id
            && self.kind as i32 == announced.kind
            && self.codec as i32 == announced.codec
            && self.layers == announced.layers
    }

    /// The simulcast layers announced (none: one layer, 0).
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The layer a subscriber showing this track in `view` should get (`None`: none).
    pub fn layer_for(&self, view: View) -> Option<u32> {
        layers::layer_for_view(&self.layers, view)
    }

    /// Dynacast: the layers someone gets or is moving to now (a bit each; the bus's copy
    /// wants every layer), if that is not what the publisher was last told; records it as
    /// told. `None` for a track without layers or when nothing changed.
    pub fn claim_demand_change(&self) -> Option<Vec<u32>> {
        if self.layers.is_empty() {
            return None;
        }
        let all = layer_mask(self.layers.iter().map(|l| l.id));
        let mut wanted = 0;
        for down in self.down_tracks.load().iter() {
            wanted |= if down.subscriber == MESH_SUBSCRIBER {
                self.mesh_layers.load(Ordering::Relaxed)
            } else {
                layer_mask(down.target().into_iter().chain(down.getting()))
            };
        }
        let wanted = wanted & all;
        if self.demanded.swap(wanted, Ordering::AcqRel) == wanted {
            return None;
        }
        Some(
            (0..MAX_LAYERS as u32)
                .filter(|l| wanted & (1 << l) != 0)
                .collect(),
        )
    }

    /// Mesh: relay `relay` said its subscribers get or move to `layers` of this track.
    pub fn set_remote_demand(&self, relay: &str, layers: &[u32]) {
        let mask = layer_mask(layers.iter().copied());
        crate::core::lock(&self.remote_demand).insert(relay.to_owned(), mask);
    }

    /// Mesh: what the bus's copy carries from now on, given the meeting's other relays
    /// `relays` (demands of relays no longer among them are forgotten).
    pub fn refresh_mesh_layers(&self, relays: &[String]) {
        let all = layer_mask(self.layers.iter().map(|l| l.id));
        let mut demand = crate::core::lock(&self.remote_demand);
        demand.retain(|relay, _| relays.contains(relay));
        let wanted = relays
            .iter()
            .map(|relay| demand.get(relay).copied().unwrap_or(all))
            .fold(0, |acc, mask| acc | mask);
        self.mesh_layers.store(wanted & all, Ordering::Relaxed);
    }

    /// Mesh: whether the bus's copy carries packets of `layer` (a track without layers:
    /// always).
    pub fn mesh_wants(&self, layer: u32) -> bool {
        self.layers.is_empty()
            || (layer < 32 && self.mesh_layers.load(Ordering::Relaxed) & (1 << layer) != 0)
    }

    /// Dynacast: announced layers the publisher was told nobody gets.
    pub fn paused_layers(&self) -> usize {
        let demanded = self.demanded.load(Ordering::Relaxed);
        self.layers
            .iter()
            .filter(|l| demanded & (1 << l.id) == 0)
            .count()
    }

    /// `subscriber`'s copy of this track, if it has one.
    pub fn down_track_of(&self, subscriber: ParticipantId) -> Option<Arc<DownTrack>> {
        self.down_tracks
            .load()
            .iter()
            .find(|d| d.subscriber == subscriber)
            .cloned()
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

    /// True when a keyframe request for `layer` may go out now (at most one per layer per
    /// `interval_ms`; a layer out of range never); records it as sent.
    pub fn claim_keyframe_request(&self, layer: u32, now_ms: u64, interval_ms: u64) -> bool {
        let Some(last_sent) = self.last_keyframe_request_ms.get(layer as usize) else {
            return false;
        };
        let last = last_sent.load(Ordering::Relaxed);
        if last != u64::MAX && now_ms.saturating_sub(last) < interval_ms {
            return false;
        }
        last_sent
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
    /// On its way: the keyframe at which the subscriber moved to this packet's layer from
    /// another one.
    Moved,
    /// Not for this subscriber (another layer than it gets, or a track it does not show);
    /// `ask_keyframe`: it waits for a keyframe of that layer (its target) to move to it.
    Skipped {
        /// The layer whose keyframe is wanted.
        ask_keyframe: Option<u32>,
    },
    /// Not delivered; for video the subscriber now waits for a keyframe.
    Dropped(DropReason),
}

/// One subscriber's copy of a published track.
pub struct DownTrack {
    /// The subscriber.
    pub subscriber: ParticipantId,
    audio: bool,
    /// Video: the layer the subscriber should get ([`NO_LAYER`]: it does not show the track).
    target: AtomicU32,
    /// Video: the layer it is getting; [`NO_LAYER`] at the start and after a drop, until a
    /// keyframe of the target (deltas are useless until then).
    getting: AtomicU32,
    sink: Box<dyn MediaSink>,
    /// The subscriber's transport, for the queue-depth metrics.
    transport: TransportKind,
}

/// A bit per layer of `layers` (ids from 0 to [`MAX_LAYERS`]` - 1`; others are left out).
fn layer_mask(layers: impl IntoIterator<Item = u32>) -> u32 {
    layers
        .into_iter()
        .filter(|&l| (l as usize) < MAX_LAYERS)
        .fold(0, |mask, l| mask | 1 << l)
}

fn layer_field(layer: Option<u32>) -> u32 {
    layer.unwrap_or(NO_LAYER)
}

fn field_layer(field: u32) -> Option<u32> {
    (field != NO_LAYER).then_some(field)
}

impl DownTrack {
    /// A subscriber's copy that should get layer `target` (`None`: not shown); video starts
    /// waiting for a keyframe so it begins decodable.
    pub fn new(
        subscriber: ParticipantId,
        audio: bool,
        target: Option<u32>,
        sink: Box<dyn MediaSink>,
        transport: TransportKind,
    ) -> Self {
        DownTrack {
            subscriber,
            audio,
            target: AtomicU32::new(layer_field(target)),
            getting: AtomicU32::new(NO_LAYER),
            sink,
            transport,
        }
    }

    /// Whether the subscriber waits for a keyframe before it gets video again.
    #[cfg(test)]
    pub fn awaiting_keyframe(&self) -> bool {
        !self.audio && self.getting.load(Ordering::Relaxed) == NO_LAYER
    }

    /// The layer it should get (`None`: it does not show the track).
    pub fn target(&self) -> Option<u32> {
        field_layer(self.target.load(Ordering::Relaxed))
    }

    /// The layer it is getting (`None`: none yet).
    pub fn getting(&self) -> Option<u32> {
        field_layer(self.getting.load(Ordering::Relaxed))
    }

    /// It should get `target` from now on; returns whether that is a layer it is not getting
    /// yet (a keyframe of it is wanted).
    pub fn set_target(&self, target: Option<u32>) -> bool {
        self.target.store(layer_field(target), Ordering::Relaxed);
        target.is_some() && target != self.getting()
    }

    /// Offers one packet of `layer` without waiting, counting what it queued in `tally`.
    /// Audio passes whatever its layer; the bus's copy takes every layer (the other relays
    /// choose for their subscribers).
    pub fn offer(
        &self,
        frame: &Bytes,
        received_at: Instant,
        keyframe: bool,
        layer: u32,
        tally: &mut FanOutTally<'_>,
    ) -> Delivery {
        let gated = !self.audio && self.subscriber != MESH_SUBSCRIBER;
        let mut waiting = false;
        let mut moved = false;
        if gated {
            let getting = self.getting();
            let decision = layers::pass(self.target(), getting, layer, keyframe);
            if !decision.forward {
                if decision.getting != getting {
                    self.getting
                        .store(layer_field(decision.getting), Ordering::Relaxed);
                }
                // A delta of the very layer it waits for: lost to the subscriber (counted as
                // before simulcast); anything else is simply not its layer.
                if getting.is_none() && decision.ask_keyframe.is_some() {
                    return Delivery::Dropped(DropReason::AwaitingKeyframe);
                }
                return Delivery::Skipped {
                    ask_keyframe: decision.ask_keyframe,
                };
            }
            waiting = decision.getting != getting;
            moved = waiting && getting.is_some();
            if waiting {
                self.getting
                    .store(layer_field(decision.getting), Ordering::Relaxed);
            }
        } else if !self.audio {
            // The bus: after a drop, nothing until a keyframe.
            waiting = self.getting.load(Ordering::Relaxed) == NO_LAYER;
            if waiting && !keyframe {
                return Delivery::Dropped(DropReason::AwaitingKeyframe);
            }
        }
        let out = Outgoing {
            frame: frame.clone(),
            received_at,
            keyframe,
            after_gap: waiting,
            audio: self.audio,
        };
        match self.sink.offer(out) {
            Offer::Accepted { depth } => self.accepted(depth, gated, waiting, moved, tally),
            Offer::Written => {
                tally.written(self.audio, frame.len(), received_at);
                self.accepted(0, gated, waiting, moved, tally)
            }
            Offer::Full if self.subscriber == MESH_SUBSCRIBER => {
                if !self.audio {
                    self.getting.store(NO_LAYER, Ordering::Relaxed);
                }
                Delivery::Dropped(DropReason::BusQueueFull)
            }
            Offer::Full if self.audio => Delivery::Dropped(DropReason::AudioQueueFull),
            Offer::Full => {
                self.getting.store(NO_LAYER, Ordering::Relaxed);
                Delivery::Dropped(DropReason::VideoQueueFull)
            }
            Offer::Closed => Delivery::Dropped(DropReason::SubscriberGone),
        }
    }

    /// The sink took the packet (`depth` queued before it).
    fn accepted(
        &self,
        depth: usize,
        gated: bool,
        waiting: bool,
        moved: bool,
        tally: &mut FanOutTally<'_>,
    ) -> Delivery {
        tally.queued(self.transport, depth);
        if !gated && waiting {
            self.getting.store(0, Ordering::Relaxed);
        }
        if moved {
            Delivery::Moved
        } else {
            Delivery::Queued
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::metrics::Metrics;

    fn video_track() -> PublishedTrack {
        PublishedTrack::new(
            &Track {
                id: 1,
                kind: MediaKind::Video as i32,
                codec: Codec::H264 as i32,
                layers: Vec::new(),
            },
            Vec::new(),
        )
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
        DownTrack::new(
            7,
            audio,
            Some(0),
            Box::new(Room(Mutex::new(room))),
            TransportKind::WebSocket,
        )
    }

    /// A tally of the tests' own metrics.
    fn tally() -> FanOutTally<'static> {
        static METRICS: std::sync::LazyLock<Metrics> =
            std::sync::LazyLock::new(|| Metrics::new("track").expect("metrics"));
        METRICS.fan_out_tally(0)
    }

    #[test]
    fn keyframe_requests_are_coalesced_per_interval() {
        let track = video_track();
        assert!(track.claim_keyframe_request(0, 1_000, 500));
        assert!(!track.claim_keyframe_request(0, 1_001, 500));
        // Each layer on its own.
        assert!(track.claim_keyframe_request(2, 1_001, 500));
        assert!(!track.claim_keyframe_request(2, 1_002, 500));
        assert!(!track.claim_keyframe_request(0, 1_499, 500));
        assert!(track.claim_keyframe_request(0, 1_500, 500));
        // No such layer: never.
        assert!(!track.claim_keyframe_request(MAX_LAYERS as u32, 1_500, 500));
        // Time 0 is a real time, not "never".
        let fresh = video_track();
        assert!(fresh.claim_keyframe_request(0, 0, 500));
        assert!(!fresh.claim_keyframe_request(0, 100, 500));
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
            video.offer(&frame, now, false, 0, &mut tally()),
            Delivery::Dropped(DropReason::AwaitingKeyframe)
        );
        assert_eq!(
            video.offer(&frame, now, true, 0, &mut tally()),
            Delivery::Queued
        );
        assert_eq!(
            video.offer(&frame, now, false, 0, &mut tally()),
            Delivery::Queued
        );
        // The queue is full: the delta is lost, so the next deltas are useless.
        assert_eq!(
            video.offer(&frame, now, false, 0, &mut tally()),
            Delivery::Dropped(DropReason::VideoQueueFull)
        );
        assert!(video.awaiting_keyframe());
        assert_eq!(
            video.offer(&frame, now, false, 0, &mut tally()),
            Delivery::Dropped(DropReason::AwaitingKeyframe)
        );
        // Audio has no gate.
        let audio = down(true, 1);
        assert_eq!(
            audio.offer(&frame, now, false, 0, &mut tally()),
            Delivery::Queued
        );
        assert_eq!(
            audio.offer(&frame, now, false, 0, &mut tally()),
            Delivery::Dropped(DropReason::AudioQueueFull)
        );
        assert!(!audio.awaiting_keyframe());
    }

    #[test]
    fn a_subscriber_gets_one_layer_and_moves_at_the_targets_keyframe() {
        let now = Instant::now();
        let frame = Bytes::from_static(&[0, 0, 0, 1, 9]);
        let video = down(false, usize::MAX);
        assert!(video.set_target(Some(2)));
        assert_eq!(
            video.offer(&frame, now, true, 0, &mut tally()),
            Delivery::Skipped { ask_keyframe: None }
        );
        assert_eq!(
            video.offer(&frame, now, false, 2, &mut tally()),
            Delivery::Dropped(DropReason::AwaitingKeyframe)
        );
        assert_eq!(
            video.offer(&frame, now, true, 2, &mut tally()),
            Delivery::Queued
        );
        assert_eq!(video.getting(), Some(2));
        // The tile shrank: layer 2 goes on until layer 0's keyframe.
        assert!(video.set_target(Some(0)));
        assert_eq!(
            video.offer(&frame, now, false, 2, &mut tally()),
            Delivery::Queued
        );
        assert_eq!(
            video.offer(&frame, now, false, 0, &mut tally()),
            Delivery::Skipped {
                ask_keyframe: Some(0)
            }
        );
        assert_eq!(
            video.offer(&frame, now, true, 0, &mut tally()),
            Delivery::Moved
        );
        assert_eq!(
            video.offer(&frame, now, false, 2, &mut tally()),
            Delivery::Skipped { ask_keyframe: None }
        );
        // Hidden: nothing, and no keyframe wanted.
        assert!(!video.set_target(None));
        assert_eq!(
            video.offer(&frame, now, true, 0, &mut tally()),
            Delivery::Skipped { ask_keyframe: None }
        );
        assert!(video.awaiting_keyframe());
    }

    #[test]
    fn the_bus_carries_the_union_of_the_relays_demands_and_all_for_a_relay_that_has_not_said() {
        let layer = |id| Layer {
            id,
            width: 0,
            height: 0,
            bitrate_kbps: 0,
        };
        let track = PublishedTrack::new(
            &Track {
                id: 1,
                kind: MediaKind::Video as i32,
                codec: Codec::Vp8 as i32,
                layers: vec![layer(0), layer(1), layer(2)],
            },
            Vec::new(),
        );
        let carried =
            |track: &PublishedTrack| (0..4).filter(|&l| track.mesh_wants(l)).collect::<Vec<_>>();
        assert_eq!(carried(&track), vec![0, 1, 2], "before anyone said");
        let relays = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        track.set_remote_demand("b", &[0]);
        track.refresh_mesh_layers(&relays(&["b", "c"]));
        assert_eq!(carried(&track), vec![0, 1, 2], "c has not said");
        track.set_remote_demand("c", &[]);
        track.refresh_mesh_layers(&relays(&["b", "c"]));
        assert_eq!(carried(&track), vec![0]);
        // B is gone: its demand with it; a layer id past any mask is never carried.
        track.refresh_mesh_layers(&relays(&["c"]));
        assert_eq!(carried(&track), Vec::<u32>::new());
        track.refresh_mesh_layers(&relays(&["b", "c"]));
        assert_eq!(
            carried(&track),
            vec![0, 1, 2],
            "b forgot, and must say again"
        );
        assert!(!track.mesh_wants(40));
        // Without layers: always.
        assert!(video_track().mesh_wants(0));
    }
}
