//! Participants' `GroupSession`s driven through a delivery service that behaves as the relays
//! do (one order per meeting, a commit or founding taken only when it follows the last one,
//! everything delivered to everyone, the roster's joins and leaves): they converge on one group
//! whatever the order of joins and leaves, conflicting committers and foundings resolve, and
//! refused input is counted while the meeting goes on.

use std::collections::VecDeque;

use videocall_e2ee::{
    open_chat, open_media, seal_chat, seal_media, E2eeError, GroupSession, Phase, FOUND_AFTER_MS,
    SEALED_TOPIC,
};
use videocall_protocol::wire::{
    DataMessage, Handshake, HandshakeKind, HandshakeRefused, Media, MediaKind,
};

mod common;

use common::member;

/// What the relay tells a participant.
enum Told {
    Left(u64),
    Handshake(Handshake),
    Refused(HandshakeRefused),
}

struct Participant {
    id: u64,
    user: String,
    session: GroupSession,
    inbox: VecDeque<Told>,
    /// Sent but not yet ordered (a relay's queue to the bus).
    outbox: VecDeque<Handshake>,
    online: bool,
    /// In the meeting, but its client does nothing (hung).
    frozen: bool,
}

/// The meeting as the relays keep it: one order, the roster.
#[derive(Default)]
struct Relays {
    next_sequence: u64,
    head: u64,
    next_id: u64,
    participants: Vec<Participant>,
    now_ms: u64,
}

impl Relays {
    fn join(&mut self, user: &str) -> usize {
        self.join_seeing(user, true)
    }

    /// A join; `aware`: whether the participant hears who is there already (on another
    /// relay, it may not yet).
    fn join_seeing(&mut self, user: &str, aware: bool) -> usize {
        self.next_id += 1;
        let id = self.next_id;
        let others: Vec<(u64, String)> = self
            .participants
            .iter()
            .filter(|p| p.online && aware)
            .map(|p| (p.id, p.user.clone()))
            .collect();
        let mut session = GroupSession::new("m-1", member(user));
        let out = session.joined(id, &others, self.head, self.now_ms);
        self.participants.push(Participant {
            id,
            user: user.to_owned(),
            session,
            inbox: VecDeque::new(),
            outbox: out.into(),
            online: true,
            frozen: false,
        });
        self.participants.len() - 1
    }

    fn leave(&mut self, index: usize) {
        let id = self.participants[index].id;
        self.participants[index].online = false;
        for p in self.participants.iter_mut().filter(|p| p.online) {
            p.inbox.push_back(Told::Left(id));
        }
    }

    /// Orders one handshake from participant `from`.
    fn order(&mut self, from: usize, mut handshake: Handshake) {
        let sender = self.participants[from].id;
        handshake.from_participant_id = sender;
        let kind = HandshakeKind::try_from(handshake.kind).unwrap();
        if kind != HandshakeKind::KeyPackage && handshake.after != self.head {
            let refusal = HandshakeRefused {
                kind: handshake.kind,
                after: handshake.after,
                head: self.head,
                reason: "another commit follows that one already".into(),
            };
            self.participants[from]
                .inbox
                .push_back(Told::Refused(refusal));
            return;
        }
        self.next_sequence += 1;
        handshake.sequence = self.next_sequence;
        if kind != HandshakeKind::KeyPackage {
            self.head = self.next_sequence;
        }
        for p in self.participants.iter_mut().filter(|p| p.online) {
            p.inbox.push_back(Told::Handshake(handshake.clone()));
        }
    }

