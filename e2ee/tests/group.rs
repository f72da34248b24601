//! Meetings as MLS groups with SFrame frames, members driven through a delivery service that
//! puts handshake messages in one order (what the relays do): who can read what after joins,
//! removals and conflicting commits, and what is refused.

use std::sync::Arc;

use videocall_e2ee::{E2eeError, Handled, Member, SigningKey};
use videocall_token::TokenIssuer;

mod common;

use common::{authority, credential, member};

/// The delivery service: one ordered log of handshake messages per meeting.
#[derive(Default)]
struct Delivery {
    log: Vec<Vec<u8>>,
}

impl Delivery {
    fn post(&mut self, message: Vec<u8>) {
        self.log.push(message);
    }

    /// Hands `member` everything from `cursor` on; returns what each did.
    fn catch_up(&self, member: &mut Member, cursor: &mut usize) -> Vec<Handled> {
        let mut handled = Vec::new();
        while *cursor < self.log.len() {
            let message = &self.log[*cursor];
            *cursor += 1;
            match member.handle(message) {
                Ok(h) => handled.push(h),
                // A commit that lost its epoch is stale for everyone after the winner.
                Err(E2eeError::StaleEpoch { .. }) => {}
                Err(e) => panic!("{}: {e}", member.name()),
            }
        }
        handled
    }
}

struct Meeting {
    delivery: Delivery,
    members: Vec<(Member, usize)>,
}

impl Meeting {
    fn start(host: &str) -> Self {
        let mut first = member(host);
        first.create("m-1").unwrap();
        Meeting {
            delivery: Delivery::default(),
            members: vec![(first, 0)],
        }
    }

    fn sync(&mut self) {
        for (member, cursor) in &mut self.members {
            self.delivery.catch_up(member, cursor);
        }
    }

    /// The first member adds the owner of `package`; everyone catches up; the Welcome.
    fn host_adds(&mut self, package: &[u8]) -> Vec<u8> {
        let proposed = self.members[0].0.propose_add(&[package]).unwrap();
        self.delivery.post(proposed.commit);
        let (host, cursor) = &mut self.members[0];
        let welcome = match self.delivery.catch_up(host, cursor).pop() {
            Some(Handled::Committed {
                welcome: Some(w), ..
            }) => w,
            other => panic!("expected the host's commit back, got {other:?}"),
        };
        self.sync();
        welcome
    }

    /// The first member adds `name`, who joins by the Welcome.
    fn add(&mut self, name: &str) {
        let mut newcomer = member(name);
        let welcome = self.host_adds(&newcomer.key_package().unwrap());
        newcomer.join(&welcome).unwrap();
        let cursor = self.delivery.log.len();
        self.members.push((newcomer, cursor));
    }

    fn member(&mut self, name: &str) -> &mut Member {
        &mut self
            .members
            .iter_mut()
            .find(|(m, _)| m.name() == name)
            .unwrap()
            .0
    }
}

#[test]
fn everyone_opens_everyone_elses_frames_and_the_ciphertext_carries_no_plaintext() {
    let mut meeting = Meeting::start("alice");
    meeting.add("bob");
    meeting.add("carol");
    let epochs: Vec<_> = meeting.members.iter().map(|(m, _)| m.epoch()).collect();
    assert_eq!(epochs, vec![Some(2); 3]);
    assert_eq!(meeting.member("carol").members(), ["alice", "bob", "carol"]);
    for from in ["alice", "bob", "carol"] {
        let text = format!("PLAINTEXT-PATTERN from {from}");
        let sealed = meeting
            .member(from)
            .seal(b"track 1", text.as_bytes())
            .unwrap();
        assert!(
            !sealed
                .windows(b"PLAINTEXT".len())
                .any(|w| w == b"PLAINTEXT"),
            "plaintext visible"
        );
        for to in ["alice", "bob", "carol"].into_iter().filter(|t| *t != from) {
            let receiver = meeting.member(to);
            let opened = receiver.open(b"track 1", &sealed).unwrap();
            assert_eq!(opened.payload, text.as_bytes());
            assert_eq!(receiver.member_at(opened.sender).as_deref(), Some(from));
        }
    }
}

