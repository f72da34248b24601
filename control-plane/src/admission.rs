//! Who gets into a meeting at JoinMeeting: at once, through the waiting room, or not at all,
//! given the meeting's access, waiting room, lock and bans. Pure, so it is tested without a
//! database; the meeting service gathers the facts and acts on the answer.

use crate::store::{Access, WaitingRoom};

/// What of a meeting decides entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Door {
    /// Who may join at all.
    pub access: Access,
    /// Who waits.
    pub waiting_room: WaitingRoom,
    /// Nobody new gets in.
    pub locked: bool,
}

/// What is known of the person asking to join (who already passed the access checks:
/// allow-list, password, guests allowed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applicant {
    /// No account.
    pub guest: bool,
    /// Hosts the meeting (owner, admin, named host).
    pub host: bool,
    /// A host removed and banned this identity.
    pub banned: bool,
    /// Holds a seat in the meeting (granted lately or connected): coming back, not new.
    pub seated: bool,
    /// Holds a ticket a host admitted.
    pub admitted: bool,
}

/// Why someone does not get in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Removed and banned by a host.
    Banned,
    /// Locked: nobody new gets in.
    Locked,
    /// A private meeting takes guests only through its waiting room.
    GuestsWaitOnly,
}

impl Refusal {
    /// The words a caller is shown.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Banned => "a host removed you from this meeting and does not let you back in",
            Refusal::Locked => "a host locked this meeting: nobody new gets in",
            Refusal::GuestsWaitOnly => {
                "this meeting is private and takes guests only through a waiting room: sign in first"
            }
        }
    }
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A grant now.
    Join,
    /// Into the waiting room.
    Wait,
    /// Not at all.
    Refused(Refusal),
}

/// Whether `who` would wait at `door` (before the lock and bans are looked at).
pub fn waits(door: Door, who: Applicant) -> bool {
    if who.host || who.admitted {
        return false;
    }
    match door.waiting_room {
        WaitingRoom::Off => false,
        WaitingRoom::Guests => who.guest,
        WaitingRoom::Everyone => true,
        WaitingRoom::Default => who.guest && door.access == Access::Private,
    }
}

/// Decides `who`'s entry at `door`. A ban keeps anyone out; hosts always get in; a lock keeps
/// out everyone not already seated (an admitted waiter too: admitting does not open a lock);
/// a guest of a private meeting gets in only through the waiting room.
pub fn decide(door: Door, who: Applicant) -> Entry {
    if who.banned {
        return Entry::Refused(Refusal::Banned);
    }
    if who.host {
        return Entry::Join;
    }
    if door.locked && !who.seated {
        return Entry::Refused(Refusal::Locked);
    }
    if waits(door, who) {
        return Entry::Wait;
    }
    if who.guest && door.access == Access::Private && !who.admitted {
        return Entry::Refused(Refusal::GuestsWaitOnly);
    }
    Entry::Join
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door(access: Access, waiting_room: WaitingRoom) -> Door {
        Door {
            access,
            waiting_room,
            locked: false,
        }
    }

    const GUEST: Applicant = Applicant {
        guest: true,
        host: false,
        banned: false,
        seated: false,
        admitted: false,
    };
    const USER: Applicant = Applicant {
        guest: false,
        ..GUEST
    };
    const HOST: Applicant = Applicant { host: true, ..USER };

    #[test]
    fn by_default_guests_of_private_meetings_wait_and_nobody_else() {
        let private = door(Access::Private, WaitingRoom::Default);
        assert_eq!(decide(private, GUEST), Entry::Wait);
        assert_eq!(decide(private, USER), Entry::Join);
        for access in [Access::Public, Access::Password] {
            let open = door(access, WaitingRoom::Default);
            assert_eq!(decide(open, GUEST), Entry::Join);
            assert_eq!(decide(open, USER), Entry::Join);
        }
    }

    #[test]
    fn the_waiting_room_can_take_guests_everyone_or_nobody() {
        let guests = door(Access::Public, WaitingRoom::Guests);
        assert_eq!(decide(guests, GUEST), Entry::Wait);
        assert_eq!(decide(guests, USER), Entry::Join);
        let everyone = door(Access::Public, WaitingRoom::Everyone);
        assert_eq!(decide(everyone, GUEST), Entry::Wait);
        assert_eq!(decide(everyone, USER), Entry::Wait);
        assert_eq!(decide(everyone, HOST), Entry::Join, "hosts never wait");
        let off = door(Access::Public, WaitingRoom::Off);
        assert_eq!(decide(off, GUEST), Entry::Join);
    }

    #[test]
    fn a_private_meeting_without_a_waiting_room_refuses_guests() {
        let off = door(Access::Private, WaitingRoom::Off);
        assert_eq!(decide(off, GUEST), Entry::Refused(Refusal::GuestsWaitOnly));
        assert_eq!(decide(off, USER), Entry::Join);
    }

    #[test]
    fn an_admitted_ticket_gets_in_without_waiting_again() {
        let admitted = Applicant {
            admitted: true,
            ..GUEST
        };
        assert_eq!(
            decide(door(Access::Private, WaitingRoom::Default), admitted),
            Entry::Join
        );
        assert_eq!(
            decide(door(Access::Public, WaitingRoom::Everyone), admitted),
            Entry::Join
        );
    }

    #[test]
    fn a_lock_keeps_out_the_new_but_not_hosts_or_the_seated() {
        let mut locked = door(Access::Public, WaitingRoom::Default);
        locked.locked = true;
        assert_eq!(decide(locked, USER), Entry::Refused(Refusal::Locked));
        assert_eq!(decide(locked, GUEST), Entry::Refused(Refusal::Locked));
        let admitted = Applicant {
            admitted: true,
            ..GUEST
        };
        assert_eq!(
            decide(locked, admitted),
            Entry::Refused(Refusal::Locked),
            "admitting does not open a lock"
        );
        assert_eq!(decide(locked, HOST), Entry::Join);
        let back = Applicant {
            seated: true,
            ..USER
        };
        assert_eq!(decide(locked, back), Entry::Join, "reconnecting");
    }

    #[test]
    fn a_ban_keeps_out_everyone_even_hosts_by_name() {
        let open = door(Access::Public, WaitingRoom::Off);
        for who in [GUEST, USER, HOST] {
            let banned = Applicant {
                banned: true,
                seated: true,
                ..who
            };
            assert_eq!(decide(open, banned), Entry::Refused(Refusal::Banned));
        }
    }
}
