//! Host actions the control plane takes itself (through the API): recorded, and sent to the
//! relays with their heartbeats. A leaf: the meeting and host services both call it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use prost::Message;
use tonic::Status;
use videocall_control_api::v1::moderate_meeting_request::Action;
use videocall_control_api::v1::{LockAction, ModerateMeetingRequest};

use super::{store_status, ControlPlane};
use crate::auth::Principal;
use crate::moderation;
use crate::store::{now_ms, HostActionEntry};

/// A record of `caller` taking `action` through the API.
pub async fn entry(
    cp: &ControlPlane,
    meeting_id: &str,
    caller: &Principal,
    action: &str,
    target: (&str, &str),
    detail: String,
) -> Result<HostActionEntry, Status> {
    let by_display_name = match cp.store.user(&caller.name).await.map_err(store_status)? {
        Some(user) => user.display_name,
        None => caller.name.clone(),
    };
    Ok(HostActionEntry {
        at_ms: now_ms(),
        meeting_id: meeting_id.to_owned(),
        by_identity: caller.name.clone(),
        by_display_name,
        action: action.to_owned(),
        target_identity: target.0.to_owned(),
        target_display_name: target.1.to_owned(),
        detail,
        via: "api".into(),
    })
}

/// Sends `action` to `relay_id`, or to one relay the meeting is on (it shares the action
/// with the meeting's other relays over the bus); returns where it went.
pub async fn dispatch(
    cp: &ControlPlane,
    meeting_id: &str,
    action: Action,
    relay_id: Option<String>,
) -> Result<Vec<String>, Status> {
    let relay_id = match relay_id {
        Some(relay) => Some(relay),
        None => cp
            .store
            .meeting_hosts(&[meeting_id.to_owned()], cp.fresh_since_ms())
            .await
            .map_err(store_status)?
            .into_iter()
            .max_by_key(|(_, _, n)| *n)
            .map(|(_, relay, _)| relay),
    };
    let Some(relay_id) = relay_id else {
        return Ok(Vec::new());
    };
    let encoded = ModerateMeetingRequest {
        meeting_id: meeting_id.to_owned(),
        action: Some(action),
    }
    .encode_to_vec();
    cp.store
        .queue_command(&relay_id, meeting_id, &STANDARD.encode(encoded), now_ms())
        .await
        .map_err(store_status)?;
    Ok(vec![relay_id])
}

/// Locks or unlocks meeting `meeting_id` for `caller` (also UpdateMeeting's `locked`):
/// stored, recorded, and carried out by the relays.
pub async fn lock(
    cp: &ControlPlane,
    meeting_id: &str,
    locked: bool,
    caller: &Principal,
) -> Result<Vec<String>, Status> {
    cp.store
        .set_locked(meeting_id, locked)
        .await
        .map_err(store_status)?;
    let action = Action::Lock(LockAction { locked });
    let record = entry(
        cp,
        meeting_id,
        caller,
        moderation::label(&action),
        ("", ""),
        moderation::detail(&action),
    )
    .await?;
    cp.store
        .record_host_actions(&[record])
        .await
        .map_err(store_status)?;
    tracing::info!(meeting = %meeting_id, by = %caller.name, locked, "meeting lock changed through the API");
    dispatch(cp, meeting_id, action, None).await
}
