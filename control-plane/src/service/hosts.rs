//! `HostService`: the waiting room's queue and decisions, host actions through the API
//! (carried to the relays with their heartbeats), and the record of what hosts did.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use videocall_control_api::v1::host_service_server::HostService;
use videocall_control_api::v1::moderate_meeting_request::Action;
use videocall_control_api::v1::*;
use videocall_token::Role;

use super::access::may_manage;
use super::host_log::{dispatch, entry};
use super::{store_status, ControlPlane};
use crate::auth::{authenticate, require, Principal};
use crate::moderation::{self, ModerationError};
use crate::store::{now_ms, HostActionEntry, MeetingRecord};
use crate::validate;

/// Largest page of ListHostActions.
const MAX_ACTIONS_PAGE: u32 = 500;
/// Page size when none is asked for.
const DEFAULT_ACTIONS_PAGE: u32 = 100;

/// The host service.
pub struct HostApi(pub Arc<ControlPlane>);

/// How `caller` stands in `meeting`: host (owner, admin, named host, or reported so by a
/// relay), co-host (reported so), or neither.
async fn standing(
    cp: &ControlPlane,
    caller: &Principal,
    meeting: &MeetingRecord,
) -> Result<Option<Role>, Status> {
    if !caller.is_person() {
        return Ok(None);
    }
    if may_manage(caller, meeting)
        || cp
            .store
            .is_host(&meeting.id, &caller.name)
            .await
            .map_err(store_status)?
    {
        return Ok(Some(Role::Host));
    }
    let roles = cp
        .store
        .live_roles(&meeting.id, &caller.name, cp.fresh_since_ms())
        .await
        .map_err(store_status)?;
    let roles: Vec<Role> = roles
        .iter()
        .map(|r| moderation::role_from_report(r))
        .collect();
    Ok(if roles.contains(&Role::Host) {
        Some(Role::Host)
    } else if roles.contains(&Role::Cohost) {
        Some(Role::Cohost)
    } else {
        None
    })
}

/// The caller, the meeting and the caller's role in it; PERMISSION_DENIED unless it hosts.
async fn hosting<T>(
    cp: &ControlPlane,
    request: &Request<T>,
    meeting_id: &str,
) -> Result<(Principal, MeetingRecord, Role), Status> {
    let caller = require(authenticate(&cp.store, request.metadata()).await?)?;
    let meeting = cp
        .store
        .meeting(meeting_id)
        .await
        .map_err(store_status)?
        .ok_or_else(|| Status::not_found(format!("meeting {meeting_id} not found")))?;
    let role = standing(cp, &caller, &meeting).await?.ok_or_else(|| {
        Status::permission_denied("only the meeting's hosts and co-hosts may do that")
    })?;
    Ok((caller, meeting, role))
}

fn moderation_status(error: ModerationError) -> Status {
    match error {
        ModerationError::Forbidden(message) => Status::permission_denied(message),
        ModerationError::Invalid { field, problem } => validate::invalid(field, problem),
    }
}

#[tonic::async_trait]
impl HostService for HostApi {
    async fn list_waiting(
        &self,
        request: Request<ListWaitingRequest>,
    ) -> Result<Response<ListWaitingResponse>, Status> {
        validate::meeting_id("meeting_id", &request.get_ref().meeting_id)?;
        let (_, meeting, _) = hosting(&self.0, &request, &request.get_ref().meeting_id).await?;
        let waiting = self
            .0
            .store
            .waiting_list(&meeting.id, self.0.waiters_seen_since_ms())
            .await
            .map_err(store_status)?;
        Ok(Response::new(ListWaitingResponse {
            waiting: waiting
                .into_iter()
                .map(|w| WaitingPerson {
                    id: w.waiter.id,
                    identity: w.waiter.identity,
                    display_name: w.waiter.display_name,
                    guest: w.waiter.guest,
                    asked_at_ms: w.asked_at_ms,
                })
                .collect(),
        }))
    }

    async fn decide_waiting(
        &self,
        request: Request<DecideWaitingRequest>,
    ) -> Result<Response<DecideWaitingResponse>, Status> {
        let req = request.get_ref();
        validate::meeting_id("meeting_id", &req.meeting_id)?;
        validate::waiter_ids("ids", &req.ids)?;
        if req.all != req.ids.is_empty() {
            return Err(validate::invalid(
                "ids",
                "name waiters, or set all (not both)",
            ));
        }
        if req.reason.chars().count() > validate::MAX_REASON {
            return Err(validate::invalid(
                "reason",
                format!("must be at most {} characters", validate::MAX_REASON),
            ));
        }
        validate::text("reason", &req.reason, validate::MAX_REASON * 4, false)?;
        let (caller, meeting, _) = hosting(&self.0, &request, &req.meeting_id).await?;
        let req = request.into_inner();
        if meeting.ended_at_ms.is_some() {
            return Err(Status::failed_precondition(format!(
                "meeting {} has ended",
                meeting.id
            )));
        }
        if req.admit && meeting.locked {
            return Err(Status::failed_precondition(
                "the meeting is locked: nobody new gets in (unlock it to admit)",
            ));
        }
        let reason = req.reason.trim().to_owned();
        let decided = self
            .0
            .store
            .decide_waiters(
                &meeting.id,
                (!req.all).then_some(req.ids.as_slice()),
                req.admit,
                &reason,
                self.0.waiters_seen_since_ms(),
            )
            .await
            .map_err(store_status)?;
        let action = if req.admit { "admit" } else { "reject" };
        let mut records = Vec::with_capacity(decided.len());
        for waiter in &decided {
            records.push(
                entry(
                    &self.0,
                    &meeting.id,
                    &caller,
                    action,
                    (&waiter.waiter.identity, &waiter.waiter.display_name),
                    reason.clone(),
                )
                .await?,
            );
        }
        self.0
            .store
            .record_host_actions(&records)
            .await
            .map_err(store_status)?;
        tracing::info!(meeting = %meeting.id, by = %caller.name, action, decided = decided.len(), "waiting room decided");
        Ok(Response::new(DecideWaitingResponse {
            decided: u32::try_from(decided.len()).unwrap_or(u32::MAX),
        }))
    }

