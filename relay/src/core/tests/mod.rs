//! The core without sockets: a fake outlet records what each participant would be sent,
//! and time is whatever the test says it is.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use videocall_protocol::decode_envelope;
use videocall_protocol::envelope::{encode_envelope, envelope};
use videocall_protocol::wire::{
    self, envelope::Body, Codec, ErrorCode, LeaveReason, Media, MediaKind, Track, UpdateState,
};
use videocall_token::{Claims, Grants, TokenIssuer, TokenVerifier};

use super::*;
use crate::config::RelayConfig;
use crate::ids::TransportKind;
use crate::metrics::Metrics;
use crate::reason::{DropReason, Refusal};

mod hosts;
mod layers;
mod mesh;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: RelayConfig,
}

/// What one participant was sent.
#[derive(Default)]
struct Inbox {
    control: Mutex<Vec<Bytes>>,
    media: Mutex<Vec<Outgoing>>,
    closed: AtomicBool,
    /// Media packets each sink accepts before answering `Full` (`usize::MAX`: no limit).
    media_room: AtomicUsize,
    control_room: AtomicUsize,
}

impl Inbox {
    fn new() -> Arc<Self> {
        let inbox = Inbox::default();
        inbox.media_room.store(usize::MAX, Ordering::Relaxed);
        inbox.control_room.store(usize::MAX, Ordering::Relaxed);
        Arc::new(inbox)
    }

    /// Control messages received so far, taken.
    fn take(&self) -> Vec<Body> {
        std::mem::take(&mut *self.control.lock().unwrap())
            .into_iter()
            .filter_map(|f| decode_envelope(unprefixed(&f), 1 << 20).ok()?.body)
            .collect()
    }

    /// Media received so far, taken, as (publisher, track, sequence).
    fn take_media(&self) -> Vec<(u64, u32, u64)> {
        std::mem::take(&mut *self.media.lock().unwrap())
            .into_iter()
            .filter_map(
                |o| match decode_envelope(o.unprefixed(), 1 << 20).ok()?.body? {
                    Body::Media(m) => Some((m.participant_id, m.track_id, m.sequence)),
                    _ => None,
                },
            )
            .collect()
    }
}

struct FakeOutlet(Arc<Inbox>);

struct FakeSink(Arc<Inbox>);

impl MediaSink for FakeSink {
    fn offer(&self, out: Outgoing) -> Offer {
        if self.0.closed.load(Ordering::Relaxed) {
            return Offer::Closed;
        }
        let room = self.0.media_room.load(Ordering::Relaxed);
        if room == 0 {
            return Offer::Full;
        }
        if room != usize::MAX {
            self.0.media_room.store(room - 1, Ordering::Relaxed);
        }
        self.0.media.lock().unwrap().push(out);
        Offer::Accepted { depth: 0 }
    }
}

impl Outlet for FakeOutlet {
    fn send_control(&self, frame: Bytes) -> Result<(), ControlQueueFull> {
        let room = self.0.control_room.load(Ordering::Relaxed);
        if room == 0 {
            return Err(ControlQueueFull);
        }
        if room != usize::MAX {
            self.0.control_room.store(room - 1, Ordering::Relaxed);
        }
        self.0.control.lock().unwrap().push(frame);
        Ok(())
    }

    fn media_sink(&self, _audio: bool) -> Box<dyn MediaSink> {
        Box::new(FakeSink(self.0.clone()))
    }

    fn close(&self) {
        self.0.closed.store(true, Ordering::Relaxed);
    }
}

struct World {
    relay: Arc<Relay>,
    issuer: TokenIssuer,
    start: Now,
}

struct Joined {
    session: Session,
    inbox: Arc<Inbox>,
}

impl Joined {
    fn id(&self) -> u64 {
        self.session.me.id
    }

    fn send(&self, body: Body, now: Now) {
        self.session
            .handle_frame(encode_envelope(&envelope(body)), now);
    }

    fn announce(&self, tracks: &[(u32, MediaKind)], now: Now) {
        self.send(
            Body::UpdateState(UpdateState {
                tracks: tracks
                    .iter()
                    .map(|&(id, kind)| Track {
                        id,
                        kind: kind as i32,
                        codec: Codec::Vp8 as i32,
                        layers: Vec::new(),
                    })
                    .collect(),
                announce_tracks: true,
                ..Default::default()
            }),
            now,
        );
    }

