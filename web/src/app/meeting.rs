//! In the meeting: the tiles (grid or speaker layout, a pinned tile), what hosts did and who
//! waits, the chat, participants and connection panels, and the screens for reconnecting,
//! failing and leaving.

use std::cell::RefCell;
use std::rc::Rc;

use dioxus::prelude::*;
use futures_channel::mpsc::UnboundedSender;
use web_sys::{AudioContext, AudioContextOptions};

use super::controls::{on_shortcut, Controls, Layout};
use super::devices::DevicesPanel;
use super::encryption::EncryptionBadge;
use super::handles::{CloseButton, CommandsHandle, Panel, SignalsHandle, StreamHandle};
use super::icons::{Icon, IconName};
use super::lobby::{attach, Lobby, LobbyChoice};
use super::people::{use_waiting_room, PeoplePanel};
use super::shortcuts::use_shortcuts;
use super::{describe, Notice};
use crate::hosting::{self, MyState};
use crate::js;
use crate::media::video_recv::canvas_id;
use crate::media::{Stats, CAMERA_TRACK, SCREEN_TRACK};
use crate::quality::Quality;
use crate::route::{CaptureChoice, FramesChoice, SimulcastChoice, TransportChoice};
use crate::session::{
    self, Command, ConnectionView, EncryptionView, MeetingSignals, PeerView, Phase, SessionParams,
};
use videocall_protocol::wire::{host_action::Action, EndForAll, MediaKind};

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
        me: use_signal(MyState::default),
        locked: use_signal(|| false),
        notice: use_signal(|| None),
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
            // `Clone::clone`, not `.clone()`: `MediaStream.clone()` is the browser's, which
            // makes a new stream with new tracks (the camera opened again, and left on when
            // the session stops its own).
            local: Clone::clone(&choice.stream),
            audio,
            muted: choice.muted,
            camera_off: choice.camera_off,
            stats,
            video_size,
        };
        let mut phase = signals.phase;
        phase.set(Phase::Connecting);
        let mut me = signals.me;
        me.set(MyState {
            muted: choice.muted,
            camera_off: choice.camera_off,
            ..MyState::default()
        });
        let mut notice = signals.notice;
        notice.set(None);
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
            InMeeting { meeting, choice_name: choice.name.clone(), local: StreamHandle(Clone::clone(&choice.stream)),
                signals: SignalsHandle(signals), commands: CommandsHandle(commands) }
        },
    }
}

/// Which remote participant's tile is pinned.
type Pinned = Signal<Option<u64>>;