#[test]
fn a_removed_member_cannot_open_what_is_sent_after_the_rekey() {
    let mut meeting = Meeting::start("alice");
    meeting.add("bob");
    meeting.add("carol");
    // Mallory's copy of bob: the same keys, and it never applies the commit that removes him.
    let before = meeting.member("alice").seal(b"", b"before").unwrap();
    assert_eq!(
        meeting.member("bob").open(b"", &before).unwrap().payload,
        b"before"
    );

    let proposed = meeting.member("alice").propose_remove(&["bob"]).unwrap();
    meeting.delivery.post(proposed.commit);
    // Bob, holding on to his old keys, does not catch up yet.
    let mut bob = meeting.members.remove(1);
    meeting.sync();
    assert_eq!(meeting.member("carol").members(), ["alice", "carol"]);
    let after = meeting.member("alice").seal(b"", b"after").unwrap();
    assert_eq!(
        meeting.member("carol").open(b"", &after).unwrap().payload,
        b"after"
    );
    assert!(matches!(
        bob.0.open(b"", &after),
        Err(E2eeError::UnknownKey(_))
    ));
    // And once he applies it, he is out and holds nothing.
    let handled = meeting.delivery.catch_up(&mut bob.0, &mut bob.1);
    assert_eq!(handled, [Handled::Removed]);
    assert!(matches!(
        bob.0.open(b"", &after),
        Err(E2eeError::UnknownKey(_))
    ));
    assert!(matches!(bob.0.seal(b"", b"x"), Err(E2eeError::NoGroup)));
}

#[test]
fn a_new_member_cannot_open_what_was_sent_before_it_joined() {
    let mut meeting = Meeting::start("alice");
    meeting.add("bob");
    let recorded = meeting.member("bob").seal(b"", b"earlier").unwrap();
    meeting.add("dave");
    // Frames still in flight from the epoch before open for those who were in it ...
    assert_eq!(
        meeting
            .member("alice")
            .open(b"", &recorded)
            .unwrap()
            .payload,
        b"earlier"
    );
    // ... and never for the newcomer.
    assert!(matches!(
        meeting.member("dave").open(b"", &recorded),
        Err(E2eeError::UnknownKey(_))
    ));
    let now = meeting.member("bob").seal(b"", b"now").unwrap();
    assert_eq!(
        meeting.member("dave").open(b"", &now).unwrap().payload,
        b"now"
    );
}

