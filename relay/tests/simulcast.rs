//! Simulcast over real connections: a synthetic publisher sends three layers; each subscriber
//! gets the one its tile needs, moves within a second of saying its tile changed (at a
//! keyframe of the new layer, never a delta first), and gets no video of a hidden tile.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio_util::sync::CancellationToken;
use videocall_client::synthetic::{self, MediaPattern, VIDEO_TRACK};
use videocall_client::{Client, Transport};
use videocall_protocol::wire::{envelope::Body, MediaKind, TrackView, ViewTracks};

async fn view(client: &Client, publisher: u64, width: u32, height: u32) {
    client
        .sender()
        .send(Body::ViewTracks(ViewTracks {
            views: vec![TrackView {
                participant_id: publisher,
                track_id: VIDEO_TRACK,
                width,
                height,
            }],
        }))
        .await
        .expect("send views");
}

/// Waits until the relay has read everything `client` sent so far (its answer to a ping
/// comes after): views sent before are applied.
async fn applied(client: &mut Client) {
    let nonce = 0x5eed;
    client
        .sender()
        .send(Body::Ping(videocall_protocol::wire::Ping {
            nonce,
            sent_at_us: 0,
        }))
        .await
        .expect("ping");
    let pong = videocall_testkit::wait_for_message(client, Duration::from_secs(5), |m| match m {
        Body::Pong(p) if p.nonce == nonce => Some(()),
        _ => None,
    })
    .await;
    assert!(pong.is_some(), "no pong");
}

/// The layers of the next `frames` video frames `client` gets within 3 s, after frames of
/// layer `after` (`None`: none yet); whether the first of each run of a layer was a keyframe.
async fn next_layers(client: &mut Client, frames: usize, after: Option<u32>) -> (Vec<u32>, bool) {
    let mut layers = Vec::new();
    let mut last = after;
    let mut clean = true;
    let deadline = Instant::now() + Duration::from_secs(3);
    while layers.len() < frames && Instant::now() < deadline {
        let got =
            videocall_testkit::wait_for_message(client, Duration::from_millis(500), |m| match m {
                Body::Media(media) if media.kind == MediaKind::Video as i32 => {
                    Some((media.layer, media.keyframe))
                }
                _ => None,
            })
            .await;
        let Some((layer, keyframe)) = got else {
            continue;
        };
        if last != Some(layer) && !keyframe {
            clean = false;
        }
        last = Some(layer);
        layers.push(layer);
    }
    (layers, clean)
}

