//! Scripted sessions: the core driven by a sequence of steps decoded from arbitrary bytes
//! (joins, frames and messages from participants, back pressure, time passing, the other
//! relays' events), checking after every step what must always hold. The fuzz target
//! `session` (`fuzz/`) runs it on the fuzzer's inputs; the relay's corpus test replays the
//! kept corpus and every input that once broke something.
//!
//! What must hold: nothing panics; every frame the relay hands a participant is a valid
//! envelope; nobody is sent their own media; every participant whose transport is open is in
//! the meeting the relay holds under its id; ids are unique; and once everyone has gone and
//! the other relays have been silent for the presence timeout, the relay holds no meeting.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use clap::Parser;
use prost::Message as _;
use videocall_protocol::decode_envelope;
use videocall_protocol::envelope::{encode_envelope, envelope};
use videocall_protocol::mesh::{mesh_event, MeshEvent, RemoteParticipant};
use videocall_protocol::sealed::{is_sealed_chat, is_sealed_media};
use videocall_protocol::wire::{self, envelope::Body};
use videocall_token::{Claims, Grants, TokenIssuer, TokenVerifier};

use super::bandwidth::LinkSample;
use super::clock::Now;
use super::mesh::NoMesh;
use super::relay::Relay;
use super::session::Session;
use super::sink::{unprefixed, ControlQueueFull, MediaSink, Offer, Outgoing, Outlet};
use super::{admit, mesh_tick, on_mesh_event, on_mesh_media};
use crate::config::RelayConfig;
use crate::ids::TransportKind;
use crate::metrics::Metrics;
use crate::reason::CloseReason;

/// Steps read from one input at most: longer inputs end there.
const MAX_STEPS: usize = 96;
/// Sessions open at once at most: joins beyond it are skipped.
const MAX_SESSIONS: usize = 8;
/// The users, meetings and other relays a script can name.
const USERS: [&str; 6] = ["ada", "bob", "cy", "dee", "eve", "fay"];
const MEETINGS: [&str; 3] = ["m1", "m2", "m3"];
const OTHER_RELAYS: [&str; 3] = ["relay-b", "relay-c", ""];
/// Participant ids other relays' participants get (their own relay's prefix).
const REMOTE_ID_BASE: u64 = 7 << 48;
/// The relay under test: small limits so that a short script reaches them.
const ARGS: [&str; 14] = [
    "--relay-id",
    "relay-a",
    "--quic-server-id",
    "1",
    "--join-burst",
    "12",
    "--identity-join-burst",
    "6",
    "--max-participants-per-meeting",
    "5",
    "--keyframe-request-interval-ms",
    "100",
    "--mesh-presence-timeout-ms",
    "3000",
];

/// One step of a script.
#[derive(Debug, Arbitrary)]
pub enum Step {
    /// A user joins a meeting with a valid token.
    Join {
        /// Which user (of a fixed few).
        user: u8,
        /// Which meeting (of a fixed few).
        meeting: u8,
        /// Grants: bit 0 publish, bit 1 subscribe, bit 2 admin; 8 to 15: and the token says
        /// the participant encrypts end to end (one join in 32 of random input, so the
        /// corpus grown before keeps reaching as deep).
        grants: u8,
        /// WebTransport rather than WebSocket.
        webtransport: bool,
    },
    /// A connection whose first frame is these bytes.
    FirstFrame(Vec<u8>),
    /// A joined participant sends these bytes as a frame.
    Frame {
        /// Which open session.
        who: u8,
        /// The frame.
        frame: Vec<u8>,
    },
    /// A joined participant sends a well-formed message.
    Send {
        /// Which open session.
        who: u8,
        /// The message.
        message: Said,
    },
    /// Time passes; then the heartbeat and the bandwidth estimate of every session (its link
    /// delivered what its sinks took; while they take nothing, video waits) and the mesh's
    /// presence beat.
    Later {
        /// Milliseconds.
        ms: u16,
    },
    /// A participant's transport ends.
    Gone {
        /// Which open session.
        who: u8,
    },
    /// A participant's queues fill (0) or empty.
    Backpressure {
        /// Which open session.
        who: u8,
        /// Media frames its sinks still take.
        media_room: u8,
        /// Control frames its outlet still takes.
        control_room: u8,
    },
    /// Another relay of a meeting says something.
    Remote {
        /// Which meeting.
        meeting: u8,
        /// Which relay (one of them is nameless).
        origin: u8,
        /// What it says.
        event: Heard,
    },
    /// Another relay forwards media of one of its participants.
    RemoteMedia {
        /// Which meeting.
        meeting: u8,
        /// Whose (see [`Step::Remote`] for how ids are chosen).
        publisher: u8,
        /// Which track.
        track: u8,
        /// Starts a group of pictures.
        keyframe: bool,
        /// The frame as the bus carried it (a length-prefixed envelope, or not).
        frame: Vec<u8>,
    },
    /// The relay starts draining.
    Drain,
    /// The control plane ends a meeting.
    End {
        /// Which meeting.
        meeting: u8,
    },
}