#[test]
fn conflicting_commits_resolve_in_the_delivery_order_and_the_loser_redoes_its_own() {
    let mut meeting = Meeting::start("alice");
    meeting.add("bob");
    let mut carol = member("carol");
    let mut dave = member("dave");
    // Alice adds carol and bob adds dave, both at epoch 1; alice's reaches the log first.
    let a = meeting
        .member("alice")
        .propose_add(&[&carol.key_package().unwrap()])
        .unwrap();
    let b = meeting
        .member("bob")
        .propose_add(&[&dave.key_package().unwrap()])
        .unwrap();
    meeting.delivery.post(a.commit);
    meeting.delivery.post(b.commit);
    let (alice, cursor) = &mut meeting.members[0];
    let alice_saw = meeting.delivery.catch_up(alice, cursor);
    let (bob, cursor) = &mut meeting.members[1];
    let bob_saw = meeting.delivery.catch_up(bob, cursor);
    let Some(Handled::Committed {
        welcome: Some(welcome),
        epoch: 2,
    }) = alice_saw.first().cloned()
    else {
        panic!("alice: {alice_saw:?}");
    };
    assert_eq!(
        bob_saw,
        [Handled::Advanced {
            epoch: 2,
            superseded: true
        }]
    );
    carol.join(&welcome).unwrap();
    let cursor = meeting.delivery.log.len();
    meeting.members.push((carol, cursor));
    // Bob proposes again what is left of his commit: dave.
    let again = meeting
        .member("bob")
        .redo()
        .unwrap()
        .expect("dave is still to add");
    meeting.delivery.post(again.commit);
    let (bob, cursor) = &mut meeting.members[1];
    let Some(Handled::Committed {
        welcome: Some(welcome),
        epoch: 3,
    }) = meeting.delivery.catch_up(bob, cursor).pop()
    else {
        panic!("bob's second commit");
    };
    meeting.sync();
    dave.join(&welcome).unwrap();
    meeting.members.push((dave, meeting.delivery.log.len()));
    let everyone: Vec<_> = meeting
        .members
        .iter()
        .map(|(m, _)| (m.epoch(), m.members()))
        .collect();
    let expected = (
        Some(3),
        vec![
            "alice".to_owned(),
            "bob".into(),
            "carol".into(),
            "dave".into(),
        ],
    );
    assert!(everyone.iter().all(|e| *e == expected), "{everyone:?}");
    let sealed = meeting.member("dave").seal(b"", b"hi all").unwrap();
    for name in ["alice", "bob", "carol"] {
        assert_eq!(
            meeting.member(name).open(b"", &sealed).unwrap().payload,
            b"hi all"
        );
    }
    // Nothing left to redo once the other commit did it all.
    assert!(meeting.member("alice").redo().unwrap().is_none());
}

#[test]
fn forged_replayed_and_foreign_handshakes_are_refused_and_the_meeting_goes_on() {
    let mut meeting = Meeting::start("alice");
    meeting.add("bob");
    let replay = meeting.delivery.log[0].clone();
    let bob = meeting.member("bob");
    assert!(matches!(
        bob.handle(b"not an MLS message"),
        Err(E2eeError::Malformed { .. })
    ));
    assert!(matches!(
        bob.handle(&replay),
        Err(E2eeError::StaleEpoch { .. })
    ));
    // A commit of another meeting's group.
    let mut other = member("mallory");
    other.create("m-2").unwrap();
    let stranger = member("trent");
    let foreign = other
        .propose_add(&[&stranger.key_package().unwrap()])
        .unwrap();
    assert!(matches!(
        meeting.member("bob").handle(&foreign.commit),
        Err(E2eeError::Refused { .. })
    ));
    // A key package whose signature was tampered with.
    let mut package = member("eve").key_package().unwrap();
    let last = package.len() - 1;
    package[last] ^= 0x55;
    assert!(meeting.member("alice").propose_add(&[&package]).is_err());
    // Someone already in the group.
    let twin = member("bob").key_package().unwrap();
    assert!(matches!(
        meeting.member("alice").propose_add(&[&twin]),
        Err(E2eeError::Refused { .. })
    ));
    // A Welcome that is not for this member.
    let outsider = member("oscar");
    let welcome = meeting.host_adds(&outsider.key_package().unwrap());
    let mut bystander = member("bystander");
    assert!(matches!(
        bystander.join(&welcome),
        Err(E2eeError::Refused { .. })
    ));
    assert!(matches!(
        bystander.join(b"garbage"),
        Err(E2eeError::Malformed { .. })
    ));
    // The meeting goes on.
    let sealed = meeting.member("alice").seal(b"", b"still here").unwrap();
    assert_eq!(
        meeting.member("bob").open(b"", &sealed).unwrap().payload,
        b"still here"
    );
}

