//! Hosts over real connections, on both transports: a participant may not moderate; a host's
//! mute stops a participant's audio at the relay while its client goes on sending, and it may
//! not unmute itself until asked; a lock refuses a valid grant; a ban keeps one identity out;
//! end for all closes everyone.

mod common;

use std::time::Duration;

use common::*;
use tokio_util::sync::CancellationToken;
use videocall_client::synthetic::{self, MediaPattern};
use videocall_client::{Client, Transport};
use videocall_protocol::wire::{
    envelope::Body, host_action::Action, AskToUnmute, EndForAll, ErrorCode, HostAction,
    LockMeeting, MediaKind, MuteParticipant, RemoveParticipant, UpdateState,
};
use videocall_testkit::wait_for_message;
use videocall_token::{Grants, Role};

async fn join_as(
    relay: &RelayProcess,
    transport: Transport,
    meeting: &str,
    user: &str,
    role: Role,
) -> Client {
    let grants = Grants {
        role: Some(role),
        ..Grants::default()
    };
    let token = relay.token_with(user, meeting, grants, Duration::from_secs(600));
    Client::connect(relay.options(transport, meeting, &token))
        .await
        .unwrap_or_else(|e| panic!("{user} could not join: {e}"))
}

async fn act(client: &Client, action: Action) {
    client
        .sender()
        .send(Body::HostAction(HostAction {
            action: Some(action),
        }))
        .await
        .expect("send host action");
}

/// Audio packets from `from` that `client` gets within `window`.
async fn audio_from(client: &mut Client, from: u64, window: Duration) -> usize {
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + window;
    while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
        let got = wait_for_message(client, left, |m| match m {
            Body::Media(media)
                if media.participant_id == from && media.kind == MediaKind::Audio as i32 =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
        if got.is_none() {
            break;
        }
        count += 1;
    }
    count
}

/// The participant turns its microphone on.
async fn unmute(sender: &videocall_client::Sender) {
    sender
        .send(Body::UpdateState(UpdateState {
            audio_muted: false,
            ..Default::default()
        }))
        .await
        .expect("update");
}

async fn error_code(client: &mut Client) -> Option<i32> {
    wait_for_message(client, Duration::from_secs(3), |m| match m {
        Body::Error(e) if !e.fatal => Some(e.code),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosts_mute_holds_a_microphone_back_at_the_relay_until_it_is_asked_back() {
    let relay = RelayProcess::start(&[]).await;
    for transport in TRANSPORTS {
        let meeting = format!("hosts-{transport:?}");
        let host = join_as(&relay, transport, &meeting, "host", Role::Host).await;
        let bob = relay.join(Transport::WebSocket, &meeting, "bob").await;
        let mut carol = relay.join(transport, &meeting, "carol").await;
        let bob_id = bob.participant_id();
        let bob_sender = bob.sender();
        // Bob publishes audio only, and keeps sending whatever a host does (a client that
        // does not cooperate).
        let stop = CancellationToken::new();
        let pattern = MediaPattern {
            video_fps: 0,
            ..MediaPattern::conference()
        };
        synthetic::spawn_publisher(bob, pattern, stop.clone());
        assert!(audio_from(&mut carol, bob_id, Duration::from_millis(500)).await > 10);

        // Carol may not mute bob.
        let mute = Action::Mute(MuteParticipant {
            participant_id: bob_id,
            kind: MediaKind::Audio as i32,
            disallow_unmute: true,
        });
        act(&carol, mute.clone()).await;
        assert_eq!(
            error_code(&mut carol).await,
            Some(ErrorCode::Forbidden as i32)
        );
        assert!(audio_from(&mut carol, bob_id, Duration::from_millis(500)).await > 10);

        act(&host, mute).await;
        // What was on its way before the mute.
        tokio::time::sleep(Duration::from_millis(300)).await;
        audio_from(&mut carol, bob_id, Duration::from_millis(100)).await;
        let heard = audio_from(&mut carol, bob_id, Duration::from_secs(1)).await;
        assert_eq!(heard, 0, "{transport:?}: {heard} packets after the mute");
        // Unmuting itself is refused: still nothing.
        unmute(&bob_sender).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            audio_from(&mut carol, bob_id, Duration::from_millis(500)).await,
            0
        );

        // Asked to unmute, it does, and carol hears it again.
        act(
            &host,
            Action::AskToUnmute(AskToUnmute {
                participant_id: bob_id,
                kind: MediaKind::Audio as i32,
            }),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        unmute(&bob_sender).await;
        assert!(audio_from(&mut carol, bob_id, Duration::from_secs(1)).await > 10);
        stop.cancel();
    }
    assert!(
        relay
            .metric("videocall_relay_drops_total{reason=\"held_by_host\"}")
            .await
            > 0.0
    );
    assert_eq!(
        relay
            .metric("videocall_relay_host_actions_total{action=\"mute\"}")
            .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_refuses_a_valid_grant_a_ban_keeps_one_out_and_the_end_closes_everyone() {
    let relay = RelayProcess::start(&[]).await;
    let meeting = "locked";
    let host = join_as(&relay, Transport::WebTransport, meeting, "host", Role::Host).await;
    let bob = relay.join(Transport::WebSocket, meeting, "bob").await;
    act(&host, Action::Lock(LockMeeting { locked: true })).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for transport in TRANSPORTS {
        let token = relay.token("mallory", meeting);
        let refused = Client::connect(relay.options(transport, meeting, &token)).await;
        assert_eq!(
            refusal_code(refused),
            Some(ErrorCode::MeetingLocked),
            "{transport:?}"
        );
    }
    // Bob was there when it was locked: he gets back in.
    drop(bob);
    let bob = relay.join(Transport::WebTransport, meeting, "bob").await;
    assert!(bob.joined.locked);

    act(
        &host,
        Action::Remove(RemoveParticipant {
            participant_id: bob.participant_id(),
            reason: "off topic".into(),
            ban: true,
        }),
    )
    .await;
    let mut bob = bob;
    let closed = wait_for_message(&mut bob, Duration::from_secs(3), |m| match m {
        Body::Error(e) if e.fatal => Some(e.code),
        _ => None,
    })
    .await;
    assert_eq!(closed, Some(ErrorCode::Forbidden as i32));
    act(&host, Action::Lock(LockMeeting { locked: false })).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let token = relay.token("bob", meeting);
    let refused = Client::connect(relay.options(Transport::WebSocket, meeting, &token)).await;
    assert_eq!(refusal_code(refused), Some(ErrorCode::Forbidden));
    let mut carol = relay.join(Transport::WebSocket, meeting, "carol").await;

    act(&host, Action::End(EndForAll {})).await;
    let ended = wait_for_message(&mut carol, Duration::from_secs(3), |m| match m {
        Body::Error(e) if e.fatal => Some(e.code),
        _ => None,
    })
    .await;
    assert_eq!(ended, Some(ErrorCode::MeetingEnded as i32));
}
