//! Simulcast in the core: each subscriber gets the layer its tile needs, moves at keyframes,
//! gets nothing of a hidden track; keyframe requests name the layer; bad layers are refused.

use bytes::Bytes;
use videocall_protocol::decode_envelope;
use videocall_protocol::wire::{
    envelope::Body, Codec, ErrorCode, Layer, Media, MediaKind, Track, TrackView, UpdateState,
    ViewTracks,
};

use super::{Joined, World};
use crate::core::clock::Now;
use crate::core::unprefixed;

const TRACK: u32 = 1;

pub(super) fn three_layers() -> Vec<Layer> {
    [(0, 320, 180, 150), (1, 640, 360, 500), (2, 1280, 720, 1500)]
        .into_iter()
        .map(|(id, width, height, bitrate_kbps)| Layer {
            id,
            width,
            height,
            bitrate_kbps,
        })
        .collect()
}

pub(super) fn announce_layers(publisher: &Joined, layers: Vec<Layer>, now: Now) {
    publisher.send(
        Body::UpdateState(UpdateState {
            tracks: vec![Track {
                id: TRACK,
                kind: MediaKind::Video as i32,
                codec: Codec::Vp8 as i32,
                layers,
            }],
            announce_tracks: true,
            ..Default::default()
        }),
        now,
    );
}

/// One frame of each layer (keyframes or deltas), numbered `sequence`.
pub(super) fn frames(publisher: &Joined, sequence: u64, keyframe: bool, now: Now) {
    for layer in 0..3 {
        publisher.send(
            Body::Media(Media {
                track_id: TRACK,
                kind: MediaKind::Video as i32,
                codec: Codec::Vp8 as i32,
                sequence,
                keyframe,
                layer,
                payload: Bytes::from(vec![layer as u8; 100]),
                ..Default::default()
            }),
            now,
        );
    }
}

pub(super) fn view(subscriber: &Joined, publisher: u64, width: u32, height: u32, now: Now) {
    subscriber.send(
        Body::ViewTracks(ViewTracks {
            views: vec![TrackView {
                participant_id: publisher,
                track_id: TRACK,
                width,
                height,
            }],
        }),
        now,
    );
}

/// The layers of the media a subscriber was sent, taken.
pub(super) fn layers_got(subscriber: &Joined) -> Vec<u32> {
    std::mem::take(&mut *subscriber.inbox.media.lock().unwrap())
        .into_iter()
        .filter_map(
            |o| match decode_envelope(unprefixed(&o.frame), 1 << 20).ok()?.body? {
                Body::Media(m) => Some(m.layer),
                _ => None,
            },
        )
        .collect()
}

/// The layers of the keyframe requests the publisher was sent, taken.
fn keyframes_asked(publisher: &Joined) -> Vec<u32> {
    publisher
        .inbox
        .take()
        .into_iter()
        .filter_map(|b| match b {
            Body::KeyframeRequest(r) if r.track_id == TRACK => Some(r.layer),
            _ => None,
        })
        .collect()
}

#[test]
fn each_subscriber_gets_the_layer_its_tile_needs_and_a_hidden_tile_gets_nothing() {
    let world = World::new(&[]);
    let now = world.start;
    let publisher = world.join("pub", "m");
    let small = world.join("small", "m");
    let large = world.join("large", "m");
    let hidden = world.join("hidden", "m");
    // Views may come before the track exists: they are kept.
    view(&small, publisher.id(), 300, 170, now);
    view(&hidden, publisher.id(), 0, 0, now);
    announce_layers(&publisher, three_layers(), now);
    // Keyframes asked of the layers someone is to get: 0 (small) and 2 (large: never said).
    let mut asked = keyframes_asked(&publisher);
    asked.sort_unstable();
    assert_eq!(asked, vec![0, 2]);

    frames(&publisher, 1, true, now);
    frames(&publisher, 2, false, now);
    assert_eq!(layers_got(&small), vec![0, 0]);
    assert_eq!(layers_got(&large), vec![2, 2]);
    assert_eq!(layers_got(&hidden), Vec::<u32>::new());
    assert!(publisher.inbox.media.lock().unwrap().is_empty());
}