/// A well-formed message from a participant.
#[derive(Debug, Arbitrary)]
pub enum Said {
    /// UpdateState: tracks as (id, kind) and the flags.
    Update {
        /// (track id, kind number).
        tracks: Vec<(u8, u8)>,
        /// The list is the whole list even when empty.
        announce_tracks: bool,
        /// Muted microphone.
        audio_muted: bool,
        /// Muted camera.
        video_muted: bool,
        /// Speaking.
        speaking: bool,
        /// New display name.
        display_name: String,
    },
    /// Media on a track.
    Media {
        /// Track id.
        track: u8,
        /// Kind number.
        kind: u8,
        /// Sequence number; its top bit marks the frame sealed (end-to-end encrypted; the
        /// payload may or may not look so).
        sequence: u16,
        /// Starts a group of pictures.
        keyframe: bool,
        /// Payload.
        payload: Vec<u8>,
    },
    /// A keyframe request to a participant (see [`Step::Remote`] for ids); with a track byte
    /// from 128 up, a `ViewTracks` of that track in a tile of (byte & 63) × 40 by × 22 (0:
    /// hidden) instead (folded in here so that the corpus keeps its meaning).
    KeyframeRequest {
        /// Whose track.
        participant: u8,
        /// Which track.
        track: u8,
    },
    /// Ping.
    Ping(u64),
    /// Data to everyone (empty) or to some.
    Data {
        /// Recipients.
        to: Vec<u8>,
        /// Text.
        text: String,
    },
    /// Leave.
    Leave,
    /// Remove a participant (an admin's); with a participant byte from 128 up, a host action
    /// instead: bits 4–6 pick it (mute, mute all, remove and ban, lock, end, set role,
    /// lower hand, ask to unmute), bits 0–3 its participant (as for keyframe requests), an
    /// odd-length reason its flag (disallow unmuting, ban, locked, video, co-host).
    Remove {
        /// Whom.
        participant: u8,
        /// Why.
        reason: String,
    },
    /// A second Join on a joined session.
    Join,
    /// A message only relays send (Joined, ParticipantLeft, Congestion, Draining ...).
    RelayOnly(u8),
}

/// What another relay says.
#[derive(Debug, Arbitrary)]
pub enum Heard {
    /// A participant of its joined (or is reported by it).
    Joined {
        /// Who.
        participant: u8,
        /// Its tracks.
        tracks: Vec<(u8, u8)>,
        /// It receives media.
        subscribes: bool,
    },
    /// A participant of its changed.
    Updated {
        /// Who.
        participant: u8,
        /// Its whole track list.
        tracks: Vec<(u8, u8)>,
    },
    /// A participant of its left.
    Left {
        /// Who.
        participant: u8,
        /// Leave reason number.
        reason: u8,
    },
    /// Data from a participant of its.
    Data {
        /// From whom.
        from: u8,
        /// To whom (empty: everyone).
        to: Vec<u8>,
    },
    /// A frame for one of this relay's participants.
    Deliver {
        /// For whom.
        participant: u8,
        /// The frame.
        frame: Vec<u8>,
    },
    /// An admin of its removed someone.
    Remove {
        /// Whom.
        participant: u8,
    },
    /// The meeting ended at this many seconds after the epoch.
    Ended(u32),
    /// It starts hosting the meeting.
    Hello,
    /// Everyone it hosts.
    Roster(Vec<u8>),
    /// The ids it hosts.
    Presence(Vec<u8>),
    /// Bytes as a mesh event.
    Raw(Vec<u8>),
}

