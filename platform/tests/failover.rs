//! A relay killed mid-meeting under a native client: `videocall up` (its relay `relay-0`) and
//! a separate `videocall-relay` process (`relay-z`) share the meeting over NATS. Bob's relay
//! is `kill -9`'d; his `Rejoining` client asks the control plane for a grant that avoids the
//! lost relay (it still looks fresh there), joins relay-0, announces again, and media flows
//! both ways; Alice sees the lost Bob leave as TIMEOUT within 10 s.

mod common;

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use videocall_client::control_plane::ControlPlaneGrants;
use videocall_client::rejoin::{RejoinEvent, Rejoining};
use videocall_client::synthetic::{self, KeyframeTrigger, MediaPattern, PublishStats};
use videocall_client::{ConnectOptions, Transport};
use videocall_protocol::wire::{envelope::Body, LeaveReason, MediaKind};

use common::{separate_relay, up, wait_for_demo_meeting};

/// A native participant that publishes synthetic media and rejoins when its relay is lost.
struct Participant {
    client: Rejoining<ControlPlaneGrants>,
    keyframes: KeyframeTrigger,
    publishing: CancellationToken,
}

fn quick(options: &mut ConnectOptions) {
    options.client_name = "failover-test".into();
    options.join_timeout = Duration::from_secs(5);
}

impl Participant {
    async fn join(api_url: &str, name: &str) -> Participant {
        let grants = ControlPlaneGrants::new(api_url, "demo", name);
        let client = Rejoining::join(
            grants,
            Transport::WebTransport,
            std::sync::Arc::new(quick),
            Duration::from_secs(30),
        )
        .await
        .expect("join through the control plane");
        let mut participant = Participant {
            client,
            keyframes: KeyframeTrigger::default(),
            publishing: CancellationToken::new(),
        };
        participant.publish().await;
        participant
    }

    /// Announces and publishes on the current session.
    async fn publish(&mut self) {
        self.publishing.cancel();
        self.publishing = CancellationToken::new();
        let sender = self.client.sender();
        sender
            .announce(vec![
                synthetic::track(synthetic::VIDEO_TRACK, MediaKind::Video),
                synthetic::track(synthetic::AUDIO_TRACK, MediaKind::Audio),
            ])
            .await
            .expect("announce");
        let pattern = MediaPattern {
            keyframe_interval: 10_000, // keyframes only when asked
            ..MediaPattern::conference()
        };
        tokio::spawn(synthetic::publish(
            sender,
            pattern,
            self.keyframes.clone(),
            std::sync::Arc::new(PublishStats::default()),
            self.publishing.clone(),
        ));
    }

    /// Reads events until `until` says stop (answering keyframe requests, republishing
    /// after a rejoin); panics after `within`.
    async fn watch(
        &mut self,
        what: &str,
        within: Duration,
        mut until: impl FnMut(&RejoinEvent) -> bool,
    ) {
        let deadline = Instant::now() + within;
        loop {
            let event = tokio::time::timeout_at(deadline, self.client.next_event())
                .await
                .unwrap_or_else(|_| panic!("{what}: not within {within:?}"));
            match &event {
                RejoinEvent::Message(Body::KeyframeRequest(_)) => self.keyframes.request(),
                RejoinEvent::Rejoined { .. } => self.publish().await,
                RejoinEvent::Ended { code, reason } => {
                    panic!("{what}: the session ended ({code}: {reason})")
                }
                RejoinEvent::Message(_) | RejoinEvent::Lost { .. } | RejoinEvent::Encryption(_) => {
                }
            }
            if until(&event) {
                return;
            }
        }
    }

