//! One person in one meeting: joins through the control plane, connects (and reconnects) to
//! the relay, sends the local tracks, decodes everyone else's, and keeps the UI's signals
//! current. Everything runs in one task that reacts to the relay, the UI's commands and a
//! clock, so the state lives in one place.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use dioxus::prelude::*;
use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{select, FutureExt, StreamExt};
use videocall_client_core::{JoinRequest, JoinStep, Joining};
use videocall_protocol::avoid::AvoidList;
use videocall_protocol::envelope::envelope;
use videocall_protocol::wire::{envelope::Body, host_action::Action, MediaKind, ViewTracks};
use web_sys::{AudioContext, MediaStream, MediaStreamTrack};

mod core_session;
mod devices;
mod encryption;
mod figures;
mod hosting;
mod local_media;
mod quality;
mod send_lane;
mod view;
mod views;

pub use view::{
    ChatLine, ConnectionView, EncryptionView, Failure, MeetingSignals, PeerView, Phase,
};

use core_session::{CoreSession, Soon};
use quality::QualityWatch;
use send_lane::SendLane;
use videocall_e2ee::{E2eeError, SigningKey};

use crate::tile_views::TileViews;
use figures::publish_test_figures;
use view::{closed_failure, grant_failure, meeting_failure, peer_view, relay_failure};

use crate::api;
use crate::js;
use crate::media::audio_recv::AudioReceiver;
use crate::media::audio_send::AudioSender;
use crate::media::video_recv::{Decoded, VideoReceiver};
use crate::media::video_send::VideoSender;
use crate::media::{SharedStats, CAMERA_TRACK, SCREEN_TRACK};
use crate::route::{CaptureChoice, FramesChoice, TransportChoice};
use crate::transport::{self, Connection, Incoming};

/// What the UI asks of the session.
#[derive(Debug)]
pub enum Command {
    /// Mute or unmute the microphone.
    Mute(bool),
    /// Camera off (true) or on.
    CameraOff(bool),
    /// Start or stop sharing the screen.
    ShareScreen(bool),
    /// Send a chat line to everyone.
    Chat(String),
    /// Leave the meeting.
    Leave,
    /// The microphone level says speaking started or stopped.
    Speaking(bool),
    /// Raise (true) or lower the hand.
    RaiseHand(bool),
    /// A host action (the relay checks this participant's role).
    Host(Action),
    /// A host asked to turn this on again, and the person agreed.
    AcceptUnmute(MediaKind),
    /// Send from the camera with this device id instead.
    SwitchCamera(String),
    /// Send from the microphone with this device id instead.
    SwitchMicrophone(String),
    /// Play the others through the audio output with this device id.
    SwitchSpeaker(String),
}

/// What the session needs to start.
pub struct SessionParams {
    /// Meeting id.
    pub meeting: String,
    /// Own display name.
    pub name: String,
    /// Transport override.
    pub transport: TransportChoice,
    /// Capture override.
    pub capture: CaptureChoice,
    /// Where encrypted frames are ciphered.
    pub frames: FramesChoice,
    /// The camera is sent in simulcast layers.
    pub simulcast: bool,
    /// Camera and microphone (from the lobby).
    pub local: MediaStream,
    /// Created on the Join click (browsers start audio only after a gesture).
    pub audio: AudioContext,
    /// Microphone muted when joining.
    pub muted: bool,
    /// Camera off when joining.
    pub camera_off: bool,
    /// Shared figures.
    pub stats: SharedStats,
    /// The camera size asked for (`?video=`), also when switching cameras.
    pub video_size: (u32, u32),
}

type Link = Rc<RefCell<Option<Connection>>>;

const CAMERA_BITRATE: u32 = 1_000_000;
const SCREEN_BITRATE: u32 = 1_500_000;
const RECONNECT_ATTEMPTS: u32 = 15;
const JOIN_TIMEOUT_MS: u64 = 5000;
const RECOVER_AFTER_MS: f64 = 3000.0;

/// The channel the UI sends commands on.
pub fn commands() -> (UnboundedSender<Command>, UnboundedReceiver<Command>) {
    unbounded()
}