/// Video frames `client` gets in `window`.
async fn frames_in(client: &mut Client, window: Duration) -> usize {
    let mut count = 0;
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if videocall_testkit::wait_for_message(client, left, |m| match m {
            Body::Media(media) if media.kind == MediaKind::Video as i32 => Some(()),
            _ => None,
        })
        .await
        .is_some()
        {
            count += 1;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_subscriber_gets_the_layer_of_its_tile_and_moves_at_a_keyframe() {
    let relay = RelayProcess::start(&[]).await;
    for transport in TRANSPORTS {
        let meeting = format!("simulcast-{transport:?}");
        let publisher = relay.join(Transport::WebTransport, &meeting, "pub").await;
        let publisher_id = publisher.participant_id();
        let mut small = relay.join(transport, &meeting, "small").await;
        let mut large = relay.join(transport, &meeting, "large").await;
        view(&small, publisher_id, 320, 180).await;
        applied(&mut small).await;
        // Keyframes every 10 s unless asked: every move below is served by a request.
        let pattern = MediaPattern {
            keyframe_interval: 300,
            ..MediaPattern::simulcast()
        };
        let stop = CancellationToken::new();
        synthetic::spawn_publisher(publisher, pattern, stop.clone());

        let (layers, clean) = next_layers(&mut small, 20, None).await;
        assert!(
            layers.len() == 20 && layers.iter().all(|&l| l == 0) && clean,
            "{transport:?}: small got {layers:?}"
        );
        let (layers, clean) = next_layers(&mut large, 20, None).await;
        assert!(
            layers.len() == 20 && layers.iter().all(|&l| l == 2) && clean,
            "{transport:?}: large (never said) got {layers:?}"
        );

        // The small tile grows: layer 2 within a second, starting at its keyframe, and
        // layer 0 until then (no gap).
        let asked = Instant::now();
        view(&small, publisher_id, 1280, 720).await;
        let moved =
            videocall_testkit::wait_for_message(&mut small, Duration::from_secs(2), |m| match m {
                Body::Media(media) if media.layer == 2 => Some(media.keyframe),
                _ => None,
            })
            .await;
        assert_eq!(moved, Some(true), "{transport:?}: layer 2 from a keyframe");
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{transport:?}: moved after {:?}",
            asked.elapsed()
        );
        let (layers, clean) = next_layers(&mut small, 10, Some(2)).await;
        assert!(
            layers.iter().all(|&l| l == 2) && clean,
            "{transport:?}: after the move {layers:?}"
        );

        // Hidden: no video at all (a frame or two may be on the way); the other keeps its own.
        view(&large, publisher_id, 0, 0).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // What it got before (it was not read meanwhile) is not what it gets now.
        while large.try_next_event().is_some() {}
        let hidden = frames_in(&mut large, Duration::from_millis(700)).await;
        assert_eq!(hidden, 0, "{transport:?}: video of a hidden tile");
        assert!(frames_in(&mut small, Duration::from_millis(300)).await > 3);
        stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_nobody_gets_is_paused_at_the_publisher_and_resumes_when_wanted() {
    let relay = RelayProcess::start(&[]).await;
    let meeting = "dynacast";
    let publisher = relay.join(Transport::WebTransport, meeting, "pub").await;
    let publisher_id = publisher.participant_id();
    let mut viewer = relay.join(Transport::WebSocket, meeting, "viewer").await;
    view(&viewer, publisher_id, 320, 180).await;
    // Before the publisher starts: its first frames go by the view.
    applied(&mut viewer).await;
    let pattern = MediaPattern {
        keyframe_interval: 300,
        ..MediaPattern::simulcast()
    };
    let stop = CancellationToken::new();
    let stats = synthetic::spawn_publisher(publisher, pattern, stop.clone());
    let (layers, _) = next_layers(&mut viewer, 10, None).await;
    assert!(layers.iter().all(|&l| l == 0), "{layers:?}");

    // Only layer 0 is wanted: layers 1 and 2 stop at the publisher.
    let paused = |stats: &synthetic::PublishStats| {
        stats
            .paused_frames
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = paused(&stats);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = paused(&stats) - before;
    assert!(
        during >= 20,
        "{during} frames of unwanted layers not sent in 0.5 s"
    );
    assert_eq!(relay.metric("videocall_relay_paused_layers").await, 2.0);
    let forwarded_before = relay
        .metric("videocall_relay_packets_in_total{kind=\"video\"}")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let arriving = relay
        .metric("videocall_relay_packets_in_total{kind=\"video\"}")
        .await
        - forwarded_before;
    assert!(
        arriving <= 20.0,
        "{arriving} video packets reached the relay in 0.5 s: more than layer 0's 15"
    );

    // The tile grows: layer 2 comes back, from a keyframe, within a second.
    let asked = Instant::now();
    view(&viewer, publisher_id, 1280, 720).await;
    let moved =
        videocall_testkit::wait_for_message(&mut viewer, Duration::from_secs(2), |m| match m {
            Body::Media(media) if media.layer == 2 => Some(media.keyframe),
            _ => None,
        })
        .await;
    assert_eq!(moved, Some(true));
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    // Once it moved, layer 0 is paused in its turn.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(relay.metric("videocall_relay_paused_layers").await, 2.0);
    assert!(relay.metric("videocall_relay_layer_switches_total").await >= 1.0);
    // Nobody left: every layer paused.
    drop(viewer);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(relay.metric("videocall_relay_paused_layers").await, 3.0);
    stop.cancel();
}
