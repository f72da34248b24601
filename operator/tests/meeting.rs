//! The Meeting reconciler against a fake API server and a real control plane: the meeting
//! is created with a join URL in status, a restarted operator does not create it twice, an
//! invalid spec and a missing RelayPool get a condition and an Event, and deleting the
//! object ends the meeting in the control plane first (finalizer); a meeting waits for its start
//! time and ends at its end time.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use videocall_operator::controller::meeting::{reconcile, FINALIZER};
use videocall_operator::crd::Meeting;

const MEETINGS: &str = "/apis/videocall.dev/v1alpha1/namespaces/calls/meetings";
const POOL: &str = "/apis/videocall.dev/v1alpha1/namespaces/calls/relaypools/edge";

/// The object as the fake API server holds it now.
fn stored(api: &std::sync::Mutex<FakeApi>, name: &str) -> Meeting {
    let value = api.lock().unwrap().objects[&format!("{MEETINGS}/{name}")].clone();
    serde_json::from_value(value).expect("a Meeting")
}

fn event_reasons(api: &std::sync::Mutex<FakeApi>) -> Vec<String> {
    api.lock()
        .unwrap()
        .requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/events"))
        .filter_map(|r| r.body["reason"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_is_created_kept_once_and_ended_on_delete() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path()).await;
    let url = format!("http://{}", cp.addr);
    let standup = meeting("standup", "edge");
    let objects = HashMap::from([
        (POOL.to_owned(), serde_json::to_value(pool(&url)).unwrap()),
        (
            format!("{MEETINGS}/standup"),
            serde_json::to_value(&standup).unwrap(),
        ),
    ]);
    let (kube, api) = fake_kube(objects);
    let ctx = context(kube.clone(), &url);

    // The finalizer goes on first, then the meeting is created.
    reconcile(Arc::new(standup), ctx.clone())
        .await
        .expect("reconcile");
    let with_finalizer = stored(&api, "standup");
    assert_eq!(
        with_finalizer
            .metadata
            .finalizers
            .clone()
            .unwrap_or_default(),
        vec![FINALIZER.to_owned()]
    );
    reconcile(Arc::new(with_finalizer), ctx.clone())
        .await
        .expect("reconcile");
    let created = ctx
        .control_plane
        .meeting("calls.standup")
        .await
        .unwrap()
        .expect("meeting in the control plane");
    assert_eq!(
        (
            created.title.as_str(),
            created.max_participants,
            created.guests_allowed
        ),
        ("Standup", 10, true)
    );
    let status = stored(&api, "standup").status.expect("status");
    assert_eq!(
        status.join_url.as_deref(),
        Some("https://meet.example.test/meeting/guest/calls.standup")
    );
    assert_eq!(status.conditions[0].status, "True");

    // A restarted operator (fresh context) reconciles without creating it again.
    let restarted = context(kube.clone(), &url);
    reconcile(Arc::new(stored(&api, "standup")), restarted)
        .await
        .expect("reconcile");
    let created_events = event_reasons(&api)
        .iter()
        .filter(|r| *r == "Created")
        .count();
    assert_eq!(created_events, 1, "no duplicate work after a restart");

    // A spec change reaches the control plane; end-to-end encryption too.
    let mut changed = stored(&api, "standup");
    changed.spec.max_participants = 20;
    changed.spec.e2ee_required = true;
    reconcile(Arc::new(changed), ctx.clone())
        .await
        .expect("reconcile");
    let updated = ctx
        .control_plane
        .meeting("calls.standup")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.max_participants, updated.e2ee_required),
        (20, true)
    );

    // Delete: the finalizer ends and removes the meeting, then lets the object go.
    let mut deleting = stored(&api, "standup");
    deleting.metadata.deletion_timestamp = Some(videocall_operator::controller::now());
    reconcile(Arc::new(deleting), ctx.clone())
        .await
        .expect("reconcile");
    assert!(
        ctx.control_plane
            .meeting("calls.standup")
            .await
            .unwrap()
            .is_none(),
        "ended and removed"
    );
    assert!(
        stored(&api, "standup")
            .metadata
            .finalizers
            .unwrap_or_default()
            .is_empty(),
        "finalizer released"
    );
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_meetings_get_a_condition_and_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path()).await;
    let url = format!("http://{}", cp.addr);
    let mut backwards = meeting("backwards", "edge");
    backwards.metadata.finalizers = Some(vec![FINALIZER.into()]);
    backwards.spec.start_time = Some(videocall_operator::controller::now());
    backwards.spec.end_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(3600),
    ));
    let mut orphan = meeting("orphan", "no-such-pool");
    orphan.metadata.finalizers = Some(vec![FINALIZER.into()]);
    let objects = HashMap::from([
        (POOL.to_owned(), serde_json::to_value(pool(&url)).unwrap()),
        (
            format!("{MEETINGS}/backwards"),
            serde_json::to_value(&backwards).unwrap(),
        ),
        (
            format!("{MEETINGS}/orphan"),
            serde_json::to_value(&orphan).unwrap(),
        ),
    ]);
    let (kube, api) = fake_kube(objects);
    let ctx = context(kube, &url);

    reconcile(Arc::new(backwards), ctx.clone())
        .await
        .expect("an invalid spec is not an error to retry fast");
    reconcile(Arc::new(orphan), ctx.clone())
        .await
        .expect("a missing pool is reported, not thrown");
    for (name, reason) in [
        ("backwards", "InvalidSpec"),
        ("orphan", "RelayPoolNotFound"),
    ] {
        let status = stored(&api, name).status.expect("status");
        let ready = &status.conditions[0];
        assert_eq!(
            (
                ready.type_.as_str(),
                ready.status.as_str(),
                ready.reason.as_str()
            ),
            ("Ready", "False", reason)
        );
        assert!(
            event_reasons(&api).iter().any(|r| r == reason),
            "{reason} event"
        );
    }
    assert!(ctx
        .control_plane
        .meeting("calls.backwards")
        .await
        .unwrap()
        .is_none());
    assert!(ctx
        .control_plane
        .meeting("calls.orphan")
        .await
        .unwrap()
        .is_none());
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_waits_for_its_start_and_ends_at_its_end_time() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::{SignedDuration, Timestamp};
    use videocall_operator::crd::MeetingPhase;

    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path()).await;
    let url = format!("http://{}", cp.addr);
    let mut later = meeting("later", "edge");
    later.metadata.finalizers = Some(vec![FINALIZER.into()]);
    later.spec.start_time = Some(Time(Timestamp::now() + SignedDuration::from_secs(3600)));
    let mut short = meeting("short", "edge");
    short.metadata.finalizers = Some(vec![FINALIZER.into()]);
    short.spec.end_time = Some(Time(Timestamp::now() + SignedDuration::from_millis(1500)));
    let objects = HashMap::from([
        (POOL.to_owned(), serde_json::to_value(pool(&url)).unwrap()),
        (
            format!("{MEETINGS}/later"),
            serde_json::to_value(&later).unwrap(),
        ),
        (
            format!("{MEETINGS}/short"),
            serde_json::to_value(&short).unwrap(),
        ),
    ]);
    let (kube, api) = fake_kube(objects);
    let ctx = context(kube, &url);

    // Not yet open: Pending, nothing in the control plane, looked at again before the start.
    reconcile(Arc::new(later), ctx.clone()).await.unwrap();
    assert_eq!(
        stored(&api, "later").status.unwrap().phase,
        MeetingPhase::Pending
    );
    assert!(ctx
        .control_plane
        .meeting("calls.later")
        .await
        .unwrap()
        .is_none());

    // Open until its end time, requeued for it; then ended in the control plane.
    let action = reconcile(Arc::new(short), ctx.clone()).await.unwrap();
    assert_eq!(
        stored(&api, "short").status.unwrap().phase,
        MeetingPhase::Ready
    );
    assert!(
        format!("{action:?}").contains("requeue_after: Some(1."),
        "requeued at the end time: {action:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    reconcile(Arc::new(stored(&api, "short")), ctx.clone())
        .await
        .unwrap();
    assert_eq!(
        stored(&api, "short").status.unwrap().phase,
        MeetingPhase::Ended
    );
    let ended = ctx
        .control_plane
        .meeting("calls.short")
        .await
        .unwrap()
        .expect("still known");
    assert_eq!(
        ended.state,
        videocall_control_api::v1::MeetingState::Ended as i32
    );
    assert!(event_reasons(&api).iter().any(|r| r == "Ended"));
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_room_and_lock_reach_the_control_plane_and_status_counts_the_queue() {
    use videocall_control_api::v1 as api;
    use videocall_operator::crd::MeetingWaitingRoom;

    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path()).await;
    let url = format!("http://{}", cp.addr);
    let mut lobby = meeting("lobby", "edge");
    lobby.spec.waiting_room = Some(MeetingWaitingRoom::Everyone);
    let objects = HashMap::from([
        (POOL.to_owned(), serde_json::to_value(pool(&url)).unwrap()),
        (
            format!("{MEETINGS}/lobby"),
            serde_json::to_value(&lobby).unwrap(),
        ),
    ]);
    let (kube, api) = fake_kube(objects);
    let ctx = context(kube.clone(), &url);
    reconcile(Arc::new(lobby), ctx.clone())
        .await
        .expect("reconcile");
    reconcile(Arc::new(stored(&api, "lobby")), ctx.clone())
        .await
        .expect("reconcile");
    let created = ctx
        .control_plane
        .meeting("calls.lobby")
        .await
        .unwrap()
        .expect("created");
    assert_eq!(created.waiting_room, api::WaitingRoom::Everyone as i32);
    assert!(!created.locked);

    // A guest asks to join: it waits, and the status counts it.
    let mut meetings = api::meeting_service_client::MeetingServiceClient::connect(url.clone())
        .await
        .unwrap();
    let asked = meetings
        .join_meeting(api::JoinMeetingRequest {
            meeting_id: "calls.lobby".into(),
            display_name: "Gail".into(),
            ..Default::default()
        })
        .await
        .expect("gail asks")
        .into_inner();
    assert!(asked.waiting.is_some());
    reconcile(Arc::new(stored(&api, "lobby")), ctx.clone())
        .await
        .expect("reconcile");
    let status = stored(&api, "lobby").status.expect("status");
    assert_eq!((status.waiting, status.locked), (1, false));

    // The spec locks it.
    let mut locked = stored(&api, "lobby");
    locked.spec.locked = Some(true);
    reconcile(Arc::new(locked), ctx.clone())
        .await
        .expect("reconcile");
    assert!(
        ctx.control_plane
            .meeting("calls.lobby")
            .await
            .unwrap()
            .unwrap()
            .locked
    );
    let status = stored(&api, "lobby").status.expect("status");
    assert_eq!((status.locked, status.applied_locked), (true, Some(true)));

    // A host unlocks it in the meeting (here: through the API): the operator leaves it be.
    ctx.control_plane
        .update_meeting(api::UpdateMeetingRequest {
            id: "calls.lobby".into(),
            locked: Some(false),
            ..Default::default()
        })
        .await
        .expect("unlock");
    reconcile(Arc::new(stored(&api, "lobby")), ctx.clone())
        .await
        .expect("reconcile");
    assert!(
        !ctx.control_plane
            .meeting("calls.lobby")
            .await
            .unwrap()
            .unwrap()
            .locked
    );
    assert!(!stored(&api, "lobby").status.expect("status").locked);
    cp.stop().await;
}