    /// Waits for a keyframe of `from`'s video, then for `count` more packets of it.
    async fn media_from(&mut self, what: &str, from: u64, within: Duration) {
        let mut got = 0;
        self.watch(what, within, |event| {
            if let RejoinEvent::Message(Body::Media(media)) = event {
                if media.participant_id == from
                    && media.track_id == synthetic::VIDEO_TRACK
                    && (got > 0 || media.keyframe)
                {
                    got += 1;
                }
            }
            got >= 10
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_client_rejoins_through_the_control_plane_when_its_relay_is_killed() {
    let data = tempfile::tempdir().expect("temp dir");
    let prefix = videocall_testkit::nats::unique_prefix("native-failover");
    let (_platform, info) = up(
        data.path(),
        "127.0.0.1:0",
        &[
            "--meeting-share-per-relay",
            "1",
            "--nats-url",
            "nats://127.0.0.1:4222",
            "--bus-subject-prefix",
            &prefix,
        ],
    )
    .await;
    let mut doomed = separate_relay(data.path(), &info, "relay-z", &prefix).await;

    let mut alice = Participant::join(&info.api_url, "alice").await;
    let mut bob = Participant::join(&info.api_url, "bob").await;
    assert_eq!(
        (alice.client.relay_id(), bob.client.relay_id()),
        ("relay-0", "relay-z")
    );
    let (alice_id, lost_bob) = (alice.client.participant_id(), bob.client.participant_id());
    // Both at once: each answers the keyframe requests the other's relay sends.
    tokio::join!(
        bob.media_from("bob gets alice's video", alice_id, Duration::from_secs(10)),
        alice.media_from("alice gets bob's video", lost_bob, Duration::from_secs(10)),
    );
    wait_for_demo_meeting(&info, 2, &["relay-0", "relay-z"], Duration::from_secs(10)).await;

    doomed.0.kill().expect("kill -9 relay-z");
    let killed = Instant::now();
    let bob_side = async {
        let mut after = String::new();
        bob.watch(
            "bob rejoins",
            Duration::from_secs(20),
            |event| match event {
                RejoinEvent::Rejoined {
                    relay_id,
                    after: why,
                    ..
                } => {
                    after = format!("{relay_id} after {why}");
                    true
                }
                _ => false,
            },
        )
        .await;
        let rejoined = killed.elapsed();
        assert_eq!(bob.client.relay_id(), "relay-0", "{after}");
        assert_ne!(bob.client.participant_id(), lost_bob);
        bob.media_from(
            "bob gets alice's video again",
            alice_id,
            Duration::from_secs(10),
        )
        .await;
        (rejoined, killed.elapsed(), after)
    };
    // Alice: the new Bob's media (an id she has not seen), and the lost Bob gone as TIMEOUT.
    let alice_side = async {
        let (mut new_media, mut lost_left) = (0, None);
        alice
            .watch(
                "alice: bob's media again and the lost bob gone",
                Duration::from_secs(15),
                |event| {
                    match event {
                        RejoinEvent::Message(Body::Media(media))
                            if media.participant_id != lost_bob
                                && media.track_id == synthetic::VIDEO_TRACK =>
                        {
                            new_media += 1;
                        }
                        RejoinEvent::Message(Body::ParticipantLeft(left))
                            if left.participant_id == lost_bob =>
                        {
                            lost_left = Some((left.reason(), killed.elapsed()));
                        }
                        _ => {}
                    }
                    new_media >= 10 && lost_left.is_some()
                },
            )
            .await;
        lost_left
    };
    let ((rejoined, bob_back, after), lost_left) = tokio::join!(bob_side, alice_side);
    let (reason, lost_after) = lost_left.expect("the lost bob left");
    // Once relay-z is stale, the meeting is on relay-0 alone, with both of them.
    wait_for_demo_meeting(&info, 2, &["relay-0"], Duration::from_secs(15)).await;
    assert_eq!(reason, LeaveReason::Timeout);
    assert!(lost_after < Duration::from_secs(10), "{lost_after:?}");
    assert_eq!(alice.client.relay_id(), "relay-0", "alice never moved");
    println!(
        "native failover: rejoined {rejoined:?} after the kill ({after}), media back {bob_back:?}, \
         lost bob left after {lost_after:?}"
    );
    alice.client.leave().await;
    bob.client.leave().await;
}