#[test]
fn credentials_that_do_not_check_are_refused_and_nothing_is_applied() {
    let mut meeting = Meeting::start("alice");
    meeting.add("bob");
    let authority = authority();
    // Forged by another key, for another meeting, and naming another key (someone else's
    // credential with a key of one's own).
    // The control plane's key id, another key.
    let forger = TokenIssuer::generate("cp-test");
    let cases = [
        ("forged", &forger, "m-1", None),
        ("another meeting", authority.issuer(), "m-2", None),
        (
            "another key",
            authority.issuer(),
            "m-1",
            Some([9u8; 32].to_vec()),
        ),
    ];
    for (what, issuer, meeting_id, named_key) in cases {
        let key = SigningKey::generate().unwrap();
        let named = named_key.unwrap_or_else(|| key.public());
        let bad = credential(issuer, "mallory", meeting_id, false, &named);
        // Its holder cannot even make a member of it: its own check refuses it ...
        assert!(
            matches!(
                Member::new(key, bad.clone(), authority.check()),
                Err(E2eeError::CredentialRefused { .. })
            ),
            "{what}"
        );
    }
    // ... and a key package that carries one is refused by whoever would add it. (The holder
    // checks with a check of its own that accepts anything.)
    struct Anything;
    impl videocall_e2ee::CredentialCheck for Anything {
        fn check(&self, _: &[u8], key: &[u8]) -> Result<videocall_e2ee::Identity, E2eeError> {
            Ok(videocall_e2ee::Identity {
                user: format!("key-{key:02x?}"),
                name: "Mallory".into(),
                guest: false,
            })
        }
    }
    let key = SigningKey::generate().unwrap();
    let forged = credential(&forger, "mallory", "m-1", false, &key.public());
    let mallory = Member::new(key, forged, Arc::new(Anything)).unwrap();
    let package = mallory.key_package().unwrap();
    assert!(matches!(
        meeting.member("alice").propose_add(&[&package]),
        Err(E2eeError::CredentialRefused { .. })
    ));
    // A commit that adds mallory, made by a member who checks nothing, is applied by nobody.
    let key = SigningKey::generate().unwrap();
    let careless_credential = credential(authority.issuer(), "carl", "m-1", false, &key.public());
    let mut careless = Member::new(key, careless_credential, Arc::new(Anything)).unwrap();
    let welcome = meeting.host_adds(&careless.key_package().unwrap());
    let epoch = meeting.member("alice").epoch().unwrap();
    careless.join(&welcome).unwrap();
    let sneaked = careless.propose_add(&[&package]).unwrap();
    for name in ["alice", "bob"] {
        assert!(
            matches!(
                meeting.member(name).handle(&sneaked.commit),
                Err(E2eeError::CredentialRefused { .. })
            ),
            "{name}"
        );
        assert_eq!(meeting.member(name).epoch(), Some(epoch));
        assert_eq!(meeting.member(name).members(), ["alice", "bob", "carl"]);
    }
    let sealed = meeting.member("bob").seal(b"", b"unaffected").unwrap();
    assert_eq!(
        meeting.member("alice").open(b"", &sealed).unwrap().payload,
        b"unaffected"
    );
}

#[test]
fn guests_are_marked_and_verification_codes_agree_per_key() {
    let mut meeting = Meeting::start("alice");
    let key = SigningKey::generate().unwrap();
    let guest_credential = credential(
        authority().issuer(),
        "guest-1f2e3d",
        "m-1",
        true,
        &key.public(),
    );
    let mut guest = Member::new(key, guest_credential, authority().check()).unwrap();
    let welcome = meeting.host_adds(&guest.key_package().unwrap());
    guest.join(&welcome).unwrap();
    let alice = meeting.member("alice");
    let seen = alice.identity_at(1).unwrap();
    assert!(seen.guest && seen.user == "guest-1f2e3d");
    assert!(!alice.identity_at(0).unwrap().guest);
    // Both compute the same code for each of them; the two codes differ.
    let codes = |m: &Member| {
        (
            m.verification_code(0).unwrap(),
            m.verification_code(1).unwrap(),
        )
    };
    let (alices, guests) = (codes(meeting.member("alice")), codes(&guest));
    assert_eq!(alices, guests);
    assert_ne!(alices.0, alices.1);
    assert!(
        alices.0.len() == 11 && alices.0.as_bytes()[5] == b' ',
        "{}",
        alices.0
    );
}