    fn media(&self, track: u32, kind: MediaKind, sequence: u64, keyframe: bool, now: Now) {
        self.send(
            Body::Media(Media {
                track_id: track,
                kind: kind as i32,
                codec: Codec::Vp8 as i32,
                sequence,
                keyframe,
                payload: Bytes::from(vec![7u8; 100]),
                ..Default::default()
            }),
            now,
        );
    }
}

impl World {
    fn new(args: &[&str]) -> World {
        Self::with_mesh(args, Arc::new(NoMesh))
    }

    fn with_mesh(args: &[&str], mesh: Arc<dyn Mesh>) -> World {
        let config = Cli::parse_from(std::iter::once("relay").chain(args.iter().copied())).config;
        let issuer = TokenIssuer::generate("k");
        let mut verifier = TokenVerifier::new();
        verifier
            .add_key_base64("k", &issuer.public_key_base64())
            .expect("key");
        let start = Now::system();
        let metrics = Metrics::new("test").expect("metrics");
        World {
            relay: Arc::new(Relay::new(config, verifier, metrics, mesh, start)),
            issuer,
            start,
        }
    }

    fn token(&self, user: &str, meeting: &str, grants: Grants) -> String {
        self.token_of(user, meeting, grants, false)
    }

    fn token_of(&self, user: &str, meeting: &str, grants: Grants, e2ee: bool) -> String {
        let mut claims = Claims::new(user, user, meeting, grants, Duration::from_secs(600));
        claims.e2ee = e2ee;
        self.issuer.issue(&claims).expect("token")
    }

    fn join_frame(&self, token: &str, meeting: &str) -> Bytes {
        encode_envelope(&envelope(Body::Join(wire::Join {
            token: token.into(),
            meeting_id: meeting.into(),
            client: "test".into(),
        })))
    }

    fn try_join(&self, user: &str, meeting: &str, grants: Grants) -> Result<Joined, Refusal> {
        self.try_join_as(user, meeting, grants, false)
    }

    fn try_join_as(
        &self,
        user: &str,
        meeting: &str,
        grants: Grants,
        e2ee: bool,
    ) -> Result<Joined, Refusal> {
        let inbox = Inbox::new();
        let frame = self.join_frame(&self.token_of(user, meeting, grants, e2ee), meeting);
        let session = admit(
            &self.relay,
            frame,
            TransportKind::WebSocket,
            Box::new(FakeOutlet(inbox.clone())),
            self.start,
        )?;
        Ok(Joined { session, inbox })
    }

    fn join(&self, user: &str, meeting: &str) -> Joined {
        self.try_join(user, meeting, Grants::default())
            .expect("admitted")
    }

    /// Joins with a token of an end-to-end encrypted meeting.
    fn join_encrypted(&self, user: &str, meeting: &str) -> Joined {
        self.try_join_as(user, meeting, Grants::default(), true)
            .expect("admitted")
    }

    fn drops(&self, reason: DropReason) -> f64 {
        videocall_testkit::metric_value(
            &self.relay.metrics.render(),
            &format!(
                "videocall_relay_drops_total{{reason=\"{}\"}}",
                reason.label()
            ),
        )
    }
}

fn tracks_of(bodies: &[Body], id: u64) -> Option<Vec<u32>> {
    bodies.iter().rev().find_map(|b| match b {
        Body::ParticipantUpdated(u) => u
            .participant
            .as_ref()
            .filter(|p| p.id == id)
            .map(|p| p.tracks.iter().map(|t| t.id).collect()),
        _ => None,
    })
}

#[test]
fn a_join_is_welcomed_and_announced_and_a_leave_is_told() {
    let world = World::new(&[]);
    let alice = world.join("alice", "m");
    let bob = world.join("bob", "m");
    let welcome = bob.inbox.take();
    assert!(
        matches!(&welcome[0], Body::Joined(j) if j.participants.len() == 1 && j.participants[0].id == alice.id()),
        "{welcome:?}"
    );
    let told = alice.inbox.take();
    assert!(told.iter().any(|b| matches!(b, Body::ParticipantJoined(p) if p.participant.as_ref().map(|p| p.id) == Some(bob.id()))));
    bob.send(Body::Leave(wire::Leave::default()), world.start);
    assert!(
        bob.inbox.closed.load(Ordering::Relaxed),
        "leaving closes the outlet"
    );
    assert_eq!(bob.session.finish().leave, LeaveReason::Left);
    let left = alice.inbox.take();
    assert!(left.iter().any(|b| matches!(b, Body::ParticipantLeft(l) if l.participant_id == bob.id() && l.reason == LeaveReason::Left as i32)));
    assert_eq!(world.relay.meetings.count(), 1);
    alice.session.finish();
    assert_eq!(
        world.relay.meetings.count(),
        0,
        "an empty meeting is dropped"
    );
}

