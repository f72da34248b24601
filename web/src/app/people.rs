//! The participants panel: everyone with their role, raised hand and muted microphone or
//! camera; for hosts and co-hosts, the waiting room's queue (admit or turn away one or all),
//! raised hands in order, and each person's host controls (mute, stop video, ask to unmute,
//! role, lower hand, remove with an optional ban); mute everyone; whether those muted may
//! unmute themselves.

use dioxus::prelude::*;
use videocall_protocol::wire::{
    host_action::Action, AskToUnmute, LowerHand, MediaKind, MuteAll, MuteParticipant,
    RemoveParticipant, Role, SetRole,
};

use super::encryption::EncryptionMembers;
use super::handles::{CloseButton, CommandsHandle, SignalsHandle};
use super::icons::{Icon, IconName};
use crate::api;
use crate::control::WaitingPerson;
use crate::hosting::{self, MyState};
use crate::session::{Command, PeerView};

/// How often a host's page asks the control plane who is waiting.
pub const WAITING_POLL_MS: i32 = 2000;

/// The waiting room as a host's page sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WaitingView {
    /// Oldest first.
    pub people: Vec<WaitingPerson>,
    /// Why the list could not be read or a decision was refused (the page keeps asking).
    pub error: Option<String>,
}

/// Asks the control plane who waits, every [`WAITING_POLL_MS`], while this participant
/// hosts (and is signed in: hosts are accounts).
pub fn use_waiting_room(meeting: String, me: Signal<MyState>) -> Signal<WaitingView> {
    let mut waiting = use_signal(WaitingView::default);
    use_future(move || {
        let meeting = meeting.clone();
        async move {
            loop {
                if hosting::moderates(me.peek().role) && crate::account::current().is_some() {
                    match api::list_waiting(&meeting).await {
                        Ok(list) => waiting.set(WaitingView {
                            people: list.waiting,
                            error: None,
                        }),
                        Err(e) => waiting.with_mut(|w| w.error = Some(e.to_string())),
                    }
                } else if !waiting.peek().people.is_empty() {
                    waiting.set(WaitingView::default());
                }
                crate::js::sleep(WAITING_POLL_MS).await;
            }
        }
    });
    waiting
}

/// Lets `ids` (or everyone) in, or turns them away; the list is read again at once.
fn decide(
    meeting: String,
    mut waiting: Signal<WaitingView>,
    ids: Vec<String>,
    all: bool,
    admit: bool,
    reason: String,
) {
    spawn(async move {
        let decided = api::decide_waiting(&meeting, ids.clone(), all, admit, &reason).await;
        if let Err(e) = decided {
            waiting.with_mut(|w| w.error = Some(e.to_string()));
            return;
        }
        waiting.with_mut(|w| {
            w.error = None;
            w.people.retain(|p| !all && !ids.contains(&p.id));
        });
    });
}

