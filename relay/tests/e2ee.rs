//! The relays as the delivery service of end-to-end encryption: participants on two relay
//! processes sharing a meeting over the shared `nats-server` (its JetStream log orders the
//! commits) and on one relay alone run their `GroupSession`s through the relays, end in one
//! MLS group, read each other's sealed media, and a participant who left cannot read what is
//! sent after; what the relay forwards carries no plaintext.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use videocall_client::synthetic::{self, KeyframeTrigger, MediaPattern, PublishStats};
use videocall_client::{Client, Event, Transport};
use videocall_e2ee::{
    open_media, seal_media, ClientEncryption, GroupEvent, GroupSession, Member, TestAuthority,
};
use videocall_protocol::wire::{self, envelope::Body, MediaKind};
use videocall_testkit::nats::{unique_prefix, SHARED_NATS};

const WAIT: Duration = Duration::from_secs(20);
const MEETING: &str = "secret";
/// A payload pattern to look for in what the relay forwards.
const PLAINTEXT: &[u8] = b"PLAINTEXT-PATTERN-videocall-e2ee-";

/// `user` with a new key and the control plane's credential for it.
fn member(user: &str) -> Member {
    static AUTHORITY: OnceLock<TestAuthority> = OnceLock::new();
    AUTHORITY
        .get_or_init(|| TestAuthority::new(MEETING))
        .member(user)
        .expect("member")
}

/// A participant: its session on a relay and its encryption.
struct Party {
    user: String,
    client: Client,
    encryption: ClientEncryption,
    started: Instant,
    /// Sealed frames received.
    received: Vec<wire::Media>,
    online: bool,
}

impl Party {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn join(relay: &RelayProcess, user: &str, transport: Transport) -> Party {
        let member = member(user);
        let client = relay.join_encrypted(transport, MEETING, user).await;
        let (encryption, out) = ClientEncryption::start(member, &client.joined, 0);
        let party = Party {
            user: user.to_owned(),
            client,
            encryption,
            started: Instant::now(),
            received: Vec::new(),
            online: true,
        };
        party.send(out).await;
        party
    }

    async fn send(&self, bodies: Vec<Body>) {
        for body in bodies {
            self.client
                .sender()
                .send(body)
                .await
                .expect("send handshake");
        }
    }

    /// Handles whatever the relay sent so far, and what is due.
    async fn pump(&mut self) {
        if !self.online {
            return;
        }
        let mut out = Vec::new();
        while let Some(event) = self.client.try_next_event() {
            match event {
                Event::Message(Body::Media(media)) => self.received.push(media),
                Event::Message(body) => {
                    out.extend(self.encryption.on_message(&body, self.now_ms()))
                }
                Event::Closed { .. } | Event::Encryption(_) => {}
            }
        }
        out.extend(self.encryption.poll(self.now_ms()));
        self.send(out).await;
    }

    fn session(&mut self) -> &mut GroupSession {
        self.encryption.session()
    }

    fn epoch(&mut self) -> Option<u64> {
        self.session().epoch()
    }

    fn members(&mut self) -> Vec<String> {
        let mut members = self.session().member().members();
        members.sort();
        members
    }
}