/// What a script did, for tests that want to know a corpus reaches the places it should.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Steps run.
    pub steps: usize,
    /// Sessions admitted.
    pub admitted: usize,
    /// Connections refused.
    pub refused: usize,
    /// Control frames handed to participants.
    pub control_frames: usize,
    /// Media frames handed to participants.
    pub media_frames: usize,
}

/// The steps `data` encodes, as [`run`] reads them (to see what a failing input does).
pub fn steps(data: &[u8]) -> Vec<Step> {
    let mut input = Unstructured::new(data);
    let mut steps = Vec::new();
    while steps.len() < MAX_STEPS && !input.is_empty() {
        match Step::arbitrary(&mut input) {
            Ok(step) => steps.push(step),
            Err(_) => break,
        }
    }
    steps
}

/// Runs the script in `data`; panics when something that must hold does not.
pub fn run(data: &[u8]) -> Summary {
    run_steps(steps(data))
}

/// Runs `steps`; panics when something that must hold does not.
pub fn run_steps(steps: Vec<Step>) -> Summary {
    let mut script = Script::new();
    for step in steps {
        script.step(step);
        script.summary.steps += 1;
        script.reap();
        script.check();
    }
    script.finish()
}

/// The keys and the tokens of a script: signing is slow next to a step, so each token
/// is made once per process.
struct Tokens {
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    made: Mutex<HashMap<(usize, usize, u8), String>>,
}

fn tokens() -> &'static Tokens {
    static TOKENS: OnceLock<Tokens> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let issuer = TokenIssuer::generate("script");
        let mut verifier = TokenVerifier::new();
        if let Err(e) = verifier.add_key_base64("script", &issuer.public_key_base64()) {
            panic!("the script's own key is refused: {e}");
        }
        Tokens {
            issuer,
            verifier,
            made: Mutex::new(HashMap::new()),
        }
    })
}

impl Tokens {
    fn token(&self, user: usize, meeting: usize, grants: u8) -> String {
        let mut made = super::lock(&self.made);
        made.entry((user, meeting, grants))
            .or_insert_with(|| {
                let e2ee = grants & 8 != 0;
                let grants = Grants {
                    publish: grants & 1 != 0,
                    subscribe: grants & 2 != 0,
                    admin: grants & 4 != 0,
                    role: None,
                };
                // Valid for as long as a fuzzing campaign could run.
                let ttl = Duration::from_secs(30 * 24 * 3600);
                let mut claims =
                    Claims::new(USERS[user], USERS[user], MEETINGS[meeting], grants, ttl);
                claims.e2ee = e2ee;
                self.issuer
                    .issue(&claims)
                    .unwrap_or_else(|e| panic!("the script cannot sign a token: {e}"))
            })
            .clone()
    }
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: RelayConfig,
}

/// What one participant's transport was handed, checked as it arrives.
struct Wire {
    /// Media bytes its sinks took.
    media_bytes: AtomicUsize,
    owner: AtomicUsize,
    closed: AtomicBool,
    media_room: AtomicUsize,
    control_room: AtomicUsize,
    control: AtomicUsize,
    media: AtomicUsize,
}

impl Wire {
    fn new() -> Arc<Self> {
        Arc::new(Wire {
            media_bytes: AtomicUsize::new(0),
            owner: AtomicUsize::new(usize::MAX),
            closed: AtomicBool::new(false),
            media_room: AtomicUsize::new(usize::MAX),
            control_room: AtomicUsize::new(usize::MAX),
            control: AtomicUsize::new(0),
            media: AtomicUsize::new(0),
        })
    }

    /// Takes one from `room` (`usize::MAX`: no limit); false when it is empty.
    fn take_room(room: &AtomicUsize) -> bool {
        room.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| match r {
            0 => None,
            usize::MAX => Some(usize::MAX),
            r => Some(r - 1),
        })
        .is_ok()
    }
}

struct ScriptOutlet(Arc<Wire>);
struct ScriptSink(Arc<Wire>);

fn valid(frame: &Bytes) -> Body {
    let declared = frame
        .get(..4)
        .and_then(|p| <[u8; 4]>::try_from(p).ok())
        .map(u32::from_be_bytes);
    assert_eq!(
        declared.map(|d| d as usize),
        Some(frame.len().saturating_sub(4)),
        "the relay sent a frame whose length prefix is not its length"
    );
    match decode_envelope(unprefixed(frame), usize::MAX) {
        Ok(wire::Envelope {
            body: Some(body), ..
        }) => body,
        other => panic!("the relay sent a frame that is not a valid envelope: {other:?}"),
    }
}

