//! Two core sessions in one encrypted meeting, their messages carried by a delivery service
//! that orders handshakes as the relays do (one order, a commit or founding taken only when it
//! follows the last one): both reach the same epoch, a chat line sealed by one opens for the
//! other and carries no plaintext on the way, and nothing is sent or handed on in clear.

use videocall_client_core::{
    CipherTook, FrameCipher, Session, SessionError, SessionOptions, CHAT_TOPIC, PROBE_EVERY,
};
use videocall_e2ee::{AesGcmInput, E2eeError, GroupEvent, TestAuthority, SEALED_TOPIC};
use videocall_protocol::wire::{
    envelope::Body, DataMessage, Handshake, HandshakeKind, HandshakeRefused, Joined, Media,
    Participant, ParticipantJoined,
};

const MEETING: &str = "m-1";

fn person(id: u64, user: &str) -> Participant {
    Participant {
        id,
        user: user.into(),
        display_name: user.into(),
        ..Default::default()
    }
}

/// The meeting's order of handshakes, as the relays keep it.
#[derive(Default)]
struct Delivery {
    next_sequence: u64,
    head: u64,
}

impl Delivery {
    /// What `handshake` from `from` becomes: delivered to everyone, or refused to its sender.
    fn order(&mut self, from: u64, mut handshake: Handshake) -> Result<Handshake, Body> {
        handshake.from_participant_id = from;
        let kind = HandshakeKind::try_from(handshake.kind).expect("kind");
        if kind != HandshakeKind::KeyPackage && handshake.after != self.head {
            return Err(Body::HandshakeRefused(HandshakeRefused {
                kind: handshake.kind,
                after: handshake.after,
                head: self.head,
                reason: "another commit follows that one already".into(),
            }));
        }
        self.next_sequence += 1;
        handshake.sequence = self.next_sequence;
        if kind != HandshakeKind::KeyPackage {
            self.head = self.next_sequence;
        }
        Ok(handshake)
    }
}

/// Carries every handshake `sessions` send until nothing moves, the clock going on.
fn settle(
    delivery: &mut Delivery,
    sessions: &mut [&mut Session],
    mut out: Vec<(usize, Body)>,
    now: &mut u64,
) {
    for _ in 0..100 {
        *now += 250;
        for (i, session) in sessions.iter_mut().enumerate() {
            out.extend(session.poll(*now).into_iter().map(|b| (i, b)));
        }
        if out.is_empty() {
            continue;
        }
        for (from, body) in std::mem::take(&mut out) {
            let Body::Handshake(handshake) = body else {
                continue; // pings
            };
            let sender = sessions[from].participant_id();
            match delivery.order(sender, handshake) {
                Ok(ordered) => {
                    for (i, session) in sessions.iter_mut().enumerate() {
                        let received = session.receive(Body::Handshake(ordered.clone()), *now);
                        assert!(received.body.is_none(), "handshakes are the session's own");
                        out.extend(received.answers.into_iter().map(|b| (i, b)));
                    }
                }
                Err(refusal) => {
                    let received = sessions[from].receive(refusal, *now);
                    out.extend(received.answers.into_iter().map(|b| (from, b)));
                }
            }
        }
    }
}

fn epoch_of(session: &mut Session) -> Option<(u64, usize)> {
    let mut last = None;
    while let Some(event) = session.next_group_event() {
        if let GroupEvent::Epoch { epoch, members } = event {
            last = Some((epoch, members.len()));
        }
    }
    last
}

