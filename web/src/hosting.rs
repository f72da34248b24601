//! Hosting in the page, apart from the page: which host controls to offer (the rules the relay
//! enforces, so the page offers only what will be carried out), what a host's action means for
//! the person it names, the raised hands in the order hosts see them, and keyboard shortcuts.

use videocall_protocol::wire::{host_action::Action, MediaKind, Role};

/// Hosts and co-hosts moderate.
pub fn moderates(role: Role) -> bool {
    matches!(role, Role::Host | Role::Cohost)
}

/// How the page names a role.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Host => "host",
        Role::Cohost => "co-host",
        Role::Guest => "guest",
        Role::Participant | Role::Unspecified => "participant",
    }
}

/// The host controls offered to someone in role `me` for another participant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Offered {
    /// Mute their microphone, stop their video, ask them to unmute.
    pub mute: bool,
    /// Remove them (and optionally ban them).
    pub remove: bool,
    /// Lower their raised hand.
    pub lower_hand: bool,
    /// Make them a host, co-host or participant.
    pub set_role: bool,
}

/// What `me` may do to another participant in role `them` (never oneself: a host leaves, and
/// does not change its own role). A co-host acts on participants and guests, not on hosts or
/// other co-hosts; only hosts change roles, and a guest stays a guest.
pub fn offered(me: Role, them: Role) -> Offered {
    if !moderates(me) {
        return Offered::default();
    }
    let reaches = me == Role::Host || !moderates(them);
    Offered {
        mute: reaches,
        remove: reaches,
        lower_hand: true,
        set_role: me == Role::Host && them != Role::Guest,
    }
}

/// Roles a host may give someone now in role `them`, with the words for the button.
pub fn roles_to_give(them: Role) -> Vec<(Role, &'static str)> {
    [
        (Role::Host, "make host"),
        (Role::Cohost, "make co-host"),
        (Role::Participant, "make participant"),
    ]
    .into_iter()
    .filter(|(role, _)| *role != them && !(them == Role::Unspecified && *role == Role::Participant))
    .collect()
}

/// This participant's own state as hosts may change it.
#[derive(Debug, Clone, PartialEq)]
pub struct MyState {
    /// Its role in the meeting.
    pub role: Role,
    /// Microphone off.
    pub muted: bool,
    /// Camera off.
    pub camera_off: bool,
    /// Hand raised.
    pub hand_raised: bool,
    /// A host muted the microphone and does not allow turning it on again.
    pub audio_locked: bool,
    /// A host stopped the video and does not allow turning it on again.
    pub video_locked: bool,
}

impl Default for MyState {
    fn default() -> Self {
        MyState {
            role: Role::Participant,
            muted: false,
            camera_off: false,
            hand_raised: false,
            audio_locked: false,
            video_locked: false,
        }
    }
}

/// What a host's action against this participant asks of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    /// What to tell the person.
    pub text: String,
    /// Turn the microphone off now.
    pub mute_audio: bool,
    /// Turn the camera off and stop sharing now.
    pub stop_video: bool,
    /// A host asks to turn this on again (the page offers a button).
    pub asked_to_unmute: Option<MediaKind>,
}

