//! Relays sharing a meeting, without a bus: each world's fake mesh records what its relay
//! publishes, and the test carries it to the other relays' cores, as the bus would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use videocall_protocol::mesh::{mesh_event, MeshEvent};
use videocall_protocol::wire::{self, envelope::Body, LeaveReason, MediaKind};
use videocall_token::Grants;

use super::{Joined, World};
use crate::core::remote::{on_event, on_media, tick, RemoteMedia};
use crate::core::{
    deliver_handshake, handshake_refused, HandshakeOrdering, MediaSink, Mesh, Offer, Outgoing,
};
use crate::ids::ParticipantId;
use crate::reason::DropReason;

/// One media message as it would cross the bus.
#[derive(Clone)]
struct Crossing {
    meeting: String,
    publisher: ParticipantId,
    track: u32,
    keyframe: bool,
    frame: Bytes,
}

/// What one relay put on the bus.
#[derive(Default)]
struct Wire {
    events: Mutex<Vec<(String, mesh_event::Body)>>,
    media: Mutex<Vec<Crossing>>,
    opened: Mutex<Vec<String>>,
    followed: Mutex<Vec<String>>,
    closed: Mutex<Vec<String>>,
    handshakes: Mutex<Vec<(String, wire::Handshake)>>,
    /// Media messages the queue takes before it is full (`usize::MAX`: no limit).
    media_room: AtomicUsize,
}

struct FakeMesh(Arc<Wire>);

impl Mesh for FakeMesh {
    fn open(&self, meeting: &str) {
        self.0.opened.lock().unwrap().push(meeting.into());
        // As the bus adapter does once the subscription is up.
        self.publish(meeting, mesh_event::Body::Hello(Default::default()));
    }
    fn follow_handshakes(&self, meeting: &str) {
        self.0.followed.lock().unwrap().push(meeting.into());
    }
    fn close(&self, meeting: &str) {
        self.0.closed.lock().unwrap().push(meeting.into());
    }
    fn publish(&self, meeting: &str, body: mesh_event::Body) {
        self.0.events.lock().unwrap().push((meeting.into(), body));
    }
    fn append_handshake(&self, meeting: &str, handshake: &wire::Handshake) -> HandshakeOrdering {
        self.0
            .handshakes
            .lock()
            .unwrap()
            .push((meeting.into(), handshake.clone()));
        HandshakeOrdering::Queued
    }
    fn media_sink(
        &self,
        meeting: &str,
        publisher: ParticipantId,
        track: u32,
        _audio: bool,
    ) -> Box<dyn MediaSink> {
        Box::new(BusSink {
            wire: self.0.clone(),
            meeting: meeting.into(),
            publisher,
            track,
        })
    }
}

struct BusSink {
    wire: Arc<Wire>,
    meeting: String,
    publisher: ParticipantId,
    track: u32,
}

impl MediaSink for BusSink {
    fn offer(&self, out: Outgoing) -> Offer {
        let room = self.wire.media_room.load(Ordering::Relaxed);
        if room == 0 {
            return Offer::Full;
        }
        if room != usize::MAX {
            self.wire.media_room.store(room - 1, Ordering::Relaxed);
        }
        self.wire.media.lock().unwrap().push(Crossing {
            meeting: self.meeting.clone(),
            publisher: self.publisher,
            track: self.track,
            keyframe: out.keyframe,
            frame: out.frame,
        });
        Offer::Accepted { depth: 0 }
    }
}

/// A relay of the pool: its world and what it published.
struct Node {
    world: World,
    wire: Arc<Wire>,
    id: String,
}

impl Node {
    fn new(id: &str, server_id: u16) -> Node {
        let wire = Arc::new(Wire::default());
        wire.media_room.store(usize::MAX, Ordering::Relaxed);
        let server = server_id.to_string();
        let world = World::with_mesh(
            &["--relay-id", id, "--quic-server-id", &server],
            Arc::new(FakeMesh(wire.clone())),
        );
        Node {
            world,
            wire,
            id: id.into(),
        }
    }

    fn join(&self, user: &str) -> Joined {
        self.world.join(user, "m")
    }

    fn join_encrypted(&self, user: &str) -> Joined {
        self.world.join_encrypted(user, "m")
    }

