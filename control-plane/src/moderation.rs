//! Host actions through the API: who may take which on whom (the rules the relays apply to
//! hosts in the meeting), and how each is named in the record. Pure: roles and actions in,
//! decisions and words out.

use videocall_control_api::v1::moderate_meeting_request::Action;
use videocall_control_api::v1::{HostMedia, MeetingRole};
use videocall_token::Role;

/// Why an action is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModerationError {
    /// The caller's role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// A field is wrong.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
}

/// The participant an action is about, if any.
pub fn target_of(action: &Action) -> Option<u64> {
    match action {
        Action::Mute(m) => Some(m.participant_id),
        Action::Remove(r) => Some(r.participant_id),
        Action::SetRole(s) => Some(s.participant_id),
        Action::LowerHand(l) => Some(l.participant_id),
        Action::AskToUnmute(a) => Some(a.participant_id),
        Action::MuteAll(_) | Action::Lock(_) => None,
    }
}

/// The role a wire value names (hosts may give host, co-host or participant).
pub fn role_from_api(role: i32) -> Option<Role> {
    match MeetingRole::try_from(role).ok()? {
        MeetingRole::Host => Some(Role::Host),
        MeetingRole::Cohost => Some(Role::Cohost),
        MeetingRole::Participant => Some(Role::Participant),
        MeetingRole::Guest => Some(Role::Guest),
        MeetingRole::Unspecified => None,
    }
}

/// The role relays report in their heartbeats (`host`, `cohost`, …).
pub fn role_from_report(role: &str) -> Role {
    match role {
        "host" => Role::Host,
        "cohost" => Role::Cohost,
        "guest" => Role::Guest,
        _ => Role::Participant,
    }
}

/// The role as relays report it.
pub fn role_to_report(role: Role) -> &'static str {
    match role {
        Role::Host => "host",
        Role::Cohost => "cohost",
        Role::Participant => "participant",
        Role::Guest => "guest",
    }
}

/// Checks the fields of `action` (a participant named, media named, a role a host may give).
pub fn check(action: &Action) -> Result<(), ModerationError> {
    if target_of(action) == Some(0) {
        return Err(ModerationError::Invalid {
            field: "participant_id",
            problem: "is required (ListParticipants gives them)",
        });
    }
    let media_ok = |media: i32| {
        matches!(
            HostMedia::try_from(media),
            Ok(HostMedia::Audio | HostMedia::Video)
        )
    };
    match action {
        Action::Mute(m) if !media_ok(m.media) => Err(ModerationError::Invalid {
            field: "mute.media",
            problem: "must be HOST_MEDIA_AUDIO or HOST_MEDIA_VIDEO",
        }),
        Action::AskToUnmute(a) if !media_ok(a.media) => Err(ModerationError::Invalid {
            field: "ask_to_unmute.media",
            problem: "must be HOST_MEDIA_AUDIO or HOST_MEDIA_VIDEO",
        }),
        Action::SetRole(s)
            if !matches!(
                role_from_api(s.role),
                Some(Role::Host | Role::Cohost | Role::Participant)
            ) =>
        {
            Err(ModerationError::Invalid {
                field: "set_role.role",
                problem:
                    "must be MEETING_ROLE_HOST, MEETING_ROLE_COHOST or MEETING_ROLE_PARTICIPANT",
            })
        }
        Action::Remove(r) if r.reason.chars().count() > crate::validate::MAX_REASON => {
            Err(ModerationError::Invalid {
                field: "remove.reason",
                problem: "must be at most 200 characters",
            })
        }
        _ => Ok(()),
    }
}

/// Whether a caller with role `caller` may take `action` on a participant with role
/// `target` (as the relays decide for hosts in the meeting): hosts and co-hosts moderate;
/// only hosts change roles; a co-host does not act on hosts or co-hosts; a guest stays a guest.
pub fn permit(caller: Role, action: &Action, target: Option<Role>) -> Result<(), ModerationError> {
    if !caller.moderates() {
        return Err(ModerationError::Forbidden(
            "only the meeting's hosts and co-hosts may do that".into(),
        ));
    }
    if matches!(action, Action::SetRole(_)) && caller != Role::Host {
        return Err(ModerationError::Forbidden(
            "only hosts may change roles".into(),
        ));
    }
    if let (Action::SetRole(_), Some(Role::Guest)) = (action, target) {
        return Err(ModerationError::Forbidden(
            "a guest stays a guest: it joined without an account".into(),
        ));
    }
    if caller == Role::Cohost && target.is_some_and(|t| t.moderates()) {
        return Err(ModerationError::Forbidden(
            "a co-host may not act on hosts or co-hosts".into(),
        ));
    }
    Ok(())
}

