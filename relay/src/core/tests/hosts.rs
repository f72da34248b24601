//! Hosts over the core: roles checked at the relay, a muted microphone held back there, mute
//! all, remove and ban, lock, end for all, roles changed, hands raised and lowered.

use super::*;
use videocall_protocol::wire::{
    host_action::Action, AskToUnmute, EndForAll, HostAction, LockMeeting, LowerHand, MuteAll,
    MuteParticipant, RemoveParticipant, Role as WireRole, SetRole,
};
use videocall_token::Role;

fn with_role(role: Role) -> Grants {
    Grants {
        role: Some(role),
        ..Grants::default()
    }
}

/// Joins meeting "m" as `user` with `role`.
fn join_as(world: &World, user: &str, role: Role) -> Joined {
    world
        .try_join(user, "m", with_role(role))
        .expect("admitted")
}

fn act(who: &Joined, action: Action, now: Now) {
    who.send(
        Body::HostAction(HostAction {
            action: Some(action),
        }),
        now,
    );
}

fn mute(id: u64, kind: MediaKind, disallow_unmute: bool) -> Action {
    Action::Mute(MuteParticipant {
        participant_id: id,
        kind: kind as i32,
        disallow_unmute,
    })
}

fn errors(bodies: &[Body]) -> Vec<(i32, String)> {
    bodies
        .iter()
        .filter_map(|b| match b {
            Body::Error(e) => Some((e.code, e.message.clone())),
            _ => None,
        })
        .collect()
}

/// The last description of participant `id` in `bodies`.
fn described(bodies: &[Body], id: u64) -> Option<wire::Participant> {
    bodies.iter().rev().find_map(|b| match b {
        Body::ParticipantUpdated(u) => u.participant.clone().filter(|p| p.id == id),
        _ => None,
    })
}

fn set_mic(who: &Joined, muted: bool, now: Now) {
    who.send(
        Body::UpdateState(UpdateState {
            audio_muted: muted,
            ..Default::default()
        }),
        now,
    );
}

#[test]
fn a_muted_microphone_is_held_back_at_the_relay_until_a_host_lets_it_back() {
    let world = World::new(&[]);
    let now = world.start;
    let host = join_as(&world, "host", Role::Host);
    let bob = world.join("bob", "m");
    let carol = world.join("carol", "m");
    bob.announce(&[(1, MediaKind::Audio)], now);
    bob.media(1, MediaKind::Audio, 1, false, now);
    assert_eq!(carol.inbox.take_media().len(), 1);

    // A participant may not mute others: refused, and nothing changes.
    act(&carol, mute(bob.id(), MediaKind::Audio, true), now);
    let refused = errors(&carol.inbox.take());
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, ErrorCode::Forbidden as i32);
    assert!(refused[0].1.contains("only hosts"), "{}", refused[0].1);
    bob.media(1, MediaKind::Audio, 2, false, now);
    assert_eq!(carol.inbox.take_media().len(), 1);

    host.inbox.take();
    bob.inbox.take();
    act(&host, mute(bob.id(), MediaKind::Audio, true), now);
    let told = bob.inbox.take();
    assert!(
        told.iter()
            .any(|b| matches!(b, Body::HostNotice(n) if n.by_participant_id == host.id())),
        "{told:?}"
    );
    let seen = described(&carol.inbox.take(), bob.id()).expect("bob updated");
    assert!(seen.audio_muted && seen.audio_locked);
    // A client that goes on sending: the relay forwards none of it.
    bob.media(1, MediaKind::Audio, 3, false, now);
    assert!(carol.inbox.take_media().is_empty());
    assert_eq!(world.drops(DropReason::HeldByHost), 1.0);
    // Nor may it unmute itself.
    set_mic(&bob, false, now);
    let refused = errors(&bob.inbox.take());
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].1.contains("raise your hand"), "{}", refused[0].1);
    assert!(bob.session.me.describe().audio_muted);
    bob.media(1, MediaKind::Audio, 4, false, now);
    assert!(carol.inbox.take_media().is_empty());

    // Asked to unmute, it may, and its audio flows again.
    act(
        &host,
        Action::AskToUnmute(AskToUnmute {
            participant_id: bob.id(),
            kind: MediaKind::Audio as i32,
        }),
        now,
    );
    assert!(bob
        .inbox
        .take()
        .iter()
        .any(|b| matches!(b, Body::HostNotice(_))));
    set_mic(&bob, false, now);
    assert!(errors(&bob.inbox.take()).is_empty());
    bob.media(1, MediaKind::Audio, 5, false, now);
    assert_eq!(carol.inbox.take_media(), vec![(bob.id(), 1, 5)]);
    let seen = described(&carol.inbox.take(), bob.id()).expect("bob updated");
    assert!(!seen.audio_muted && !seen.audio_locked);
}

