//! One person in one meeting: joins through the control plane, connects (and reconnects) to
//! the relay, sends the local tracks, decodes everyone else's, and keeps the UI's signals
//! current. Everything runs in one task that reacts to the relay, the UI's commands and a
//! clock, so the state lives in one place.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use dioxus::prelude::*;
use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::{select, FutureExt, StreamExt};
use videocall_protocol::envelope::envelope;
use videocall_protocol::wire::{
    envelope::Body, DataMessage, ErrorCode, Join, KeyframeRequest, MediaKind, Participant, Ping,
    Pong, Track, UpdateState,
};
use web_sys::{AudioContext, MediaStream, MediaStreamTrack};

use crate::api;
use crate::grpc_web::{code, CallError};
use crate::js;
use crate::media::audio_recv::AudioReceiver;
use crate::media::audio_send::AudioSender;
use crate::media::video_recv::{Decoded, VideoReceiver};
use crate::media::video_send::VideoSender;
use crate::media::{MediaOut, SharedStats, AUDIO_TRACK, CAMERA_TRACK, SCREEN_TRACK};
use crate::route::{CaptureChoice, TransportChoice};
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
}

/// One participant as the UI shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerView {
    /// Relay participant id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Microphone muted.
    pub audio_muted: bool,
    /// Camera off.
    pub video_muted: bool,
    /// Speaking now.
    pub speaking: bool,
    /// Publishes a camera.
    pub camera: bool,
    /// Shares a screen.
    pub screen: bool,
}

/// One chat line.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatLine {
    /// Who wrote it.
    pub from: String,
    /// What they wrote.
    pub text: String,
}

/// The connection panel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionView {
    /// WebTransport or WebSocket.
    pub transport: String,
    /// Why WebTransport was not used, if it was not.
    pub fallback_reason: Option<String>,
    /// Round trip to the relay.
    pub rtt_ms: Option<f64>,
    /// Sending, kbit/s.
    pub send_kbps: f64,
    /// Receiving, kbit/s.
    pub receive_kbps: f64,
    /// Frames encoded per second.
    pub fps_sent: f64,
    /// Frames decoded per second.
    pub fps_received: f64,
    /// Frames skipped by encoders or decoders.
    pub dropped_frames: u64,
    /// Video codec sent.
    pub codec: String,
    /// Camera bitrate now, kbit/s.
    pub video_kbps: u32,
}

/// Why the meeting cannot go on.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The meeting has as many participants as it admits.
    MeetingFull,
    /// This person may not join.
    NotAllowed(String),
    /// No such meeting.
    NotFound,
    /// The meeting ended or the grant expired.
    Expired(String),
    /// The control plane cannot be reached.
    Unreachable(String),
    /// Neither WebTransport nor WebSocket connects.
    TransportsBlocked(String),
    /// Anything else.
    Other(String),
}

/// Where the session is.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Joining.
    Connecting,
    /// In the meeting.
    Connected,
    /// Lost the relay; trying again.
    Reconnecting(String),
    /// Cannot go on.
    Failed(Failure),
    /// Left on purpose.
    Left,
}

/// The signals the session writes and the UI reads.
#[derive(Clone, Copy)]
pub struct MeetingSignals {
    /// Where the session is.
    pub phase: Signal<Phase>,
    /// Everyone else.
    pub peers: Signal<Vec<PeerView>>,
    /// The chat.
    pub chat: Signal<Vec<ChatLine>>,
    /// The connection panel.
    pub connection: Signal<ConnectionView>,
    /// Own speaking state.
    pub speaking: Signal<bool>,
    /// Sharing the screen.
    pub sharing: Signal<Option<MediaStream>>,
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
}

type Link = Rc<RefCell<Option<Connection>>>;