    fn events(&self) -> Vec<mesh_event::Body> {
        self.wire
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// Carries everything each node published to every other node, until nothing is left
/// (answers to answers included). Returns the media messages that crossed.
fn pump(nodes: &[&Node]) -> usize {
    pump_at(nodes, 0)
}

/// [`pump`], `ms` after the start.
fn pump_at(nodes: &[&Node], ms: u64) -> usize {
    let mut crossed = 0;
    loop {
        let mut moved = false;
        for from in nodes {
            let events = std::mem::take(&mut *from.wire.events.lock().unwrap());
            let media = std::mem::take(&mut *from.wire.media.lock().unwrap());
            moved |= !events.is_empty() || !media.is_empty();
            crossed += media.len();
            for to in nodes.iter().filter(|n| n.id != from.id) {
                for (meeting, body) in &events {
                    let event = MeshEvent {
                        origin: from.id.clone(),
                        body: Some(body.clone()),
                    };
                    on_event(&to.world.relay, meeting, event, to.world.start.later(ms));
                }
                for m in &media {
                    on_media(
                        &to.world.relay,
                        &m.meeting,
                        m.publisher,
                        m.track,
                        m.keyframe,
                        &m.frame,
                        to.world.start.later(ms),
                    );
                }
            }
        }
        if !moved {
            return crossed;
        }
    }
}

fn joined_ids(bodies: &[Body]) -> Vec<u64> {
    bodies
        .iter()
        .filter_map(|b| match b {
            Body::ParticipantJoined(j) => j.participant.as_ref().map(|p| p.id),
            _ => None,
        })
        .collect()
}

fn left(bodies: &[Body]) -> Vec<(u64, i32)> {
    bodies
        .iter()
        .filter_map(|b| match b {
            Body::ParticipantLeft(l) => Some((l.participant_id, l.reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn participants_on_two_relays_see_each_other_and_media_crosses_once_per_packet() {
    let a = Node::new("a", 1);
    let b = Node::new("b", 2);
    let alice = a.join("alice");
    pump(&[&a, &b]);
    let bob = b.join("bob");
    let carol = b.join("carol");
    assert_eq!(
        *b.wire.opened.lock().unwrap(),
        vec!["m".to_string()],
        "one subscription per meeting, not per participant"
    );
    pump(&[&a, &b]);
    assert_ne!(alice.id() >> 48, bob.id() >> 48, "ids carry their relay");

    // Everyone knows everyone, exactly once.
    let told_alice = joined_ids(&alice.inbox.take());
    assert_eq!(told_alice.iter().filter(|&&id| id == bob.id()).count(), 1);
    assert_eq!(told_alice.iter().filter(|&&id| id == carol.id()).count(), 1);
    let told_bob = joined_ids(&bob.inbox.take());
    assert_eq!(
        told_bob.iter().filter(|&&id| id == alice.id()).count(),
        1,
        "{told_bob:?}"
    );
    carol.inbox.take();

    // Alice publishes: a keyframe request for her new track reaches her (B's viewers wait).
    alice.announce(
        &[(1, MediaKind::Video), (2, MediaKind::Audio)],
        a.world.start,
    );
    pump(&[&a, &b]);
    let bob_sees = super::tracks_of(&bob.inbox.take(), alice.id());
    assert_eq!(bob_sees, Some(vec![1, 2]));
    assert!(alice
        .inbox
        .take()
        .iter()
        .any(|m| matches!(m, Body::KeyframeRequest(k) if k.track_id == 1)));
    for seq in 0..5 {
        alice.media(1, MediaKind::Video, seq, seq == 0, a.world.start);
        alice.media(2, MediaKind::Audio, seq, false, a.world.start);
    }
    let crossed = pump(&[&a, &b]);
    assert_eq!(
        crossed, 10,
        "each packet crosses once, not once per remote subscriber"
    );
    let want: Vec<_> = (0..5)
        .flat_map(|s| [(alice.id(), 1, s), (alice.id(), 2, s)])
        .collect();
    assert_eq!(bob.inbox.take_media(), want);
    assert_eq!(carol.inbox.take_media(), want);
}

#[test]
fn only_remote_subscribers_draw_media_across() {
    let a = Node::new("a", 1);
    let b = Node::new("b", 2);
    let alice = a.join("alice");
    alice.announce(&[(1, MediaKind::Audio)], a.world.start);
    let watcher = b
        .world
        .try_join(
            "publisher-only",
            "m",
            Grants {
                publish: true,
                subscribe: false,
                admin: false,
                role: None,
            },
        )
        .expect("admitted");
    pump(&[&a, &b]);
    alice.media(1, MediaKind::Audio, 0, false, a.world.start);
    assert_eq!(
        pump(&[&a, &b]),
        0,
        "nobody on B subscribes: nothing crosses"
    );

    let bob = b.join("bob");
    pump(&[&a, &b]);
    alice.media(1, MediaKind::Audio, 1, false, a.world.start);
    assert_eq!(pump(&[&a, &b]), 1);
    assert_eq!(bob.inbox.take_media(), vec![(alice.id(), 1, 1)]);

    // The last remote subscriber leaves: media stops crossing.
    bob.session.me.close(crate::reason::CloseReason::left());
    bob.session.finish();
    pump(&[&a, &b]);
    alice.media(1, MediaKind::Audio, 2, false, a.world.start);
    assert_eq!(pump(&[&a, &b]), 0);
    assert!(left(&alice.inbox.take()).contains(&(bob.id(), LeaveReason::Left as i32)));
    drop(watcher);
}

#[test]
fn keyframe_requests_from_another_relay_are_coalesced_at_the_publishers_relay() {
    let a = Node::new("a", 1);
    let b = Node::new("b", 2);
    let c = Node::new("c", 3);
    let alice = a.join("alice");
    alice.announce(&[(1, MediaKind::Video)], a.world.start);
    pump(&[&a, &b, &c]);
    alice.inbox.take();
    // Late joiners on two other relays: both wait for a keyframe of alice's track.
    let bob = b.join("bob");
    let carol = c.join("carol");
    pump(&[&a, &b, &c]);
    let requests = alice
        .inbox
        .take()
        .iter()
        .filter(|m| matches!(m, Body::KeyframeRequest(k) if k.track_id == 1 && k.participant_id == alice.id()))
        .count();
    assert_eq!(
        requests, 1,
        "two relays asked, alice is asked once per interval"
    );
    // Deltas do not reach them before the keyframe; the keyframe does.
    alice.media(1, MediaKind::Video, 0, false, a.world.start);
    alice.media(1, MediaKind::Video, 1, true, a.world.start);
    alice.media(1, MediaKind::Video, 2, false, a.world.start);
    pump(&[&a, &b, &c]);
    assert_eq!(
        bob.inbox.take_media(),
        vec![(alice.id(), 1, 1), (alice.id(), 1, 2)]
    );
    assert_eq!(
        carol.inbox.take_media(),
        vec![(alice.id(), 1, 1), (alice.id(), 1, 2)]
    );
}

#[test]
fn chat_removal_and_the_meetings_end_cross_relays() {
    let a = Node::new("a", 1);
    let b = Node::new("b", 2);
    let admin = a
        .world
        .try_join(
            "admin",
            "m",
            Grants {
                publish: true,
                subscribe: true,
                admin: true,
                role: None,
            },
        )
        .expect("admitted");
    let bob = b.join("bob");
    let carol = b.join("carol");
    pump(&[&a, &b]);
    for p in [&admin, &bob, &carol] {
        p.inbox.take();
    }

    bob.send(
        Body::Data(wire::DataMessage {
            text: "hello all".into(),
            ..Default::default()
        }),
        b.world.start,
    );
    admin.send(
        Body::Data(wire::DataMessage {
            text: "just carol".into(),
            to: vec![carol.id()],
            ..Default::default()
        }),
        a.world.start,
    );
    pump(&[&a, &b]);
    let texts = |j: &Joined| -> Vec<(u64, String)> {
        j.inbox
            .take()
            .into_iter()
            .filter_map(|m| match m {
                Body::Data(d) => Some((d.from_participant_id, d.text)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(texts(&admin), vec![(bob.id(), "hello all".to_string())]);
    assert_eq!(
        texts(&carol),
        vec![
            (bob.id(), "hello all".to_string()),
            (admin.id(), "just carol".to_string())
        ]
    );
    assert_eq!(
        texts(&bob),
        Vec::<(u64, String)>::new(),
        "nobody hears their own broadcast, bob is not addressed"
    );

    // An admin on A removes bob, hosted by B.
    admin.send(
        Body::RemoveParticipant(wire::RemoveParticipant {
            participant_id: bob.id(),
            reason: "off topic".into(),
            ban: false,
        }),
        a.world.start,
    );
    pump(&[&a, &b]);
    assert!(bob.inbox.closed.load(Ordering::Relaxed), "B closed bob");
    let reason = bob.session.finish();
    assert_eq!(reason.leave, LeaveReason::Kicked);
    pump(&[&a, &b]);
    assert!(left(&admin.inbox.take()).contains(&(bob.id(), LeaveReason::Kicked as i32)));

    // The control plane tells A the meeting ended; B ends it too.
    a.world
        .relay
        .end_meetings([("m".to_string(), 1u64 << 40)].into_iter().collect());
    pump(&[&a, &b]);
    assert!(carol.inbox.closed.load(Ordering::Relaxed));
    assert_eq!(carol.session.finish().leave, LeaveReason::MeetingEnded);
    assert!(
        b.world.try_join("dave", "m", Grants::default()).is_err(),
        "B refuses tokens issued before the end"
    );
}

#[test]
fn a_silent_relay_takes_its_participants_with_it_but_not_while_this_relay_is_deaf() {
    let a = Node::new("a", 1);
    let b = Node::new("b", 2);
    let alice = a.join("alice");
    let bob = b.join("bob");
    pump(&[&a, &b]);
    alice.inbox.take();
    let timeout = a.world.relay.config.timing.mesh_presence_timeout_ms;

    // A cannot hear the bus: B is not judged.
    tick(&a.world.relay, a.world.start.later(timeout * 2), false);
    assert!(left(&alice.inbox.take()).is_empty());
    // B beats presence: it is alive.
    tick(&b.world.relay, b.world.start, true);
    pump_at(&[&a, &b], timeout * 2);
    tick(
        &a.world.relay,
        a.world.start.later(timeout * 2 + timeout / 2),
        true,
    );
    assert!(
        left(&alice.inbox.take()).is_empty(),
        "B was heard within the timeout"
    );
    // Then B goes silent (killed): its participants leave, as timed out.
    tick(&a.world.relay, a.world.start.later(timeout * 4), true);
    assert_eq!(
        left(&alice.inbox.take()),
        vec![(bob.id(), LeaveReason::Timeout as i32)]
    );
    assert!(a
        .world
        .relay
        .meetings
        .get("m")
        .is_some_and(|m| m.remote_relays().is_empty()));
}

#[test]
fn presence_repairs_a_roster_that_lost_events() {
    let a = Node::new("a", 1);
    let b = Node::new("b", 2);
    let alice = a.join("alice");
    pump(&[&a, &b]);
    let bob = b.join("bob");
    // B's events of bob are lost (a full queue, a NATS restart).
    b.wire.events.lock().unwrap().clear();
    pump(&[&a, &b]);
    assert!(joined_ids(&alice.inbox.take()).is_empty());
    // B's next presence names bob: A asks for B's roster and learns of him.
    tick(&b.world.relay, b.world.start, true);
    pump(&[&a, &b]);
    assert_eq!(joined_ids(&alice.inbox.take()), vec![bob.id()]);
    // Bob's leave is lost too: the presence after it no longer names him.
    bob.session.me.close(crate::reason::CloseReason::left());
    b.wire.events.lock().unwrap().clear();
    let carol = b.join("carol");
    bob.session.finish();
    b.wire.events.lock().unwrap().clear();
    tick(&b.world.relay, b.world.start.later(10), true);
    pump(&[&a, &b]);
    let told = alice.inbox.take();
    assert_eq!(
        left(&told),
        vec![(bob.id(), LeaveReason::Disconnected as i32)]
    );
    assert!(
        joined_ids(&told).contains(&carol.id()) || {
            // The roster may arrive in the next round of asking.
            tick(&b.world.relay, b.world.start.later(5_000), true);
            tick(&a.world.relay, a.world.start.later(5_000), true);
            pump(&[&a, &b]);
            joined_ids(&alice.inbox.take()).contains(&carol.id())
        }
    );
}

#[test]
fn bad_media_from_the_bus_is_dropped_and_counted_and_a_full_bus_queue_too() {
    let a = Node::new("a", 1);
    let b = Node::new("b", 2);
    let alice = a.join("alice");
    alice.announce(&[(1, MediaKind::Video)], a.world.start);
    let bob = b.join("bob");
    pump(&[&a, &b]);
    let frame = Bytes::from_static(&[0, 0, 0, 1, 8]);
    let relay = &b.world.relay;
    assert_eq!(
        on_media(relay, "m", 12345, 1, true, &frame, b.world.start),
        RemoteMedia::Dropped(DropReason::UnknownPublisher)
    );
    assert_eq!(
        on_media(relay, "m", bob.id(), 1, true, &frame, b.world.start),
        RemoteMedia::Dropped(DropReason::UnknownPublisher),
        "a local participant's media never comes from the bus"
    );
    assert_eq!(
        on_media(relay, "m", alice.id(), 9, true, &frame, b.world.start),
        RemoteMedia::Dropped(DropReason::UnannouncedTrack)
    );
    assert_eq!(
        on_media(relay, "other", alice.id(), 1, true, &frame, b.world.start),
        RemoteMedia::Dropped(DropReason::UnknownPublisher)
    );
    assert_eq!(b.world.drops(DropReason::UnknownPublisher), 3.0);

    // A full queue to the bus drops (and counts) video, which then waits for a keyframe.
    a.wire.media_room.store(1, Ordering::Relaxed);
    alice.media(1, MediaKind::Video, 0, true, a.world.start);
    alice.media(1, MediaKind::Video, 1, false, a.world.start);
    a.wire.media_room.store(usize::MAX, Ordering::Relaxed);
    alice.media(1, MediaKind::Video, 2, false, a.world.start);
    alice.media(1, MediaKind::Video, 3, true, a.world.start);
    pump(&[&a, &b]);
    assert_eq!(a.world.drops(DropReason::BusQueueFull), 1.0);
    assert_eq!(
        bob.inbox.take_media(),
        vec![(alice.id(), 1, 0), (alice.id(), 1, 3)]
    );

    // Events from itself, or from nobody, are ignored.
    let ghost = MeshEvent {
        origin: "b".into(),
        body: Some(mesh_event::Body::Hello(Default::default())),
    };
    on_event(relay, "m", ghost, b.world.start);
    on_event(
        relay,
        "m",
        MeshEvent {
            origin: String::new(),
            body: None,
        },
        b.world.start,
    );
    assert!(b.events().is_empty());
}

/// Found by the `session` fuzz target: media from the bus was handed to subscribers as it
/// came, so a broken or foreign relay could send them bytes that are not an envelope, a
/// length prefix that desynchronises their stream, or media in another publisher's name.
#[test]
fn media_and_deliveries_from_the_bus_reach_nobody_unless_they_are_what_they_claim() {
    use videocall_protocol::encode_length_prefixed;
    use videocall_protocol::envelope::envelope;

    let a = Node::new("a", 1);
    let b = Node::new("b", 2);
    let alice = a.join("alice");
    let eve = a.join("eve");
    alice.announce(&[(1, MediaKind::Video)], a.world.start);
    let bob = b.join("bob");
    pump(&[&a, &b]);
    bob.inbox.take();
    let relay = &b.world.relay;
    let media_of = |publisher: u64, track: u32| {
        encode_length_prefixed(&envelope(Body::Media(wire::Media {
            participant_id: publisher,
            track_id: track,
            kind: MediaKind::Video as i32,
            keyframe: true,
            payload: Bytes::from_static(b"frame"),
            ..Default::default()
        })))
    };
    let good = media_of(alice.id(), 1);
    let mut bad_prefix = good.to_vec();
    bad_prefix[3] = bad_prefix[3].wrapping_add(1);
    for frame in [
        Bytes::from_static(&[0, 0, 0, 1, 8]),
        Bytes::from_static(&[0, 0]),
        Bytes::from(bad_prefix),
        media_of(eve.id(), 1),
        media_of(alice.id(), 2),
        encode_length_prefixed(&envelope(Body::Ping(wire::Ping::default()))),
    ] {
        assert_eq!(
            on_media(relay, "m", alice.id(), 1, true, &frame, b.world.start),
            RemoteMedia::Dropped(DropReason::MalformedRemote),
            "{frame:?}"
        );
    }
    assert!(bob.inbox.take_media().is_empty());
    assert_eq!(b.world.drops(DropReason::MalformedRemote), 6.0);
    assert_eq!(
        on_media(relay, "m", alice.id(), 1, true, &good, b.world.start),
        RemoteMedia::Forwarded
    );
    assert_eq!(bob.inbox.take_media(), vec![(alice.id(), 1, 0)]);

    // A delivery whose length prefix is not its length never reaches bob's stream.
    let mut chat = encode_length_prefixed(&envelope(Body::Data(wire::DataMessage {
        text: "hi".into(),
        ..Default::default()
    })))
    .to_vec();
    chat[3] = chat[3].wrapping_add(5);
    let deliver = |frame: Vec<u8>| MeshEvent {
        origin: "a".into(),
        body: Some(mesh_event::Body::Deliver(
            videocall_protocol::mesh::Deliver {
                participant_id: bob.id(),
                frame: frame.into(),
            },
        )),
    };
    on_event(relay, "m", deliver(chat.clone()), b.world.start);
    assert!(bob.inbox.take().is_empty());
    chat[3] = chat[3].wrapping_sub(5);
    on_event(relay, "m", deliver(chat), b.world.start);
    assert!(matches!(&bob.inbox.take()[..], [Body::Data(d)] if d.text == "hi"));
}

/// Puts what each node queued for the bus's log in order, as the log would (conditional on
/// the last commit), and hands the outcome to the nodes: taken ones to every node, refusals
/// to the node that sent them.
fn order_handshakes(nodes: &[&Node], log: &mut videocall_bus::MemoryLog) {
    for from in nodes {
        let queued = std::mem::take(&mut *from.wire.handshakes.lock().unwrap());
        for (meeting, handshake) in queued {
            let kind = wire::HandshakeKind::try_from(handshake.kind).unwrap();
            let (subject, expect) = match kind {
                wire::HandshakeKind::KeyPackage => ("k", None),
                _ => ("c", Some(handshake.after)),
            };
            match log.append(subject, expect, Bytes::new()) {
                videocall_bus::Appended::At(sequence) => {
                    for to in nodes {
                        deliver_handshake(&to.world.relay, &meeting, sequence, handshake.clone());
                    }
                }
                videocall_bus::Appended::Conflict { last } => handshake_refused(
                    &from.world.relay,
                    &meeting,
                    handshake.from_participant_id,
                    &handshake,
                    last,
                    "another commit follows that one already",
                ),
            }
        }
    }
}

#[test]
fn handshakes_go_through_the_shared_order_and_reach_every_relays_participants() {
    use wire::HandshakeKind::{Commit, KeyPackage};
    let a = Node::new("a", 1);
    let b = Node::new("b", 2);
    let alice = a.join_encrypted("alice");
    let bob = b.join_encrypted("bob");
    pump(&[&a, &b]);
    alice.inbox.take();
    bob.inbox.take();
    let now = a.world.start;
    let send = |who: &Joined, kind: wire::HandshakeKind, after: u64, message: &[u8]| {
        who.send(
            Body::Handshake(wire::Handshake {
                kind: kind as i32,
                after,
                message: Bytes::copy_from_slice(message),
                ..Default::default()
            }),
            now,
        )
    };
    send(&bob, KeyPackage, 0, b"bob");
    // Two commits built on nothing, one on each relay, at once: the first wins.
    send(&alice, Commit, 0, b"alice's");
    send(&bob, Commit, 0, b"bob's");
    assert!(
        alice.inbox.take().is_empty(),
        "nothing is delivered before the order takes it"
    );
    let mut log = videocall_bus::MemoryLog::new();
    order_handshakes(&[&a, &b], &mut log);
    let order = |bodies: Vec<Body>| -> Vec<(u64, u64, Bytes)> {
        bodies
            .into_iter()
            .filter_map(|b| match b {
                Body::Handshake(h) => Some((h.sequence, h.from_participant_id, h.message)),
                _ => None,
            })
            .collect()
    };
    // Relay a's queue reaches the log first.
    let expected = vec![
        (1, alice.id(), Bytes::from_static(b"alice's")),
        (2, bob.id(), Bytes::from_static(b"bob")),
    ];
    assert_eq!(order(alice.inbox.take()), expected);
    let to_bob = bob.inbox.take();
    let refused: Vec<u64> = to_bob
        .iter()
        .filter_map(|b| match b {
            Body::HandshakeRefused(r) => Some(r.head),
            _ => None,
        })
        .collect();
    assert_eq!(order(to_bob), expected);
    assert_eq!(refused, vec![1], "the loser learns which commit won");
    assert_eq!(b.world.relay.metrics.handshakes("commit", "refused"), 1);
    // A refusal for a participant of another relay is not this relay's to tell.
    handshake_refused(
        &a.world.relay,
        "m",
        bob.id(),
        &wire::Handshake::default(),
        1,
        "test",
    );
    assert!(bob.inbox.take().is_empty() && alice.inbox.take().is_empty());
}

#[test]
fn a_relay_follows_a_meeting_s_handshake_log_once_an_encrypted_participant_joins() {
    let a = Node::new("a", 1);
    let _alice = a.join("alice");
    assert!(
        a.wire.followed.lock().unwrap().is_empty(),
        "a clear meeting needs no log"
    );
    let _bob = a.join_encrypted("bob");
    let _carol = a.join_encrypted("carol");
    assert_eq!(*a.wire.followed.lock().unwrap(), vec!["m".to_owned()]);
}

/// The layers of the media that crossed from `node`, taken from its wire (not carried).
fn layers_on_wire(node: &Node) -> Vec<u32> {
    std::mem::take(&mut *node.wire.media.lock().unwrap())
        .into_iter()
        .filter_map(|m| {
            match videocall_protocol::decode_envelope(crate::core::unprefixed(&m.frame), 1 << 20)
                .ok()?
                .body?
            {
                Body::Media(media) => Some(media.layer),
                _ => None,
            }
        })
        .collect()
}

/// The layer lists of the `LayerDemand`s a publisher was sent, taken.
fn demands(publisher: &Joined) -> Vec<Vec<u32>> {
    publisher
        .inbox
        .take()
        .into_iter()
        .filter_map(|b| match b {
            Body::LayerDemand(d) => Some(d.layers),
            _ => None,
        })
        .collect()
}

#[test]
fn the_bus_carries_only_the_layers_another_relays_subscribers_get() {
    use super::layers::{announce_layers, frames, layers_got, three_layers, view};
    let a = Node::new("a", 1);
    let b = Node::new("b", 2);
    let now = a.world.start;
    let alice = a.join("alice");
    let bob = b.join("bob");
    pump(&[&a, &b]);
    // Bob (on B) shows alice's track small before it exists.
    view(&bob, alice.id(), 320, 180, now);
    announce_layers(&alice, three_layers(), now);
    pump(&[&a, &b]);
    // B said which layer its subscriber gets; alice (nobody on A watches) hears it.
    assert_eq!(demands(&alice).last(), Some(&vec![0]));
    frames(&alice, 1, true, now);
    frames(&alice, 2, false, now);
    assert_eq!(layers_on_wire(&a), vec![0, 0], "only layer 0 crosses");

    // Bob enlarges the tile: layer 2 crosses (from its keyframe on), and once he moved,
    // layer 0 no longer does.
    frames(&alice, 1, true, now);
    pump(&[&a, &b]);
    bob.inbox.take_media();
    view(&bob, alice.id(), 1280, 720, now);
    pump(&[&a, &b]);
    assert_eq!(demands(&alice).last(), Some(&vec![0, 2]));
    frames(&alice, 3, false, now);
    frames(&alice, 4, true, now);
    assert_eq!(layers_on_wire(&a), vec![0, 2, 0, 2]);
    // B carries on (the wire was taken: hand B the keyframe round again).
    frames(&alice, 5, true, now);
    pump(&[&a, &b]);
    assert_eq!(layers_got(&bob).last(), Some(&2));
    assert_eq!(demands(&alice).last(), Some(&vec![2]));
    frames(&alice, 6, false, now);
    assert_eq!(layers_on_wire(&a), vec![2]);

    // Another relay joins; its subscriber never said how it shows the track (the largest).
    let c = Node::new("c", 3);
    let carol = c.join("carol");
    pump(&[&a, &b, &c]);
    frames(&alice, 7, false, now);
    assert_eq!(layers_on_wire(&a), vec![2]);
    // Carol shows it small: both relays' layers cross; hidden: only B's again.
    view(&carol, alice.id(), 320, 180, now);
    pump(&[&a, &b, &c]);
    frames(&alice, 8, false, now);
    assert_eq!(layers_on_wire(&a), vec![0, 2]);
    view(&carol, alice.id(), 0, 0, now);
    pump(&[&a, &b, &c]);
    frames(&alice, 9, false, now);
    assert_eq!(layers_on_wire(&a), vec![2]);
}

#[test]
fn a_host_on_one_relay_mutes_locks_and_bans_across_the_meeting() {
    use videocall_protocol::wire::{
        host_action::Action, HostAction, LockMeeting, MuteAll, MuteParticipant, RemoveParticipant,
    };
    let a = Node::new("a", 1);
    let b = Node::new("b", 2);
    let host = a
        .world
        .try_join(
            "host",
            "m",
            Grants {
                role: Some(videocall_token::Role::Host),
                ..Grants::default()
            },
        )
        .expect("host");
    pump(&[&a, &b]);
    let bob = b.join("bob");
    let carol = b.join("carol");
    pump(&[&a, &b]);
    bob.announce(&[(2, MediaKind::Audio)], b.world.start);
    pump(&[&a, &b]);
    let act = |action: Action| {
        host.send(
            Body::HostAction(HostAction {
                action: Some(action),
            }),
            a.world.start,
        );
        pump(&[&a, &b]);
    };

    // Bob's microphone, muted from A, is held back at B: neither carol (on B) nor the host
    // (on A) hears it.
    act(Action::Mute(MuteParticipant {
        participant_id: bob.id(),
        kind: MediaKind::Audio as i32,
        disallow_unmute: true,
    }));
    assert!(bob.session.me.held_by_host(MediaKind::Audio));
    assert!(bob
        .inbox
        .take()
        .iter()
        .any(|m| matches!(m, Body::HostNotice(n) if n.by_participant_id == host.id())));
    host.inbox.take_media();
    carol.inbox.take_media();
    bob.media(2, MediaKind::Audio, 1, false, b.world.start);
    assert_eq!(pump(&[&a, &b]), 0, "nothing crosses the bus");
    assert!(carol.inbox.take_media().is_empty());
    assert!(host.inbox.take_media().is_empty());
    // The host sees it muted and locked (B said so over the bus).
    let seen = host.inbox.take();
    assert!(
        seen.iter().any(|m| matches!(m, Body::ParticipantUpdated(u)
            if u.participant.as_ref().is_some_and(|p| p.id == bob.id() && p.audio_muted && p.audio_locked))),
        "{seen:?}"
    );

    // Mute all reaches B's participants.
    act(Action::MuteAll(MuteAll {
        disallow_unmute: false,
    }));
    assert!(carol.session.me.held_by_host(MediaKind::Audio));

    // A lock made on A keeps newcomers out of B too; a relay new to the meeting learns it.
    act(Action::Lock(LockMeeting { locked: true }));
    let refused = b
        .world
        .try_join("mallory", "m", Grants::default())
        .err()
        .expect("locked");
    assert_eq!(refused.code, wire::ErrorCode::MeetingLocked);
    let c = Node::new("c", 3);
    let dave = c.join("dave");
    pump(&[&a, &b, &c]);
    assert!(c.world.relay.is_locked("m"), "the roster brought the rules");
    drop(dave);

    // A ban on A holds on B.
    act(Action::Remove(RemoveParticipant {
        participant_id: carol.id(),
        reason: String::new(),
        ban: true,
    }));
    assert_eq!(carol.session.finish().leave, LeaveReason::Kicked);
    let refused = b
        .world
        .try_join("carol", "m", Grants::default())
        .err()
        .expect("banned");
    assert_eq!(refused.code, wire::ErrorCode::Forbidden);
}