#[test]
fn a_mute_that_allows_unmuting_ends_when_the_participant_unmutes() {
    let world = World::new(&[]);
    let now = world.start;
    let host = join_as(&world, "host", Role::Cohost);
    let bob = world.join("bob", "m");
    let carol = world.join("carol", "m");
    bob.announce(&[(2, MediaKind::Video)], now);
    act(&host, mute(bob.id(), MediaKind::Video, false), now);
    bob.media(2, MediaKind::Video, 1, true, now);
    assert!(
        carol.inbox.take_media().is_empty(),
        "camera stopped by a host"
    );
    bob.send(
        Body::UpdateState(UpdateState {
            video_muted: false,
            ..Default::default()
        }),
        now,
    );
    assert!(errors(&bob.inbox.take()).is_empty());
    bob.media(2, MediaKind::Video, 2, true, now);
    assert_eq!(carol.inbox.take_media(), vec![(bob.id(), 2, 2)]);
}

#[test]
fn mute_all_mutes_everyone_but_hosts_and_cohosts() {
    let world = World::new(&[]);
    let now = world.start;
    let host = join_as(&world, "host", Role::Host);
    let cohost = join_as(&world, "co", Role::Cohost);
    let bob = world.join("bob", "m");
    let guest = join_as(&world, "guest-1", Role::Guest);
    act(
        &cohost,
        Action::MuteAll(MuteAll {
            disallow_unmute: false,
        }),
        now,
    );
    assert!(bob.session.me.held_by_host(MediaKind::Audio));
    assert!(guest.session.me.held_by_host(MediaKind::Audio));
    assert!(!host.session.me.held_by_host(MediaKind::Audio));
    assert!(!cohost.session.me.held_by_host(MediaKind::Audio));
    assert!(!bob.session.me.describe().audio_locked);
}

#[test]
fn a_locked_meeting_takes_nobody_new_but_who_was_there_and_hosts() {
    let world = World::new(&[]);
    let now = world.start;
    let host = join_as(&world, "host", Role::Host);
    let bob = world.join("bob", "m");
    act(&host, Action::Lock(LockMeeting { locked: true }), now);
    assert!(bob
        .inbox
        .take()
        .iter()
        .any(|b| matches!(b, Body::MeetingUpdated(u) if u.locked)));
    let refused = world
        .try_join("mallory", "m", Grants::default())
        .err()
        .expect("locked");
    assert_eq!(refused.code, ErrorCode::MeetingLocked);
    // Another meeting is not locked.
    assert!(world
        .try_join("mallory", "other", Grants::default())
        .is_ok());
    // Bob drops and comes back; another host gets in; both are told it is locked.
    bob.session.finish();
    let again = world.join("bob", "m");
    assert!(
        matches!(&again.inbox.take()[0], Body::Joined(j) if j.locked && j.role == WireRole::Participant as i32)
    );
    let second = join_as(&world, "owner", Role::Host);
    assert!(matches!(&second.inbox.take()[0], Body::Joined(j) if j.role == WireRole::Host as i32));
    act(&host, Action::Lock(LockMeeting { locked: false }), now);
    assert!(world.try_join("mallory", "m", Grants::default()).is_ok());
}

#[test]
fn a_removed_and_banned_identity_does_not_get_back_in() {
    let world = World::new(&[]);
    let now = world.start;
    let host = join_as(&world, "host", Role::Host);
    let bob = world.join("bob", "m");
    let carol = world.join("carol", "m");
    let remove = |id, ban| {
        Action::Remove(RemoveParticipant {
            participant_id: id,
            reason: String::new(),
            ban,
        })
    };
    act(&host, remove(bob.id(), false), now);
    assert_eq!(bob.session.finish().leave, LeaveReason::Kicked);
    let bob = world.join("bob", "m");
    act(&host, remove(carol.id(), true), now);
    let closed = carol.session.finish();
    assert_eq!(closed.leave, LeaveReason::Kicked);
    let refused = world
        .try_join("carol", "m", Grants::default())
        .err()
        .expect("banned");
    assert_eq!(refused.code, ErrorCode::Forbidden);
    // A co-host may not remove a host, nor a host itself.
    let cohost = join_as(&world, "co", Role::Cohost);
    act(&cohost, remove(host.id(), true), now);
    act(&host, remove(host.id(), false), now);
    assert_eq!(errors(&cohost.inbox.take()).len(), 1);
    assert_eq!(errors(&host.inbox.take()).len(), 1);
    assert!(world.try_join("host", "m", with_role(Role::Host)).is_ok());
    drop(bob);
}

