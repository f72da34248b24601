//! `videocall up --relays 2`: two relays behind the one gateway, sharing meetings over the
//! in-process bus (or NATS with `--nats-url`). A relay that is full sends the next joiner of
//! its meeting to the other relay, and the two meet there as if on one.

use std::time::Duration;

use videocall_client::synthetic::{packet, track};
use videocall_client::{Client, ConnectOptions, RelayAddress, Transport};
use videocall_control_api::v1::meeting_service_client::MeetingServiceClient;
use videocall_control_api::v1::{GetMeetingRequest, JoinGrant, JoinMeetingRequest};
use videocall_protocol::wire::{envelope::Body, MediaKind};
use videocall_testkit::nats::{unique_prefix, SHARED_NATS};
use videocall_testkit::wait_for_message;

mod common;

async fn guest_grant(api_url: &str, name: &str) -> JoinGrant {
    let mut meetings = MeetingServiceClient::connect(api_url.to_owned())
        .await
        .expect("connect API");
    meetings
        .join_meeting(JoinMeetingRequest {
            meeting_id: "demo".into(),
            display_name: name.into(),
            ..Default::default()
        })
        .await
        .expect("grant")
        .into_inner()
}

async fn join(api_url: &str, name: &str, transport: Transport) -> Client {
    try_join(api_url, name, transport)
        .await
        .unwrap_or_else(|e| panic!("{name} could not join: {e}"))
}

async fn try_join(
    api_url: &str,
    name: &str,
    transport: Transport,
) -> Result<Client, videocall_client::ClientError> {
    let grant = guest_grant(api_url, name).await;
    let relay = grant.relay.clone().expect("relay");
    let address = RelayAddress {
        webtransport_url: relay.webtransport_url,
        websocket_url: relay.websocket_url,
        certificate_sha256: relay.certificate_sha256.first().cloned(),
    };
    Client::connect(ConnectOptions::new(
        transport,
        address,
        "demo",
        &grant.token,
    ))
    .await
}

