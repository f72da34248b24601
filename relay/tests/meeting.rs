//! Meetings over real sockets: mixed transports, events, late joiners, limits and grants.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use tokio_util::sync::CancellationToken;
use videocall_client::synthetic::{self, packet, MediaPattern};
use videocall_client::{Client, Event, Transport};
use videocall_protocol::wire::{
    self, envelope::Body, ErrorCode, LeaveReason, MediaKind, UpdateState,
};
use videocall_token::Grants;

const WAIT: Duration = Duration::from_secs(5);

/// Sends one keyframe, two deltas and three audio packets.
async fn publish_burst(client: &Client) {
    let sender = client.sender();
    for seq in 0..3u64 {
        sender
            .send_media(packet(1, MediaKind::Video, seq, seq == 0, 3000))
            .await
            .expect("video");
    }
    for seq in 0..3u64 {
        sender
            .send_media(packet(2, MediaKind::Audio, seq, false, 120))
            .await
            .expect("audio");
    }
}

/// Collects media until video and audio from every id in `from` arrived.
async fn receive_from_all(
    client: &mut Client,
    from: &[u64],
) -> HashMap<(u64, i32), Vec<wire::Media>> {
    let mut got: HashMap<(u64, i32), Vec<wire::Media>> = HashMap::new();
    let want: HashSet<(u64, i32)> = from
        .iter()
        .flat_map(|id| {
            [
                (*id, MediaKind::Video as i32),
                (*id, MediaKind::Audio as i32),
            ]
        })
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !want
        .iter()
        .all(|k| got.get(k).is_some_and(|v| v.len() >= 3))
    {
        match tokio::time::timeout_at(deadline, client.next_event()).await {
            Ok(Some(Event::Message(Body::Media(m)))) => {
                got.entry((m.participant_id, m.kind)).or_default().push(m)
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_over_mixed_transports_exchange_media_and_events() {
    let relay = RelayProcess::start(&[]).await;
    let mut alice = relay.join(Transport::WebTransport, "m1", "alice").await;
    let mut bob = relay.join(Transport::WebTransport, "m1", "bob").await;
    let mut carol = relay.join(Transport::WebSocket, "m1", "carol").await;
    let (a, b, c) = (
        alice.participant_id(),
        bob.participant_id(),
        carol.participant_id(),
    );

    // Join events, and the roster in Joined.
    let carol_roster: HashSet<u64> = carol.joined.participants.iter().map(|p| p.id).collect();
    assert_eq!(carol_roster, HashSet::from([a, b]));
    for (who, client, expect) in [
        ("alice", &mut alice, vec![b, c]),
        ("bob", &mut bob, vec![c]),
    ] {
        for id in expect {
            let seen = wait_for_message(client, WAIT, |m| match m {
                Body::ParticipantJoined(j) if j.participant.as_ref().map(|p| p.id) == Some(id) => {
                    Some(())
                }
                _ => None,
            })
            .await;
            assert!(seen.is_some(), "{who} did not see {id} join");
        }
    }

    for client in [&mut alice, &mut bob, &mut carol] {
        announce(client, &[(1, MediaKind::Video), (2, MediaKind::Audio)]).await;
    }
    for client in [&alice, &bob, &carol] {
        publish_burst(client).await;
    }
    for (who, client, others) in [
        ("alice", &mut alice, [b, c]),
        ("bob", &mut bob, [a, c]),
        ("carol", &mut carol, [a, b]),
    ] {
        let got = receive_from_all(client, &others).await;
        for id in others {
            let video = got
                .get(&(id, MediaKind::Video as i32))
                .map(Vec::len)
                .unwrap_or(0);
            let audio = got
                .get(&(id, MediaKind::Audio as i32))
                .map(Vec::len)
                .unwrap_or(0);
            assert!(
                video >= 3 && audio >= 3,
                "{who} got {video} video / {audio} audio from {id}"
            );
            let first = &got[&(id, MediaKind::Video as i32)][0];
            assert!(first.keyframe, "{who}: first video from {id} is a keyframe");
            assert_eq!(first.payload.len(), 3000);
            assert_eq!(&first.payload[..8], &0u64.to_be_bytes());
        }
        assert!(
            !got.keys().any(|(id, _)| *id == client.participant_id()),
            "{who} got its own media back"
        );
    }

    // Mute propagates.
    alice
        .sender()
        .send(Body::UpdateState(UpdateState {
            audio_muted: true,
            ..Default::default()
        }))
        .await
        .expect("update");
    for (who, client) in [("bob", &mut bob), ("carol", &mut carol)] {
        let muted = wait_for_message(client, WAIT, |m| match m {
            Body::ParticipantUpdated(u) => u
                .participant
                .as_ref()
                .filter(|p| p.id == a && p.audio_muted)
                .map(|_| ()),
            _ => None,
        })
        .await;
        assert!(muted.is_some(), "{who} did not see alice mute");
    }

    // Chat reaches everyone else with the sender filled in by the relay.
    alice
        .sender()
        .send(Body::Data(wire::DataMessage {
            text: "hello".into(),
            from_participant_id: 999,
            ..Default::default()
        }))
        .await
        .expect("chat");
    let chat = wait_for_message(&mut carol, WAIT, |m| match m {
        Body::Data(d) => Some(d.clone()),
        _ => None,
    })
    .await
    .expect("carol got chat");
    assert_eq!((chat.text.as_str(), chat.from_participant_id), ("hello", a));

    // Leave is announced.
    carol.sender().leave().await;
    for (who, client) in [("alice", &mut alice), ("bob", &mut bob)] {
        let left = wait_for_message(client, WAIT, |m| match m {
            Body::ParticipantLeft(l) if l.participant_id == c => Some(l.reason),
            _ => None,
        })
        .await;
        assert_eq!(
            left,
            Some(LeaveReason::Left as i32),
            "{who} did not see carol leave"
        );
    }
    assert_eq!(relay.metric("videocall_relay_participants").await, 2.0);
    assert_eq!(relay.metric("videocall_relay_meetings").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_gets_a_keyframe_within_one_second() {
    let relay = RelayProcess::start(&[]).await;
    for transport in TRANSPORTS {
        let meeting = format!("late-{transport:?}");
        let alice = relay.join(Transport::WebTransport, &meeting, "alice").await;
        // Keyframes only every 10 s unless asked: the late joiner must be served by a request.
        let pattern = MediaPattern {
            keyframe_interval: 300,
            ..MediaPattern::conference()
        };
        let stop = CancellationToken::new();
        synthetic::spawn_publisher(alice, pattern, stop.clone());
        tokio::time::sleep(Duration::from_millis(1500)).await;

        let mut bob = relay.join(transport, &meeting, "bob").await;
        let joined_at = Instant::now();
        let mut deltas_before_keyframe = 0;
        let first_keyframe = wait_for_message(&mut bob, Duration::from_secs(3), |m| match m {
            Body::Media(media) if media.kind == MediaKind::Video as i32 => {
                if media.keyframe {
                    Some(joined_at.elapsed())
                } else {
                    deltas_before_keyframe += 1;
                    None
                }
            }
            _ => None,
        })
        .await
        .expect("late joiner got a keyframe");
        assert!(
            first_keyframe < Duration::from_secs(1),
            "{transport:?}: first keyframe after {first_keyframe:?}"
        );
        assert_eq!(
            deltas_before_keyframe, 0,
            "{transport:?}: undecodable deltas before the keyframe"
        );
        stop.cancel();
    }
    assert!(
        relay
            .metric("videocall_relay_keyframe_requests_total")
            .await
            >= 2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_grants_are_enforced_with_clear_errors() {
    let relay =
        RelayProcess::start(&["--max-participants-per-meeting", "2", "--max-meetings", "2"]).await;
    let _a = relay.join(Transport::WebSocket, "full", "a").await;
    let _b = relay.join(Transport::WebTransport, "full", "b").await;
    for transport in TRANSPORTS {
        let token = relay.token("c", "full");
        let code = refusal_code(Client::connect(relay.options(transport, "full", &token)).await);
        assert_eq!(
            code,
            Some(ErrorCode::MeetingFull),
            "{transport:?}: {code:?}"
        );
    }
    let _other = relay.join(Transport::WebSocket, "second", "d").await;
    let token = relay.token("e", "third");
    let code =
        refusal_code(Client::connect(relay.options(Transport::WebSocket, "third", &token)).await);
    assert_eq!(code, Some(ErrorCode::RelayFull), "{code:?}");

    // A subscribe-only participant may not publish; the others never see its media.
    let viewer_token = relay.token_with(
        "viewer",
        "second",
        Grants {
            publish: false,
            subscribe: true,
            admin: false,
            role: None,
        },
        Duration::from_secs(60),
    );
    let mut viewer =
        Client::connect(relay.options(Transport::WebTransport, "second", &viewer_token))
            .await
            .expect("viewer joins");
    assert!(!viewer.joined.participants.is_empty());
    viewer
        .sender()
        .announce(vec![synthetic::track(1, MediaKind::Video)])
        .await
        .expect("announce");
    let error = wait_for_message(&mut viewer, WAIT, |m| match m {
        Body::Error(e) => Some(e.code),
        _ => None,
    })
    .await;
    assert_eq!(
        error,
        Some(ErrorCode::Forbidden as i32),
        "no announcing without publish"
    );
    viewer
        .sender()
        .send_media(packet(1, MediaKind::Video, 0, true, 100))
        .await
        .expect("send");
    let error = wait_for_message(&mut viewer, WAIT, |m| match m {
        Body::Error(e) => Some(e.code),
        _ => None,
    })
    .await;
    assert_eq!(error, Some(ErrorCode::Forbidden as i32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_only_participant_is_sent_no_media() {
    let relay = RelayProcess::start(&[]).await;
    let viewer = relay.join(Transport::WebSocket, "cam", "viewer").await;
    let camera_token = relay.token_with(
        "camera",
        "cam",
        Grants {
            publish: true,
            subscribe: false,
            admin: false,
            role: None,
        },
        Duration::from_secs(60),
    );
    let mut camera = Client::connect(relay.options(Transport::WebTransport, "cam", &camera_token))
        .await
        .expect("camera joins");
    let mut viewer = viewer;
    announce(&mut camera, &[(1, MediaKind::Video)]).await;
    camera
        .sender()
        .send_media(packet(1, MediaKind::Video, 0, true, 300))
        .await
        .expect("send");
    let seen = wait_for_message(&mut viewer, WAIT, |m| match m {
        Body::Media(media) if media.participant_id == camera.participant_id() => Some(()),
        _ => None,
    })
    .await;
    assert!(seen.is_some(), "the viewer gets the camera's media");
    announce(&mut viewer, &[(1, MediaKind::Video)]).await;
    viewer
        .sender()
        .send_media(packet(1, MediaKind::Video, 0, true, 300))
        .await
        .expect("send");
    let leaked = wait_for_message(&mut camera, Duration::from_millis(700), |m| {
        matches!(m, Body::Media(_)).then_some(())
    })
    .await;
    assert!(
        leaked.is_none(),
        "a participant without `subscribe` was sent media"
    );
}

/// A track list in `UpdateState` is complete: a published track it leaves out (a screen
/// share that stopped) disappears from what the others are told, and its packets still in
/// flight on other streams are dropped, never bringing it back; an empty list changes none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_that_leaves_a_track_out_unpublishes_it() {
    let relay = RelayProcess::start(&[]).await;
    let mut viewer = relay.join(Transport::WebSocket, "share", "viewer").await;
    let mut presenter = relay
        .join(Transport::WebTransport, "share", "presenter")
        .await;
    let id = presenter.participant_id();
    let sender = presenter.sender();
    let tracks_of = |m: &Body| match m {
        Body::ParticipantUpdated(u) => u.participant.as_ref().filter(|p| p.id == id).map(|p| {
            let mut ids: Vec<u32> = p.tracks.iter().map(|t| t.id).collect();
            ids.sort();
            ids
        }),
        _ => None,
    };
    // Camera and screen both publish.
    announce(
        &mut presenter,
        &[(1, MediaKind::Video), (3, MediaKind::Screen)],
    )
    .await;
    let both = wait_for_message(&mut viewer, WAIT, |m| tracks_of(m).filter(|t| *t == [1, 3])).await;
    assert!(both.is_some(), "camera and screen announced");
    for (track_id, kind) in [(1, MediaKind::Video), (3, MediaKind::Screen)] {
        sender
            .send_media(packet(track_id, kind, 0, true, 300))
            .await
            .expect("media");
    }

    // The share stops: the announcement leaves track 3 out, while packets of track 3 are
    // still being sent on their own streams.
    sender
        .announce(vec![synthetic::track(1, MediaKind::Video)])
        .await
        .expect("announce");
    for seq in 1..20 {
        sender
            .send_media(packet(3, MediaKind::Screen, seq, seq % 5 == 0, 300))
            .await
            .expect("late screen media");
    }
    let mut updates = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while updates.last() != Some(&vec![1]) {
        match tokio::time::timeout_at(deadline, viewer.next_event()).await {
            Ok(Some(Event::Message(m))) => updates.extend(tracks_of(&m)),
            _ => panic!("the stopped screen share did not go: {updates:?}"),
        }
    }
    // The removal is applied: from now on every packet of track 3 is dropped.
    for seq in 100..110 {
        sender
            .send_media(packet(3, MediaKind::Screen, seq, seq == 100, 300))
            .await
            .expect("screen media after the stop");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, viewer.next_event()).await {
        if let Event::Message(m) = &event {
            updates.extend(tracks_of(m));
            if let Body::Media(media) = m {
                assert!(
                    !(media.track_id == 3 && media.sequence >= 100),
                    "screen media forwarded after the share stopped"
                );
            }
        }
    }
    assert!(
        !updates
            .iter()
            .skip_while(|t| **t != [1])
            .any(|t| t.contains(&3)),
        "a late packet brought the screen share back: {updates:?}"
    );
    let dropped = relay
        .metric("videocall_relay_drops_total{reason=\"unannounced_track\"}")
        .await;
    assert!(
        dropped >= 10.0,
        "{dropped} packets of the removed track counted as dropped"
    );

    // An empty list without `announce_tracks` (mute flags only) leaves the camera alone.
    sender
        .send(Body::UpdateState(UpdateState {
            audio_muted: true,
            ..Default::default()
        }))
        .await
        .expect("mute");
    let after_mute = wait_for_message(&mut viewer, WAIT, |m| match m {
        Body::ParticipantUpdated(u) => u
            .participant
            .as_ref()
            .filter(|p| p.id == id && p.audio_muted)
            .map(|p| p.tracks.iter().map(|t| t.id).collect::<Vec<_>>()),
        _ => None,
    })
    .await;
    assert_eq!(
        after_mute,
        Some(vec![1]),
        "an empty list unpublishes nothing"
    );
}

/// The close code a transport reports for a session that ended with `code`.
fn close_code(transport: Transport, code: ErrorCode) -> u32 {
    match transport {
        Transport::WebTransport => code as u32,
        Transport::WebSocket => 4000 + code as u32,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_of_one_identity_replaces_the_first_and_holds_no_extra_seat() {
    // Room for two: alice and bob. Before, alice's second session took a third place (or,
    // at the limit, was refused), and one token opened any number of sessions.
    let relay = RelayProcess::start(&["--max-participants-per-meeting", "2"]).await;
    let mut bob = relay.join(Transport::WebSocket, "once", "bob").await;
    let token = relay.token("alice", "once");
    let mut alice = Client::connect(relay.options(Transport::WebTransport, "once", &token))
        .await
        .expect("alice joins");
    let mut old_transport = Transport::WebTransport;
    // The same token four more times, over both transports: each session replaces the last.
    for (round, transport) in [
        Transport::WebSocket,
        Transport::WebSocket,
        Transport::WebTransport,
        Transport::WebSocket,
    ]
    .into_iter()
    .enumerate()
    {
        let old = alice.participant_id();
        let again = Client::connect(relay.options(transport, "once", &token))
            .await
            .unwrap_or_else(|e| panic!("round {round}: the newer session is admitted: {e}"));
        let others: Vec<u64> = again.joined.participants.iter().map(|p| p.id).collect();
        assert_eq!(
            others,
            [bob.participant_id()],
            "round {round}: the newcomer is not told of the session it replaces"
        );
        // The replaced session is told why (the Error may not outrun a QUIC close), and closed.
        let mut errors = Vec::new();
        let closed = wait_for(&mut alice, WAIT, |e| match e {
            Event::Message(Body::Error(error)) => {
                errors.push((error.code, error.fatal));
                None
            }
            Event::Closed { code, .. } => Some(*code),
            _ => None,
        })
        .await;
        assert_eq!(
            closed,
            Some(close_code(old_transport, ErrorCode::Replaced)),
            "round {round}: {old_transport:?}"
        );
        assert!(
            errors
                .iter()
                .all(|e| *e == (ErrorCode::Replaced as i32, true)),
            "round {round}: {errors:?}"
        );
        if old_transport == Transport::WebSocket {
            assert_eq!(
                errors.len(),
                1,
                "round {round}: the Error precedes the close"
            );
        }
        let left = wait_for_message(&mut bob, WAIT, |m| match m {
            Body::ParticipantLeft(l) if l.participant_id == old => Some(l.reason),
            _ => None,
        })
        .await;
        assert_eq!(left, Some(LeaveReason::Replaced as i32), "round {round}");
        alice = again;
        old_transport = transport;
    }
    assert_eq!(relay.metric("videocall_relay_participants").await, 2.0);
    assert_eq!(
        relay
            .metric("videocall_relay_sessions_replaced_total")
            .await,
        4.0
    );
    // The last session is a full member: media flows both ways.
    publish_burst(&alice).await;
    receive_from_all(&mut bob, &[alice.participant_id()]).await;
    publish_burst(&bob).await;
    receive_from_all(&mut alice, &[bob.participant_id()]).await;

    // Another identity is still refused (the meeting is full), and alice's seat is free
    // again once she leaves.
    let carol_token = relay.token("carol", "once");
    let refused = refusal_code(
        Client::connect(relay.options(Transport::WebSocket, "once", &carol_token)).await,
    );
    assert_eq!(refused, Some(ErrorCode::MeetingFull));
    alice.sender().leave().await;
    let deadline = Instant::now() + WAIT;
    while relay.metric("videocall_relay_participants").await > 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Client::connect(relay.options(Transport::WebSocket, "once", &carol_token))
        .await
        .expect("carol takes the seat alice left");
}