impl MediaSink for ScriptSink {
    fn offer(&self, out: Outgoing) -> Offer {
        if self.0.closed.load(Ordering::Relaxed) {
            return Offer::Closed;
        }
        if !Wire::take_room(&self.0.media_room) {
            return Offer::Full;
        }
        let Body::Media(media) = valid(&out.frame) else {
            panic!("a media sink was handed something other than media");
        };
        let owner = self.0.owner.load(Ordering::Relaxed) as u64;
        assert_ne!(
            media.participant_id, owner,
            "a participant got its own media"
        );
        self.0.media.fetch_add(1, Ordering::Relaxed);
        self.0
            .media_bytes
            .fetch_add(out.frame.len(), Ordering::Relaxed);
        Offer::Accepted { depth: 0 }
    }
}

impl Outlet for ScriptOutlet {
    fn send_control(&self, frame: Bytes) -> Result<(), ControlQueueFull> {
        if !Wire::take_room(&self.0.control_room) {
            return Err(ControlQueueFull);
        }
        valid(&frame);
        self.0.control.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn media_sink(&self, _audio: bool) -> Box<dyn MediaSink> {
        Box::new(ScriptSink(self.0.clone()))
    }

    fn close(&self) {
        self.0.closed.store(true, Ordering::Relaxed);
    }

    fn link_sample(&self) -> Option<LinkSample> {
        let full = self.0.media_room.load(Ordering::Relaxed) == 0;
        Some(LinkSample {
            delivered_bytes: self.0.media_bytes.load(Ordering::Relaxed) as u64,
            backlog_bytes: if full { 64 * 1024 } else { 0 },
            ..LinkSample::default()
        })
    }
}

struct Open {
    session: Session,
    wire: Arc<Wire>,
}

struct Script {
    relay: Arc<Relay>,
    start: Now,
    ms: u64,
    open: Vec<Open>,
    finished: Vec<Arc<Wire>>,
    summary: Summary,
}

fn pick<T: Copy>(items: &[T], n: u8) -> T {
    items[usize::from(n) % items.len()]
}

/// Tracks as (id, kind number); a kind number from 128 up also gives the track three
/// simulcast layers (from 192 up, sized so the relay's checks refuse them: ids repeated).
fn tracks(list: &[(u8, u8)]) -> Vec<wire::Track> {
    list.iter()
        .map(|&(id, kind)| wire::Track {
            id: u32::from(id % 8),
            kind: i32::from(kind % 5),
            codec: i32::from(kind / 5 % 6),
            layers: match kind {
                0..128 => Vec::new(),
                128..192 => (0..3).map(|l| layer(l, 320 << l, 180 << l)).collect(),
                _ => vec![layer(1, 640, 360), layer(1, 1280, 720)],
            },
        })
        .collect()
}

fn layer(id: u32, width: u32, height: u32) -> wire::Layer {
    wire::Layer {
        id,
        width,
        height,
        bitrate_kbps: width / 2,
    }
}

impl Script {
    fn new() -> Self {
        // Parsing the arguments and registering the metrics take longer than most scripts:
        // once per process (the counters add up across scripts; nothing here reads them).
        static MADE: OnceLock<(RelayConfig, Metrics)> = OnceLock::new();
        let (config, metrics) = MADE.get_or_init(|| {
            let config = match Cli::try_parse_from(std::iter::once("relay").chain(ARGS)) {
                Ok(cli) => cli.config,
                Err(e) => panic!("the script's relay arguments are refused: {e}"),
            };
            match Metrics::new("script") {
                Ok(metrics) => (config, metrics),
                Err(e) => panic!("metrics: {e}"),
            }
        });
        let (config, metrics) = (config.clone(), metrics.clone());
        let start = Now::system();
        let relay = Relay::new(
            config,
            tokens().verifier.clone(),
            metrics,
            Arc::new(NoMesh),
            start,
        );
        Script {
            relay: Arc::new(relay),
            start,
            ms: 0,
            open: Vec::new(),
            finished: Vec::new(),
            summary: Summary::default(),
        }
    }

