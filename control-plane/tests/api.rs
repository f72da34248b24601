//! The control-plane API over real gRPC on loopback, on SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use common::*;
use tonic::Code;
use videocall_control_api::v1::*;
use videocall_token::TokenVerifier;

on_both_databases! {
    meeting_lifecycle => lifecycle,
    authorisation_matrix => authorisation,
    bad_input_is_refused_by_field => bad_input,
    placement_follows_heartbeats => placement,
    a_meeting_spills_past_its_share_of_a_relay => share_per_relay,
    concurrent_joins_respect_the_limit => concurrent_joins,
    restart_loses_nothing => restart,
}

/// The role a join token's claims carry (read without checking the signature: the relay does).
fn role_in(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    claims["grants"]["role"].as_str().map(str::to_owned)
}

fn public(id: &str) -> CreateMeetingRequest {
    CreateMeetingRequest {
        id: id.into(),
        title: format!("Meeting {id}"),
        access: Access::Public as i32,
        guests_allowed: true,
        ..Default::default()
    }
}

async fn lifecycle(db: &Database) {
    let cp = ControlPlane::start(db, &[]).await;
    let api = cp.api().await;
    let admin = api.admin().await;
    let alice = api.user(&admin, "alice").await;
    api.register_relay("relay-a", 100).await;

    let created = api.create_meeting(&alice, public("standup")).await;
    assert_eq!(created.owner, "alice");
    assert_eq!(created.state, MeetingState::Open as i32);
    assert_eq!(created.max_participants, 100, "the server default");
    let generated = api
        .create_meeting(
            &alice,
            CreateMeetingRequest {
                id: String::new(),
                ..public("")
            },
        )
        .await;
    assert!(generated.id.starts_with("m-"), "{}", generated.id);

    let got = api
        .meetings()
        .get_meeting(req(
            GetMeetingRequest {
                id: "standup".into(),
            },
            Some(&alice),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.title, "Meeting standup");

    // Paging: three meetings, pages of two.
    api.create_meeting(&alice, public("zz-last")).await;
    let page = api
        .meetings()
        .list_meetings(req(
            ListMeetingsRequest {
                page_size: 2,
                owner: "alice".into(),
                ..Default::default()
            },
            Some(&alice),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.meetings.len(), 2);
    assert!(!page.next_page_token.is_empty());
    let rest = api
        .meetings()
        .list_meetings(req(
            ListMeetingsRequest {
                page_size: 2,
                page_token: page.next_page_token,
                owner: "alice".into(),
                ..Default::default()
            },
            Some(&alice),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.meetings.len(), 1);
    assert!(rest.next_page_token.is_empty());

    let updated = api
        .meetings()
        .update_meeting(req(
            UpdateMeetingRequest {
                id: "standup".into(),
                title: Some("Daily standup".into()),
                max_participants: Some(5),
                ..Default::default()
            },
            Some(&alice),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.title, "Daily standup");
    assert_eq!(updated.max_participants, 5);
    assert!(updated.guests_allowed, "unset fields keep their value");

    // Join: a grant whose token verifies with the published keys.
    let grant = api.join(Some(&alice), "standup", "").await.unwrap();
    assert_eq!(grant.identity, "alice");
    assert_eq!(grant.display_name, "ALICE");
    assert!(grant.admin, "the owner moderates");
    let relay = grant.relay.clone().unwrap();
    assert_eq!(relay.relay_id, "relay-a");
    assert_eq!(relay.certificate_sha256, vec!["ab".repeat(32)]);
    let keys = api
        .relays()
        .get_verification_keys(req(GetVerificationKeysRequest {}, Some(&relay_auth())))
        .await
        .unwrap()
        .into_inner();
    let mut verifier = TokenVerifier::new();
    for key in &keys.keys {
        verifier.add_key_base64(&key.kid, &key.public_key).unwrap();
    }
    let claims = verifier.verify(&grant.token, "standup").unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.max_participants, Some(5));
    assert!(!claims.e2ee, "a clear meeting's token");
    assert!(grant.e2ee_credential.is_empty(), "no key, no credential");
    assert!(grant.e2ee_verification_keys.is_none());

    // With an end-to-end encryption signing key, the grant carries a credential for it that
    // checks with the same published keys (and is no join token); a guest's is marked.
    let e2ee_join = |auth: Option<&str>, key: Vec<u8>| {
        let mut meetings = api.meetings();
        let request = req(
            JoinMeetingRequest {
                meeting_id: "standup".into(),
                display_name: "Someone".into(),
                e2ee_signature_key: key,
                ..Default::default()
            },
            auth,
        );
        async move { meetings.join_meeting(request).await.map(|r| r.into_inner()) }
    };
    let signed = e2ee_join(Some(&alice), vec![5; 32]).await.unwrap();
    let credential = verifier
        .verify_credential(&signed.e2ee_credential, "standup", &[5; 32])
        .unwrap();
    assert_eq!(
        (credential.sub.as_str(), credential.guest),
        ("alice", false)
    );
    assert!(verifier.verify(&signed.e2ee_credential, "standup").is_err());
    assert_eq!(
        signed.e2ee_verification_keys.as_ref(),
        Some(&keys),
        "the keys that check it come with it"
    );
    let guest = e2ee_join(None, vec![6; 32]).await.unwrap();
    let credential = verifier
        .verify_credential(&guest.e2ee_credential, "standup", &[6; 32])
        .unwrap();
    assert!(credential.guest);
    assert_eq!(credential.sub, guest.identity);
    assert_status(
        e2ee_join(None, vec![6; 31]).await,
        Code::InvalidArgument,
        "e2ee_signature_key:",
    );

    // Once the meeting requires end-to-end encryption, only clients that encrypt are granted a
    // join, with tokens that say so (the relay then takes only sealed media) and the keys that
    // check the members' credentials.
    let set_e2ee = |required: bool| {
        let mut meetings = api.meetings();
        let request = req(
            UpdateMeetingRequest {
                id: "standup".into(),
                e2ee_required: Some(required),
                ..Default::default()
            },
            Some(&alice),
        );
        async move { meetings.update_meeting(request).await.unwrap().into_inner() }
    };
    assert!(set_e2ee(true).await.e2ee_required);
    assert_status(
        e2ee_join(None, Vec::new()).await,
        Code::FailedPrecondition,
        "is end-to-end encrypted: join with a client that encrypts",
    );
    let encrypted = e2ee_join(None, vec![7; 32]).await.unwrap();
    assert!(encrypted.e2ee_required);
    let mut from_grant = TokenVerifier::new();
    for key in &encrypted.e2ee_verification_keys.clone().unwrap().keys {
        from_grant
            .add_key_base64(&key.kid, &key.public_key)
            .unwrap();
    }
    assert!(from_grant.verify(&encrypted.token, "standup").unwrap().e2ee);
    assert!(
        from_grant
            .verify_credential(&encrypted.e2ee_credential, "standup", &[7; 32])
            .unwrap()
            .guest
    );
    assert!(!set_e2ee(false).await.e2ee_required);

    // The relay reports alice: the meeting is live.
    api.heartbeat("relay-a", &[("standup", "alice")]).await;
    let live = api
        .meetings()
        .list_participants(req(
            ListParticipantsRequest {
                meeting_id: "standup".into(),
            },
            Some(&alice),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(live.participants.len(), 1);
    assert_eq!(live.participants[0].identity, "alice");
    let live_list = api
        .meetings()
        .list_meetings(req(
            ListMeetingsRequest {
                state: MeetingState::Live as i32,
                ..Default::default()
            },
            Some(&alice),
        ))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = live_list.meetings.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["standup"]);
    assert_eq!(live_list.meetings[0].relay_ids, ["relay-a"]);

    // End: relays hear of it on their next heartbeat; no more joins.
    let ended = api
        .meetings()
        .end_meeting(req(
            EndMeetingRequest {
                id: "standup".into(),
            },
            Some(&alice),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ended.state, MeetingState::Ended as i32);
    let beat = api.heartbeat("relay-a", &[("standup", "alice")]).await;
    assert!(beat
        .ended_meetings
        .iter()
        .any(|m| m.meeting_id == "standup"));
    assert_status(
        api.join(Some(&alice), "standup", "").await,
        Code::FailedPrecondition,
        "ended",
    );

    api.meetings()
        .delete_meeting(req(
            DeleteMeetingRequest {
                id: "standup".into(),
            },
            Some(&alice),
        ))
        .await
        .unwrap();
    assert_status(
        api.meetings()
            .get_meeting(req(
                GetMeetingRequest {
                    id: "standup".into(),
                },
                Some(&alice),
            ))
            .await,
        Code::NotFound,
        "standup",
    );
    cp.stop().await;
}

async fn authorisation(db: &Database) {
    let cp = ControlPlane::start(db, &[]).await;
    let api = cp.api().await;
    let admin = api.admin().await;
    let alice = api.user(&admin, "alice").await;
    let bob = api.user(&admin, "bob").await;
    let carol = api.user(&admin, "carol").await;
    api.register_relay("relay-a", 100).await;
    api.create_meeting(
        &alice,
        CreateMeetingRequest {
            guests_allowed: false,
            ..public("alices")
        },
    )
    .await;

    // Only owner or admin may update, end or delete.
    let update = |auth: &str| {
        req(
            UpdateMeetingRequest {
                id: "alices".into(),
                title: Some("x".into()),
                ..Default::default()
            },
            Some(auth),
        )
    };
    assert_status(
        api.meetings().update_meeting(update(&bob)).await,
        Code::PermissionDenied,
        "owner",
    );
    assert_status(
        api.meetings()
            .end_meeting(req(
                EndMeetingRequest {
                    id: "alices".into(),
                },
                Some(&bob),
            ))
            .await,
        Code::PermissionDenied,
        "owner",
    );
    assert_status(
        api.meetings()
            .delete_meeting(req(
                DeleteMeetingRequest {
                    id: "alices".into(),
                },
                Some(&bob),
            ))
            .await,
        Code::PermissionDenied,
        "owner",
    );
    api.meetings()
        .update_meeting(update(&admin))
        .await
        .expect("admin may update");
    let relay_key = relay_auth();
    assert_status(
        api.meetings().update_meeting(update(&relay_key)).await,
        Code::PermissionDenied,
        "owner",
    );
    assert_status(
        api.meetings()
            .create_meeting(req(public("by-relay"), Some(&relay_key)))
            .await,
        Code::PermissionDenied,
        "relays",
    );

    // No credentials.
    assert_status(
        api.meetings()
            .create_meeting(req(public("anon"), None))
            .await,
        Code::Unauthenticated,
        "sign in",
    );
    assert_status(
        api.join(None, "alices", "Guest").await,
        Code::Unauthenticated,
        "guests",
    );
    assert_status(
        api.meetings()
            .create_meeting(req(public("x"), Some("Bearer vcs_forged")))
            .await,
        Code::Unauthenticated,
        "session",
    );

    // Guests where allowed.
    api.create_meeting(&alice, public("open-door")).await;
    let guest = api.join(None, "open-door", "Visitor").await.unwrap();
    assert!(guest.identity.starts_with("guest-"), "{}", guest.identity);
    assert_eq!(guest.display_name, "Visitor");
    assert!(!guest.admin);
    assert_eq!(role_in(&guest.token), Some("guest".into()));
    assert_status(
        api.join(None, "open-door", "").await,
        Code::InvalidArgument,
        "display_name",
    );

    // Hosts the meeting names: their grants carry the host role; the owner's too; others not.
    api.create_meeting(
        &alice,
        CreateMeetingRequest {
            hosts: vec!["carol".into(), "carol".into()],
            ..public("hosted")
        },
    )
    .await;
    let carols = api.join(Some(&carol), "hosted", "").await.unwrap();
    assert!(carols.admin);
    assert_eq!(role_in(&carols.token), Some("host".into()));
    let owners = api.join(Some(&alice), "hosted", "").await.unwrap();
    assert_eq!(role_in(&owners.token), Some("host".into()));
    let bobs = api.join(Some(&bob), "hosted", "").await.unwrap();
    assert!(!bobs.admin);
    assert_eq!(role_in(&bobs.token), Some("participant".into()));
    let hosted = api
        .meetings()
        .get_meeting(req(
            GetMeetingRequest {
                id: "hosted".into(),
            },
            Some(&alice),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hosted.hosts, vec!["carol".to_string()]);
    // The owner hands hosting to bob.
    api.meetings()
        .update_meeting(req(
            UpdateMeetingRequest {
                id: "hosted".into(),
                hosts: Some(videocall_control_api::v1::Hosts {
                    users: vec!["bob".into()],
                }),
                ..Default::default()
            },
            Some(&alice),
        ))
        .await
        .expect("update hosts");
    let bobs = api.join(Some(&bob), "hosted", "").await.unwrap();
    assert_eq!(role_in(&bobs.token), Some("host".into()));
    let carols = api.join(Some(&carol), "hosted", "").await.unwrap();
    assert_eq!(role_in(&carols.token), Some("participant".into()));
    assert_status(
        api.meetings()
            .create_meeting(req(
                CreateMeetingRequest {
                    hosts: vec!["no such/name".into()],
                    ..public("bad-hosts")
                },
                Some(&alice),
            ))
            .await,
        Code::InvalidArgument,
        "hosts[0]",
    );

    // Private: the allow-list only.
    api.create_meeting(
        &alice,
        CreateMeetingRequest {
            access: Access::Private as i32,
            allowed_users: vec!["carol".into()],
            ..public("private")
        },
    )
    .await;
    assert_status(
        api.join(Some(&bob), "private", "").await,
        Code::PermissionDenied,
        "allow-list",
    );
    assert_status(
        api.meetings()
            .get_meeting(req(
                GetMeetingRequest {
                    id: "private".into(),
                },
                Some(&bob),
            ))
            .await,
        Code::PermissionDenied,
        "private",
    );
    assert_eq!(
        api.join(Some(&carol), "private", "")
            .await
            .unwrap()
            .identity,
        "carol"
    );
    assert!(api.join(Some(&admin), "private", "").await.unwrap().admin);
    let bobs_list = api
        .meetings()
        .list_meetings(req(ListMeetingsRequest::default(), Some(&bob)))
        .await
        .unwrap()
        .into_inner();
    assert!(
        bobs_list.meetings.iter().all(|m| m.id != "private"),
        "bob does not see it"
    );

    // Password.
    api.create_meeting(
        &alice,
        CreateMeetingRequest {
            access: Access::Password as i32,
            password: "sesame-1234".into(),
            ..public("locked")
        },
    )
    .await;
    let with_password = |password: &str| {
        req(
            JoinMeetingRequest {
                meeting_id: "locked".into(),
                display_name: "Bob".into(),
                password: password.into(),
                receive_only: true,
                avoid_relay_ids: Vec::new(),
                e2ee_signature_key: Vec::new(),
                admission_ticket: String::new(),
            },
            Some(&bob),
        )
    };
    assert_status(
        api.meetings().join_meeting(with_password("wrong")).await,
        Code::PermissionDenied,
        "password",
    );
    let grant = api
        .meetings()
        .join_meeting(with_password("sesame-1234"))
        .await
        .unwrap()
        .into_inner();
    assert!(!grant.publish && grant.subscribe, "receive-only");

    // Users, keys and relays are for admins and relays.
    let new_user = CreateUserRequest {
        username: "dave".into(),
        password: PASSWORD.into(),
        ..Default::default()
    };
    assert_status(
        api.auth()
            .create_user(req(new_user.clone(), Some(&bob)))
            .await,
        Code::PermissionDenied,
        "admin",
    );
    assert_status(
        api.auth().create_user(req(new_user.clone(), None)).await,
        Code::Unauthenticated,
        "sign in",
    );
    api.auth()
        .create_user(req(new_user.clone(), Some(&admin)))
        .await
        .expect("admin creates users");
    assert_status(
        api.auth().create_user(req(new_user, Some(&admin))).await,
        Code::AlreadyExists,
        "dave",
    );
    assert_status(
        api.relays()
            .list_relays(req(ListRelaysRequest {}, Some(&bob)))
            .await,
        Code::PermissionDenied,
        "relays",
    );
    assert_status(
        api.relays()
            .drain_relay(req(
                DrainRelayRequest {
                    relay_id: "relay-a".into(),
                },
                Some(&relay_key),
            ))
            .await,
        Code::PermissionDenied,
        "admin",
    );
    assert_status(
        api.relays()
            .rotate_signing_key(req(RotateSigningKeyRequest {}, Some(&bob)))
            .await,
        Code::PermissionDenied,
        "admin",
    );

    // API keys: created by an admin, usable, revocable.
    let key = api
        .auth()
        .create_api_key(req(
            CreateApiKeyRequest {
                name: "operator".into(),
                role: Role::Admin as i32,
            },
            Some(&admin),
        ))
        .await
        .unwrap()
        .into_inner();
    let operator = videocall_control_api::api_key_authorization(&key.key_id, &key.secret);
    let me = api
        .auth()
        .who_am_i(req(WhoAmIRequest {}, Some(&operator)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (me.name.as_str(), me.role, me.via.as_str()),
        ("operator", Role::Admin as i32, "api_key")
    );
    let wrong_secret = videocall_control_api::api_key_authorization(&key.key_id, "not-the-secret");
    assert_status(
        api.auth()
            .who_am_i(req(WhoAmIRequest {}, Some(&wrong_secret)))
            .await,
        Code::Unauthenticated,
        "secret",
    );
    api.auth()
        .revoke_api_key(req(
            RevokeApiKeyRequest {
                key_id: key.key_id.clone(),
            },
            Some(&admin),
        ))
        .await
        .unwrap();
    assert_status(
        api.auth()
            .who_am_i(req(WhoAmIRequest {}, Some(&operator)))
            .await,
        Code::Unauthenticated,
        "revoked",
    );

    // Logout revokes the session.
    api.auth()
        .logout(req(LogoutRequest {}, Some(&bob)))
        .await
        .unwrap();
    assert_status(
        api.auth().who_am_i(req(WhoAmIRequest {}, Some(&bob))).await,
        Code::Unauthenticated,
        "revoked",
    );
    let revoked = api
        .auth()
        .revoke_user_sessions(req(
            RevokeUserSessionsRequest {
                username: "carol".into(),
            },
            Some(&admin),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.revoked, 1);
    assert_status(
        api.auth()
            .who_am_i(req(WhoAmIRequest {}, Some(&carol)))
            .await,
        Code::Unauthenticated,
        "revoked",
    );
    cp.stop().await;
}

async fn bad_input(db: &Database) {
    let cp = ControlPlane::start(db, &["--login-max-failures", "3"]).await;
    let api = cp.api().await;
    let admin = api.admin().await;
    let alice = api.user(&admin, "alice").await;

    let create = |request: CreateMeetingRequest| {
        let mut client = api.meetings();
        let alice = alice.clone();
        async move { client.create_meeting(req(request, Some(&alice))).await }
    };
    assert_status(
        create(public("x'; DROP TABLE meetings;--")).await,
        Code::InvalidArgument,
        "id:",
    );
    assert_status(
        create(public(&"a".repeat(200))).await,
        Code::InvalidArgument,
        "id:",
    );
    assert_status(
        create(CreateMeetingRequest {
            title: "t".repeat(1000),
            ..public("ok1")
        })
        .await,
        Code::InvalidArgument,
        "title:",
    );
    assert_status(
        create(CreateMeetingRequest {
            max_participants: 1_000_000,
            ..public("ok2")
        })
        .await,
        Code::InvalidArgument,
        "max_participants:",
    );
    assert_status(
        create(CreateMeetingRequest {
            access: 99,
            ..public("ok3")
        })
        .await,
        Code::InvalidArgument,
        "access:",
    );
    assert_status(
        create(CreateMeetingRequest {
            access: Access::Password as i32,
            ..public("ok4")
        })
        .await,
        Code::InvalidArgument,
        "password:",
    );
    assert_status(
        create(CreateMeetingRequest {
            allowed_users: vec!["ok".into(), "not ok".into()],
            ..public("ok5")
        })
        .await,
        Code::InvalidArgument,
        "allowed_users[1]:",
    );
    // An end-to-end encrypted meeting, created or updated so, grants joins only to clients
    // that encrypt (a signing key in the request; what they get is in meeting_lifecycle).
    create(CreateMeetingRequest {
        e2ee_required: true,
        ..public("ok6")
    })
    .await
    .unwrap();
    create(public("clear")).await.unwrap();
    let updated = api
        .meetings()
        .update_meeting(req(
            UpdateMeetingRequest {
                id: "clear".into(),
                e2ee_required: Some(true),
                ..Default::default()
            },
            Some(&alice),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(updated.e2ee_required);
    for id in ["ok6", "clear"] {
        let join = |key: Vec<u8>| {
            let mut meetings = api.meetings();
            let request = req(
                JoinMeetingRequest {
                    meeting_id: id.into(),
                    display_name: "Guest".into(),
                    e2ee_signature_key: key,
                    ..Default::default()
                },
                None,
            );
            async move { meetings.join_meeting(request).await.map(|r| r.into_inner()) }
        };
        assert_status(
            join(Vec::new()).await,
            Code::FailedPrecondition,
            "is end-to-end encrypted: join with a client that encrypts",
        );
    }
    // An injection attempt in free text is stored as text and harms nothing.
    let sneaky = create(CreateMeetingRequest {
        title: "'); DELETE FROM users; --".into(),
        ..public("sneaky")
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(sneaky.title, "'); DELETE FROM users; --");
    assert_status(
        create(public("sneaky")).await,
        Code::AlreadyExists,
        "sneaky",
    );
    api.login("alice", PASSWORD).await;

    assert_status(
        api.meetings()
            .list_meetings(req(
                ListMeetingsRequest {
                    page_token: "%%%".into(),
                    ..Default::default()
                },
                Some(&alice),
            ))
            .await,
        Code::InvalidArgument,
        "page_token:",
    );
    assert_status(
        api.meetings()
            .list_meetings(req(
                ListMeetingsRequest {
                    page_size: 10_000,
                    ..Default::default()
                },
                Some(&alice),
            ))
            .await,
        Code::InvalidArgument,
        "page_size:",
    );
    assert_status(
        api.meetings()
            .get_meeting(req(GetMeetingRequest { id: "nope".into() }, Some(&alice)))
            .await,
        Code::NotFound,
        "nope",
    );
    assert_status(
        api.meetings()
            .join_meeting(req(
                JoinMeetingRequest {
                    meeting_id: String::new(),
                    ..Default::default()
                },
                Some(&alice),
            ))
            .await,
        Code::InvalidArgument,
        "meeting_id:",
    );
    assert_status(
        api.auth()
            .create_user(req(
                CreateUserRequest {
                    username: "eve".into(),
                    password: "short".into(),
                    ..Default::default()
                },
                Some(&admin),
            ))
            .await,
        Code::InvalidArgument,
        "password:",
    );
    assert_status(
        api.auth()
            .create_api_key(req(
                CreateApiKeyRequest {
                    name: "k".into(),
                    role: 0,
                },
                Some(&admin),
            ))
            .await,
        Code::InvalidArgument,
        "role:",
    );
    assert_status(
        api.relays()
            .register_relay(req(
                RegisterRelayRequest {
                    endpoints: None,
                    capacity_participants: 1,
                    admin_url: String::new(),
                },
                Some(&relay_auth()),
            ))
            .await,
        Code::InvalidArgument,
        "endpoints:",
    );
    assert_status(
        api.relays()
            .register_relay(req(
                RegisterRelayRequest {
                    endpoints: Some(RelayEndpoints {
                        relay_id: "r".into(),
                        webtransport_url: "https://127.0.0.1:1/".into(),
                        websocket_url: "http://127.0.0.1:1/ws".into(),
                        certificate_sha256: vec![],
                    }),
                    capacity_participants: 1,
                    admin_url: String::new(),
                },
                Some(&relay_auth()),
            ))
            .await,
        Code::InvalidArgument,
        "endpoints.websocket_url:",
    );
    assert_status(
        api.relays()
            .heartbeat(req(
                HeartbeatRequest {
                    relay_id: "never-registered".into(),
                    ..Default::default()
                },
                Some(&relay_auth()),
            ))
            .await,
        Code::NotFound,
        "never-registered",
    );
    assert_status(
        api.auth()
            .who_am_i(req(WhoAmIRequest {}, Some("Basic dXNlcjpwYXNz")))
            .await,
        Code::Unauthenticated,
        "authorization:",
    );
    // A message larger than the server accepts is refused; the server keeps serving.
    let huge = api
        .meetings()
        .create_meeting(req(
            CreateMeetingRequest {
                title: "x".repeat(5 * 1024 * 1024),
                ..public("huge")
            },
            Some(&alice),
        ))
        .await;
    assert!(huge.is_err(), "a 5 MiB request is refused");

    // Failed logins are rate-limited per user, even when the password is then right.
    for _ in 0..3 {
        let wrong = api
            .auth()
            .login(req(
                LoginRequest {
                    username: "alice".into(),
                    password: "wrong-password".into(),
                },
                None,
            ))
            .await;
        assert_status(wrong, Code::Unauthenticated, "wrong username or password");
    }
    assert_status(
        api.auth()
            .login(req(
                LoginRequest {
                    username: "alice".into(),
                    password: PASSWORD.into(),
                },
                None,
            ))
            .await,
        Code::ResourceExhausted,
        "too many",
    );
    // Other users are unaffected and every table is intact.
    let users = api.login(ADMIN, ADMIN_PASSWORD).await;
    let all = api
        .meetings()
        .list_meetings(req(ListMeetingsRequest::default(), Some(&users)))
        .await
        .unwrap()
        .into_inner();
    let mut ids: Vec<_> = all.meetings.iter().map(|m| m.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["clear", "ok6", "sneaky"], "only these were created");
    assert!(all
        .meetings
        .iter()
        .all(|m| m.e2ee_required == (m.id != "sneaky")));
    cp.stop().await;
}

async fn placement(db: &Database) {
    let cp = ControlPlane::start(db, &["--relay-stale-after-ms", "1500"]).await;
    let api = cp.api().await;
    let admin = api.admin().await;
    let alice = api.user(&admin, "alice").await;
    assert_status(
        {
            api.create_meeting(&alice, public("lonely")).await;
            api.join(Some(&alice), "lonely", "").await
        },
        Code::Unavailable,
        "no relay",
    );
    api.register_relay("relay-a", 100).await;
    api.register_relay("relay-b", 100).await;
    api.register_relay("relay-c", 100).await;
    let beat = |loads: [(&'static str, Vec<(&'static str, &'static str)>); 3]| {
        let api = api.clone();
        async move {
            for (relay, participants) in loads {
                api.heartbeat(relay, &participants).await;
            }
        }
    };
    // b is least loaded.
    beat([
        ("relay-a", vec![("other", "x1"), ("other", "x2")]),
        ("relay-b", vec![]),
        ("relay-c", vec![("third", "y1")]),
    ])
    .await;
    for id in ["m1", "m2"] {
        api.create_meeting(&alice, public(id)).await;
    }
    let first = api.join(Some(&alice), "m1", "").await.unwrap();
    assert_eq!(first.relay.unwrap().relay_id, "relay-b");

    // Sticky: m1 is live on b; even when b becomes the busiest, m1's people go to b.
    beat([
        ("relay-a", vec![]),
        (
            "relay-b",
            vec![
                ("m1", "alice"),
                ("other", "x1"),
                ("other", "x2"),
                ("other", "x3"),
            ],
        ),
        ("relay-c", vec![]),
    ])
    .await;
    let again = api.join(None, "m1", "Guest").await.unwrap();
    assert_eq!(
        again.relay.unwrap().relay_id,
        "relay-b",
        "a live meeting stays where it is"
    );
    let fresh = api.join(None, "m2", "Guest").await.unwrap();
    assert_eq!(
        fresh.relay.unwrap().relay_id,
        "relay-a",
        "a new meeting goes to the least loaded"
    );

    // Draining: an admin drains a; the relay hears it on its next heartbeat; a takes no one new.
    let status = api
        .relays()
        .drain_relay(req(
            DrainRelayRequest {
                relay_id: "relay-a".into(),
            },
            Some(&admin),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(status.draining);
    let beat_a = api.heartbeat("relay-a", &[]).await;
    assert!(beat_a.drain, "the heartbeat tells the relay to drain");
    api.create_meeting(&alice, public("m3")).await;
    api.heartbeat("relay-b", &[("m1", "alice")]).await;
    api.heartbeat("relay-c", &[("third", "y1"), ("third", "y2")])
        .await;
    let third = api.join(None, "m3", "Guest").await.unwrap();
    assert_eq!(
        third.relay.unwrap().relay_id,
        "relay-b",
        "a is draining; b is lighter than c"
    );

    // Stale: only c keeps beating; a and b go stale and are excluded.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        api.heartbeat("relay-c", &[]).await;
    }
    api.create_meeting(&alice, public("m4")).await;
    let fourth = api.join(None, "m4", "Guest").await.unwrap();
    assert_eq!(fourth.relay.unwrap().relay_id, "relay-c");
    let m1 = api.join(None, "m1", "Guest").await.unwrap();
    assert_eq!(
        m1.relay.unwrap().relay_id,
        "relay-c",
        "the host went stale: placed afresh"
    );
    let relays = api
        .relays()
        .list_relays(req(ListRelaysRequest {}, Some(&admin)))
        .await
        .unwrap()
        .into_inner();
    let fresh: Vec<_> = relays
        .relays
        .iter()
        .filter(|r| r.fresh)
        .map(|r| r.endpoints.as_ref().unwrap().relay_id.as_str())
        .collect();
    assert_eq!(fresh, ["relay-c"]);
    cp.stop().await;
}

async fn share_per_relay(db: &Database) {
    let cp = ControlPlane::start(db, &["--meeting-share-per-relay", "2"]).await;
    let api = cp.api().await;
    let admin = api.admin().await;
    for relay in ["relay-a", "relay-b", "relay-c"] {
        api.register_relay(relay, 100).await;
        api.heartbeat(relay, &[]).await;
    }
    api.create_meeting(&admin, public("big")).await;
    let mut placed = Vec::new();
    for i in 0..6 {
        let grant = api.join(None, "big", &format!("Guest {i}")).await.unwrap();
        placed.push(grant.relay.unwrap().relay_id);
    }
    // Granted seats count before anyone connects: two a relay, then the next relay.
    assert_eq!(
        placed,
        ["relay-a", "relay-a", "relay-b", "relay-b", "relay-c", "relay-c"]
    );
    // Every relay holds its share, and a is draining: a host with room takes more.
    api.relays()
        .drain_relay(req(
            DrainRelayRequest {
                relay_id: "relay-a".into(),
            },
            Some(&admin),
        ))
        .await
        .unwrap();
    let over = api.join(None, "big", "Guest 6").await.unwrap();
    assert_eq!(over.relay.unwrap().relay_id, "relay-b");
    // Another meeting starts on the least-loaded relay that is not draining.
    api.create_meeting(&admin, public("small")).await;
    let small = api.join(None, "small", "Guest").await.unwrap();
    assert_eq!(small.relay.unwrap().relay_id, "relay-c");
    // Someone who just lost relay-b (it may still look fresh) is placed elsewhere.
    let avoiding = |ids: Vec<String>| JoinMeetingRequest {
        meeting_id: "big".into(),
        display_name: "Guest 7".into(),
        avoid_relay_ids: ids,
        ..Default::default()
    };
    let rejoin = api
        .meetings()
        .join_meeting(avoiding(vec!["relay-b".into()]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rejoin.relay.unwrap().relay_id, "relay-c");
    assert_status(
        api.meetings()
            .join_meeting(avoiding(vec!["relay b".into()]))
            .await,
        Code::InvalidArgument,
        "avoid_relay_ids",
    );
    assert_status(
        api.meetings()
            .join_meeting(avoiding((0..9).map(|i| format!("relay-{i}")).collect()))
            .await,
        Code::InvalidArgument,
        "at most 8",
    );
    cp.stop().await;
}

async fn concurrent_joins(db: &Database) {
    let cp = ControlPlane::start(db, &[]).await;
    let api = cp.api().await;
    let admin = api.admin().await;
    api.register_relay("relay-a", 1000).await;
    api.create_meeting(
        &admin,
        CreateMeetingRequest {
            max_participants: 50,
            ..public("fifty")
        },
    )
    .await;
    let mut joins = tokio::task::JoinSet::new();
    for i in 0..100 {
        let api = api.clone();
        joins.spawn(async move { api.join(None, "fifty", &format!("Guest {i}")).await });
    }
    let (mut granted, mut full) = (0, 0);
    while let Some(result) = joins.join_next().await {
        match result.unwrap() {
            Ok(_) => granted += 1,
            Err(status) if status.code() == Code::ResourceExhausted => full += 1,
            Err(status) => panic!("unexpected {status:?}"),
        }
    }
    assert_eq!((granted, full), (50, 50));
    cp.stop().await;
}

async fn restart(db: &Database) {
    let cp = ControlPlane::start(db, &[]).await;
    let api = cp.api().await;
    let admin = api.admin().await;
    let alice = api.user(&admin, "alice").await;
    api.register_relay("relay-a", 100).await;
    for i in 0..5 {
        api.create_meeting(&alice, public(&format!("keep-{i}")))
            .await;
    }
    let grant = api.join(Some(&alice), "keep-0", "").await.unwrap();
    // Killed, not stopped: nothing gets a chance to flush.
    let pid = cp.pid();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    drop(cp);

    let cp = ControlPlane::start(db, &[]).await;
    let api = cp.api().await;
    let alice = api.login("alice", PASSWORD).await;
    let list = api
        .meetings()
        .list_meetings(req(ListMeetingsRequest::default(), Some(&alice)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.meetings.len(), 5);
    // Same signing key: the token issued before the restart still verifies.
    let keys = api
        .relays()
        .get_verification_keys(req(GetVerificationKeysRequest {}, Some(&relay_auth())))
        .await
        .unwrap()
        .into_inner();
    assert!(keys.keys.iter().any(|k| k.kid == grant.kid));
    cp.stop().await;
}