#[test]
fn media_flows_only_on_announced_tracks() {
    let world = World::new(&[]);
    let alice = world.join("alice", "m");
    let bob = world.join("bob", "m");
    let now = world.start;
    // Not announced: dropped and counted; alice is told once.
    alice.media(1, MediaKind::Audio, 0, false, now);
    alice.media(1, MediaKind::Audio, 1, false, now);
    assert!(bob.inbox.take_media().is_empty());
    assert_eq!(world.drops(DropReason::UnannouncedTrack), 2.0);
    let errors: Vec<_> = alice
        .inbox
        .take()
        .into_iter()
        .filter(
            |b| matches!(b, Body::Error(e) if !e.fatal && e.code == ErrorCode::Malformed as i32),
        )
        .collect();
    assert_eq!(errors.len(), 1, "told once: {errors:?}");

    alice.announce(&[(1, MediaKind::Audio)], now);
    assert_eq!(tracks_of(&bob.inbox.take(), alice.id()), Some(vec![1]));
    alice.media(1, MediaKind::Audio, 2, false, now);
    assert_eq!(bob.inbox.take_media(), vec![(alice.id(), 1, 2)]);
    assert!(
        alice.inbox.take_media().is_empty(),
        "never back to the publisher"
    );
}

#[test]
fn media_still_in_flight_after_its_track_was_removed_is_dropped_and_never_revives_it() {
    let world = World::new(&[]);
    let presenter = world.join("presenter", "m");
    let viewer = world.join("viewer", "m");
    let now = world.start;
    presenter.announce(&[(1, MediaKind::Video), (3, MediaKind::Screen)], now);
    assert_eq!(
        tracks_of(&viewer.inbox.take(), presenter.id()),
        Some(vec![1, 3])
    );
    // The share stops; a packet of track 3 was still on its way on another stream.
    presenter.announce(&[(1, MediaKind::Video)], now);
    presenter.media(3, MediaKind::Screen, 9, true, now);
    assert_eq!(
        tracks_of(&viewer.inbox.take(), presenter.id()),
        Some(vec![1])
    );
    assert!(
        viewer.inbox.take_media().is_empty(),
        "the late packet is not forwarded"
    );
    assert!(
        viewer.inbox.take().is_empty(),
        "no update brings track 3 back"
    );
    assert_eq!(presenter.session.me.describe().tracks.len(), 1);
    assert_eq!(world.drops(DropReason::UnannouncedTrack), 1.0);
    assert!(
        presenter
            .inbox
            .take()
            .iter()
            .all(|b| !matches!(b, Body::Error(_))),
        "a removed track's late packets are not the client's mistake"
    );
    // A mute-only update leaves the tracks alone; an explicit empty list removes them all.
    presenter.send(
        Body::UpdateState(UpdateState {
            audio_muted: true,
            ..Default::default()
        }),
        now,
    );
    assert_eq!(
        tracks_of(&viewer.inbox.take(), presenter.id()),
        Some(vec![1])
    );
    presenter.announce(&[], now);
    assert_eq!(
        tracks_of(&viewer.inbox.take(), presenter.id()),
        Some(vec![])
    );
}