#[test]
fn a_tile_that_grows_moves_at_the_keyframe_of_its_new_layer_without_a_gap() {
    let world = World::new(&[]);
    let now = world.start;
    let publisher = world.join("pub", "m");
    let viewer = world.join("viewer", "m");
    view(&viewer, publisher.id(), 320, 180, now);
    announce_layers(&publisher, three_layers(), now);
    frames(&publisher, 1, true, now);
    frames(&publisher, 2, false, now);
    assert_eq!(layers_got(&viewer), vec![0, 0]);
    keyframes_asked(&publisher);

    // Enlarged: layer 2's keyframe is asked for at once; layer 0 goes on until it comes.
    let later = now.later(1000);
    view(&viewer, publisher.id(), 1280, 720, later);
    assert_eq!(keyframes_asked(&publisher), vec![2]);
    frames(&publisher, 3, false, later);
    assert_eq!(layers_got(&viewer), vec![0], "the old layer goes on");
    frames(&publisher, 4, true, later);
    frames(&publisher, 5, false, later);
    // Seq 4: layer 0's keyframe still (before layer 2's in the same round), then layer 2.
    assert_eq!(layers_got(&viewer), vec![0, 2, 2]);

    // Hidden: nothing, not even keyframes; shown again small: from layer 0's keyframe.
    view(&viewer, publisher.id(), 0, 0, later);
    frames(&publisher, 6, true, later);
    assert_eq!(layers_got(&viewer), Vec::<u32>::new());
    let again = later.later(1000);
    view(&viewer, publisher.id(), 100, 100, again);
    assert_eq!(keyframes_asked(&publisher), vec![0]);
    frames(&publisher, 7, false, again);
    assert_eq!(
        layers_got(&viewer),
        Vec::<u32>::new(),
        "no delta without its keyframe"
    );
    frames(&publisher, 8, true, again);
    assert_eq!(layers_got(&viewer), vec![0]);
}

#[test]
fn a_subscribers_keyframe_request_names_the_layer_it_gets() {
    let world = World::new(&[]);
    let now = world.start;
    let publisher = world.join("pub", "m");
    let viewer = world.join("viewer", "m");
    view(&viewer, publisher.id(), 640, 360, now);
    announce_layers(&publisher, three_layers(), now);
    keyframes_asked(&publisher);
    viewer.send(
        Body::KeyframeRequest(videocall_protocol::wire::KeyframeRequest {
            participant_id: publisher.id(),
            track_id: TRACK,
            layer: 2,
        }),
        now.later(1000),
    );
    assert_eq!(keyframes_asked(&publisher), vec![1]);
}

#[test]
fn bad_layers_are_refused_and_the_meeting_goes_on() {
    let world = World::new(&[]);
    let now = world.start;
    let publisher = world.join("pub", "m");
    let viewer = world.join("viewer", "m");
    let malformed = |joined: &Joined| {
        joined
            .inbox
            .take()
            .into_iter()
            .filter(|b| matches!(b, Body::Error(e) if e.code == ErrorCode::Malformed as i32))
            .count()
    };
    // Five layers, a layer id out of range, one id twice, audio with layers.
    let layer = |id| Layer {
        id,
        width: 320,
        height: 180,
        bitrate_kbps: 100,
    };
    for layers in [
        (0..5).map(layer).collect(),
        vec![layer(7)],
        vec![layer(1), layer(1)],
    ] {
        announce_layers(&publisher, layers, now);
        assert_eq!(malformed(&publisher), 1);
    }
    publisher.send(
        Body::UpdateState(UpdateState {
            tracks: vec![Track {
                id: 2,
                kind: MediaKind::Audio as i32,
                codec: Codec::Opus as i32,
                layers: vec![layer(0)],
            }],
            announce_tracks: true,
            ..Default::default()
        }),
        now,
    );
    assert_eq!(malformed(&publisher), 1);

    // A layer the track does not have: refused, not forwarded.
    announce_layers(&publisher, vec![layer(0), layer(1)], now);
    publisher.inbox.take();
    frames(&publisher, 1, true, now);
    assert_eq!(malformed(&publisher), 1, "layer 2 was never announced");
    assert_eq!(layers_got(&viewer), vec![1], "the largest, 1, of the two");
    // Told once, not per packet (counted each time).
    frames(&publisher, 2, false, now);
    assert_eq!(malformed(&publisher), 0);
    assert_eq!(layers_got(&viewer), vec![1]);

    // Too many views in one message.
    viewer.send(
        Body::ViewTracks(ViewTracks {
            views: vec![TrackView::default(); crate::core::participant::MAX_VIEWS + 1],
        }),
        now,
    );
    assert_eq!(malformed(&viewer), 1);
    // Still served.
    frames(&publisher, 3, false, now);
    assert_eq!(layers_got(&viewer), vec![1]);
}

#[test]
fn a_view_stored_while_its_track_was_announced_still_applies() {
    let world = World::new(&[]);
    let now = world.start;
    let publisher = world.join("pub", "m");
    let small = world.join("small", "m");
    announce_layers(&publisher, three_layers(), now);
    let track = publisher.session.me.track(TRACK).expect("published");
    let down = track.down_track_of(small.id()).expect("small's copy");
    assert_eq!(down.target(), Some(2), "no view yet: the largest layer");
    // The race: small's `ViewTracks` stored its view after the announcement read the views,
    // and looked for the track before it was published.
    let store_late_view = |size| {
        assert!(small.session.me.set_view(publisher.id(), TRACK, size));
        publisher
            .session
            .meeting
            .apply_views_again(publisher.id(), &track);
    };
    store_late_view((300, 170));
    assert_eq!(down.target(), Some(0), "the thumbnail's layer");
    // A hidden tile stored the same way gets nothing.
    store_late_view((0, 0));
    assert_eq!(down.target(), None);
}
