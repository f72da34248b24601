//! Hosts: which role may take which [`HostAction`] on whom, and a meeting's rules of entry
//! (a lock, bans) that admission applies. Pure: roles, actions and identities in, decisions
//! out; `host.rs` carries the decisions out.
//!
//! [`HostAction`]: videocall_protocol::wire::HostAction

use std::collections::HashSet;

use videocall_protocol::mesh::MeetingRules;
use videocall_protocol::wire::{self, host_action::Action, ErrorCode, MediaKind};
use videocall_token::Role;

use crate::reason::Refusal;

/// Identities kept per list of a meeting's rules: beyond it, the oldest are not dropped, the
/// newest are not added (a host banning thousands is misuse; the lock still holds).
pub const MAX_RULE_IDENTITIES: usize = 4096;

/// The wire's role for `role`.
pub fn role_to_wire(role: Role) -> wire::Role {
    match role {
        Role::Host => wire::Role::Host,
        Role::Cohost => wire::Role::Cohost,
        Role::Participant => wire::Role::Participant,
        Role::Guest => wire::Role::Guest,
    }
}

/// The role a wire value names (unspecified: participant; unknown numbers: none).
pub fn role_from_wire(role: i32) -> Option<Role> {
    match wire::Role::try_from(role).ok()? {
        wire::Role::Host => Some(Role::Host),
        wire::Role::Cohost => Some(Role::Cohost),
        wire::Role::Participant | wire::Role::Unspecified => Some(Role::Participant),
        wire::Role::Guest => Some(Role::Guest),
    }
}

/// The metric label of an action.
pub fn action_label(action: &Action) -> &'static str {
    match action {
        Action::Mute(_) => "mute",
        Action::MuteAll(_) => "mute_all",
        Action::Remove(_) => "remove",
        Action::Lock(_) => "lock",
        Action::End(_) => "end",
        Action::SetRole(_) => "set_role",
        Action::LowerHand(_) => "lower_hand",
        Action::AskToUnmute(_) => "ask_to_unmute",
    }
}

/// Every action label, in the order of their metric series.
pub const ACTION_LABELS: [&str; 8] = [
    "mute",
    "mute_all",
    "remove",
    "lock",
    "end",
    "set_role",
    "lower_hand",
    "ask_to_unmute",
];

/// The participant an action is about, if it is about one.
pub fn target_of(action: &Action) -> Option<u64> {
    match action {
        Action::Mute(m) => Some(m.participant_id),
        Action::Remove(r) => Some(r.participant_id),
        Action::SetRole(s) => Some(s.participant_id),
        Action::LowerHand(l) => Some(l.participant_id),
        Action::AskToUnmute(a) => Some(a.participant_id),
        Action::MuteAll(_) | Action::Lock(_) | Action::End(_) => None,
    }
}

/// What a mute or an ask to unmute turns off or on: the microphone, or the camera and screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Muted {
    /// The microphone.
    Audio,
    /// The camera and the screen.
    Video,
}

impl Muted {
    /// What `kind` (a wire `MediaKind`) names; none for unspecified or unknown kinds.
    pub fn from_wire(kind: i32) -> Option<Muted> {
        Muted::of(MediaKind::try_from(kind).ok()?)
    }

    /// What turns media of `kind` off; none for unspecified media.
    pub fn of(kind: MediaKind) -> Option<Muted> {
        match kind {
            MediaKind::Audio => Some(Muted::Audio),
            MediaKind::Video | MediaKind::Screen => Some(Muted::Video),
            MediaKind::Unspecified => None,
        }
    }
}

/// One participant as a host action sees it.
#[derive(Debug, Clone, Copy)]
pub struct Party {
    /// Its id.
    pub id: u64,
    /// Its role now.
    pub role: Role,
}