#[test]
fn a_late_joiner_waits_for_a_keyframe_and_the_requests_are_coalesced() {
    let world = World::new(&["--keyframe-request-interval-ms", "500"]);
    let publisher = world.join("pub", "m");
    let now = world.start;
    publisher.announce(&[(1, MediaKind::Video)], now);
    publisher.media(1, MediaKind::Video, 0, true, now);
    publisher.inbox.take();
    // Two viewers join within one interval: one keyframe request reaches the publisher.
    let late = world.join("late", "m");
    let later = world.join("later", "m");
    let requests = |bodies: Vec<Body>| {
        bodies
            .into_iter()
            .filter(|b| matches!(b, Body::KeyframeRequest(k) if k.track_id == 1))
            .count()
    };
    assert_eq!(requests(publisher.inbox.take()), 1);
    publisher.media(1, MediaKind::Video, 1, false, now.later(10));
    assert!(
        late.inbox.take_media().is_empty(),
        "a delta is useless before a keyframe"
    );
    assert_eq!(world.drops(DropReason::AwaitingKeyframe), 2.0);
    publisher.media(1, MediaKind::Video, 2, true, now.later(20));
    publisher.media(1, MediaKind::Video, 3, false, now.later(30));
    assert_eq!(late.inbox.take_media().len(), 2);
    assert_eq!(later.inbox.take_media().len(), 2);
    // A subscriber asking again within the interval is coalesced; after it, forwarded.
    late.send(
        Body::KeyframeRequest(wire::KeyframeRequest {
            participant_id: publisher.id(),
            track_id: 1,
            layer: 0,
        }),
        now.later(100),
    );
    assert_eq!(requests(publisher.inbox.take()), 0);
    late.send(
        Body::KeyframeRequest(wire::KeyframeRequest {
            participant_id: publisher.id(),
            track_id: 1,
            layer: 0,
        }),
        now.later(600),
    );
    assert_eq!(requests(publisher.inbox.take()), 1);
}

#[test]
fn a_new_video_track_asks_its_publisher_for_a_keyframe_when_someone_watches() {
    let world = World::new(&[]);
    let publisher = world.join("pub", "m");
    let now = world.start;
    publisher.announce(&[(1, MediaKind::Video)], now);
    assert!(
        !publisher
            .inbox
            .take()
            .iter()
            .any(|b| matches!(b, Body::KeyframeRequest(_))),
        "nobody watches yet"
    );
    let _viewer = world.join("viewer", "m");
    publisher.inbox.take();
    publisher.announce(
        &[(1, MediaKind::Video), (2, MediaKind::Screen)],
        now.later(1000),
    );
    let asked: Vec<_> = publisher
        .inbox
        .take()
        .into_iter()
        .filter_map(|b| match b {
            Body::KeyframeRequest(k) => Some(k.track_id),
            _ => None,
        })
        .collect();
    assert_eq!(
        asked,
        vec![2],
        "the screen share's first picture may be gone already"
    );
}

#[test]
fn a_full_subscriber_queue_drops_video_until_the_next_keyframe_and_tells_the_publisher() {
    let world = World::new(&[]);
    let publisher = world.join("pub", "m");
    let viewer = world.join("viewer", "m");
    let now = world.start;
    publisher.announce(&[(1, MediaKind::Video)], now);
    publisher.media(1, MediaKind::Video, 0, true, now);
    assert_eq!(viewer.inbox.take_media().len(), 1);
    viewer.inbox.media_room.store(0, Ordering::Relaxed);
    publisher.inbox.take();
    publisher.media(1, MediaKind::Video, 1, false, now.later(2000));
    assert_eq!(world.drops(DropReason::VideoQueueFull), 1.0);
    let told = publisher.inbox.take();
    assert!(
        told.iter().any(|b| matches!(b, Body::KeyframeRequest(_))),
        "{told:?}"
    );
    assert!(
        told.iter()
            .any(|b| matches!(b, Body::Congestion(c) if c.track_id == 1 && c.dropped_packets == 1)),
        "{told:?}"
    );
    // Room again, but deltas wait for the keyframe that starts a decodable picture.
    viewer.inbox.media_room.store(usize::MAX, Ordering::Relaxed);
    publisher.media(1, MediaKind::Video, 2, false, now.later(2010));
    assert!(viewer.inbox.take_media().is_empty());
    publisher.media(1, MediaKind::Video, 3, true, now.later(2020));
    assert_eq!(viewer.inbox.take_media(), vec![(publisher.id(), 1, 3)]);
}

#[test]
fn a_participant_that_stops_reading_control_messages_is_closed_as_a_slow_consumer() {
    let world = World::new(&[]);
    let reader = world.join("reader", "m");
    let stuck = world.join("stuck", "m");
    stuck.inbox.control_room.store(0, Ordering::Relaxed);
    reader.send(
        Body::Data(wire::DataMessage {
            topic: "chat".into(),
            text: "hello".into(),
            ..Default::default()
        }),
        world.start,
    );
    assert!(stuck.inbox.closed.load(Ordering::Relaxed));
    assert_eq!(
        stuck.session.finish().error.map(|(code, _)| code),
        Some(ErrorCode::SlowConsumer)
    );
}