/// Pumps everyone online until all are in one group of exactly the online users.
async fn converge(parties: &mut [Party]) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        for party in parties.iter_mut() {
            party.pump().await;
        }
        let mut online: Vec<&mut Party> = parties.iter_mut().filter(|p| p.online).collect();
        let mut users: Vec<String> = online.iter().map(|p| p.user.clone()).collect();
        users.sort();
        let epoch = online[0].epoch();
        if epoch.is_some()
            && online
                .iter_mut()
                .all(|p| p.epoch() == epoch && p.members() == users)
        {
            return epoch.unwrap_or_default();
        }
        let states: Vec<_> = online
            .iter_mut()
            .map(|p| (p.user.clone(), p.session().phase(), p.epoch(), p.members()))
            .collect();
        assert!(Instant::now() < deadline, "no common group: {states:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Announces a video track and sends one sealed frame; returns the plaintext.
async fn publish_sealed(party: &mut Party, sequence: u64) -> Vec<u8> {
    let sender = party.client.sender();
    sender
        .announce(vec![wire::Track {
            id: 1,
            kind: MediaKind::Video as i32,
            codec: wire::Codec::H264 as i32,
            layers: Vec::new(),
        }])
        .await
        .expect("announce");
    let mut plaintext = PLAINTEXT.to_vec();
    plaintext.extend_from_slice(format!("{}-{sequence}", party.user).as_bytes());
    let mut media = wire::Media {
        track_id: 1,
        kind: MediaKind::Video as i32,
        codec: wire::Codec::H264 as i32,
        sequence,
        keyframe: true,
        payload: plaintext.clone().into(),
        ..Default::default()
    };
    seal_media(party.session().member_mut(), &mut media).expect("seal");
    sender.send_media(media).await.expect("media");
    plaintext
}

/// Pumps until `party` received a frame from `from`; returns it.
async fn frame_from(parties: &mut [Party], party: usize, from: u64) -> wire::Media {
    let deadline = Instant::now() + WAIT;
    loop {
        for p in parties.iter_mut() {
            p.pump().await;
        }
        if let Some(i) = parties[party]
            .received
            .iter()
            .position(|m| m.participant_id == from)
        {
            return parties[party].received.remove(i);
        }
        assert!(Instant::now() < deadline, "no frame from {from}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn participants_on_two_relays_share_one_group_and_a_leaver_reads_nothing_after() {
    let prefix = unique_prefix("e2ee");
    let args = |id: &'static str| {
        vec![
            "--relay-id".to_owned(),
            id.to_owned(),
            "--nats-url".to_owned(),
            SHARED_NATS.to_owned(),
            "--bus-subject-prefix".to_owned(),
            prefix.clone(),
        ]
    };
    let one_args = args("e2ee-1");
    let one = RelayProcess::start(&one_args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let two_args = args("e2ee-2");
    let two = RelayProcess::start_beside(
        &one,
        &two_args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let mut parties = vec![Party::join(&one, "alice", Transport::WebSocket).await];
    converge(&mut parties).await;
    parties.push(Party::join(&two, "bob", Transport::WebTransport).await);
    converge(&mut parties).await;
    parties.push(Party::join(&one, "carol", Transport::WebSocket).await);
    let epoch = converge(&mut parties).await;
    assert!(epoch >= 2, "two joins, two commits at least: {epoch}");

    // Alice's sealed frame reaches Bob (other relay) and Carol (same relay); both open it,
    // and neither the relay's copy nor what crossed the bus holds the plaintext.
    let alice = parties[0].client.participant_id();
    let plaintext = publish_sealed(&mut parties[0], 1).await;
    for reader in [1, 2] {
        let mut media = frame_from(&mut parties, reader, alice).await;
        assert!(
            !contains(&media.payload, PLAINTEXT),
            "the relay forwarded plaintext"
        );
        open_media(parties[reader].session().member_mut(), &mut media).expect("open");
        assert_eq!(media.payload, plaintext);
    }

    // Carol leaves: a new epoch without her; she keeps her old keys and reads nothing new.
    parties[2].client.sender().leave().await;
    parties[2].online = false;
    let after = converge(&mut parties).await;
    assert!(after > epoch, "the leave rekeyed: {epoch} -> {after}");
    publish_sealed(&mut parties[0], 2).await;
    let sealed = frame_from(&mut parties, 1, alice).await;
    assert!(open_media(parties[1].session().member_mut(), &mut sealed.clone()).is_ok());
    assert!(
        open_media(parties[2].session().member_mut(), &mut sealed.clone()).is_err(),
        "a participant who left opens nothing sent after"
    );
    for relay in [&one, &two] {
        assert!(
            relay
                .metric("videocall_relay_handshakes_total{kind=\"commit\",outcome=\"delivered\"}")
                .await
                >= 3.0
        );
    }
    assert!(
        one.metric("videocall_relay_handshakes_total{kind=\"commit\",outcome=\"taken\"}")
            .await
            + two
                .metric("videocall_relay_handshakes_total{kind=\"commit\",outcome=\"taken\"}")
                .await
            >= 3.0
    );
}

#[tokio::test]
async fn a_relay_on_its_own_orders_the_group_and_a_rejoiner_is_welcomed_again() {
    let relay = RelayProcess::start(&[]).await;
    let mut parties = vec![
        Party::join(&relay, "alice", Transport::WebSocket).await,
        Party::join(&relay, "bob", Transport::WebTransport).await,
    ];
    let first = converge(&mut parties).await;
    // Bob reloads: a new session replaces the old one (REPLACED), whose leaf is still in the
    // group until the committer replaces it.
    let replacement = Party::join(&relay, "bob", Transport::WebSocket).await;
    parties[1].online = false;
    parties.push(replacement);
    let second = converge(&mut parties).await;
    assert!(second > first);
    let bob = parties[2].client.participant_id();
    let plaintext = publish_sealed(&mut parties[2], 1).await;
    let mut sealed = frame_from(&mut parties, 0, bob).await;
    open_media(parties[0].session().member_mut(), &mut sealed).expect("open");
    assert_eq!(sealed.payload, plaintext);
}

/// Reads `client`'s events (running its encryption) until `pick` finds something.
async fn next_such<T>(
    client: &mut Client,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, client.next_event()).await {
            Ok(Some(event)) => {
                if let Some(found) = pick(event) {
                    return found;
                }
            }
            Ok(None) => panic!("{what}: the session ended"),
            Err(_) => panic!("{what}: not within {WAIT:?}"),
        }
    }
}

#[tokio::test]
async fn encrypted_clients_send_sealed_media_and_chat_and_the_relay_drops_what_comes_in_clear() {
    let relay = RelayProcess::start(&[]).await;
    let mut alice = relay
        .join_encrypted(Transport::WebTransport, MEETING, "alice")
        .await;
    alice
        .start_encryption(member("alice"))
        .await
        .expect("alice encrypts");
    let mut bob = relay
        .join_encrypted(Transport::WebSocket, MEETING, "bob")
        .await;
    bob.start_encryption(member("bob"))
        .await
        .expect("bob encrypts");
    let alice_id = alice.participant_id();
    // Alice publishes as soon as she is in the group (held back before: nothing in clear);
    // her events (running her encryption) are read beside, her chat handed over.
    let stop = tokio_util::sync::CancellationToken::new();
    let stats = Arc::new(PublishStats::default());
    let keyframes = KeyframeTrigger::default();
    tokio::spawn(synthetic::publish(
        alice.sender(),
        MediaPattern::conference(),
        keyframes.clone(),
        stats.clone(),
        stop.clone(),
    ));
    let (chat_tx, mut chat) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = alice.next_event().await {
            match event {
                Event::Message(Body::KeyframeRequest(_))
                | Event::Encryption(GroupEvent::Epoch { .. }) => keyframes.request(),
                Event::Message(Body::Data(d)) => {
                    let _ = chat_tx.send(d);
                }
                _ => {}
            }
        }
    });
    // Bob gets her frames opened: the synthetic payload starts with its sequence number.
    let (video, audio) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    next_such(&mut bob, "alice's media, opened", |event| match event {
        Event::Message(Body::Media(m)) if m.participant_id == alice_id => {
            assert!(!m.sealed, "handed on opened");
            assert_eq!(m.payload[..8], m.sequence.to_be_bytes(), "the plaintext");
            let kind = if m.kind == MediaKind::Audio as i32 {
                &audio
            } else {
                &video
            };
            kind.set(kind.get() + 1);
            (video.get() >= 10 && audio.get() >= 10).then_some(())
        }
        _ => None,
    })
    .await;
    let counters = bob.encryption_counters().expect("on");
    assert!(counters.opened >= 20, "{counters:?}");
    assert_eq!(counters.clear_refused, 0, "{counters:?}");

    // Bob's chat reaches nobody in clear; Carol, an encrypted participant whose client does
    // not encrypt, is refused by the relay: her media and chat reach nobody.
    let mut carol = relay
        .join_encrypted(Transport::WebSocket, MEETING, "carol")
        .await;
    let carol_id = carol.participant_id();
    let sender = carol.sender();
    sender
        .announce(vec![synthetic::track(5, MediaKind::Video)])
        .await
        .expect("announce");
    for sequence in 0..5 {
        sender
            .send_media(synthetic::packet(5, MediaKind::Video, sequence, true, 800))
            .await
            .expect("clear media goes out");
    }
    sender
        .send(Body::Data(wire::DataMessage {
            text: "in clear".into(),
            ..Default::default()
        }))
        .await
        .expect("clear chat goes out");
    let told = next_such(&mut carol, "the relay's refusal", |event| match event {
        Event::Message(Body::Error(e)) => Some(e),
        _ => None,
    })
    .await;
    assert_eq!(told.code, wire::ErrorCode::NotEncrypted as i32, "{told:?}");
    assert!(!told.fatal);
    bob.sender()
        .send(Body::Data(wire::DataMessage {
            text: "a secret".into(),
            ..Default::default()
        }))
        .await
        .expect("sealed chat");
    let heard = tokio::time::timeout(WAIT, chat.recv())
        .await
        .expect("alice hears bob")
        .expect("alice's reader runs");
    assert_eq!(heard.text, "a secret", "opened: {heard:?}");
    assert_eq!(heard.topic, "");
    next_such(
        &mut bob,
        "alice's later media, and nothing of carol's",
        |event| match event {
            Event::Message(Body::Media(m)) if m.participant_id == carol_id => {
                panic!("carol's clear media reached bob")
            }
            Event::Message(Body::Data(d)) if d.from_participant_id == carol_id => {
                panic!("carol's clear chat reached bob: {d:?}")
            }
            Event::Message(Body::Media(m)) if m.participant_id == alice_id && m.sequence > 60 => {
                Some(())
            }
            _ => None,
        },
    )
    .await;
    assert!(
        relay
            .metric("videocall_relay_drops_total{reason=\"not_encrypted\"}")
            .await
            >= 6.0
    );
    assert!(stats.video_sent.load(std::sync::atomic::Ordering::Relaxed) > 0);
    stop.cancel();
}