#[component]
fn InMeeting(
    meeting: String,
    choice_name: String,
    local: StreamHandle,
    signals: SignalsHandle,
    commands: CommandsHandle,
) -> Element {
    let signals_handle = signals;
    let signals = signals.0;
    let panel = use_context_provider(|| Signal::new(Panel::None));
    let layout = use_signal(|| Layout::Grid);
    let mut pinned: Pinned = use_signal(|| None);
    let mut ending = use_signal(|| false);
    let mut draft = use_signal(String::new);
    let waiting = use_waiting_room(meeting.clone(), signals.me);
    use_shortcuts(move |shortcut| on_shortcut(shortcut, signals_handle, commands, panel, layout));
    let stream = Clone::clone(&local.0);
    use_effect(move || attach("self-view", Some(&stream)));
    use_effect(move || attach("self-screen", (signals.sharing)().as_ref()));

    let phase = (signals.phase)();
    let connection = (signals.connection)();
    let peers = (signals.peers)();
    let me = (signals.me)();
    let locked = (signals.locked)();
    let notice = (signals.notice)();
    let sharing = (signals.sharing)().is_some();
    let speaking = (signals.speaking)();
    let encryption = (signals.encryption)();
    let waiting_count = if hosting::moderates(me.role) {
        waiting().people.len()
    } else {
        0
    };
    let tiles = 1 + peers.len() + peers.iter().filter(|p| p.screen).count() + usize::from(sharing);
    let speaker = layout() == Layout::Speaker;
    // Speaker layout: the pinned participant, else whoever speaks, else the first to come.
    let featured = pinned()
        .filter(|id| peers.iter().any(|p| p.id == *id))
        .or_else(|| {
            if speaker {
                peers
                    .iter()
                    .find(|p| p.active)
                    .or(peers.first())
                    .map(|p| p.id)
            } else {
                None
            }
        });
    let columns = if speaker {
        (tiles - 1).max(1)
    } else {
        (tiles as f64).sqrt().ceil().max(1.0) as usize
    };
    let grid_class = match (speaker, tiles) {
        (true, _) => "grid speaker",
        (false, 2) => "grid pair",
        _ => "grid",
    };
    let invite = format!(
        "{}/meeting/guest/{meeting}",
        js::window().location().origin().unwrap_or_default()
    );
    let mut copied = use_signal(|| false);
    rsx! {
        div { class: "meeting",
            header { class: "bar",
                span { class: "title", "{meeting}" }
                span { class: "badge", "data-testid": "transport", title: connection.fallback_reason.clone().unwrap_or_default(),
                    if connection.transport.is_empty() { "connecting…" } else { "{connection.transport}" }
                }
                span { class: "count", "{peers.len() + 1} in the meeting" }
                if locked {
                    span { class: "badge locked", "data-testid": "locked", title: "A host locked the meeting: nobody new gets in", Icon { name: IconName::Lock } " Locked" }
                }
                EncryptionBadge { view: encryption.clone() }
                button { id: "invite", class: "small", title: "Copy the invitation link: {invite}",
                    "aria-label": "copy the invitation link",
                    onclick: move |_| {
                        let invite = invite.clone();
                        spawn(async move {
                            let ok = js::copy_text(&invite).await;
                            copied.set(ok);
                            js::sleep(3000).await;
                            copied.set(false);
                        });
                    },
                    if copied() { Icon { name: IconName::Check } " Link copied" } else { Icon { name: IconName::Link } " Invite" }
                }
            }
            if let Some(refused) = encryption.refusals.last() {
                p { class: "banner warning", role: "alert", "data-testid": "e2ee-refused",
                    "Encryption refused something from another participant: {refused}" }
            }
            match &phase {
                Phase::Reconnecting(why) => rsx! {
                    p { class: "banner reconnecting", role: "status", "data-testid": "reconnecting",
                        span { class: "spinner", "aria-hidden": true }
                        "Reconnecting… ({why})" }
                },
                Phase::Connecting => rsx! { p { class: "banner", role: "status", "Connecting…" } },
                Phase::Waiting(position) => rsx! {
                    p { class: "banner", role: "status", "data-testid": "waiting-room",
                        "Waiting for a host to let you in (number {position} in line)…" }
                },
                _ => rsx! {},
            }
            if let Some(notice) = notice {
                div { class: "banner host-notice", role: "alert", "data-testid": "host-notice",
                    span { "{notice.text}" }
                    if let Some(kind) = notice.asked_to_unmute {
                        button { id: "accept-unmute", class: "small",
                            onclick: move |_| commands.send(Command::AcceptUnmute(kind)),
                            if kind == MediaKind::Audio { "Unmute" } else { "Start video" } }
                    }
                    button { id: "dismiss-notice", class: "small", "aria-label": "dismiss",
                        onclick: move |_| { let mut notice = signals.notice; notice.set(None) }, Icon { name: IconName::Close } }
                }
            }
            if waiting_count > 0 && panel() != Panel::People {
                div { class: "banner waiting-alert", role: "status",
                    span { if waiting_count == 1 { "1 person is waiting to join." } else { "{waiting_count} people are waiting to join." } }
                    button { id: "show-waiting", class: "small",
                        onclick: move |_| { let mut panel = panel; panel.set(Panel::People) }, "Show" }
                }
            }
            if ending() {
                div { class: "banner end-confirm", role: "alertdialog", "aria-label": "end the meeting for everyone",
                    span { "End the meeting for everyone? Everyone is disconnected." }
                    button { id: "end-all-confirm", class: "small danger",
                        onclick: move |_| { ending.set(false); commands.send(Command::Host(Action::End(EndForAll {}))) },
                        "End for all" }
                    button { id: "end-all-cancel", class: "small", onclick: move |_| ending.set(false), "Cancel" }
                }
            }
            div { class: "body",
                section { class: grid_class, style: "--columns: {columns}", "aria-label": "participants' video",
                    div { class: if speaking && !me.muted { "tile speaking" } else { "tile" },
                        video { id: "self-view", class: if me.camera_off { "off" } else { "" },
                            autoplay: true, muted: true, playsinline: true, "aria-label": "your camera" }
                        TileLabel { name: format!("{choice_name} (you)"), audio_muted: me.muted, hand: me.hand_raised, quality: connection.quality }
                    }
                    if sharing {
                        div { class: "tile screen",
                            video { id: "self-screen", autoplay: true, muted: true, playsinline: true,
                                "aria-label": "your screen" }
                            TileLabel { name: "Your screen".to_string(), audio_muted: false, hand: false }
                        }
                    }
                    for peer in peers.iter() {
                        RemoteTile { key: "{peer.id}-camera", peer: peer.clone(),
                            featured: featured == Some(peer.id),
                            enlarge: !speaker && featured.is_none() && peer.active && columns >= 2,
                            pinned: pinned() == Some(peer.id),
                            on_pin: move |id: Option<u64>| pinned.set(id) }
                        if peer.screen {
                            div { key: "{peer.id}-screen", class: "tile screen", "data-peer": "{peer.name}",
                                canvas { id: canvas_id(peer.id, SCREEN_TRACK), "aria-label": "{peer.name}'s screen" }
                                TileLabel { name: format!("{}'s screen", peer.name), audio_muted: false, hand: false }
                            }
                        }
                    }
                }
                match panel() {
                    Panel::Chat => rsx! {
                        aside { class: "panel", "aria-label": "chat",
                            div { class: "panel-head", h2 { "Chat" } CloseButton {} }
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
                        PeoplePanel { meeting: meeting.clone(), me_name: choice_name.clone(), signals: signals_handle, commands, waiting }
                    },
                    Panel::Connection => rsx! { ConnectionPanel { view: connection.clone() } },
                    Panel::Devices => rsx! { DevicesPanel { commands } },
                    Panel::None => rsx! {},
                }
            }
            Controls { signals: signals_handle, commands, layout, ending, waiting: waiting_count }
        }
    }
}

#[component]
fn TileLabel(
    name: String,
    audio_muted: bool,
    hand: bool,
    #[props(default)] quality: Option<Quality>,
) -> Element {
    rsx! {
        div { class: "label",
            if let Some(quality) = quality {
                QualityBars { quality }
            }
            if hand {
                span { class: "hand-icon", role: "img", "aria-label": "hand raised", Icon { name: IconName::Hand } }
            }
            span { "{name}" }
            if audio_muted {
                span { class: "muted-icon", role: "img", "aria-label": "microphone muted", Icon { name: IconName::MicOff } }
            }
        }
    }
}

/// A connection-quality indicator: three bars, as many lit as the link deserves.
#[component]
fn QualityBars(quality: Quality) -> Element {
    let word = quality.word();
    let lit = quality.bars();
    rsx! {
        span { class: "quality {word}", role: "img", "aria-label": "connection {word}", "data-quality": "{word}",
            title: "Connection: {word}",
            svg { view_box: "0 0 12 12", width: "12", height: "12", "aria-hidden": "true",
                for bar in 1..=3u32 {
                    rect { x: "{bar * 4 - 4}", y: "{12 - bar * 4}", width: "3", height: "{bar * 4}",
                        fill: "currentColor", opacity: if bar <= lit { "1" } else { "0.3" } }
                }
            }
        }
    }
}

/// A remote participant's camera; `enlarge`: the active speaker, shown over two columns and
/// rows; `featured`: pinned, or the speaker layout's large tile (the page then tells the
/// relay it shows it larger).
#[component]
fn RemoteTile(
    peer: PeerView,
    enlarge: bool,
    featured: bool,
    pinned: bool,
    on_pin: EventHandler<Option<u64>>,
) -> Element {
    let mut class = String::from("tile");
    if peer.speaking && !peer.audio_muted {
        class.push_str(" speaking");
    }
    if enlarge {
        class.push_str(" active");
    }
    if featured {
        class.push_str(" featured");
    }
    let id = peer.id;
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
            button { class: "pin", "aria-pressed": pinned,
                "aria-label": if pinned { "unpin {peer.name}" } else { "pin {peer.name}" },
                title: if pinned { "Unpin" } else { "Pin: keep them large" },
                onclick: move |_| on_pin.call(if pinned { None } else { Some(id) }), Icon { name: IconName::Pin } }
            TileLabel { name: peer.name.clone(), audio_muted: peer.audio_muted, hand: peer.hand_raised_at_ms > 0, quality: peer.quality }
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
            div { class: "panel-head", h2 { "Connection" } CloseButton {} }
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