/// Applies `action`, which host `by` (a name; "A host" for the control plane's API) took
/// against this participant, to `state`; what to tell and do. `None`: the action does not
/// change this participant (the relay only tells whoever an action names).
pub fn apply_notice(state: &mut MyState, by: &str, action: &Action) -> Option<Told> {
    let told = |text: String| Told {
        text,
        mute_audio: false,
        stop_video: false,
        asked_to_unmute: None,
    };
    let kind = |kind: i32| MediaKind::try_from(kind).ok();
    match action {
        Action::Mute(mute) => {
            let locked = mute.disallow_unmute;
            let tail = if locked {
                " You can turn it on again when a host asks you to."
            } else {
                ""
            };
            match kind(mute.kind)? {
                MediaKind::Audio => {
                    state.muted = true;
                    state.audio_locked = locked;
                    Some(Told {
                        mute_audio: true,
                        ..told(format!("{by} muted your microphone.{tail}"))
                    })
                }
                MediaKind::Video | MediaKind::Screen => {
                    state.camera_off = true;
                    state.video_locked = locked;
                    Some(Told {
                        stop_video: true,
                        ..told(format!("{by} stopped your video.{tail}"))
                    })
                }
                _ => None,
            }
        }
        Action::MuteAll(all) => {
            state.muted = true;
            state.audio_locked = all.disallow_unmute;
            Some(Told {
                mute_audio: true,
                ..told(format!("{by} muted everyone."))
            })
        }
        Action::AskToUnmute(ask) => {
            let asked = kind(ask.kind)?;
            let what = match asked {
                MediaKind::Audio => {
                    state.audio_locked = false;
                    "your microphone"
                }
                MediaKind::Video | MediaKind::Screen => {
                    state.video_locked = false;
                    "your camera"
                }
                _ => return None,
            };
            Some(Told {
                asked_to_unmute: Some(asked),
                ..told(format!("{by} asks you to turn on {what}."))
            })
        }
        Action::SetRole(set) => {
            let role = Role::try_from(set.role).ok()?;
            state.role = role;
            Some(told(format!("{by} made you a {}.", role_name(role))))
        }
        Action::LowerHand(_) => {
            state.hand_raised = false;
            Some(told(format!("{by} lowered your hand.")))
        }
        // Said by the relay closing the connection (removal, the end) or by `MeetingUpdated`.
        Action::Remove(_) | Action::Lock(_) | Action::End(_) => None,
    }
}

/// The raised hands among `(participant, raised at ms)` (0: not raised), first raised first.
pub fn hands_in_order(hands: &[(u64, i64)]) -> Vec<u64> {
    let mut raised: Vec<(i64, u64)> = hands
        .iter()
        .filter(|(_, at)| *at > 0)
        .map(|&(id, at)| (at, id))
        .collect();
    raised.sort_unstable();
    raised.into_iter().map(|(_, id)| id).collect()
}

/// What a key pressed in the meeting (no modifier, outside a text field) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    /// M: microphone on or off.
    Microphone,
    /// V: camera on or off.
    Camera,
    /// H: raise or lower the hand.
    Hand,
    /// C: chat panel.
    Chat,
    /// P: participants panel.
    People,
    /// L: grid or speaker layout.
    Layout,
    /// F: full screen.
    FullScreen,
    /// Escape: close the open panel.
    ClosePanel,
}