const CAMERA_BITRATE: u32 = 1_000_000;
const SCREEN_BITRATE: u32 = 1_500_000;
const RECONNECT_ATTEMPTS: u32 = 15;
const JOIN_TIMEOUT_MS: f64 = 5000.0;
const PING_INTERVAL_MS: f64 = 2000.0;
const RECOVER_AFTER_MS: f64 = 3000.0;
const KEYFRAME_REQUEST_INTERVAL_MS: f64 = 500.0;
/// Both sides ping every 2 s: this long without a word means the relay is gone, even when the
/// transport has not noticed (a QUIC peer that died sends no close; idle timeouts are long).
const SILENCE_TIMEOUT_MS: f64 = 6000.0;

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
    audios: HashMap<u64, AudioReceiver>,
    keyframe_asked: HashMap<(u64, u32), f64>,
    muted: bool,
    camera_off: bool,
    speaking: bool,
    last_ping_ms: f64,
    last_congestion_ms: f64,
    left: bool,
}

/// Runs the session until the person leaves or it fails; the UI follows through `signals`.
pub async fn run(
    params: SessionParams,
    mut signals: MeetingSignals,
    commands_tx: UnboundedSender<Command>,
    mut commands: UnboundedReceiver<Command>,
) {
    let muted = params.muted;
    let camera_off = params.camera_off;
    let mut session = Session {
        params,
        signals,
        link: Rc::new(RefCell::new(None)),
        commands_tx,
        camera: None,
        screen: None,
        microphone: None,
        videos: HashMap::new(),
        audios: HashMap::new(),
        keyframe_asked: HashMap::new(),
        muted,
        camera_off,
        speaking: false,
        last_ping_ms: 0.0,
        last_congestion_ms: 0.0,
        left: false,
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
                let reason = session.serve(&mut inbox, &mut commands).await;
                session.disconnect();
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

impl Session {
    /// Grant → connection → Join → Joined. Errors say whether trying again may help.
    async fn join(
        &mut self,
        inbox_tx: transport::Inbox,
        inbox: &mut UnboundedReceiver<Incoming>,
    ) -> Result<(), (Failure, bool)> {
        let grant = api::join_meeting(&self.params.meeting, &self.params.name)
            .await
            .map_err(grant_failure)?;
        let connection = transport::connect(&grant, self.params.transport, inbox_tx)
            .await
            .map_err(|reason| (Failure::TransportsBlocked(reason), true))?;
        let kind = connection.kind();
        connection.send(&envelope(Body::Join(Join {
            token: grant.token.clone(),
            meeting_id: grant.meeting_id.clone(),
            client: "web/0.1".into(),
        })));
        *self.link.borrow_mut() = Some(connection);
        let deadline = js::now_ms() + JOIN_TIMEOUT_MS;
        let joined = loop {
            let remaining = (deadline - js::now_ms()).max(0.0) as i32;
            let next = select! {
                message = inbox.next() => message,
                _ = js::sleep(remaining).fuse() => None,
            };
            match next {
                Some(Incoming::Envelope(message, _)) => match message.body {
                    Some(Body::Joined(joined)) => break joined,
                    Some(Body::Error(error)) => {
                        return Err(relay_failure(error.code(), &error.message))
                    }
                    _ => {}
                },
                Some(Incoming::Closed(reason)) => return Err((Failure::Other(reason), true)),
                None => {
                    return Err((
                        Failure::Other("the relay did not answer the join".into()),
                        true,
                    ))
                }
            }
        };
        self.signals
            .peers
            .set(joined.participants.iter().map(peer_view).collect());
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

    /// The meeting loop; returns why it ended and, when it cannot go on, the failure.
    async fn serve(
        &mut self,
        inbox: &mut UnboundedReceiver<Incoming>,
        commands: &mut UnboundedReceiver<Command>,
    ) -> (String, Option<Failure>) {
        // One timer across iterations: media arrives far more often than it fires.
        let mut tick = Box::pin(js::sleep(500).fuse());
        let mut last_heard_ms = js::now_ms();
        loop {
            select! {
                message = inbox.next() => match message {
                    Some(Incoming::Envelope(message, size)) => {
                        last_heard_ms = js::now_ms();
                        self.params.stats.borrow_mut().received.add(last_heard_ms, size);
                        if let Some(end) = self.handle(message.body) {
                            return end;
                        }
                    }
                    Some(Incoming::Closed(reason)) => return (reason, None),
                    None => return ("connection lost".into(), None),
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
                    if js::now_ms() - last_heard_ms > SILENCE_TIMEOUT_MS {
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

    fn handle(&mut self, body: Option<Body>) -> Option<(String, Option<Failure>)> {
        match body? {
            Body::ParticipantJoined(joined) => {
                if let Some(peer) = joined.participant {
                    let view = peer_view(&peer);
                    self.signals.peers.with_mut(|peers| {
                        peers.retain(|p| p.id != view.id);
                        peers.push(view);
                    });
                }
            }
            Body::ParticipantUpdated(updated) => {
                if let Some(peer) = updated.participant {
                    let view = peer_view(&peer);
                    if !view.screen {
                        self.videos.remove(&(view.id, SCREEN_TRACK));
                    }
                    self.signals.peers.with_mut(|peers| {
                        match peers.iter_mut().find(|p| p.id == view.id) {
                            Some(existing) => *existing = view,
                            None => peers.push(view),
                        }
                    });
                }
            }
            Body::ParticipantLeft(left) => {
                let id = left.participant_id;
                self.videos.retain(|(peer, _), _| *peer != id);
                self.audios.remove(&id);
                self.signals
                    .peers
                    .with_mut(|peers| peers.retain(|p| p.id != id));
            }
            Body::Media(media) => {
                let peer = media.participant_id;
                if media.kind() == MediaKind::Audio {
                    let stats = self.params.stats.clone();
                    let context = self.params.audio.clone();
                    self.audios
                        .entry(peer)
                        .or_insert_with(|| AudioReceiver::new(peer, context, stats))
                        .receive(&media);
                } else {
                    let stats = self.params.stats.clone();
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
                    sender.request_keyframe();
                }
            }
            Body::Ping(ping) => self.send(Body::Pong(Pong {
                nonce: ping.nonce,
                sent_at_us: ping.sent_at_us,
            })),
            Body::Pong(pong) => {
                let rtt = js::now_ms() - pong.sent_at_us as f64 / 1000.0;
                self.params.stats.borrow_mut().rtt_ms = Some(rtt.max(0.0));
            }
            Body::Data(data) if data.topic == "chat" => {
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
                    let (failure, retry) = relay_failure(error.code(), &error.message);
                    return Some((error.message, (!retry).then_some(failure)));
                }
            }
            Body::Draining(_) => {
                return Some(("the relay is restarting".into(), None));
            }
            _ => {}
        }
        None
    }

    fn ask_keyframe(&mut self, peer: u64, track: u32) {
        let now = js::now_ms();
        let last = self.keyframe_asked.entry((peer, track)).or_insert(0.0);
        if now - *last < KEYFRAME_REQUEST_INTERVAL_MS {
            return;
        }
        *last = now;
        self.send(Body::KeyframeRequest(KeyframeRequest {
            participant_id: peer,
            track_id: track,
        }));
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Mute(muted) => {
                self.muted = muted;
                if let Some(microphone) = &self.microphone {
                    microphone.set_muted(muted);
                }
                self.send_state();
            }
            Command::CameraOff(off) => {
                self.camera_off = off;
                if let Some(camera) = &self.camera {
                    camera.set_paused(off);
                }
                for track in self.params.local.get_video_tracks().iter() {
                    if let Ok(track) = wasm_bindgen::JsCast::dyn_into::<MediaStreamTrack>(track) {
                        track.set_enabled(!off);
                    }
                }
                self.send_state();
            }
            Command::ShareScreen(true) => {
                if self.screen.is_none() {
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
                self.send(Body::Data(DataMessage {
                    topic: "chat".into(),
                    text: text.clone(),
                    sent_at_ms: js::now_ms() as u64,
                    ..Default::default()
                }));
                let from = format!("{} (you)", self.params.name);
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

    fn send_state(&self) {
        let mut tracks = Vec::new();
        if self.microphone.is_some() {
            tracks.push(track(
                AUDIO_TRACK,
                MediaKind::Audio,
                videocall_protocol::wire::Codec::Opus,
            ));
        }
        if let Some(camera) = &self.camera {
            tracks.push(track(CAMERA_TRACK, MediaKind::Video, camera.codec()));
        }
        if let Some(screen) = &self.screen {
            tracks.push(track(SCREEN_TRACK, MediaKind::Screen, screen.codec()));
        }
        self.send(Body::UpdateState(UpdateState {
            audio_muted: self.muted,
            video_muted: self.camera_off,
            speaking: self.speaking && !self.muted,
            tracks,
            display_name: String::new(),
        }));
    }

    fn media_out(&self) -> MediaOut {
        let link = self.link.clone();
        let stats = self.params.stats.clone();
        Rc::new(move |message| {
            if let Some(connection) = link.borrow().as_ref() {
                stats
                    .borrow_mut()
                    .sent
                    .add(js::now_ms(), prost::Message::encoded_len(&message));
                connection.send_media(&message);
            }
        })
    }

    /// Starts the camera and microphone senders once; they outlive reconnects.
    async fn start_media(&mut self) {
        let element = self.params.capture == CaptureChoice::Element;
        if self.camera.is_none() {
            if let Some(track) = first_track(&self.params.local.get_video_tracks()) {
                match VideoSender::start(
                    track,
                    CAMERA_TRACK,
                    MediaKind::Video,
                    element,
                    CAMERA_BITRATE,
                    self.media_out(),
                    self.params.stats.clone(),
                )
                .await
                {
                    Ok(sender) => {
                        sender.set_paused(self.camera_off);
                        self.camera = Some(sender);
                    }
                    Err(error) => web_sys::console::warn_1(&format!("camera: {error}").into()),
                }
            }
        }
        if self.microphone.is_none() {
            if let Some(track) = first_track(&self.params.local.get_audio_tracks()) {
                let commands = self.commands_tx.clone();
                let on_speaking = Box::new(move |speaking| {
                    let _ = commands.unbounded_send(Command::Speaking(speaking));
                });
                let context = self.params.audio.clone();
                match AudioSender::start(track, element, context, self.media_out(), on_speaking)
                    .await
                {
                    Ok(sender) => {
                        sender.set_muted(self.muted);
                        self.microphone = Some(sender);
                    }
                    Err(error) => web_sys::console::warn_1(&format!("microphone: {error}").into()),
                }
            }
        }
        if let Some(camera) = &self.camera {
            camera.request_keyframe();
            self.signals.connection.with_mut(|view| {
                view.codec = format!("{:?}", camera.codec());
            });
        }
    }

    async fn start_screen(&mut self) {
        let stream = match crate::media::capture::display_media().await {
            Ok(stream) => stream,
            Err(error) => {
                web_sys::console::warn_1(&format!("screen share: {error}").into());
                return;
            }
        };
        let Some(track) = first_track(&stream.get_video_tracks()) else {
            return;
        };
        // The browser's own "stop sharing" button ends the track.
        let commands = self.commands_tx.clone();
        let on_ended = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
            let _ = commands.unbounded_send(Command::ShareScreen(false));
        });
        track.set_onended(Some(wasm_bindgen::JsCast::unchecked_ref(on_ended.as_ref())));
        on_ended.forget();
        let element = self.params.capture == CaptureChoice::Element;
        match VideoSender::start(
            track,
            SCREEN_TRACK,
            MediaKind::Screen,
            element,
            SCREEN_BITRATE,
            self.media_out(),
            self.params.stats.clone(),
        )
        .await
        {
            Ok(sender) => {
                self.screen = Some(sender);
                self.signals.sharing.set(Some(stream));
            }
            Err(error) => web_sys::console::warn_1(&format!("screen share: {error}").into()),
        }
    }

    fn stop_screen(&mut self) {
        if let Some(screen) = self.screen.take() {
            screen.stop();
        }
        self.signals.sharing.set(None);
    }

    fn tick(&mut self) {
        let now = js::now_ms();
        if now - self.last_ping_ms >= PING_INTERVAL_MS {
            self.last_ping_ms = now;
            self.send(Body::Ping(Ping {
                nonce: now as u64,
                sent_at_us: (now * 1000.0) as u64,
            }));
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
        });
        publish_test_figures(self);
    }

    fn disconnect(&mut self) {
        if let Some(connection) = self.link.borrow_mut().take() {
            connection.close();
        }
        self.videos.clear();
        self.audios.clear();
        self.keyframe_asked.clear();
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

fn track(id: u32, kind: MediaKind, codec: videocall_protocol::wire::Codec) -> Track {
    Track {
        id,
        kind: kind as i32,
        codec: codec as i32,
    }
}

fn first_track(tracks: &js_sys::Array) -> Option<MediaStreamTrack> {
    tracks
        .iter()
        .next()
        .and_then(|t| wasm_bindgen::JsCast::dyn_into(t).ok())
}

fn peer_view(peer: &Participant) -> PeerView {
    PeerView {
        id: peer.id,
        name: if peer.display_name.is_empty() {
            peer.user.clone()
        } else {
            peer.display_name.clone()
        },
        audio_muted: peer.audio_muted,
        video_muted: peer.video_muted,
        speaking: peer.speaking,
        camera: peer.tracks.iter().any(|t| t.kind() == MediaKind::Video),
        screen: peer.tracks.iter().any(|t| t.kind() == MediaKind::Screen),
    }
}

fn grant_failure(error: CallError) -> (Failure, bool) {
    match error {
        CallError::Status { code, message } => match code {
            code::RESOURCE_EXHAUSTED => (Failure::MeetingFull, false),
            code::PERMISSION_DENIED | code::UNAUTHENTICATED => {
                (Failure::NotAllowed(message), false)
            }
            code::NOT_FOUND => (Failure::NotFound, false),
            code::FAILED_PRECONDITION => (Failure::Expired(message), false),
            code::UNAVAILABLE => (Failure::Unreachable(message), true),
            _ => (Failure::Other(message), false),
        },
        CallError::Unreachable(message) => (Failure::Unreachable(message), true),
        CallError::Malformed(message) => (Failure::Other(message.to_owned()), false),
    }
}

/// An error from the relay: what to tell, and whether a new grant may help.
fn relay_failure(code: ErrorCode, message: &str) -> (Failure, bool) {
    let message = message.to_owned();
    match code {
        ErrorCode::MeetingFull => (Failure::MeetingFull, false),
        ErrorCode::Forbidden | ErrorCode::TokenInvalid | ErrorCode::TokenWrongMeeting => {
            (Failure::NotAllowed(message), false)
        }
        ErrorCode::MeetingEnded => (Failure::Expired(message), false),
        // A token that expired or a key the relay does not know yet: a fresh grant helps.
        ErrorCode::TokenExpired | ErrorCode::TokenUnknownKey => (Failure::Expired(message), true),
        _ => (Failure::Other(message), true),
    }
}

/// `window.__videocall`: the figures the browser tests read.
fn publish_test_figures(session: &Session) {
    let stats = session.params.stats.borrow();
    let object = js_sys::Object::new();
    let peers = session.signals.peers.peek();
    let by_name = |counts: &HashMap<u64, u64>| {
        let map = js_sys::Object::new();
        for (id, count) in counts {
            let name = peers
                .iter()
                .find(|p| p.id == *id)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| id.to_string());
            js::set(&map, &name, &(*count as f64).into());
        }
        map
    };
    let connection = session.signals.connection.peek();
    js::set(&object, "transport", &connection.transport.as_str().into());
    js::set(&object, "codec", &connection.codec.as_str().into());
    js::set(
        &object,
        "framesDecoded",
        &(stats.frames_decoded as f64).into(),
    );
    js::set(&object, "framesByPeer", &by_name(&stats.frames_by_peer));
    js::set(
        &object,
        "audioFramesDecoded",
        &(stats.audio_frames_decoded as f64).into(),
    );
    js::set(&object, "audioByPeer", &by_name(&stats.audio_by_peer));
    js::set(
        &object,
        "droppedFrames",
        &(stats.dropped_frames as f64).into(),
    );
    let latencies = js_sys::Array::new();
    for value in &stats.glass_to_glass_ms {
        latencies.push(&(*value).into());
    }
    js::set(&object, "glassToGlassMs", &latencies);
    if let (Some(clicked), Some(first)) = (stats.join_clicked_ms, stats.first_remote_frame_ms) {
        js::set(&object, "joinToFirstFrameMs", &(first - clicked).into());
    }
    if let Some(rtt) = stats.rtt_ms {
        js::set(&object, "rttMs", &rtt.into());
    }
    js::set(&js_sys::global(), "__videocall", &object);
}