/// Whether `actor` may take `action` on `target` (the participant it names, found in the
/// meeting; `None` when it names nobody there). The refusal says why not: forbidden, or
/// malformed (nobody by that id, no media kind, no such role).
pub fn permit(actor: Party, action: &Action, target: Option<Party>) -> Result<(), Refusal> {
    if !actor.role.moderates() {
        return Err(forbidden(format!(
            "only hosts and co-hosts may {}; you are a {}",
            describe(action),
            role_name(actor.role)
        )));
    }
    if matches!(action, Action::End(_) | Action::SetRole(_)) && actor.role != Role::Host {
        return Err(forbidden(format!("only hosts may {}", describe(action))));
    }
    match action {
        Action::Mute(m) if Muted::from_wire(m.kind).is_none() => {
            return Err(malformed(
                "a mute names the media: MEDIA_KIND_AUDIO or MEDIA_KIND_VIDEO",
            ))
        }
        Action::AskToUnmute(a) if Muted::from_wire(a.kind).is_none() => {
            return Err(malformed(
                "an ask to unmute names the media: MEDIA_KIND_AUDIO or MEDIA_KIND_VIDEO",
            ))
        }
        _ => {}
    }
    let Some(named) = target_of(action) else {
        return Ok(());
    };
    let Some(target) = target else {
        return Err(malformed(format!("no participant {named} in this meeting")));
    };
    if let Action::SetRole(set) = action {
        if target.id == actor.id {
            return Err(forbidden(
                "a host does not change its own role (another host may)",
            ));
        }
        if target.role == Role::Guest {
            return Err(forbidden(
                "a guest stays a guest: it joined without an account",
            ));
        }
        match role_from_wire(set.role) {
            Some(Role::Host | Role::Cohost | Role::Participant)
                if wire::Role::try_from(set.role) != Ok(wire::Role::Unspecified) => {}
            _ => {
                return Err(malformed(
                    "a new role is ROLE_HOST, ROLE_COHOST or ROLE_PARTICIPANT",
                ))
            }
        }
        return Ok(());
    }
    if let Action::Remove(_) = action {
        if target.id == actor.id {
            return Err(forbidden(
                "to leave, send Leave; hosts do not remove themselves",
            ));
        }
    }
    if actor.role == Role::Cohost && target.role.moderates() && target.id != actor.id {
        return Err(forbidden(format!(
            "a co-host may not {} a {}",
            describe(action),
            role_name(target.role)
        )));
    }
    Ok(())
}

fn forbidden(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::Forbidden, message)
}

fn malformed(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::Malformed, message)
}

fn describe(action: &Action) -> &'static str {
    match action {
        Action::Mute(_) => "mute others",
        Action::MuteAll(_) => "mute everyone",
        Action::Remove(_) => "remove participants",
        Action::Lock(_) => "lock the meeting",
        Action::End(_) => "end the meeting for all",
        Action::SetRole(_) => "change roles",
        Action::LowerHand(_) => "lower others' hands",
        Action::AskToUnmute(_) => "ask others to unmute",
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Host => "host",
        Role::Cohost => "co-host",
        Role::Participant => "participant",
        Role::Guest => "guest",
    }
}

/// Who may join a meeting, as its hosts decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    locked: bool,
    admitted_while_locked: HashSet<String>,
    banned: HashSet<String>,
}