    fn now(&self) -> Now {
        self.start.later(self.ms)
    }

    /// A participant id as another relay would name it: one of its own (even `n`) or, to
    /// try confusion, one of this relay's (odd `n`).
    /// The host action a `Remove` with a participant byte from 128 up stands for.
    fn host_action(&self, byte: u8, reason: &str) -> wire::HostAction {
        use wire::host_action::Action;
        let target = self.participant_id(byte & 15);
        let flag = reason.len() % 2 == 1;
        let kind = if flag {
            wire::MediaKind::Video
        } else {
            wire::MediaKind::Audio
        } as i32;
        let action = match (byte >> 4) & 7 {
            0 => Action::Mute(wire::MuteParticipant {
                participant_id: target,
                kind,
                disallow_unmute: flag,
            }),
            1 => Action::MuteAll(wire::MuteAll {
                disallow_unmute: flag,
            }),
            2 => Action::Remove(wire::RemoveParticipant {
                participant_id: target,
                reason: reason.to_owned(),
                ban: flag,
            }),
            3 => Action::Lock(wire::LockMeeting { locked: flag }),
            4 => Action::End(wire::EndForAll {}),
            5 => Action::SetRole(wire::SetRole {
                participant_id: target,
                role: if flag {
                    wire::Role::Cohost
                } else {
                    wire::Role::Host
                } as i32,
            }),
            6 => Action::LowerHand(wire::LowerHand {
                participant_id: target,
            }),
            _ => Action::AskToUnmute(wire::AskToUnmute {
                participant_id: target,
                kind,
            }),
        };
        wire::HostAction {
            action: Some(action),
        }
    }

    fn participant_id(&self, n: u8) -> u64 {
        if n.is_multiple_of(2) || self.open.is_empty() {
            REMOTE_ID_BASE + u64::from(n % 8)
        } else {
            self.open[usize::from(n / 2) % self.open.len()]
                .session
                .me
                .id
        }
    }

    fn connect(&mut self, frame: Bytes, transport: TransportKind) {
        if self.open.len() >= MAX_SESSIONS {
            return;
        }
        let wire = Wire::new();
        let outlet = Box::new(ScriptOutlet(wire.clone()));
        match admit(&self.relay, frame, transport, outlet, self.now()) {
            Ok(session) => {
                wire.owner.store(session.me.id as usize, Ordering::Relaxed);
                self.summary.admitted += 1;
                self.open.push(Open { session, wire });
            }
            Err(_) => self.summary.refused += 1,
        }
    }

    /// Media and control frames handed to every open session but `sender`.
    fn delivered_to_others(&self, sender: usize) -> (usize, usize) {
        self.open
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != sender)
            .fold((0, 0), |(media, control), (_, open)| {
                (
                    media + open.wire.media.load(Ordering::Relaxed),
                    control + open.wire.control.load(Ordering::Relaxed),
                )
            })
    }

    fn session(&self, who: u8) -> Option<&Session> {
        (!self.open.is_empty()).then(|| &self.open[usize::from(who) % self.open.len()].session)
    }