#[test]
fn two_sessions_share_a_group_and_chat_opens_only_for_members() {
    let authority = TestAuthority::new(MEETING);
    let member = |user: &str| authority.member(user).expect("member");
    let mut delivery = Delivery::default();
    let mut now = 0;
    let mut ann = Session::new(
        Joined {
            participant_id: 1,
            meeting_id: MEETING.into(),
            ..Default::default()
        },
        SessionOptions::default(),
        now,
    );
    let first = ann.start_encryption(member("ann"), now).expect("starts");
    assert!(matches!(
        ann.start_encryption(member("ann"), now),
        Err(SessionError::AlreadyEncrypted)
    ));
    // Not in the group yet: nothing leaves, in clear or otherwise.
    assert!(matches!(
        ann.chat("too early", now),
        Err(E2eeError::NoGroup)
    ));
    let mut frame = Media {
        payload: b"picture".to_vec().into(),
        ..Default::default()
    };
    assert!(matches!(
        ann.seal_media(&mut frame),
        Err(E2eeError::NoGroup)
    ));
    let out = first.into_iter().map(|b| (0, b)).collect();
    settle(&mut delivery, &mut [&mut ann], out, &mut now);
    assert_eq!(epoch_of(&mut ann).map(|e| e.1), Some(1), "ann founds alone");

    let mut bob = Session::new(
        Joined {
            participant_id: 2,
            meeting_id: MEETING.into(),
            participants: vec![person(1, "ann")],
            handshake_head: delivery.head,
            ..Default::default()
        },
        SessionOptions::default(),
        now,
    );
    let told = ann.receive(
        Body::ParticipantJoined(ParticipantJoined {
            participant: Some(person(2, "bob")),
        }),
        now,
    );
    assert!(told.body.is_some(), "the join is handed on");
    let mut out: Vec<(usize, Body)> = told.answers.into_iter().map(|b| (0, b)).collect();
    out.extend(
        bob.start_encryption(member("bob"), now)
            .expect("starts")
            .into_iter()
            .map(|b| (1, b)),
    );
    settle(&mut delivery, &mut [&mut ann, &mut bob], out, &mut now);
    let ann_epoch = epoch_of(&mut ann).expect("ann's group changed");
    assert_eq!(ann_epoch.1, 2);
    assert_eq!(epoch_of(&mut bob), Some(ann_epoch), "one group, one epoch");

    // A chat line: sealed on the way, opened for the other member.
    let line = ann
        .chat("the password is pomegranate", now)
        .expect("sealed");
    let Body::Data(sealed) = &line else {
        panic!("a data message: {line:?}");
    };
    assert_eq!(sealed.topic, SEALED_TOPIC);
    let on_the_wire = format!("{sealed:?}");
    assert!(!on_the_wire.contains("pomegranate"), "{on_the_wire}");
    let opened = bob.receive(line, now).body;
    let Some(Body::Data(opened)) = opened else {
        panic!("opened: {opened:?}");
    };
    assert_eq!(opened.topic, CHAT_TOPIC);
    assert_eq!(opened.text, "the password is pomegranate");

    // A chat line that comes in clear is not handed on, and is counted.
    let clear = Body::Data(DataMessage {
        topic: CHAT_TOPIC.into(),
        text: "in clear".into(),
        from_participant_id: 1,
        ..Default::default()
    });
    assert!(bob.receive(clear, now).body.is_none());
    let counters = bob.encryption_counters().expect("encrypts");
    assert_eq!((counters.opened, counters.clear_refused), (1, 1));

    // Media: sealed by one, opened by the other.
    let mut frame = Media {
        participant_id: 2,
        payload: b"a picture".to_vec().into(),
        ..Default::default()
    };
    bob.seal_media(&mut frame).expect("sealed");
    assert_ne!(frame.payload.as_ref(), b"a picture");
    let opened = ann.receive(Body::Media(frame), now).body;
    let Some(Body::Media(opened)) = opened else {
        panic!("opened: {opened:?}");
    };
    assert_eq!(opened.payload.as_ref(), b"a picture");
}

/// Ann and bob in one group (bob's session with `bob_options`), the clock where it ended.
fn two_in_a_group(bob_options: SessionOptions) -> (Session, Session, u64) {
    let authority = TestAuthority::new(MEETING);
    let member = |user: &str| authority.member(user).expect("member");
    let mut delivery = Delivery::default();
    let mut now = 0;
    let joined = |id, participants| Joined {
        participant_id: id,
        meeting_id: MEETING.into(),
        participants,
        ..Default::default()
    };
    let mut ann = Session::new(joined(1, vec![]), SessionOptions::default(), now);
    let out = ann.start_encryption(member("ann"), now).expect("starts");
    let out = out.into_iter().map(|b| (0, b)).collect();
    settle(&mut delivery, &mut [&mut ann], out, &mut now);
    let mut bob = Session::new(
        Joined {
            handshake_head: delivery.head,
            ..joined(2, vec![person(1, "ann")])
        },
        bob_options,
        now,
    );
    let told = ann.receive(
        Body::ParticipantJoined(ParticipantJoined {
            participant: Some(person(2, "bob")),
        }),
        now,
    );
    let mut out: Vec<(usize, Body)> = told.answers.into_iter().map(|b| (0, b)).collect();
    let started = bob.start_encryption(member("bob"), now).expect("starts");
    out.extend(started.into_iter().map(|b| (1, b)));
    settle(&mut delivery, &mut [&mut ann, &mut bob], out, &mut now);
    let epoch = epoch_of(&mut ann).expect("ann's group changed");
    assert_eq!(epoch_of(&mut bob), Some(epoch), "one group, one epoch");
    (ann, bob, now)
}

