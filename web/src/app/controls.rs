//! The meeting's control bar: icon buttons whose tooltips name their keyboard shortcut
//! (M, V, H, C, P, L, F; Escape closes a panel), the panels, the layout and full screen; for
//! hosts and co-hosts the lock, for hosts the end for everyone.

use dioxus::prelude::*;
use videocall_protocol::wire::{host_action::Action, LockMeeting};

use super::handles::{CommandsHandle, Panel, SignalsHandle};
use super::icons::{Icon, IconName};
use crate::hosting::{self, Shortcut};
use crate::js;
use crate::session::Command;

/// How the tiles are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Everyone the same size (the pinned tile and the active speaker larger).
    Grid,
    /// One large tile (the pinned one, else whoever speaks) over a strip of the others.
    Speaker,
}

/// Carries out a keyboard shortcut.
pub fn on_shortcut(
    shortcut: Shortcut,
    signals: SignalsHandle,
    commands: CommandsHandle,
    mut panel: Signal<Panel>,
    mut layout: Signal<Layout>,
) {
    let me = signals.0.me.peek().clone();
    let toggle = |which: Panel| if panel() == which { Panel::None } else { which };
    match shortcut {
        Shortcut::Microphone => commands.send(Command::Mute(!me.muted)),
        Shortcut::Camera => commands.send(Command::CameraOff(!me.camera_off)),
        Shortcut::Hand => commands.send(Command::RaiseHand(!me.hand_raised)),
        Shortcut::Chat => panel.set(toggle(Panel::Chat)),
        Shortcut::People => panel.set(toggle(Panel::People)),
        Shortcut::Layout => layout.set(match layout() {
            Layout::Grid => Layout::Speaker,
            Layout::Speaker => Layout::Grid,
        }),
        Shortcut::FullScreen => js::toggle_full_screen(),
        Shortcut::ClosePanel => panel.set(Panel::None),
    }
}

/// The control bar.
#[component]
pub fn Controls(
    signals: SignalsHandle,
    commands: CommandsHandle,
    layout: Signal<Layout>,
    ending: Signal<bool>,
    waiting: usize,
) -> Element {
    let me = (signals.0.me)();
    let locked = (signals.0.locked)();
    let sharing = (signals.0.sharing)().is_some();
    let mut layout = layout;
    let mut ending = ending;
    let moderator = hosting::moderates(me.role);
    let host = me.role == videocall_protocol::wire::Role::Host;
    rsx! {
        nav { class: "controls", "aria-label": "meeting controls",
            IconButton { id: "mute", pressed: me.muted,
                icon: if me.muted { IconName::MicOff } else { IconName::Mic },
                text: if me.muted { "Unmute" } else { "Mute" },
                tip: if me.audio_locked { "A host muted you: they can ask you to unmute" } else if me.muted { "Turn the microphone on (M)" } else { "Turn the microphone off (M)" },
                onclick: move |_| commands.send(Command::Mute(!me.muted)) }
            IconButton { id: "camera", pressed: me.camera_off,
                icon: if me.camera_off { IconName::CameraOff } else { IconName::Camera },
                text: if me.camera_off { "Start video" } else { "Stop video" },
                tip: if me.video_locked { "A host stopped your video: they can ask you to start it" } else if me.camera_off { "Turn the camera on (V)" } else { "Turn the camera off (V)" },
                onclick: move |_| commands.send(Command::CameraOff(!me.camera_off)) }
            IconButton { id: "share", pressed: sharing, icon: IconName::Screen,
                text: if sharing { "Stop sharing" } else { "Share" },
                tip: if sharing { "Stop sharing the screen" } else { "Share the screen" },
                onclick: move |_| commands.send(Command::ShareScreen(!sharing)) }
            IconButton { id: "hand", pressed: me.hand_raised, icon: IconName::Hand,
                text: if me.hand_raised { "Lower hand" } else { "Raise hand" },
                tip: if me.hand_raised { "Lower your hand (H)" } else { "Raise your hand (H)" },
                onclick: move |_| commands.send(Command::RaiseHand(!me.hand_raised)) }
            PanelButton { id: "chat", icon: IconName::Chat, text: "Chat", tip: "Chat (C)", which: Panel::Chat, count: 0 }
            PanelButton { id: "people", icon: IconName::People, text: "People", tip: "Participants (P)", which: Panel::People, count: waiting }
            PanelButton { id: "devices", icon: IconName::Settings, text: "Devices", tip: "Camera, microphone and speaker", which: Panel::Devices, count: 0 }
            PanelButton { id: "stats", icon: IconName::Signal, text: "Connection", tip: "Connection details", which: Panel::Connection, count: 0 }
            IconButton { id: "layout", pressed: layout() == Layout::Speaker,
                icon: if layout() == Layout::Speaker { IconName::Grid } else { IconName::Speaker },
                text: if layout() == Layout::Speaker { "Grid" } else { "Speaker" },
                tip: if layout() == Layout::Speaker { "Show everyone the same size (L)" } else { "Show the speaker large (L)" },
                onclick: move |_| layout.set(if layout() == Layout::Speaker { Layout::Grid } else { Layout::Speaker }) }
            IconButton { id: "fullscreen", pressed: js::is_full_screen(), icon: IconName::FullScreen, text: "Full screen",
                tip: "Full screen on or off (F)", onclick: move |_| js::toggle_full_screen() }
            if moderator {
                IconButton { id: "lock", pressed: locked,
                    icon: if locked { IconName::Lock } else { IconName::Unlock },
                    text: if locked { "Unlock" } else { "Lock" },
                    tip: if locked { "Unlock the meeting: people may join again" } else { "Lock the meeting: nobody new gets in" },
                    onclick: move |_| commands.send(Command::Host(Action::Lock(LockMeeting { locked: !locked }))) }
            }
            if host {
                IconButton { id: "end-all", pressed: false, icon: IconName::Stop, text: "End for all",
                    tip: "End the meeting for everyone", class: "danger",
                    onclick: move |_| ending.set(true) }
            }
            IconButton { id: "leave", pressed: false, icon: IconName::Leave, text: "Leave", tip: "Leave the meeting",
                class: "leave", onclick: move |_| commands.send(Command::Leave) }
        }
    }
}

/// A control: its icon, a word under it (hidden on phones), and a tooltip that also labels it
/// for screen readers.
#[component]
fn IconButton(
    id: String,
    pressed: bool,
    icon: IconName,
    text: String,
    tip: String,
    #[props(default)] class: String,
    onclick: EventHandler<MouseEvent>,
) -> Element {
    rsx! {
        button { id: "{id}", class: "icon-button {class}", "aria-pressed": pressed, "aria-label": "{text}",
            title: "{tip}", onclick: move |e| onclick.call(e),
            Icon { name: icon }
            span { class: "text", "{text}" }
        }
    }
}

/// Opens a panel, or closes it when open; `count` (people waiting) shows on it.
#[component]
fn PanelButton(
    id: String,
    icon: IconName,
    text: String,
    tip: String,
    which: Panel,
    count: usize,
) -> Element {
    let mut current = use_context::<Signal<Panel>>();
    let open = current() == which;
    let label = if count > 0 {
        format!("{text} ({count} waiting)")
    } else {
        text.clone()
    };
    rsx! {
        button { id: "{id}", class: "icon-button", "aria-pressed": open, "aria-label": "{label}", title: "{tip}",
            onclick: move |_| current.set(if open { Panel::None } else { which }),
            Icon { name: icon }
            span { class: "text", "{text}" }
            if count > 0 { span { class: "count-badge", "data-testid": "waiting-count", "{count}" } }
        }
    }
}