    fn step(&mut self, step: Step) {
        let now = self.now();
        match step {
            Step::Join {
                user,
                meeting,
                grants,
                webtransport,
            } => {
                let (user, meeting) = (
                    usize::from(user) % USERS.len(),
                    usize::from(meeting) % MEETINGS.len(),
                );
                // Bit 3 of a token's grants: the participant encrypts.
                let encrypts = if grants & 0xf8 == 8 { 8 } else { 0 };
                let join = wire::Join {
                    token: tokens().token(user, meeting, (grants % 8) | encrypts),
                    meeting_id: MEETINGS[meeting].into(),
                    client: "script".into(),
                };
                let transport = if webtransport {
                    TransportKind::WebTransport
                } else {
                    TransportKind::WebSocket
                };
                self.connect(encode_envelope(&envelope(Body::Join(join))), transport);
            }
            Step::FirstFrame(frame) => self.connect(frame.into(), TransportKind::WebSocket),
            Step::Frame { who, frame } => {
                if let Some(session) = self.session(who) {
                    session.handle_frame(frame.into(), now);
                }
            }
            Step::Send { who, message } => {
                let mut body = self.said(message);
                if self.open.is_empty() {
                    return;
                }
                let sender = usize::from(who) % self.open.len();
                // Layers only on tracks announced with them (layer 3, which none has, is
                // refused there): the corpus grown before layers keeps its media flowing.
                if let Body::Media(media) = &mut body {
                    let track = self.open[sender].session.me.track(media.track_id);
                    if track.is_none_or(|t| t.layers().is_empty()) {
                        media.layer = 0;
                    }
                }
                // What an encrypting participant sends in clear reaches nobody.
                let clear = self.open[sender].session.me.e2ee
                    && match &body {
                        Body::Media(media) => !is_sealed_media(media),
                        Body::Data(message) => !is_sealed_chat(message),
                        _ => false,
                    };
                let before = self.delivered_to_others(sender);
                self.open[sender]
                    .session
                    .handle_frame(encode_envelope(&envelope(body)), now);
                if clear {
                    assert_eq!(
                        self.delivered_to_others(sender),
                        before,
                        "clear media or chat of an encrypting participant reached others"
                    );
                }
            }
            Step::Later { ms } => {
                self.ms += u64::from(ms);
                let now = self.now();
                for open in &self.open {
                    open.session.tick(now);
                    open.session.estimate_bandwidth(now);
                }
                mesh_tick(&self.relay, now, true);
            }
            Step::Gone { who } => {
                if let Some(session) = self.session(who) {
                    session.me.close(CloseReason::disconnected());
                }
            }
            Step::Backpressure {
                who,
                media_room,
                control_room,
            } => {
                if !self.open.is_empty() {
                    let wire = &self.open[usize::from(who) % self.open.len()].wire;
                    let room = |r: u8| {
                        if r == u8::MAX {
                            usize::MAX
                        } else {
                            usize::from(r)
                        }
                    };
                    wire.media_room.store(room(media_room), Ordering::Relaxed);
                    wire.control_room
                        .store(room(control_room), Ordering::Relaxed);
                }
            }
            Step::Remote {
                meeting,
                origin,
                event,
            } => {
                let body = self.heard(event);
                let event = MeshEvent {
                    origin: pick(&OTHER_RELAYS, origin).into(),
                    body,
                };
                on_mesh_event(&self.relay, pick(&MEETINGS, meeting), event, now);
            }
            Step::RemoteMedia {
                meeting,
                publisher,
                track,
                keyframe,
                frame,
            } => {
                let publisher = self.participant_id(publisher);
                on_mesh_media(
                    &self.relay,
                    pick(&MEETINGS, meeting),
                    publisher,
                    u32::from(track % 8),
                    keyframe,
                    &Bytes::from(frame),
                    now,
                );
            }
            Step::Drain => {
                self.relay.start_drain();
            }
            Step::End { meeting } => {
                let ended = HashMap::from([(
                    pick(&MEETINGS, meeting).to_owned(),
                    now.unix_ms() / 1000 + 1,
                )]);
                self.relay.end_meetings(ended);
            }
        }
    }