/// The participants panel.
#[component]
pub fn PeoplePanel(
    meeting: String,
    me_name: String,
    signals: SignalsHandle,
    commands: CommandsHandle,
    waiting: Signal<WaitingView>,
) -> Element {
    let signals = signals.0;
    let me = (signals.me)();
    let peers = (signals.peers)();
    let encryption = (signals.encryption)();
    let moderator = hosting::moderates(me.role);
    let hands: Vec<(u64, i64)> = peers.iter().map(|p| (p.id, p.hand_raised_at_ms)).collect();
    let hands = hosting::hands_in_order(&hands);
    let removing: Signal<Option<PeerView>> = use_signal(|| None);
    // Whether those muted from here may turn their microphone or camera on again themselves.
    let mut self_unmute = use_signal(|| true);
    let disallow = !self_unmute();
    let waiting_now = waiting();
    let meeting_for_all = meeting.clone();
    let meeting_reject_all = meeting.clone();
    rsx! {
        aside { class: "panel", "aria-label": "participants",
            div { class: "panel-head",
                h2 { "Participants ({peers.len() + 1})" }
                CloseButton {}
            }
            if moderator && (!waiting_now.people.is_empty() || waiting_now.error.is_some()) {
                section { "aria-label": "waiting room",
                    h3 { "Waiting to join ({waiting_now.people.len()})" }
                    if let Some(error) = &waiting_now.error {
                        p { class: "error", role: "alert", "{error}" }
                    }
                    ul { id: "waiting", class: "people",
                        for person in waiting_now.people.iter() {
                            WaitingRow { key: "{person.id}", meeting: meeting.clone(), person: person.clone(), waiting }
                        }
                    }
                    if waiting_now.people.len() > 1 {
                        div { class: "row-actions",
                            button { id: "admit-all", onclick: move |_| decide(meeting_for_all.clone(), waiting, Vec::new(), true, true, String::new()),
                                "Admit all" }
                            button { id: "reject-all", onclick: move |_| decide(meeting_reject_all.clone(), waiting, Vec::new(), true, false,
                                    "A host did not let you in to this meeting.".into()),
                                "Turn all away" }
                        }
                    }
                }
            }
            if !hands.is_empty() {
                section { "aria-label": "raised hands",
                    h3 { "Raised hands" }
                    ol { id: "hands",
                        for id in hands.iter() {
                            if let Some(peer) = peers.iter().find(|p| p.id == *id) {
                                li { key: "{id}", "data-hand": "{peer.name}",
                                    span { class: "who", Icon { name: IconName::Hand } " {peer.name}" }
                                    if moderator {
                                        button { class: "small", "aria-label": "lower {peer.name}'s hand",
                                            onclick: {
                                                let id = *id;
                                                move |_| commands.send(Command::Host(Action::LowerHand(LowerHand { participant_id: id })))
                                            },
                                            "Lower" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            ul { id: "people", class: "people",
                li { "data-person": "{me_name}",
                    span { class: "who", "{me_name} (you)" }
                    RoleBadge { role: me.role }
                    if me.hand_raised { span { class: "state", "aria-label": "hand raised", role: "img", Icon { name: IconName::Hand } } }
                    if me.muted { span { class: "state", "aria-label": "microphone off", role: "img", Icon { name: IconName::MicOff } } }
                    if me.camera_off { span { class: "state", "aria-label": "camera off", role: "img", Icon { name: IconName::CameraOff } } }
                }
                for peer in peers.iter() {
                    PersonRow { key: "{peer.id}", peer: peer.clone(), my_role: me.role, commands, removing, disallow }
                }
            }
            if let Some(peer) = removing() {
                RemoveForm { peer, commands, removing }
            }
            if encryption.required {
                EncryptionMembers { view: encryption.clone() }
            }
            if moderator {
                div { class: "row-actions",
                    button { id: "mute-all", title: "Mute everyone but hosts and co-hosts",
                        onclick: move |_| commands.send(Command::Host(Action::MuteAll(MuteAll { disallow_unmute: disallow }))),
                        "Mute everyone" }
                }
                label { class: "check",
                    input { id: "allow-unmute", r#type: "checkbox", checked: self_unmute(),
                        onchange: move |event| self_unmute.set(event.checked()) }
                    " People muted here may unmute themselves"
                }
            }
        }
    }
}

#[component]
fn RoleBadge(role: Role) -> Element {
    if matches!(role, Role::Participant | Role::Unspecified) {
        return rsx! {};
    }
    let name = hosting::role_name(role);
    rsx! { span { class: "role {name}", "data-role": "{name}", "{name}" } }
}

#[component]
fn WaitingRow(meeting: String, person: WaitingPerson, waiting: Signal<WaitingView>) -> Element {
    let name = if person.display_name.is_empty() {
        person.identity.clone()
    } else {
        person.display_name.clone()
    };
    let id = person.id.clone();
    let meeting_admit = meeting.clone();
    let id_admit = id.clone();
    rsx! {
        li { "data-waiting": "{name}",
            span { class: "who", "{name}" }
            if person.guest { span { class: "role guest", "guest" } }
            button { class: "small admit", "aria-label": "admit {name}",
                onclick: move |_| decide(meeting_admit.clone(), waiting, vec![id_admit.clone()], false, true, String::new()),
                "Admit" }
            button { class: "small reject", "aria-label": "turn {name} away",
                onclick: move |_| decide(meeting.clone(), waiting, vec![id.clone()], false, false,
                    "A host did not let you in to this meeting.".into()),
                "Turn away" }
        }
    }
}

#[component]
fn PersonRow(
    peer: PeerView,
    my_role: Role,
    commands: CommandsHandle,
    removing: Signal<Option<PeerView>>,
    disallow: bool,
) -> Element {
    let offered = hosting::offered(my_role, peer.role);
    let id = peer.id;
    let name = peer.name.clone();
    let mute = move |kind: MediaKind| {
        commands.send(Command::Host(Action::Mute(MuteParticipant {
            participant_id: id,
            kind: kind as i32,
            disallow_unmute: disallow,
        })))
    };
    let ask = move |kind: MediaKind| {
        commands.send(Command::Host(Action::AskToUnmute(AskToUnmute {
            participant_id: id,
            kind: kind as i32,
        })))
    };
    let peer_for_remove = peer.clone();
    rsx! {
        li { "data-person": "{name}",
            span { class: "who", "{name}" }
            RoleBadge { role: peer.role }
            if peer.hand_raised_at_ms > 0 { span { class: "state", "aria-label": "hand raised", role: "img", Icon { name: IconName::Hand } } }
            if peer.audio_muted { span { class: "state", "aria-label": "microphone off", role: "img", Icon { name: IconName::MicOff } } }
            if peer.video_muted { span { class: "state", "aria-label": "camera off", role: "img", Icon { name: IconName::CameraOff } } }
            if offered.mute {
                if peer.audio_muted {
                    button { class: "small", "aria-label": "ask {name} to unmute", title: "Ask to unmute",
                        onclick: move |_| ask(MediaKind::Audio), "Ask to unmute" }
                } else {
                    button { class: "small", "aria-label": "mute {name}", title: "Mute their microphone",
                        onclick: move |_| mute(MediaKind::Audio), "Mute" }
                }
                if peer.video_muted {
                    button { class: "small", "aria-label": "ask {name} to start video", title: "Ask to start video",
                        onclick: move |_| ask(MediaKind::Video), "Ask for video" }
                } else {
                    button { class: "small", "aria-label": "stop {name}'s video", title: "Stop their camera and screen",
                        onclick: move |_| mute(MediaKind::Video), "Stop video" }
                }
            }
            if offered.set_role {
                for (role, words) in hosting::roles_to_give(peer.role) {
                    button { class: "small", "aria-label": "{words}: {name}",
                        onclick: move |_| commands.send(Command::Host(Action::SetRole(SetRole { participant_id: id, role: role as i32 }))),
                        "{words}" }
                }
            }
            if offered.remove {
                button { class: "small danger", "aria-label": "remove {name}", title: "Remove from the meeting",
                    onclick: move |_| removing.set(Some(peer_for_remove.clone())), "Remove" }
            }
        }
    }
}

/// Asks before removing: an optional reason and whether they may come back.
#[component]
fn RemoveForm(
    peer: PeerView,
    commands: CommandsHandle,
    removing: Signal<Option<PeerView>>,
) -> Element {
    let mut reason = use_signal(String::new);
    let mut ban = use_signal(|| false);
    let id = peer.id;
    rsx! {
        form { class: "remove-form", role: "dialog", "aria-label": "remove {peer.name}",
            onsubmit: move |event| {
                event.prevent_default();
                commands.send(Command::Host(Action::Remove(RemoveParticipant {
                    participant_id: id,
                    reason: reason(),
                    ban: ban(),
                })));
                removing.set(None);
            },
            p { "Remove {peer.name} from the meeting?" }
            label { r#for: "remove-reason", "Reason (shown to them)" }
            input { id: "remove-reason", maxlength: 200, value: "{reason}", oninput: move |e| reason.set(e.value()) }
            label { class: "check",
                input { id: "remove-ban", r#type: "checkbox", checked: ban(), onchange: move |e| ban.set(e.checked()) }
                " Do not let them back into this meeting"
            }
            div { class: "row-actions",
                button { id: "remove-confirm", r#type: "submit", class: "danger", "Remove" }
                button { id: "remove-cancel", r#type: "button", onclick: move |_| removing.set(None), "Cancel" }
            }
        }
    }
}
