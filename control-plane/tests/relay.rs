//! A real relay with a real control plane: registration, heartbeats, grants verified by
//! the relay (valid, expired, other meeting, unknown key, rotated key), the participant
//! limit and admin grant at the relay, and ending a meeting through the relays; hosts: a
//! waiting guest admitted into the meeting, host actions through the API carried out by the
//! relay, and host actions in the meeting kept by the control plane (record, lock, ban, end).

mod common;

use std::time::Duration;

use clap::Parser;
use common::*;
use tonic::Code;
use videocall_client::{Client, ConnectOptions, Event, RelayAddress, Transport};
use videocall_control_api::v1::*;
use videocall_protocol::wire::{self, envelope::Body, ErrorCode};
use videocall_relay::{RelayConfig, RelayHandle};
use videocall_token::{Claims, Grants, TokenIssuer};

on_both_databases! {
    relay_admits_only_what_the_control_plane_grants => scenario,
    relay_serves_before_the_control_plane_and_registers_when_it_comes => late_control_plane,
    hosts_act_through_the_api_and_the_control_plane_keeps_what_hosts_did_in_the_meeting => hosts,
}

#[derive(Parser)]
struct RelayArgs {
    #[command(flatten)]
    config: RelayConfig,
}

async fn start_relay(control_plane_url: &str) -> RelayHandle {
    let key = format!("{RELAY_KEY_ID}:{RELAY_SECRET}");
    let args = RelayArgs::parse_from(
        ["relay", "--relay-id", "relay-it"]
            .into_iter()
            .chain(videocall_testkit::LOOPBACK_RELAY_ADDRS)
            .chain(["--control-plane-url", control_plane_url])
            .chain(["--control-plane-api-key", &key]),
    );
    videocall_relay::start(args.config)
        .await
        .expect("relay starts")
}

fn address(grant: &JoinGrant) -> RelayAddress {
    let relay = grant.relay.clone().expect("relay endpoints");
    RelayAddress {
        webtransport_url: relay.webtransport_url,
        websocket_url: relay.websocket_url,
        certificate_sha256: relay.certificate_sha256.first().cloned(),
    }
}

async fn connect(
    grant: &JoinGrant,
    transport: Transport,
) -> Result<Client, videocall_client::ClientError> {
    Client::connect(ConnectOptions::new(
        transport,
        address(grant),
        &grant.meeting_id,
        &grant.token,
    ))
    .await
}

fn refused(result: Result<Client, videocall_client::ClientError>) -> Option<ErrorCode> {
    match result {
        Err(videocall_client::ClientError::Refused { code, .. }) => Some(code),
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => None,
    }
}

/// Waits until the session ends with `code` (as a fatal error or the close code).
async fn ends_with(client: &mut Client, code: ErrorCode) -> bool {
    let want = code as u32;
    videocall_testkit::wait_for(client, Duration::from_secs(5), |event| match event {
        Event::Message(Body::Error(e)) if e.code == code as i32 && e.fatal => Some(()),
        Event::Closed { code, .. } if *code == want || *code == 4000 + want => Some(()),
        _ => None,
    })
    .await
    .is_some()
}