    fn said(&self, message: Said) -> Body {
        match message {
            Said::Update {
                tracks: list,
                announce_tracks,
                audio_muted,
                video_muted,
                speaking,
                display_name,
            } => Body::UpdateState(wire::UpdateState {
                audio_muted,
                video_muted,
                speaking,
                tracks: tracks(&list),
                display_name,
                announce_tracks,
                hand_raised: None,
            }),
            Said::Media {
                track,
                kind,
                sequence,
                keyframe,
                payload,
            } => Body::Media(wire::Media {
                track_id: u32::from(track % 8),
                kind: i32::from(kind % 5),
                sequence: u64::from(sequence),
                keyframe,
                sealed: sequence >= 0x8000,
                // Bits 13 and 14 of the sequence: the simulcast layer (see `Step::Send`).
                layer: u32::from(sequence >> 13 & 3),
                audio_level: u32::from(sequence & 0x7f),
                payload: payload.into(),
                ..Default::default()
            }),
            // A track byte from 128 up: how the participant shows that track instead.
            Said::KeyframeRequest { participant, track } if track >= 128 => {
                let size = u32::from(track & 63);
                Body::ViewTracks(wire::ViewTracks {
                    views: vec![wire::TrackView {
                        participant_id: self.participant_id(participant),
                        track_id: u32::from(track % 8),
                        width: size * 40,
                        height: size * 22,
                    }],
                })
            }
            Said::KeyframeRequest { participant, track } => {
                Body::KeyframeRequest(wire::KeyframeRequest {
                    participant_id: self.participant_id(participant),
                    track_id: u32::from(track % 8),
                    layer: u32::from(track >> 3 & 3),
                })
            }
            Said::Ping(nonce) => Body::Ping(wire::Ping {
                nonce,
                sent_at_us: nonce,
            }),
            Said::Data { to, text } => Body::Data(wire::DataMessage {
                to: to.iter().map(|&n| self.participant_id(n)).collect(),
                text,
                ..Default::default()
            }),
            Said::Leave => Body::Leave(wire::Leave::default()),
            Said::Remove {
                participant,
                reason,
            } if participant >= 128 => Body::HostAction(self.host_action(participant, &reason)),
            Said::Remove {
                participant,
                reason,
            } => Body::RemoveParticipant(wire::RemoveParticipant {
                participant_id: self.participant_id(participant),
                reason,
                ban: false,
            }),
            Said::Join => Body::Join(wire::Join::default()),
            Said::RelayOnly(n) => match n % 4 {
                0 => Body::Joined(wire::Joined::default()),
                1 => Body::ParticipantLeft(wire::ParticipantLeft::default()),
                2 => Body::Congestion(wire::CongestionNotice::default()),
                _ => Body::Draining(wire::Draining::default()),
            },
        }
    }

    fn remote_participant(&self, n: u8, list: &[(u8, u8)], subscribes: bool) -> RemoteParticipant {
        let id = self.participant_id(n);
        RemoteParticipant {
            participant: Some(wire::Participant {
                id,
                user: format!("remote-{}", n % 8),
                display_name: format!("Remote {}", n % 8),
                tracks: tracks(list),
                can_publish: true,
                ..Default::default()
            }),
            subscribes,
            joined_at_unix_ms: 1,
        }
    }

    fn heard(&self, heard: Heard) -> Option<mesh_event::Body> {
        use mesh_event::Body as B;
        use videocall_protocol::mesh;
        Some(match heard {
            Heard::Joined {
                participant,
                tracks,
                subscribes,
            } => B::Joined(self.remote_participant(participant, &tracks, subscribes)),
            Heard::Updated {
                participant,
                tracks,
            } => B::Updated(
                self.remote_participant(participant, &tracks, true)
                    .participant
                    .unwrap_or_default(),
            ),
            Heard::Left {
                participant,
                reason,
            } => B::Left(wire::ParticipantLeft {
                participant_id: self.participant_id(participant),
                reason: i32::from(reason % 10),
            }),
            Heard::Data { from, to } => B::Data(wire::DataMessage {
                from_participant_id: self.participant_id(from),
                to: to.iter().map(|&n| self.participant_id(n)).collect(),
                text: "hi".into(),
                ..Default::default()
            }),
            Heard::Deliver { participant, frame } => B::Deliver(mesh::Deliver {
                participant_id: self.participant_id(participant),
                frame: frame.into(),
            }),
            Heard::Remove { participant } => B::Remove(mesh::Remove {
                participant_id: self.participant_id(participant),
                reason: "removed elsewhere".into(),
            }),
            Heard::Ended(at) => B::Ended(mesh::Ended {
                ended_at: u64::from(at),
            }),
            Heard::Hello => B::Hello(mesh::Hello {}),
            Heard::Roster(ids) => B::Roster(mesh::Roster {
                participants: ids
                    .iter()
                    .map(|&n| self.remote_participant(n, &[(1, 1), (2, 2)], true))
                    .collect(),
                rules: None,
            }),
            Heard::Presence(ids) => B::Presence(mesh::Presence {
                participant_ids: ids.iter().map(|&n| self.participant_id(n)).collect(),
            }),
            Heard::Raw(bytes) => return MeshEvent::decode(bytes.as_slice()).ok()?.body,
        })
    }

