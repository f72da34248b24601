//! Meeting → a meeting in the control plane. Writes the join URL and live participants into
//! status, ends the meeting at its end time, and (finalizer) ends and removes it from the
//! control plane before the object goes away.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Api, ResourceExt};
use videocall_control_api::v1 as api;

use super::{apply_status, condition, now, Context, Error};
use crate::crd::{
    Meeting, MeetingAccess, MeetingPhase, MeetingStatus, MeetingWaitingRoom, RelayPool,
};

/// The finalizer that ends the meeting in the control plane on delete.
pub const FINALIZER: &str = "videocall.dev/end-meeting";
/// How often a meeting's live figures are refreshed.
pub const RESYNC: Duration = Duration::from_secs(15);
/// How often a meeting with a spec problem is looked at again.
const INVALID_RETRY: Duration = Duration::from_secs(300);

/// The control-plane id of a Meeting object: `<namespace>.<name>` (unique, URL-safe).
pub fn meeting_id(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// What is wrong with a spec the schema cannot catch, if anything.
pub fn spec_problem(meeting: &Meeting) -> Option<String> {
    let spec = &meeting.spec;
    if let (Some(start), Some(end)) = (&spec.start_time, &spec.end_time) {
        if end.0 <= start.0 {
            return Some("endTime must be after startTime".into());
        }
    }
    for (field, users) in [
        ("allowedUsers", &spec.allowed_users),
        ("hosts", &spec.hosts),
    ] {
        if let Some(user) = users
            .iter()
            .find(|u| videocall_protocol::ids::validate_user(u).is_err())
        {
            return Some(format!("{field}: {user:?} is not a valid user name"));
        }
    }
    if spec.access == MeetingAccess::Private
        && spec.guests_allowed
        && spec.waiting_room == Some(MeetingWaitingRoom::Off)
    {
        return Some(
            "a Private meeting admits guests only through its waiting room: waitingRoom is Off"
                .into(),
        );
    }
    None
}

/// Reconciles one Meeting (through the finalizer helper). A failure is written into its
/// status (`Ready` false, with the reason and message) and published as a Warning Event
/// before it is retried, so `kubectl describe meeting` says what is wrong.
pub async fn reconcile(meeting: Arc<Meeting>, ctx: Arc<Context>) -> Result<Action, Error> {
    match reconcile_meeting(meeting.clone(), &ctx).await {
        Ok(action) => Ok(action),
        Err(error) => {
            report_failure(&meeting, &ctx, &error).await;
            Err(error)
        }
    }
}

async fn report_failure(meeting: &Meeting, ctx: &Context, error: &Error) {
    let message = error.to_string();
    ctx.event(meeting, EventType::Warning, error.reason(), message.clone())
        .await;
    let Some(namespace) = meeting.namespace() else {
        return;
    };
    let api: Api<Meeting> = Api::namespaced(ctx.client.clone(), &namespace);
    let status = meeting.status.clone().unwrap_or_default();
    if let Err(error) = write_status(&api, meeting, status, false, error.reason(), message).await {
        tracing::warn!(meeting = %meeting.name_any(), %error, "could not write the failure into the status");
    }
}

async fn reconcile_meeting(meeting: Arc<Meeting>, ctx: &Arc<Context>) -> Result<Action, Error> {
    let namespace = meeting
        .namespace()
        .ok_or_else(|| Error::NoNamespace(format!("Meeting {}", meeting.name_any())))?;
    let meetings: Api<Meeting> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&meetings, FINALIZER, meeting, |event| async {
        match event {
            Finalizer::Apply(meeting) => apply(meeting, ctx.clone()).await,
            Finalizer::Cleanup(meeting) => cleanup(meeting, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

async fn cleanup(meeting: Arc<Meeting>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = meeting.namespace().unwrap_or_default();
    let id = meeting_id(&namespace, &meeting.name_any());
    ctx.control_plane.delete_meeting(&id).await?;
    ctx.event(
        &*meeting,
        EventType::Normal,
        "Ended",
        format!("meeting {id} ended and removed from the control plane"),
    )
    .await;
    Ok(Action::await_change())
}

async fn apply(meeting: Arc<Meeting>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = meeting.name_any();
    let namespace = meeting.namespace().unwrap_or_default();
    let id = meeting_id(&namespace, &name);
    let api: Api<Meeting> = Api::namespaced(ctx.client.clone(), &namespace);
    let previous = meeting.status.clone().unwrap_or_default();

    if let Some(problem) = spec_problem(&meeting) {
        ctx.event(
            &*meeting,
            EventType::Warning,
            "InvalidSpec",
            problem.clone(),
        )
        .await;
        write_status(
            &api,
            &meeting,
            MeetingStatus {
                phase: MeetingPhase::Pending,
                ..previous.clone()
            },
            false,
            "InvalidSpec",
            problem,
        )
        .await?;
        return Ok(Action::requeue(INVALID_RETRY));
    }
    let pools: Api<RelayPool> = Api::namespaced(ctx.client.clone(), &namespace);
    if pools.get_opt(&meeting.spec.relay_pool).await?.is_none() {
        let message = format!(
            "RelayPool {} not found in {namespace}",
            meeting.spec.relay_pool
        );
        ctx.event(
            &*meeting,
            EventType::Warning,
            "RelayPoolNotFound",
            message.clone(),
        )
        .await;
        write_status(
            &api,
            &meeting,
            MeetingStatus {
                phase: MeetingPhase::Pending,
                ..previous.clone()
            },
            false,
            "RelayPoolNotFound",
            message,
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    }
    let now = k8s_openapi::jiff::Timestamp::now();
    if let Some(start) = &meeting.spec.start_time {
        if start.0 > now {
            let wait = Duration::try_from(start.0.duration_since(now)).unwrap_or(RESYNC);
            write_status(
                &api,
                &meeting,
                MeetingStatus {
                    phase: MeetingPhase::Pending,
                    ..previous.clone()
                },
                false,
                "NotStarted",
                format!("opens at {}", start.0),
            )
            .await?;
            return Ok(Action::requeue(wait.min(RESYNC * 4)));
        }
    }

    let existing = ctx.control_plane.meeting(&id).await?;
    let ended_by_time = meeting
        .spec
        .end_time
        .as_ref()
        .is_some_and(|end| end.0 <= now);
    let current = match existing {
        None if ended_by_time || previous.phase == MeetingPhase::Ended => None,
        None => {
            let created = ctx
                .control_plane
                .create_meeting(create_request(&meeting, &id))
                .await?;
            ctx.event(
                &*meeting,
                EventType::Normal,
                "Created",
                format!("meeting {id} created in the control plane"),
            )
            .await;
            Some(created)
        }
        Some(existing) if existing.state == api::MeetingState::Ended as i32 => Some(existing),
        Some(_) if ended_by_time => {
            let ended = ctx.control_plane.end_meeting(&id).await?;
            ctx.event(
                &*meeting,
                EventType::Normal,
                "Ended",
                format!("meeting {id} reached its end time"),
            )
            .await;
            Some(ended)
        }
        Some(existing) => {
            let mut wanted = update_request(&meeting, &id);
            wanted.locked = lock_to_apply(&meeting);
            if differs(&existing, &wanted) {
                Some(ctx.control_plane.update_meeting(wanted).await?)
            } else {
                Some(existing)
            }
        }
    };
    let status = match current {
        Some(m) => MeetingStatus {
            phase: match api::MeetingState::try_from(m.state) {
                Ok(api::MeetingState::Live) => MeetingPhase::Live,
                Ok(api::MeetingState::Ended) => MeetingPhase::Ended,
                _ => MeetingPhase::Ready,
            },
            meeting_id: Some(id.clone()),
            participants: i32::try_from(m.participants).unwrap_or(i32::MAX),
            relays: m.relay_ids,
            waiting: i32::try_from(m.waiting).unwrap_or(i32::MAX),
            locked: m.locked,
            // Applied now, or equal to what was applied before.
            applied_locked: meeting.spec.locked,
            join_url: Some(format!(
                "{}/meeting/guest/{id}",
                ctx.public_url.trim_end_matches('/')
            )),
            ..previous.clone()
        },
        None => MeetingStatus {
            phase: MeetingPhase::Ended,
            meeting_id: Some(id.clone()),
            participants: 0,
            relays: Vec::new(),
            ..previous.clone()
        },
    };
    let (reason, message) = match status.phase {
        MeetingPhase::Ended => ("Ended", "the meeting has ended".to_owned()),
        _ => ("Open", format!("meeting {id} is open")),
    };
    let ended = status.phase == MeetingPhase::Ended;
    let ready = matches!(status.phase, MeetingPhase::Ready | MeetingPhase::Live);
    write_status(&api, &meeting, status, ready, reason, message).await?;
    if ended {
        return Ok(Action::await_change());
    }
    let until_end = meeting
        .spec
        .end_time
        .as_ref()
        .and_then(|end| Duration::try_from(end.0.duration_since(now)).ok())
        .unwrap_or(RESYNC);
    Ok(Action::requeue(until_end.min(RESYNC)))
}

/// Writes `status` with its `Ready` condition: `ready`, for `reason`.
async fn write_status(
    api: &Api<Meeting>,
    meeting: &Meeting,
    mut status: MeetingStatus,
    ready: bool,
    reason: &str,
    message: String,
) -> Result<(), Error> {
    status.conditions = vec![condition(
        &status.conditions,
        "Ready",
        ready,
        reason,
        message,
        meeting.metadata.generation,
        &now(),
    )];
    status.observed_generation = meeting.metadata.generation;
    apply_status(api, &meeting.name_any(), &status).await?;
    Ok(())
}

fn waiting_room(meeting: &Meeting) -> api::WaitingRoom {
    match meeting.spec.waiting_room {
        None => api::WaitingRoom::Unspecified,
        Some(MeetingWaitingRoom::Off) => api::WaitingRoom::Off,
        Some(MeetingWaitingRoom::Guests) => api::WaitingRoom::Guests,
        Some(MeetingWaitingRoom::Everyone) => api::WaitingRoom::Everyone,
    }
}

fn access(meeting: &Meeting) -> api::Access {
    match meeting.spec.access {
        MeetingAccess::Public => api::Access::Public,
        MeetingAccess::Private => api::Access::Private,
    }
}

/// The CreateMeeting call for `meeting`.
pub fn create_request(meeting: &Meeting, id: &str) -> api::CreateMeetingRequest {
    let spec = &meeting.spec;
    api::CreateMeetingRequest {
        id: id.to_owned(),
        title: spec.title.clone(),
        access: access(meeting) as i32,
        allowed_users: spec.allowed_users.clone(),
        hosts: spec.hosts.clone(),
        password: String::new(),
        guests_allowed: spec.guests_allowed,
        max_participants: u32::try_from(spec.max_participants).unwrap_or(1),
        e2ee_required: spec.e2ee_required,
        waiting_room: waiting_room(meeting) as i32,
        locked: spec.locked.unwrap_or(false),
    }
}

/// The UpdateMeeting call that makes the control plane match `meeting`.
pub fn update_request(meeting: &Meeting, id: &str) -> api::UpdateMeetingRequest {
    let spec = &meeting.spec;
    api::UpdateMeetingRequest {
        id: id.to_owned(),
        title: Some(spec.title.clone()),
        access: Some(access(meeting) as i32),
        allowed_users: Some(api::AllowedUsers {
            users: spec.allowed_users.clone(),
        }),
        hosts: Some(api::Hosts {
            users: spec.hosts.clone(),
        }),
        password: None,
        guests_allowed: Some(spec.guests_allowed),
        max_participants: Some(u32::try_from(spec.max_participants).unwrap_or(1)),
        e2ee_required: Some(spec.e2ee_required),
        waiting_room: Some(waiting_room(meeting) as i32),
        // Applied only when the spec's value changes (`lock_to_apply`).
        locked: None,
    }
}

/// The lock to set in the control plane: the spec's, when it differs from the one last
/// applied (hosts may lock and unlock in between; the operator does not undo that).
pub fn lock_to_apply(meeting: &Meeting) -> Option<bool> {
    let applied = meeting.status.as_ref().and_then(|s| s.applied_locked);
    meeting
        .spec
        .locked
        .filter(|&locked| Some(locked) != applied)
}

/// Whether the control plane's meeting differs from what `wanted` sets.
pub fn differs(existing: &api::Meeting, wanted: &api::UpdateMeetingRequest) -> bool {
    // The control plane keeps user lists sorted and without repeats.
    let as_kept = |users: Option<&Vec<String>>| {
        let mut users = users.cloned().unwrap_or_default();
        users.sort();
        users.dedup();
        users
    };
    let allowed = as_kept(wanted.allowed_users.as_ref().map(|a| &a.users));
    let hosts = as_kept(wanted.hosts.as_ref().map(|h| &h.users));
    wanted.title.as_deref() != Some(existing.title.as_str())
        || wanted.access != Some(existing.access)
        || allowed != existing.allowed_users
        || hosts != existing.hosts
        || wanted.guests_allowed != Some(existing.guests_allowed)
        || wanted.max_participants != Some(existing.max_participants)
        || wanted.e2ee_required != Some(existing.e2ee_required)
        || wanted
            .waiting_room
            .is_some_and(|w| w != existing.waiting_room)
        || wanted.locked.is_some_and(|l| l != existing.locked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::MeetingSpec;

    fn meeting(change: impl FnOnce(&mut MeetingSpec)) -> Meeting {
        let mut spec = MeetingSpec {
            title: "Standup".into(),
            relay_pool: "edge".into(),
            access: MeetingAccess::Public,
            allowed_users: Vec::new(),
            hosts: Vec::new(),
            guests_allowed: true,
            waiting_room: None,
            locked: None,
            max_participants: 10,
            e2ee_required: false,
            start_time: None,
            end_time: None,
        };
        change(&mut spec);
        Meeting::new("standup", spec)
    }

    #[test]
    fn a_sound_spec_has_no_problem() {
        assert_eq!(spec_problem(&meeting(|_| {})), None);
    }

    #[test]
    fn specs_the_schema_cannot_refuse_are_named() {
        type Change = fn(&mut MeetingSpec);
        let cases: [(Change, &str); 3] = [
            (|s| s.allowed_users = vec!["not ok".into()], "allowedUsers"),
            (|s| s.hosts = vec!["no/slash".into()], "hosts"),
            (
                |s| {
                    s.access = MeetingAccess::Private;
                    s.guests_allowed = true;
                    s.waiting_room = Some(MeetingWaitingRoom::Off);
                },
                "only through its waiting room",
            ),
        ];
        for (change, needle) in cases {
            let problem = spec_problem(&meeting(change));
            assert!(
                problem.as_deref().is_some_and(|p| p.contains(needle)),
                "{needle}: {problem:?}"
            );
        }
    }

    #[test]
    fn the_hosts_of_a_meeting_reach_the_control_plane_and_a_change_is_seen() {
        let hosted = meeting(|s| s.hosts = vec!["carol".into()]);
        assert_eq!(
            create_request(&hosted, "calls.standup").hosts,
            vec!["carol"]
        );
        let wanted = update_request(&hosted, "calls.standup");
        let mut existing = api::Meeting {
            title: "Standup".into(),
            access: api::Access::Public as i32,
            guests_allowed: true,
            max_participants: 10,
            hosts: vec!["carol".into()],
            ..Default::default()
        };
        assert!(!differs(&existing, &wanted));
        existing.hosts = vec!["bob".into()];
        assert!(differs(&existing, &wanted));
    }

    #[test]
    fn a_private_meeting_takes_guests_through_its_waiting_room() {
        let private = |s: &mut MeetingSpec| s.access = MeetingAccess::Private;
        assert_eq!(spec_problem(&meeting(private)), None);
        let everyone = meeting(|s| {
            private(s);
            s.waiting_room = Some(MeetingWaitingRoom::Everyone);
        });
        assert_eq!(
            create_request(&everyone, "calls.standup").waiting_room,
            api::WaitingRoom::Everyone as i32
        );
        let wanted = update_request(&everyone, "calls.standup");
        let existing = api::Meeting {
            title: "Standup".into(),
            access: api::Access::Private as i32,
            guests_allowed: true,
            max_participants: 10,
            ..Default::default()
        };
        assert!(differs(&existing, &wanted), "the waiting room changed");
        let same = api::Meeting {
            waiting_room: api::WaitingRoom::Everyone as i32,
            ..existing
        };
        assert!(!differs(&same, &wanted));
    }

    #[test]
    fn the_spec_lock_is_applied_when_it_changes_and_hosts_may_change_it_between() {
        let unset = meeting(|_| {});
        assert_eq!(lock_to_apply(&unset), None, "left to the hosts");
        let mut locked = meeting(|s| s.locked = Some(true));
        assert!(create_request(&locked, "calls.standup").locked);
        assert_eq!(lock_to_apply(&locked), Some(true));
        locked.status = Some(MeetingStatus {
            applied_locked: Some(true),
            // A host unlocked it in the meeting since: the operator leaves that be.
            locked: false,
            ..Default::default()
        });
        assert_eq!(lock_to_apply(&locked), None);
        locked.spec.locked = Some(false);
        assert_eq!(lock_to_apply(&locked), Some(false), "the spec changed");
    }
}