/// The action's name in the record.
pub fn label(action: &Action) -> &'static str {
    match action {
        Action::Mute(_) => "mute",
        Action::MuteAll(_) => "mute_all",
        Action::Remove(_) => "remove",
        Action::Lock(_) => "lock",
        Action::SetRole(_) => "set_role",
        Action::LowerHand(_) => "lower_hand",
        Action::AskToUnmute(_) => "ask_to_unmute",
    }
}

fn media_word(media: i32) -> &'static str {
    match HostMedia::try_from(media) {
        Ok(HostMedia::Video) => "video",
        _ => "audio",
    }
}

/// The action's details in words, for the record.
pub fn detail(action: &Action) -> String {
    let unmute = |disallow: bool| if disallow { ", may not unmute" } else { "" };
    match action {
        Action::Mute(m) => format!("{}{}", media_word(m.media), unmute(m.disallow_unmute)),
        Action::MuteAll(m) => format!("audio{}", unmute(m.disallow_unmute)),
        Action::Remove(r) => {
            let ban = if r.ban { "banned" } else { "may come back" };
            if r.reason.trim().is_empty() {
                ban.to_owned()
            } else {
                format!("{ban}: {}", r.reason.trim())
            }
        }
        Action::Lock(l) => if l.locked { "locked" } else { "unlocked" }.to_owned(),
        Action::SetRole(s) => role_from_api(s.role)
            .map_or("participant", role_to_report)
            .to_owned(),
        Action::LowerHand(_) => String::new(),
        Action::AskToUnmute(a) => media_word(a.media).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use videocall_control_api::v1::{
        LockAction, MuteAction, MuteAllAction, RemoveAction, SetRoleAction,
    };

    fn mute(id: u64) -> Action {
        Action::Mute(MuteAction {
            participant_id: id,
            media: HostMedia::Audio as i32,
            disallow_unmute: true,
        })
    }

    fn set_role(id: u64, role: MeetingRole) -> Action {
        Action::SetRole(SetRoleAction {
            participant_id: id,
            role: role as i32,
        })
    }

    #[test]
    fn participants_and_guests_moderate_nothing() {
        for caller in [Role::Participant, Role::Guest] {
            for action in [
                mute(1),
                Action::MuteAll(MuteAllAction::default()),
                Action::Lock(LockAction { locked: true }),
            ] {
                assert!(matches!(
                    permit(caller, &action, Some(Role::Participant)),
                    Err(ModerationError::Forbidden(_))
                ));
            }
        }
    }

    #[test]
    fn cohosts_act_on_participants_but_not_on_hosts_nor_roles() {
        assert_eq!(
            permit(Role::Cohost, &mute(1), Some(Role::Participant)),
            Ok(())
        );
        assert_eq!(permit(Role::Cohost, &mute(1), Some(Role::Guest)), Ok(()));
        assert!(permit(Role::Cohost, &mute(1), Some(Role::Host)).is_err());
        assert!(permit(Role::Cohost, &mute(1), Some(Role::Cohost)).is_err());
        assert!(permit(
            Role::Cohost,
            &set_role(1, MeetingRole::Cohost),
            Some(Role::Participant)
        )
        .is_err());
        assert_eq!(
            permit(
                Role::Host,
                &set_role(1, MeetingRole::Cohost),
                Some(Role::Participant)
            ),
            Ok(())
        );
        assert!(
            permit(
                Role::Host,
                &set_role(1, MeetingRole::Host),
                Some(Role::Guest)
            )
            .is_err(),
            "a guest stays a guest"
        );
    }

    #[test]
    fn fields_are_checked() {
        assert!(check(&mute(0)).is_err(), "no participant");
        assert!(check(&Action::Mute(MuteAction {
            participant_id: 1,
            media: 0,
            disallow_unmute: false
        }))
        .is_err());
        assert!(check(&set_role(1, MeetingRole::Guest)).is_err());
        assert!(check(&set_role(1, MeetingRole::Unspecified)).is_err());
        assert!(check(&Action::Remove(RemoveAction {
            participant_id: 1,
            ban: false,
            reason: "x".repeat(201),
        }))
        .is_err());
        assert_eq!(check(&mute(3)), Ok(()));
    }

    #[test]
    fn the_record_says_what_was_done_in_words() {
        assert_eq!(detail(&mute(1)), "audio, may not unmute");
        assert_eq!(
            detail(&Action::Remove(RemoveAction {
                participant_id: 1,
                ban: true,
                reason: " spam ".into(),
            })),
            "banned: spam"
        );
        assert_eq!(
            detail(&Action::Lock(LockAction { locked: false })),
            "unlocked"
        );
        assert_eq!(detail(&set_role(2, MeetingRole::Cohost)), "cohost");
        assert_eq!(label(&set_role(2, MeetingRole::Cohost)), "set_role");
    }
}