#[test]
fn a_host_ends_the_meeting_for_all_and_older_grants_stop_working() {
    let world = World::new(&[]);
    let now = world.start;
    let cohost = join_as(&world, "co", Role::Cohost);
    let host = join_as(&world, "host", Role::Host);
    let bob = world.join("bob", "m");
    let old_token = world.token("bob", "m", Grants::default());
    act(&cohost, Action::End(EndForAll {}), now);
    assert!(
        !bob.inbox.closed.load(Ordering::Relaxed),
        "only hosts end it"
    );
    act(&host, Action::End(EndForAll {}), now);
    for who in [&cohost, &host, &bob] {
        assert!(who.inbox.closed.load(Ordering::Relaxed));
    }
    assert_eq!(bob.session.finish().leave, LeaveReason::MeetingEnded);
    let refused = admit(
        &world.relay,
        world.join_frame(&old_token, "m"),
        TransportKind::WebSocket,
        Box::new(FakeOutlet(Inbox::new())),
        now,
    )
    .err()
    .expect("ended");
    assert_eq!(refused.code, ErrorCode::MeetingEnded);
}

#[test]
fn a_host_makes_a_participant_a_cohost_who_may_then_moderate() {
    let world = World::new(&[]);
    let now = world.start;
    let host = join_as(&world, "host", Role::Host);
    let bob = world.join("bob", "m");
    let carol = world.join("carol", "m");
    let guest = join_as(&world, "guest-2", Role::Guest);
    let set = |id, role: WireRole| {
        Action::SetRole(SetRole {
            participant_id: id,
            role: role as i32,
        })
    };
    act(&bob, mute(carol.id(), MediaKind::Audio, false), now);
    assert!(!carol.session.me.held_by_host(MediaKind::Audio));
    act(&host, set(bob.id(), WireRole::Cohost), now);
    assert_eq!(bob.session.me.role(), Role::Cohost);
    let seen = described(&carol.inbox.take(), bob.id()).expect("bob updated");
    assert_eq!(seen.role, WireRole::Cohost as i32);
    act(&bob, mute(carol.id(), MediaKind::Audio, false), now);
    assert!(carol.session.me.held_by_host(MediaKind::Audio));
    // A co-host changes no roles; a guest stays a guest; a host keeps its own role.
    bob.inbox.take();
    act(&bob, set(carol.id(), WireRole::Cohost), now);
    assert_eq!(errors(&bob.inbox.take()).len(), 1);
    host.inbox.take();
    act(&host, set(guest.id(), WireRole::Cohost), now);
    act(&host, set(host.id(), WireRole::Participant), now);
    act(&host, set(carol.id(), WireRole::Guest), now);
    let refused = errors(&host.inbox.take());
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert_eq!(refused[2].0, ErrorCode::Malformed as i32);
    assert_eq!(guest.session.me.role(), Role::Guest);
    assert_eq!(host.session.me.role(), Role::Host);
}

#[test]
fn hands_go_up_in_order_and_a_host_lowers_them() {
    let world = World::new(&[]);
    let now = world.start;
    let host = join_as(&world, "host", Role::Host);
    let bob = world.join("bob", "m");
    let carol = world.join("carol", "m");
    let hand = |who: &Joined, up: bool, at: Now| {
        who.send(
            Body::UpdateState(UpdateState {
                hand_raised: Some(up),
                ..Default::default()
            }),
            at,
        )
    };
    hand(&bob, true, now.later(10));
    hand(&carol, true, now.later(20));
    // Raised again: it keeps its place.
    hand(&bob, true, now.later(30));
    let seen = host.inbox.take();
    let (b, c) = (
        described(&seen, bob.id()).expect("bob"),
        described(&seen, carol.id()).expect("carol"),
    );
    assert!(b.hand_raised_at_ms > 0 && b.hand_raised_at_ms < c.hand_raised_at_ms);
    // A mute-only update leaves the hand up.
    set_mic(&bob, true, now.later(40));
    assert!(bob.session.me.describe().hand_raised_at_ms > 0);
    // Participants lower only their own.
    act(
        &carol,
        Action::LowerHand(LowerHand {
            participant_id: bob.id(),
        }),
        now,
    );
    assert!(bob.session.me.describe().hand_raised_at_ms > 0);
    act(
        &host,
        Action::LowerHand(LowerHand {
            participant_id: bob.id(),
        }),
        now,
    );
    assert_eq!(bob.session.me.describe().hand_raised_at_ms, 0);
    hand(&carol, false, now.later(50));
    assert_eq!(carol.session.me.describe().hand_raised_at_ms, 0);
}