/// Waits until `relay_id` is registered and fresh.
async fn registered(api: &Api, admin: &str, relay_id: &str, within: Duration) {
    let poll =
        async {
            loop {
                let relays = api
                    .relays()
                    .list_relays(req(ListRelaysRequest {}, Some(admin)))
                    .await
                    .unwrap()
                    .into_inner();
                if relays.relays.iter().any(|r| {
                    r.fresh && r.endpoints.as_ref().is_some_and(|e| e.relay_id == relay_id)
                }) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
    tokio::time::timeout(within, poll)
        .await
        .expect("relay registered");
}

async fn late_control_plane(db: &Database) {
    // A port nothing listens on yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let relay = start_relay(&format!("http://{addr}")).await;
    // Without the control plane the relay serves, refusing tokens it cannot verify.
    let rogue = TokenIssuer::generate("rogue");
    let token = rogue
        .issue(&Claims::new(
            "x",
            "X",
            "room",
            Grants::default(),
            Duration::from_secs(60),
        ))
        .unwrap();
    let address = RelayAddress {
        webtransport_url: relay.info.webtransport_url.clone(),
        websocket_url: relay.info.websocket_url.clone(),
        certificate_sha256: Some(relay.info.certificate_sha256.clone()),
    };
    let early = Client::connect(ConnectOptions::new(
        Transport::WebSocket,
        address,
        "room",
        &token,
    ))
    .await;
    assert_eq!(refused(early), Some(ErrorCode::TokenUnknownKey));

    let cp = ControlPlane::start_at(db, &addr.to_string(), &[]).await;
    let api = cp.api().await;
    let admin = api.admin().await;
    registered(&api, &admin, "relay-it", Duration::from_secs(15)).await;
    api.create_meeting(
        &admin,
        CreateMeetingRequest {
            id: "room".into(),
            guests_allowed: true,
            ..Default::default()
        },
    )
    .await;
    let grant = grant_for(&api, None, "room", "Late").await;
    connect(&grant, Transport::WebTransport)
        .await
        .expect("joins once the relay has the keys");
    relay.shutdown();
    relay.stopped().await;
    cp.stop().await;
}

async fn grant_for(api: &Api, auth: Option<&str>, meeting: &str, name: &str) -> JoinGrant {
    api.join(auth, meeting, name)
        .await
        .unwrap_or_else(|e| panic!("grant for {name}: {e}"))
}

async fn scenario(db: &Database) {
    let cp = ControlPlane::start(db, &["--heartbeat-interval-ms", "200"]).await;
    let api = cp.api().await;
    let relay = start_relay(&cp.url).await;
    let admin = api.admin().await;
    let alice = api.user(&admin, "alice").await;
    let bob = api.user(&admin, "bob").await;

    // The relay registers and heartbeats.
    registered(&api, &admin, "relay-it", Duration::from_secs(10)).await;

    api.create_meeting(
        &alice,
        CreateMeetingRequest {
            id: "room".into(),
            max_participants: 2,
            guests_allowed: true,
            ..Default::default()
        },
    )
    .await;
    api.create_meeting(
        &alice,
        CreateMeetingRequest {
            id: "other".into(),
            ..Default::default()
        },
    )
    .await;

    // Valid grants over both transports.
    let alice_grant = grant_for(&api, Some(&alice), "room", "").await;
    assert_eq!(alice_grant.relay.as_ref().unwrap().relay_id, "relay-it");
    let mut alice_client = connect(&alice_grant, Transport::WebTransport)
        .await
        .expect("alice joins");
    let bob_grant = grant_for(&api, Some(&bob), "room", "").await;
    let mut bob_client = connect(&bob_grant, Transport::WebSocket)
        .await
        .expect("bob joins");

    // The control plane hears who is connected.
    let live = async {
        loop {
            let live = api
                .meetings()
                .list_participants(req(
                    ListParticipantsRequest {
                        meeting_id: "room".into(),
                    },
                    Some(&alice),
                ))
                .await
                .unwrap()
                .into_inner();
            if live.participants.len() == 2 {
                break live;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let live = tokio::time::timeout(Duration::from_secs(5), live)
        .await
        .expect("participants reported");
    let mut who: Vec<_> = live
        .participants
        .iter()
        .map(|p| p.identity.as_str())
        .collect();
    who.sort();
    assert_eq!(who, ["alice", "bob"]);

    // The limit holds at Join...
    assert_status(
        api.join(None, "room", "Third").await,
        Code::ResourceExhausted,
        "full",
    );
    // ...and at the relay: alice's second grant reuses her seat, and her second session
    // replaces the first instead of taking a third place.
    let alice_again = grant_for(&api, Some(&alice), "room", "").await;
    let replacing = connect(&alice_again, Transport::WebSocket)
        .await
        .expect("alice's second session");
    assert!(
        ends_with(&mut alice_client, ErrorCode::Replaced).await,
        "alice's first session was replaced"
    );
    let mut alice_client = replacing;

    // A grant for another meeting, a token from an unknown key, an expired grant.
    let other = grant_for(&api, Some(&bob), "other", "").await;
    let mut misused = other.clone();
    misused.meeting_id = "room".into();
    assert_eq!(
        refused(connect(&misused, Transport::WebSocket).await),
        Some(ErrorCode::TokenWrongMeeting)
    );
    let rogue = TokenIssuer::generate("rogue");
    let mut forged = alice_grant.clone();
    forged.token = rogue
        .issue(&Claims::new(
            "mallory",
            "Mallory",
            "room",
            Grants::default(),
            Duration::from_secs(60),
        ))
        .unwrap();
    assert_eq!(
        refused(connect(&forged, Transport::WebSocket).await),
        Some(ErrorCode::TokenUnknownKey)
    );
    {
        // A second control plane on the same database signs with the same key.
        let short = ControlPlane::start(db, &["--token-ttl-secs", "1"]).await;
        let short_api = short.api().await;
        let alice_short = short_api.login("alice", PASSWORD).await;
        let expiring = grant_for(&short_api, Some(&alice_short), "other", "").await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(
            refused(connect(&expiring, Transport::WebSocket).await),
            Some(ErrorCode::TokenExpired)
        );
        short.stop().await;
    }

    // Key rotation: a grant signed before still admits; one signed after admits once the
    // relay has fetched the new key.
    let before = grant_for(&api, Some(&bob), "other", "").await;
    let rotated = api
        .relays()
        .rotate_signing_key(req(RotateSigningKeyRequest {}, Some(&admin)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.keys.len(), 2, "old and new key both verify");
    let after = grant_for(&api, Some(&alice), "other", "").await;
    assert_ne!(before.kid, after.kid);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let old_key_client = connect(&before, Transport::WebSocket)
        .await
        .expect("token of the old key");
    let new_key_client = connect(&after, Transport::WebTransport)
        .await
        .expect("token of the new key");
    drop((old_key_client, new_key_client));

    // Grants at the relay: bob (no admin grant) may not remove alice; alice (owner) may
    // remove bob.
    bob_client
        .sender()
        .send(Body::RemoveParticipant(wire::RemoveParticipant {
            participant_id: alice_client.participant_id(),
            reason: String::new(),
            ban: false,
        }))
        .await
        .unwrap();
    let forbidden =
        videocall_testkit::wait_for_message(&mut bob_client, Duration::from_secs(5), |body| {
            match body {
                Body::Error(e) if e.code == ErrorCode::Forbidden as i32 && !e.fatal => Some(()),
                _ => None,
            }
        })
        .await;
    assert!(forbidden.is_some(), "a non-admin is told no");
    alice_client
        .sender()
        .send(Body::RemoveParticipant(wire::RemoveParticipant {
            participant_id: bob_client.participant_id(),
            reason: "test".into(),
            ban: false,
        }))
        .await
        .unwrap();
    assert!(
        ends_with(&mut bob_client, ErrorCode::Forbidden).await,
        "bob was removed"
    );

    // Ending the meeting disconnects everyone through the relay; old grants stop working.
    api.meetings()
        .end_meeting(req(EndMeetingRequest { id: "room".into() }, Some(&alice)))
        .await
        .unwrap();
    assert!(
        ends_with(&mut alice_client, ErrorCode::MeetingEnded).await,
        "alice is disconnected"
    );
    assert_eq!(
        refused(connect(&alice_again, Transport::WebSocket).await),
        Some(ErrorCode::MeetingEnded)
    );

    relay.shutdown();
    relay.stopped().await;
    cp.stop().await;
}

/// Polls `check` every 50 ms until it holds (within 10 s).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn live_ids(api: &Api, auth: &str, meeting: &str) -> Vec<(String, u64, i32)> {
    api.meetings()
        .list_participants(req(
            ListParticipantsRequest {
                meeting_id: meeting.into(),
            },
            Some(auth),
        ))
        .await
        .unwrap()
        .into_inner()
        .participants
        .into_iter()
        .map(|p| (p.identity, p.participant_id, p.role))
        .collect()
}

async fn hosts(db: &Database) {
    let cp = ControlPlane::start(db, &["--heartbeat-interval-ms", "200"]).await;
    let api = cp.api().await;
    let relay = start_relay(&cp.url).await;
    let admin = api.admin().await;
    let alice = api.user(&admin, "alice").await;
    let bob = api.user(&admin, "bob").await;
    let carol = api.user(&admin, "carol").await;
    registered(&api, &admin, "relay-it", Duration::from_secs(10)).await;
    api.create_meeting(
        &alice,
        CreateMeetingRequest {
            id: "hosted".into(),
            access: Access::Private as i32,
            allowed_users: vec!["bob".into(), "carol".into()],
            guests_allowed: true,
            ..Default::default()
        },
    )
    .await;
    let alice_grant = grant_for(&api, Some(&alice), "hosted", "").await;
    let mut alice_client = connect(&alice_grant, Transport::WebTransport)
        .await
        .expect("alice joins");
    let bob_grant = grant_for(&api, Some(&bob), "hosted", "").await;
    let mut bob_client = connect(&bob_grant, Transport::WebSocket)
        .await
        .expect("bob joins");

    // A guest waits, the owner admits them, and their grant gets them into the meeting.
    let asked = api.join(None, "hosted", "Gail").await.expect("gail asks");
    let ticket = asked.waiting.expect("gail waits").ticket;
    let queue = api
        .hosts()
        .list_waiting(req(
            ListWaitingRequest {
                meeting_id: "hosted".into(),
            },
            Some(&alice),
        ))
        .await
        .unwrap()
        .into_inner()
        .waiting;
    api.hosts()
        .decide_waiting(req(
            DecideWaitingRequest {
                meeting_id: "hosted".into(),
                ids: vec![queue[0].id.clone()],
                admit: true,
                ..Default::default()
            },
            Some(&alice),
        ))
        .await
        .expect("admit gail");
    let admission = api
        .meetings()
        .check_admission(req(
            CheckAdmissionRequest {
                meeting_id: "hosted".into(),
                ticket,
                avoid_relay_ids: Vec::new(),
            },
            None,
        ))
        .await
        .unwrap()
        .into_inner();
    let gail_grant = admission.grant.expect("gail's grant");
    let gail_client = connect(&gail_grant, Transport::WebSocket)
        .await
        .expect("gail joins");
    assert!(gail_client.participant_id() != 0);

    // The relay reports who is there, with their roles.
    eventually("three participants reported", || {
        let api = api.clone();
        let alice = alice.clone();
        async move { live_ids(&api, &alice, "hosted").await.len() == 3 }
    })
    .await;
    let ids = live_ids(&api, &alice, "hosted").await;
    let role_of = |who: &str| ids.iter().find(|(i, _, _)| i == who).map(|(_, _, r)| *r);
    assert_eq!(role_of("alice"), Some(MeetingRole::Host as i32));
    assert_eq!(role_of("bob"), Some(MeetingRole::Participant as i32));
    assert_eq!(
        role_of(&gail_grant.identity),
        Some(MeetingRole::Guest as i32)
    );

    // Through the API the owner mutes bob for good: the relay tells bob, from "a host".
    let bob_id = bob_client.participant_id();
    api.hosts()
        .moderate_meeting(req(
            ModerateMeetingRequest {
                meeting_id: "hosted".into(),
                action: Some(moderate_meeting_request::Action::Mute(MuteAction {
                    participant_id: bob_id,
                    media: HostMedia::Audio as i32,
                    disallow_unmute: true,
                })),
            },
            Some(&alice),
        ))
        .await
        .expect("mute bob");
    let notice =
        videocall_testkit::wait_for_message(&mut bob_client, Duration::from_secs(5), |b| match b {
            Body::HostNotice(n) => Some(n.clone()),
            _ => None,
        })
        .await
        .expect("bob hears of it");
    assert_eq!(notice.by_participant_id, 0);
    let locked = videocall_testkit::wait_for_message(
        &mut alice_client,
        Duration::from_secs(5),
        |b| match b {
            Body::ParticipantUpdated(u) => u
                .participant
                .as_ref()
                .filter(|p| p.id == bob_id && p.audio_locked)
                .map(|_| ()),
            _ => None,
        },
    )
    .await;
    assert!(locked.is_some(), "the meeting sees bob's microphone held");

    // In the meeting alice makes bob a co-host: the control plane hears it, and bob may
    // then see the waiting room through the API.
    alice_client
        .sender()
        .send(Body::HostAction(wire::HostAction {
            action: Some(wire::host_action::Action::SetRole(wire::SetRole {
                participant_id: bob_id,
                role: wire::Role::Cohost as i32,
            })),
        }))
        .await
        .unwrap();
    eventually("bob reported as co-host", || {
        let api = api.clone();
        let bob = bob.clone();
        async move {
            api.hosts()
                .list_waiting(req(
                    ListWaitingRequest {
                        meeting_id: "hosted".into(),
                    },
                    Some(&bob),
                ))
                .await
                .is_ok()
        }
    })
    .await;

    // Alice locks the meeting in it: the control plane keeps the lock, carol is refused.
    alice_client
        .sender()
        .send(Body::HostAction(wire::HostAction {
            action: Some(wire::host_action::Action::Lock(wire::LockMeeting {
                locked: true,
            })),
        }))
        .await
        .unwrap();
    eventually("the lock reaches the control plane", || {
        let api = api.clone();
        let alice = alice.clone();
        async move {
            api.meetings()
                .get_meeting(req(
                    GetMeetingRequest {
                        id: "hosted".into(),
                    },
                    Some(&alice),
                ))
                .await
                .is_ok_and(|m| m.into_inner().locked)
        }
    })
    .await;
    assert_status(
        api.join(Some(&carol), "hosted", "").await,
        Code::FailedPrecondition,
        "locked",
    );

    // Through the API alice removes the guest with a ban: the relay closes it.
    let mut gail_client = gail_client;
    api.hosts()
        .moderate_meeting(req(
            ModerateMeetingRequest {
                meeting_id: "hosted".into(),
                action: Some(moderate_meeting_request::Action::Remove(RemoveAction {
                    participant_id: gail_client.participant_id(),
                    ban: true,
                    reason: "testing".into(),
                })),
            },
            Some(&alice),
        ))
        .await
        .expect("remove gail");
    assert!(
        ends_with(&mut gail_client, ErrorCode::Forbidden).await,
        "gail was removed"
    );
    // Her old grant no longer works at the relay, nor her ticket at the control plane.
    assert_eq!(
        refused(connect(&gail_grant, Transport::WebSocket).await),
        Some(ErrorCode::Forbidden)
    );

    // Alice ends it for all in the meeting: the control plane ends it too.
    alice_client
        .sender()
        .send(Body::HostAction(wire::HostAction {
            action: Some(wire::host_action::Action::End(wire::EndForAll {})),
        }))
        .await
        .unwrap();
    assert!(ends_with(&mut bob_client, ErrorCode::MeetingEnded).await);
    eventually("the end reaches the control plane", || {
        let api = api.clone();
        let alice = alice.clone();
        async move {
            api.meetings()
                .get_meeting(req(
                    GetMeetingRequest {
                        id: "hosted".into(),
                    },
                    Some(&alice),
                ))
                .await
                .is_ok_and(|m| m.into_inner().state == MeetingState::Ended as i32)
        }
    })
    .await;

    // The record: what was done in the meeting and through the API, newest first.
    let record = api
        .hosts()
        .list_host_actions(req(
            ListHostActionsRequest {
                meeting_id: "hosted".into(),
                ..Default::default()
            },
            Some(&alice),
        ))
        .await
        .unwrap()
        .into_inner()
        .actions;
    let summary: Vec<_> = record
        .iter()
        .map(|a| {
            (
                a.action.as_str(),
                a.via.as_str(),
                a.target_display_name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("end", "meeting", ""),
            ("remove", "api", "Gail"),
            ("lock", "meeting", ""),
            ("set_role", "meeting", "BOB"),
            ("mute", "api", "BOB"),
            ("admit", "api", "Gail"),
        ],
        "{record:#?}"
    );

    relay.shutdown();
    relay.stopped().await;
    cp.stop().await;
}