    /// As the driver does: a session whose outlet was closed (it left, was removed, timed
    /// out, fell behind, or its transport ended) is finished.
    fn reap(&mut self) {
        let (gone, open): (Vec<_>, Vec<_>) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|o| o.wire.closed.load(Ordering::Relaxed));
        self.open = open;
        for o in gone {
            o.session.finish();
            self.finished.push(o.wire);
        }
    }

    /// What must hold between steps.
    fn check(&self) {
        let mut ids = HashSet::new();
        for open in &self.open {
            let me = &open.session.me;
            assert!(ids.insert(me.id), "two open sessions share id {}", me.id);
            let held = self.relay.meetings.get(&open.session.meeting.id);
            assert!(
                held.is_some_and(|m| Arc::ptr_eq(&m, &open.session.meeting)),
                "participant {} is open but its meeting {} is not the relay's",
                me.id,
                open.session.meeting.id
            );
            assert!(
                open.session.meeting.participant(me.id).is_some(),
                "participant {} is open but not in its meeting",
                me.id
            );
        }
    }

    /// Everyone goes; the other relays fall silent; nothing may be left.
    fn finish(mut self) -> Summary {
        for open in &self.open {
            open.session.me.close(CloseReason::disconnected());
        }
        self.reap();
        let timeout = self.relay.config.timing.mesh_presence_timeout_ms;
        self.ms += timeout + 1;
        mesh_tick(&self.relay, self.now(), true);
        assert_eq!(
            self.relay.meetings.count(),
            0,
            "everyone left and the other relays are silent, yet meetings remain"
        );
        for wire in self.finished.iter() {
            self.summary.control_frames += wire.control.load(Ordering::Relaxed);
            self.summary.media_frames += wire.media.load(Ordering::Relaxed);
        }
        self.summary
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, RngCore, SeedableRng};

    use super::*;

    /// Session `who` announces track 1 as video.
    fn announces_a_camera(who: u8) -> Step {
        Step::Send {
            who,
            message: Said::Update {
                tracks: vec![(1, 1)],
                announce_tracks: true,
                audio_muted: false,
                video_muted: false,
                speaking: false,
                display_name: String::new(),
            },
        }
    }

    #[test]
    fn a_written_script_moves_media_between_two_people() {
        let join = |user| Step::Join {
            user,
            meeting: 0,
            grants: 3,
            webtransport: false,
        };
        let summary = run_steps(vec![
            join(0),
            join(1),
            announces_a_camera(0),
            Step::Send {
                who: 0,
                message: Said::Media {
                    track: 1,
                    kind: 1,
                    sequence: 0,
                    keyframe: false,
                    payload: vec![1, 2, 3],
                },
            },
            Step::Later { ms: 100 },
        ]);
        assert_eq!(summary.admitted, 2, "{summary:?}");
        assert_eq!(summary.media_frames, 1, "{summary:?}");
    }

    #[test]
    fn an_encrypting_participants_clear_media_reaches_nobody_and_its_sealed_media_does() {
        let join = |user, grants| Step::Join {
            user,
            meeting: 0,
            grants,
            webtransport: false,
        };
        let media = |sealed: bool| Step::Send {
            who: 0,
            message: Said::Media {
                track: 1,
                kind: 1,
                sequence: if sealed { 0x8000 } else { 1 },
                keyframe: true,
                // A config byte of 0 (key id and counter 0), then at least a tag: SFrame's shape.
                payload: vec![0; 40],
            },
        };
        let summary = run_steps(vec![
            // Publishes, subscribes, and encrypts end to end.
            join(0, 8 | 1 | 2),
            join(1, 8 | 1 | 2),
            announces_a_camera(0),
            // Not marked sealed: the script's check holds that nobody gets it.
            media(false),
            media(true),
            Step::Send {
                who: 0,
                message: Said::Data {
                    to: Vec::new(),
                    text: "in clear".into(),
                },
            },
            Step::Later { ms: 100 },
        ]);
        assert_eq!(summary.admitted, 2, "{summary:?}");
        assert_eq!(
            summary.media_frames, 1,
            "only the sealed frame: {summary:?}"
        );
    }

    #[test]
    fn random_scripts_run_to_their_end_with_everything_holding() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut total = Summary::default();
        for _ in 0..400 {
            let mut data = vec![0u8; rng.gen_range(0..3000)];
            rng.fill_bytes(&mut data);
            let summary = run(&data);
            total.admitted += summary.admitted;
            total.refused += summary.refused;
            total.control_frames += summary.control_frames;
        }
        assert!(total.admitted > 50, "{total:?}");
        assert!(total.control_frames > 50, "{total:?}");
    }
}