/// AES-128-GCM outside the session, as the browser's WebCrypto does it.
fn aes_gcm(input: &AesGcmInput, data: &[u8], seal: bool) -> Option<Vec<u8>> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let cipher = aes_gcm::Aes128Gcm::new_from_slice(input.key()).ok()?;
    let payload = Payload {
        msg: data,
        aad: input.aad(),
    };
    let nonce = (*input.nonce()).into();
    if seal {
        cipher.encrypt(&nonce, payload).ok()
    } else {
        cipher.decrypt(&nonce, payload).ok()
    }
}

#[test]
fn frames_ciphered_outside_the_session_meet_frames_ciphered_in_it() {
    let outside = SessionOptions {
        frame_cipher: FrameCipher::Outside { from_bytes: 32 },
        ..SessionOptions::default()
    };
    let (mut ann, mut bob, now) = two_in_a_group(outside);
    let picture = |payload: &[u8]| Media {
        participant_id: 1,
        track_id: 1,
        sequence: 7,
        payload: payload.to_vec().into(),
        ..Default::default()
    };

    // Ann seals in her session; bob's frame comes out for his cipher, not opened.
    let mut frame = picture(b"ann's picture, thirty-two bytes or more");
    ann.seal_media(&mut frame).expect("sealed");
    let received = bob.receive(Body::Media(frame.clone()), now);
    assert!(received.body.is_none(), "handed on only once opened");
    let to_open = received.to_open.expect("a frame to open");
    let job = &to_open.job;
    let plaintext = aes_gcm(job.input(), job.ciphertext(), false);
    let opened = bob.finish_open(to_open, plaintext).expect("opens");
    assert_eq!(
        opened.payload.as_ref(),
        b"ann's picture, thirty-two bytes or more"
    );
    assert!(!opened.sealed);

    // The same frame again: refused before any cipher sees it.
    assert!(bob.receive(Body::Media(frame), now).to_open.is_none());
    // A frame whose routing the relay changed: the cipher refuses it, it is dropped.
    let mut frame = picture(b"another picture of thirty-two bytes");
    ann.seal_media(&mut frame).expect("sealed");
    frame.sequence += 1;
    let to_open = bob
        .receive(Body::Media(frame), now)
        .to_open
        .expect("to open");
    let job = &to_open.job;
    let plaintext = aes_gcm(job.input(), job.ciphertext(), false);
    assert!(plaintext.is_none());
    assert!(bob.finish_open(to_open, plaintext).is_none());
    // In clear: dropped at once.
    let received = bob.receive(
        Body::Media(picture(b"in clear, thirty-two bytes and more")),
        now,
    );
    assert!(received.body.is_none() && received.to_open.is_none());

    // Bob seals through his cipher; ann opens in her session.
    let mut frame = picture(b"bob's picture, thirty-two bytes or more");
    frame.participant_id = 2;
    let job = bob
        .seal_or_prepare(&mut frame, now)
        .expect("in the group")
        .expect("for the cipher outside");
    let sealed = aes_gcm(job.input(), &frame.payload, true).expect("seals");
    videocall_e2ee::finish_seal_media(&mut frame, &job, &sealed);
    assert!(frame.sealed);
    let opened = ann.receive(Body::Media(frame), now).body;
    let Some(Body::Media(opened)) = opened else {
        panic!("opened: {opened:?}");
    };
    assert_eq!(
        opened.payload.as_ref(),
        b"bob's picture, thirty-two bytes or more"
    );

    // A frame smaller than the cipher outside takes (as it travels: sealed, 20 bytes more):
    // sealed and opened in the session.
    let mut small = picture(b"tiny");
    small.participant_id = 2;
    assert!(bob
        .seal_or_prepare(&mut small, now)
        .expect("sealed")
        .is_none());
    assert!(small.sealed);
    let Some(Body::Media(opened)) = ann.receive(Body::Media(small), now).body else {
        panic!("ann opens it");
    };
    let mut small = picture(b"tiny");
    ann.seal_media(&mut small).expect("sealed");
    let received = bob.receive(Body::Media(small), now);
    assert!(received.to_open.is_none(), "opened in the session");
    assert!(matches!(received.body, Some(Body::Media(m)) if m.payload.as_ref() == b"tiny"));
    assert_eq!(opened.payload.as_ref(), b"tiny");

    // Chat is still sealed and opened in the session.
    let line = bob.chat("still sealed", now).expect("sealed");
    let Some(Body::Data(opened)) = ann.receive(line, now).body else {
        panic!("chat opens");
    };
    assert_eq!(opened.text, "still sealed");

    let counters = bob.encryption_counters().expect("encrypts");
    assert_eq!((counters.opened, counters.unopened), (2, 3));
    assert_eq!(counters.sealed, 3);
}