impl Rules {
    /// Whether `user` with `role` may join: not if banned; not if the meeting is locked,
    /// unless it moderates or was in the meeting when it was locked.
    pub fn admits(&self, user: &str, role: Role) -> Result<(), Refusal> {
        if self.banned.contains(user) {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "a host removed you from this meeting and does not let you back in",
            ));
        }
        if self.locked && !role.moderates() && !self.admitted_while_locked.contains(user) {
            return Err(Refusal::new(
                ErrorCode::MeetingLocked,
                "a host locked this meeting: nobody new gets in",
            ));
        }
        Ok(())
    }

    /// Whether the meeting is locked.
    pub fn locked(&self) -> bool {
        self.locked
    }

    /// Locks the meeting; the identities in it now (`present`) still get back in.
    pub fn lock(&mut self, present: impl IntoIterator<Item = String>) {
        self.locked = true;
        for user in present {
            if self.admitted_while_locked.len() >= MAX_RULE_IDENTITIES {
                break;
            }
            self.admitted_while_locked.insert(user);
        }
    }

    /// Unlocks the meeting.
    pub fn unlock(&mut self) {
        self.locked = false;
        self.admitted_while_locked.clear();
    }

    /// Bans `user` from the meeting.
    pub fn ban(&mut self, user: &str) {
        self.admitted_while_locked.remove(user);
        if self.banned.len() < MAX_RULE_IDENTITIES {
            self.banned.insert(user.to_owned());
        }
    }

    /// Whether nothing was decided (the relay need not keep them).
    pub fn is_default(&self) -> bool {
        *self == Rules::default()
    }

    /// The rules as the other relays get them.
    pub fn to_wire(&self) -> MeetingRules {
        let sorted = |set: &HashSet<String>| {
            let mut list: Vec<String> = set.iter().cloned().collect();
            list.sort();
            list
        };
        MeetingRules {
            locked: self.locked,
            admitted_while_locked: sorted(&self.admitted_while_locked),
            banned: sorted(&self.banned),
        }
    }

    /// Takes what another relay knows: its lock, and every ban either knows.
    pub fn merge(&mut self, other: &MeetingRules) {
        if other.locked {
            self.lock(other.admitted_while_locked.iter().cloned());
        }
        for user in &other.banned {
            self.ban(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use videocall_protocol::wire::{
        AskToUnmute, EndForAll, LockMeeting, LowerHand, MuteAll, MuteParticipant,
        RemoveParticipant, SetRole,
    };

    fn party(id: u64, role: Role) -> Party {
        Party { id, role }
    }

    fn mute(id: u64) -> Action {
        Action::Mute(MuteParticipant {
            participant_id: id,
            kind: MediaKind::Audio as i32,
            disallow_unmute: false,
        })
    }

    fn set_role(id: u64, role: wire::Role) -> Action {
        Action::SetRole(SetRole {
            participant_id: id,
            role: role as i32,
        })
    }

    #[test]
    fn participants_and_guests_moderate_nothing() {
        for role in [Role::Participant, Role::Guest] {
            let actor = party(1, role);
            let target = Some(party(2, Role::Participant));
            for action in [
                mute(2),
                Action::MuteAll(MuteAll::default()),
                Action::Lock(LockMeeting { locked: true }),
                Action::End(EndForAll {}),
                Action::LowerHand(LowerHand { participant_id: 2 }),
            ] {
                let refused = permit(actor, &action, target).expect_err("refused");
                assert_eq!(refused.code, ErrorCode::Forbidden);
                assert!(
                    refused.message.contains("only hosts"),
                    "{}",
                    refused.message
                );
            }
        }
    }

    #[test]
    fn cohosts_moderate_participants_but_not_hosts_and_change_no_roles() {
        let cohost = party(1, Role::Cohost);
        assert!(permit(cohost, &mute(2), Some(party(2, Role::Guest))).is_ok());
        assert!(permit(cohost, &Action::Lock(LockMeeting { locked: true }), None).is_ok());
        let refused = permit(cohost, &mute(3), Some(party(3, Role::Host))).expect_err("host");
        assert!(
            refused.message.contains("co-host may not"),
            "{}",
            refused.message
        );
        assert!(permit(cohost, &Action::End(EndForAll {}), None).is_err());
        assert!(permit(
            cohost,
            &set_role(2, wire::Role::Cohost),
            Some(party(2, Role::Participant))
        )
        .is_err());
        // Its own hand, or its own microphone.
        assert!(permit(cohost, &mute(1), Some(cohost)).is_ok());
    }

    #[test]
    fn hosts_change_roles_but_not_their_own_or_a_guests() {
        let host = party(1, Role::Host);
        let participant = Some(party(2, Role::Participant));
        assert!(permit(host, &set_role(2, wire::Role::Cohost), participant).is_ok());
        assert!(permit(host, &set_role(2, wire::Role::Host), participant).is_ok());
        assert!(permit(host, &set_role(1, wire::Role::Participant), Some(host)).is_err());
        let guest = permit(
            host,
            &set_role(3, wire::Role::Cohost),
            Some(party(3, Role::Guest)),
        )
        .expect_err("guest");
        assert!(
            guest.message.contains("guest stays a guest"),
            "{}",
            guest.message
        );
        for bad in [wire::Role::Guest, wire::Role::Unspecified] {
            let refused = permit(host, &set_role(2, bad), participant).expect_err("role");
            assert_eq!(refused.code, ErrorCode::Malformed);
        }
        let unknown = Action::SetRole(SetRole {
            participant_id: 2,
            role: 99,
        });
        assert!(permit(host, &unknown, participant).is_err());
    }

    #[test]
    fn an_action_on_nobody_or_without_a_kind_is_refused() {
        let host = party(1, Role::Host);
        let nobody = permit(host, &mute(9), None).expect_err("nobody");
        assert_eq!(nobody.code, ErrorCode::Malformed);
        assert!(
            nobody.message.contains("no participant 9"),
            "{}",
            nobody.message
        );
        let no_kind = Action::Mute(MuteParticipant {
            participant_id: 2,
            kind: MediaKind::Unspecified as i32,
            disallow_unmute: true,
        });
        assert!(permit(host, &no_kind, Some(party(2, Role::Guest))).is_err());
        let ask = Action::AskToUnmute(AskToUnmute {
            participant_id: 2,
            kind: 42,
        });
        assert!(permit(host, &ask, Some(party(2, Role::Guest))).is_err());
        let remove_self = Action::Remove(RemoveParticipant {
            participant_id: 1,
            reason: String::new(),
            ban: false,
        });
        assert!(permit(host, &remove_self, Some(host)).is_err());
    }

    #[test]
    fn a_lock_keeps_out_newcomers_but_not_hosts_or_who_was_there() {
        let mut rules = Rules::default();
        assert!(rules.admits("anyone", Role::Guest).is_ok());
        rules.lock(["alice".to_owned()]);
        assert!(rules.locked());
        assert!(rules.admits("alice", Role::Participant).is_ok());
        assert!(rules.admits("owner", Role::Host).is_ok());
        let refused = rules
            .admits("mallory", Role::Participant)
            .expect_err("locked");
        assert_eq!(refused.code, ErrorCode::MeetingLocked);
        rules.unlock();
        assert!(rules.admits("mallory", Role::Participant).is_ok());
        assert!(rules.is_default());
    }

    #[test]
    fn a_ban_keeps_out_even_a_host_and_travels_to_other_relays() {
        let mut rules = Rules::default();
        rules.lock(["bob".to_owned()]);
        rules.ban("bob");
        assert_eq!(
            rules.admits("bob", Role::Participant).map_err(|r| r.code),
            Err(ErrorCode::Forbidden)
        );
        assert!(rules.admits("bob", Role::Host).is_err());
        let mut elsewhere = Rules::default();
        elsewhere.merge(&rules.to_wire());
        assert_eq!(elsewhere, rules);
        assert!(elsewhere.admits("carol", Role::Participant).is_err());
    }

    #[test]
    fn roles_cross_the_wire_both_ways() {
        for role in [Role::Host, Role::Cohost, Role::Participant, Role::Guest] {
            assert_eq!(role_from_wire(role_to_wire(role) as i32), Some(role));
        }
        assert_eq!(role_from_wire(0), Some(Role::Participant));
        assert_eq!(role_from_wire(77), None);
        assert_eq!(ACTION_LABELS.len(), 8);
        assert_eq!(action_label(&mute(1)), "mute");
    }
}
