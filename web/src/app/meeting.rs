//! In the meeting: the grid of tiles, the controls, chat, participants and connection panels,
//! and the screens for reconnecting, failing and leaving.

use std::cell::RefCell;
use std::rc::Rc;

use dioxus::prelude::*;
use futures_channel::mpsc::UnboundedSender;
use web_sys::{AudioContext, AudioContextOptions, MediaStream};

use super::lobby::{attach, Lobby, LobbyChoice};
use super::{describe, Notice};
use crate::js;
use crate::media::video_recv::canvas_id;
use crate::media::{Stats, CAMERA_TRACK, SCREEN_TRACK};
use crate::route::{CaptureChoice, FramesChoice, SimulcastChoice, TransportChoice};
use crate::session::{
    self, Command, ConnectionView, EncryptionView, MeetingSignals, PeerView, Phase, SessionParams,
};

/// `/meeting/<user>/<meeting>`: the lobby, then the meeting.
#[component]
pub fn MeetingPage(
    user: String,
    meeting: String,
    transport: TransportChoice,
    capture: CaptureChoice,
    video_size: (u32, u32),
    frames: FramesChoice,
    simulcast: SimulcastChoice,
) -> Element {
    let mut joined: Signal<Option<LobbyChoice>> = use_signal(|| None);
    let signals = MeetingSignals {
        phase: use_signal(|| Phase::Connecting),
        peers: use_signal(Vec::new),
        chat: use_signal(Vec::new),
        connection: use_signal(ConnectionView::default),
        speaking: use_signal(|| false),
        sharing: use_signal(|| None),
        encryption: use_signal(EncryptionView::default),
    };
    let mut commands: Signal<Option<UnboundedSender<Command>>> = use_signal(|| None);
    let meeting_id = meeting.clone();

    let start = move |choice: LobbyChoice| {
        let stats = Rc::new(RefCell::new(Stats {
            join_clicked_ms: Some(js::now_ms()),
            ..Default::default()
        }));
        // Created inside the click: browsers only start audio after a gesture.
        let options = AudioContextOptions::new();
        options.set_sample_rate(48_000.0);
        let Ok(audio) = AudioContext::new_with_context_options(&options) else {
            return;
        };
        let _ = audio.resume();
        let (tx, rx) = session::commands();
        commands.set(Some(tx.clone()));
        let params = SessionParams {
            meeting: meeting_id.clone(),
            name: choice.name.clone(),
            transport,
            capture,
            frames,
            simulcast: match simulcast {
                SimulcastChoice::On => true,
                SimulcastChoice::Off => false,
                SimulcastChoice::Auto => {
                    capture != CaptureChoice::Element && js::has_global("MediaStreamTrackProcessor")
                }
            },
            local: choice.stream.clone(),
            audio,
            muted: choice.muted,
            camera_off: choice.camera_off,
            stats,
        };
        let mut phase = signals.phase;
        phase.set(Phase::Connecting);
        joined.set(Some(choice));
        spawn(session::run(params, signals, tx, rx));
    };

    let Some(choice) = joined() else {
        return rsx! { Lobby { meeting, user, video_size, on_join: start } };
    };
    let phase = (signals.phase)();
    match phase {
        Phase::Failed(failure) => {
            let (title, detail) = describe(&failure);
            rsx! {
                Notice { title, detail,
                    button { onclick: move |_| joined.set(None), "Back to the lobby" }
                }
            }
        }
        Phase::Left => rsx! {
            Notice { title: "You left the meeting", detail: "Close this tab, or join again.",
                button { onclick: move |_| joined.set(None), "Join again" }
            }
        },
        _ => rsx! {
            InMeeting { meeting, choice_name: choice.name.clone(), local: StreamHandle(choice.stream.clone()),
                signals: SignalsHandle(signals), commands: CommandsHandle(commands), muted: choice.muted,
                camera_off: choice.camera_off }
        },
    }
}