#[test]
fn admission_refuses_with_the_reason_and_admits_no_one() {
    let world = World::new(&["--max-participants-per-meeting", "2", "--join-burst", "100"]);
    let _a = world.join("a", "m");
    let _b = world.join("b", "m");
    let full = world
        .try_join("c", "m", Grants::default())
        .err()
        .map(|r| r.code);
    assert_eq!(full, Some(ErrorCode::MeetingFull));
    let nothing = Grants {
        publish: false,
        subscribe: false,
        admin: false,
        role: None,
    };
    let refused = world.try_join("d", "n", nothing).err().map(|r| r.code);
    assert_eq!(refused, Some(ErrorCode::Forbidden));
    assert_eq!(
        world.relay.meetings.count(),
        1,
        "a refused first join leaves no meeting"
    );
    let wrong = admit(
        &world.relay,
        world.join_frame(&world.token("e", "other", Grants::default()), "m"),
        TransportKind::WebSocket,
        Box::new(FakeOutlet(Inbox::new())),
        world.start,
    )
    .err()
    .map(|r| r.code);
    assert_eq!(wrong, Some(ErrorCode::TokenWrongMeeting));
    let garbage = admit(
        &world.relay,
        Bytes::from_static(b"\x08\x01garbage"),
        TransportKind::WebSocket,
        Box::new(FakeOutlet(Inbox::new())),
        world.start,
    );
    assert!(garbage.is_err());
    assert!(world.relay.start_drain());
    let draining = world
        .try_join("f", "m", Grants::default())
        .err()
        .map(|r| r.code);
    assert_eq!(draining, Some(ErrorCode::Draining));
}

#[test]
fn a_second_session_of_one_identity_replaces_the_first_within_the_seat_limit() {
    let world = World::new(&["--join-burst", "100"]);
    // The meeting's limit as the token carries it (the control plane's seats): two.
    let token = |user: &str| {
        let mut claims = Claims::new(user, user, "m", Grants::default(), Duration::from_secs(600));
        claims.max_participants = Some(2);
        world.issuer.issue(&claims).expect("token")
    };
    let join = |user: &str| {
        let inbox = Inbox::new();
        admit(
            &world.relay,
            world.join_frame(&token(user), "m"),
            TransportKind::WebSocket,
            Box::new(FakeOutlet(inbox.clone())),
            world.start,
        )
        .map(|session| Joined { session, inbox })
    };
    let first = join("a").expect("a");
    let b = join("b").expect("b");
    b.inbox.take();
    let second = join("a").expect("a again, in a's place");
    assert!(
        first.inbox.closed.load(Ordering::Relaxed),
        "the first session is closed"
    );
    let reason = first.session.me.close_reason();
    assert_eq!(reason.leave, LeaveReason::Replaced);
    assert_eq!(
        reason.error.map(|(code, _)| code),
        Some(ErrorCode::Replaced)
    );
    assert!(!second.inbox.closed.load(Ordering::Relaxed));
    // Until the first session's driver finishes it, it is still there, but holds no seat.
    assert_eq!(
        join("c").err().map(|r| r.code),
        Some(ErrorCode::MeetingFull),
        "a third identity is still one too many"
    );
    assert_eq!(first.session.finish().leave, LeaveReason::Replaced);
    let told: Vec<_> = b
        .inbox
        .take()
        .into_iter()
        .filter_map(|m| match m {
            Body::ParticipantLeft(l) => Some((l.participant_id, l.reason)),
            _ => None,
        })
        .collect();
    assert_eq!(told, [(first.id(), LeaveReason::Replaced as i32)]);
    assert_eq!(
        world
            .relay
            .meetings
            .get("m")
            .map(|m| m.local_participants().len()),
        Some(2)
    );
    assert_eq!(
        videocall_testkit::metric_value(
            &world.relay.metrics.render(),
            "videocall_relay_sessions_replaced_total"
        ),
        1.0
    );
}

#[test]
fn joins_beyond_the_rate_budget_are_refused_until_it_refills() {
    let world = World::new(&["--join-rate", "10", "--join-burst", "2"]);
    let now = world.start;
    let frame = |user: &str| world.join_frame(&world.token(user, "m", Grants::default()), "m");
    let try_at = |user: &str, at: Now| {
        admit(
            &world.relay,
            frame(user),
            TransportKind::WebSocket,
            Box::new(FakeOutlet(Inbox::new())),
            at,
        )
        .err()
        .map(|r| r.code)
    };
    assert_eq!(try_at("a", now), None);
    assert_eq!(try_at("b", now), None);
    assert_eq!(try_at("c", now), Some(ErrorCode::RateLimited));
    assert_eq!(try_at("c", now.later(150)), None);
}