/// Alice on one relay, Bob on the other (each relay holds one participant), through the
/// gateway: they see each other join, and each gets the other's media.
async fn two_relays_meet(extra: &[&str]) {
    let data = tempfile::tempdir().expect("dir");
    let mut args = vec!["--relays", "2", "--capacity-participants", "1"];
    args.extend_from_slice(extra);
    let (mut platform, info) = common::up(data.path(), "127.0.0.1:0", &args).await;
    assert_eq!(info.relays.len(), 2, "two relays reported");
    assert_ne!(info.relays[0].quic_server_id, info.relays[1].quic_server_id);

    let mut alice = join(&info.api_url, "alice", Transport::WebTransport).await;
    let mut bob = join(&info.api_url, "bob", Transport::WebSocket).await;
    assert_ne!(
        alice.joined.relay_id, bob.joined.relay_id,
        "the full relay sent bob to the other"
    );
    let bob_id = bob.joined.participant_id;
    let seen = wait_for_message(&mut alice, Duration::from_secs(10), |m| match m {
        Body::ParticipantJoined(j) => j
            .participant
            .as_ref()
            .map(|p| p.id)
            .filter(|&id| id == bob_id),
        _ => None,
    })
    .await;
    assert_eq!(seen, Some(bob_id), "alice sees bob join on the other relay");
    let alice_id = alice.joined.participant_id;
    let known = bob.joined.participants.iter().any(|p| p.id == alice_id)
        || wait_for_message(&mut bob, Duration::from_secs(10), |m| match m {
            Body::ParticipantJoined(j)
                if j.participant.as_ref().map(|p| p.id) == Some(alice_id) =>
            {
                Some(())
            }
            _ => None,
        })
        .await
        .is_some();
    assert!(known, "bob knows alice");

    for (client, kind) in [(&alice, MediaKind::Video), (&bob, MediaKind::Audio)] {
        client
            .sender()
            .announce(vec![track(1, kind)])
            .await
            .expect("announce");
    }
    // Wait until each relay knows the other's track, then send.
    for (client, other) in [(&mut alice, bob_id), (&mut bob, alice_id)] {
        let announced = wait_for_message(client, Duration::from_secs(10), |m| match m {
            Body::ParticipantUpdated(u) => u
                .participant
                .as_ref()
                .filter(|p| p.id == other && !p.tracks.is_empty())
                .map(|_| ()),
            _ => None,
        })
        .await;
        assert!(
            announced.is_some(),
            "the other's track is announced across relays"
        );
    }
    for seq in 0..3 {
        alice
            .sender()
            .send_media(packet(1, MediaKind::Video, seq, seq == 0, 1500))
            .await
            .expect("video");
        bob.sender()
            .send_media(packet(1, MediaKind::Audio, seq, false, 100))
            .await
            .expect("audio");
    }
    let from = |id: u64| {
        move |m: &Body| match m {
            Body::Media(media) if media.participant_id == id => Some(media.payload.len()),
            _ => None,
        }
    };
    assert_eq!(
        wait_for_message(&mut bob, Duration::from_secs(5), from(alice_id)).await,
        Some(1500)
    );
    assert_eq!(
        wait_for_message(&mut alice, Duration::from_secs(5), from(bob_id)).await,
        Some(100)
    );

    // The control plane sees one meeting on both relays, with both participants.
    let mut meetings = MeetingServiceClient::connect(info.api_url.clone())
        .await
        .expect("connect API");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let meeting = loop {
        let meeting = meetings
            .get_meeting(GetMeetingRequest { id: "demo".into() })
            .await
            .expect("get meeting")
            .into_inner();
        if meeting.participants == 2 && meeting.relay_ids.len() == 2 {
            break meeting;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the control plane sees {} participants on {:?}",
            meeting.participants,
            meeting.relay_ids
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut hosts = meeting.relay_ids.clone();
    hosts.sort();
    assert_eq!(hosts, vec!["relay-0".to_string(), "relay-1".to_string()]);
    drop(meetings);

    // Both leave; SIGTERM then drains the relays, which are empty, and the platform stops.
    alice.sender().leave().await;
    bob.sender().leave().await;
    platform.signal("TERM");
    drop((alice, bob));
    assert_eq!(platform.wait_exit(Duration::from_secs(20)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_share_a_meeting_over_the_in_process_bus() {
    two_relays_meet(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_share_a_meeting_over_nats() {
    let prefix = unique_prefix("platform");
    two_relays_meet(&["--nats-url", SHARED_NATS, "--bus-subject-prefix", &prefix]).await;
}

/// A drain moves nobody: the draining relay keeps its participant in the meeting, a new
/// joiner lands on the other relay, and the two meet across relays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_relay_keeps_its_meeting_while_new_joiners_land_on_the_other() {
    let data = tempfile::tempdir().expect("dir");
    let (mut platform, info) = common::up(data.path(), "127.0.0.1:0", &["--relays", "2"]).await;
    let mut alice = join(&info.api_url, "alice", Transport::WebSocket).await;
    let drained = info
        .relays
        .iter()
        .find(|r| r.relay_id == alice.joined.relay_id)
        .expect("alice's relay");
    let (status, _) = videocall_testkit::http_request(drained.admin_addr, "POST", "/drain").await;
    assert_eq!(status, 202, "drain accepted");
    assert!(
        wait_for_message(&mut alice, Duration::from_secs(5), |m| match m {
            Body::Draining(_) => Some(()),
            _ => None,
        })
        .await
        .is_some(),
        "alice is told her relay drains"
    );
    // The control plane learns of the drain with the relay's next heartbeat.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // Until then a grant may still name the draining relay, which refuses with DRAINING; a
    // client asks again.
    let mut bob = loop {
        match try_join(&info.api_url, "bob", Transport::WebTransport).await {
            Ok(bob) => break bob,
            Err(videocall_client::ClientError::Refused { code, .. }) => {
                assert_eq!(code, videocall_protocol::wire::ErrorCode::Draining);
            }
            Err(other) => panic!("bob could not join: {other}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "new joiners still land on the draining relay"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_ne!(bob.joined.relay_id, alice.joined.relay_id);
    let alice_id = alice.joined.participant_id;
    alice
        .sender()
        .announce(vec![track(1, MediaKind::Audio)])
        .await
        .expect("announce");
    let announced = wait_for_message(&mut bob, Duration::from_secs(10), |m| match m {
        Body::ParticipantUpdated(u) => u
            .participant
            .as_ref()
            .filter(|p| p.id == alice_id && !p.tracks.is_empty())
            .map(|_| ()),
        Body::ParticipantJoined(j) => j
            .participant
            .as_ref()
            .filter(|p| p.id == alice_id && !p.tracks.is_empty())
            .map(|_| ()),
        _ => None,
    })
    .await;
    assert!(announced.is_some(), "bob sees alice's track across relays");
    for seq in 0..3 {
        alice
            .sender()
            .send_media(packet(1, MediaKind::Audio, seq, false, 80))
            .await
            .expect("audio");
    }
    let got = wait_for_message(&mut bob, Duration::from_secs(5), |m| match m {
        Body::Media(media) if media.participant_id == alice_id => Some(media.payload.len()),
        _ => None,
    })
    .await;
    assert_eq!(
        got,
        Some(80),
        "the drained relay's participant still reaches the meeting"
    );
    alice.sender().leave().await;
    bob.sender().leave().await;
    platform.signal("TERM");
    drop((alice, bob));
    assert_eq!(platform.wait_exit(Duration::from_secs(20)).await, Some(0));
}