    async fn moderate_meeting(
        &self,
        request: Request<ModerateMeetingRequest>,
    ) -> Result<Response<ModerateMeetingResponse>, Status> {
        let req = request.get_ref();
        validate::meeting_id("meeting_id", &req.meeting_id)?;
        let action = req
            .action
            .clone()
            .ok_or_else(|| validate::invalid("action", "is required"))?;
        moderation::check(&action).map_err(moderation_status)?;
        let (caller, meeting, role) = hosting(&self.0, &request, &req.meeting_id).await?;
        if meeting.ended_at_ms.is_some() {
            return Err(Status::failed_precondition(format!(
                "meeting {} has ended",
                meeting.id
            )));
        }
        let target = match moderation::target_of(&action) {
            None => None,
            Some(id) => Some(
                self.0
                    .store
                    .live_participants(&meeting.id, self.0.fresh_since_ms())
                    .await
                    .map_err(store_status)?
                    .into_iter()
                    .find(|p| p.participant_id == id)
                    .ok_or_else(|| {
                        Status::not_found(format!(
                            "no participant {id} in meeting {} now",
                            meeting.id
                        ))
                    })?,
            ),
        };
        let target_role = target
            .as_ref()
            .map(|t| moderation::role_from_report(&t.role));
        moderation::permit(role, &action, target_role).map_err(moderation_status)?;
        if let Action::Lock(lock) = &action {
            let relays = super::host_log::lock(&self.0, &meeting.id, lock.locked, &caller).await?;
            return Ok(Response::new(ModerateMeetingResponse { relay_ids: relays }));
        }
        if let (Action::Remove(remove), Some(target)) = (&action, &target) {
            if remove.ban {
                self.0
                    .store
                    .ban(&meeting.id, &target.identity, now_ms())
                    .await
                    .map_err(store_status)?;
            }
        }
        let (target_identity, target_name) = target
            .as_ref()
            .map(|t| (t.identity.as_str(), t.display_name.as_str()))
            .unwrap_or_default();
        let record = entry(
            &self.0,
            &meeting.id,
            &caller,
            moderation::label(&action),
            (target_identity, target_name),
            moderation::detail(&action),
        )
        .await?;
        self.0
            .store
            .record_host_actions(&[record])
            .await
            .map_err(store_status)?;
        tracing::info!(meeting = %meeting.id, by = %caller.name, action = moderation::label(&action), target = target_identity, "host action through the API");
        let relays = dispatch(&self.0, &meeting.id, action, target.map(|t| t.relay_id)).await?;
        Ok(Response::new(ModerateMeetingResponse { relay_ids: relays }))
    }

    async fn list_host_actions(
        &self,
        request: Request<ListHostActionsRequest>,
    ) -> Result<Response<ListHostActionsResponse>, Status> {
        let req = request.get_ref();
        validate::meeting_id("meeting_id", &req.meeting_id)?;
        if req.page_size > MAX_ACTIONS_PAGE {
            return Err(validate::invalid(
                "page_size",
                format!("must be at most {MAX_ACTIONS_PAGE}"),
            ));
        }
        if req.before_ms < 0 {
            return Err(validate::invalid("before_ms", "must not be negative"));
        }
        let (_, meeting, _) = hosting(&self.0, &request, &req.meeting_id).await?;
        let limit = match req.page_size {
            0 => DEFAULT_ACTIONS_PAGE,
            n => n,
        };
        let before = match req.before_ms {
            0 => i64::MAX,
            ms => ms,
        };
        let actions = self
            .0
            .store
            .host_actions(&meeting.id, before, limit)
            .await
            .map_err(store_status)?;
        Ok(Response::new(ListHostActionsResponse {
            actions: actions.into_iter().map(action_to_api).collect(),
        }))
    }
}

/// A record as the API shows it.
pub fn action_to_api(entry: HostActionEntry) -> HostActionRecord {
    HostActionRecord {
        at_ms: entry.at_ms,
        meeting_id: entry.meeting_id,
        by_identity: entry.by_identity,
        by_display_name: entry.by_display_name,
        action: entry.action,
        target_identity: entry.target_identity,
        target_display_name: entry.target_display_name,
        detail: entry.detail,
        via: entry.via,
        ban: false,
        locked: false,
    }
}