#[test]
fn refused_junk_spends_none_of_the_join_budget() {
    let world = World::new(&["--join-rate", "1", "--join-burst", "2"]);
    let now = world.start;
    let junk = [
        Bytes::from_static(b"\x00\x01garbage"),
        world.join_frame("", "m"),
        world.join_frame("not.a.token", "m"),
        world.join_frame(&world.token("eve", "elsewhere", Grants::default()), "m"),
    ];
    for _ in 0..50 {
        for frame in &junk {
            let refused = admit(
                &world.relay,
                frame.clone(),
                TransportKind::WebSocket,
                Box::new(FakeOutlet(Inbox::new())),
                now,
            )
            .err()
            .map(|r| r.code);
            assert!(refused.is_some_and(|code| code != ErrorCode::RateLimited));
        }
    }
    // The whole burst is still there for real people.
    for user in ["alice", "bob"] {
        let frame = world.join_frame(&world.token(user, "m", Grants::default()), "m");
        let admitted = admit(
            &world.relay,
            frame,
            TransportKind::WebSocket,
            Box::new(FakeOutlet(Inbox::new())),
            now,
        );
        assert!(admitted.is_ok(), "{user}");
    }
}

#[test]
fn a_silent_participant_times_out_and_an_admin_may_remove_others() {
    let world = World::new(&["--peer-timeout-ms", "3000"]);
    let admin = world
        .try_join(
            "host",
            "m",
            Grants {
                publish: true,
                subscribe: true,
                admin: true,
                role: None,
            },
        )
        .expect("host");
    let guest = world.join("guest", "m");
    let quiet = world.join("quiet", "m");
    // A guest may not remove anyone; an admin may.
    guest.send(
        Body::RemoveParticipant(wire::RemoveParticipant {
            participant_id: quiet.id(),
            reason: String::new(),
            ban: false,
        }),
        world.start,
    );
    assert!(!quiet.inbox.closed.load(Ordering::Relaxed));
    admin.send(
        Body::RemoveParticipant(wire::RemoveParticipant {
            participant_id: guest.id(),
            reason: "be nice".into(),
            ban: false,
        }),
        world.start,
    );
    assert_eq!(guest.session.finish().leave, LeaveReason::Kicked);
    // Heard at the start, then silent past the timeout.
    quiet.session.tick(world.start.later(1000));
    assert!(!quiet.inbox.closed.load(Ordering::Relaxed));
    assert!(quiet
        .inbox
        .take()
        .iter()
        .any(|b| matches!(b, Body::Ping(_))));
    quiet.session.tick(world.start.later(3000));
    assert_eq!(quiet.session.finish().leave, LeaveReason::Timeout);
}

#[test]
fn bad_announcements_are_refused_and_change_nothing() {
    let world = World::new(&[]);
    let alice = world.join("alice", "m");
    let bob = world.join("bob", "m");
    let now = world.start;
    alice.announce(&[(1, MediaKind::Audio)], now);
    bob.inbox.take();
    alice.announce(&[(2, MediaKind::Video), (2, MediaKind::Audio)], now);
    alice.announce(&[(5, MediaKind::Unspecified)], now);
    let many: Vec<_> = (0..(MAX_TRACKS as u32 + 1))
        .map(|i| (i, MediaKind::Audio))
        .collect();
    alice.announce(&many, now);
    let errors = alice
        .inbox
        .take()
        .into_iter()
        .filter(|b| matches!(b, Body::Error(e) if e.code == ErrorCode::Malformed as i32))
        .count();
    assert_eq!(errors, 3);
    assert!(
        bob.inbox.take().is_empty(),
        "nobody hears of a refused announcement"
    );
    assert_eq!(alice.session.me.describe().tracks.len(), 1);
    // A subscribe-only participant may not publish.
    let watcher = world
        .try_join(
            "watcher",
            "m",
            Grants {
                publish: false,
                subscribe: true,
                admin: false,
                role: None,
            },
        )
        .expect("watcher");
    watcher.announce(&[(1, MediaKind::Video)], now);
    assert!(watcher
        .inbox
        .take()
        .iter()
        .any(|b| matches!(b, Body::Error(e) if e.code == ErrorCode::Forbidden as i32)));
    assert!(watcher.session.me.describe().tracks.is_empty());
}