#[test]
fn without_encryption_a_cipher_outside_has_nothing_to_do() {
    let mut session = Session::new(
        Joined {
            participant_id: 1,
            meeting_id: MEETING.into(),
            ..Default::default()
        },
        SessionOptions {
            frame_cipher: FrameCipher::Outside { from_bytes: 1 },
            ..SessionOptions::default()
        },
        0,
    );
    let mut frame = Media {
        payload: b"clear".to_vec().into(),
        ..Default::default()
    };
    assert!(matches!(session.seal_or_prepare(&mut frame, 0), Ok(None)));
    assert!(!frame.sealed);
    let received = session.receive(Body::Media(frame), 0);
    assert!(received.to_open.is_none());
    assert!(matches!(received.body, Some(Body::Media(_))));
}

#[test]
fn the_fastest_cipher_learns_where_frames_wait_less() {
    let fastest = SessionOptions {
        frame_cipher: FrameCipher::Fastest { from_bytes: 1024 },
        ..SessionOptions::default()
    };
    let (mut ann, mut bob, mut now) = two_in_a_group(fastest);
    let frame = |bytes: usize| Media {
        participant_id: 2,
        track_id: 1,
        payload: vec![7; bytes].into(),
        ..Default::default()
    };
    // Where each of `frames` frames of `bytes` went, bob's cipher outside answering in
    // `outside_ms` and his session taking 14 ns a byte.
    let mut send = |bob: &mut Session, frames: usize, bytes: usize, outside_ms: f64| {
        let mut went_outside = 0;
        for _ in 0..frames {
            now += 33;
            let mut media = frame(bytes);
            match bob.seal_or_prepare(&mut media, now).expect("in the group") {
                Some(job) => {
                    went_outside += 1;
                    let sealed = aes_gcm(job.input(), &media.payload, true).expect("seals");
                    videocall_e2ee::finish_seal_media(&mut media, &job, &sealed);
                    bob.cipher_took(CipherTook::Outside { ms: outside_ms });
                }
                None => bob.cipher_took(CipherTook::Inside {
                    bytes,
                    ms: bytes as f64 * 14e-6,
                }),
            }
            // Every frame, whichever way it was sealed, opens for ann.
            let opened = ann.receive(Body::Media(media), now).body;
            assert!(
                matches!(&opened, Some(Body::Media(m)) if m.payload.len() == bytes),
                "{opened:?}"
            );
        }
        went_outside
    };
    // A slow cipher outside (Firefox's answers wait for its busy page): only probes go there.
    let outside = send(&mut bob, 300, 60_000, 3.0);
    assert!(outside <= 300 / PROBE_EVERY as usize + 3, "{outside}");
    assert!(bob.cipher_choice().expect("learned").line() > 60_000);
    // A quick one (Chromium's): keyframes go outside, 4 kB frames mostly stay.
    send(&mut bob, 900, 4_000, 0.25);
    assert!(send(&mut bob, 30, 60_000, 0.25) >= 29);
    assert!(send(&mut bob, 300, 4_000, 0.25) <= 11);
    // Audio never leaves the session.
    assert_eq!(send(&mut bob, 100, 160, 0.0), 0);
}
