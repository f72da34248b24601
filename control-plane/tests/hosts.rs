//! Hosts through the API, on both databases, with relays that report over real heartbeats:
//! the waiting room (wait, position, admit, reject, rejoin with the ticket, who may decide),
//! the lock and bans holding at JoinMeeting, host actions sent to the relay a meeting is on,
//! what relays report hosts did, and the record of it all; every action's authorisation and
//! bad fields.

mod common;

use common::*;
use tonic::Code;
use videocall_control_api::v1::moderate_meeting_request::Action;
use videocall_control_api::v1::*;

on_both_databases! {
    a_guest_waits_until_a_host_admits_or_rejects_them => waiting_room,
    locks_bans_and_host_actions_hold_at_join_and_reach_the_relay => moderation,
}

async fn join_with(
    api: &Api,
    auth: Option<&str>,
    meeting: &str,
    name: &str,
    ticket: &str,
) -> Result<JoinGrant, tonic::Status> {
    api.meetings()
        .join_meeting(req(
            JoinMeetingRequest {
                meeting_id: meeting.into(),
                display_name: name.into(),
                admission_ticket: ticket.into(),
                ..Default::default()
            },
            auth,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn check(api: &Api, meeting: &str, ticket: &str) -> Result<Admission, tonic::Status> {
    api.meetings()
        .check_admission(req(
            CheckAdmissionRequest {
                meeting_id: meeting.into(),
                ticket: ticket.into(),
                avoid_relay_ids: Vec::new(),
            },
            None,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn waiting(
    api: &Api,
    auth: Option<&str>,
    meeting: &str,
) -> Result<Vec<WaitingPerson>, tonic::Status> {
    api.hosts()
        .list_waiting(req(
            ListWaitingRequest {
                meeting_id: meeting.into(),
            },
            auth,
        ))
        .await
        .map(|r| r.into_inner().waiting)
}

async fn decide(
    api: &Api,
    auth: &str,
    meeting: &str,
    ids: &[&str],
    admit: bool,
    reason: &str,
) -> Result<u32, tonic::Status> {
    api.hosts()
        .decide_waiting(req(
            DecideWaitingRequest {
                meeting_id: meeting.into(),
                ids: ids.iter().map(|s| s.to_string()).collect(),
                all: ids.is_empty(),
                admit,
                reason: reason.into(),
            },
            Some(auth),
        ))
        .await
        .map(|r| r.into_inner().decided)
}

async fn moderate(
    api: &Api,
    auth: &str,
    meeting: &str,
    action: Action,
) -> Result<Vec<String>, tonic::Status> {
    api.hosts()
        .moderate_meeting(req(
            ModerateMeetingRequest {
                meeting_id: meeting.into(),
                action: Some(action),
            },
            Some(auth),
        ))
        .await
        .map(|r| r.into_inner().relay_ids)
}

async fn record(api: &Api, auth: &str, meeting: &str) -> Vec<HostActionRecord> {
    api.hosts()
        .list_host_actions(req(
            ListHostActionsRequest {
                meeting_id: meeting.into(),
                ..Default::default()
            },
            Some(auth),
        ))
        .await
        .expect("list host actions")
        .into_inner()
        .actions
}

async fn get(api: &Api, auth: &str, meeting: &str) -> Meeting {
    api.meetings()
        .get_meeting(req(GetMeetingRequest { id: meeting.into() }, Some(auth)))
        .await
        .expect("get meeting")
        .into_inner()
}

fn ticket_of(grant: &JoinGrant) -> (String, u32) {
    let waiting = grant.waiting.as_ref().expect("waits");
    assert!(grant.token.is_empty(), "no token while waiting");
    (waiting.ticket.clone(), waiting.position)
}

async fn waiting_room(db: &Database) {
    let cp = ControlPlane::start(db, &["--max-waiting-per-meeting", "3"]).await;
    let api = cp.api().await;
    let admin = api.admin().await;
    let alice = api.user(&admin, "alice").await;
    let bob = api.user(&admin, "bob").await;
    let carol = api.user(&admin, "carol").await;
    api.register_relay("r1", 100).await;
    api.heartbeat("r1", &[]).await;
    api.create_meeting(
        &alice,
        CreateMeetingRequest {
            id: "private".into(),
            access: Access::Private as i32,
            guests_allowed: true,
            allowed_users: vec!["bob".into(), "carol".into()],
            hosts: vec!["carol".into()],
            ..Default::default()
        },
    )
    .await;

    // By default guests of a private meeting wait, in order; members do not.
    let first = join_with(&api, None, "private", "Gail", "")
        .await
        .expect("gail asks");
    let (gail, position) = ticket_of(&first);
    assert_eq!(position, 1);
    assert_eq!(first.role, MeetingRole::Guest as i32);
    let second = join_with(&api, None, "private", "Gus", "")
        .await
        .expect("gus asks");
    let (gus, position) = ticket_of(&second);
    assert_eq!(position, 2);
    let bob_grant = api
        .join(Some(&bob), "private", "")
        .await
        .expect("bob joins");
    assert!(bob_grant.waiting.is_none() && !bob_grant.token.is_empty());
    let gus_check = check(&api, "private", &gus).await.expect("gus checks");
    assert_eq!(gus_check.state, AdmissionState::Waiting as i32);
    assert_eq!(gus_check.position, 2);
    assert!(gus_check.grant.is_none());
    assert_eq!(get(&api, &alice, "private").await.waiting, 2);

    // Only hosts see the queue.
    assert_status(
        waiting(&api, Some(&bob), "private").await,
        Code::PermissionDenied,
        "hosts",
    );
    assert_status(
        waiting(&api, None, "private").await,
        Code::Unauthenticated,
        "",
    );
    let queue = waiting(&api, Some(&alice), "private")
        .await
        .expect("alice sees the queue");
    let names: Vec<_> = queue.iter().map(|w| w.display_name.as_str()).collect();
    assert_eq!(names, ["Gail", "Gus"]);
    assert!(queue
        .iter()
        .all(|w| w.guest && w.identity.starts_with("guest-")));
    assert_status(
        decide(&api, &bob, "private", &[&queue[0].id], true, "").await,
        Code::PermissionDenied,
        "hosts",
    );
    // A guest (no credentials) cannot admit anyone, itself included.
    assert_status(
        api.hosts()
            .decide_waiting(req(
                DecideWaitingRequest {
                    meeting_id: "private".into(),
                    all: true,
                    admit: true,
                    ..Default::default()
                },
                None,
            ))
            .await,
        Code::Unauthenticated,
        "",
    );

    // The owner admits Gail: her next check carries a grant for the identity she waited as.
    assert_eq!(
        decide(&api, &alice, "private", &[&queue[0].id], true, "")
            .await
            .expect("the call succeeds"),
        1
    );
    let admitted = check(&api, "private", &gail).await.expect("gail checks");
    assert_eq!(admitted.state, AdmissionState::Admitted as i32);
    let grant = admitted.grant.expect("a grant");
    assert!(!grant.token.is_empty());
    assert_eq!(grant.identity, queue[0].identity);
    assert_eq!(grant.role, MeetingRole::Guest as i32);
    assert_eq!(grant.admission_ticket, gail);
    // Gus moves up.
    assert_eq!(check(&api, "private", &gus).await.unwrap().position, 1);
    // Rejoining with the ticket: no waiting, the same identity.
    let again = join_with(&api, None, "private", "", &gail)
        .await
        .expect("gail rejoins");
    assert!(again.waiting.is_none());
    assert_eq!(again.identity, queue[0].identity);
    assert_eq!(again.display_name, "Gail");
    assert_status(
        join_with(&api, None, "private", "Mallory", "not-a-ticket").await,
        Code::PermissionDenied,
        "admission_ticket",
    );

    // A named host turns Gus away with a reason; deciding again finds nobody waiting.
    assert_eq!(
        decide(&api, &carol, "private", &[&queue[1].id], false, "not today")
            .await
            .expect("the call succeeds"),
        1
    );
    let turned = check(&api, "private", &gus).await.expect("gus checks");
    assert_eq!(turned.state, AdmissionState::Rejected as i32);
    assert_eq!(turned.reason, "not today");
    assert!(turned.grant.is_none());
    assert_status(
        join_with(&api, None, "private", "", &gus).await,
        Code::PermissionDenied,
        "admission_ticket",
    );
    assert_eq!(
        decide(&api, &alice, "private", &[&queue[1].id], true, "")
            .await
            .expect("the call succeeds"),
        0
    );
    assert_eq!(get(&api, &alice, "private").await.waiting, 0);

    // Everyone waits where the meeting says so (hosts do not); "all" decides the whole queue.
    api.create_meeting(
        &alice,
        CreateMeetingRequest {
            id: "lobby".into(),
            waiting_room: WaitingRoom::Everyone as i32,
            guests_allowed: true,
            ..Default::default()
        },
    )
    .await;
    let bob_waits = api.join(Some(&bob), "lobby", "").await.expect("bob asks");
    let (bob_ticket, _) = ticket_of(&bob_waits);
    assert_eq!(bob_waits.identity, "bob");
    let guest_waits = join_with(&api, None, "lobby", "Gina", "")
        .await
        .expect("gina asks");
    ticket_of(&guest_waits);
    // The waiting room holds at most 3 (`--max-waiting-per-meeting`): a fourth is told so.
    let third = join_with(&api, None, "lobby", "Gio", "")
        .await
        .expect("gio asks");
    ticket_of(&third);
    assert_status(
        join_with(&api, None, "lobby", "Gus", "").await,
        Code::ResourceExhausted,
        "waiting room is full",
    );
    let owner = api
        .join(Some(&alice), "lobby", "")
        .await
        .expect("alice joins");
    assert!(owner.waiting.is_none() && owner.role == MeetingRole::Host as i32);
    assert_eq!(
        decide(&api, &alice, "lobby", &[], true, "")
            .await
            .expect("the call succeeds"),
        3
    );
    let bob_in = check(&api, "lobby", &bob_ticket).await.unwrap();
    assert_eq!(bob_in.grant.expect("bob's grant").identity, "bob");
    // Another user may not rejoin with bob's ticket.
    assert_status(
        join_with(&api, Some(&carol), "lobby", "", &bob_ticket).await,
        Code::PermissionDenied,
        "admission_ticket",
    );

    // The waiting room is switched off: a private meeting then refuses guests outright.
    api.meetings()
        .update_meeting(req(
            UpdateMeetingRequest {
                id: "private".into(),
                waiting_room: Some(WaitingRoom::Off as i32),
                ..Default::default()
            },
            Some(&alice),
        ))
        .await
        .expect("update");
    assert_status(
        join_with(&api, None, "private", "Gwen", "").await,
        Code::Unauthenticated,
        "waiting room",
    );

    // Bad fields.
    assert_status(
        check(&api, "private", "bad ticket!").await,
        Code::InvalidArgument,
        "ticket",
    );
    assert_status(
        check(&api, "private", "abcdef").await,
        Code::NotFound,
        "ticket",
    );
    assert_status(check(&api, "lobby", &gail).await, Code::NotFound, "ticket");
    assert_status(
        api.hosts()
            .decide_waiting(req(
                DecideWaitingRequest {
                    meeting_id: "private".into(),
                    ids: vec!["w-1".into()],
                    all: true,
                    admit: true,
                    reason: String::new(),
                },
                Some(&alice),
            ))
            .await,
        Code::InvalidArgument,
        "not both",
    );
    assert_status(
        decide(&api, &alice, "private", &["bad id;"], true, "").await,
        Code::InvalidArgument,
        "ids[0]",
    );
    assert_status(
        decide(&api, &alice, "private", &["w-1"], false, &"x".repeat(201)).await,
        Code::InvalidArgument,
        "reason",
    );
    assert_status(
        api.meetings()
            .create_meeting(req(
                CreateMeetingRequest {
                    id: "bad".into(),
                    waiting_room: 9,
                    ..Default::default()
                },
                Some(&alice),
            ))
            .await,
        Code::InvalidArgument,
        "waiting_room",
    );

    // Admissions and rejections are on the record, newest first.
    let actions = record(&api, &alice, "private").await;
    let summary: Vec<_> = actions
        .iter()
        .map(|a| {
            (
                a.action.as_str(),
                a.by_identity.as_str(),
                a.target_display_name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("reject", "carol", "Gus"), ("admit", "alice", "Gail")]
    );
    assert_eq!(actions[0].detail, "not today");
    assert!(actions.iter().all(|a| a.via == "api" && a.at_ms > 0));
    cp.stop().await;
}

async fn moderation(db: &Database) {
    let cp = ControlPlane::start(db, &[]).await;
    let api = cp.api().await;
    let admin = api.admin().await;
    let alice = api.user(&admin, "alice").await;
    let bob = api.user(&admin, "bob").await;
    let carol = api.user(&admin, "carol").await;
    let dave = api.user(&admin, "dave").await;
    api.register_relay("r1", 100).await;
    api.create_meeting(
        &alice,
        CreateMeetingRequest {
            id: "room".into(),
            ..Default::default()
        },
    )
    .await;
    // The relay reports alice (1, host), bob (2), carol (3, made co-host in the meeting).
    let live = [
        ("room", "alice", MeetingRole::Host),
        ("room", "bob", MeetingRole::Participant),
        ("room", "carol", MeetingRole::Cohost),
    ];
    api.heartbeat_with_roles("r1", &live).await;
    let mute_bob = Action::Mute(MuteAction {
        participant_id: 2,
        media: HostMedia::Audio as i32,
        disallow_unmute: true,
    });

    // Who may act: not a participant; a co-host on a participant, not on a host nor on roles.
    assert_status(
        moderate(&api, &bob, "room", mute_bob.clone()).await,
        Code::PermissionDenied,
        "hosts and co-hosts",
    );
    assert_status(
        moderate(&api, &dave, "room", mute_bob.clone()).await,
        Code::PermissionDenied,
        "hosts and co-hosts",
    );
    assert_eq!(
        moderate(&api, &carol, "room", mute_bob.clone())
            .await
            .expect("the call succeeds"),
        vec!["r1".to_owned()]
    );
    assert_status(
        moderate(
            &api,
            &carol,
            "room",
            Action::Mute(MuteAction {
                participant_id: 1,
                media: HostMedia::Video as i32,
                disallow_unmute: false,
            }),
        )
        .await,
        Code::PermissionDenied,
        "co-host",
    );
    assert_status(
        moderate(
            &api,
            &carol,
            "room",
            Action::SetRole(SetRoleAction {
                participant_id: 2,
                role: MeetingRole::Cohost as i32,
            }),
        )
        .await,
        Code::PermissionDenied,
        "only hosts",
    );
    // Bad fields and unknown participants.
    assert_status(
        api.hosts()
            .moderate_meeting(req(
                ModerateMeetingRequest {
                    meeting_id: "room".into(),
                    action: None,
                },
                Some(&alice),
            ))
            .await,
        Code::InvalidArgument,
        "action",
    );
    assert_status(
        moderate(
            &api,
            &alice,
            "room",
            Action::Mute(MuteAction {
                participant_id: 2,
                media: 7,
                disallow_unmute: false,
            }),
        )
        .await,
        Code::InvalidArgument,
        "mute.media",
    );
    assert_status(
        moderate(
            &api,
            &alice,
            "room",
            Action::LowerHand(LowerHandAction { participant_id: 99 }),
        )
        .await,
        Code::NotFound,
        "no participant 99",
    );

    // The relay gets the co-host's mute with its next heartbeat, until it says it was done.
    let response = api.heartbeat_with_roles("r1", &live).await;
    assert_eq!(response.commands.len(), 1, "{:?}", response.commands);
    let command = &response.commands[0];
    let sent = command.action.as_ref().expect("an action");
    assert_eq!(sent.meeting_id, "room");
    assert_eq!(sent.action, Some(mute_bob.clone()));
    let again = api.heartbeat_with_roles("r1", &live).await;
    assert_eq!(again.commands.len(), 1, "sent again until done");
    let done = api
        .heartbeat_request("r1", &live, Vec::new(), vec![command.id.clone()])
        .await
        .expect("heartbeat");
    assert!(done.commands.is_empty());

    // A lock holds at JoinMeeting (not for hosts, nor for those with a seat).
    assert_eq!(
        moderate(
            &api,
            &alice,
            "room",
            Action::Lock(LockAction { locked: true })
        )
        .await
        .expect("the call succeeds"),
        vec!["r1".to_owned()]
    );
    assert!(get(&api, &alice, "room").await.locked);
    assert_status(
        api.join(Some(&dave), "room", "").await,
        Code::FailedPrecondition,
        "locked",
    );
    api.join(Some(&alice), "room", "")
        .await
        .expect("hosts get in");

    // A removal with a ban keeps bob out, lock or not.
    moderate(
        &api,
        &alice,
        "room",
        Action::Remove(RemoveAction {
            participant_id: 2,
            ban: true,
            reason: "spam".into(),
        }),
    )
    .await
    .expect("remove bob");
    let unlock = api
        .meetings()
        .update_meeting(req(
            UpdateMeetingRequest {
                id: "room".into(),
                locked: Some(false),
                ..Default::default()
            },
            Some(&alice),
        ))
        .await
        .expect("unlock")
        .into_inner();
    assert!(!unlock.locked);
    assert_status(
        api.join(Some(&bob), "room", "").await,
        Code::PermissionDenied,
        "removed",
    );
    api.join(Some(&dave), "room", "")
        .await
        .expect("unlocked: dave gets in");

    // What a relay reports hosts did in the meeting: kept, and the lock and ban hold here.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let reported = |action: &str, target: &str, ban: bool, locked: bool, at_ms| HostActionRecord {
        at_ms,
        meeting_id: "room".into(),
        by_identity: "carol".into(),
        by_display_name: "Carol".into(),
        action: action.into(),
        target_identity: target.into(),
        target_display_name: target.to_uppercase(),
        detail: if ban { "banned".into() } else { String::new() },
        via: "meeting".into(),
        ban,
        locked,
    };
    api.heartbeat_request(
        "r1",
        &live,
        vec![
            reported("remove", "dave", true, false, now_ms + 1),
            reported("lock", "", false, true, now_ms + 2),
        ],
        Vec::new(),
    )
    .await
    .expect("heartbeat with host actions");
    assert!(get(&api, &alice, "room").await.locked);
    assert_status(
        api.join(Some(&dave), "room", "").await,
        Code::PermissionDenied,
        "removed",
    );
    // A bad report is refused whole, and nothing of it is kept.
    let mut bad = reported("mute", "bob", false, false, now_ms);
    bad.by_identity = String::new();
    assert_status(
        api.heartbeat_request("r1", &live, vec![bad], Vec::new())
            .await,
        Code::InvalidArgument,
        "host_actions[0].by_identity",
    );

    // Reports about a meeting that is gone (deleted since) are dropped; the heartbeat goes on.
    let mut gone = reported("remove", "dave", true, false, now_ms);
    gone.meeting_id = "gone".into();
    let mut gone_lock = reported("lock", "", false, true, now_ms);
    gone_lock.meeting_id = "gone".into();
    api.heartbeat_request("r1", &live, vec![gone, gone_lock], Vec::new())
        .await
        .expect("a heartbeat about a meeting that is gone");

    // The record, newest first: the relay's reports, then the API's actions.
    let actions = record(&api, &alice, "room").await;
    let summary: Vec<_> = actions
        .iter()
        .map(|a| (a.action.as_str(), a.by_identity.as_str(), a.via.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("lock", "carol", "meeting"),
            ("remove", "carol", "meeting"),
            ("lock", "alice", "api"),
            ("remove", "alice", "api"),
            ("lock", "alice", "api"),
            ("mute", "carol", "api"),
        ]
    );
    let api_mute = actions.last().unwrap();
    assert_eq!(api_mute.target_identity, "bob");
    assert_eq!(api_mute.detail, "audio, may not unmute");
    assert_eq!(actions[2].detail, "unlocked");
    assert_eq!(actions[3].detail, "banned: spam");
    // Pages, and who may read it.
    let page = api
        .hosts()
        .list_host_actions(req(
            ListHostActionsRequest {
                meeting_id: "room".into(),
                page_size: 2,
                before_ms: 0,
            },
            Some(&carol),
        ))
        .await
        .expect("a co-host reads the record")
        .into_inner()
        .actions;
    assert_eq!(page.len(), 2);
    let next = api
        .hosts()
        .list_host_actions(req(
            ListHostActionsRequest {
                meeting_id: "room".into(),
                page_size: 500,
                before_ms: page[1].at_ms,
            },
            Some(&alice),
        ))
        .await
        .unwrap()
        .into_inner()
        .actions;
    assert_eq!(next.len(), 4);
    assert_status(
        api.hosts()
            .list_host_actions(req(
                ListHostActionsRequest {
                    meeting_id: "room".into(),
                    ..Default::default()
                },
                Some(&bob),
            ))
            .await,
        Code::PermissionDenied,
        "hosts",
    );
    assert_status(
        api.hosts()
            .list_host_actions(req(
                ListHostActionsRequest {
                    meeting_id: "room".into(),
                    page_size: 501,
                    before_ms: 0,
                },
                Some(&alice),
            ))
            .await,
        Code::InvalidArgument,
        "page_size",
    );

    // Ending through the API is on the record too; an ended meeting takes no more actions.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    api.meetings()
        .end_meeting(req(EndMeetingRequest { id: "room".into() }, Some(&alice)))
        .await
        .expect("end");
    assert_eq!(record(&api, &alice, "room").await[0].action, "end");
    assert_status(
        moderate(&api, &alice, "room", mute_bob).await,
        Code::FailedPrecondition,
        "ended",
    );
    cp.stop().await;
}