#[test]
fn participant_ids_carry_the_relays_server_id_and_never_repeat_across_a_pool() {
    let ids = |server: &str| {
        let world = World::new(&[
            "--quic-server-id",
            server,
            "--join-burst",
            "1000",
            "--max-participants-per-meeting",
            "1000",
        ]);
        (0..200)
            .map(|i| world.join(&format!("u{i}"), "m").id())
            .collect::<Vec<_>>()
    };
    let (zero, three) = (ids("0"), ids("3"));
    assert!(three.iter().all(|id| id >> 48 == 3), "{:x}", three[0]);
    let all: std::collections::HashSet<_> = zero.iter().chain(three.iter()).collect();
    assert_eq!(all.len(), 400, "no id twice across two relays");
    // A restarted relay starts above where the last one was.
    let again = ids("3");
    assert!(again[0] > three[199]);
}

fn handshake(kind: wire::HandshakeKind, after: u64, message: &[u8]) -> Body {
    Body::Handshake(wire::Handshake {
        kind: kind as i32,
        after,
        message: Bytes::copy_from_slice(message),
        ..Default::default()
    })
}

fn handshakes(bodies: &[Body]) -> Vec<(i32, u64, u64, u64)> {
    bodies
        .iter()
        .filter_map(|b| match b {
            Body::Handshake(h) => Some((h.kind, h.sequence, h.after, h.from_participant_id)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_relay_on_its_own_orders_handshakes_and_refuses_the_second_commit_of_two() {
    use wire::HandshakeKind::{Commit, Found, KeyPackage};
    let world = World::new(&[]);
    let alice = world.join_encrypted("alice", "m");
    let bob = world.join_encrypted("bob", "m");
    let other = world.join_encrypted("carol", "another");
    let now = world.start;
    alice.inbox.take();
    alice.send(handshake(Found, 0, b""), now);
    bob.send(handshake(KeyPackage, 7, b"bob's key package"), now);
    alice.send(handshake(Commit, 1, b"adds bob"), now);
    // Built on the same founding as alice's: refused, naming the commit that came first.
    bob.send(handshake(Commit, 1, b"conflicting"), now);
    let expected = vec![
        (Found as i32, 1, 0, alice.id()),
        // A key package is taken whatever it says it follows.
        (KeyPackage as i32, 2, 7, bob.id()),
        (Commit as i32, 3, 1, alice.id()),
    ];
    // Everyone gets every message in one order, its sender too.
    assert_eq!(handshakes(&alice.inbox.take()), expected);
    let to_bob = bob.inbox.take();
    assert_eq!(handshakes(&to_bob), expected);
    let refusals: Vec<_> = to_bob
        .iter()
        .filter_map(|b| match b {
            Body::HandshakeRefused(r) => Some((r.kind, r.after, r.head)),
            _ => None,
        })
        .collect();
    assert_eq!(refusals, vec![(Commit as i32, 1, 3)]);
    assert!(
        handshakes(&other.inbox.take()).is_empty(),
        "another meeting hears nothing"
    );
    let metrics = &world.relay.metrics;
    assert_eq!(metrics.handshakes("commit", "taken"), 1);
    assert_eq!(metrics.handshakes("commit", "refused"), 1);
    assert_eq!(metrics.handshakes("key_package", "delivered"), 1);
}

#[test]
fn malformed_and_excess_handshakes_are_refused_and_the_session_goes_on() {
    use wire::HandshakeKind::{Commit, Found, KeyPackage, Unspecified};
    let world = World::new(&[]);
    let alice = world.join_encrypted("alice", "m");
    let bob = world.join_encrypted("bob", "m");
    let now = world.start;
    bob.inbox.take();
    alice.send(handshake(Unspecified, 0, b"x"), now);
    alice.send(handshake(Commit, 0, b""), now);
    alice.send(handshake(Found, 0, b"a founding carries nothing"), now);
    alice.send(
        Body::HandshakeRefused(wire::HandshakeRefused::default()),
        now,
    );
    let errors: Vec<i32> = alice
        .inbox
        .take()
        .iter()
        .filter_map(|b| match b {
            Body::Error(e) if !e.fatal => Some(e.code),
            _ => None,
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            ErrorCode::Malformed as i32,
            ErrorCode::Malformed as i32,
            ErrorCode::Malformed as i32,
            ErrorCode::UnknownMessage as i32
        ]
    );
    assert!(handshakes(&bob.inbox.take()).is_empty());
    // A flood of key packages: the burst passes, the rest is refused until time passes.
    for _ in 0..(handshake::HANDSHAKE_BURST + 5) {
        alice.send(handshake(KeyPackage, 0, b"kp"), now);
    }
    assert_eq!(
        handshakes(&bob.inbox.take()).len(),
        handshake::HANDSHAKE_BURST as usize
    );
    // Refused as handshakes, so the client knows they were not taken.
    let limited = alice
        .inbox
        .take()
        .iter()
        .filter(|b| matches!(b, Body::HandshakeRefused(r) if r.reason.starts_with("rate limited")))
        .count();
    assert_eq!(limited, 5);
    assert_eq!(world.relay.metrics.handshakes("key_package", "refused"), 5);
    alice.send(handshake(KeyPackage, 0, b"kp"), now.later(1000));
    assert_eq!(handshakes(&bob.inbox.take()).len(), 1, "refilled");
    // The session still works.
    alice.send(Body::Ping(wire::Ping::default()), now);
    assert!(alice
        .inbox
        .take()
        .iter()
        .any(|b| matches!(b, Body::Pong(_))));
}

/// A sealed-looking frame: marked sealed, an SFrame header (config byte 0: key id 0, counter
/// 0) and room for the tag.
fn sealed_media(track: u32, sequence: u64) -> Body {
    Body::Media(Media {
        track_id: track,
        kind: MediaKind::Video as i32,
        sequence,
        keyframe: true,
        sealed: true,
        payload: Bytes::from(vec![0u8; 64]),
        ..Default::default()
    })
}

#[test]
fn an_encrypted_participant_s_clear_media_and_chat_are_dropped_and_it_is_told_once() {
    let world = World::new(&[]);
    let alice = world.join_encrypted("alice", "m");
    let bob = world.join_encrypted("bob", "m");
    let now = world.start;
    alice.announce(&[(1, MediaKind::Video)], now);
    bob.inbox.take();
    alice.inbox.take();
    // Clear media (the helper's payload even has an SFrame header's shape: unmarked, it is
    // refused all the same), and clear chat.
    for sequence in 0..3 {
        alice.media(1, MediaKind::Video, sequence, true, now);
    }
    alice.send(
        Body::Data(wire::DataMessage {
            text: "in clear".into(),
            ..Default::default()
        }),
        now,
    );
    assert!(
        bob.inbox.take().is_empty() && bob.inbox.take_media().is_empty(),
        "nothing sent in clear reaches anyone"
    );
    assert_eq!(world.drops(DropReason::NotEncrypted), 4.0);
    let told: Vec<_> = alice
        .inbox
        .take()
        .into_iter()
        .filter(
            |b| matches!(b, Body::Error(e) if e.code == ErrorCode::NotEncrypted as i32 && !e.fatal),
        )
        .collect();
    assert_eq!(told.len(), 1, "told once: {told:?}");
    // Sealed media and chat go through, and the session went on.
    alice.send(sealed_media(1, 3), now);
    alice.send(
        Body::Data(wire::DataMessage {
            topic: videocall_protocol::sealed::SEALED_TOPIC.into(),
            data: Bytes::from(vec![0u8; 40]),
            ..Default::default()
        }),
        now,
    );
    assert_eq!(bob.inbox.take_media(), vec![(alice.id(), 1, 3)]);
    let got = bob.inbox.take();
    assert!(
        got.iter()
            .any(|b| matches!(b, Body::Data(d) if d.from_participant_id == alice.id())),
        "{got:?}"
    );
}

#[test]
fn a_clear_meeting_takes_clear_media_and_refuses_handshakes() {
    let world = World::new(&[]);
    let alice = world.join("alice", "m");
    let bob = world.join("bob", "m");
    let now = world.start;
    alice.announce(&[(1, MediaKind::Video)], now);
    bob.inbox.take();
    alice.inbox.take();
    alice.media(1, MediaKind::Video, 0, true, now);
    alice.send(
        handshake(wire::HandshakeKind::KeyPackage, 0, b"key package"),
        now,
    );
    assert_eq!(bob.inbox.take_media().len(), 1, "clear media passes");
    let got = bob.inbox.take();
    assert!(
        !got.iter().any(|b| matches!(b, Body::Handshake(_))),
        "{got:?}"
    );
    let told = alice.inbox.take();
    assert!(
        told.iter()
            .any(|b| matches!(b, Body::Error(e) if e.code == ErrorCode::Forbidden as i32)),
        "{told:?}"
    );
}