struct Session {
    params: SessionParams,
    signals: MeetingSignals,
    link: Link,
    commands_tx: UnboundedSender<Command>,
    camera: Option<VideoSender>,
    screen: Option<VideoSender>,
    microphone: Option<AudioSender>,
    videos: HashMap<(u64, u32), VideoReceiver>,
    /// How large the page shows others' video, as the relay was told.
    views: TileViews,
    /// Who speaks now, loudest first, as the relay last said (this participant among them).
    active_speakers: Vec<u64>,
    audios: HashMap<u64, AudioReceiver>,
    muted: bool,
    camera_off: bool,
    speaking: bool,
    last_congestion_ms: f64,
    left: bool,
    /// The relay of the latest grant.
    relay_id: String,
    /// Relays lost or unreachable since the last successful join: the control plane places
    /// the next attempt elsewhere (a killed relay looks alive until its heartbeat is stale).
    avoid: AvoidList,
    /// This person's end-to-end encryption key, the same on every rejoin: its public half
    /// goes with every JoinMeeting request, so an encrypted meeting's grant carries its
    /// credential.
    key: Option<SigningKey>,
    /// The ticket a host let this person in with (sent again on every rejoin: no waiting
    /// twice, the same identity).
    admission_ticket: String,
    /// The connection's client core: roster, pings and silence, keyframe requests, chat and,
    /// where the meeting requires it, end-to-end encryption.
    core: CoreSession,
    /// Where the local tracks' frames leave, in order.
    send_lane: SendLane,
    /// The tiles' connection indicators.
    quality: QualityWatch,
}

/// Messages from the relay being opened (WebCrypto), handed on in the order they came.
type Opening = FuturesOrdered<LocalBoxFuture<'static, Option<Body>>>;

/// Runs the session until the person leaves or it fails; the UI follows through `signals`.
pub async fn run(
    params: SessionParams,
    mut signals: MeetingSignals,
    commands_tx: UnboundedSender<Command>,
    mut commands: UnboundedReceiver<Command>,
) {
    let muted = params.muted;
    let camera_off = params.camera_off;
    let core = CoreSession::new(params.frames);
    let link: Link = Rc::new(RefCell::new(None));
    let send_lane = Session::send_lane(link.clone(), params.stats.clone());
    let mut session = Session {
        params,
        signals,
        link,
        commands_tx,
        camera: None,
        screen: None,
        microphone: None,
        videos: HashMap::new(),
        views: TileViews::default(),
        active_speakers: Vec::new(),
        audios: HashMap::new(),
        muted,
        camera_off,
        speaking: false,
        last_congestion_ms: 0.0,
        left: false,
        relay_id: String::new(),
        avoid: AvoidList::default(),
        key: None,
        admission_ticket: String::new(),
        core,
        send_lane,
        quality: QualityWatch::default(),
    };
    let mut attempt = 0;
    // Only a meeting that was going is retried; a first join that fails says why at once.
    let mut ever_connected = false;
    loop {
        let (inbox_tx, mut inbox) = unbounded();
        match session.join(inbox_tx, &mut inbox).await {
            Ok(()) => {
                attempt = 0;
                ever_connected = true;
                session.avoid.clear();
                let reason = session.serve(&mut inbox, &mut commands).await;
                session.disconnect();
                session.avoid_current_relay();
                if session.left {
                    signals.phase.set(Phase::Left);
                    break;
                }
                if let Some(failure) = reason.1 {
                    signals.phase.set(Phase::Failed(failure));
                    break;
                }
                web_sys::console::warn_1(
                    &format!("connection lost ({}); reconnecting", reason.0).into(),
                );
                signals.phase.set(Phase::Reconnecting(reason.0));
            }
            Err((failure, retry)) => {
                session.disconnect();
                session.avoid_current_relay();
                attempt += 1;
                web_sys::console::warn_1(&format!("joining failed: {failure:?}").into());
                if !retry || !ever_connected || attempt > RECONNECT_ATTEMPTS {
                    signals.phase.set(Phase::Failed(failure));
                    break;
                }
                signals.phase.set(Phase::Reconnecting(format!(
                    "{failure:?}; attempt {attempt}"
                )));
            }
        }
        // Back off a little more each time: 0.25 s, 0.5 s, 1 s, then every 2 s (about 25 s
        // in all before giving up).
        js::sleep(250 * (1 << attempt.min(3))).await;
    }
    session.stop_media();
    publish_test_figures(&session);
}

/// How often a waiting person asks whether a host let them in.
const ADMISSION_POLL_MS: i32 = 1000;