/// Props need `PartialEq`; a stream is equal to itself.
#[derive(Clone)]
pub struct StreamHandle(MediaStream);
impl PartialEq for StreamHandle {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

/// The session's signals as a prop.
#[derive(Clone, Copy)]
pub struct SignalsHandle(MeetingSignals);
impl PartialEq for SignalsHandle {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The command channel as a prop.
#[derive(Clone, Copy)]
pub struct CommandsHandle(Signal<Option<UnboundedSender<Command>>>);
impl PartialEq for CommandsHandle {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl CommandsHandle {
    fn send(&self, command: Command) {
        if let Some(tx) = self.0.peek().as_ref() {
            let _ = tx.unbounded_send(command);
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Panel {
    None,
    Chat,
    People,
    Connection,
}

#[component]
fn InMeeting(
    meeting: String,
    choice_name: String,
    local: StreamHandle,
    signals: SignalsHandle,
    commands: CommandsHandle,
    muted: bool,
    camera_off: bool,
) -> Element {
    let signals = signals.0;
    let mut muted = use_signal(move || muted);
    let mut camera_off = use_signal(move || camera_off);
    let panel = use_signal(|| Panel::None);
    let mut draft = use_signal(String::new);
    let stream = local.0.clone();
    use_effect(move || attach("self-view", Some(&stream)));
    use_effect(move || attach("self-screen", (signals.sharing)().as_ref()));

    let phase = (signals.phase)();
    let connection = (signals.connection)();
    let peers = (signals.peers)();
    let sharing = (signals.sharing)().is_some();
    let speaking = (signals.speaking)();
    let encryption = (signals.encryption)();
    let tiles = 1 + peers.len() + peers.iter().filter(|p| p.screen).count() + usize::from(sharing);
    let columns = (tiles as f64).sqrt().ceil().max(1.0) as usize;
    rsx! {
        div { class: "meeting",
            header { class: "bar",
                span { class: "title", "{meeting}" }
                span { class: "badge", "data-testid": "transport", title: connection.fallback_reason.clone().unwrap_or_default(),
                    if connection.transport.is_empty() { "connecting…" } else { "{connection.transport}" }
                }
                span { class: "count", "{peers.len() + 1} in the meeting" }
                EncryptionBadge { view: encryption.clone() }
            }
            if let Some(refused) = encryption.refusals.last() {
                p { class: "banner warning", role: "alert", "data-testid": "e2ee-refused",
                    "Encryption refused something from another participant: {refused}" }
            }
            match &phase {
                Phase::Reconnecting(why) => rsx! {
                    p { class: "banner", role: "status", "Reconnecting… ({why})" }
                },
                Phase::Connecting => rsx! { p { class: "banner", role: "status", "Connecting…" } },
                Phase::Waiting(position) => rsx! {
                    p { class: "banner", role: "status", "data-testid": "waiting-room",
                        "Waiting for a host to let you in (number {position} in line)…" }
                },
                _ => rsx! {},
            }
            div { class: "body",
                section { class: "grid", style: "--columns: {columns}", "aria-label": "participants' video",
                    div { class: if speaking && !muted() { "tile speaking" } else { "tile" },
                        video { id: "self-view", class: if camera_off() { "off" } else { "" },
                            autoplay: true, muted: true, playsinline: true, "aria-label": "your camera" }
                        TileLabel { name: format!("{choice_name} (you)"), audio_muted: muted() }
                    }
                    if sharing {
                        div { class: "tile screen",
                            video { id: "self-screen", autoplay: true, muted: true, playsinline: true,
                                "aria-label": "your screen" }
                            TileLabel { name: "Your screen".to_string(), audio_muted: false }
                        }
                    }
                    for peer in peers.iter() {
                        RemoteTile { key: "{peer.id}-camera", peer: peer.clone(), enlarge: peer.active && columns >= 2 }
                        if peer.screen {
                            div { key: "{peer.id}-screen", class: "tile screen", "data-peer": "{peer.name}",
                                canvas { id: canvas_id(peer.id, SCREEN_TRACK), "aria-label": "{peer.name}'s screen" }
                                TileLabel { name: format!("{}'s screen", peer.name), audio_muted: false }
                            }
                        }
                    }
                }
                match panel() {
                    Panel::Chat => rsx! {
                        aside { class: "panel", "aria-label": "chat",
                            h2 { "Chat" }
                            ul { class: "chat", "aria-live": "polite",
                                for line in (signals.chat)().iter() {
                                    li { b { "{line.from}: " } "{line.text}" }
                                }
                            }
                            form { onsubmit: move |event| {
                                    event.prevent_default();
                                    commands.send(Command::Chat(draft()));
                                    draft.set(String::new());
                                },
                                input { id: "chat-input", value: "{draft}", maxlength: 2000,
                                    "aria-label": "message", oninput: move |event| draft.set(event.value()) }
                                button { r#type: "submit", "Send" }
                            }
                        }
                    },
                    Panel::People => rsx! {
                        aside { class: "panel", "aria-label": "participants",
                            h2 { "Participants" }
                            ul {
                                li { "{choice_name} (you)" if muted() { " · muted" } }
                                for peer in peers.iter() {
                                    li { "{peer.name}" if peer.audio_muted { " · muted" } if peer.video_muted { " · camera off" } }
                                }
                            }
                            if encryption.required {
                                EncryptionMembers { view: encryption.clone() }
                            }
                        }
                    },
                    Panel::Connection => rsx! { ConnectionPanel { view: connection.clone() } },
                    Panel::None => rsx! {},
                }
            }
            nav { class: "controls", "aria-label": "meeting controls",
                button { id: "mute", "aria-pressed": muted(),
                    "aria-label": if muted() { "unmute microphone" } else { "mute microphone" },
                    onclick: move |_| { let next = !muted(); muted.set(next); commands.send(Command::Mute(next)); },
                    if muted() { "Unmute" } else { "Mute" }
                }
                button { id: "camera", "aria-pressed": camera_off(),
                    "aria-label": if camera_off() { "turn camera on" } else { "turn camera off" },
                    onclick: move |_| { let next = !camera_off(); camera_off.set(next); commands.send(Command::CameraOff(next)); },
                    if camera_off() { "Camera on" } else { "Camera off" }
                }
                button { id: "share", "aria-pressed": sharing,
                    "aria-label": if sharing { "stop sharing the screen" } else { "share the screen" },
                    onclick: move |_| commands.send(Command::ShareScreen(!sharing)),
                    if sharing { "Stop sharing" } else { "Share screen" }
                }
                PanelButton { id: "chat", label: "chat", current: panel, which: Panel::Chat }
                PanelButton { id: "people", label: "participants", current: panel, which: Panel::People }
                PanelButton { id: "stats", label: "connection", current: panel, which: Panel::Connection }
                button { id: "leave", class: "leave", "aria-label": "leave the meeting",
                    onclick: move |_| commands.send(Command::Leave), "Leave" }
            }
        }
    }
}

/// The meeting's encryption state in the header: encrypted (with its epoch), or joining the
/// encrypted group (nothing is sent meanwhile).
#[component]
fn EncryptionBadge(view: EncryptionView) -> Element {
    if !view.required {
        return rsx! {};
    }
    match view.epoch {
        Some(epoch) => rsx! {
            span { class: "badge e2ee", "data-testid": "e2ee", "data-epoch": "{epoch}",
                title: "Media and chat are encrypted end to end: only the participants can read them (epoch {epoch}). The participants panel shows everyone's verification code.",
                "🔒 End-to-end encrypted"
            }
        },
        None => rsx! {
            span { class: "badge e2ee waiting", "data-testid": "e2ee", role: "status",
                title: view.waiting_reason.clone().unwrap_or_default(),
                "🔒 Joining the encrypted group…"
            }
        },
    }
}

/// Every member of the encrypted group with its verification code, for people to compare
/// out of band.
#[component]
fn EncryptionMembers(view: EncryptionView) -> Element {
    rsx! {
        h3 { "End-to-end encryption" }
        p { class: "hint",
            "Read your code to the others: everyone sees the same code for the same person. A code that differs means someone else holds that key."
        }
        ul { "data-testid": "e2ee-members",
            for member in view.members.iter() {
                li { key: "{member.code}", "data-code": "{member.code}",
                    "{member.name}"
                    if member.me { " (you)" }
                    if member.guest { " · guest" }
                    " · "
                    code { "{member.code}" }
                }
            }
        }
    }
}

#[component]
fn PanelButton(id: String, label: String, current: Signal<Panel>, which: Panel) -> Element {
    let open = current() == which;
    rsx! {
        button { id: "{id}", "aria-pressed": open, "aria-label": "{label}",
            onclick: move |_| current.set(if open { Panel::None } else { which }),
            "{label}"
        }
    }
}

#[component]
fn TileLabel(name: String, audio_muted: bool) -> Element {
    rsx! {
        div { class: "label",
            span { "{name}" }
            if audio_muted {
                span { class: "muted-icon", role: "img", "aria-label": "microphone muted", "muted" }
            }
        }
    }
}

/// A remote participant's camera; `enlarge`: the active speaker, shown over two columns and
/// rows (the page then tells the relay it shows it larger).
#[component]
fn RemoteTile(peer: PeerView, enlarge: bool) -> Element {
    let class = match (peer.speaking && !peer.audio_muted, enlarge) {
        (true, true) => "tile speaking active",
        (true, false) => "tile speaking",
        (false, true) => "tile active",
        (false, false) => "tile",
    };
    let hidden = peer.video_muted || !peer.camera;
    let initial = peer
        .name
        .chars()
        .next()
        .unwrap_or('?')
        .to_uppercase()
        .to_string();
    rsx! {
        div { class, "data-peer": "{peer.name}",
            canvas { id: canvas_id(peer.id, CAMERA_TRACK), class: if hidden { "off" } else { "" },
                "aria-label": "{peer.name}'s camera" }
            if hidden {
                div { class: "avatar", "aria-hidden": true, "{initial}" }
            }
            TileLabel { name: peer.name.clone(), audio_muted: peer.audio_muted }
        }
    }
}

#[component]
fn ConnectionPanel(view: ConnectionView) -> Element {
    let rtt = view
        .rtt_ms
        .map(|r| format!("{r:.0} ms"))
        .unwrap_or_else(|| "…".into());
    rsx! {
        aside { class: "panel", "aria-label": "connection",
            h2 { "Connection" }
            dl {
                dt { "Transport" } dd { "data-testid": "panel-transport", "{view.transport}" }
                if let Some(why) = &view.fallback_reason { dt { "Why" } dd { "{why}" } }
                dt { "Round trip" } dd { "{rtt}" }
                dt { "Sending" } dd { "{view.send_kbps:.0} kbit/s" }
                dt { "Receiving" } dd { "{view.receive_kbps:.0} kbit/s" }
                dt { "Video" } dd { "{view.codec} at {view.video_kbps} kbit/s" }
                dt { "Frames sent" } dd { "{view.fps_sent:.0} fps" }
                dt { "Frames received" } dd { "{view.fps_received:.0} fps" }
                dt { "Dropped frames" } dd { "{view.dropped_frames}" }
            }
        }
    }
}
