//! One meeting across several relay processes sharing it over a real `nats-server`: the
//! shared one on 127.0.0.1:4222 (each test under a subject prefix of its own), and servers
//! the tests start themselves for a restart and a small `max_payload`.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use videocall_client::synthetic::packet;
use videocall_client::{Client, Event, Transport};
use videocall_protocol::wire::{self, envelope::Body, LeaveReason, MediaKind};
use videocall_testkit::nats::{unique_prefix, NatsServer, SHARED_NATS};

const WAIT: Duration = Duration::from_secs(10);
const MEETING: &str = "mesh";

/// Relays of one pool on `nats_url` under `prefix`, ids `mesh-1`, `mesh-2`, …
async fn pool(count: usize, nats_url: &str, prefix: &str, extra: &[&str]) -> Vec<RelayProcess> {
    let mut relays: Vec<RelayProcess> = Vec::new();
    for n in 1..=count {
        let id = format!("mesh-{n}");
        let mut args = vec![
            "--relay-id",
            &id,
            "--nats-url",
            nats_url,
            "--bus-subject-prefix",
            prefix,
        ];
        args.extend_from_slice(extra);
        let relay = match relays.first() {
            Some(first) => RelayProcess::start_beside(first, &args).await,
            None => RelayProcess::start(&args).await,
        };
        relays.push(relay);
    }
    relays
}