/// The shortcut of `key` (a `KeyboardEvent.key`) pressed with `modified` (Ctrl, Alt or Meta
/// held: the browser's, not ours).
pub fn shortcut(key: &str, modified: bool) -> Option<Shortcut> {
    if modified {
        return None;
    }
    Some(match key {
        "m" | "M" => Shortcut::Microphone,
        "v" | "V" => Shortcut::Camera,
        "h" | "H" => Shortcut::Hand,
        "c" | "C" => Shortcut::Chat,
        "p" | "P" => Shortcut::People,
        "l" | "L" => Shortcut::Layout,
        "f" | "F" => Shortcut::FullScreen,
        "Escape" => Shortcut::ClosePanel,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use videocall_protocol::wire::{AskToUnmute, LowerHand, MuteAll, MuteParticipant, SetRole};

    #[test]
    fn only_hosts_and_cohosts_are_offered_controls_and_cohosts_not_over_hosts() {
        assert_eq!(offered(Role::Participant, Role::Guest), Offered::default());
        assert_eq!(offered(Role::Guest, Role::Participant), Offered::default());
        let host_on_cohost = offered(Role::Host, Role::Cohost);
        assert!(host_on_cohost.mute && host_on_cohost.remove && host_on_cohost.set_role);
        let cohost_on_host = offered(Role::Cohost, Role::Host);
        assert!(!cohost_on_host.mute && !cohost_on_host.remove && !cohost_on_host.set_role);
        assert!(cohost_on_host.lower_hand);
        let cohost_on_guest = offered(Role::Cohost, Role::Guest);
        assert!(cohost_on_guest.mute && cohost_on_guest.remove && !cohost_on_guest.set_role);
        assert!(
            !offered(Role::Host, Role::Guest).set_role,
            "a guest stays a guest"
        );
    }

    #[test]
    fn roles_to_give_leave_out_the_one_they_have() {
        let given: Vec<Role> = roles_to_give(Role::Cohost)
            .into_iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(given, [Role::Host, Role::Participant]);
        let given: Vec<Role> = roles_to_give(Role::Unspecified)
            .into_iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(given, [Role::Host, Role::Cohost]);
    }

    #[test]
    fn a_mute_that_disallows_unmute_locks_until_asked() {
        let mut me = MyState::default();
        let told = apply_notice(
            &mut me,
            "Ann",
            &Action::Mute(MuteParticipant {
                participant_id: 7,
                kind: MediaKind::Audio as i32,
                disallow_unmute: true,
            }),
        )
        .expect("told");
        assert!(told.mute_audio && !told.stop_video);
        assert!(told.text.starts_with("Ann muted your microphone."));
        assert!(me.muted && me.audio_locked);
        let asked = apply_notice(
            &mut me,
            "Ann",
            &Action::AskToUnmute(AskToUnmute {
                participant_id: 7,
                kind: MediaKind::Audio as i32,
            }),
        )
        .expect("told");
        assert_eq!(asked.asked_to_unmute, Some(MediaKind::Audio));
        assert!(me.muted, "asked, not unmuted: the person decides");
        assert!(!me.audio_locked);
    }

    #[test]
    fn stopped_video_mute_all_roles_and_hands() {
        let mut me = MyState {
            hand_raised: true,
            ..MyState::default()
        };
        let told = apply_notice(
            &mut me,
            "A host",
            &Action::Mute(MuteParticipant {
                participant_id: 7,
                kind: MediaKind::Video as i32,
                disallow_unmute: false,
            }),
        )
        .expect("told");
        assert!(told.stop_video && me.camera_off && !me.video_locked);
        assert!(
            apply_notice(&mut me, "Ann", &Action::MuteAll(MuteAll::default()))
                .is_some_and(|t| t.mute_audio)
        );
        assert!(me.muted && !me.audio_locked);
        let told = apply_notice(
            &mut me,
            "Ann",
            &Action::SetRole(SetRole {
                participant_id: 7,
                role: Role::Cohost as i32,
            }),
        )
        .expect("told");
        assert_eq!(me.role, Role::Cohost);
        assert_eq!(told.text, "Ann made you a co-host.");
        apply_notice(
            &mut me,
            "Ann",
            &Action::LowerHand(LowerHand { participant_id: 7 }),
        );
        assert!(!me.hand_raised);
        // A mute naming no media changes nothing.
        assert_eq!(
            apply_notice(
                &mut me,
                "Ann",
                &Action::Mute(MuteParticipant {
                    participant_id: 7,
                    kind: 99,
                    disallow_unmute: true,
                })
            ),
            None
        );
    }

    #[test]
    fn hands_come_first_raised_first() {
        assert_eq!(
            hands_in_order(&[(1, 0), (2, 300), (3, 100), (4, 200)]),
            [3, 4, 2]
        );
        assert!(hands_in_order(&[(1, 0)]).is_empty());
    }

    #[test]
    fn shortcuts_are_single_keys_without_modifiers() {
        assert_eq!(shortcut("m", false), Some(Shortcut::Microphone));
        assert_eq!(shortcut("M", false), Some(Shortcut::Microphone));
        assert_eq!(shortcut("m", true), None, "Ctrl+M is the browser's");
        assert_eq!(shortcut("Escape", false), Some(Shortcut::ClosePanel));
        assert_eq!(shortcut("x", false), None);
    }
}