#[test]
fn bad_host_actions_get_a_clear_error_and_the_session_goes_on() {
    let world = World::new(&[]);
    let now = world.start;
    let host = join_as(&world, "host", Role::Host);
    let bob = world.join("bob", "m");
    host.inbox.take();
    host.send(Body::HostAction(HostAction { action: None }), now);
    act(&host, mute(12345, MediaKind::Audio, false), now);
    act(&host, mute(bob.id(), MediaKind::Unspecified, false), now);
    host.send(
        Body::HostNotice(wire::HostNotice {
            by_participant_id: 1,
            action: None,
        }),
        now,
    );
    let refused = errors(&host.inbox.take());
    assert_eq!(
        refused.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![
            ErrorCode::Malformed as i32,
            ErrorCode::Malformed as i32,
            ErrorCode::Malformed as i32,
            ErrorCode::UnknownMessage as i32
        ],
        "{refused:?}"
    );
    assert!(!host.inbox.closed.load(Ordering::Relaxed));
    act(&host, mute(bob.id(), MediaKind::Audio, false), now);
    assert!(bob.session.me.held_by_host(MediaKind::Audio));
}

#[test]
fn what_hosts_do_here_is_kept_for_the_control_plane_and_only_what_was_done() {
    let world = World::new(&[]);
    let now = world.start;
    let host = join_as(&world, "host", Role::Host);
    let bob = world.join("bob", "m");
    let carol = world.join("carol", "m");
    act(&host, mute(bob.id(), MediaKind::Audio, true), now);
    act(&host, Action::Lock(LockMeeting { locked: true }), now);
    // Refused: not reported.
    act(&bob, mute(carol.id(), MediaKind::Audio, false), now);
    let reports = world.relay.host_actions.take();
    let summary: Vec<_> = reports
        .iter()
        .map(|r| {
            (
                r.action,
                r.by_identity.as_str(),
                r.target_identity.as_str(),
                r.detail.as_str(),
                r.locked,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("mute", "host", "bob", "audio, may not unmute", false),
            ("lock", "host", "", "locked", true),
        ]
    );
    assert!(reports
        .iter()
        .all(|r| r.meeting_id == "m" && r.at_ms == i64::try_from(now.unix_ms()).unwrap()));
}

#[test]
fn a_host_action_from_the_control_plane_is_carried_out_like_a_hosts_own() {
    let world = World::new(&[]);
    let now = world.start;
    let _host = join_as(&world, "host", Role::Host);
    let bob = world.join("bob", "m");
    let carol = world.join("carol", "m");
    bob.inbox.take();
    assert!(act_for_control_plane(
        &world.relay,
        "m",
        mute(bob.id(), MediaKind::Audio, true),
        now
    ));
    assert!(bob.session.me.held_by_host(MediaKind::Audio));
    let told = bob.inbox.take();
    assert!(
        told.iter()
            .any(|b| matches!(b, Body::HostNotice(n) if n.by_participant_id == 0)),
        "bob hears a host did it: {told:?}"
    );
    assert!(described(&carol.inbox.take(), bob.id()).is_some_and(|p| p.audio_locked));
    // Nothing for the control plane's record: it keeps its own.
    assert!(world.relay.host_actions.take().is_empty());
    // A participant or meeting that is not here: nothing done.
    assert!(!act_for_control_plane(
        &world.relay,
        "m",
        mute(999, MediaKind::Audio, false),
        now
    ));
    assert!(!act_for_control_plane(
        &world.relay,
        "elsewhere",
        Action::Lock(LockMeeting { locked: true }),
        now
    ));
    assert!(world.try_join("mallory", "m", Grants::default()).is_ok());
}