/// Waits until `client` knows every id in `others` with all of `tracks` announced.
async fn sees_everyone(client: &mut Client, others: &[u64], tracks: usize) -> HashMap<u64, usize> {
    let mut joins: HashMap<u64, usize> = HashMap::new();
    let mut known: HashMap<u64, usize> = client
        .joined
        .participants
        .iter()
        .map(|p| (p.id, p.tracks.len()))
        .collect();
    for p in &client.joined.participants {
        *joins.entry(p.id).or_default() += 1;
    }
    let done = |known: &HashMap<u64, usize>| {
        others
            .iter()
            .all(|id| known.get(id).is_some_and(|&n| n >= tracks))
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    while !done(&known) {
        let event = tokio::time::timeout_at(deadline, client.next_event()).await;
        seen.push(format!("{event:?}").chars().take(120).collect::<String>());
        match event {
            Ok(Some(Event::Message(Body::ParticipantJoined(j)))) => {
                if let Some(p) = j.participant {
                    *joins.entry(p.id).or_default() += 1;
                    known.insert(p.id, p.tracks.len());
                }
            }
            Ok(Some(Event::Message(Body::ParticipantUpdated(u)))) => {
                if let Some(p) = u.participant {
                    known.insert(p.id, p.tracks.len());
                }
            }
            Ok(Some(_)) => {}
            _ => panic!(
                "participant {} waited in vain for {others:?} with {tracks} tracks; knows {known:?}; joined {:?}; saw {seen:#?}",
                client.joined.participant_id, client.joined.participants
            ),
        }
    }
    joins
}

/// Reads media until nothing new arrives for `quiet`; returns (publisher, track) -> sequences.
async fn media_until_quiet(client: &mut Client, quiet: Duration) -> HashMap<(u64, u32), Vec<u64>> {
    let mut got: HashMap<(u64, u32), Vec<u64>> = HashMap::new();
    while let Ok(Some(event)) = tokio::time::timeout(quiet, client.next_event()).await {
        if let Event::Message(Body::Media(m)) = event {
            got.entry((m.participant_id, m.track_id))
                .or_default()
                .push(m.sequence);
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_meeting_split_across_three_relays_delivers_everyones_media_and_events_exactly_once() {
    let prefix = unique_prefix("split");
    let relays = pool(3, SHARED_NATS, &prefix, &[]).await;
    // Two on the first relay, one on each of the others; both transports.
    let placement = [
        (0, Transport::WebTransport),
        (0, Transport::WebSocket),
        (1, Transport::WebSocket),
        (2, Transport::WebTransport),
    ];
    let mut clients = Vec::new();
    for (n, (relay, transport)) in placement.iter().enumerate() {
        clients.push(
            relays[*relay]
                .join(*transport, MEETING, &format!("user{n}"))
                .await,
        );
    }
    // Announced without waiting (`announce` would discard the events it reads meanwhile):
    // `sees_everyone` reads every event, and media goes out only once every client has seen
    // every other's tracks, so every relay has applied every announcement.
    for client in &clients {
        let tracks = vec![
            videocall_client::synthetic::track(1, MediaKind::Video),
            videocall_client::synthetic::track(2, MediaKind::Audio),
        ];
        client.sender().announce(tracks).await.expect("announce");
    }
    let ids: Vec<u64> = clients.iter().map(|c| c.joined.participant_id).collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        4,
        "ids are unique across the pool"
    );
    for client in clients.iter_mut() {
        let me = client.joined.participant_id;
        let others: Vec<u64> = ids.iter().copied().filter(|&id| id != me).collect();
        let joins = sees_everyone(client, &others, 2).await;
        for id in &others {
            assert_eq!(
                joins.get(id),
                Some(&1),
                "{me} learned of {id} once: {joins:?}"
            );
        }
    }
    // Everyone publishes a keyframe, deltas and audio.
    for client in &clients {
        let sender = client.sender();
        for seq in 0..5u64 {
            sender
                .send_media(packet(1, MediaKind::Video, seq, seq == 0, 2000))
                .await
                .expect("video");
            sender
                .send_media(packet(2, MediaKind::Audio, seq, false, 100))
                .await
                .expect("audio");
        }
    }
    for client in clients.iter_mut() {
        let me = client.joined.participant_id;
        let got = media_until_quiet(client, Duration::from_millis(1500)).await;
        for &id in ids.iter().filter(|&&id| id != me) {
            for track in [1, 2] {
                assert_eq!(
                    got.get(&(id, track)),
                    Some(&(0..5).collect::<Vec<u64>>()),
                    "{me} got {id}'s track {track} whole, in order, once"
                );
            }
        }
        assert!(
            !got.keys().any(|(id, _)| *id == me),
            "nobody receives their own media"
        );
    }
    // NATS carries each packet once per publishing relay: relay 1's bytes out to the bus are
    // about two publishers' media, not once per remote subscriber (three of them).
    let out = relays[0]
        .metric("videocall_relay_bus_bytes_total{direction=\"out\"}")
        .await;
    let sent_by_two = 2.0 * 5.0 * (2000.0 + 100.0);
    assert!(
        out > sent_by_two && out < 2.0 * sent_by_two,
        "relay 1 published {out} bytes for {sent_by_two} of media"
    );
    assert!(relays[0].metric("videocall_relay_bus_subscriptions").await >= 1.0);

    // A leave on one relay is seen on the others.
    let leaver = clients.pop().expect("client");
    let leaver_id = leaver.joined.participant_id;
    leaver.sender().leave().await;
    for client in clients.iter_mut() {
        let seen = wait_for_message(client, WAIT, |m| match m {
            Body::ParticipantLeft(l) if l.participant_id == leaver_id => Some(l.reason),
            _ => None,
        })
        .await;
        assert_eq!(seen, Some(LeaveReason::Left as i32));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_joiner_on_another_relay_gets_a_keyframe_within_a_second_and_chat_crosses() {
    let prefix = unique_prefix("late");
    let relays = pool(2, SHARED_NATS, &prefix, &[]).await;
    let mut publisher = relays[0]
        .join(Transport::WebTransport, MEETING, "pub")
        .await;
    announce(&mut publisher, &[(1, MediaKind::Video)]).await;
    let sender = publisher.sender();
    let publisher_id = publisher.joined.participant_id;
    // The publisher sends deltas and a keyframe only when asked, as a camera does.
    let stop = tokio_util::sync::CancellationToken::new();
    let publishing = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seq = 0u64;
            let mut ticker = tokio::time::interval(Duration::from_millis(33));
            let mut keyframe_wanted = false;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = ticker.tick() => {
                        sender.send_media(packet(1, MediaKind::Video, seq, keyframe_wanted, 3000)).await.ok();
                        keyframe_wanted = false;
                        seq += 1;
                    }
                    event = publisher.next_event() => match event {
                        Some(Event::Message(Body::KeyframeRequest(_))) => keyframe_wanted = true,
                        Some(_) => {}
                        None => break,
                    }
                }
            }
            publisher
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    let mut late = relays[1].join(Transport::WebSocket, MEETING, "late").await;
    let keyframe = wait_for_message(&mut late, WAIT, |m| match m {
        Body::Media(media) if media.participant_id == publisher_id => Some(media.keyframe),
        _ => None,
    })
    .await;
    let took = asked.elapsed();
    assert_eq!(
        keyframe,
        Some(true),
        "the first packet a late joiner gets is a keyframe"
    );
    assert!(took < Duration::from_secs(1), "keyframe after {took:?}");
    stop.cancel();
    let mut publisher = publishing.await.expect("publisher task");

    // Chat from B reaches A.
    late.sender()
        .send(Body::Data(wire::DataMessage {
            text: "hi from b".into(),
            ..Default::default()
        }))
        .await
        .expect("chat");
    let from = wait_for_message(&mut publisher, WAIT, |m| match m {
        Body::Data(d) if d.text == "hi from b" => Some(d.from_participant_id),
        _ => None,
    })
    .await;
    assert_eq!(from, Some(late.joined.participant_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_relays_participants_leave_for_the_others_within_ten_seconds() {
    let prefix = unique_prefix("kill");
    let mut relays = pool(2, SHARED_NATS, &prefix, &[]).await;
    let mut alice = relays[0].join(Transport::WebSocket, MEETING, "alice").await;
    let bob = relays[1].join(Transport::WebSocket, MEETING, "bob").await;
    let bob_id = bob.joined.participant_id;
    sees_everyone(&mut alice, &[bob_id], 0).await;
    let killed = Instant::now();
    relays[1].signal("KILL");
    let reason = wait_for_message(&mut alice, Duration::from_secs(12), |m| match m {
        Body::ParticipantLeft(l) if l.participant_id == bob_id => Some(l.reason),
        _ => None,
    })
    .await;
    assert_eq!(reason, Some(LeaveReason::Timeout as i32));
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "left after {:?}",
        killed.elapsed()
    );
    assert!(relays[1].wait_exit(Duration::from_secs(5)).await.is_some() || !relays[1].is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_nats_restart_local_media_never_stopped_and_cross_relay_media_resumes_within_five_seconds(
) {
    let mut nats = NatsServer::start("", &[]);
    let relays = pool(2, &nats.url(), "vc", &[]).await;
    let mut publisher = relays[0].join(Transport::WebSocket, MEETING, "pub").await;
    announce(&mut publisher, &[(2, MediaKind::Audio)]).await;
    let publisher_id = publisher.joined.participant_id;
    let mut local = relays[0].join(Transport::WebSocket, MEETING, "local").await;
    let mut remote = relays[1]
        .join(Transport::WebSocket, MEETING, "remote")
        .await;
    sees_everyone(&mut remote, &[publisher_id], 1).await;
    let sender = publisher.sender();
    let stop = tokio_util::sync::CancellationToken::new();
    let publishing = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seq = 0u64;
            while !stop.is_cancelled() {
                sender
                    .send_media(packet(2, MediaKind::Audio, seq, false, 100))
                    .await
                    .ok();
                seq += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let audio_from = |m: &Body| match m {
        Body::Media(media) if media.participant_id == publisher_id => Some(media.sequence),
        _ => None,
    };
    assert!(
        wait_for_message(&mut remote, WAIT, audio_from)
            .await
            .is_some(),
        "media crosses before the restart"
    );

    nats.kill();
    // Local fan-out goes on while the bus is down.
    let down = Instant::now();
    let mut local_packets = 0;
    while down.elapsed() < Duration::from_secs(1) {
        if wait_for_message(&mut local, Duration::from_millis(200), audio_from)
            .await
            .is_some()
        {
            local_packets += 1;
        }
    }
    assert!(
        local_packets >= 3,
        "local subscriber got {local_packets} packets while NATS was down"
    );
    nats.start_again();
    let restarted = Instant::now();
    // Drain what was in flight, then wait for fresh packets.
    let resumed = loop {
        let seq = wait_for_message(&mut remote, Duration::from_secs(8), audio_from).await;
        assert!(seq.is_some(), "cross-relay media did not resume");
        if restarted.elapsed() > Duration::from_millis(50) {
            break restarted.elapsed();
        }
    };
    assert!(
        resumed < Duration::from_secs(5),
        "resumed after {resumed:?}"
    );
    // The restart was no reason to forget anyone.
    let left = wait_for_message(&mut remote, Duration::from_secs(2), |m| match m {
        Body::ParticipantLeft(l) => Some(l.participant_id),
        _ => None,
    })
    .await;
    assert_eq!(left, None);
    stop.cancel();
    publishing.await.expect("publisher");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frame_larger_than_natss_max_payload_crosses_whole() {
    let nats = NatsServer::start("max_payload: 16384\n", &[]);
    let relays = pool(2, &nats.url(), "vc", &[]).await;
    let mut publisher = relays[0]
        .join(Transport::WebTransport, MEETING, "pub")
        .await;
    announce(&mut publisher, &[(1, MediaKind::Video)]).await;
    let publisher_id = publisher.joined.participant_id;
    let mut viewer = relays[1]
        .join(Transport::WebTransport, MEETING, "viewer")
        .await;
    sees_everyone(&mut viewer, &[publisher_id], 1).await;
    let big = packet(1, MediaKind::Video, 0, true, 200_000);
    let payload = big.payload.clone();
    publisher.sender().send_media(big).await.expect("send");
    let got = wait_for_message(&mut viewer, WAIT, |m| match m {
        Body::Media(media) if media.participant_id == publisher_id => Some(media.payload.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        got,
        Some(payload),
        "200 kB arrived whole through 16 kB messages"
    );
    assert!(
        relays[1]
            .metric("videocall_relay_bus_drops_total{reason=\"incomplete\"}")
            .await
            == 0.0
    );
}

/// A's bytes to the bus per second, over `window`.
async fn bus_out_per_second(relay: &RelayProcess, window: Duration) -> f64 {
    let metric = "videocall_relay_bus_bytes_total{direction=\"out\"}";
    let before = relay.metric(metric).await;
    tokio::time::sleep(window).await;
    (relay.metric(metric).await - before) / window.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_carries_only_the_simulcast_layers_another_relays_subscribers_get() {
    use videocall_client::synthetic::{self, MediaPattern, VIDEO_TRACK};
    use videocall_protocol::wire::{TrackView, ViewTracks};
    let prefix = unique_prefix("layers");
    let relays = pool(2, SHARED_NATS, &prefix, &[]).await;
    let publisher = relays[0]
        .join(Transport::WebTransport, MEETING, "pub")
        .await;
    let publisher_id = publisher.participant_id();
    let mut viewer = relays[1]
        .join(Transport::WebSocket, MEETING, "viewer")
        .await;
    let view = |width, height| {
        Body::ViewTracks(ViewTracks {
            views: vec![TrackView {
                participant_id: publisher_id,
                track_id: VIDEO_TRACK,
                width,
                height,
            }],
        })
    };
    viewer.sender().send(view(320, 180)).await.expect("view");
    let stop = tokio_util::sync::CancellationToken::new();
    let pattern = MediaPattern {
        keyframe_interval: 300,
        ..MediaPattern::simulcast()
    };
    synthetic::spawn_publisher(publisher, pattern, stop.clone());
    let small = wait_for_message(&mut viewer, WAIT, |m| match m {
        Body::Media(media)
            if media.participant_id == publisher_id && media.kind == MediaKind::Video as i32 =>
        {
            Some(media.layer)
        }
        _ => None,
    })
    .await;
    assert_eq!(small, Some(0));
    // Layer 0 is 150 kbit/s and audio 4 kB/s: about 23 kB/s cross, not the 270 of every layer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let one_layer = bus_out_per_second(&relays[0], Duration::from_secs(2)).await;

    // The viewer enlarges the tile: layer 2 crosses and reaches it within a second and a half.
    let asked = Instant::now();
    viewer.sender().send(view(1280, 720)).await.expect("view");
    let large = wait_for_message(&mut viewer, WAIT, |m| match m {
        Body::Media(media) if media.participant_id == publisher_id && media.layer == 2 => {
            Some(media.keyframe)
        }
        _ => None,
    })
    .await;
    let took = asked.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let top_layer = bus_out_per_second(&relays[0], Duration::from_secs(2)).await;
    stop.cancel();
    println!("bus out: {one_layer:.0} B/s with layer 0 wanted, {top_layer:.0} B/s with layer 2; moved in {took:?}");
    assert!(
        one_layer < 60_000.0,
        "{one_layer:.0} B/s crossed for layer 0"
    );
    assert_eq!(large, Some(true), "layer 2 from its keyframe");
    assert!(took < Duration::from_millis(1500), "moved after {took:?}");
    assert!(
        (150_000.0..300_000.0).contains(&top_layer),
        "{top_layer:.0} B/s crossed for layer 2 (about 190 kB/s with audio)"
    );
}