    /// Delivers what is queued, in rounds (everyone's sends are ordered before anybody hears
    /// of them, so participants act at once), until nothing moves.
    fn settle(&mut self) {
        for _ in 0..200 {
            let mut moved = false;
            for i in 0..self.participants.len() {
                if !self.participants[i].online || self.participants[i].frozen {
                    continue;
                }
                while let Some(handshake) = self.participants[i].outbox.pop_front() {
                    self.order(i, handshake);
                    moved = true;
                }
            }
            for i in 0..self.participants.len() {
                let now = self.now_ms;
                let p = &mut self.participants[i];
                if !p.online || p.frozen {
                    continue;
                }
                while let Some(told) = p.inbox.pop_front() {
                    moved = true;
                    let out = match told {
                        Told::Left(id) => {
                            p.session.participant_left(id);
                            p.session.poll(now)
                        }
                        Told::Handshake(h) => p.session.handshake(&h, now),
                        Told::Refused(r) => p.session.refused_by_relay(&r, now),
                    };
                    p.outbox.extend(out);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the meeting did not settle");
    }

    /// Lets time pass (offers and foundings that are due go out), then settles.
    fn pass(&mut self, ms: u64) {
        self.now_ms += ms;
        for p in self
            .participants
            .iter_mut()
            .filter(|p| p.online && !p.frozen)
        {
            let out = p.session.poll(self.now_ms);
            p.outbox.extend(out);
        }
        self.settle();
    }

    /// Everyone online is in one group at one epoch, with exactly the online users, and every
    /// member opens every other member's frame.
    fn assert_one_group(&mut self) {
        let online: Vec<usize> = (0..self.participants.len())
            .filter(|i| self.participants[*i].online)
            .collect();
        let mut users: Vec<String> = online
            .iter()
            .map(|i| self.participants[*i].user.clone())
            .collect();
        users.sort();
        let first = &self.participants[online[0]].session;
        let epoch = first.member().epoch();
        for i in &online {
            let p = &self.participants[*i];
            assert_eq!(
                p.session.phase(),
                Phase::InGroup,
                "{} is not in the group",
                p.user
            );
            assert_eq!(
                p.session.member().epoch(),
                epoch,
                "{} is at another epoch",
                p.user
            );
            let mut members = p.session.member().members();
            members.sort();
            assert_eq!(members, users, "{}'s group", p.user);
        }
        for from in &online {
            let frame = self.participants[*from]
                .session
                .member_mut()
                .seal(b"meta", b"hello")
                .unwrap();
            for to in &online {
                if to != from {
                    let opened = self.participants[*to]
                        .session
                        .member_mut()
                        .open(b"meta", &frame)
                        .unwrap();
                    assert_eq!(opened.payload, b"hello");
                }
            }
        }
    }
}

/// The relay's roster as a participant learns it: joins carry the user.
fn tell_joins(relays: &mut Relays) {
    let everyone: Vec<(u64, String, bool)> = relays
        .participants
        .iter()
        .map(|p| (p.id, p.user.clone(), p.online))
        .collect();
    for p in relays.participants.iter_mut().filter(|p| p.online) {
        for (id, user, online) in &everyone {
            if *online && *id != p.id {
                p.session.participant_joined(*id, user);
            }
        }
    }
}

fn join(relays: &mut Relays, user: &str) -> usize {
    let index = relays.join(user);
    tell_joins(relays);
    index
}

#[test]
fn participants_joining_one_by_one_end_in_one_group() {
    let mut relays = Relays::default();
    join(&mut relays, "alice");
    relays.settle();
    assert_eq!(
        relays.participants[0].session.phase(),
        Phase::InGroup,
        "alone: founded"
    );
    for user in ["bob", "carol", "dave"] {
        join(&mut relays, user);
        relays.settle();
        relays.assert_one_group();
    }
    assert_eq!(relays.participants[0].session.member().epoch(), Some(3));
}

#[test]
fn a_participant_who_never_encrypts_delays_nobody_in_a_meeting_without_a_group() {
    let mut relays = Relays::default();
    // Eve is in the meeting but her client does nothing: the first who encrypts founds at
    // once (the meeting never had a group), and the next is added.
    join(&mut relays, "eve");
    relays.participants[0].frozen = true;
    join(&mut relays, "alice");
    relays.settle();
    assert_eq!(relays.participants[1].session.phase(), Phase::InGroup);
    join(&mut relays, "bob");
    relays.settle();
    assert_eq!(relays.participants[2].session.phase(), Phase::InGroup);
    assert_eq!(relays.participants[1].session.member().epoch(), Some(1));
}

#[test]
fn two_founders_at_once_and_joins_in_a_burst_converge() {
    let mut relays = Relays::default();
    // Both alone as far as they know (on two relays, before either heard of the other): both
    // found, one founding wins.
    relays.join_seeing("alice", false);
    relays.join_seeing("bob", false);
    relays.settle();
    tell_joins(&mut relays);
    relays.pass(3_000);
    relays.assert_one_group();
    // Three at once: one commit adds them, or several that conflict and resolve.
    for user in ["carol", "dave", "erin"] {
        relays.join(user);
    }
    tell_joins(&mut relays);
    relays.settle();
    relays.assert_one_group();
}

/// The race the streamer test met under load: bob joins as alice founds (his `Joined` says no
/// group yet), so he offers and founds at once. Alice adds him from his offer before his
/// founding reaches the order, which refuses it with the head her commit made; the refusal
/// reaches bob at once, her commit (with his Welcome) a moment later over the bus. Bob must
/// still join by that Welcome, and the offer he sends again meanwhile must not look like the
/// offer of someone who lost his state (alice would remove him and add him again: frames
/// sealed in between are lost).
#[test]
fn a_founding_refused_after_the_commit_that_adds_its_sender_does_not_cost_the_join() {
    let mut relays = Relays::default();
    join(&mut relays, "alice");
    relays.settle();
    let alice = 0;
    // Bob's join was admitted before alice's founding was ordered: head 0.
    relays.next_id += 1;
    let me = relays.next_id;
    let others = vec![(relays.participants[alice].id, "alice".to_owned())];
    let mut session = GroupSession::new("m-1", member("bob"));
    let mut out: VecDeque<Handshake> = session.joined(me, &others, 0, relays.now_ms).into();
    relays.participants.push(Participant {
        id: me,
        user: "bob".into(),
        session,
        inbox: VecDeque::new(),
        outbox: VecDeque::new(),
        online: true,
        frozen: false,
    });
    let bob = 1;
    tell_joins(&mut relays);
    let offer = out.pop_front().expect("an offer");
    assert_eq!(offer.kind, HandshakeKind::KeyPackage as i32);
    let founding = out
        .pop_front()
        .expect("a founding: no group as far as bob knows");
    assert_eq!(founding.kind, HandshakeKind::Found as i32);
    // His offer is ordered; alice commits the add, and her commit is ordered.
    relays.order(bob, offer);
    let now = relays.now_ms;
    while let Some(Told::Handshake(h)) = relays.participants[alice].inbox.pop_front() {
        let out = relays.participants[alice].session.handshake(&h, now);
        relays.participants[alice].outbox.extend(out);
    }
    let commit = relays.participants[alice]
        .outbox
        .pop_front()
        .expect("alice adds bob");
    assert_eq!(commit.kind, HandshakeKind::Commit as i32);
    relays.order(alice, commit);
    // Now his founding reaches the order: refused, and the refusal reaches him before the
    // commit does.
    relays.order(bob, founding);
    let refusal = relays.participants[bob]
        .inbox
        .pop_back()
        .expect("the refusal");
    assert!(matches!(refusal, Told::Refused(_)));
    let inbox = &mut relays.participants[bob].inbox;
    let position = inbox
        .iter()
        .position(
            |told| matches!(told, Told::Handshake(h) if h.kind == HandshakeKind::Commit as i32),
        )
        .expect("the commit on its way to bob");
    inbox.insert(position, refusal);
    relays.settle();
    relays.assert_one_group();
    assert_eq!(
        relays.participants[alice].session.member().epoch(),
        Some(1),
        "bob joined by the first commit, and nobody removed him and added him again"
    );
    // Time passes: nothing changes.
    relays.pass(3_000);
    relays.assert_one_group();
    assert_eq!(relays.participants[bob].session.member().epoch(), Some(1));
}

#[test]
fn a_leave_rekeys_and_the_leaver_cannot_open_what_follows() {
    let mut relays = Relays::default();
    for user in ["alice", "bob", "carol"] {
        join(&mut relays, user);
        relays.settle();
    }
    relays.assert_one_group();
    let before = relays.participants[2].session.member().epoch();
    relays.leave(2);
    relays.settle();
    relays.assert_one_group();
    let after = relays.participants[0].session.member().epoch();
    assert!(after > before, "the leave made a new epoch");
    let frame = relays.participants[0]
        .session
        .member_mut()
        .seal(b"m", b"after carol left")
        .unwrap();
    let carol = &mut relays.participants[2].session;
    assert!(matches!(
        carol.member_mut().open(b"m", &frame),
        Err(E2eeError::UnknownKey(_))
    ));
    // The committer left: the next lowest leaf takes over.
    relays.leave(0);
    relays.settle();
    relays.assert_one_group();
    join(&mut relays, "dave");
    relays.settle();
    relays.assert_one_group();
}

#[test]
fn a_participant_that_comes_back_with_a_fresh_state_is_replaced_in_the_group() {
    let mut relays = Relays::default();
    for user in ["alice", "bob"] {
        join(&mut relays, user);
        relays.settle();
    }
    // Bob reloads: his new session replaces the old one (the relay closes it), while his old
    // leaf is still in the group.
    relays.leave(1);
    join(&mut relays, "bob");
    relays.settle();
    relays.assert_one_group();
    // Bob's client loses its state without the relay noticing (it joins the group afresh
    // under the same session): offered again after it saw itself added, it is replaced too.
    let bob = 2;
    let me = relays.participants[bob].id;
    let others = vec![(relays.participants[0].id, "alice".to_owned())];
    let head = relays.head;
    let out = relays.participants[bob]
        .session
        .joined(me, &others, head, relays.now_ms);
    relays.participants[bob].outbox.extend(out);
    relays.settle();
    relays.assert_one_group();
}

#[test]
fn when_the_committer_hangs_a_waiting_participant_founds_afresh_and_everyone_follows() {
    let mut relays = Relays::default();
    for user in ["alice", "bob"] {
        join(&mut relays, user);
        relays.settle();
    }
    // Alice (the committer) hangs without leaving: nobody adds Carol.
    relays.participants[0].frozen = true;
    let carol = join(&mut relays, "carol");
    relays.settle();
    relays.pass(3_000);
    assert_eq!(relays.participants[carol].session.phase(), Phase::Waiting);
    // Carol founds the group afresh; Bob leaves the old one and is added to hers.
    relays.pass(FOUND_AFTER_MS);
    relays.pass(0);
    // The relay times Alice out.
    relays.leave(0);
    relays.settle();
    relays.assert_one_group();
    assert_eq!(relays.participants[1].session.member().epoch(), Some(1));
}

#[test]
fn forged_key_packages_and_a_garbage_commit_are_refused_and_the_meeting_goes_on() {
    let mut relays = Relays::default();
    for user in ["alice", "bob"] {
        join(&mut relays, user);
        relays.settle();
    }
    // Mallory joins as herself, and offers a key package made for Bob's name.
    let mallory = join(&mut relays, "mallory");
    relays.settle();
    let forged = member("bob").key_package().unwrap();
    relays.order(
        mallory,
        Handshake {
            kind: HandshakeKind::KeyPackage as i32,
            message: forged.into(),
            ..Default::default()
        },
    );
    // And a commit of garbage that follows the last one, so the order takes it.
    let head = relays.head;
    relays.order(
        mallory,
        Handshake {
            kind: HandshakeKind::Commit as i32,
            after: head,
            message: vec![0xde, 0xad, 0xbe, 0xef].into(),
            ..Default::default()
        },
    );
    relays.settle();
    relays.assert_one_group();
    let alice = relays.participants[0].session.counters();
    assert!(alice.key_packages_refused >= 1, "{alice:?}");
    assert_eq!(alice.commits_refused, 1, "{alice:?}");
    let mut members = relays.participants[0].session.member().members();
    members.sort();
    assert_eq!(
        members,
        ["alice", "bob", "mallory"],
        "only mallory's own offer counted"
    );
}

#[test]
fn media_and_chat_are_sealed_with_what_the_relay_routes_by_authenticated() {
    let mut relays = Relays::default();
    for user in ["alice", "bob"] {
        join(&mut relays, user);
        relays.settle();
    }
    relays.assert_one_group();
    let frame = Media {
        participant_id: 0,
        track_id: 2,
        kind: MediaKind::Video as i32,
        sequence: 41,
        keyframe: true,
        layer: 0,
        payload: b"an encoded picture".to_vec().into(),
        ..Default::default()
    };
    let mut sealed = frame.clone();
    seal_media(relays.participants[0].session.member_mut(), &mut sealed).unwrap();
    assert_ne!(sealed.payload, frame.payload);
    // The relay sets the publisher's id: not authenticated, not needed.
    sealed.participant_id = 7;
    let bob = relays.participants[1].session.member_mut();
    let mut opened = sealed.clone();
    let (leaf, _) = open_media(bob, &mut opened).unwrap();
    assert_eq!(leaf, 0);
    assert_eq!(opened.payload, frame.payload);
    // What the relay routes by cannot be changed on the way: a keyframe passed off as a delta
    // frame, another track, another sequence, another layer.
    for tamper in [
        |m: &mut Media| m.keyframe = false,
        |m: &mut Media| m.track_id = 3,
        |m: &mut Media| m.sequence = 40,
        |m: &mut Media| m.layer = 1,
    ] {
        let mut changed = frame.clone();
        seal_media(relays.participants[0].session.member_mut(), &mut changed).unwrap();
        tamper(&mut changed);
        let bob = relays.participants[1].session.member_mut();
        let refused = open_media(bob, &mut changed);
        assert!(matches!(refused, Err(E2eeError::Tampered)), "{refused:?}");
    }

    let mut chat = DataMessage {
        topic: "chat".into(),
        text: "the launch code is 1234".into(),
        data: vec![1, 2, 3].into(),
        ..Default::default()
    };
    seal_chat(relays.participants[1].session.member_mut(), &mut chat).unwrap();
    assert_eq!(chat.topic, SEALED_TOPIC);
    assert!(chat.text.is_empty());
    assert!(!chat.data.windows(6).any(|w| w == b"launch"));
    let alice = relays.participants[0].session.member_mut();
    let mut opened = chat.clone();
    assert_eq!(open_chat(alice, &mut opened).unwrap(), 1);
    assert_eq!(
        (
            opened.topic.as_str(),
            opened.text.as_str(),
            opened.data.as_ref()
        ),
        ("chat", "the launch code is 1234", [1u8, 2, 3].as_slice())
    );
    // A message in clear is refused, not shown.
    let mut clear = DataMessage {
        topic: "chat".into(),
        text: "hello".into(),
        ..Default::default()
    };
    assert!(open_chat(alice, &mut clear).is_err());
}