impl Session {
    /// In the waiting room: says so, and asks once a second until a host lets this person in
    /// (the grant) or turns them away.
    async fn wait_for_admission(
        &mut self,
        waiting: crate::control::WaitingTicket,
    ) -> Result<crate::control::JoinGrant, (Failure, bool)> {
        use crate::control::AdmissionState;
        let mut position = waiting.position;
        loop {
            self.signals.phase.set(Phase::Waiting(position.max(1)));
            js::sleep(ADMISSION_POLL_MS).await;
            let admission =
                api::check_admission(&self.params.meeting, &waiting.ticket, self.avoid.as_slice())
                    .await
                    .map_err(grant_failure)?;
            match AdmissionState::try_from(admission.state) {
                Ok(AdmissionState::Admitted) => {
                    let grant = admission
                        .grant
                        .ok_or_else(|| (Failure::Other("admitted without a grant".into()), true))?;
                    self.admission_ticket = waiting.ticket;
                    self.signals.phase.set(Phase::Connecting);
                    return Ok(grant);
                }
                Ok(AdmissionState::Rejected) => {
                    return Err((Failure::TurnedAway(admission.reason), false))
                }
                _ => position = admission.position,
            }
        }
    }

    /// Grant → connection → Join → Joined. Errors say whether trying again may help.
    async fn join(
        &mut self,
        inbox_tx: transport::Inbox,
        inbox: &mut UnboundedReceiver<Incoming>,
    ) -> Result<(), (Failure, bool)> {
        self.relay_id.clear();
        let encryption_failed = |e: E2eeError| (Failure::Encryption(e.to_string()), false);
        let key = match &self.key {
            Some(key) => key.clone(),
            None => {
                let key = SigningKey::generate().map_err(encryption_failed)?;
                self.key = Some(key.clone());
                key
            }
        };
        let mut grant = api::join_meeting(
            &self.params.meeting,
            &self.params.name,
            self.avoid.as_slice(),
            key.public(),
            &self.admission_ticket,
        )
        .await
        .map_err(grant_failure)?;
        if let Some(waiting) = grant.waiting.take() {
            grant = self.wait_for_admission(waiting).await?;
        }
        // A credential that does not check is said at once: nothing would ever be sent.
        let seed = encryption::seed_of(&key, &grant).map_err(encryption_failed)?;
        let member = seed
            .map(|seed| seed.member())
            .transpose()
            .map_err(encryption_failed)?;
        self.signals.encryption.set(EncryptionView {
            required: member.is_some(),
            ..Default::default()
        });
        self.relay_id = grant
            .relay
            .as_ref()
            .map(|relay| relay.relay_id.clone())
            .unwrap_or_default();
        let connection = transport::connect(&grant, self.params.transport, inbox_tx)
            .await
            .map_err(|reason| (Failure::TransportsBlocked(reason), true))?;
        let kind = connection.kind();
        let (joining, join) = Joining::start(
            JoinRequest {
                token: grant.token.clone(),
                meeting_id: grant.meeting_id.clone(),
                client: "web/0.1".into(),
            },
            js::now_ms() as u64,
            JOIN_TIMEOUT_MS,
        );
        connection.send(&envelope(join));
        *self.link.borrow_mut() = Some(connection);
        let joined = loop {
            let remaining = joining.remaining_ms(js::now_ms() as u64) as i32;
            let next = select! {
                message = inbox.next() => message,
                _ = js::sleep(remaining).fuse() => None,
            };
            match next {
                Some(Incoming::Envelope(message, _)) => {
                    match message.body.map(|body| joining.receive(body)) {
                        Some(JoinStep::Joined(joined)) => break joined,
                        Some(JoinStep::Refused { code, message }) => {
                            return Err(relay_failure(code, &message))
                        }
                        Some(JoinStep::Waiting) | None => {}
                    }
                }
                Some(Incoming::Closed(reason)) => return Err((Failure::Other(reason), true)),
                None => {
                    return Err((
                        Failure::Other("the relay did not answer the join".into()),
                        true,
                    ))
                }
            }
        };
        self.core.open(joined.clone());
        self.signals.me.with_mut(|me| me.role = joined.role());
        self.signals.locked.set(joined.locked);
        self.show_peers();
        if let Some(member) = member {
            let out = self
                .core
                .start_encryption(member)
                .map_err(|e| (Failure::Encryption(e.to_string()), false))?;
            for body in out {
                self.send(body);
            }
        }
        let fallback_reason = (self.params.transport == TransportChoice::Auto
            && kind == transport::TransportKind::WebSocket)
            .then(|| "WebTransport unavailable or blocked".to_owned());
        self.signals.connection.with_mut(|view| {
            view.transport = kind.to_string();
            view.fallback_reason = fallback_reason;
        });
        self.signals.phase.set(Phase::Connected);
        self.start_media().await;
        self.send_state();
        // A hand raised before a reconnect stays raised (at the back of the line).
        if self.signals.me.peek().hand_raised {
            self.send_hand(true);
        }
        // Everyone already publishing: ask for keyframes so their tiles fill at once.
        for peer in &joined.participants {
            for track in &peer.tracks {
                if track.kind() != MediaKind::Audio {
                    self.ask_keyframe(peer.id, track.id);
                }
            }
        }
        Ok(())
    }

