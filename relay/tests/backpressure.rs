//! A subscriber that stops reading must not slow anyone else, and must not make the
//! relay's memory grow.

mod common;

use std::time::Duration;

use common::*;
use tokio_util::sync::CancellationToken;
use videocall_client::synthetic::{self, MediaPattern};
use videocall_client::{Client, Event, Transport};
use videocall_protocol::wire::{envelope::Body, MediaKind};

const QUEUE_BYTES: usize = 1024 * 1024;

struct Received {
    video: u64,
    latencies_us: Vec<u64>,
}

async fn read_all(mut client: Client, stop: CancellationToken) -> Received {
    let mut received = Received {
        video: 0,
        latencies_us: Vec::new(),
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return received,
            event = client.next_event() => match event {
                Some(Event::Message(Body::Media(m))) if m.kind == MediaKind::Video as i32 => {
                    received.video += 1;
                    received
                        .latencies_us
                        .push(videocall_client::unix_micros().saturating_sub(m.capture_timestamp_us));
                }
                Some(_) => {}
                None => return received,
            }
        }
    }
}

fn p99(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get((v.len() * 99 / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_neither_delays_others_nor_grows_relay_memory() {
    let queue_bytes = QUEUE_BYTES.to_string();
    let relay = RelayProcess::start(&["--subscriber-queue-bytes", &queue_bytes]).await;
    let alice = relay.join(Transport::WebTransport, "bp", "alice").await;
    let bob = relay.join(Transport::WebTransport, "bp", "bob").await;
    let dave = relay.join(Transport::WebSocket, "bp", "dave").await;

    // Two subscribers that never read: their client buffers fill, then the network, then the relay's queues.
    let mut stalled = Vec::new();
    for (user, transport) in [
        ("stuck-wt", Transport::WebTransport),
        ("stuck-ws", Transport::WebSocket),
    ] {
        let token = relay.token(user, "bp");
        let mut options = relay.options(transport, "bp", &token);
        options.event_buffer = 4;
        stalled.push(
            Client::connect(options)
                .await
                .expect("stalled subscriber joins"),
        );
    }
    let baseline_rss = relay.rss_kib();

    // 40 fps of 150 KB frames: 48 Mbit/s, about 30 MB in 5 s.
    let pattern = MediaPattern {
        video_fps: 40,
        video_bitrate_bps: 48_000_000,
        video_layers: Vec::new(),
        keyframe_interval: 20,
        audio_pps: 50,
        audio_bytes: 80,
        audio_level: 0,
    };
    let stop = CancellationToken::new();
    let stats = synthetic::spawn_publisher(alice, pattern, stop.clone());
    let bob_reader = tokio::spawn(read_all(bob, stop.clone()));
    let dave_reader = tokio::spawn(read_all(dave, stop.clone()));

    let mut max_rss = baseline_rss;
    let mut max_queued = 0.0f64;
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        max_rss = max_rss.max(relay.rss_kib());
        max_queued = max_queued.max(relay.metric("videocall_relay_queued_bytes").await);
    }
    stop.cancel();
    let sent = stats.video_sent.load(std::sync::atomic::Ordering::Relaxed);
    // Let in-flight frames land before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bob = bob_reader.await.expect("bob");
    let dave = dave_reader.await.expect("dave");

    assert!(sent >= 150, "publisher sent only {sent} frames");
    for (who, got) in [("bob (WebTransport)", &bob), ("dave (WebSocket)", &dave)] {
        assert!(
            got.video * 100 >= sent * 97,
            "{who} received {} of {sent} frames while others stalled",
            got.video
        );
        let p99_us = p99(got.latencies_us.clone());
        assert!(p99_us < 100_000, "{who}: p99 delivery latency {p99_us} us");
    }
    let drops = relay.metric("videocall_relay_drops_total").await;
    assert!(
        drops > 0.0,
        "the stalled subscribers should have lost video"
    );
    // The gauge sums every subscriber's queue: the two stalled ones hold at most their
    // budgets, and the healthy ones may have a few frames in flight at the sampling moment.
    let in_flight_allowance = 64.0 * 1024.0;
    assert!(
        max_queued <= 2.0 * QUEUE_BYTES as f64 + in_flight_allowance,
        "queued video {max_queued} exceeds two subscribers' budgets"
    );
    let growth_mib = (max_rss.saturating_sub(baseline_rss)) as f64 / 1024.0;
    assert!(
        growth_mib < 48.0,
        "relay RSS grew {growth_mib:.1} MiB while ~{} MB were sent to stalled subscribers",
        sent * 150 / 1000
    );
    eprintln!(
        "sent {sent} frames; bob {} dave {}; p99 bob {} us dave {} us; drops {drops}; max queued {max_queued} B; RSS growth {growth_mib:.1} MiB",
        bob.video,
        dave.video,
        p99(bob.latencies_us.clone()),
        p99(dave.latencies_us.clone())
    );
    drop(stalled);
}
