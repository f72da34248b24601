//! Heartbeats and draining.

mod common;

use std::time::{Duration, Instant};

use common::*;
use videocall_client::synthetic::packet;
use videocall_client::{Client, Event, Transport};
use videocall_protocol::wire::{envelope::Body, ErrorCode, LeaveReason, MediaKind};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_removed_and_announced_within_ten_seconds() {
    // Default heartbeat settings: the promise is "within 10 s" out of the box.
    let relay = RelayProcess::start(&[]).await;
    for transport in TRANSPORTS {
        let meeting = format!("dead-{transport:?}");
        let mut watcher = relay.join(Transport::WebSocket, &meeting, "watcher").await;
        let token = relay.token("ghost", &meeting);
        let mut options = relay.options(transport, &meeting, &token);
        // The ghost's connection stays open but it never answers a ping again.
        options.answer_pings = false;
        let ghost = Client::connect(options).await.expect("ghost joins");
        let ghost_id = ghost.participant_id();
        let started = Instant::now();
        let left = wait_for_message(&mut watcher, Duration::from_secs(12), |m| match m {
            Body::ParticipantLeft(l) if l.participant_id == ghost_id => Some(l.reason),
            _ => None,
        })
        .await;
        assert_eq!(left, Some(LeaveReason::Timeout as i32), "{transport:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{transport:?}: took {:?}",
            started.elapsed()
        );
        drop(ghost);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_timeout_is_configurable() {
    let relay = RelayProcess::start(&[
        "--peer-timeout-ms",
        "1000",
        "--heartbeat-interval-ms",
        "200",
    ])
    .await;
    let mut watcher = relay.join(Transport::WebTransport, "fast", "watcher").await;
    let token = relay.token("ghost", "fast");
    let mut options = relay.options(Transport::WebTransport, "fast", &token);
    options.answer_pings = false;
    let ghost = Client::connect(options).await.expect("ghost joins");
    let ghost_id = ghost.participant_id();
    let started = Instant::now();
    let left = wait_for_message(&mut watcher, WAIT, |m| match m {
        Body::ParticipantLeft(l) if l.participant_id == ghost_id => Some(()),
        _ => None,
    })
    .await;
    assert!(left.is_some());
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
    // The watcher answers pings, so it stays.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(relay.metric("videocall_relay_participants").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_client_leaves_at_once_though_its_transport_still_answers_pings() {
    // Pings every 100 ms: a dropped client that went on answering them would never time out.
    let relay = RelayProcess::start(&["--heartbeat-interval-ms", "100"]).await;
    for transport in TRANSPORTS {
        let meeting = format!("dropped-{transport:?}");
        let mut watcher = relay.join(Transport::WebSocket, &meeting, "watcher").await;
        let leaver = relay.join(transport, &meeting, "leaver").await;
        let leaver_id = leaver.participant_id();
        // Some pings answered first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        drop(leaver);
        let left = wait_for_message(&mut watcher, WAIT, |m| match m {
            Body::ParticipantLeft(l) if l.participant_id == leaver_id => Some(l.reason),
            _ => None,
        })
        .await;
        assert_eq!(
            left,
            Some(LeaveReason::Disconnected as i32),
            "{transport:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{transport:?}: took {:?}",
            started.elapsed()
        );
    }
}

async fn drain_keeps_the_live_meeting_until_it_empties(start_drain: impl FnOnce(&RelayProcess)) {
    let mut relay = RelayProcess::start(&[]).await;
    let mut alice = relay.join(Transport::WebTransport, "live", "alice").await;
    let mut bob = relay.join(Transport::WebSocket, "live", "bob").await;
    announce(&mut alice, &[(2, MediaKind::Audio)]).await;
    assert_eq!(relay.admin_get("/readyz").await.0, 200);

    start_drain(&relay);
    for (who, client) in [("alice", &mut alice), ("bob", &mut bob)] {
        let told = wait_for_message(client, WAIT, |m| match m {
            Body::Draining(d) => Some(d.deadline_ms),
            _ => None,
        })
        .await;
        assert!(told.is_some_and(|ms| ms > 0), "{who} was not told to move");
    }
    assert_eq!(relay.admin_get("/readyz").await.0, 503);

    for transport in TRANSPORTS {
        let token = relay.token("carol", "live");
        let code = refusal_code(Client::connect(relay.options(transport, "live", &token)).await);
        assert_eq!(code, Some(ErrorCode::Draining), "{transport:?}: {code:?}");
    }

    // The live meeting goes on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice
        .sender()
        .send_media(packet(2, MediaKind::Audio, 1, false, 90))
        .await
        .expect("send");
    let got = wait_for_message(&mut bob, WAIT, |m| match m {
        Body::Media(media) if media.sequence == 1 => Some(()),
        _ => None,
    })
    .await;
    assert!(got.is_some(), "media stopped during the drain");
    assert!(relay.is_running());

    // Once the meeting empties, the relay exits by itself.
    alice.sender().leave().await;
    bob.sender().leave().await;
    let code = relay.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "relay did not exit cleanly after draining");
    for client in [&mut alice, &mut bob] {
        let closed = wait_for(client, WAIT, |e| {
            matches!(e, Event::Closed { .. }).then_some(())
        })
        .await;
        assert!(closed.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains() {
    drain_keeps_the_live_meeting_until_it_empties(|relay| relay.signal("TERM")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_request_drains() {
    drain_keeps_the_live_meeting_until_it_empties(|relay| {
        let addr = relay.info.admin_addr;
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let (status, _) = runtime.block_on(http_request(addr, "POST", "/drain"));
            assert_eq!(status, 202);
        })
        .join()
        .expect("drain request");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_closes_remaining_sessions_with_a_reason() {
    let mut relay = RelayProcess::start(&["--drain-timeout-secs", "1"]).await;
    let mut alice = relay.join(Transport::WebSocket, "stuck", "alice").await;
    relay.signal("TERM");
    let closed = wait_for(&mut alice, WAIT, |e| match e {
        Event::Closed { code, reason } => Some((*code, reason.clone())),
        _ => None,
    })
    .await
    .expect("closed");
    assert_eq!(closed.0, 4000 + ErrorCode::Draining as u32, "{closed:?}");
    assert!(closed.1.contains("DRAINING"), "{closed:?}");
    assert_eq!(relay.wait_exit(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_endpoints_answer() {
    let relay = RelayProcess::start(&[]).await;
    let _a = relay.join(Transport::WebTransport, "obs", "a").await;
    let _b = relay.join(Transport::WebSocket, "obs", "b").await;
    assert_eq!(relay.admin_get("/healthz").await, (200, "ok".into()));
    assert_eq!(relay.admin_get("/readyz").await.0, 200);
    let (status, body) = relay.admin_get("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "videocall_relay_connections",
        "videocall_relay_meetings",
        "videocall_relay_participants",
        "videocall_relay_packets_in_total",
        "videocall_relay_bytes_out_total",
        "videocall_relay_drops_total",
        "videocall_relay_fanout_latency_seconds_bucket",
        "videocall_relay_queue_depth_bucket",
        "videocall_relay_queued_bytes",
    ] {
        assert!(body.contains(name), "metrics lack {name}");
    }
    assert_eq!(
        metric_value(
            &body,
            "videocall_relay_connections{transport=\"webtransport\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &body,
            "videocall_relay_connections{transport=\"websocket\"}"
        ),
        1.0
    );
    let (status, info) = relay.admin_get("/info").await;
    assert_eq!(status, 200);
    assert!(info.contains(&relay.info.certificate_sha256));
}