    /// Remembers the relay of the latest grant as lost, for the next grant to avoid.
    fn avoid_current_relay(&mut self) {
        let relay = std::mem::take(&mut self.relay_id);
        self.avoid.lost(&relay);
    }

    /// The meeting loop; returns why it ended and, when it cannot go on, the failure.
    async fn serve(
        &mut self,
        inbox: &mut UnboundedReceiver<Incoming>,
        commands: &mut UnboundedReceiver<Command>,
    ) -> (String, Option<Failure>) {
        // One timer across iterations: media arrives far more often than it fires.
        let mut tick = Box::pin(js::sleep(500).fuse());
        let mut opening = Opening::new();
        loop {
            select! {
                message = inbox.next() => match message {
                    Some(Incoming::Envelope(message, size)) => {
                        self.params.stats.borrow_mut().received.add(js::now_ms(), size);
                        if let Some(end) = self.receive(message.body, &mut opening) {
                            return end;
                        }
                    }
                    Some(Incoming::Closed(reason)) => {
                        let failure = closed_failure(&reason);
                        return (reason, failure);
                    }
                    None => return ("connection lost".into(), None),
                },
                opened = opening.select_next_some() => {
                    if let Some(end) = opened.and_then(|body| self.handle(body)) {
                        return end;
                    }
                },
                command = commands.next() => match command {
                    Some(command) => {
                        self.command(command).await;
                        if self.left {
                            return ("left".into(), None);
                        }
                    }
                    None => {
                        self.left = true;
                        return ("left".into(), None);
                    }
                },
                _ = tick => {
                    tick = Box::pin(js::sleep(500).fuse());
                    self.tick();
                    // Both sides ping every 2 s: silence means the relay is gone, even when
                    // the transport has not noticed (a QUIC peer that died sends no close).
                    if self.core.silent() {
                        return ("no word from the relay for 6 s".into(), None);
                    }
                }
            }
        }
    }

    fn send(&self, body: Body) {
        if let Some(connection) = self.link.borrow().as_ref() {
            connection.send(&envelope(body));
        }
    }

    /// Takes a message from the relay: answers at once, the roster shown at once, and the
    /// message handed on in the order messages came (now, unless one before it, or it, is
    /// still being opened).
    fn receive(
        &mut self,
        body: Option<Body>,
        opening: &mut Opening,
    ) -> Option<(String, Option<Failure>)> {
        let arrived = self.core.receive(body?);
        for answer in arrived.answers {
            self.send(answer);
        }
        self.group_events();
        // Who is there is the core's roster; the UI shows it.
        if arrived.roster.is_some() {
            self.show_peers();
        }
        match arrived.body {
            Soon::Now(body) if opening.is_empty() => self.handle(body?),
            body => {
                opening.push_back(body.into_future());
                None
            }
        }
    }

    /// Acts on a message from the relay (opened where it was sealed).
    fn handle(&mut self, body: Body) -> Option<(String, Option<Failure>)> {
        match body {
            Body::ParticipantUpdated(updated) => {
                if let Some(peer) = updated.participant {
                    if !peer_view(&peer).screen {
                        self.videos.remove(&(peer.id, SCREEN_TRACK));
                    }
                }
            }
            Body::ActiveSpeakers(speakers) => {
                self.active_speakers = speakers.participant_ids;
                self.show_peers();
            }
            Body::ParticipantLeft(left) => {
                let id = left.participant_id;
                self.videos.retain(|(peer, _), _| *peer != id);
                self.audios.remove(&id);
            }
            Body::Media(media) => {
                let peer = media.participant_id;
                if media.kind() == MediaKind::Audio {
                    let stats = self.params.stats.clone();
                    let context = self.params.audio.clone();
                    let alive = self
                        .audios
                        .entry(peer)
                        .or_insert_with(|| AudioReceiver::new(peer, context, stats))
                        .receive(&media);
                    if !alive {
                        // The next packet starts a fresh decoder.
                        self.audios.remove(&peer);
                    }
                } else {
                    let stats = self.params.stats.clone();
                    if media.track_id == CAMERA_TRACK {
                        stats.borrow_mut().layer_by_peer.insert(peer, media.layer);
                    }
                    let decoded = self
                        .videos
                        .entry((peer, media.track_id))
                        .or_insert_with(|| VideoReceiver::new(peer, media.track_id, stats))
                        .receive(&media);
                    if decoded == Decoded::NeedKeyframe {
                        self.ask_keyframe(peer, media.track_id);
                    }
                }
            }
            Body::KeyframeRequest(request) => {
                let sender = match request.track_id {
                    SCREEN_TRACK => self.screen.as_ref(),
                    _ => self.camera.as_ref(),
                };
                if let Some(sender) = sender {
                    sender.request_keyframe(Some(request.layer));
                }
            }
            Body::LayerDemand(demand) => {
                let sender = match demand.track_id {
                    SCREEN_TRACK => self.screen.as_ref(),
                    _ => self.camera.as_ref(),
                };
                if let Some(sender) = sender {
                    sender.set_demand(&demand.layers);
                }
            }
            Body::Data(data) if data.topic == videocall_client_core::CHAT_TOPIC => {
                let from = self
                    .signals
                    .peers
                    .peek()
                    .iter()
                    .find(|p| p.id == data.from_participant_id)
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| "someone".into());
                self.signals.chat.with_mut(|chat| {
                    chat.push(ChatLine {
                        from,
                        text: data.text,
                    })
                });
            }
            Body::Congestion(notice) => {
                self.last_congestion_ms = js::now_ms();
                let sender = match notice.track_id {
                    SCREEN_TRACK => self.screen.as_ref(),
                    _ => self.camera.as_ref(),
                };
                if let Some(sender) = sender {
                    sender.congested();
                }
            }
            Body::Error(error) => {
                web_sys::console::warn_1(
                    &format!("relay: {:?}: {}", error.code(), error.message).into(),
                );
                if error.fatal {
                    let (failure, retry) = meeting_failure(error.code(), &error.message);
                    return Some((error.message, (!retry).then_some(failure)));
                }
                // A host action refused (its role), a message too large: said, and the
                // meeting goes on.
                self.tell(&format!("The relay refused that: {}", error.message));
            }
            Body::HostNotice(notice) => self.host_notice(notice),
            Body::MeetingUpdated(updated) => self.meeting_updated(updated),
            Body::Draining(_) => {
                return Some(("the relay is restarting".into(), None));
            }
            _ => {}
        }
        None
    }

    /// The UI's participants: the core's roster.
    fn show_peers(&mut self) {
        let me = self.core.participant_id();
        let loudest_other = self.active_speakers.iter().find(|&&id| Some(id) != me);
        let peers = self
            .core
            .participants()
            .iter()
            .map(|peer| PeerView {
                active: loudest_other == Some(&peer.id),
                quality: self.quality.of(peer.id),
                ..peer_view(peer)
            })
            .collect();
        self.signals.peers.set(peers);
    }

    fn ask_keyframe(&mut self, peer: u64, track: u32) {
        if let Some(request) = self.core.ask_keyframe(peer, track) {
            self.send(request);
        }
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Mute(muted) => self.set_muted(muted),
            Command::CameraOff(off) => self.set_camera_off(off),
            Command::RaiseHand(raised) => self.raise_hand(raised),
            Command::Host(action) => self.host_action(action),
            Command::AcceptUnmute(kind) => self.accept_unmute(kind),
            Command::SwitchCamera(id) => self.switch_camera(&id).await,
            Command::SwitchMicrophone(id) => self.switch_microphone(&id).await,
            Command::SwitchSpeaker(id) => self.switch_speaker(&id).await,
            Command::ShareScreen(true) => {
                if self.signals.me.peek().video_locked {
                    self.tell(
                        "A host stopped your video: you can share again when a host asks you to.",
                    );
                } else if self.screen.is_none() {
                    self.start_screen().await;
                    self.send_state();
                }
            }
            Command::ShareScreen(false) => {
                self.stop_screen();
                self.send_state();
            }
            Command::Chat(text) => {
                let text = text.trim().to_owned();
                if text.is_empty() {
                    return;
                }
                // Never in clear where the meeting is encrypted: not in the group yet, not sent.
                let from = match self.core.chat(&text) {
                    Ok(message) => {
                        self.send(message);
                        format!("{} (you)", self.params.name)
                    }
                    Err(E2eeError::NoGroup) => {
                        format!(
                            "{} (you, not sent: not in the encrypted group yet)",
                            self.params.name
                        )
                    }
                    Err(e) => format!("{} (you, not sent: {e})", self.params.name),
                };
                self.signals
                    .chat
                    .with_mut(|chat| chat.push(ChatLine { from, text }));
            }
            Command::Speaking(speaking) => {
                self.speaking = speaking;
                self.signals.speaking.set(speaking);
                self.send_state();
            }
            Command::Leave => {
                self.send(Body::Leave(videocall_protocol::wire::Leave {
                    reason: "left".into(),
                }));
                self.left = true;
            }
        }
    }

    fn tick(&mut self) {
        for body in self.core.poll() {
            self.send(body);
        }
        self.tell_views();
        self.group_events();
        let now = js::now_ms();
        // The roster is copied out of the core only when a look is due (every 2 s).
        let renewed = self.quality.due(now) && {
            let participants = self.core.participants();
            let stats = self.params.stats.borrow();
            self.quality.look(now, &participants, &stats)
        };
        if renewed {
            self.show_peers();
        }
        if let Some(rtt) = self.core.rtt_ms() {
            self.params.stats.borrow_mut().rtt_ms = Some(rtt as f64);
        }
        if now - self.last_congestion_ms >= RECOVER_AFTER_MS {
            for sender in [self.camera.as_ref(), self.screen.as_ref()]
                .into_iter()
                .flatten()
            {
                sender.recover();
            }
        }
        let view = {
            let mut stats = self.params.stats.borrow_mut();
            let (send_bps, _) = stats.sent.rate(now);
            let (receive_bps, _) = stats.received.rate(now);
            let (_, fps_sent) = stats.encoded.rate(now);
            let (_, fps_received) = stats.decoded.rate(now);
            (
                send_bps,
                receive_bps,
                fps_sent,
                fps_received,
                stats.rtt_ms,
                stats.dropped_frames,
            )
        };
        let video_kbps = self
            .camera
            .as_ref()
            .map(|c| c.bitrate() / 1000)
            .unwrap_or(0);
        // The camera may change codec on the way (a slow H.264 encoder gives way to VP8).
        let codec = self
            .camera
            .as_ref()
            .map(|c| format!("{:?}", c.codec()))
            .unwrap_or_default();
        self.signals.connection.with_mut(|connection| {
            connection.send_kbps = view.0 / 1000.0;
            connection.receive_kbps = view.1 / 1000.0;
            connection.fps_sent = view.2;
            connection.fps_received = view.3;
            connection.rtt_ms = view.4;
            connection.dropped_frames = view.5;
            connection.video_kbps = video_kbps;
            connection.codec = codec;
            connection.quality = crate::quality::own(view.4, now - self.last_congestion_ms);
        });
        publish_test_figures(self);
    }

    /// Tells the relay how large the page shows each remote video now, where that changed.
    fn tell_views(&mut self) {
        let mut measured = Vec::new();
        for peer in self.core.participants() {
            for track in &peer.tracks {
                if !matches!(track.kind(), MediaKind::Video | MediaKind::Screen) {
                    continue;
                }
                if let Some((width, height)) = views::measure(peer.id, track.id) {
                    measured.push((peer.id, track.id, width, height));
                }
            }
        }
        let changes = self.views.changes(&measured);
        if !changes.is_empty() {
            self.send(Body::ViewTracks(ViewTracks { views: changes }));
        }
    }

    fn disconnect(&mut self) {
        self.core.close();
        self.quality.reset();
        self.views.reset();
        if let Some(connection) = self.link.borrow_mut().take() {
            connection.close();
        }
        self.videos.clear();
        self.audios.clear();
        self.signals.peers.set(Vec::new());
    }

    fn stop_media(&mut self) {
        for sender in [self.camera.take(), self.screen.take()]
            .into_iter()
            .flatten()
        {
            sender.stop();
        }
        if let Some(microphone) = self.microphone.take() {
            microphone.stop();
        }
        for track in self.params.local.get_tracks().iter() {
            if let Ok(track) = wasm_bindgen::JsCast::dyn_into::<MediaStreamTrack>(track) {
                track.stop();
            }
        }
        self.signals.sharing.set(None);
    }
}
